from contacts.tests.helpers import _cheap_password_hashing, make_account, published  # noqa: F401  (fixtures)
