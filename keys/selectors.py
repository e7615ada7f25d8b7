"""Reads of key material, scoped to one user."""

import base64
import hashlib

from keys.models import IdentityKey, OneTimePreKey


def identity_key_fingerprint(*, user) -> str | None:
    """A short, readable fingerprint of the identity key for operators (not the safety
    number users compare: that one is computed by the clients over both keys)."""
    key = IdentityKey.objects.filter(user=user).values_list("public_key", flat=True).first()
    if key is None:
        return None
    digest = hashlib.sha256(base64.b64decode(key)).hexdigest()[:20]
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def one_time_prekeys_unused_count(*, user) -> int:
    return OneTimePreKey.objects.filter(user=user, claimed_at__isnull=True).count()
