"""Talking to one MCP server: the HTTP/1.1 connection pool, request heads, body readers, TLS."""
