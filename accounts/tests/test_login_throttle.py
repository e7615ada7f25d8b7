"""Sign-in throttling (accounts.backends) tried from the attacker's side: it must slow guessing
from one address and from many, and it must never let failures elsewhere lock the owner out at
their own address. The admin's login is held by the same buckets."""

import threading

import pytest
from django.db import connection

from accounts.models import User
from tests.helpers import CsrfClient

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
HOME = "127.0.0.1"  # where make_account() signs the owner in
OPERATOR_EMAIL, OPERATOR_PASSWORD = "operator@example.test", "an operator password 123"


def attempt(email: str, password: str, address: str = HOME):
    return CsrfClient().post_json(LOGIN, {"email": email, "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def limits(settings):
    settings.RATE_LIMITS = {
        **settings.RATE_LIMITS,
        "login_ip": "50/300",
        "login_ip_account": "3/300",
        "login_account": "4/3600",
    }


def test_failures_from_many_addresses_never_lock_the_owner_out_at_their_address(limits, make_account):
    owner = make_account()
    codes = [attempt(owner.email, "wrong", f"198.51.100.{n}").status_code for n in range(20) for _ in range(3)]
    assert 429 in codes
    response = attempt(owner.email, owner.password)
    assert response.status_code == 200


def test_spraying_one_account_from_many_addresses_is_capped(limits, make_account):
    owner = make_account()
    codes = [attempt(owner.email, "wrong", f"198.51.100.{n}").status_code for n in range(10)]
    assert codes == [401] * 4 + [429] * 6
    # Even the right password from a new address is refused while the budget is empty:
    # otherwise the 429s would only hide which guess was right.
    response = attempt(owner.email, owner.password, "203.0.113.9")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["code"] == "rate_limited"


def test_sign_ins_from_new_addresses_spend_no_account_budget(limits, make_account):
    owner = make_account(login=False)
    for n in range(8):  # twice the budget
        assert attempt(owner.email, owner.password, f"203.0.113.{n}").status_code == 200
    assert attempt(owner.email, "wrong", "198.51.100.1").status_code == 401


def test_failures_at_a_known_address_spend_no_account_budget(limits, make_account):
    owner = make_account()
    for _ in range(3):
        assert attempt(owner.email, "wrong").status_code == 401
    codes = [attempt(owner.email, "wrong", f"198.51.100.{n}").status_code for n in range(5)]
    assert codes == [401] * 4 + [429]


def test_one_address_is_limited_per_account_even_with_the_right_password(limits, make_account):
    owner = make_account()
    for _ in range(3):
        assert attempt(owner.email, "wrong", "198.51.100.7").status_code == 401
    assert attempt(owner.email, owner.password, "198.51.100.7").status_code == 429
    assert attempt(owner.email.upper(), owner.password).status_code == 200


def test_a_success_refills_the_bucket_of_its_address_and_account(limits, make_account):
    owner = make_account()
    for _ in range(2):
        assert attempt(owner.email, "wrong").status_code == 401
    assert attempt(owner.email, owner.password).status_code == 200
    for _ in range(2):
        assert attempt(owner.email, "wrong").status_code == 401
    assert attempt(owner.email, owner.password).status_code == 200


def test_one_address_cannot_run_through_many_accounts(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_ip": "3/300"}
    for n in range(3):
        assert attempt(f"x{n}@example.test", "wrong", "198.51.100.1").status_code == 401
    assert attempt("y@example.test", "wrong", "198.51.100.1").status_code == 429
    assert attempt("y@example.test", "wrong", "198.51.100.2").status_code == 401


def test_ipv6_clients_are_counted_per_64(settings):
    """One IPv6 client usually holds a whole /64: counting per address would give it 2^64 buckets."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_ip": "2/300"}
    assert attempt("a@example.test", "wrong", "2001:db8::1").status_code == 401
    assert attempt("b@example.test", "wrong", "2001:db8::ffff:1").status_code == 401
    assert attempt("c@example.test", "wrong", "2001:db8::abcd:0:0:9").status_code == 429
    assert attempt("c@example.test", "wrong", "2001:db8:0:1::1").status_code == 401


# --- the admin's login -------------------------------------------------------------------------


@pytest.fixture
def operator(db):
    return User.objects.create_superuser(OPERATOR_EMAIL, OPERATOR_PASSWORD)


def admin_login(client, password: str, address: str = "198.51.100.20"):
    return client.post(
        "/admin/login/?next=/admin/", {"username": OPERATOR_EMAIL, "password": password}, REMOTE_ADDR=address
    )


def test_admin_login_is_throttled_with_a_clear_message(limits, operator, client):
    for _ in range(3):
        assert "Please enter the correct" in admin_login(client, "wrong").content.decode()
    response = admin_login(client, OPERATOR_PASSWORD)
    assert response.status_code == 200
    assert "Too many sign-in attempts; try again in " in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert admin_login(client, OPERATOR_PASSWORD, "203.0.113.1").status_code == 302


def test_admin_and_api_logins_share_the_buckets(limits, operator, client):
    for _ in range(3):
        assert attempt(OPERATOR_EMAIL, "wrong", "198.51.100.20").status_code == 401
    assert "Too many sign-in attempts" in admin_login(client, OPERATOR_PASSWORD).content.decode()
    # ... and the other way round: admin failures from other addresses empty the account budget.
    for n in range(3):
        admin_login(client, "wrong", f"198.51.100.{30 + n}")
    assert attempt(OPERATOR_EMAIL, OPERATOR_PASSWORD, "203.0.113.50").status_code == 429


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_from_many_addresses_never_overshoot_the_account_budget(settings):
    """The account token is taken before the password check (and given back on success), so
    failures racing each other cannot all pass a check made before any of them counted."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_account": "5/3600"}
    owner = User.objects.create_user("race@example.test", "the right passphrase")
    clients = [CsrfClient() for _ in range(12)]
    for client in clients:
        client.get("/api/v1/auth/csrf")
    codes, barrier = [], threading.Barrier(len(clients))

    def guess(client, n):
        barrier.wait()
        response = client.post_json(LOGIN, {"email": owner.email, "password": "wrong"}, REMOTE_ADDR=f"198.51.100.{n}")
        codes.append(response.status_code)
        connection.close()

    threads = [threading.Thread(target=guess, args=(client, n)) for n, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [401] * 5 + [429] * 7
