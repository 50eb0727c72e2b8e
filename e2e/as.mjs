#!/usr/bin/env node
// aigw end-to-end tests and demo: a real OAuth 2.1 authorization server (oidc-provider 9).
//
// Usage: node e2e/as.mjs [--port N] [--jwks FILE] [--access-token-ttl SECONDS]
//                        [--resource-scopes "mcp:tools tools:call"] [--users FILE]
//                        [--opaque-resource URL]... [--test-control]
//                        [--tls-cert PEM --tls-key PEM] [--exchange-issuer URL]...
// Every option also has an environment variable: AS_PORT, AS_JWKS, AS_ACCESS_TOKEN_TTL,
// AS_RESOURCE_SCOPES, AS_USERS (JSON file), AS_OPAQUE_RESOURCES (space separated),
// AS_TEST_CONTROL=1, AS_INTROSPECTION_CLIENT_ID / AS_INTROSPECTION_CLIENT_SECRET,
// AS_EXCHANGE_ISSUERS (space separated).
//
// It listens on 127.0.0.1 only, with issuer http://127.0.0.1:<port> (https with
// --tls-cert/--tls-key, AS_TLS_CERT/AS_TLS_KEY: an authorization server behind a
// private CA), and prints exactly one line "READY <issuer>" on stdout once it accepts
// connections.
//
// * Open dynamic client registration (POST /reg), PKCE S256 required for every client.
// * Resource indicators (RFC 8707): any http(s) resource gets a JWT access token with
//   aud = the resource and scope = requested ∩ resource scopes ∩ the user's scopes.
//   A resource listed as opaque gets an opaque token instead (for introspection tests).
//   An authorization request with a resource but none of the resource scopes asks for
//   all of them (RFC 6749 §3.3 default scope); the user's grant then decides.
// * Resource scopes are not OpenID scopes: they are kept out of the provider `scopes`,
//   dropped from a client's registered `scope` metadata (the Python SDK sends them
//   there), and advertised in `scopes_supported` of the discovery documents.
// * /.well-known/oauth-authorization-server (RFC 8414) is served as well as
//   /.well-known/openid-configuration, both with the same content.
// * Refresh tokens for every client allowed the refresh_token grant (public clients
//   included: PKCE is mandatory), whether or not offline_access was granted.
// * Login: GET /interaction/:uid is an HTML form; POST /interaction/:uid/login with
//   form fields username and password logs in and grants in one step (no separate
//   consent page). Any HTTP client with a cookie jar can do this headlessly, see
//   tests/e2e/harness/login.py.
// * --test-control: POST /__test__/rotate-keys?keep=1|0 makes a new RS256 signing key
//   (new kid) the active one, keeping the old public key in the JWKS when keep=1
//   (default) and dropping it when keep=0. Answers JSON {kid, kids}. Registered
//   clients, grants and refresh tokens survive (shared in-memory storage).
//   GET /__test__/keys returns {active, kids}.
// * Credentials for aigw's backends (tests/e2e/test_upstream_credentials.py): the
//   confidential client AS_UPSTREAM_CLIENT_ID / AS_UPSTREAM_CLIENT_SECRET (default
//   aigw-upstream / aigw-upstream-secret, client_secret_basic) may use the
//   client_credentials grant (RFC 6749 §4.4; a JWT for the `resource` asked for) and
//   RFC 8693 token exchange: a subject_token that is a valid access token of this
//   issuer becomes a JWT for the `resource` (else the `audience`) with the same sub
//   and scope (or the `scope` asked for, which the subject token must hold, else
//   invalid_scope: how the tests get a refused exchange), and `act: {sub: <client>}`
//   (RFC 8693 §4.1).  --exchange-issuer URL: a subject_token whose iss is URL is taken
//   too, when this server's keys signed it: another instance started with the same
//   --jwks (an exchange across two authorization servers, the user's and the backend's:
//   tests/e2e/test_token_private_ca.py).
//
// --profile keycloak (AS_PROFILE=keycloak): behave like Keycloak 26 where an MCP client
// can tell (tests/e2e/test_keycloak_profile.py; the Keycloak documentation and issues
// each point rests on are cited in README.md, "Keycloak"). The default profile is unchanged.
// * Issuer http://127.0.0.1:<port>/realms/<realm> (--realm, AS_REALM, default "aigw");
//   Keycloak's endpoint paths (/protocol/openid-connect/auth|token|certs|...,
//   /clients-registrations/openid-connect). Metadata at /realms/<realm>/.well-known/
//   openid-configuration and .../oauth-authorization-server, and at the RFC 8414
//   path-inserted /.well-known/oauth-authorization-server/realms/<realm> (Keycloak 26.4+,
//   keycloak#40923), but not at /.well-known/openid-configuration/realms/<realm>
//   (keycloak#45271); AS_KC_RFC8414=0 drops the path-inserted one (Keycloak before 26.4).
// * The `resource` parameter (RFC 8707) is ignored, as Keycloak ignores it: `aud` comes
//   from an "audience mapper" on the client scope mcp:tools: a token whose scope holds
//   mcp:tools gets aud = --kc-audience (AS_KC_AUDIENCE), the gateway's resource URL.
// * Access tokens: header typ "JWT" (not at+jwt), `azp` and no `client_id`, `sub` a UUID
//   per user (users file: optional "id"), no preferred_username (clients registered with a
//   `scope` get no profile scope), `scope` space separated.
// * JWKS answered with Cache-Control: no-cache (Keycloak's start-dev).
// * Anonymous registration: the "Allowed Client Scopes" policy: a `scope` outside
//   --kc-allowed-scopes (AS_KC_ALLOWED_SCOPES, default "mcp:tools") and the realm's
//   default/optional client scopes (openid is not one) answers 403 insufficient_scope
//   with Keycloak's body; the "Consent Required" policy: after the login page comes a
//   consent page (POST /realms/<realm>/interaction/<uid>/consent).
// * RFC 8693 token exchange as Keycloak 26's standard token exchange (V2) answers it
//   (keycloakTokenExchange: its checks in Keycloak's order, its error bodies and statuses):
//   only clients in --kc-exchange-clients (AS_KC_EXCHANGE_CLIENTS, default the upstream
//   client) have the "Standard token exchange" switch on; the subject token's aud must
//   name the requester (--kc-token-audience, AS_KC_TOKEN_AUDIENCE: client ids the mcp:tools
//   audience mapper adds); `audience` must be a client, one of --kc-clients (AS_KC_CLIENTS)
//   to be in the token; `resource` is ignored; access or ID tokens only (refresh refused);
//   the token: typ JWT, azp = the requester, aud narrowed to `audience`, no act.
//   AS_KC_TOKEN_EXCHANGE_V1=1: the legacy V1 feature on too (500 unknown_error without a
//   subject token; 403 for a client without V2's switch).

