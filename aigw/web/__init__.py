"""The HTTP server side: routes, metadata, and the MCP endpoint of both eras.

Klein routes with ``werkzeug.routing`` and ``werkzeug.exceptions``.  Importing them runs
``werkzeug/__init__.py`` first, which imports werkzeug's development server and test
client (``serving``, ``test``, ``wrappers``: ``socketserver``, ``http.server``, multipart
parsing) only to offer them as ``werkzeug.run_simple``, ``Client``, ``Request`` and
``Response``, none of which Klein or aigw uses: about 0.9 MiB of a started gateway
(docs/performance.md, "A leaner, faster process").  So, unless something imported
werkzeug already, its package is registered here as the import system would make it,
without running those four imports; its submodules import as usual.
``tests/process/test_lean_imports.py`` checks what is left out.
"""

from __future__ import annotations

import importlib.util
import sys


def _werkzeug_without_conveniences() -> None:
    if "werkzeug" in sys.modules:
        return
    spec = importlib.util.find_spec("werkzeug")
    if spec is None:  # not installed: klein's own import says so
        return
    sys.modules["werkzeug"] = importlib.util.module_from_spec(spec)


_werkzeug_without_conveniences()
