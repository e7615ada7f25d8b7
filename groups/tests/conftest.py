from contacts.tests.helpers import make_account, published  # noqa: F401  (fixtures)
