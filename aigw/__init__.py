"""aigw: an MCP gateway that is the OAuth 2.1 resource server for MCP servers
that do not do OAuth.
"""

__version__ = "0.1.0"
