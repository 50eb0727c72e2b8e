#!/usr/bin/env node
// aigw e2e: an MCP client on the official TypeScript SDK 1.x that logs in through OAuth.
//
// Usage: node e2e/ts-client.mjs --url http://127.0.0.1:PORT/mcp --user alice
//            [--password P] [--call TOOL --args '{"k":"v"}'] [--no-list]
//            [--scope "mcp:tools tools:call"] [--timeout-ms 30000]
//
// Prints JSON lines on stdout, one per event:
//   {"event":"authorized","authorization_url":..., "redirect":...}   (after headless login)
//   {"event":"connected","server":{name,version},"protocol":...}
//   {"event":"tools","tools":[...]}                 (all pages of tools/list)
//   {"event":"call","name":...,"result":{...}}      (CallToolResult, isError included)
//   {"event":"progress","progress":...,"total":...,"message":...}
//   {"event":"tokens","access_token":..., "refresh_token":..., "scope":...}
//   {"event":"error","message":..., "code":...}     (then exit status 1)
//
// The headless login talks to e2e/as.mjs over fetch with a hand-kept cookie jar: GET the
// authorization URL, POST /interaction/<uid>/login (username, password), follow the
// AS's redirects until one goes to the redirect URI, take the code. As INTEROP.md
// says, after transport.finishAuth(code) the SDK needs a new transport to reconnect.

import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    user: { type: 'string', default: 'alice' },
    password: { type: 'string' },
    call: { type: 'string' },
    args: { type: 'string', default: '{}' },
    'no-list': { type: 'boolean', default: false },
    scope: { type: 'string' },
    'timeout-ms': { type: 'string', default: '30000' },
    'redirect-uri': { type: 'string', default: 'http://127.0.0.1:9/callback' },
  },
});

const DEFAULT_PASSWORDS = { alice: 'alice-password', bob: 'bob-password' };
const password = opts.password ?? DEFAULT_PASSWORDS[opts.user] ?? '';
const timeoutMs = Number.parseInt(opts['timeout-ms'], 10);

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const killer = setTimeout(() => {
  emit({ event: 'error', message: `timeout after ${timeoutMs} ms` });
  process.exit(2);
}, timeoutMs);
killer.unref();

class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie?.() ?? []) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

async function headlessLogin(authorizationUrl, redirectUri) {
  const jar = new CookieJar();
  let url = authorizationUrl.toString();
  let posted = false;
  for (let hop = 0; hop < 10; hop += 1) {
    if (url.startsWith(redirectUri)) {
      const params = new URL(url).searchParams;
      if (params.get('error')) throw new Error(`authorization error ${params.get('error')}: ${params.get('error_description')}`);
      return { code: params.get('code'), redirect: url };
    }
    const u = new URL(url);
    const m = u.pathname.match(/^\/interaction\/([^/]+)$/);
    let response;
    if (m && !posted) {
      posted = true;
      response = await fetch(new URL(`/interaction/${m[1]}/login`, u), {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.header() },
        body: new URLSearchParams({ username: opts.user, password }).toString(),
      });
    } else {
      response = await fetch(u, { redirect: 'manual', headers: { cookie: jar.header() } });
    }
    jar.store(response);
    if (![302, 303].includes(response.status)) {
      throw new Error(`${u} answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
    }
    url = new URL(response.headers.get('location'), u).toString();
  }
  throw new Error('too many redirects during login');
}

class HeadlessOAuthProvider {
  constructor(redirectUri) {
    this._redirectUri = redirectUri;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this.pendingCode = undefined;
  }

  get redirectUrl() { return this._redirectUri; }

  get clientMetadata() {
    const meta = {
      client_name: `aigw-e2e-ts-${opts.user}`,
      redirect_uris: [this._redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
    if (opts.scope) meta.scope = opts.scope;
    return meta;
  }

  clientInformation() { return this._clientInformation; }

  saveClientInformation(info) { this._clientInformation = info; }

  tokens() { return this._tokens; }

  saveTokens(tokens) {
    this._tokens = tokens;
    emit({ event: 'tokens', access_token: tokens.access_token, refresh_token: tokens.refresh_token ?? null, scope: tokens.scope ?? null, expires_in: tokens.expires_in ?? null });
  }

  async redirectToAuthorization(authorizationUrl) {
    const { code, redirect } = await headlessLogin(authorizationUrl, this._redirectUri);
    this.pendingCode = code;
    emit({ event: 'authorized', authorization_url: authorizationUrl.toString(), redirect });
  }

  saveCodeVerifier(v) { this._codeVerifier = v; }

  codeVerifier() {
    if (!this._codeVerifier) throw new Error('no code verifier saved');
    return this._codeVerifier;
  }
}

async function connect(url, provider) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    const client = new Client({ name: 'aigw-e2e-ts-client', version: '1.0.0' }, { capabilities: {} });
    try {
      await client.connect(transport);
      return { client, transport };
    } catch (err) {
      if (err instanceof UnauthorizedError && provider.pendingCode) {
        const code = provider.pendingCode;
        provider.pendingCode = undefined;
        await transport.finishAuth(code);
        await transport.close().catch(() => {});
        continue; // a new transport is needed after finishAuth
      }
      throw err;
    }
  }
  throw new Error('could not connect after authorization');
}

async function main() {
  if (!opts.url) throw new Error('--url is required');
  const provider = new HeadlessOAuthProvider(opts['redirect-uri']);
  const { client, transport } = await connect(opts.url, provider);
  emit({ event: 'connected', server: client.getServerVersion() ?? null, protocol: transport.protocolVersion ?? null, session_id: transport.sessionId ?? null });
  if (!opts['no-list']) {
    const tools = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined);
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
    emit({ event: 'tools', tools });
  }
  if (opts.call) {
    const result = await client.callTool(
      { name: opts.call, arguments: JSON.parse(opts.args) },
      undefined,
      {
        timeout: timeoutMs,
        onprogress: (p) => emit({ event: 'progress', ...p }),
      },
    );
    emit({ event: 'call', name: opts.call, result });
  }
  await transport.terminateSession().catch(() => {});
  await client.close();
}

try {
  await main();
  process.exit(0);
} catch (err) {
  emit({ event: 'error', message: String(err?.message ?? err), code: err?.code ?? null, name: err?.name ?? null });
  process.exit(1);
}
