"""The session key file: present, long enough, readable by aigw alone.

The config holds the key's bytes, not where they came from, so the file's name is
read from the config file again (``sessions.secret_file``, ``${VAR}`` substituted,
relative to the config's directory, as ``aigw/config/read.py`` resolves it).
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping
from typing import Any

import attrs
import yaml

from aigw.config import nodes as cp
from aigw.doctor.findings import Finding, fail, ok, warn
from aigw.sealed.sealer import MIN_SECRET_BYTES

CHECK = "session key"


@attrs.frozen
class KeyFiles:
    """The session key files a config names: the sealing key, and rotated keys."""

    current: str | None = None
    old: tuple[str, ...] = ()


def key_files_of(config_path: str, env: Mapping[str, str] | None = None) -> KeyFiles:
    """``sessions.secret_file`` and ``old_secret_files`` of the config file, resolved."""
    with open(config_path, encoding="utf-8") as handle:
        root: Any = yaml.safe_load(handle)
    sessions = root.get("sessions") if isinstance(root, dict) else None
    if not isinstance(sessions, dict):
        return KeyFiles()
    ctx = cp.Context(env=os.environ if env is None else env, base_dir=_base(config_path))

    def resolve(name: object) -> str | None:
        if not isinstance(name, str):
            return None
        node = yaml.ScalarNode("tag:yaml.org,2002:str", name)
        return ctx.resolve_path(cp.substitute(ctx, "sessions", node, name))

    olds = sessions.get("old_secret_files")
    resolved = [resolve(name) for name in (olds if isinstance(olds, list) else [])]
    return KeyFiles(resolve(sessions.get("secret_file")), tuple(p for p in resolved if p))


def _base(config_path: str) -> str:
    return os.path.dirname(os.path.abspath(config_path))


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_session_key(path: str | None, inline: bool, check: str = CHECK) -> Finding:
    """A key file other users can read lets them forge and open session ids (the
    sealer's AES-GCM keys derive from it; an old key still opens them); the Debian
    package writes it 0600."""
    if path is None:
        if inline:
            return ok(check, "sessions.secret is inline in the config (keep the config private)")
        return warn(
            check,
            "sessions.secret_file is not set: a random key per process, sessions end at "
            "restart and processes cannot share them",
            f"head -c {MIN_SECRET_BYTES} /dev/urandom > session.key; chmod 600 session.key; "
            "set sessions.secret_file",
        )
    try:
        info = os.stat(path)
    except OSError as error:
        return fail(check, f"{path}: {error.strerror}", "create it or fix sessions.secret_file")
    mode = stat.S_IMODE(info.st_mode)
    seen = f"{path}: {info.st_size} bytes, mode {mode:04o}, owner {_owner(info.st_uid)}"
    if info.st_size < MIN_SECRET_BYTES:
        return fail(
            check,
            f"{seen}: shorter than {MIN_SECRET_BYTES} bytes",
            f"head -c {MIN_SECRET_BYTES} /dev/urandom > {path}",
        )
    if mode & stat.S_IROTH or mode & stat.S_IWOTH:
        return fail(check, f"{seen}: other users can read it", f"chmod 600 {path}")
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        return warn(check, f"{seen}: its group can read it", f"chmod 600 {path}")
    return ok(check, seen)
