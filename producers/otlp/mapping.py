"""Spans -> tripwire events: run resolution, ``seq``, ``event_id``, tokens, cost and redaction.

Runs (see ``schemas/README.md``, "OTLP ingestion"):

* the trace's *root* span (no parent) roots the trace run, ``run_id = uuid5(trace_id)``; its agent
  identity comes from the span when it is an agent span (``invoke_agent``/``invoke_workflow``, AGENT,
  CHAIN, traceloop workflow/agent), else from the resource (``service.name``);
* any other agent span roots a sub-agent run, ``run_id = uuid5(trace_id/span_id)``, whose
  ``parent_run_id`` is the run of its nearest agent ancestor, or the trace run when no agent ancestor
  is known (yet);
* an LLM or tool span belongs to the run of its nearest known agent ancestor, else to the trace run.

Ancestors are looked up in the request and in a bounded cache of the spans this receiver has seen,
so a child exported in an earlier request than its parent resolves only to what was known when it
arrived (a child of a nested agent that arrives before that agent is counted in the trace run).

``seq``: RunStarted is 0; every other event of a run takes the next number of that run's counter in
this process, in span start order within a request; RunFinished takes the next number when the run's
root span arrives (usually last: spans are exported when they end). A memo keyed by the event's id
gives a retried span the same ``seq``. With a spool, counters and memo are also kept on disk
(``_seq_store``): a restarted receiver continues a run's numbering and gives a replayed span its first
``seq``. Limits: counters belong to one receiver (route a trace to one receiver, e.g. the collector's
``loadbalancing`` exporter with ``routing_key: traceID``); a child that arrives after its run's root
gets a ``seq`` above ``last_seq`` and is folded in as a late event.

``event_id = uuid5(NAMESPACE, "<trace_id>:<span_id>:<event type>")``: a retried or replayed export
produces the same ids, and the sink and processors keep them once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tripwire.producers.cost import CostCalculator, TokenUsage
from tripwire.producers.otlp.dialects import SpanFacts, read_facts
from tripwire.redaction import Redactor
from tripwire.schemas import CallStatus, EventBase, ModelCall, Outcome, Risk, RunFinished, RunStarted, ToolCall

from ._proto import RawSpan
from ._seq_store import SeqStore

NAMESPACE = uuid.UUID("5f0c1d2e-8a4b-4c6d-9e1f-0a2b3c4d5e6f")
"""Namespace of the derived ids (fixed forever: changing it breaks idempotence across versions)."""


_NS = NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))`` without the UUID object (a third of the time; equal by test)."""
    h = bytearray(hashlib.sha1(_NS + name.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def trace_run_id(trace_id: str) -> str:
    return _uuid5(trace_id)


def span_run_id(trace_id: str, span_id: str) -> str:
    return _uuid5(f"{trace_id}/{span_id}")


def event_id(trace_id: str, span_id: str, kind: str) -> str:
    return _uuid5(f"{trace_id}:{span_id}:{kind}")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a request: the tenant and name bound to its bearer token or client certificate (None:
    unauthenticated)."""

    tenant: str | None = None
    name: str | None = None
    fingerprint: str | None = None  # a client certificate's credential fingerprint ("cert:..."), mTLS only


@dataclass(frozen=True, slots=True)
class MappingOptions:
    default_tenant: str = "default"
    tenant_attribute: str = "tripwire.tenant"
    credential_attribute: str | None = None
    default_environment: str = "dev"
    default_agent_version: str = "0.0.0"
    store_prompts: bool = False
    log_tool_args: bool = True
    cache_spans: int = 200_000


@dataclass(slots=True)
class _Known:
    parent: str | None
    agent_run: str | None  # the run this span roots (agent or trace root), else None
    agent_id: str | None
    agent_version: str | None
    workflow: str


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


_ENVIRONMENT_ATTRS = ("deployment.environment.name", "deployment.environment")


class SpanMapper:
    """Thread-safe; one per receiver (it owns the run counters and the ancestry cache)."""

    def __init__(
        self, options: MappingOptions, redactor: Redactor, costs: CostCalculator, seq_store: SeqStore | None = None
    ) -> None:
        self.options = options
        self.redactor = redactor
        self.costs = costs
        self.seq_store = seq_store  # counters and memo kept across restarts (``_seq_store``)
        self._unsaved_counters: dict[str, int] = {}
        self._unsaved_memo: dict[str, int] = {}
        self._lock = threading.Lock()
        self._known: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        self._counters: OrderedDict[str, int] = OrderedDict()
        self._seqs: OrderedDict[str, int] = OrderedDict()
        self._resolved: OrderedDict[tuple[str, str], tuple[str, _Known | None]] = OrderedDict()

    # -- bounded caches ------------------------------------------------------------------------
    def _remember(self, key: tuple[str, str], known: _Known) -> None:
        self._known[key] = known
        self._known.move_to_end(key)
        if len(self._known) > self.options.cache_spans:
            self._known.popitem(last=False)

    def _seq(self, run_id: str, eid: str) -> int:
        s = self._seqs.get(eid)
        if s is not None:
            return s
        store = self.seq_store
        if store is not None and (s := store.seq(eid)) is not None:  # given before a restart
            self._seqs[eid] = s
            return s
        last = self._counters.get(run_id)
        if last is None:
            last = (store.counter(run_id) if store is not None else None) or 0
        n = last + 1
        self._counters[run_id] = n
        self._counters.move_to_end(run_id)
        self._seqs[eid] = n
        if store is not None:
            self._unsaved_counters[run_id] = n
            self._unsaved_memo[eid] = n
        if len(self._seqs) > self.options.cache_spans:
            self._seqs.popitem(last=False)
        if len(self._counters) > self.options.cache_spans:
            self._counters.popitem(last=False)
        return n

    # -- mapping -------------------------------------------------------------------------------
    def map_spans(self, spans: list[RawSpan], identity: Identity) -> tuple[list[EventBase], int, list[str]]:
        """(events in emit order, rejected span count, a few reasons)."""
        facts = [read_facts(s.attrs, s.events) for s in spans]
        events: list[EventBase] = []
        rejected = 0
        reasons: list[str] = []
        with self._lock:
            for s, f in zip(spans, facts, strict=True):  # ancestry first: every span, GenAI or not
                root = s.parent_span_id is None
                is_agent = f.role == "agent" or (f.role == "root_only" and root)
                run = trace_run_id(s.trace_id) if root else span_run_id(s.trace_id, s.span_id) if is_agent else None
                agent_id = (f.agent_name or s.name) if is_agent else None
                self._remember(
                    (s.trace_id, s.span_id),
                    _Known(s.parent_span_id, run, agent_id, f.agent_version, _workflow(f, s) if is_agent else ""),
                )
            # children in start order, then run roots in end order (a nested agent ends before its parent)
            order = sorted(
                range(len(spans)),
                key=lambda i: (
                    self._known[(spans[i].trace_id, spans[i].span_id)].agent_run is not None,
                    spans[i].end_us
                    if self._known[(spans[i].trace_id, spans[i].span_id)].agent_run
                    else spans[i].start_us,
                ),
            )
            for i in order:
                s, f = spans[i], facts[i]
                try:
                    events.extend(self._events(s, f, identity))
                except Exception as e:  # a span we cannot turn into valid events: rejected, never fatal
                    rejected += 1
                    if len(reasons) < 3:
                        reasons.append(f"span {s.span_id}: {type(e).__name__}: {_short(e)}")
            if self.seq_store is not None:  # on disk before the events are handed over
                self.seq_store.save(self._unsaved_counters, self._unsaved_memo)  # if it fails: with the next
                self._unsaved_counters, self._unsaved_memo = {}, {}
        return events, rejected, reasons

    def _resolve(self, s: RawSpan) -> tuple[str, _Known | None]:
        """:meth:`_ancestor_run` of a span, memoised: a retried span keeps the run it was first given
        even if its ancestors arrived in between (same event_id, same run_id, same seq)."""
        key = (s.trace_id, s.span_id)
        got = self._resolved.get(key)
        if got is None:
            got = self._resolved[key] = self._ancestor_run(s.trace_id, s.parent_span_id)
            if len(self._resolved) > self.options.cache_spans:
                self._resolved.popitem(last=False)
        return got

    def _ancestor_run(self, trace_id: str, parent: str | None) -> tuple[str, _Known | None]:
        """The run of the nearest known agent ancestor (and its record), else the trace run."""
        seen = 0
        while parent is not None and seen < 1000:
            k = self._known.get((trace_id, parent))
            if k is None:
                break
            if k.agent_run is not None:
                return k.agent_run, k
            parent = k.parent
            seen += 1
        return trace_run_id(trace_id), None

    def _base(self, s: RawSpan, identity: Identity, run_id: str, owner: _Known | None, f: SpanFacts) -> dict[str, Any]:
        o = self.options
        res = s.resource
        tenant = identity.tenant or _str(res.get(o.tenant_attribute)) or o.default_tenant
        fp = (
            _str(s.attrs.get(o.credential_attribute) or res.get(o.credential_attribute))
            if o.credential_attribute
            else None
        )
        if fp is None and identity.fingerprint is not None:
            fp = identity.fingerprint
        if fp is None and identity.name is not None:
            fp = "token:" + hashlib.sha256(identity.name.encode()).hexdigest()[:16]
        env = next((_str(res[a]) for a in _ENVIRONMENT_ATTRS if res.get(a)), None) or o.default_environment
        service = _str(res.get("service.name")) or "unknown_service"
        principal = f.principal
        return {
            "tenant": tenant,
            "agent_id": (owner.agent_id if owner is not None else None) or service,
            "agent_version": (owner.agent_version if owner is not None else None)
            or _str(res.get("service.version"))
            or o.default_agent_version,
            "workflow": owner.workflow if owner is not None else "",
            "environment": env,
            "principal": None if principal is None else self.redactor.redact_text(principal, "principal"),
            "credential_fingerprint": fp,
            "trace_id": s.trace_id,
            "span_id": s.span_id,
            "parent_span_id": s.parent_span_id,
            "run_id": run_id,
        }

    def _events(self, s: RawSpan, f: SpanFacts, identity: Identity) -> list[EventBase]:
        out: list[EventBase] = []
        known = self._known[(s.trace_id, s.span_id)]
        if f.role in ("llm", "tool"):
            run_id, owner = self._resolve(s)
            if owner is None and known.agent_run is not None:  # an LLM/tool span that is the trace's root
                run_id, owner = known.agent_run, known
            base = self._base(s, identity, run_id, owner, f)
            kind = "ModelCall" if f.role == "llm" else "ToolCall"
            eid = event_id(s.trace_id, s.span_id, kind)
            base |= {
                "event_id": eid,
                "seq": self._seq(run_id, eid),
                "ts_start": _dt(s.start_us),
                "ts_end": _dt(s.end_us),
            }
            out.append(self._model_call(base, s, f) if f.role == "llm" else self._tool_call(base, s, f))
        if known.agent_run is not None:
            out.extend(self._run_events(s, f, identity, known))
        return out

    def _run_events(self, s: RawSpan, f: SpanFacts, identity: Identity, known: _Known) -> list[EventBase]:
        run_id = known.agent_run
        assert run_id is not None
        parent_run = None
        if s.parent_span_id is not None:
            parent_run, _ = self._resolve(s)
        base = self._base(s, identity, run_id, known, f)
        started_id = event_id(s.trace_id, s.span_id, "RunStarted")
        finished_id = event_id(s.trace_id, s.span_id, "RunFinished")
        last = self._seq(run_id, finished_id)
        started = RunStarted(
            **base,
            event_id=started_id,
            seq=0,
            ts_start=_dt(s.start_us),
            ts_end=_dt(s.start_us),
            conversation_id=f.conversation_id,
            parent_run_id=parent_run,
        )
        finished = RunFinished(
            **base,
            event_id=finished_id,
            seq=last,
            last_seq=last,
            ts_start=_dt(s.start_us),
            ts_end=_dt(s.end_us),
            outcome=Outcome.FAILURE if s.error else Outcome.SUCCESS,
            error_type=(f.error_type or "error") if s.error else None,
        )
        return [started, finished]

    def _model_call(self, base: dict[str, Any], s: RawSpan, f: SpanFacts) -> ModelCall:
        cache_r, cache_w, reasoning = f.cache_read_tokens, f.cache_write_tokens, f.reasoning_tokens
        usage = TokenUsage(
            input_tokens=max(0, f.input_tokens - cache_r - cache_w),
            cache_read_tokens=cache_r,
            cache_write_tokens=cache_w,
            output_tokens=max(0, f.output_tokens - reasoning),
            reasoning_tokens=reasoning,
        )
        provider = f.provider or "unknown"
        request_model = f.request_model or f.response_model or "unknown"
        cost = self.costs.compute(
            provider, f.response_model or request_model, usage, provider_cost_usd=f.cost_usd, at=base["ts_end"]
        )
        prompt = completion = None
        if self.options.store_prompts:
            prompt = None if f.prompt is None else self.redactor.redact_text(f.prompt, "prompt")
            completion = None if f.completion is None else self.redactor.redact_text(f.completion, "completion")
        return ModelCall(
            **base,
            operation_name=f.operation or "chat",
            provider=provider,
            request_model=request_model,
            response_model=f.response_model,
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost.cost_usd,
            cost_source=cost.cost_source,
            price_version=cost.price_version,
            status=CallStatus.ERROR if s.error else CallStatus.OK,
            finish_reason=f.finish_reason,
            error_type=(f.error_type or "error") if s.error else None,
            prompt=prompt,
            completion=completion,
        )

    def _tool_call(self, base: dict[str, Any], s: RawSpan, f: SpanFacts) -> ToolCall:
        args_text = f.tool_args
        args_hash = args = None
        if args_text is not None:
            try:
                parsed: Any = json.loads(args_text)
            except ValueError:
                parsed = args_text
            canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            args_hash = hashlib.sha256(canonical.encode()).hexdigest()
            if self.options.log_tool_args:
                red = self.redactor.redact(parsed, "args")
                args = red if isinstance(red, str) else json.dumps(red, sort_keys=True, separators=(",", ":"))
        return ToolCall(
            **base,
            tool_name=f.tool_name or s.name or "unknown_tool",
            tool_call_id=f.tool_call_id or s.span_id,
            risk=Risk.LOW,
            args=args,
            args_hash=args_hash,
            status=CallStatus.ERROR if s.error else CallStatus.OK,
            error_type=(f.error_type or "error") if s.error else None,
            side_effect=False,
        )


def _workflow(f: SpanFacts, s: RawSpan) -> str:
    if f.operation == "invoke_workflow":
        return f.agent_name or s.name
    return _str(s.attrs.get("gen_ai.workflow.name") or s.attrs.get("traceloop.workflow.name")) or ""


def _str(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, str) else str(v)


def _short(e: Exception) -> str:
    text = str(e).replace("\n", " ")
    return text[:200]


__all__ = ["NAMESPACE", "Identity", "MappingOptions", "SpanMapper", "event_id", "span_run_id", "trace_run_id"]
