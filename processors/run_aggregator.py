"""RunAggregator: folds the events of one run into a RunSummary.

State is one :class:`RunState` per run_id (explicit, serializable). Money is summed in
integer nano-dollars and every counter is a commutative sum, so the same events in any order,
or with duplicates (same seq: ``(run_id, seq)`` identifies an event), give the same summary. The
seqs seen are kept in bounded memory (:class:`SeqTracker`, issue 20), so a run of any length has
a state of bounded size.

Closing:
- on RunFinished, as soon as every seq 0..last_seq has been seen; if some are missing, after
  ``reorder_grace_s`` of wall-clock time (they are then reported: ``missing_seq_count`` of them,
  ``missing_seqs`` lists the first :data:`MAX_MISSING_LISTED`, ``seq_gaps`` counts the *ranges*
  of consecutive missing seqs, not the seqs).
  Missing seqs are computed from the seqs seen (never by walking 0..last_seq), so a ``last_seq``
  of 2**62 costs what a run of its events costs and the summary stays small.
- after ``inactivity_timeout_s`` without any event, with outcome ``timed_out``.
An event that arrives after the close (a late one, never a duplicate) reopens nothing: it is
folded in and the summary is emitted again with ``version + 1``; sinks keep the highest version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from tripwire.processors._pricing import KINDS, NANOS_PER_USD, load_prices, price_weights, split_cost, to_nanos
from tripwire.processors._seq_tracker import SeqTracker
from tripwire.processors._time import micros, utc, utc_micros
from tripwire.processors.policy import RunsPolicy

if TYPE_CHECKING:
    from tripwire.schemas.records import RunOutcome

ERROR_STATUSES = frozenset({"error", "timeout"})
BLOCKED_STATUSES = frozenset({"blocked", "denied"})
_IDENTITY = ("tenant", "agent_id", "agent_version", "workflow", "environment", "principal", "trace_id")


def _val(enum_or_str: Any) -> str:
    return getattr(enum_or_str, "value", enum_or_str)


def model_name(event: Any) -> str:
    return event.response_model or event.request_model


@dataclass
class RunState:
    """Everything known about one run; ``to_dict``/``from_dict`` round-trip exactly."""

    run_id: str
    tenant: str = ""
    agent_id: str = ""
    agent_version: str = ""
    workflow: str = ""
    environment: str = ""
    principal: str | None = None
    trace_id: str = ""
    identity_from_start: bool = False
    started_at: int | None = None  # epoch microseconds (exact, like the Avro timestamps)
    finished_at: int | None = None
    first_ts: int | None = None
    last_ts: int | None = None
    outcome: str | None = None
    last_seq: int | None = None
    budgets: dict[str, float | None] = field(default_factory=dict)
    cost_nanos: int = 0
    cost_by_model: dict[str, int] = field(default_factory=dict)
    cost_by_kind: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    cost_unknown_calls: int = 0
    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    model_calls: int = 0
    tool_calls: int = 0
    errors: int = 0
    blocked_calls: int = 0
    approvals: int = 0
    denials: int = 0
    approved_call_ids: list[str] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)
    seqs: SeqTracker = field(default_factory=SeqTracker)  # a set of seqs is accepted and converted
    summary_version: int = 0  # the revision of the last RunSummary (``version`` in state format v1)
    closed: bool = False
    closed_at: float | None = None
    close_deadline: float | None = None
    last_arrival: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.seqs, SeqTracker):
            self.seqs = SeqTracker.of(self.seqs)

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))  # shallow: the containers are copied below or only read by the encoder
        d["seqs"] = self.seqs.to_list()
        d["budgets"] = dict(self.budgets)
        d["cost_by_model"] = dict(self.cost_by_model)
        d["cost_by_kind"] = list(self.cost_by_kind)
        d["tokens"] = list(self.tokens)
        d["approved_call_ids"] = list(self.approved_call_ids)
        d["credentials"] = list(self.credentials)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        d = dict(d)
        d["seqs"] = SeqTracker.from_list(d["seqs"]) if "seqs" in d else SeqTracker()
        return cls(**d)

    # -- derived figures -----------------------------------------------------------------
    @property
    def steps(self) -> int:
        """A step is one action of the agent: a model call or a tool call."""
        return self.model_calls + self.tool_calls

    @property
    def cost_usd(self) -> float:
        return self.cost_nanos / NANOS_PER_USD

    @property
    def prompt_tokens(self) -> int:
        return self.tokens[0] + self.tokens[1] + self.tokens[2]

    @property
    def completion_tokens(self) -> int:
        return self.tokens[3] + self.tokens[4]

    def expected_last_seq(self) -> int | None:
        if self.last_seq is not None:
            return self.last_seq
        return self.seqs.high if self.seqs.high >= 0 else None

    def missing_ranges(self) -> list[tuple[int, int]]:
        """The missing seqs in 0..expected_last_seq as inclusive ranges ``(first, last)``, in order
        (bounded by the tracker, whatever last_seq is; see :class:`SeqTracker`)."""
        return self.seqs.missing_ranges(self.expected_last_seq())

    def missing_counts(self) -> tuple[int, int]:
        """(missing seqs, ranges of consecutive missing seqs) in 0..expected_last_seq."""
        return self.seqs.missing_counts(self.expected_last_seq())

    def complete(self) -> bool:
        """Every seq 0..expected_last_seq seen (cheap: no walk over the seqs)."""
        return self.seqs.complete(self.expected_last_seq())

    def missing_seqs(self, limit: int | None = None) -> list[int]:
        """The missing seqs in order, the first ``limit`` of them (all when None: mind the size)."""
        out: list[int] = []
        for lo, hi in self.missing_ranges():
            if limit is not None:
                hi = min(hi, lo + (limit - len(out)) - 1)
            out.extend(range(lo, hi + 1))
            if limit is not None and len(out) >= limit:
                break
        return out

    def budget_pct(self, name: str, used: float) -> float | None:
        cap = self.budgets.get(name)
        if cap is None or cap <= 0:
            return None
        return used / cap * 100.0

    def budget_usage(self) -> dict[str, tuple[float, float | None]]:
        """Budget name -> (used, cap)."""
        return {
            "cost": (self.cost_usd, self.budgets.get("max_cost_usd")),
            "steps": (float(self.steps), self.budgets.get("max_steps")),
            "tool_calls": (float(self.tool_calls), self.budgets.get("max_tool_calls")),
            "prompt_tokens": (float(self.prompt_tokens), self.budgets.get("max_prompt_tokens")),
            "completion_tokens": (float(self.completion_tokens), self.budgets.get("max_completion_tokens")),
        }


MAX_MISSING_LISTED = 1000
"""A RunSummary lists at most this many missing seqs (``missing_seq_count`` has them all)."""


class RunAggregator:
    """Folds events into :class:`RunState` and emits ``RunSummary`` records when a run closes."""

    def __init__(self, policy: RunsPolicy) -> None:
        self.policy = policy
        load_prices()  # once per process: not on the first model call

    @staticmethod
    def key(event: Any) -> str:
        return event.run_id

    @staticmethod
    def new_state(run_id: str) -> RunState:
        return RunState(run_id=run_id)

    # -- events ----------------------------------------------------------------------------
    def process(self, state: RunState, event: Any, now: float) -> tuple[bool, list[Any]]:
        """Fold ``event`` in. Returns (applied, summaries): applied is False for a duplicate."""
        if not state.seqs.add(event.seq):
            return False, []
        state.last_arrival = now
        self._identity(state, event)
        ts_start, ts_end = micros(event.ts_start), micros(event.ts_end)
        state.first_ts = ts_start if state.first_ts is None else min(state.first_ts, ts_start)
        state.last_ts = ts_end if state.last_ts is None else max(state.last_ts, ts_end)
        kind = type(event).__name__
        if kind == "ModelCall":
            self._model_call(state, event)
        elif kind == "ToolCall":
            state.tool_calls += 1
            self._status(state, event.status)
        elif kind == "RunStarted":
            state.started_at = ts_start
            state.budgets = {
                "max_steps": event.max_steps,
                "max_tool_calls": event.max_tool_calls,
                "max_prompt_tokens": event.max_prompt_tokens,
                "max_completion_tokens": event.max_completion_tokens,
                "max_cost_usd": event.max_cost_usd,
            }
        elif kind == "ApprovalDecision":
            if _val(event.decision) == "approved":
                state.approvals += 1
                state.approved_call_ids.append(event.tool_call_id)
            else:
                state.denials += 1
        elif kind == "RunFinished":
            state.outcome = _val(event.outcome)
            state.finished_at = ts_end
            state.last_seq = event.last_seq
        fp = event.credential_fingerprint
        if fp is not None and fp not in state.credentials:
            state.credentials.append(fp)

        if state.closed:  # a late event: fold it in and publish a revision
            return True, [self._emit(state, now)]
        if state.outcome is not None:
            if state.complete():
                return True, [self._close(state, now)]
            if state.close_deadline is None:
                state.close_deadline = now + self.policy.reorder_grace_s
        return True, []

    @staticmethod
    def _identity(state: RunState, event: Any) -> None:
        # RunStarted is authoritative; otherwise the first event seen fills the identity.
        is_start = type(event).__name__ == "RunStarted"
        if state.identity_from_start or (state.tenant and not is_start):
            return
        for name in _IDENTITY:
            setattr(state, name, getattr(event, name))
        state.identity_from_start = is_start

    @staticmethod
    def _status(state: RunState, status: Any) -> None:
        s = _val(status)
        if s in ERROR_STATUSES:
            state.errors += 1
        elif s in BLOCKED_STATUSES:
            state.blocked_calls += 1

    def _model_call(self, state: RunState, event: Any) -> None:
        state.model_calls += 1
        self._status(state, event.status)
        tokens = (
            event.input_tokens,
            event.cache_read_tokens,
            event.cache_write_tokens,
            event.output_tokens,
            event.reasoning_tokens,
        )
        for i, n in enumerate(tokens):
            state.tokens[i] += n
        if event.cost_usd is None or _val(event.cost_source) == "unknown":
            state.cost_unknown_calls += 1
            return
        nanos = to_nanos(event.cost_usd)
        state.cost_nanos += nanos
        name = model_name(event)
        state.cost_by_model[name] = state.cost_by_model.get(name, 0) + nanos
        for i, part in enumerate(split_cost(nanos, tokens, price_weights(event.provider, name))):
            state.cost_by_kind[i] += part

    # -- time ------------------------------------------------------------------------------
    def tick(self, state: RunState, now: float, resumed_at: float = 0.0) -> list[Any]:
        """Close a run whose reorder grace expired, or that went quiet (``timed_out``).

        ``resumed_at`` is when the runtime (re)started consuming: a run is only quiet for the time
        since max(last event, resumed_at), so a restarted worker does not time out runs whose
        events are still waiting in its backlog.
        """
        if state.closed:
            return []
        if state.close_deadline is not None and now >= state.close_deadline:
            return [self._close(state, now)]
        quiet = now - max(state.last_arrival, resumed_at)
        if state.outcome is None and quiet >= self.policy.inactivity_timeout_s:
            state.outcome = "timed_out"
            return [self._close(state, now)]
        return []

    def expired(self, state: RunState, now: float) -> bool:
        """A closed run's state may be dropped once its retention passed."""
        return state.closed and state.closed_at is not None and now - state.closed_at >= self.policy.closed_retention_s

    # -- output ------------------------------------------------------------------------------
    def _close(self, state: RunState, now: float) -> Any:
        state.closed = True
        state.closed_at = now
        state.close_deadline = None
        return self._emit(state, now)

    def _emit(self, state: RunState, now: float) -> Any:
        state.summary_version += 1
        return self.summary(state, now)

    @staticmethod
    def summary(state: RunState, now: float) -> Any:
        """The RunSummary for the current state (outcome ``running`` while open)."""
        from tripwire.schemas import RunSummary

        ended = (
            state.finished_at
            if state.finished_at is not None
            else (state.last_ts if state.outcome == "timed_out" else None)
        )
        started = state.started_at
        duration = (ended - started) / 1000.0 if ended is not None and started is not None else None
        missing, gaps = state.missing_counts()
        usage = state.budget_usage()
        by_kind = dict(zip(KINDS, state.cost_by_kind, strict=True))
        return RunSummary.model_construct(
            run_id=state.run_id,
            tenant=state.tenant,
            agent_id=state.agent_id,
            agent_version=state.agent_version,
            workflow=state.workflow,
            environment=state.environment,
            principal=state.principal,
            trace_id=state.trace_id,
            started_at=utc_micros(started) if started is not None else None,
            ended_at=utc_micros(ended) if ended is not None else None,
            duration_ms=duration,
            outcome=cast("RunOutcome", state.outcome or "running"),  # a RunFinished outcome or ours
            cost_usd=state.cost_nanos / NANOS_PER_USD,
            cost_by_model={k: v / NANOS_PER_USD for k, v in sorted(state.cost_by_model.items())},
            cost_input_usd=by_kind["input"] / NANOS_PER_USD,
            cost_cache_read_usd=by_kind["cache_read"] / NANOS_PER_USD,
            cost_cache_write_usd=by_kind["cache_write"] / NANOS_PER_USD,
            cost_output_usd=by_kind["output"] / NANOS_PER_USD,
            cost_reasoning_usd=by_kind["reasoning"] / NANOS_PER_USD,
            cost_unknown_calls=state.cost_unknown_calls,
            input_tokens=state.tokens[0],
            cache_read_tokens=state.tokens[1],
            cache_write_tokens=state.tokens[2],
            output_tokens=state.tokens[3],
            reasoning_tokens=state.tokens[4],
            steps=state.steps,
            model_calls=state.model_calls,
            tool_calls=state.tool_calls,
            errors=state.errors,
            blocked_calls=state.blocked_calls,
            approvals=state.approvals,
            denials=state.denials,
            budget_cost_pct=state.budget_pct("max_cost_usd", usage["cost"][0]),
            budget_steps_pct=state.budget_pct("max_steps", usage["steps"][0]),
            budget_tool_calls_pct=state.budget_pct("max_tool_calls", usage["tool_calls"][0]),
            budget_prompt_tokens_pct=state.budget_pct("max_prompt_tokens", usage["prompt_tokens"][0]),
            budget_completion_tokens_pct=state.budget_pct("max_completion_tokens", usage["completion_tokens"][0]),
            events_seen=len(state.seqs),
            missing_seqs=state.missing_seqs(MAX_MISSING_LISTED) if gaps else [],
            seq_gaps=gaps,  # ranges of consecutive missing seqs (missing_seq_count counts the seqs)
            missing_seq_count=missing,
            version=state.summary_version,
            emitted_at=utc(now),
        )
