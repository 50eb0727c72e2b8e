"""Pure MCP and JSON-RPC: messages, the one encoder, revisions, names, SSE.

No Twisted and no config here: every other layer builds on these pieces.
"""
