"""The PyPI libraries ``x3dh``, ``doubleratchet`` and ``xeddsa`` configured with our parameter set.

This module is the whole configuration, exactly as docs/PROTOCOL.md states:

* X3DH: identity keys in Ed25519 form, SHA-256, info ``SecuredMessenger X3DH v1``, public keys encoded raw
  (no type prefix) both in the signed prekey signature and in the associated data.
* Root chain: HKDF-SHA-256 with the root key as salt, info ``SecuredMessenger Root Chain v1``.
* Message chains: separate HMAC-SHA-256 with the constant ``b"\\x02\\x01"`` (next chain key, message key).
* AEAD: HKDF-SHA-256 (info ``SecuredMessenger Message Keys v1``) -> AES-256-CBC + HMAC-SHA-256.
* Per-message AD: X3DH AD || ratchet public key || n (u64 BE) || pn (u64 BE).
* X25519 ratchet keys.

Nothing else of the libraries' defaults is relied upon. The libraries are asynchronous in places
(KDFs, AEAD, key agreement), hence the ``async`` functions.
"""

from __future__ import annotations

import hmac
from typing import Any

import x3dh
from doubleratchet import DoubleRatchet as _DoubleRatchet
from doubleratchet import Header
from doubleratchet.aead import AuthenticationFailedException
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)
from doubleratchet.recommended.crypto_provider_impl import CryptoProviderImpl

from .constants import (
    MAC_LENGTH,
    MAX_SKIP,
    MAX_STORED_SKIPPED_KEYS,
    MESSAGE_CHAIN_CONSTANT,
    MESSAGE_KEYS_INFO,
    ROOT_CHAIN_INFO,
    X3DH_INFO,
)


class X3DHState(x3dh.BaseState):
    """X3DH with raw public key encoding.

    ``BaseState`` rather than ``State``: ``State`` deletes a one-time prekey as soon as the key agreement
    ran, before the first message was authenticated. We delete it only once the initial message
    decrypted (so a forged one cannot burn it), in :class:`messenger_client.protocol.account.ProtocolAccount`.
    """

    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return pub


X3DH_PARAMETERS: dict[str, Any] = {
    "identity_key_format": x3dh.IdentityKeyFormat.ED_25519,
    "hash_function": x3dh.HashFunction.SHA_256,
    "info": X3DH_INFO,
}


class RootChainKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return ROOT_CHAIN_INFO


class MessageChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class MessageAEAD(aead_aes_hmac.AEAD):
    """AES-256-CBC + HMAC-SHA-256 as in the library, but with the tag compared in constant time.

    The library's ``decrypt`` compares tags with ``!=``; the tag check is the only thing standing between
    an attacker and the decryption, so it is redone here with :func:`hmac.compare_digest`. Encryption is
    the library's.
    """

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return MESSAGE_KEYS_INFO

    @classmethod
    async def decrypt(cls, ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        derived = await CryptoProviderImpl.hkdf_derive(
            hash_function=HashFunction.SHA_256,
            length=80,
            salt=b"\x00" * 32,
            info=MESSAGE_KEYS_INFO,
            key_material=key,
        )
        encryption_key, authentication_key, iv = derived[:32], derived[32:64], derived[64:]
        body, tag = ciphertext[:-MAC_LENGTH], ciphertext[-MAC_LENGTH:]
        expected = await CryptoProviderImpl.hmac_calculate(
            authentication_key, HashFunction.SHA_256, associated_data + body
        )
        if len(tag) != MAC_LENGTH or not hmac.compare_digest(expected, tag):
            raise AuthenticationFailedException("Authentication tags do not match.")
        return await CryptoProviderImpl.aes_cbc_decrypt(encryption_key, iv, body)


class DiffieHellmanRatchet(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    """X25519 ratchet keys (the library's recommended implementation, unchanged)."""


def message_associated_data(associated_data: bytes, header: Header) -> bytes:
    """X3DH AD || ratchet public key || n (u64 BE) || pn (u64 BE)."""
    return (
        associated_data
        + header.ratchet_pub
        + header.sending_chain_length.to_bytes(8, "big")
        + header.previous_sending_chain_length.to_bytes(8, "big")
    )


class DoubleRatchet(_DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
        return message_associated_data(associated_data, header)


DOUBLE_RATCHET_PARAMETERS: dict[str, Any] = {
    "diffie_hellman_ratchet_class": DiffieHellmanRatchet,
    "root_chain_kdf": RootChainKDF,
    "message_chain_kdf": MessageChainKDF,
    "message_chain_constant": MESSAGE_CHAIN_CONSTANT,
    "dos_protection_threshold": MAX_SKIP,
    "max_num_skipped_message_keys": MAX_STORED_SKIPPED_KEYS,
    "aead": MessageAEAD,
}