import {
  createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, sign, verify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.AS_PORT ?? '0' },
    jwks: { type: 'string', default: process.env.AS_JWKS },
    'access-token-ttl': { type: 'string', default: process.env.AS_ACCESS_TOKEN_TTL ?? '600' },
    'resource-scopes': {
      type: 'string',
      default: process.env.AS_RESOURCE_SCOPES ?? 'mcp:tools tools:call',
    },
    users: { type: 'string', default: process.env.AS_USERS },
    'opaque-resource': {
      type: 'string',
      multiple: true,
      default: (process.env.AS_OPAQUE_RESOURCES ?? '').split(/\s+/).filter(Boolean),
    },
    profile: { type: 'string', default: process.env.AS_PROFILE ?? 'default' },
    realm: { type: 'string', default: process.env.AS_REALM ?? 'aigw' },
    'kc-audience': { type: 'string', default: process.env.AS_KC_AUDIENCE },
    'kc-allowed-scopes': { type: 'string', default: process.env.AS_KC_ALLOWED_SCOPES ?? 'mcp:tools' },
    'kc-exchange-clients': { type: 'string', default: process.env.AS_KC_EXCHANGE_CLIENTS },
    'kc-clients': { type: 'string', default: process.env.AS_KC_CLIENTS ?? '' },
    'kc-token-audience': { type: 'string', default: process.env.AS_KC_TOKEN_AUDIENCE ?? '' },
    'tls-cert': { type: 'string', default: process.env.AS_TLS_CERT },
    'tls-key': { type: 'string', default: process.env.AS_TLS_KEY },
    'exchange-issuer': {
      type: 'string',
      multiple: true,
      default: (process.env.AS_EXCHANGE_ISSUERS ?? '').split(/\s+/).filter(Boolean),
    },
    'test-control': {
      type: 'boolean',
      default: ['1', 'true', 'yes'].includes((process.env.AS_TEST_CONTROL ?? '').toLowerCase()),
    },
  },
});

const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];
const RESOURCE_SCOPES = args['resource-scopes'].split(/\s+/).filter(Boolean);
const ACCESS_TOKEN_TTL = Number.parseInt(args['access-token-ttl'], 10);
const OPAQUE_RESOURCES = new Set(args['opaque-resource']);
const TEST_CONTROL = args['test-control'];
const KEYCLOAK = args.profile === 'keycloak';
if (!['default', 'keycloak'].includes(args.profile)) throw new Error(`unknown profile ${args.profile}`);
const REALM_PATH = KEYCLOAK ? `/realms/${args.realm}` : '';
const KC_AUDIENCE = args['kc-audience'];
if (KEYCLOAK && !KC_AUDIENCE) throw new Error('--profile keycloak needs --kc-audience (AS_KC_AUDIENCE)');
// Keycloak's built-in realm default and optional client scopes: the "Allowed Client Scopes"
// policy allows them ("Allow Default Scopes" on); `openid` is not a client scope.
const KC_REALM_SCOPES = ['acr', 'basic', 'email', 'profile', 'roles', 'web-origins',
  'address', 'phone', 'offline_access', 'microprofile-jwt', 'organization'];
