"""New accounts have ASCII emails only, so no account can pass for another with a look-alike
letter; lookups (sign-in, contacts) normalise the same way for every account, old ones too."""

import pytest

from accounts.models import NON_ASCII_EMAIL, User
from tests.helpers import DEFAULT_PASSWORD, registration_payload

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"

# Twins of alice@example.org that a person reads as the same address.
CONFUSABLE_TWINS = {
    "cyrillic a in the domain": "alice@ex\u0430mple.org",
    "cyrillic a in the local part": "\u0430lice@example.org",
    "greek omicron in the domain": "alice@example.\u03bfrg",
    "fullwidth e in the domain": "alice@\uff45xample.org",
    "fullwidth a in the local part": "\uff41lice@example.org",
    "dotless i": "al\u0131ce@example.org",
}


@pytest.mark.parametrize("twin", CONFUSABLE_TWINS.values(), ids=CONFUSABLE_TWINS.keys())
def test_a_confusable_twin_of_an_account_cannot_register(client_csrf, twin):
    assert client_csrf.post_json(REGISTER, registration_payload("alice@example.org")).status_code == 201
    response = client_csrf.post_json(REGISTER, registration_payload(twin))
    assert response.status_code == 400, response.json()
    assert "email" in response.json()["errors"]
    assert list(User.objects.values_list("email", flat=True)) == ["alice@example.org"]


def test_an_internationalised_domain_registers_in_its_punycode_form_only(client_csrf):
    response = client_csrf.post_json(REGISTER, registration_payload("bob@b\u00fccher.example"))
    assert response.status_code == 400
    assert response.json()["errors"]["email"] == [NON_ASCII_EMAIL]
    response = client_csrf.post_json(REGISTER, registration_payload("Bob@XN--BCHER-KVA.example"))
    assert response.status_code == 201
    assert response.json()["email"] == "bob@xn--bcher-kva.example"


def test_sign_in_normalises_the_email_as_registration_did(client_csrf):
    client_csrf.post_json(REGISTER, registration_payload("carol@example.org"))
    response = client_csrf.post_json(LOGIN, {"email": "  Carol@EXAMPLE.org ", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    twin = client_csrf.post_json(LOGIN, {"email": "c\u0430rol@example.org", "password": DEFAULT_PASSWORD})
    assert twin.status_code in (400, 401)


def test_an_account_made_before_the_rule_still_signs_in(client_csrf):
    """The rule applies to new accounts: one already stored with a Unicode domain keeps working."""
    legacy = User(email="dave@b\u00fccher.example")
    legacy.set_password(DEFAULT_PASSWORD)
    legacy.save()
    response = client_csrf.post_json(LOGIN, {"email": "Dave@B\u00dcCHER.example", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.json()
    assert response.json()["email"] == "dave@b\u00fccher.example"


def test_every_way_of_making_an_account_follows_the_rule():
    with pytest.raises(ValueError, match="ASCII"):
        User.objects.create_user("erin@ex\u0430mple.org", DEFAULT_PASSWORD)
    with pytest.raises(ValueError, match="ASCII"):
        User.objects.create_superuser("erin@ex\u0430mple.org", DEFAULT_PASSWORD)
    assert User.objects.create_user(" Erin@Example.org", DEFAULT_PASSWORD).email == "erin@example.org"
