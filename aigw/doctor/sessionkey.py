"""The session key file: present, long enough, readable by aigw alone.

The config holds the key's bytes, not where they came from, so the file's name is
read from the config file again (``sessions.secret_file``, ``${VAR}`` substituted,
relative to the config's directory, as ``aigw/config/read.py`` resolves it).
"""

from __future__ import annotations

import os
import pwd
import stat
from typing import Any

import yaml

from aigw.config import nodes as cp
from aigw.doctor.findings import Finding, fail, ok, warn
from aigw.sealed.sealer import MIN_SECRET_BYTES

CHECK = "session key"


def secret_file_of(config_path: str, env: dict[str, str] | None = None) -> str | None:
    """``sessions.secret_file`` of the config file, resolved; None when not set."""
    with open(config_path, encoding="utf-8") as handle:
        root: Any = yaml.safe_load(handle)
    sessions = root.get("sessions") if isinstance(root, dict) else None
    name = sessions.get("secret_file") if isinstance(sessions, dict) else None
    if not isinstance(name, str):
        return None
    ctx = cp.Context(env=os.environ if env is None else env, base_dir=_base(config_path))
    node = yaml.ScalarNode("tag:yaml.org,2002:str", name)
    return ctx.resolve_path(cp.substitute(ctx, "sessions.secret_file", node, name))


def _base(config_path: str) -> str:
    return os.path.dirname(os.path.abspath(config_path))


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_session_key(path: str | None, inline: bool) -> Finding:
    """A key file other users can read lets them forge and open session ids (the
    sealer's AES-GCM keys derive from it); the Debian package writes it 0600."""
    if path is None:
        if inline:
            return ok(CHECK, "sessions.secret is inline in the config (keep the config private)")
        return warn(
            CHECK,
            "sessions.secret_file is not set: a random key per process, sessions end at "
            "restart and processes cannot share them",
            f"head -c {MIN_SECRET_BYTES} /dev/urandom > session.key; chmod 600 session.key; "
            "set sessions.secret_file",
        )
    try:
        info = os.stat(path)
    except OSError as error:
        return fail(CHECK, f"{path}: {error.strerror}", "create it or fix sessions.secret_file")
    mode = stat.S_IMODE(info.st_mode)
    seen = f"{path}: {info.st_size} bytes, mode {mode:04o}, owner {_owner(info.st_uid)}"
    if info.st_size < MIN_SECRET_BYTES:
        return fail(
            CHECK,
            f"{seen}: shorter than {MIN_SECRET_BYTES} bytes",
            f"head -c {MIN_SECRET_BYTES} /dev/urandom > {path}",
        )
    if mode & stat.S_IROTH or mode & stat.S_IWOTH:
        return fail(CHECK, f"{seen}: other users can read it", f"chmod 600 {path}")
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        return warn(CHECK, f"{seen}: its group can read it", f"chmod 600 {path}")
    return ok(CHECK, seen)
