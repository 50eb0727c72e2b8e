"""Authorization server metadata discovery (RFC 8414, OpenID Connect Discovery 1.0).

Written once, shared by the key store and the metadata relay (``auth``) and the
client credentials of a backend given an ``issuer`` (``upstream``); imports no layer.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from aigw.httpjson import Clock, FetchFailed, HTTPClient, get_json_object

OAUTH_METADATA = "/.well-known/oauth-authorization-server"
OPENID_METADATA = "/.well-known/openid-configuration"
MAX_METADATA_BYTES = 256 * 1024


def metadata_urls(issuer: str) -> tuple[str, str]:
    """The RFC 8414 and OpenID Connect metadata URLs of ``issuer``, in that order.

    RFC 8414 §3.1 inserts the well-known string between host and path
    (``https://as/t1`` → ``https://as/.well-known/oauth-authorization-server/t1``);
    OpenID Connect Discovery 1.0 §4 appends it to the issuer
    (``https://as/t1/.well-known/openid-configuration``).
    """
    parts = urllib.parse.urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin + OAUTH_METADATA + path, origin + path + OPENID_METADATA


async def fetch_metadata(
    http: HTTPClient, clock: Clock, url: str, issuer: str, time_limit: float
) -> tuple[bytes, dict[str, Any]]:
    """An authorization server metadata document, checked to belong to ``issuer``.

    RFC 8414 §3.3 (and OIDC Discovery §4.3): the ``issuer`` in the document
    MUST be identical to the issuer used to find it, else it MUST NOT be used;
    this stops a document from one issuer sending us to another's keys.
    Returns the raw bytes (for relaying) and the parsed object.
    """
    body, document = await get_json_object(
        http, clock, url, time_limit=time_limit, max_bytes=MAX_METADATA_BYTES
    )
    if document.get("issuer") != issuer:
        raise FetchFailed(
            f"{url} names issuer {document.get('issuer')!r}, not the configured {issuer!r}"
        )
    return body, document


async def discover_metadata(
    http: HTTPClient, clock: Clock, issuer: str, time_limit: float
) -> dict[str, Any]:
    """The first usable metadata document of ``issuer`` (RFC 8414, then OIDC)."""
    problems = []
    for url in metadata_urls(issuer):
        try:
            _, document = await fetch_metadata(http, clock, url, issuer, time_limit)
        except Exception as error:
            problems.append(str(error) or type(error).__name__)
        else:
            return document
    raise FetchFailed("; ".join(problems))
