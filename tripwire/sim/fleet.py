"""Run the simulated fleet through the real SDK.

Each agent identity (agent, version) gets its own :class:`~tripwire.producers.Tracer`, as a real
deployment would, built by the caller's ``tracer_factory``: Kafka for ``tripwire simulate``, an
in-process queue for the embedded demo. Runs execute on worker threads with a per-run virtual
clock, so heavy-tailed latencies are recorded without the simulator sleeping through them; the
pace is set by ``rate`` (events per second).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tripwire.producers import Tracer
from tripwire.producers.errors import ToolBlocked
from tripwire.schemas import Risk
from tripwire.sim.clock import VirtualClock
from tripwire.sim.incidents import PII_CORPUS, Incident, IncidentSchedule, append_ground_truth
from tripwire.sim.workflows import AGENTS, AgentSpec, ToolSpec, lognormal_ms, tool_args

log = logging.getLogger(__name__)

TracerFactory = Callable[[AgentSpec, str], Tracer]


class SimulatedToolError(Exception):
    """A tool call that failed (HTTP 5xx, validation error) in the simulation."""


class SimulatedTimeout(TimeoutError):
    """A tool call that timed out in the simulation."""


@dataclass(frozen=True)
class FleetConfig:
    duration_s: float = 60.0
    rate: float = 300.0  # target events per second (0: as fast as the machine allows)
    agents: int = 8  # concurrent simulated agent instances (worker threads), spread over the workflows
    seed: int = 7
    incidents: bool = True
    ground_truth: Path | None = None


@dataclass
class FleetStats:
    runs: int = 0
    blocked_calls: int = 0
    tool_errors: int = 0
    started_at: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    incidents_injected: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


def credential_fingerprint(agent_id: str) -> str:
    """A stand-in fingerprint of the agent's own credential (a hash, never the secret)."""
    return "sha256:" + hashlib.sha256(f"token-of-{agent_id}".encode()).hexdigest()[:32]


