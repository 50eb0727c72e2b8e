// Preload (node --require ./e2e/abort-probe.cjs ...) for the e2e tests: logs each
// request handler the TypeScript SDK aborts because of a notifications/cancelled, on
// stderr, one line each:
//   aigw-e2e-probe: aborted "<reason>"
// The SDK's Protocol aborts the handler's AbortController with the notification's
// reason in _oncancel (shared/protocol.js); other aborts (connections closing) do not
// come from there and are not logged.  The tests count these lines to see that a
// cancellation reached server-everything, whose tools have no counter of their own.
// Nothing else changes.
'use strict';

const original = AbortController.prototype.abort;

AbortController.prototype.abort = function abort(...args) {
  if (/\b_oncancel\b/.test(new Error().stack ?? '')) {
    process.stderr.write(`aigw-e2e-probe: aborted ${JSON.stringify(String(args[0]))}\n`);
  }
  return original.apply(this, args);
};
