"""The router: client sessions, backend sessions, lists, calls, relay, streams."""