const KC_ALLOWED_SCOPES = [...args['kc-allowed-scopes'].split(/\s+/).filter(Boolean), ...KC_REALM_SCOPES];
const KC_RFC8414 = !['0', 'false', 'no'].includes((process.env.AS_KC_RFC8414 ?? '1').toLowerCase());
const UPSTREAM_CLIENT_ID = process.env.AS_UPSTREAM_CLIENT_ID ?? 'aigw-upstream';
// Token exchange in the keycloak profile (see keycloakTokenExchange): the clients whose
// "Standard token exchange" switch is on (default: the upstream client), the realm's
// other clients (the backends an `audience` may name, all reachable through the
// requester's client scopes), the client ids the mcp:tools audience mapper adds to
// users' tokens besides --kc-audience, and whether the legacy V1 feature is on too.
const KC_EXCHANGE_CLIENTS = words(args['kc-exchange-clients'] ?? UPSTREAM_CLIENT_ID);
const KC_CLIENTS = words(args['kc-clients']);
const KC_TOKEN_AUDIENCE = words(args['kc-token-audience']);
const KC_EXCHANGE_V1 = ['1', 'true', 'yes'].includes((process.env.AS_KC_TOKEN_EXCHANGE_V1 ?? '').toLowerCase());

function words(text) {
  return (text ?? '').split(/\s+/).filter(Boolean);
}

// Demo users: alice may do everything, bob may list tools but not call them.
const USERS = args.users
  ? JSON.parse(readFileSync(args.users, 'utf8'))
  : {
    alice: { password: 'alice-password', scopes: [...RESOURCE_SCOPES] },
    bob: { password: 'bob-password', scopes: RESOURCE_SCOPES.filter((s) => s !== 'tools:call') },
  };

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `k-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

// Keycloak: a user's id (the token's sub) is a UUID; a users file may give it ("id").
function userUuid(name) {
  const given = USERS[name]?.id;
  if (given) return given;
  const h = createHash('sha256').update(`${args.realm}/${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
const ACCOUNT_OF = KEYCLOAK ? Object.fromEntries(Object.keys(USERS).map((n) => [userUuid(n), n])) : {};
function accountName(id) {
  return KEYCLOAK ? ACCOUNT_OF[id] : id;
}

let keys = args.jwks ? JSON.parse(readFileSync(args.jwks, 'utf8')).keys : [newSigningKey()];
const cookieKeys = [randomBytes(32).toString('hex')];

const TLS = Boolean(args['tls-cert']);
if (TLS !== Boolean(args['tls-key'])) throw new Error('--tls-cert and --tls-key go together');
const server = TLS
  ? https.createServer({ cert: readFileSync(args['tls-cert']), key: readFileSync(args['tls-key']) })
  : http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number.parseInt(args.port, 10), '127.0.0.1', resolve);
});
const ISSUER = `${TLS ? 'https' : 'http'}://127.0.0.1:${server.address().port}${REALM_PATH}`;
// The issuers whose access tokens a token exchange takes as subject_token.
const SUBJECT_ISSUERS = [ISSUER, ...args['exchange-issuer']];

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

function signJwt(payload, typ = 'at+jwt') {
  const key = keys[0];
  const header = { alg: 'RS256', typ, kid: key.kid };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = sign('RSA-SHA256', Buffer.from(input), createPrivateKey({ key, format: 'jwk' }));
  return `${input}.${signature.toString('base64url')}`;
}

// An access token signed with this server's keys by this issuer (or an --exchange-issuer:
// a JWT for some resource), still valid; else null.
function verifiedAccessToken(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    const jwk = keys.find((k) => k.kid === header.kid);
    if (!jwk || header.alg !== 'RS256') return null;
    const publicKey = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
    const good = verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, Buffer.from(parts[2], 'base64url'));
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url'));
    if (!good || !SUBJECT_ISSUERS.includes(payload.iss) || !(payload.exp > Date.now() / 1000)) return null;
    return payload;
  } catch {
    return null;
  }
}

