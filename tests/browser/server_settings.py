"""Settings of the daphne server the browser tests start: the real settings, with the test
suite's cheaper password hasher (the production PBKDF2 cost is checked by accounts' tests; here
it would only make every registration and sign-in slow)."""

from messenger.settings import *  # noqa: F403

PASSWORD_HASHERS = ["tests.helpers.FastPepperedPBKDF2PasswordHasher"]
