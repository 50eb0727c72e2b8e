"""The HTTP server side: routes, metadata, and the MCP endpoint of both eras.

Klein routes with ``werkzeug.routing`` and ``werkzeug.exceptions``.  Importing them runs
``werkzeug/__init__.py`` first, which imports werkzeug's development server and test
client (``serving``, ``test``, ``wrappers``: ``socketserver``, ``http.server``, multipart
parsing) only to offer them as ``werkzeug.run_simple``, ``Client``, ``Request`` and
``Response``, none of which Klein or aigw uses: about 0.9 MiB of a started gateway
(docs/performance.md, "A leaner, faster process").  Klein's own ``__init__.py`` does the
same with its forms, templates (plating), sessions and requirer (``klein._form``,
``_plating``, ``_session``, ``_requirer``: 0.4 MiB), which aigw does not use either: it
takes ``Klein`` from ``klein._app``, where the class lives.  So, unless something imported
them already, both packages are registered here as the import system would make them,
without running their ``__init__.py``; their submodules import as usual.
``tests/process/test_lean_imports.py`` checks what is left out.
"""

from __future__ import annotations

import importlib.util
import sys


def _package_without_its_init(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:  # not installed: the import of its submodule says so
        return
    sys.modules[name] = importlib.util.module_from_spec(spec)


_package_without_its_init("werkzeug")
_package_without_its_init("klein")
