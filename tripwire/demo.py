"""``tripwire demo``: the whole product on one machine with no servers.

One process holds everything, because chdb binds its folder to one process: the simulated fleet
(real SDK), the embedded runtime (the faust app's operators, the kill-switch policy, the batching
sink) writing into chdb under ``./.tripwire/``, and, unless ``--no-dashboard``, the Streamlit
dashboard served from the same process and reading the same store. Ctrl-C (or the end of
``--duration``) stops the fleet, flushes the SDK, drains the runtime and flushes the sink: nothing
buffered is lost. Re-running continues the same data: the kill switches in force are restored from
the audit table (the agents obey them from their first call), the policy's trips from its snapshot,
and the incident cycle continues with the next cycle number.

Without ``--duration`` the incidents come on a cycle (:class:`~tripwire.sim.incidents.IncidentCycle`:
the first 10 s in, all seven kinds within the first minute of every 180 s cycle, forever); with it,
the standard schedule spreads them over the run. :class:`~tripwire.demo_feed.StoryFeed` tells each
incident's story (injected, alert, kill switch, calls blocked, reset) in the terminal and the dashboard.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tripwire.demo_feed import StoryFeed
from tripwire.embedded import EmbeddedRuntime
from tripwire.killswitch import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    CommandSigner,
    CommandVerifier,
    KillSwitchConfig,
    KillSwitchState,
    generate_keypair,
    load_public_key,
)
from tripwire.processors.killswitch_policy import KillSwitchPolicy, load_killswitch_policy
from tripwire.processors.policy import load_policy
from tripwire.producers import Tracer, TracerConfig
from tripwire.producers.killswitch import KillSwitchGuard
from tripwire.schemas import KillSwitchCommand
from tripwire.sim import Fleet, FleetConfig
from tripwire.sim.guards import BlockCounter, ChainGuard, RiskTierGuard, SimulatedApprover
from tripwire.sim.incidents import Incident, IncidentCycle, IncidentSchedule, next_cycle
from tripwire.sim.release import PacedRelease
from tripwire.sim.workflows import AgentSpec
from tripwire.sinks import run_query
from tripwire.sinks.migrations import migrate
from tripwire.sinks.store import Store, open_store

log = logging.getLogger(__name__)

DEMO_POLICY = Path(__file__).with_name("demo_policy.yaml")
DEMO_KILLSWITCH_POLICY = Path(__file__).with_name("demo_killswitch_policy.yaml")
GROUND_TRUTH = "ground_truth.jsonl"
LAST_RUN = "last_run.json"
POLICY_STATE = "killswitch_policy.json"


@dataclass(frozen=True)
class DemoConfig:
    folder: Path = Path(".tripwire")
    duration_s: float | None = None  # None: until Ctrl-C
    rate: float = 400.0
    agents: int = 10
    seed: int = 7
    dashboard: bool = True
    port: int = 8501
    address: str = "127.0.0.1"
    policy: Path | None = None  # processor policy YAML (default: the demo's shortened time scales)
    otlp_port: int | None = None  # accept OTLP/HTTP traces on this port into the same pipeline (None: off)

    @property
    def store_url(self) -> str:
        return f"chdb://{(self.folder / 'chdb').resolve()}"


def _keys(folder: Path) -> tuple[CommandSigner, CommandVerifier]:
    keys = folder / "keys"
    private, public = keys / PRIVATE_KEY_FILE, keys / PUBLIC_KEY_FILE
    if not private.exists():
        generate_keypair(keys)
    return CommandSigner.from_file(private), CommandVerifier([load_public_key(public)])


class Demo:
    def __init__(self, config: DemoConfig, store: Store | None = None) -> None:
        self.config = config
        config.folder.mkdir(parents=True, exist_ok=True)
        self.store = store or open_store(config.store_url)
        migrate(self.store)
        signer, verifier = _keys(config.folder)
        self.ks_state = KillSwitchState(verifier)
        self.ks_guard = KillSwitchGuard(KillSwitchConfig(enabled=True), state=self.ks_state, start=False)
        state_dir = config.folder / "state"
        policy = load_policy(config.policy or DEMO_POLICY)
        pipeline = EmbeddedRuntime.restore_pipeline(state_dir, policy)
        self.ks_policy = KillSwitchPolicy(load_killswitch_policy(DEMO_KILLSWITCH_POLICY), signer)
        self._restore_policy(state_dir)
        self.blocks = BlockCounter(self.ks_guard)
        self.feed = StoryFeed(blocked=self.blocks.blocked)
        self.runtime = EmbeddedRuntime(self.store, signer=signer, killswitch_states=[self.ks_state],
                                       pipeline=pipeline, policy=self.ks_policy, state_dir=state_dir,
                                       on_alert=self.feed.alert, on_command=self.feed.command)
        self.restored_switches = self._restore_switches()
        ground_truth = config.folder / GROUND_TRUTH
        schedule: IncidentSchedule
        if config.duration_s is None:  # open-ended: incidents on a cycle, continuing the last run's
            schedule = IncidentCycle(first_cycle=next_cycle(ground_truth), seed=config.seed)
            duration = 365 * 86400.0
        else:
            schedule = IncidentSchedule.standard(config.duration_s)
            duration = config.duration_s
        self.fleet = Fleet(
            FleetConfig(duration_s=duration, rate=config.rate, agents=config.agents, seed=config.seed,
                        ground_truth=ground_truth),
            self._tracer,
            schedule=schedule,
            on_incident=self._incident_started,
        )
        # A misconfigured agent skips its approval step while its incident is on (guard 0 = risk tier).
        self.guard = ChainGuard([RiskTierGuard(), self.blocks], skip=self._skips_approval)
        self.approver = SimulatedApprover(config.seed)
        self.release = PacedRelease(self.runtime.submit)
        self.started_at = 0.0
        self.otlp: Any = None  # (receiver, servers) when OTLP is on

    def _incident_started(self, inc: Incident, _on: bool) -> None:
        self.feed.incident(inc, self.fleet.stats.started_at + inc.start_s)

    def _restore_policy(self, state_dir: Path) -> None:
        path = state_dir / POLICY_STATE
        if path.exists():
            try:
                self.ks_policy.load_state(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError) as e:  # a damaged snapshot must not stop the demo
                log.warning("kill-switch policy snapshot unreadable, starting empty error=%s", e)

    def _restore_switches(self) -> int:
        """Re-apply the signed commands in force (from the audit table) to the agents' state, as the
        SDK's listener would on start from the compacted topic; the state verifies each signature."""
        rows = run_query(self.store, "killswitch_commands_in_force", now=datetime.now(UTC)).rows
        applied = 0
        for scope, c in rows:
            cmd = KillSwitchCommand(
                command_id=c[0], scope=scope, action=c[1], min_risk=c[2], throttle_per_minute=c[3],
                issued_at=_utc(c[4]), expires_at=_utc(c[5]) if c[5] is not None else None, reason=c[6],
                alert_id=c[7], issued_by=c[8], nonce=c[9], key_id=c[10],
                signature=bytes.fromhex(c[11]) if c[11] else None,
            )
            res = self.ks_state.apply(cmd, key=scope)
            applied += int(res.accepted)
            if not res.accepted:
                log.warning("stored kill-switch command refused on restore scope=%s reason=%s", scope, res)
        if applied:
            log.info("kill switches restored from the audit table count=%d", applied)
        return applied

    def _skips_approval(self, request: Any, index: int) -> bool:
        if index != 0:
            return False
        t_rel = time.time() - self.fleet.stats.started_at
        return any(i.kind == "high_risk_unapproved" and i.tool == request.tool_name
                   for i in self.fleet.schedule.active(request.agent_id, t_rel))

    def _tracer(self, spec: AgentSpec, version: str) -> Tracer:
        cfg = TracerConfig(
            tenant=spec.tenant, agent_version=version, environment="demo",
            delivery={"spool_dir": str(self.config.folder / "spool" / f"{spec.agent_id}-{version}")},
        )
        return Tracer.in_process(self.release, cfg, guard=self.guard, approver=self.approver)

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.started_at = time.time()
        self.runtime.start()
        if self.config.otlp_port is not None:
            self.otlp = self._start_otlp(self.config.otlp_port)
        self._fleet_thread = threading.Thread(target=self.fleet.run, name="tripwire-fleet", daemon=True)
        self._fleet_thread.start()

    def _start_otlp(self, port: int) -> Any:
        """The OTLP receiver, publishing straight into the embedded runtime (real-time spans are not paced)."""
        from tripwire.core.errors import MissingExtraError
        from tripwire.producers import QueueTransport

        try:
            from tripwire.producers.otlp import OtlpReceiver, OtlpSettings, serve
        except MissingExtraError as e:
            log.warning("demo OTLP receiver off: %s", e)
            return None
        cfg = TracerConfig(environment="demo", delivery={"spool_dir": str(self.config.folder / "spool" / "otlp"),
                                                         "transport": "queue", "handle_signals": False})
        receiver = OtlpReceiver(OtlpSettings(host=self.config.address, http_port=port, grpc_enabled=False), cfg,
                                transport=QueueTransport(self.runtime.submit))
        try:
            servers = serve(receiver)
        except OSError as e:
            log.warning("demo OTLP receiver off: cannot listen on port %d: %s", port, e)
            receiver.close(1)
            return None
        assert servers.http is not None
        log.info("demo OTLP/HTTP receiver listening port=%d", servers.http.port)
        return receiver, servers

    @property
    def otlp_port(self) -> int | None:
        return self.otlp[1].http.port if self.otlp is not None else None

    def running(self) -> bool:
        return self._fleet_thread.is_alive()

    def stop(self) -> dict[str, Any]:
        """Stop the fleet, deliver every event the SDK holds, drain the runtime, flush the sink."""
        self.fleet.stop()
        self._fleet_thread.join(timeout=60)
        undelivered = 0
        for t in self.fleet.tracers:
            if not t.close(timeout=30):
                undelivered += 1
        otlp_clean = True
        if self.otlp is not None:
            receiver, servers = self.otlp
            servers.stop()
            otlp_clean = receiver.close(30)
        self.release.close()
        drained = self.runtime.stop()
        state_dir = self.config.folder / "state"
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / POLICY_STATE).write_text(json.dumps(self.ks_policy.to_state()))
        summary = self.summary()
        summary.update(drained=drained, tracers_not_flushed=undelivered + (0 if otlp_clean else 1),
                       stopped_epoch_s=time.time(), started_epoch_s=self.fleet.stats.started_at)
        (self.config.folder / LAST_RUN).write_text(json.dumps(summary, indent=2, sort_keys=True))
        return summary

    def summary(self) -> dict[str, Any]:
        elapsed = max(1e-9, time.time() - self.started_at)
        counters = [t.counters() for t in self.fleet.tracers]
        rs = self.runtime.stats
        return {
            "elapsed_s": round(elapsed, 2),
            "emitted": sum(c.emitted for c in counters),
            "delivered": sum(c.delivered for c in counters),
            "spooled": sum(c.spooled for c in counters),
            "dropped": sum(c.dropped for c in counters),
            "processed": rs.events,
            "events_per_s": round(rs.events / elapsed, 1),
            "runs": self.fleet.stats.runs,
            "runs_closed": rs.runs_closed,
            "cost_usd": round(rs.cost_usd, 4),
            "alerts": dict(rs.alerts),
            "killswitch_commands": rs.commands,
            "dead_letters": rs.dead_letters,
            "internal_errors": rs.internal_errors,
            "blocked_calls": self.ks_guard.blocked,
            "outcomes": dict(self.fleet.stats.outcomes),
            "otlp": self.otlp[0].counters.as_dict() if self.otlp is not None else None,
            "restored_switches": self.restored_switches,
            "incidents": [_story(s) for s in self.feed.stories()],
        }