// RFC 8693 §2: the user's access token (subject_token) for a token for a backend.
async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('subject_token_type must be an access token');
  }
  const requested = params.requested_token_type ?? ACCESS_TOKEN_TYPE;
  if (![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].includes(requested)) {
    throw new errors.InvalidRequest('unsupported requested_token_type');
  }
  const subject = verifiedAccessToken(params.subject_token);
  if (!subject) throw new errors.InvalidGrant('subject_token is not a valid access token');
  const held = (subject.scope ?? '').split(' ').filter(Boolean);
  const asked = (params.scope ?? '').split(' ').filter(Boolean);
  if (asked.some((s) => !held.includes(s))) {
    throw new errors.InvalidScope('the subject token does not hold the scope asked for', params.scope);
  }
  const audience = params.resource ?? params.audience;
  if (!audience) throw new errors.InvalidTarget('resource or audience is required');
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: ISSUER,
    sub: subject.sub,
    aud: audience,
    client_id: client.clientId,
    act: { sub: client.clientId },
    scope: asked.length ? asked.join(' ') : subject.scope,
    iat: now,
    exp: now + ACCESS_TOKEN_TTL,
    jti: randomUUID(),
  };
  ctx.body = {
    access_token: signJwt(payload),
    issued_token_type: requested,
    token_type: 'Bearer',
    expires_in: ACCESS_TOKEN_TTL,
    scope: payload.scope,
  };
}

// Keycloak's answer to a refused token request: {error, error_description}, the status
// its CorsErrorResponseException carries.
function kcRefuse(ctx, status, error, description) {
  ctx.status = status;
  ctx.body = description === undefined ? { error } : { error, error_description: description };
}

const KC_REFRESH_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:refresh_token';
const KC_ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
// The requester client's client scopes a `scope` may name: the realm's own, and the
// resource scopes (optional client scopes of the client).
const KC_REQUESTER_SCOPES = [...RESOURCE_SCOPES, ...KC_REALM_SCOPES];
// The realm's default client scopes that end up in `scope` (Keycloak: "profile email").
const KC_DEFAULT_TOKEN_SCOPES = ['profile', 'email'];

