"""Authenticated encryption of the ids aigw hands out: session ids, cursors, relayed request ids."""
