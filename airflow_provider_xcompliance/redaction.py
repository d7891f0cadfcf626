"""Keep the bearer token and the signed URLs out of logs.

Signed upload/download URLs carry their credentials in the query string, so a URL is only ever logged as
scheme + host + path. Secrets are also registered with Airflow's secrets masker as a second line of defence
for anything that prints them by accident (a library's debug log, a traceback).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

# Query parameters of signed URLs that are credentials on their own (V4 signature, token routes,
# resumable session ids, which authorise writes to the session without any other credential).
_SECRET_QUERY_KEYS = frozenset({"x-goog-signature", "x-goog-credential", "token", "upload_id", "signature"})


def redact_url(url: str | None) -> str:
    """The URL without its query string and fragment (and without user info): safe to log."""
    if not url:
        return "<none>"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def mask(secret: str | None) -> None:
    """Register a secret with Airflow's secrets masker (no-op for empty values)."""
    if not secret:
        return
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


async def amask(secret: str | None) -> None:
    """:func:`mask` for the event loop (the sync call may block on the supervisor channel there)."""
    if not secret:
        return
    from airflow.sdk.log import amask_secret

    await amask_secret(secret)


def url_secrets(url: str | None) -> list[str]:
    """A signed URL and each credential in its query string: the values to register with the masker."""
    if not url:
        return []
    query = parse_qsl(urlsplit(url).query, keep_blank_values=False)
    return [url, *(value for key, value in query if key.lower() in _SECRET_QUERY_KEYS)]


def mask_url(url: str | None) -> None:
    for secret in url_secrets(url):
        mask(secret)


async def amask_url(url: str | None) -> None:
    for secret in url_secrets(url):
        await amask(secret)