// Keycloak 26's standard token exchange (V2; on by default since 26.2), in the order of
// keycloak/keycloak services/.../protocol/oidc/tokenexchange/StandardTokenExchangeProvider.java
// and AbstractTokenExchangeProvider.java (exchangeClientToClient), with their error
// descriptions, statuses and codes verbatim. Documentation:
// https://www.keycloak.org/securing-apps/token-exchange#_standard-token-exchange
// Not imitated: consents, refresh tokens (the client switch "Allow refresh token in
// Standard Token Exchange" is off here, its default), sender-constrained subject tokens.
async function keycloakTokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  // supports(): V1-only parameters, the client's "Standard token exchange" switch
  // (Capability config; OIDCAdvancedConfigWrapper.isStandardTokenExchangeEnabled), then
  // the subject token. Unsupported: TokenExchangeGrantType answers 400 invalid_request
  // with the reason, unless the legacy V1 provider (preview feature `token-exchange`)
  // takes the request.
  let unsupported;
  for (const v1 of ['requested_subject', 'requested_issuer', 'subject_issuer']) {
    if (!unsupported && params[v1] !== undefined) unsupported = `Parameter '${v1}' is not supported for standard token exchange`;
  }
  if (!unsupported && !KC_EXCHANGE_CLIENTS.includes(client.clientId)) {
    unsupported = 'Standard token exchange is not enabled for the requested client';
  }
  if (!unsupported && !params.subject_token) unsupported = "Parameter 'subject_token' required for standard token exchange";
  if (!unsupported && !params.subject_token_type) unsupported = "Parameter 'subject_token_type' required for standard token exchange";
  if (!unsupported && params.subject_token_type !== ACCESS_TOKEN_TYPE) unsupported = "Parameter 'subject_token' supports access tokens only";
  if (unsupported) {
    if (!KC_EXCHANGE_V1) {
      kcRefuse(ctx, 400, 'invalid_request', unsupported);
      return;
    }
    // V1TokenExchangeProvider.supports() takes everything. Without a subject token it
    // issues a token to the client for no user and fails on the missing user session
    // (keycloak/keycloak#12951): HTTP 500 unknown_error. With one, for an `audience` of
    // another client, V1TokenExchangeProvider.validateAudience asks FGAP v1's
    // token-exchange permission on it (canExchangeTo), granted to no one here: 403.
    if (!params.subject_token) kcRefuse(ctx, 500, 'unknown_error');
    else kcRefuse(ctx, 403, 'access_denied', 'Client not allowed to exchange');
    return;
  }
  // processSubjectToken(): a valid access token of this realm, else "Invalid token".
  const subject = verifiedAccessToken(params.subject_token);
  if (!subject || subject.iss !== ISSUER) {
    kcRefuse(ctx, 400, 'invalid_request', 'Invalid token');
    return;
  }
  // getRequestedTokenType(): access (the default) and ID tokens; a refresh token only
  // with the client's refresh switch on (off here); anything else is unsupported.
  const requested = params.requested_token_type ?? ACCESS_TOKEN_TYPE;
  if (![ACCESS_TOKEN_TYPE, KC_ID_TOKEN_TYPE].includes(requested)) {
    kcRefuse(ctx, 400, 'invalid_request', 'requested_token_type unsupported');
    return;
  }
  // getTargetAudienceClients(): each `audience` must be a client of the realm.
  const audiences = [params.audience ?? []].flat();
  for (const audience of audiences) {
    const known = KC_CLIENTS.includes(audience) || audience === 'account' || await provider.Client.find(audience);
    if (!known) {
      kcRefuse(ctx, 400, 'invalid_client', 'Audience not found');
      return;
    }
  }
  // validateAudience(): no public client; the requester must be the subject token's
  // azp or in its aud (the documentation: "the requester client must be in the
  // audience of the subject token").
  if (client.tokenEndpointAuthMethod === 'none') {
    kcRefuse(ctx, 400, 'invalid_client', 'Public client is not allowed to exchange token');
    return;
  }
  const subjectAud = [subject.aud ?? []].flat();
  if (subject.azp !== client.clientId && !subjectAud.includes(client.clientId)) {
    kcRefuse(ctx, 403, 'access_denied', 'Client is not within the token audience');
    return;
  }
  // getRequestedScope(): `scope` names client scopes of the requester, as it is; the
  // token's scope comes from the requester's client scopes, not the subject token's.
  const asked = words(params.scope);
  if (asked.some((s) => !KC_REQUESTER_SCOPES.includes(s) && s !== 'openid')) {
    kcRefuse(ctx, 400, 'invalid_scope', `Invalid scopes: ${params.scope}`);
    return;
  }
  // checkRequestedAudiences(): an `audience` must be one the requester's client scopes
  // put in the token (here: the --kc-clients); the token's aud is narrowed to those
  // asked for, else it holds all of them.
  const missing = audiences.filter((a) => !KC_CLIENTS.includes(a));
  if (missing.length) {
    kcRefuse(ctx, 400, 'invalid_request', `Requested audience not available: ${missing.join(', ')}`);
    return;
  }
  const aud = audiences.length ? audiences : KC_CLIENTS;
  const now = Math.floor(Date.now() / 1000);
  const scope = [...new Set([...asked, ...KC_DEFAULT_TOKEN_SCOPES])].join(' ');
  const payload = {
    exp: now + ACCESS_TOKEN_TTL,
    iat: now,
    jti: randomUUID(),
    iss: ISSUER,
    ...(aud.length ? { aud: aud.length === 1 ? aud[0] : aud } : {}),
    sub: subject.sub,
    typ: requested === KC_ID_TOKEN_TYPE ? 'ID' : 'Bearer',
    azp: client.clientId,
    scope,
  };
  // AccessTokenResponse (RFC 8693 §2.2.1 plus Keycloak's own fields); an ID token goes
  // in access_token with token_type N_A.
  ctx.body = {
    access_token: signJwt(payload, 'JWT'),
    expires_in: ACCESS_TOKEN_TTL,
    refresh_expires_in: 0,
    token_type: requested === KC_ID_TOKEN_TYPE ? 'N_A' : 'Bearer',
    'not-before-policy': 0,
    scope,
    issued_token_type: requested,
  };
}

function isOpenIdScopeOnly(scope) {
  return OIDC_SCOPES.includes(scope);
}

// Keycloak's endpoint paths, and its access token shape (see the header comment).
function keycloakOptions() {
  return {
    routes: {
      authorization: '/protocol/openid-connect/auth',
      token: '/protocol/openid-connect/token',
      jwks: '/protocol/openid-connect/certs',
      userinfo: '/protocol/openid-connect/userinfo',
      introspection: '/protocol/openid-connect/token/introspect',
      revocation: '/protocol/openid-connect/revoke',
      end_session: '/protocol/openid-connect/logout',
      registration: '/clients-registrations/openid-connect',
    },
    formats: {
      customizers: {
        async jwt(_ctx, token, jwt) {
          const { payload } = jwt;
          jwt.header = { typ: 'JWT' };
          payload.azp = payload.client_id;
          delete payload.client_id;
          payload.typ = 'Bearer';
          const scopes = (payload.scope ?? '').split(' ');
          // The audience mapper of the client scope mcp:tools; Keycloak's own "account"
          // audience otherwise (oidc-provider needs some audience).
          // With --kc-token-audience, the mapper also names clients (the requester of a
          // standard token exchange must be in the subject token's aud).
          const mapped = KC_TOKEN_AUDIENCE.length ? [KC_AUDIENCE, ...KC_TOKEN_AUDIENCE] : KC_AUDIENCE;
          payload.aud = scopes.includes('mcp:tools') ? mapped : 'account';
          payload.sid = token.sessionUid;
        },
      },
    },
  };
}

