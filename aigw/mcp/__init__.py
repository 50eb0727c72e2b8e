"""MCP: the protocol pieces (pure) and the gateway that speaks it."""
