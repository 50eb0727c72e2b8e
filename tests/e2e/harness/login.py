"""Headless login at the test authorization server (``e2e/as.mjs``), purely over HTTP.

How it works (no browser, no JavaScript):

1. ``GET <authorization URL>`` (the ``/auth?...`` URL a client builds: client_id,
   redirect_uri, code_challenge, state, resource, scope, ...). oidc-provider answers
   303 to ``/interaction/<uid>`` and sets the ``_interaction`` and
   ``_interaction_resume`` cookies.
2. ``GET /interaction/<uid>`` answers 200 with a tiny HTML form (what a human sees in
   the demo). Fetching it is optional for a script.
3. ``POST /interaction/<uid>/login`` with form fields ``username`` and ``password``
   (``application/x-www-form-urlencoded``), sending the cookies. The AS logs the user
   in and grants the requested scopes the user is allowed (the rest are rejected) in
   one step, then answers 303 to ``/auth/<uid>`` (the resume URL). A wrong password
   answers 401 with the form again. (The Keycloak profile, like Keycloak's "Consent
   Required" registration policy, then sends the browser to a second interaction: a
   consent page, ``POST <interaction URL>/consent``; its paths start ``/realms/<realm>``.)
4. ``GET /auth/<uid>`` with the cookies answers 303 to
   ``<redirect_uri>?code=...&state=...&iss=<issuer>``.

So: any HTTP client with a cookie jar that follows redirects on the AS and stops at
the first ``Location`` that starts with the client's ``redirect_uri`` gets the code.
:func:`authorize` does exactly that with ``httpx2`` (the HTTP library of ``mcp`` 2.x;
its API is httpx's) and never contacts the redirect URI.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2

# Passwords of the built-in demo users of e2e/as.mjs.
USERS: dict[str, str] = {"alice": "alice-password", "bob": "bob-password"}


class LoginError(RuntimeError):
    pass


@dataclass(frozen=True)
class AuthorizationResponse:
    code: str
    state: str | None
    iss: str | None
    redirect: str


def _interaction_uid(path: str) -> str | None:
    """``<uid>`` of ``[/realms/<realm>]/interaction/<uid>`` (the Keycloak profile's prefix)."""
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[0] == "realms":
        parts = parts[2:]
    if len(parts) == 2 and parts[0] == "interaction":
        return parts[1]
    return None


async def authorize(
    authorization_url: str,
    username: str,
    password: str | None = None,
    *,
    redirect_uri: str | None = None,
    http_timeout: float = 10.0,
    max_hops: int = 10,
    ca_file: str | None = None,
) -> AuthorizationResponse:
    """Log ``username`` in at the AS and return the code from the redirect.

    ``redirect_uri`` defaults to the ``redirect_uri`` query parameter of
    ``authorization_url``. ``password`` defaults to the demo password of the user.
    Raises :class:`LoginError` when the AS answers with an error instead.
    ``ca_file``: the only CA an ``https`` AS is checked with (else the system's roots).
    """
    if password is None:
        password = USERS[username]
    if redirect_uri is None:
        redirect_uri = parse_qs(urlsplit(authorization_url).query)["redirect_uri"][0]
    verify = True if ca_file is None else ssl.create_default_context(cafile=ca_file)
    async with httpx2.AsyncClient(
        follow_redirects=False, timeout=http_timeout, verify=verify
    ) as http:
        url = authorization_url
        posted = False
        for _ in range(max_hops):
            if url.startswith(redirect_uri):
                query = parse_qs(urlsplit(url).query)
                if "error" in query:
                    raise LoginError(
                        f"authorization error {query['error'][0]}: "
                        f"{query.get('error_description', [''])[0]}"
                    )
                if "code" not in query:
                    raise LoginError(f"no code in redirect {url}")
                return AuthorizationResponse(
                    code=query["code"][0],
                    state=query.get("state", [None])[0],
                    iss=query.get("iss", [None])[0],
                    redirect=url,
                )
            uid = _interaction_uid(urlsplit(url).path)
            if uid is not None and not posted:
                login_url = urljoin(url, f"{urlsplit(url).path}/login")
                response = await http.post(
                    login_url, data={"username": username, "password": password}
                )
                posted = True
            elif uid is not None:
                # Keycloak profile: a consent page after the login ("Consent Required").
                page = await http.get(url)
                if page.status_code != 200 or 'id="consent"' not in page.text:
                    raise LoginError(f"GET {url} answered {page.status_code}: {page.text[:500]}")
                response = await http.post(f"{url}/consent", data={"accept": "yes"})
            else:
                response = await http.get(url)
            if response.status_code not in (302, 303):
                raise LoginError(
                    f"{response.request.method} {response.request.url} answered "
                    f"{response.status_code}: {response.text[:500]}"
                )
            url = urljoin(str(response.request.url), response.headers["location"])
        raise LoginError(f"too many redirects, last {url}")