function buildProvider(jwks) {
  const activeKid = jwks[0].kid;
  const provider = new Provider(ISSUER, {
    jwks: { keys: jwks },
    cookies: { keys: cookieKeys },
    scopes: OIDC_SCOPES,
    claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
    findAccount: async (_ctx, id) => (USERS[accountName(id)]
      ? { accountId: id, claims: async () => ({ sub: id, name: accountName(id), email: `${accountName(id)}@example.test` }) }
      : undefined),
    clients: [
      {
        // Confidential client for a resource server that introspects opaque tokens.
        client_id: process.env.AS_INTROSPECTION_CLIENT_ID ?? 'aigw-introspector',
        client_secret: process.env.AS_INTROSPECTION_CLIENT_SECRET ?? 'aigw-introspector-secret',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        // Confidential client for aigw's own tokens to its backends.
        client_id: UPSTREAM_CLIENT_ID,
        client_secret: process.env.AS_UPSTREAM_CLIENT_SECRET ?? 'aigw-upstream-secret',
        grant_types: ['client_credentials', TOKEN_EXCHANGE],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
    },
    // The Python SDK registers with scope="<resource scopes> offline_access": keep only
    // the OpenID scopes in the client's metadata; resource scopes are per-resource.
    extraClientMetadata: {
      properties: ['scope'],
      validator(_ctx, key, value, metadata) {
        if (key === 'scope' && typeof value === 'string') {
          const kept = value.split(' ').filter(isOpenIdScopeOnly);
          if (kept.length) metadata.scope = kept.join(' ');
          else delete metadata.scope;
        }
      },
    },
    pkce: { required: () => true },
    ...(KEYCLOAK ? keycloakOptions() : {}),
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true, initialAccessToken: false },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => (KEYCLOAK ? KC_AUDIENCE : oneOf ?? undefined),
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          const url = new URL(resource); // throws (invalid_target) on garbage
          if (!['http:', 'https:'].includes(url.protocol)) throw new Error('bad resource');
          if (OPAQUE_RESOURCES.has(resource)) {
            return {
              scope: RESOURCE_SCOPES.join(' '),
              audience: resource,
              accessTokenTTL: ACCESS_TOKEN_TTL,
              accessTokenFormat: 'opaque',
            };
          }
          return {
            scope: RESOURCE_SCOPES.join(' '),
            audience: resource,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256', kid: activeKid } },
          };
        },
      },
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 120,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 86400,
      IdToken: 3600,
    },
    clientBasedCORS: () => true,
    interactions: { url: (_ctx, interaction) => `${REALM_PATH}/interaction/${interaction.uid}` },
    discovery: {},
    renderError: async (ctx, out) => {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  });
  const exchangeParams = [
    'subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope',
  ];
  if (KEYCLOAK) {
    // Keycloak reads V1's parameters to refuse them in V2, and takes `audience` repeated.
    provider.registerGrantType(TOKEN_EXCHANGE, keycloakTokenExchange, [
      ...exchangeParams, 'requested_subject', 'requested_issuer', 'subject_issuer',
    ], ['audience']);
  } else {
    provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, exchangeParams);
  }
  provider.proxy = false;
  provider.use(async (ctx, next) => {
    // RFC 6749 §3.3 default scope: an authorization request for a resource that names
    // none of the resource scopes asks for all of them (the user's grant then decides).
    if (!KEYCLOAK && ctx.path === '/auth' && ctx.method === 'GET' && ctx.query.resource) {
      const query = { ...ctx.query };
      const asked = (typeof query.scope === 'string' ? query.scope : '').split(' ').filter(Boolean);
      if (!asked.some((s) => RESOURCE_SCOPES.includes(s))) {
        query.scope = [...asked, ...RESOURCE_SCOPES].join(' ');
        ctx.query = query;
      }
    }
    await next();
    // Advertise the resource scopes next to the OpenID ones.
    if (ctx.path === '/.well-known/openid-configuration' && ctx.body && ctx.status === 200) {
      ctx.body.scopes_supported = [...OIDC_SCOPES, ...RESOURCE_SCOPES];
    }
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  return provider;
}

let provider = buildProvider(keys);
let handler = provider.callback();

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('form too large');
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks).toString('utf8');
  if ((req.headers['content-type'] ?? '').includes('application/json')) return JSON.parse(body || '{}');
  return Object.fromEntries(new URLSearchParams(body));
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function loginPage(uid, params, error) {
  const scope = escapeHtml(params.scope ?? '');
  const resource = escapeHtml([params.resource ?? []].flat().join(' '));
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>aigw test AS: sign in</title></head>
<body>
<h1>Sign in</h1>
<p>Client <code>${escapeHtml(params.client_id)}</code> asks for <code>${scope}</code>
on <code>${resource}</code>.</p>
${error ? `<p style="color:#b00" id="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${REALM_PATH}/interaction/${escapeHtml(uid)}/login" id="login">
<label>User <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in and allow</button>
</form>
<p>Demo users: ${Object.keys(USERS).map(escapeHtml).join(', ')}.</p>
</body></html>
`;
}

async function finishLogin(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const form = await readForm(req);
  const user = USERS[form.username];
  if (!user || user.password !== form.password) {
    send(res, 401, 'text/html; charset=utf-8', loginPage(uid, details.params, 'invalid username or password'));
    return;
  }
  const { params } = details;
  const requested = (params.scope ?? '').split(' ').filter(Boolean);
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: form.username, clientId: params.client_id });
  const oidc = requested.filter(isOpenIdScopeOnly);
  if (oidc.length) grant.addOIDCScope(oidc.join(' '));
  const asked = requested.filter((s) => RESOURCE_SCOPES.includes(s));
  for (const resource of [params.resource ?? []].flat()) {
    const allowed = asked.filter((s) => user.scopes.includes(s));
    const denied = asked.filter((s) => !user.scopes.includes(s));
    if (allowed.length) grant.addResourceScope(resource, allowed.join(' '));
    if (denied.length) grant.rejectResourceScope(resource, denied.join(' '));
    if (!allowed.length && !denied.length) grant.addResourceScope(resource, '');
  }
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: form.username }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

