"""Signed outgoing requests (script actions, webhook channels): HMAC-SHA256 over
`timestamp.body`, so a receiver can check both origin and freshness."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TIMESTAMP_HEADER = "X-Stepwise-Timestamp"
SIGNATURE_HEADER = "X-Stepwise-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signed_headers(secret: str, body: bytes, *, timestamp: int, idempotency_key: str
                   ) -> dict[str, str]:
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, body),
            IDEMPOTENCY_HEADER: idempotency_key}


def verify(secret: str, timestamp: str, body: bytes, given: str) -> bool:
    """What a receiver does (tests use it too)."""
    try:
        expected = signature(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, given)
