"""API keys: ``mh_<key id>_<secret>``. The key id is looked up; only the secret's hash is stored.

The secret is 32 random bytes, so a plain SHA-256 is the right hash: a slow password hash
protects guessable secrets, and these are not guessable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from modelhost.errors import Unauthorized

PREFIX = "mh"


def new_key() -> tuple[str, str, str]:
    """(key id, secret hash, the whole key to show once)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, hash_secret(secret), f"{PREFIX}_{key_id}_{secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_key(key: str) -> tuple[str, str]:
    """(key id, secret) of a presented key; Unauthorized if it is not one of ours."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 12 or not secret:
        raise Unauthorized("the API key is malformed")
    return key_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