class Fleet:
    def __init__(
        self,
        config: FleetConfig,
        tracer_factory: TracerFactory,
        *,
        clock: VirtualClock | None = None,
        schedule: IncidentSchedule | None = None,
        on_incident: Callable[[Incident, bool], None] | None = None,  # called once as each incident starts
    ) -> None:
        self.config = config
        self.clock = clock or VirtualClock()
        self.schedule = schedule or (IncidentSchedule.standard(config.duration_s) if config.incidents
                                     else IncidentSchedule([]))
        self.on_incident = on_incident
        self.stats = FleetStats()
        self._tracers: dict[tuple[str, str], Tracer] = {}
        self._factory = tracer_factory
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._emitted_budget = threading.Semaphore(0)
        self._events_started = 0

    # -- tracers --------------------------------------------------------------------------------
    def tracer(self, spec: AgentSpec, version: str) -> Tracer:
        key = (spec.agent_id, version)
        with self._lock:
            t = self._tracers.get(key)
            if t is None:
                t = self._tracers[key] = self._factory(spec, version)
            return t

    @property
    def tracers(self) -> list[Tracer]:
        with self._lock:
            return list(self._tracers.values())

    def emitted(self) -> int:
        return sum(t.counters().emitted for t in self.tracers)

    # -- running --------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> FleetStats:
        """Run for ``duration_s`` (or until :meth:`stop`), then return the stats. Tracers stay open."""
        from tripwire.producers import use_clock

        cfg = self.config
        use_clock(self.clock)  # outside a simulated run the virtual clock reads the wall clock
        self.stats.started_at = time.time()
        specs = list(AGENTS.values())
        workers = [
            threading.Thread(target=self._worker, args=(i, specs[i % len(specs)]), name=f"sim-agent-{i}", daemon=True)
            for i in range(max(1, cfg.agents))
        ]
        for w in workers:
            w.start()
        deadline = time.monotonic() + cfg.duration_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._announce()
            self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        self._stop.set()
        self._announce()
        for w in workers:
            w.join(timeout=30)
        return self.stats

    def _announce(self) -> None:
        """Append the incidents that have started to the ground truth, and tell ``on_incident``."""
        started = self.schedule.due(time.time() - self.stats.started_at)
        if not started:
            return
        if self.config.ground_truth is not None:
            append_ground_truth(self.config.ground_truth, started, self.stats.started_at)
        for inc in started:
            self.stats.incidents_injected[inc.kind] += 1
            if self.on_incident is not None:
                try:
                    self.on_incident(inc, True)
                except Exception:  # an observer must not stop the fleet
                    log.exception("incident observer failed kind=%s", inc.kind)

    def _worker(self, index: int, spec: AgentSpec) -> None:
        rng = random.Random(self.config.seed * 1000 + index)
        per_worker_rate = self.config.rate / max(1, self.config.agents)
        next_at = time.monotonic()
        while not self._stop.is_set():
            t_rel = time.time() - self.stats.started_at
            try:
                events = self._one_run(spec, rng, t_rel)
            except Exception:  # the simulator must keep going; the SDK never raises from background
                log.exception("simulated run crashed agent=%s", spec.agent_id)
                events = 1
            if per_worker_rate > 0:
                next_at += events / per_worker_rate
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()  # behind: don't burst to catch up

    # -- one run --------------------------------------------------------------------------------
    def _one_run(self, spec: AgentSpec, rng: random.Random, t_rel: float) -> int:
        active = {i.kind: i for i in self.schedule.active(spec.agent_id, t_rel)}
        version = spec.pick_version(rng)
        tracer = self.tracer(spec, version)
        fingerprint = credential_fingerprint(spec.agent_id)
        if "shared_credential" in active:
            fingerprint = credential_fingerprint(str(active["shared_credential"].params["shares_with"]))
        escalated = rng.random() < spec.escalate_rate
        events = 2  # RunStarted + RunFinished
        outcome = "success"
        with self.clock.bind():
            try:
                with tracer.run(spec.agent_id, workflow=spec.workflow, principal=spec.principal,
                                credential_fingerprint=fingerprint, max_steps=spec.max_steps,
                                max_tool_calls=spec.max_tool_calls, max_prompt_tokens=spec.max_prompt_tokens,
                                max_completion_tokens=spec.max_completion_tokens,
                                max_cost_usd=spec.max_cost_usd) as run:
                    refund = rng.lognormvariate(4.2, 0.9)  # median ~ $67, a tail above $250
                    for step in spec.plan:
                        self.clock.advance_ms(rng.uniform(5, 40))  # the agent's own thinking time
                        if step == "model":
                            events += self._model_call(run, spec, rng, escalated, active.get("cost_spike"))
                        else:
                            events += self._tool_call(run, spec, spec.tools[step], rng, refund, active)
                    loop = active.get("runaway_loop")
                    if loop is not None and loop.tool is not None:
                        args = tool_args(loop.tool, random.Random(42), refund)  # the same args every time
                        for _ in range(int(loop.params.get("repeats", 8))):
                            with run.tool_call(loop.tool, args, risk=spec.tools[loop.tool].risk.value) as _call:
                                self.clock.advance_ms(lognormal_ms(rng, spec.tools[loop.tool].median_ms, 0.3))
                            events += 1
            except ToolBlocked:
                outcome = "blocked"
                self.stats.add(blocked_calls=1)
                events += 1
            except (SimulatedToolError, SimulatedTimeout):
                outcome = "failure"
            except Exception as e:  # e.g. a budget the agent ran into
                outcome = type(e).__name__
        self.stats.add(runs=1)
        with self.stats._lock:
            self.stats.outcomes[outcome] += 1
        return events

    def _model_call(self, run: object, spec: AgentSpec, rng: random.Random, escalated: bool,
                    spike: Incident | None) -> int:
        m = spec.escalate_model if (escalated or spike is not None) else spec.default_model
        lo, hi = spec.prompt_tokens
        prompt = int(rng.uniform(lo, hi))
        completion = int(rng.uniform(*spec.completion_tokens))
        if spike is not None:
            mult = int(spike.params.get("token_multiplier", 10))
            prompt, completion = prompt * mult, completion * mult
        cached = int(prompt * spec.cache_share * rng.random())
        reasoning = int(completion * rng.uniform(1.0, 3.0)) if m.reasoning else 0
        with run.model_call(provider=m.provider, model=m.model) as call:  # type: ignore[attr-defined]
            latency = lognormal_ms(rng, m.median_ms * (1 + completion / 800), m.sigma)
            self.clock.advance_ms(latency)
            if rng.random() < 0.004:
                raise SimulatedTimeout(f"{m.model} timed out")
            call.record_usage(input_tokens=prompt - cached, cache_read_tokens=cached, output_tokens=completion,
                              reasoning_tokens=reasoning, response_model=m.model, finish_reason="stop")
        return 1

    def _tool_call(self, run: object, spec: AgentSpec, tool: ToolSpec, rng: random.Random, refund: float,
                   active: dict[str, Incident]) -> int:
        args = tool_args(tool.name, rng, refund)
        risk = tool.risk
        if tool.name == "stripe.issue_refund":
            risk = Risk.HIGH if refund > 250 else Risk.MEDIUM
        unapproved = active.get("high_risk_unapproved")
        if unapproved is not None and unapproved.tool == tool.name:
            args["amount_usd"] = float(unapproved.params.get("amount_usd", 480.0))
            risk = Risk.HIGH
        pii = active.get("pii_in_args")
        if pii is not None and pii.tool == tool.name:
            args["note"] = " / ".join(PII_CORPUS)
        error_rate = tool.error_rate
        burst = active.get("tool_error_burst")
        if burst is not None and burst.tool == tool.name:
            error_rate = float(burst.params.get("error_rate", 0.5))
        slow = active.get("latency_slo_breach")
        median = tool.median_ms * (float(slow.params.get("slowdown", 10)) if slow and slow.tool == tool.name else 1)
        with run.tool_call(tool.name, args, risk=risk.value, side_effect=tool.side_effect,  # type: ignore[attr-defined]
                           idempotency_key=f"{tool.name}:{rng.getrandbits(64):016x}" if tool.side_effect else None):
            self.clock.advance_ms(lognormal_ms(rng, median, tool.sigma))
            if rng.random() < error_rate:
                self.stats.add(tool_errors=1)
                raise SimulatedToolError(f"{tool.name} returned 503")
        return 1
