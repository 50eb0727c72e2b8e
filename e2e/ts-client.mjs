#!/usr/bin/env node
// aigw e2e: an MCP client on the official TypeScript SDK 1.x that logs in through OAuth.
//
// Usage: node e2e/ts-client.mjs --url http://127.0.0.1:PORT/mcp --user alice
//            [--password P] [--call TOOL --args '{"k":"v"}'] [--no-list]
//            [--scope "mcp:tools tools:call"] [--timeout-ms 30000]
//            [--sampling] [--capabilities '{"elicitation":{...},"roots":{}}']
//            [--script '[{"op":...}, ...]']
//
// --sampling declares the sampling capability and answers sampling/createMessage with
// the text "four" (event "sampling"). --capabilities declares more client capabilities:
// with elicitation, form requests are accepted with {"name":"Ada"} and URL ones accepted
// (event "elicitation"); with roots, roots/list answers file:///work/e2e (event "roots").
// --script runs these steps in order after the optional --call (one login for several
// checks):
//   {"op":"tools"}                                  -> "tools"
//   {"op":"call","name":N,"args":{},"progress":true} -> "call" (or "call-error")
//   {"op":"prompts","prefix":"py__"}                -> "prompts", then "prompt" (prompts/get
//                                                      of the first with that prefix)
//   {"op":"resources","prefix":"aigw:py/"}          -> "resources", then "read"
//   {"op":"subscribe","uri":U}                      -> "subscribed" (or "subscribe-error")
//   {"op":"notify","method":M,"trigger":{"name":N,"args":{}},"tries":20,"waitMs":500}
//       calls the trigger tool until notification M arrives -> "notified" (or "error")
//   {"op":"cancel","name":N,"args":{},"afterMs":700[,"stats":STATS_TOOL]}
//       aborts the call after afterMs (the SDK sends notifications/cancelled) -> "aborted";
//       with "stats", polls that tool (JSON {"cancelled":n}) until n grows -> "cancelled"
//   {"op":"set-level","level":"warning"}            -> "level-set" (or "level-error")
//   {"op":"pause"}                                  -> "paused", waits for a line on stdin
//
// Prints JSON lines on stdout, one per event:
//   {"event":"authorized","authorization_url":..., "redirect":...}   (after headless login)
//   {"event":"connected","server":{name,version},"protocol":...}
//   {"event":"tools","tools":[...]}                 (all pages of tools/list)
//   {"event":"call","name":...,"result":{...}}      (CallToolResult, isError included)
//   {"event":"progress","progress":...,"total":...,"message":...}
//   {"event":"tokens","access_token":..., "refresh_token":..., "scope":...}
//   {"event":"notification","method":...,"params":...} (any other server notification)
//   {"event":"error","message":..., "code":...}     (then exit status 1)
//   {"event":"transport-error","message":...}       (the SDK's onerror, which goes on: a
//                                                      lost GET stream, a failed reconnect)
//
// The headless login talks to e2e/as.mjs over fetch with a hand-kept cookie jar: GET the
// authorization URL, POST /interaction/<uid>/login (username, password), follow the
// AS's redirects until one goes to the redirect URI, take the code. As INTEROP.md
// says, after transport.finishAuth(code) the SDK needs a new transport to reconnect.

import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { createInterface } from 'node:readline';

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
    sampling: { type: 'boolean', default: false },
    capabilities: { type: 'string', default: '{}' },
    script: { type: 'string' },
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

// The client capabilities of --capabilities (sampling comes from --sampling).
const declared = JSON.parse(opts.capabilities);

async function connect(url, provider) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    const capabilities = { ...declared, ...(opts.sampling ? { sampling: {} } : {}) };
    const client = new Client({ name: 'aigw-e2e-ts-client', version: '1.0.0' }, { capabilities });
    watch(client);
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

// Server notifications seen so far (besides progress), and who waits for the next one.
const seen = [];
let waiters = [];

function watch(client) {
  client.onerror = (err) => emit({ event: 'transport-error', message: String(err?.message ?? err) });
  client.fallbackNotificationHandler = async (notification) => {
    seen.push(notification);
    emit({ event: 'notification', method: notification.method, params: notification.params ?? null });
    for (const waiter of waiters) waiter();
  };
  if (declared.elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      emit({ event: 'elicitation', params: request.params });
      if (request.params.mode === 'url') return { action: 'accept' };
      return { action: 'accept', content: { name: 'Ada' } };
    });
  }
  if (declared.roots) {
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      emit({ event: 'roots' });
      return { roots: [{ uri: 'file:///work/e2e' }] };
    });
  }
  if (opts.sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      emit({ event: 'sampling', params: request.params });
      return { role: 'assistant', content: { type: 'text', text: 'four' }, model: 'aigw-e2e' };
    });
  }
}

