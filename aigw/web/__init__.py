"""The HTTP server side: routes, metadata, and the MCP endpoint of both eras."""
