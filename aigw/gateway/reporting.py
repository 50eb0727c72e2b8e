"""Each client request's bookkeeping: its record and span, its rate-limit permit, the
audit trail's word that it can be kept, and the ``RequestFinished`` event reported once
it is answered."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs

from aigw.audit import AUDITED_METHODS
from aigw.events import GatewayObserver, Outcome, RequestFinished, heard
from aigw.gateway.client_sessions import ClientSession
from aigw.gateway.errors import InsufficientScope
from aigw.gateway.parking import ParkedElsewhere
from aigw.gateway.ratelimit import Limiter, Permit
from aigw.gateway.record import RequestRecord
from aigw.gateway.refused import AuditGate, Refused, check_audit
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.tracing import TraceContext, Tracer
from aigw.tracing.context import from_meta

#: Answers one client request with the session view and record it is given.
Answer = Callable[[ClientSession, RequestRecord], Awaitable[dict[str, Any] | None]]


@attrs.define
class Reporting:
    """Records, spans and reports the requests of one ``Gateway``.

    ``audit_gate``: with ``audit.on_write_error: refuse``, why the audit file cannot
    be written now (None: it can); an audited request is refused while it says so
    (and again by ``Calls`` once its access decision is written)."""

    clock: Any
    observer: GatewayObserver
    tracer: Tracer
    ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))
    audit_gate: AuditGate | None = None

    async def request(
        self, session: ClientSession, request: jsonrpc.Request, limiter: Limiter, answer: Answer
    ) -> dict[str, Any] | None:
        """``answer`` to one client request, within its span and rate-limit permit, reported
        once (None: cancelled, nothing to send)."""
        # SEP-414: a trace context in the request's _meta is this request's own, and
        # wins over the HTTP request's headers (which a batch's requests share).
        params = request.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        parent = None if meta is None else from_meta(meta)
        span = self.tracer.request(parent or session.trace, request.method)
        if span.context is not session.trace:
            # The context this request's upstream calls continue (a recorded span's, or
            # its _meta's passed on): a batch's requests share the session view, so each
            # gets a copy of its own.
            session = attrs.evolve(session, trace=span.context)
        record = RequestRecord(request.method, self.clock.seconds(), next(self.ids), span=span)
        permit: Permit | None = None
        try:
            if self.audit_gate is not None and request.method in AUDITED_METHODS:
                check_audit(self.audit_gate)
            permit = await limiter.enter(session.principal)
            answered = await answer(session, record)
        except InsufficientScope:
            self.finished(session.principal, record, None)
            raise
        except ParkedElsewhere:  # the web layer forwards it (docs/scale-out.md)
            self.report(session.principal, record, "forwarded", None)
            raise
        except Refused as refused:  # 429 or 503 (web/respond.py)
            refused.request_id = request.id
            self.report(session.principal, record, refused.outcome, refused.code)
            raise
        finally:
            if permit is not None:
                permit.release()
        self.finished(session.principal, record, answered)
        return answered

    def started(self, method: str, trace: TraceContext | None = None) -> RequestRecord:
        """A record for a request the web layer answers itself (``server/discover``),
        reported with :meth:`finished` like the ones routed here."""
        return RequestRecord(
            method,
            self.clock.seconds(),
            next(self.ids),
            span=self.tracer.request(trace, method),
        )

    def finished(
        self, principal: Principal, record: RequestRecord, answer: dict[str, Any] | None
    ) -> None:
        """Report the request once, with the outcome its answer shows unless already known."""
        code = None
        if answer is None:
            outcome: Outcome = record.outcome or "cancelled"
        elif "error" in answer:
            error = answer["error"]
            code = error.get("code") if isinstance(error, dict) else None
            outcome = record.outcome or "error"
        else:
            outcome = record.outcome or "ok"
        self.report(principal, record, outcome, code if isinstance(code, int) else None)

    def report(
        self, principal: Principal, record: RequestRecord, outcome: Outcome, code: int | None
    ) -> None:
        record.span.finish(record.backend, record.name, outcome, code)
        if not heard(self.observer):
            return
        self.observer.request_finished(
            RequestFinished(
                method=record.method,
                principal=principal,
                backend=record.backend,
                name=record.name,
                outcome=outcome,
                error_code=code,
                seconds=self.clock.seconds() - record.started,
                upstream_seconds=record.upstream_seconds,
                request_id=record.request_id,
                exposed=record.exposed,
                arguments=record.arguments,
            )
        )
