"""Where a shared store lives in Redis: ``limits.redis_url`` (the rate buckets) and
``sessions.redis_url`` (ended session ids), each with its ``redis_ca_file``.

Both sections read the URL, and check its trust, with the one implementation here.
"""

from __future__ import annotations

from typing import Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import attrs

from aigw.config import nodes as cp

#: Seconds beyond which a ``redis_timeout`` (limits' or sessions') is a mistake, not a
#: wish: a store that slow has failed, and the bound is what lets aigw say so (the
#: sessions subscription PINGs every 15 s and backs off at most 30 s,
#: ``gateway/ended_sessions.py``; a limits take holds its request that long).
REDIS_TIMEOUT_MAX = 60.0

#: The URL schemes of a ``redis_url``: whether the connection is TLS.
REDIS_SCHEMES = {"redis": False, "rediss": True}


@attrs.frozen
class RedisAddress:
    """A Redis server: ``redis[s]://[[user]:password@]host[:port][/db]``
    (``rediss``: TLS, the scheme Redis's own clients use for it)."""

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False

    def __str__(self) -> str:
        """The URL without its credentials (for logs and ``aigw doctor``)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"


def redis_url(ctx: cp.Context, path: str, node: cp.Node) -> RedisAddress | None:
    text = cp.as_nonempty_str(ctx, path, node)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port or 6379
        db_text = parts.path.lstrip("/")
        if parts.scheme not in REDIS_SCHEMES or not parts.hostname or parts.query or parts.fragment:
            raise ValueError
        db = int(db_text) if db_text else 0
    except ValueError:
        ctx.report(path, node, "expected redis[s]://[:password@]host[:port][/db]")
        return None
    return RedisAddress(
        parts.hostname,
        port,
        db,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password is not None else None,
        REDIS_SCHEMES[parts.scheme],
    )


class RedisSection(Protocol):
    """A section that names a Redis server and the trust of its TLS."""

    @property
    def redis_url(self) -> RedisAddress | None: ...

    @property
    def redis_ca_file(self) -> str | None: ...


S = TypeVar("S", bound=RedisSection)


def with_redis_trust(read: cp.Converter[S]) -> cp.Converter[S]:
    """``read``, and what its Redis keys say together: ``redis_ca_file`` is the trust of
    a TLS connection, so it goes with a ``rediss://`` ``redis_url``."""

    def convert(ctx: cp.Context, path: str, node: cp.Node) -> S | None:
        section = read(ctx, path, node)
        if section is None or section.redis_ca_file is None:
            return section
        if section.redis_url is None or not section.redis_url.tls:
            where = f"{path}.redis_ca_file"
            ctx.report(
                where, cp.value_node(node, "redis_ca_file"), "goes with a rediss:// redis_url"
            )
            return None
        return section

    return convert
