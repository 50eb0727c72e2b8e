// Preload (node --require ./e2e/loopback.cjs ...) that makes servers which call
// listen(port) without a host bind 127.0.0.1 instead of every interface.
// server-everything's streamableHttp transport does `app.listen(PORT)` and has no
// HOST setting; this keeps it off external interfaces in tests and the demo.
'use strict';
const net = require('node:net');

const HOST = process.env.LOOPBACK_HOST || '127.0.0.1';
const original = net.Server.prototype.listen;

net.Server.prototype.listen = function listen(...args) {
  const [first, second] = args;
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined && first.host === undefined && first.fd === undefined
        && first.handle === undefined && !(first instanceof net.Server)) {
      args[0] = { ...first, host: HOST };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (typeof second !== 'string') args.splice(1, 0, HOST);
  }
  return original.apply(this, args);
};
