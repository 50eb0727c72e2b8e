#!/usr/bin/env node
// aigw e2e: an MCP server on the official TypeScript SDK 1.x whose GET stream can be
// resumed (2025-11-25 basic/transports "Resumability and Redelivery").
//
// Usage: node e2e/resumable.mjs --port N     (prints "READY http://127.0.0.1:N/mcp")
//
// Streamable HTTP with sessions, the SDK's StreamableHTTPServerTransport and an event
// store that keeps each stream's events in order: a GET with Last-Event-ID gets the
// events of that stream after it, then the live ones. The SDK allows one GET stream
// per session: a second (resuming or not) while it holds the first gets 409 (logged
// on stderr as "transport error: Conflict: ..."). server-everything's own store does
// not do for this: its replayEventsAfter answers an event id where the SDK wants the
// stream id, so a resumed GET stream of it gets no live message.
//
// Tools: notify {n} sends notifications/message (level info, data {n}) on the
// session's GET stream, and answers "sent n"; ping pings the peer on the session's GET
// stream (Server.ping(), basic/utilities/ping) and answers "pong <result>" or
// "error <code> <data>".

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const { values: opts } = parseArgs({ options: { port: { type: 'string' } } });

/** The last MAX_EVENTS events of every stream of one session, oldest first. */
const MAX_EVENTS = 1000;

class OrderedEventStore {
  events = [];
  next = 1;

  async storeEvent(streamId, message) {
    const eventId = `${streamId}:${this.next++}`;
    this.events.push({ eventId, streamId, message });
    if (this.events.length > MAX_EVENTS) this.events.shift();
    return eventId;
  }

  async getStreamIdForEventId(eventId) {
    return this.events.find((event) => event.eventId === eventId)?.streamId;
  }

  async replayEventsAfter(lastEventId, { send }) {
    const at = this.events.findIndex((event) => event.eventId === lastEventId);
    if (at === -1) return '';
    const { streamId } = this.events[at];
    for (const event of this.events.slice(at + 1)) {
      if (event.streamId === streamId) await send(event.eventId, event.message);
    }
    return streamId;
  }
}

const NOTIFY = {
  name: 'notify',
  description: 'Send {n} on the GET stream',
  inputSchema: { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] },
};

const PING = {
  name: 'ping',
  description: "Ping the peer on the session's GET stream",
  inputSchema: { type: 'object', properties: {} },
};

const said = (text) => ({ content: [{ type: 'text', text }] });

/** Server.ping() has no related request: the SDK sends it on the GET stream. */
async function ping(server) {
  try {
    return said(`pong ${JSON.stringify(await server.ping())}`);
  } catch (error) {
    return said(`error ${error.code} ${JSON.stringify(error.data)}`);
  }
}

function newServer() {
  const server = new Server(
    { name: 'resumable', version: '1.0.0' },
    { capabilities: { logging: {}, tools: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [NOTIFY, PING] }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    if (request.params.name === 'ping') return ping(server);
    const n = request.params.arguments?.n;
    await server.sendLoggingMessage({ level: 'info', data: { n } });
    return said(`sent ${n}`);
  });
  return server;
}

const transports = new Map();

async function handle(req, res) {
  const sessionId = req.headers['mcp-session-id'];
  let transport = sessionId ? transports.get(sessionId) : undefined;
  if (!transport && !sessionId && req.method === 'POST') {
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: new OrderedEventStore(),
      onsessioninitialized: (id) => transports.set(id, transport),
    });
    transport.onerror = (error) => console.error(`transport error: ${error.message}`);
    transport.onclose = () => transports.delete(transport.sessionId);
    await newServer().connect(transport);
  }
  if (!transport) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}');
    return;
  }
  if (req.method === 'GET') {
    console.error(`GET stream, Last-Event-ID ${req.headers['last-event-id'] ?? '(none)'}`);
  }
  await transport.handleRequest(req, res);
}

const httpServer = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    console.error(`request failed: ${error.message}`);
    if (!res.headersSent) res.writeHead(500).end();
  });
});
httpServer.listen(Number(opts.port), '127.0.0.1', () => {
  console.log(`READY http://127.0.0.1:${opts.port}/mcp`);
});
