"""A headless "web browser" for programs that open ``$BROWSER URL`` to log a user in.

Claude Code (and ``mcp-remote`` through ``xdg-open``) run ``$BROWSER <authorization URL>``
on Linux and then wait on a loopback callback (``http://localhost:<port>/callback``).
:func:`install` writes an executable script that does what a person would do in a browser,
over HTTP only: open the URL at the test authorization server (``e2e/as.mjs``), log in
with the form (:func:`tests.e2e.harness.login.authorize`), and follow the final redirect
to the program's callback with a GET, as the browser would.

Who logs in is fixed when the script is written. Every invocation appends one JSON line
to ``<directory>/browser.jsonl``: ``{"url": ..., "user": ..., "redirect": ...,
"callback_status": ...}`` or ``{"url": ..., "error": ...}``, which tests read.

Run as ``python -m tests.e2e.harness.browser --user alice --log FILE URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from .login import authorize
from .processes import REPO_ROOT, python_executable


@dataclass(frozen=True)
class HeadlessBrowser:
    """The script to put in ``$BROWSER`` and the log of what it did."""

    script: Path
    log: Path

    def visits(self) -> list[dict[str, Any]]:
        """One dict per invocation, in order (see the module docstring)."""
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def install(
    directory: str | os.PathLike[str], user: str, password: str | None = None
) -> HeadlessBrowser:
    """Write ``<directory>/browser`` (executable) that logs ``user`` in; see the module doc."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "browser.jsonl"
    argv = [python_executable(), "-m", "tests.e2e.harness.browser", "--user", user]
    if password is not None:
        argv += ["--password", password]
    argv += ["--log", str(log)]
    script = directory / "browser"
    script.write_text(
        "#!/bin/sh\n"
        f"cd {shlex.quote(str(REPO_ROOT))} || exit 1\n"
        f'exec {" ".join(shlex.quote(a) for a in argv)} "$@"\n'
    )
    script.chmod(0o755)
    return HeadlessBrowser(script, log)


async def visit(url: str, user: str, password: str | None) -> dict[str, Any]:
    """Log ``user`` in at ``url`` and GET the redirect, as a browser would."""
    response = await authorize(url, user, password)
    # The redirect goes to the program's own loopback listener: no redirects to follow.
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
        callback = await http.get(response.redirect)
    return {
        "url": url,
        "user": user,
        "redirect": response.redirect,
        "callback_status": callback.status_code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True)
    parser.add_argument("--password")
    parser.add_argument("--log", required=True)
    parser.add_argument("url")
    args = parser.parse_args(argv)
    try:
        entry = anyio.run(visit, args.url, args.user, args.password)
        status = 0
    except Exception as exc:  # recorded for the test, which reports it
        entry = {"url": args.url, "error": f"{exc!r}\n{traceback.format_exc()}"}
        status = 1
    with open(args.log, "a") as log:
        log.write(json.dumps(entry) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
