"""PBKDF2-HMAC-SHA256 password hashing with a server-side pepper.

Why a pepper: a stolen database alone must not allow verifying password guesses. The
password is first keyed with HMAC-SHA256 under the pepper (a secret that lives only in the
environment), then stretched with PBKDF2-HMAC-SHA256 and a per-password random salt, with at
least Django's default iteration count. Without the pepper an attacker holding the hashes
cannot test a single guess.

Rotation: each hash records a short id of the pepper that made it (an HMAC of a constant
under the pepper, which reveals nothing usable about a high-entropy pepper). Retired peppers
listed in PASSWORD_PEPPER_OLD still verify; `must_update` then asks Django to re-hash with
the current pepper at the next successful login. Comparison is constant-time.

Format: `pbkdf2_sha256_peppered$<pepper id>$<iterations>$<salt>$<base64 hash>`.
"""

import base64
import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare, pbkdf2
from django.utils.translation import gettext_noop as _


def pepper_id(pepper: str) -> str:
    return hmac.new(pepper.encode(), b"secured-messenger pepper id", hashlib.sha256).hexdigest()[:8]


def _known_peppers() -> dict[str, str]:
    peppers = [settings.PASSWORD_PEPPER, *settings.PASSWORD_PEPPER_OLD]
    return {pepper_id(p): p for p in peppers if p}


class PepperedPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    algorithm = "pbkdf2_sha256_peppered"
    digest = hashlib.sha256

    @staticmethod
    def _peppered(password: str, pepper: str) -> bytes:
        # Hex so the PBKDF2 input is plain ASCII whatever the password's characters.
        return hmac.new(pepper.encode(), password.encode(), hashlib.sha256).hexdigest().encode()

    def encode(self, password, salt, iterations=None):
        return self._encode_with(password, salt, iterations or self.iterations, settings.PASSWORD_PEPPER)

    def _encode_with(self, password: str, salt: str, iterations: int, pepper: str) -> str:
        self._check_encode_args(password, salt)
        derived = pbkdf2(self._peppered(password, pepper), salt, iterations, digest=self.digest)
        hash_b64 = base64.b64encode(derived).decode("ascii").strip()
        return f"{self.algorithm}${pepper_id(pepper)}${iterations}${salt}${hash_b64}"

    def decode(self, encoded):
        algorithm, pid, iterations, salt, hash_b64 = encoded.split("$", 4)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "pepper_id": pid, "iterations": int(iterations), "salt": salt, "hash": hash_b64}

    def verify(self, password, encoded):
        try:
            decoded = self.decode(encoded)
        except (ValueError, AssertionError):
            return False
        pepper = _known_peppers().get(decoded["pepper_id"])
        if pepper is None:
            # Unknown pepper: still spend the time, so timing does not tell which hashes
            # belong to a retired pepper.
            self._encode_with(password, decoded["salt"], decoded["iterations"], "unknown-pepper")
            return False
        candidate = self._encode_with(password, decoded["salt"], decoded["iterations"], pepper)
        return constant_time_compare(encoded, candidate)

    def must_update(self, encoded):
        decoded = self.decode(encoded)
        return decoded["pepper_id"] != pepper_id(settings.PASSWORD_PEPPER) or decoded["iterations"] < self.iterations

    def safe_summary(self, encoded):
        decoded = self.decode(encoded)
        return {
            _("algorithm"): decoded["algorithm"],
            _("pepper id"): decoded["pepper_id"],
            _("iterations"): decoded["iterations"],
            _("salt"): mask_hash(decoded["salt"]),
            _("hash"): mask_hash(decoded["hash"]),
        }

    def harden_runtime(self, password, encoded):
        decoded = self.decode(encoded)
        extra_iterations = self.iterations - decoded["iterations"]
        if extra_iterations > 0:
            self._encode_with(password, decoded["salt"], extra_iterations, settings.PASSWORD_PEPPER)