def _utc(value: Any) -> datetime:
    ts = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _story(s: Any) -> dict[str, Any]:
    """One incident's story for last_run.json: when each step happened (epoch seconds)."""
    return {"incident_id": s.incident_id, "kind": s.kind, "agent_id": s.agent_id, "injected_at": s.injected_at,
            "alert_at": s.alert_at, "alert_id": s.alert_id, "command_id": s.command_id, "action": s.action,
            "scope": s.scope, "blocked": s.blocked, "reset_at": s.reset_at, "line": s.text()}


def run_demo(config: DemoConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run the demo until the duration ends or Ctrl-C; returns the final summary."""
    demo = Demo(config)
    demo.start()
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if not config.dashboard:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if config.dashboard:
            _serve_dashboard(demo, config, progress)
        else:
            _watch(demo, stop, progress)
    finally:
        signal.signal(signal.SIGINT, previous)
        summary = demo.stop()
    return summary


def _watch(demo: Demo, stop: threading.Event, progress: bool) -> None:
    if not progress:
        while demo.running() and not stop.is_set():
            stop.wait(0.5)
        return
    from rich.live import Live

    with Live(_table(demo), refresh_per_second=2, transient=False) as live:
        while demo.running() and not stop.is_set():
            stop.wait(0.5)
            demo.feed.tick()
            live.update(_table(demo))


def _serve_dashboard(demo: Demo, config: DemoConfig, progress: bool) -> None:
    from tripwire.dashboard import data, server

    data.set_store(demo.store)
    data.set_feed(demo.feed.rows)
    if progress:
        threading.Thread(target=_log_progress, args=(demo,), daemon=True, name="tripwire-progress").start()
    if config.duration_s is not None:
        threading.Timer(config.duration_s, lambda: signal.raise_signal(signal.SIGINT)).start()
    server.serve(port=config.port, address=config.address)  # blocks until Ctrl-C


def _log_progress(demo: Demo) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    shown: dict[str, str] = {}
    last_rates = 0.0
    while demo.running():
        time.sleep(1)
        demo.feed.tick()
        for story in demo.feed.stories():  # a story line is printed again each time it grows
            line = story.text()
            if shown.get(story.incident_id) != line:
                shown[story.incident_id] = line
                console.print(f"[cyan]{story.incident_id}[/] {line}")
        if time.monotonic() - last_rates >= 5:
            last_rates = time.monotonic()
            s = demo.summary()
            console.print(f"[bold]tripwire demo[/] {s['events_per_s']:.0f} ev/s  runs={s['runs']}  "
                          f"cost=${s['cost_usd']:.2f}  alerts={sum(s['alerts'].values())}  "
                          f"kill switches={s['killswitch_commands']}  blocked={s['blocked_calls']}")


def _table(demo: Demo) -> Any:
    from rich.table import Table

    s = demo.summary()
    t = Table(title="tripwire demo (Ctrl-C stops and flushes)", show_header=False)
    t.add_row("events/s", f"{s['events_per_s']:.0f}")
    t.add_row("events emitted / processed", f"{s['emitted']} / {s['processed']}")
    t.add_row("runs", str(s["runs"]))
    t.add_row("cost so far", f"${s['cost_usd']:.2f}")
    t.add_row("alerts by kind", ", ".join(f"{k}={v}" for k, v in sorted(s["alerts"].items())) or "-")
    t.add_row("kill switches tripped", str(s["killswitch_commands"]))
    t.add_row("calls blocked by kill switch", str(s["blocked_calls"]))
    lines = demo.feed.lines(8)
    t.add_row("what happened", "\n".join(lines) if lines else "(first incident ~10 s in)")
    return t
