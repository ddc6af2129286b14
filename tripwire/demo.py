"""``tripwire demo``: the whole product on one machine with no servers.

One process holds everything, because chdb binds its folder to one process: the simulated fleet
(real SDK), the embedded runtime (the faust app's operators, the kill-switch policy, the batching
sink) writing into chdb under ``./.tripwire/``, and, unless ``--no-dashboard``, the Streamlit
dashboard served from the same process and reading the same store. Ctrl-C (or the end of
``--duration``) stops the fleet, flushes the SDK, drains the runtime and flushes the sink: nothing
buffered is lost. Re-running continues the same data.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from tripwire.processors.policy import load_policy
from tripwire.producers import Tracer, TracerConfig
from tripwire.producers.killswitch import KillSwitchGuard
from tripwire.sim import Fleet, FleetConfig
from tripwire.sim.guards import ChainGuard, RiskTierGuard, SimulatedApprover
from tripwire.sim.release import PacedRelease
from tripwire.sim.workflows import AgentSpec
from tripwire.sinks.migrations import migrate
from tripwire.sinks.store import Store, open_store

log = logging.getLogger(__name__)

DEMO_POLICY = Path(__file__).with_name("demo_policy.yaml")
GROUND_TRUTH = "ground_truth.jsonl"
LAST_RUN = "last_run.json"


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
        self.runtime = EmbeddedRuntime(self.store, signer=signer, killswitch_states=[self.ks_state],
                                       pipeline=pipeline, state_dir=state_dir)
        duration = config.duration_s if config.duration_s is not None else 365 * 86400.0
        self.fleet = Fleet(
            FleetConfig(duration_s=duration, rate=config.rate, agents=config.agents, seed=config.seed,
                        ground_truth=config.folder / GROUND_TRUTH),
            self._tracer,
        )
        # A misconfigured agent skips its approval step while its incident is on (guard 0 = risk tier).
        self.guard = ChainGuard([RiskTierGuard(), self.ks_guard], skip=self._skips_approval)
        self.approver = SimulatedApprover(config.seed)
        self.release = PacedRelease(self.runtime.submit)
        self.started_at = 0.0
        self.otlp: Any = None  # (receiver, servers) when OTLP is on

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
        summary = self.summary()
        summary.update(drained=drained, tracers_not_flushed=undelivered + (0 if otlp_clean else 1))
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
        }


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
            live.update(_table(demo))


def _serve_dashboard(demo: Demo, config: DemoConfig, progress: bool) -> None:
    from tripwire.dashboard import data, server

    data.set_store(demo.store)
    if progress:
        threading.Thread(target=_log_progress, args=(demo,), daemon=True, name="tripwire-progress").start()
    if config.duration_s is not None:
        threading.Timer(config.duration_s, lambda: signal.raise_signal(signal.SIGINT)).start()
    server.serve(port=config.port, address=config.address)  # blocks until Ctrl-C


def _log_progress(demo: Demo) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    while demo.running():
        time.sleep(5)
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
    return t
