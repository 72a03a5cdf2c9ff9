"""API token secrets: generated here, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "dpt_"  # noqa: S105 (a public marker, not a secret)


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # A fast hash is right here: the secret has 256 bits of entropy, so there is nothing to
    # brute-force, and lookup by hash must be one indexed query per request.
    return hashlib.sha256(secret.encode()).hexdigest()
