"""Password hashing: PBKDF2-HMAC-SHA256 + salt + a pepper that is not in the database."""

import hashlib

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, get_hasher, make_password

from accounts.hashers import PepperedPBKDF2PasswordHasher, pepper_id
from accounts.models import User

PASSWORD = "a very long passphrase 123"


def test_hash_uses_pbkdf2_sha256_with_at_least_djangos_iterations(settings):
    encoded = PepperedPBKDF2PasswordHasher().encode(PASSWORD, "s" * 22)
    algorithm, pid, iterations, salt, _digest = encoded.split("$")
    assert algorithm == "pbkdf2_sha256_peppered"
    assert pid == pepper_id(settings.PASSWORD_PEPPER)
    assert int(iterations) >= PBKDF2PasswordHasher.iterations
    assert len(salt) >= 16
    assert len(make_password(PASSWORD).split("$")[3]) >= 16


def test_same_password_gets_a_different_salt_each_time():
    assert make_password(PASSWORD) != make_password(PASSWORD)


def test_hash_does_not_verify_under_another_pepper(settings):
    encoded = make_password(PASSWORD)
    settings.PASSWORD_PEPPER = "another-pepper-entirely-0123456789abcdef"
    settings.PASSWORD_PEPPER_OLD = []
    assert not check_password(PASSWORD, encoded)


def test_a_database_dump_alone_cannot_verify_a_guess(settings):
    """Recomputing plain PBKDF2 from the stored salt and iterations (what an attacker with
    only the dump could do) must not reproduce the stored hash."""
    encoded = make_password(PASSWORD)
    _, _, iterations, salt, _ = encoded.split("$")
    unpeppered = PBKDF2PasswordHasher().encode(PASSWORD, salt, int(iterations)).split("$")[-1]
    assert unpeppered != encoded.split("$")[-1]


def test_wrong_password_is_rejected():
    assert not check_password("wrong password", make_password(PASSWORD))


def test_old_pepper_still_verifies_and_is_flagged_for_rehash(settings):
    old = settings.PASSWORD_PEPPER
    encoded = make_password(PASSWORD)
    settings.PASSWORD_PEPPER = "rotated-pepper-0123456789abcdefghijkl"
    settings.PASSWORD_PEPPER_OLD = [old]
    hasher = get_hasher()
    assert hasher.verify(PASSWORD, encoded)
    assert hasher.must_update(encoded)
    assert not hasher.must_update(make_password(PASSWORD))


@pytest.mark.django_db
def test_login_rehashes_with_the_current_pepper(settings, make_account, client_csrf):
    account = make_account(login=False)
    old = settings.PASSWORD_PEPPER
    settings.PASSWORD_PEPPER = "rotated-pepper-0123456789abcdefghijkl"
    settings.PASSWORD_PEPPER_OLD = [old]
    response = client_csrf.post_json("/api/v1/auth/login", {"email": account.email, "password": account.password})
    assert response.status_code == 200
    stored = User.objects.get(email=account.email).password
    assert stored.split("$")[1] == pepper_id(settings.PASSWORD_PEPPER)


@pytest.mark.django_db
def test_no_plaintext_or_plain_digest_is_stored(make_account):
    account = make_account(login=False)
    stored = User.objects.get(email=account.email).password
    assert account.password not in stored
    assert hashlib.sha256(account.password.encode()).hexdigest() not in stored