// Keycloak profile: the login page logs in only; the "Consent Required" registration
// policy then shows a consent page for the scopes asked for.
function consentPage(uid, params) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>aigw test AS (Keycloak profile): grant access</title></head>
<body>
<h1>Grant access to ${escapeHtml(params.client_id)}</h1>
<p>Scopes: <code>${escapeHtml(params.scope ?? '')}</code></p>
<form method="post" action="${REALM_PATH}/interaction/${escapeHtml(uid)}/consent" id="consent">
<button type="submit" name="accept" value="yes">Yes</button>
</form>
</body></html>
`;
}

async function interaction(req, res, m) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== m[1]) throw new Error('interaction mismatch');
  if (req.method === 'GET' && !m[2]) {
    const page = details.prompt.name === 'login' ? loginPage : consentPage;
    send(res, 200, 'text/html; charset=utf-8', page(details.uid, details.params));
    return;
  }
  if (req.method === 'POST' && m[2] === '/login') {
    const form = await readForm(req);
    const user = USERS[form.username];
    if (!user || user.password !== form.password) {
      send(res, 401, 'text/html; charset=utf-8', loginPage(details.uid, details.params, 'invalid username or password'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: userUuid(form.username) } }, { mergeWithLastSubmission: false });
    return;
  }
  if (req.method === 'POST' && m[2] === '/consent') {
    await readForm(req);
    const { params, session } = details;
    const user = USERS[accountName(session.accountId)];
    const requested = (params.scope ?? '').split(' ').filter(Boolean);
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const oidc = requested.filter(isOpenIdScopeOnly);
    if (oidc.length) grant.addOIDCScope(oidc.join(' '));
    const asked = requested.filter((s) => RESOURCE_SCOPES.includes(s));
    const allowed = asked.filter((s) => user.scopes.includes(s));
    const denied = asked.filter((s) => !user.scopes.includes(s));
    grant.addResourceScope(KC_AUDIENCE, allowed.join(' '));
    if (denied.length) grant.rejectResourceScope(KC_AUDIENCE, denied.join(' '));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  send(res, 405, 'text/plain', 'method not allowed');
}

async function testControl(req, res, url) {
  if (req.method === 'POST' && url.pathname === '/__test__/rotate-keys') {
    const keep = !['0', 'false', 'no'].includes(url.searchParams.get('keep') ?? '1');
    const fresh = newSigningKey();
    keys = keep ? [fresh, ...keys] : [fresh];
    provider = buildProvider(keys);
    handler = provider.callback();
    send(res, 200, 'application/json', JSON.stringify({ kid: fresh.kid, kids: keys.map((k) => k.kid) }));
    return;
  }
  if (req.method === 'GET' && url.pathname === '/__test__/keys') {
    send(res, 200, 'application/json', JSON.stringify({ active: keys[0].kid, kids: keys.map((k) => k.kid) }));
    return;
  }
  send(res, 404, 'application/json', '{"error":"not_found"}');
}

// Keycloak's "Allowed Client Scopes" anonymous registration policy
// (ClientRegistrationPolicyException: 403 insufficient_scope).
async function keycloakRegistration(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const raw = Buffer.concat(chunks);
  let body = {};
  try {
    body = JSON.parse(raw.toString('utf8') || '{}');
  } catch {
    body = {};
  }
  const asked = (typeof body.scope === 'string' ? body.scope : '').split(' ').filter(Boolean);
  if (asked.some((s) => !KC_ALLOWED_SCOPES.includes(s))) {
    res.writeHead(403, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({
      error: 'insufficient_scope',
      error_description: "Policy 'Allowed Client Scopes' rejected request to client-registration service. Details: Not permitted to use specified clientScope",
    }));
    return;
  }
  // Hand the body on to oidc-provider.
  const { Readable } = await import('node:stream');
  const replay = Readable.from([raw]);
  Object.assign(replay, { headers: req.headers, method: req.method, url: req.url, originalUrl: req.originalUrl, socket: req.socket, connection: req.socket, httpVersion: req.httpVersion });
  handler(replay, res);
}

// Keycloak ignores RFC 8707's resource parameter: drop it from the query and the form.
function dropResourceFromQuery(req) {
  const url = new URL(req.url, 'http://x');
  if (!url.searchParams.has('resource')) return;
  url.searchParams.delete('resource');
  req.url = `${url.pathname}${url.search}`;
  req.originalUrl = `${REALM_PATH}${req.url}`;
}

async function keycloakRequest(req, res, url) {
  const path = url.pathname;
  const rfc8414 = `/.well-known/oauth-authorization-server${REALM_PATH}`;
  if (path === rfc8414 && KC_RFC8414) {
    req.originalUrl = `${REALM_PATH}/.well-known/openid-configuration${url.search}`;
    req.url = `/.well-known/openid-configuration${url.search}`;
    handler(req, res);
    return;
  }
  if (!path.startsWith(`${REALM_PATH}/`)) {
    send(res, 404, 'application/json', '{"error":"Unable to find matching target resource method"}');
    return;
  }
  let inner = path.slice(REALM_PATH.length);
  if (inner === '/.well-known/oauth-authorization-server') inner = '/.well-known/openid-configuration';
  req.originalUrl = `${REALM_PATH}${inner}${url.search}`;
  req.url = `${inner}${url.search}`;
  if (inner === '/protocol/openid-connect/certs') {
    const writeHead = res.writeHead.bind(res);
    res.writeHead = (status, ...rest) => {
      res.setHeader('cache-control', 'no-cache');
      return writeHead(status, ...rest);
    };
  }
  if (inner.startsWith('/protocol/openid-connect/auth')) dropResourceFromQuery(req);
  if (inner === '/clients-registrations/openid-connect' && req.method === 'POST') {
    await keycloakRegistration(req, res);
    return;
  }
  if (inner === '/protocol/openid-connect/token' && req.method === 'POST') {
    await keycloakToken(req, res);
    return;
  }
  const m = inner.match(/^\/interaction\/([^/]+)(\/login|\/consent)?$/);
  if (m) {
    await interaction(req, res, m);
    return;
  }
  handler(req, res);
}

async function keycloakToken(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  form.delete('resource');
  const raw = Buffer.from(form.toString());
  const { Readable } = await import('node:stream');
  const replay = Readable.from([raw]);
  const headers = { ...req.headers, 'content-length': String(raw.length) };
  Object.assign(replay, { headers, method: req.method, url: req.url, originalUrl: req.originalUrl, socket: req.socket, connection: req.socket, httpVersion: req.httpVersion });
  handler(replay, res);
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, ISSUER);
  try {
    if (KEYCLOAK) {
      await keycloakRequest(req, res, url);
      return;
    }
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      req.url = `/.well-known/openid-configuration${url.search}`;
      handler(req, res);
      return;
    }
    if (TEST_CONTROL && url.pathname.startsWith('/__test__/')) {
      await testControl(req, res, url);
      return;
    }
    const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (m) {
      if (req.method === 'GET' && !m[2]) {
        const details = await provider.interactionDetails(req, res);
        send(res, 200, 'text/html; charset=utf-8', loginPage(details.uid, details.params));
        return;
      }
      if (req.method === 'POST' && m[2]) {
        await finishLogin(req, res, m[1]);
        return;
      }
      send(res, 405, 'text/plain', 'method not allowed');
      return;
    }
    handler(req, res);
  } catch (err) {
    if (!res.headersSent) {
      send(res, 400, 'application/json', JSON.stringify({ error: 'interaction_failed', error_description: String(err?.message ?? err), id: randomUUID() }));
    } else {
      res.destroy();
    }
  }
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}

process.stdout.write(`READY ${ISSUER}\n`);
