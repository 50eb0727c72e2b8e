"""The public URL reaches a running aigw that serves this config.

Its protected resource metadata (RFC 9728 §3, path-inserted) names the resource
URL clients will use as token audience (RFC 8707 §2); ``/healthz`` answers while
the process lives.  The doctor may run before aigw starts: unreachable is a warning.
"""

from __future__ import annotations

from aigw.auth.metadata import metadata_url
from aigw.config import Config
from aigw.doctor.findings import Finding, fail, ok, warn
from aigw.httpjson import Clock, FetchFailed, HTTPClient, fetch, parse_json_object

CHECK = "public url"
MAX_BYTES = 64 * 1024


async def check_public_url(
    config: Config, http: HTTPClient, clock: Clock, time_limit: float
) -> Finding:
    base = config.public_url.rstrip("/")
    try:
        health = await fetch(
            http, clock, "GET", base + "/healthz", timeout=time_limit, max_bytes=MAX_BYTES
        )
        if health.status != 200:
            raise FetchFailed(f"{base}/healthz answered HTTP {health.status}")
    except FetchFailed as error:
        return warn(
            CHECK,
            f"{error}",
            "is aigw running? is public_url the address clients reach it at?",
        )
    if config.auth is None:
        return ok(CHECK, f"{base}/healthz answers (auth: none serves no resource metadata)")
    url = metadata_url(config)
    try:
        got = await fetch(http, clock, "GET", url, timeout=time_limit, max_bytes=MAX_BYTES)
        if got.status != 200:
            raise FetchFailed(f"{url} answered HTTP {got.status}")
        resource = parse_json_object(got.body, url).get("resource")
    except FetchFailed as error:
        return fail(
            CHECK,
            f"{base}/healthz answers but {error}",
            "another server answers at public_url, or mcp_path differs from the running aigw's",
        )
    if resource != config.resource_url:
        return fail(
            CHECK,
            f"{url} names resource {resource!r}, this config's is {config.resource_url!r}",
            "the process at public_url runs another config: restart it with this one, or "
            "fix public_url / mcp_path",
        )
    return ok(CHECK, f"{url}: resource {resource}, /healthz answers")
