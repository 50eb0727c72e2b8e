"""twistd plugin: ``twistd aigw --config FILE``.

This directory is Twisted's plugin namespace, not a package of ours: no
``__init__.py`` here, and nothing but this one declaration.
"""

from twisted.application.service import ServiceMaker

aigw = ServiceMaker(
    "aigw",
    "aigw.tap",
    "MCP gateway: OAuth 2.1 resource server in front of MCP servers",
    "aigw",
)
