"""``aigw doctor CONFIG``: checks a live set-up, one line per finding with its fix.

A command module, top-level like ``aigw/cli.py``: it may use every layer.

- ``findings.py``: a finding, how findings print, the exit status;
- ``authserver.py``: the issuer's metadata (RFC 8414), JWKS (RFC 7517), registration
  (RFC 7591), PKCE and scopes;
- ``backends.py``: each backend answers ``initialize``, and its tool names fit;
- ``sessionkey.py``: the session key file is present and private;
- ``public.py``: the public URL reaches a running aigw serving this config (RFC 9728);
- ``command.py``: all of them, concurrently, under ``task.react``.
"""

from aigw.doctor.command import doctor

__all__ = ["doctor"]