function nextNotification(method, from, ms) {
  return new Promise((resolve) => {
    let timer;
    const check = () => {
      const found = seen.slice(from).find((n) => n.method === method);
      if (found) { done(); resolve(found); }
    };
    const done = () => { clearTimeout(timer); waiters = waiters.filter((w) => w !== check); };
    timer = setTimeout(() => { done(); resolve(null); }, ms);
    waiters.push(check);
    check();
  });
}

function errorEvent(event, name, err) {
  return { event, name, message: String(err?.message ?? err), code: err?.code ?? null, data: err?.data ?? null };
}

async function allPages(list, key) {
  const items = [];
  let cursor;
  do {
    const page = await list(cursor ? { cursor } : undefined);
    items.push(...page[key]);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

async function cancelledCount(client, stats) {
  const result = await client.callTool({ name: stats, arguments: {} });
  return JSON.parse(result.content[0].text).cancelled;
}

let stdinLines;

const STEPS = {
  async tools(client) {
    emit({ event: 'tools', tools: await allPages((p) => client.listTools(p), 'tools') });
  },
  async call(client, step) {
    try {
      const result = await client.callTool({ name: step.name, arguments: step.args ?? {} }, undefined, {
        timeout: timeoutMs,
        onprogress: step.progress ? (p) => emit({ event: 'progress', ...p }) : undefined,
      });
      emit({ event: 'call', name: step.name, result });
    } catch (err) {
      emit(errorEvent('call-error', step.name, err));
    }
  },
  async prompts(client, step) {
    const prompts = await allPages((p) => client.listPrompts(p), 'prompts');
    emit({ event: 'prompts', prompts });
    const mine = prompts.find((p) => p.name.startsWith(step.prefix));
    if (!mine) return;
    const args = Object.fromEntries((mine.arguments ?? []).filter((a) => a.required).map((a) => [a.name, 'Ada']));
    emit({ event: 'prompt', name: mine.name, result: await client.getPrompt({ name: mine.name, arguments: args }) });
  },
  async resources(client, step) {
    const resources = await allPages((p) => client.listResources(p), 'resources');
    emit({ event: 'resources', resources });
    const mine = resources.find((r) => r.uri.startsWith(step.prefix));
    if (!mine) return;
    emit({ event: 'read', uri: mine.uri, result: await client.readResource({ uri: mine.uri }) });
  },
  async subscribe(client, step) {
    try {
      await client.subscribeResource({ uri: step.uri });
      emit({ event: 'subscribed', uri: step.uri });
    } catch (err) {
      emit(errorEvent('subscribe-error', step.uri, err));
    }
  },
  async notify(client, step) {
    for (let i = 0; i < (step.tries ?? 20); i += 1) {
      const from = seen.length;
      await client.callTool({ name: step.trigger.name, arguments: step.trigger.args ?? {} });
      const found = await nextNotification(step.method, from, step.waitMs ?? 500);
      if (found) {
        emit({ event: 'notified', method: found.method, params: found.params ?? null });
        return;
      }
    }
    throw new Error(`no ${step.method} arrived`);
  },
  async cancel(client, step) {
    const before = step.stats ? await cancelledCount(client, step.stats) : null;
    const controller = new AbortController();
    setTimeout(() => controller.abort('aigw-e2e abort'), step.afterMs ?? 700);
    try {
      await client.callTool({ name: step.name, arguments: step.args ?? {} }, undefined, {
        signal: controller.signal, timeout: timeoutMs,
      });
      emit({ event: 'error', message: `${step.name} finished before the abort` });
      return;
    } catch (err) {
      emit(errorEvent('aborted', step.name, err));
    }
    if (!step.stats) return;
    for (let i = 0; i < 100; i += 1) {
      const after = await cancelledCount(client, step.stats);
      if (after > before) {
        emit({ event: 'cancelled', before, after });
        return;
      }
      await new Promise((resolve) => { setTimeout(resolve, 100); });
    }
    throw new Error(`${step.stats}: cancelled stayed ${before}`);
  },
  async 'set-level'(client, step) {
    try {
      await client.setLoggingLevel(step.level);
      emit({ event: 'level-set', level: step.level });
    } catch (err) {
      emit(errorEvent('level-error', step.level, err));
    }
  },
  async pause() {
    stdinLines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    emit({ event: 'paused' });
    await stdinLines.next();
  },
};

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
  for (const step of opts.script ? JSON.parse(opts.script) : []) {
    await STEPS[step.op](client, step);
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
