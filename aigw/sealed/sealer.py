"""Authenticated encryption of small JSON payloads: session ids, cursors, request ids.

Keys.  A ``Sealer`` is made from a secret (at least 32 bytes) and a purpose
label.  Its key is derived once, at construction, with HKDF-SHA256 (RFC 5869)
using the purpose as ``info``, so one configured secret gives independent keys
for sessions, cursors and request ids (``for_purpose``), and a token sealed for
one purpose never opens for another.  Old secrets are accepted for opening
only, so the secret can be rotated without ending every session at once.

Tokens.  ``seal`` writes compact JSON, encrypts it with AES-256-GCM under a
random 96-bit nonce (NIST SP 800-38D §8.2.2), and returns, base64url-encoded
without padding (RFC 4648 §5)::

    version (1 byte) | key id (1 byte) | nonce (12 bytes) | ciphertext | tag (16 bytes)

The version and key id are authenticated as associated data together with the
caller's ``aad``; the key id (derived from the key, not secret) lets ``open``
pick the key without trying all of them.  The alphabet is ``A-Z a-z 0-9 - _``,
so a token is visible ASCII, as MCP 2025-11-25 basic/transports "Session
Management" requires of ``Mcp-Session-Id`` values.  Only the canonical
encoding opens, and tokens longer than ``max_token_length`` are refused
before any work is done.

``seal(..., deterministic=True)`` takes the nonce from HMAC-SHA256 of the
associated data and plaintext under a second derived key (the synthetic IV of
RFC 5297, applied to GCM): the same payload and aad give
the same token, which reveals equality of those tokens and nothing else.  It is
for values that must be recomputed rather than stored (relayed request ids).

``open`` raises ``SealError`` for every kind of bad token and never anything else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
MIN_SECRET_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
#: Longest token ``open`` reads and ``seal`` writes, in characters.  Session ids
#: travel in a header on every request; the HTTP server caps headers at 16 KiB.
MAX_TOKEN_LENGTH = 8192

_HEADER_BYTES = 2
_MIN_RAW = _HEADER_BYTES + NONCE_BYTES + TAG_BYTES
_MIN_CHARS = (_MIN_RAW * 4 + 2) // 3
_SALT = b"aigw sealer v1"
_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


def plaintext_room(token_chars: int) -> int:
    """The most plaintext bytes whose token is at most ``token_chars`` long: for a caller
    that must keep its token under a bound of its own, and trims its payload to fit
    before sealing rather than sealing again and again (``event_id.py``)."""
    return token_chars * 3 // 4 - _MIN_RAW


class SealError(Exception):
    """Not a token this sealer made for this data: damaged, forged, expired key, other use."""


class _Key:
    """One secret's keys for one purpose, derived once."""

    __slots__ = ("aead", "key_id", "nonce_key")

    def __init__(self, secret: bytes, purpose: str) -> None:
        material = HKDF(
            algorithm=hashes.SHA256(),
            length=2 * KEY_BYTES + 1,
            salt=_SALT,
            info=b"aigw/seal/" + purpose.encode("utf-8"),
        ).derive(secret)
        self.aead = AESGCM(material[:KEY_BYTES])
        self.nonce_key = material[KEY_BYTES : 2 * KEY_BYTES]
        self.key_id = material[2 * KEY_BYTES]


def _dumps(payload: Any) -> bytes:
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them instead
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("ascii")


class Sealer:
    """Seal and open JSON objects under one purpose's key."""

    __slots__ = ("_by_id", "_current", "_max", "_secrets", "purpose")

    def __init__(
        self,
        secret: bytes,
        old_secrets: Iterable[bytes] = (),
        purpose: str = "aigw",
        *,
        max_token_length: int = MAX_TOKEN_LENGTH,
    ) -> None:
        secrets = (secret, *old_secrets)
        for one in secrets:
            if not isinstance(one, bytes) or len(one) < MIN_SECRET_BYTES:
                raise ValueError(f"a sealing secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secrets = secrets
        self.purpose = purpose
        self._max = max_token_length
        keys = [_Key(one, purpose) for one in secrets]
        self._current = keys[0]
        self._by_id: dict[int, tuple[_Key, ...]] = {}
        for key in keys:  # rarely two secrets share a key id: open() tries both
            self._by_id[key.key_id] = (*self._by_id.get(key.key_id, ()), key)

    @classmethod
    def random(cls, purpose: str = "aigw") -> Sealer:
        """A key of this process alone: nothing it seals survives a restart."""
        return cls(os.urandom(KEY_BYTES), purpose=purpose)

    def for_purpose(self, purpose: str) -> Sealer:
        """The same secrets, keys derived for another purpose (independent of this one's)."""
        return Sealer(self._secrets[0], self._secrets[1:], purpose, max_token_length=self._max)

    def seal(
        self, payload: Mapping[str, Any], aad: bytes = b"", *, deterministic: bool = False
    ) -> str:
        """The token for ``payload``; ``open`` needs the same ``aad`` to read it.

        Raises SealError if the token would be longer than ``max_token_length``
        (it could never be opened), ValueError or TypeError if ``payload`` is
        not JSON.
        """
        key = self._current
        header = bytes((VERSION, key.key_id))
        plain = _dumps(dict(payload) if not isinstance(payload, dict) else payload)
        associated = header + aad
        if deterministic:
            mac_input = len(aad).to_bytes(8, "big") + aad + plain
            nonce = hmac.digest(key.nonce_key, mac_input, "sha256")[:NONCE_BYTES]
        else:
            nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plain, associated)
        token = base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode("ascii")
        if len(token) > self._max:
            raise SealError(f"the sealed payload is longer than {self._max} characters")
        return token

    def open(self, token: object, aad: bytes = b"") -> dict[str, Any]:
        """The object sealed in ``token`` with this ``aad``; SealError for anything else."""
        if not isinstance(token, str):
            raise SealError("a token is a string")
        if len(token) > self._max:
            raise SealError("token too long")
        if len(token) < _MIN_CHARS:
            raise SealError("token too short")
        if not token.isascii() or not _TOKEN_ALPHABET.fullmatch(token):
            raise SealError("token is not base64url")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise SealError("token is not base64url") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode("ascii"):
            raise SealError("token is not canonical base64url")
        if raw[0] != VERSION:
            raise SealError("unknown token version")
        keys = self._by_id.get(raw[1])
        if keys is None:
            raise SealError("unknown key")
        header = raw[:_HEADER_BYTES]
        nonce = raw[_HEADER_BYTES : _HEADER_BYTES + NONCE_BYTES]
        sealed = raw[_HEADER_BYTES + NONCE_BYTES :]
        associated = header + aad
        for key in keys:
            try:
                plain = key.aead.decrypt(nonce, sealed, associated)
            except InvalidTag:
                continue
            try:
                payload = json.loads(plain)
            except (ValueError, RecursionError):
                raise SealError("the payload is not JSON") from None
            if not isinstance(payload, dict):
                raise SealError("the payload is not a JSON object")
            return payload
        raise SealError("authentication failed")
