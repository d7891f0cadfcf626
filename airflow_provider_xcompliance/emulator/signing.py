"""Google-Cloud-Storage-like signed URLs: V4 query parameters, an HMAC signature, an expiry.

Only the emulator reads these URLs; clients treat them as opaque, as they must with the real ones. The
signature covers the path, the signing time, the lifetime and the signed headers, so a URL cannot be
pointed at another object or given a longer life.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

ALGORITHM = "GOOG4-HMAC-SHA256"
_SERVICE_ACCOUNT = "xcompliance-emulator@emulator.iam.gserviceaccount.com"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
SIGNED_PARAMS = (
    "X-Goog-Algorithm",
    "X-Goog-Credential",
    "X-Goog-Date",
    "X-Goog-Expires",
    "X-Goog-SignedHeaders",
)


class Verdict(enum.Enum):
    VALID = "valid"
    MISSING = "missing"  # not a signed request at all
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"


@dataclasses.dataclass(frozen=True)
class Verification:
    verdict: Verdict
    expires_at: float | None = None  # epoch seconds, when the parameters could be read
    signed_headers: tuple[str, ...] = ()


class UrlSigner:
    """Signs and verifies storage URLs with a secret that lives as long as the emulator process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _signature(self, path: str, params: Mapping[str, str]) -> str:
        canonical = "\n".join([path, *(params[name] for name in SIGNED_PARAMS)])
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, *, signed_at: float, expires_in: int, signed_headers: tuple[str, ...]) -> str:
        """The query string (without ``?``) that makes ``path`` usable until ``signed_at + expires_in``."""
        moment = datetime.fromtimestamp(signed_at, tz=timezone.utc)
        params = {
            "X-Goog-Algorithm": ALGORITHM,
            "X-Goog-Credential": f"{_SERVICE_ACCOUNT}/{moment:%Y%m%d}/auto/storage/goog4_request",
            "X-Goog-Date": moment.strftime(_DATE_FORMAT),
            "X-Goog-Expires": str(expires_in),
            "X-Goog-SignedHeaders": ";".join(sorted(signed_headers)),
        }
        params["X-Goog-Signature"] = self._signature(path, params)
        return urlencode(params, quote_via=quote, safe="")

    def verify(self, path: str, query: Mapping[str, str], now: float) -> Verification:
        """Check a request's path and query parameters; the signature is compared in constant time."""
        if "X-Goog-Signature" not in query or any(name not in query for name in SIGNED_PARAMS):
            return Verification(Verdict.MISSING)
        expected = self._signature(path, query)
        if not hmac.compare_digest(expected.encode(), query["X-Goog-Signature"].encode()):
            return Verification(Verdict.BAD_SIGNATURE)
        signed_at = datetime.strptime(query["X-Goog-Date"], _DATE_FORMAT).replace(tzinfo=timezone.utc)
        expires_at = signed_at.timestamp() + int(query["X-Goog-Expires"])
        headers = tuple(query["X-Goog-SignedHeaders"].split(";"))
        verdict = Verdict.EXPIRED if now >= expires_at else Verdict.VALID
        return Verification(verdict, expires_at, headers)
