"""The OAuth 2.1 resource server of the MCP Authorization specification.

Tokens come in through :mod:`aigw.auth.bearer`, are checked by a verifier of
:mod:`aigw.auth.tokens` (JWT against the issuer's keys, or RFC 7662
introspection), and refusals are turned into RFC 6750 challenges by
:mod:`aigw.auth.authenticator`.
"""
