"""Keys, tokens, configs and a fake authorization server for the auth tests."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from aigw.config import AuthConfig, BackendConfig, Config
from tests.unit.gateway.helpers import PUBLIC_URL

ISSUER = "https://as.example/tenant1"
AUDIENCE = "https://gw.example/mcp"
JWKS_URI = "https://as.example/jwks"
NOW = 1_800_000_000.0

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def public_jwk(private: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``private`` with ``kid`` and extra members."""
    public = private.public_key()
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    jwk.update(extra)
    return dict(jwk)


def jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def auth_config(**overrides: Any) -> AuthConfig:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": (AUDIENCE,),
        "jwks_uri": JWKS_URI,
    }
    values.update(overrides)
    return AuthConfig(**values)


def gateway_config(auth: AuthConfig | None = None, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "listen": ("tcp:0",),
        "public_url": "https://gw.example",
        "mcp_path": "/mcp",
        "auth": auth,
        "backends": (BackendConfig(name="files", url="http://files.internal/mcp"),),
    }
    values.update(overrides)
    return Config(**values)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid RFC 9068 claims at NOW; a value of None drops the claim."""
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "mcp:read mcp:write",
        "jti": "token-1",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 600,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def mint(
    payload: dict[str, Any] | None = None,
    key: Any = RSA_KEY,
    alg: str = "RS256",
    kid: str | None = "rsa-1",
    typ: str | None = "at+jwt",
    **headers: Any,
) -> str:
    """A signed token; ``typ``/``kid`` of None leave the header out."""
    header: dict[str, Any] = dict(headers)
    header["typ"] = typ
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(payload if payload is not None else claims(), key, alg, headers=header)


@attrs.define
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    chunked: bool = False


class FakeAuthorizationServer(Resource):
    """Answers each path with its configured Answer; counts hits, can hold requests."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, Answer] = {}
        self.hits: Counter[str] = Counter()
        self.hold = False
        self.held: list[Request] = []
        self.requests: list[Request] = []
        self.forms: list[dict[bytes, list[bytes]]] = []

    def serve(
        self, path: str, body: Any, status: int = 200, chunked: bool = False, **headers: str
    ) -> None:
        """Answer ``path``; ``chunked`` sends no Content-Length, in 1 KiB writes."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[path] = Answer(status, data, headers, chunked)

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode()
        self.hits[path] += 1
        self.requests.append(request)
        self.forms.append(dict(request.args or {}))
        if self.hold:
            self.held.append(request)
            return NOT_DONE_YET
        body = self.respond(request)
        if not self.answers.get(path, Answer()).chunked:
            return body
        for start in range(0, len(body), 1024):
            request.write(body[start : start + 1024])
        request.finish()
        return NOT_DONE_YET

    def respond(self, request: Request) -> bytes:
        answer = self.answers.get(request.path.decode(), Answer(404, b"not found"))
        request.setResponseCode(answer.status)
        request.setHeader(b"content-type", b"application/json")
        for name, value in answer.headers.items():
            request.setHeader(name.replace("_", "-").encode(), value.encode())
        return answer.body

    def release(self) -> None:
        """Answer every held request."""
        held, self.held = self.held, []
        for request in held:
            request.write(self.respond(request))
            request.finish()


#: The config `aigw access explain` is tested against (unit and process tests).
EXPLAIN_CONFIG = """\
listen: tcp:1975:interface=127.0.0.1
public_url: http://127.0.0.1:1975
mcp_path: /mcp
auth: {issuer: https://as.example}
backends:
  - name: prod
    url: http://127.0.0.1:3001/mcp
    tools: {exclude: [rm]}
  - name: vault
    url: http://127.0.0.1:3002/mcp
    required_scopes: [vault]
access:
  default: deny
  rules:
    - effect: allow
      claims: {realm_access.roles: mcp-admin}
    - effect: deny
      backends: [prod]
      methods: [tools/call]
    - effect: allow
      prompts: ["summar*"]
      resources: ["file:///docs/*"]
"""


#: The gateway's resource URL, the audience its tokens must name (RFC 8707, RFC 9068 §4).
RESOURCE = PUBLIC_URL + "/mcp"


def token_claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for this gateway; a value of None drops the claim."""
    return claims(**{"aud": RESOURCE, **overrides})


def good_token(**overrides: Any) -> str:
    return mint(token_claims(**overrides))
