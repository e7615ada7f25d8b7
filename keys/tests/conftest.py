from contacts.tests.helpers import _cheap_password_hashing, published  # noqa: F401  (fixtures)
