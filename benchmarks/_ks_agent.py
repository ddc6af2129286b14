"""An agent process for kill-switch tests and benchmarks: a real Tracer with a KillSwitchGuard, driven
by JSON lines on stdin and answering with JSON lines on stdout.

    python -m benchmarks._ks_agent --bootstrap B --killswitch-topic K --events-topic E --public-key P

Requests (one JSON object per line):
- ``{"op": "call", "tool": T, "risk": R, "args": {...}}``: one traced tool call (``run.tool_call``);
  answers ``{"status": "ok"}`` or ``{"status": "blocked"|"denied", "error": type, "reason": ...}``.
- ``{"op": "watch", "tool": T, "risk": R, "timeout": S}``: answers ``{"watching": true}``, then asks the
  guard before every (would-be) call until the tool is refused, then makes one real call (which must be
  refused) and answers ``{"blocked_at": unix time, "status": ..., "error": ...}`` or ``{"timeout": true}``.
- ``{"op": "loop", "tool": T, "args": {...}, "max": N, "timeout": S}``: a runaway loop: the same tool with
  the same arguments, call after call, in a new run, until the kill switch stops it; answers with the number of calls
  that ran, the unix time each was emitted and when the first refused call happened.
- ``{"op": "stats"}``: guard counters. ``{"op": "exit"}``: flush and exit.
At start it prints ``{"ready": bool, "startup_s": s, "first_call": status}`` after its first guarded call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--killswitch-topic", required=True)
    p.add_argument("--events-topic", required=True)
    p.add_argument("--public-key", required=True)
    p.add_argument("--agent", default="refund-assistant")
    p.add_argument("--tenant", default="acme")
    p.add_argument("--staleness", type=float, default=15.0)
    p.add_argument("--spool-dir", default=None)
    p.add_argument("--first-tool", default="startup.probe")
    p.add_argument("--first-risk", default="low")
    args = p.parse_args(argv)

    from tripwire.killswitch import KillSwitchConfig
    from tripwire.producers import ToolBlocked, Tracer, TracerConfig
    from tripwire.producers.guard import ALLOW, ToolRequest
    from tripwire.producers.killswitch import KillSwitchGuard
    from tripwire.schemas.enums import Risk

    t0 = time.monotonic()
    guard = KillSwitchGuard(KillSwitchConfig(
        bootstrap=args.bootstrap, topic=args.killswitch_topic, public_key_path=args.public_key,
        staleness_s=args.staleness, heartbeat_s=0.2, ready_timeout_s=15.0))
    delivery: dict[str, Any] = {"flush_timeout_s": 10, "close_timeout_s": 10}
    if args.spool_dir:
        delivery["spool_dir"] = args.spool_dir
    else:
        delivery["spool_enabled"] = False
    config = TracerConfig(tenant=args.tenant, agent_version="1.0",
                          kafka={"bootstrap": args.bootstrap, "topic": args.events_topic, "linger_ms": 1},
                          delivery=delivery)
    tracer = Tracer(config, guard=guard)
    run = tracer.run(args.agent, workflow="ks-test")
    run.__enter__()

    def call(tool: str, risk: str = "low", call_args: Any = None) -> dict[str, Any]:
        try:
            with run.tool_call(tool, call_args, risk=risk):
                pass
            return {"status": "ok"}
        except ToolBlocked as e:
            return {"status": e.status, "error": type(e).__name__, "reason": e.reason}

    first = call(args.first_tool, args.first_risk)
    _emit({"ready": guard.state.ready.is_set(), "startup_s": time.monotonic() - t0, "first_call": first["status"],
           "first_error": first.get("error")})

    def refused(tool: str, risk: str) -> bool:
        request = ToolRequest(tenant=args.tenant, agent_id=args.agent, agent_version="1.0", workflow="ks-test",
                              environment="dev", principal=None, credential_fingerprint=None, run_id=run.run_id,
                              trace_id=run.trace_id, tool_name=tool, tool_call_id=uuid.uuid4().hex, risk=Risk(risk),
                              side_effect=False, idempotency_key=None, args=None)
        try:
            return guard.check(request) is not ALLOW
        except ToolBlocked:
            return True

    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "call":
            _emit(call(req["tool"], req.get("risk", "low"), req.get("args")))
        elif op == "watch":
            _emit({"watching": True})
            deadline = time.monotonic() + req.get("timeout", 10.0)
            while not refused(req["tool"], req.get("risk", "low")):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.0002)
            else:
                blocked_at = time.time()
                _emit({"blocked_at": blocked_at, **call(req["tool"], req.get("risk", "low"))})
                continue
            _emit({"timeout": True})
        elif op == "loop":
            # Call after call with the same arguments; between calls, keep asking the guard (every 0.5 ms)
            # so the moment the kill switch lands is seen precisely, not rounded up to the next call.
            if req.get("new_run", True):  # a runaway loop is one run of the agent
                run.__exit__(None, None, None)
                run = tracer.run(args.agent, workflow="ks-test")
                run.__enter__()
            ran = 0
            emitted: list[float] = []
            tool, risk, pause = req["tool"], req.get("risk", "low"), req.get("pause", 0.05)
            deadline = time.monotonic() + req.get("timeout", 20.0)
            outcome: dict[str, Any] = {"timeout": True}
            next_call = time.monotonic()
            while ran < req.get("max", 10_000) and time.monotonic() < deadline:
                if refused(tool, risk):
                    outcome = {"blocked_at": time.time(), **call(tool, risk, req.get("args"))}
                    break
                if time.monotonic() < next_call:
                    time.sleep(0.0005)
                    continue
                result = call(tool, risk, req.get("args"))
                if result["status"] != "ok":
                    outcome = {"blocked_at": time.time(), **result}
                    break
                ran += 1
                emitted.append(time.time())
                next_call = time.monotonic() + pause
            _emit({"ran": ran, "emitted_at": emitted, **outcome})
        elif op == "stats":
            _emit({"rejected": guard.rejected, "accepted": guard.state.accepted, "records": guard.listener.records,
                   "blocked": guard.blocked})
        elif op == "exit":
            break
    run.__exit__(None, None, None)
    tracer.close(10)
    guard.close()
    _emit({"closed": True})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
