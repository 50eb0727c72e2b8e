"""Secrets at rest: who else may read a key file, or a config file holding a secret.

``file_mode_problems`` is the one check of a secret file's mode and owner; the
config reader applies it to every ``*_file`` key naming a secret (a warning, a
problem under ``strict_file_modes: true``), and ``aigw doctor`` may call it too.
``literal_secret_warnings`` names the keys holding a secret inline in a config
file that others may read.  Pure functions over ``os.stat``; no Twisted.
"""

from __future__ import annotations

import os
import re
import stat

#: Header names whose static values are credentials (``headers:`` written inline).
_CREDENTIAL_HEADER = re.compile(
    r"authorization|proxy-authorization|cookie|.*api[-_]?key.*|.*token.*|.*secret.*|"
    r".*password.*|.*session.*|x-auth.*",
    re.IGNORECASE,
)


def file_mode_problems(path: str, euid: int | None = None) -> list[str]:
    """What is wrong with ``path`` as a file only aigw's user should read: readable by
    its group or by others, or owned by another user than ``euid`` (default: this
    process's effective user) or root.  Empty when it is fine or cannot be stat'ed
    (reading it reports that)."""
    try:
        found = os.stat(path)
    except OSError:
        return []
    owner = os.geteuid() if euid is None else euid
    problems = []
    readers = [
        who
        for who, bit in (("its group", stat.S_IRGRP), ("others", stat.S_IROTH))
        if found.st_mode & bit
    ]
    if readers:
        mode = stat.S_IMODE(found.st_mode)
        problems.append(
            f"{path} is readable by {' and '.join(readers)} (mode {mode:04o}): chmod 600 {path}"
        )
    if found.st_uid not in (owner, 0):
        problems.append(
            f"{path} is owned by uid {found.st_uid}, neither aigw's user (uid {owner}) nor "
            "root: that user can read or replace it"
        )
    return problems


def readable_by_others(path: str) -> bool:
    """Whether any user of the host may read ``path`` (false when it cannot be stat'ed)."""
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def is_credential_header(name: str) -> bool:
    """Whether a static header's value is a credential: ``Authorization``, ``X-Api-Key``,
    anything naming a token, a secret, a password, a cookie or a session."""
    return _CREDENTIAL_HEADER.fullmatch(name) is not None


def is_literal(raw: str) -> bool:
    """Whether a config value is written out, rather than taken from ``${VAR}``."""
    return "${" not in raw.replace("$${", "")
