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


# Airflow's masker rebuilds one pattern of all its secrets for each secret added, so adding costs grow with
# every secret already known (bench/README.md has the figure): each value is registered once per process, and
# signed URLs only where they are used (transfers), never per status poll.
_registered: set[str] = set()


def mask(secret: str | None) -> None:
    """Register a secret with Airflow's secrets masker, once per process (no-op for empty values)."""
    if not secret or secret in _registered:
        return
    from airflow.sdk.log import mask_secret

    mask_secret(secret)
    _registered.add(secret)


async def amask(secret: str | None) -> None:
    """:func:`mask` for the event loop (the sync call may block on the supervisor channel there)."""
    if not secret or secret in _registered:
        return
    from airflow_provider_xcompliance.version_compat import amask_secret

    await amask_secret(secret)
    _registered.add(secret)


def url_secrets(url: str | None) -> list[str]:
    """The credentials in a signed URL's query string: masking them hides what makes the URL a secret."""
    if not url:
        return []
    query = parse_qsl(urlsplit(url).query, keep_blank_values=False)
    return [value for key, value in query if key.lower() in _SECRET_QUERY_KEYS]


def mask_url(url: str | None) -> None:
    """Register a signed URL's credentials with the masker before the URL is used."""
    for secret in url_secrets(url):
        mask(secret)
