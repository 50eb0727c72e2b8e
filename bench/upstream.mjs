// A minimal, fast reference MCP server for the benchmark (Streamable HTTP,
// JSON responses only, no SDK), so that the upstream is never the bottleneck.
//
//   node bench/upstream.mjs [port] [--hold-streams]
//                                       (port 0 or absent: any free port)
//
// Prints "LISTENING <port>" on stdout once it accepts connections.
// Methods: initialize (issues an Mcp-Session-Id), notifications/* (202),
// ping, tools/list (one `echo` tool), tools/call echo (JSON result).
// GET /mcp: 405 (no server-initiated stream), or with --hold-streams an SSE
// stream that stays open and quiet (bench/scale.py counts them).
// GET /stats: {"sessions": <live session ids>, "open_streams": <GET streams open>}.
import http from "node:http";
import crypto from "node:crypto";

const PROTOCOL = "2025-11-25";
const TOOLS = [
  {
    name: "echo",
    description: "Echo the given message back.",
    inputSchema: {
      type: "object",
      properties: { message: { type: "string" } },
      required: ["message"],
    },
  },
];
const sessions = new Set();
const holdStreams = process.argv.includes("--hold-streams");
let openStreams = 0;
const MAX_BODY = 4 * 1024 * 1024;

function send(res, status, obj, headers = {}) {
  const body = obj === undefined ? "" : JSON.stringify(obj);
  const h = { ...headers };
  if (body) {
    h["Content-Type"] = "application/json";
  }
  h["Content-Length"] = Buffer.byteLength(body);
  res.writeHead(status, h);
  res.end(body);
}

function rpcError(id, code, message) {
  return { jsonrpc: "2.0", id: id ?? null, error: { code, message } };
}

function handle(msg, sid, res) {
  if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
    return send(res, 400, rpcError(null, -32600, "Invalid Request"));
  }
  const { id, method, params } = msg;
  if (id === undefined) {
    // notification or response: accepted, nothing to say
    return send(res, 202);
  }
  if (method === "initialize") {
    const newSid = crypto.randomUUID();
    sessions.add(newSid);
    return send(
      res,
      200,
      {
        jsonrpc: "2.0",
        id,
        result: {
          protocolVersion: params?.protocolVersion || PROTOCOL,
          capabilities: { tools: { listChanged: false } },
          serverInfo: { name: "bench-upstream", version: "1.0.0" },
        },
      },
      { "Mcp-Session-Id": newSid },
    );
  }
  if (sid === undefined || !sessions.has(sid)) {
    return send(res, sid === undefined ? 400 : 404, rpcError(id, -32001, "unknown session"));
  }
  switch (method) {
    case "ping":
      return send(res, 200, { jsonrpc: "2.0", id, result: {} });
    case "tools/list":
      return send(res, 200, { jsonrpc: "2.0", id, result: { tools: TOOLS } });
    case "tools/call": {
      if (params?.name !== "echo") {
        return send(res, 200, rpcError(id, -32602, `unknown tool ${params?.name}`));
      }
      const text = String(params?.arguments?.message ?? "");
      return send(res, 200, {
        jsonrpc: "2.0",
        id,
        result: { content: [{ type: "text", text }], isError: false },
      });
    }
    default:
      return send(res, 200, rpcError(id, -32601, `method not found: ${method}`));
  }
}

const server = http.createServer((req, res) => {
  const path = req.url.split("?", 1)[0];
  if (path === "/stats" && req.method === "GET") {
    return send(res, 200, { sessions: sessions.size, open_streams: openStreams });
  }
  if (path !== "/mcp") {
    return send(res, 404, { error: "not found" });
  }
  const sid = req.headers["mcp-session-id"];
  if (req.method === "DELETE") {
    if (sid !== undefined) sessions.delete(sid);
    return send(res, 200);
  }
  if (req.method === "GET" && holdStreams && sid !== undefined && sessions.has(sid)) {
    // an open, quiet stream: what a server with nothing to say yet holds
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
    res.write(": open\n\n");
    openStreams += 1;
    res.on("close", () => {
      openStreams -= 1;
    });
    return;
  }
  if (req.method === "GET") {
    // no server-initiated stream
    return send(res, 405, undefined, { Allow: "POST, DELETE" });
  }
  if (req.method !== "POST") {
    return send(res, 405, undefined, { Allow: "POST, DELETE" });
  }
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_BODY) {
      send(res, 413, rpcError(null, -32600, "body too large"));
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on("end", () => {
    if (res.headersSent) return;
    let msg;
    try {
      msg = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(res, 400, rpcError(null, -32700, "Parse error"));
    }
    if (Array.isArray(msg)) {
      return send(res, 400, rpcError(null, -32600, "batches are not supported"));
    }
    handle(msg, sid, res);
  });
});
server.keepAliveTimeout = 65000;
server.headersTimeout = 66000;
const port = Number(process.argv.slice(2).find((a) => !a.startsWith("--")) || 0);
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => process.exit(0));
}
