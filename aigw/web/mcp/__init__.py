"""The MCP endpoint: the session-based era and the 2026-07-28 stateless era."""
