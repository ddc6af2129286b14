"""Framework adapters: what tripwire costs on the agent's thread per tool call, and how fast a kill-switch trip
stops a framework agent's next tool call.

- ``*_tool_overhead``: per tool call, the framework's own tool path (LangChain ``tool.invoke``; an Agents SDK
  ``FunctionTool`` invoked inside a trace and a function span, as the runner does; the Claude Agent SDK's
  PreToolUse + PostToolUse hook functions) with the adapter, minus the same path with no tracing at all. The
  adapter records into a real run (budget, a real :class:`KillSwitchGuard` fed by the broker, redaction, the
  event handed to the delivery worker). Where an OpenTelemetry instrumentation of the framework exists
  (OpenInference's, ``pip install openinference-instrumentation-langchain openinference-instrumentation-openai-
  agents``), its overhead is measured the same way with a ``BatchSpanProcessor`` and a no-op exporter, and the
  ratio is tripwire's overhead over OTel's (goal: <= 1). The Claude figure is the hook functions alone: the
  CLI's own hook round trip (JSON over stdio) is the framework's cost of having hooks and is not included.
- ``adapter_ks_trip_to_block``: a signed ``freeze_tool`` published to the broker -> the next ``tool.invoke``
  of a LangChain agent looping on its tool (every 5 ms) is refused by the adapter; p50/p95 over ``TRIPS``
  trips (goal: p95 < 1 s).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, bootstrap, percentile

CALLS = 2000
ROUNDS = 7
TRIPS = 20
AGENT = "bench-agent"


def _per_call_us(fn: Callable[[int], None], n: int = CALLS) -> float:
    t0 = time.perf_counter()
    fn(n)
    return (time.perf_counter() - t0) / n * 1e6


def _interleaved(fns: dict[str, Callable[[int], None]], rounds: int = ROUNDS) -> dict[str, float]:
    """Best per-call µs of each path over ``rounds``, run alternately so machine noise hits them alike (the
    best, not the median: on a shared machine the noise only ever adds)."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn(200)  # warm-up
    for _ in range(rounds):
        for k, fn in fns.items():
            samples[k].append(_per_call_us(fn))
    return {k: min(v) for k, v in samples.items()}


def _otel_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


def _figures(name: str, times: dict[str, float]) -> list[Result]:
    ours = times["tripwire"] - times["none"]
    extra: dict[str, Any] = {"per_call_us": {k: round(v, 2) for k, v in times.items()}}
    if "otel" not in times:
        return [Result(f"{name}_tool_overhead", ours, "us", extra={**extra, "otel": "not measured"})]
    theirs = times["otel"] - times["none"]
    return [Result(f"{name}_tool_overhead", ours, "us", ratio=ours / theirs if theirs > 0 else None,
                   baseline=theirs, goal="<= OTel instrumentation's overhead", extra=extra)]


# -- LangChain -------------------------------------------------------------------------------------------
def _langchain(tracer: Any) -> list[Result]:
    from langchain_core.tools import tool

    from tripwire.producers.adapters.langchain import TripwireCallbackHandler

    @tool
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    fns: dict[str, Callable[[int], None]] = {}
    args = {"order_id": "A-1001"}

    def path(cfg: Any) -> Callable[[int], None]:
        def calls(n: int) -> None:
            for _ in range(n):
                lookup.invoke(args, config=cfg)

        return calls

    provider = None
    try:  # OpenInference's handler, passed like ours instead of patched into every callback manager
        from openinference.instrumentation.langchain import LangChainInstrumentor

        inst = LangChainInstrumentor()
        provider = _otel_provider()
        inst.instrument(tracer_provider=provider)
        otel_handler = inst._tracer
        inst.uninstrument()
        fns["otel"] = path({"callbacks": [otel_handler]})
    except ImportError:
        pass
    with tracer.run(AGENT, workflow="bench") as run:
        fns["none"] = path({})
        fns["tripwire"] = path({"callbacks": [TripwireCallbackHandler(tracer, run=run)]})
        times = _interleaved(fns)
    if provider is not None:
        provider.shutdown()
    return _figures("langchain", times)


# -- OpenAI Agents SDK -----------------------------------------------------------------------------------
def _openai_agents(tracer: Any) -> list[Result]:
    from agents import function_tool, set_trace_processors, trace
    from agents.tool_context import ToolContext
    from agents.tracing import function_span

    from tripwire.producers.adapters.openai_agents import TripwireProcessor

    @function_tool
    async def lookup(order_id: str) -> str:  # async: a sync tool adds a thread hop whose noise hides the figures
        """Look an order up."""
        return order_id

    raw = '{"order_id": "A-1001"}'
    ctx = ToolContext(context=None, tool_name="lookup", tool_call_id="call_1", tool_arguments=raw)
    processor = TripwireProcessor(tracer, agent_id=AGENT)
    guarded = processor.guard_tool(lookup)

    def path(tool: Any) -> Callable[[int], None]:
        async def calls(n: int) -> None:
            with trace("bench"):
                for _ in range(n):
                    with function_span("lookup"):
                        await tool.on_invoke_tool(ctx, raw)

        return lambda n: asyncio.run(calls(n))

    fns: dict[str, Callable[[int], None]] = {}

    def with_processor(procs: list[Any], tool: Any) -> Callable[[int], None]:
        def calls(n: int) -> None:
            set_trace_processors(procs)
            path(tool)(n)

        return calls

    provider = None
    try:  # OpenInference's processor, registered alone for its rounds (as ours is for ours)
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

        inst = OpenAIAgentsInstrumentor()
        provider = _otel_provider()
        inst.instrument(tracer_provider=provider)
        fns["otel"] = with_processor([inst._processor], lookup)
    except ImportError:
        pass
    fns["none"] = with_processor([], lookup)
    fns["tripwire"] = with_processor([processor], guarded)
    try:
        times = _interleaved(fns)
    finally:
        set_trace_processors([])
        if provider is not None:
            inst.uninstrument()
            provider.shutdown()
    return _figures("openai_agents", times)


# -- Claude Agent SDK ------------------------------------------------------------------------------------
def _claude_agent(tracer: Any) -> list[Result]:
    from tripwire.producers.adapters.claude_agent import TripwireHooks

    with tracer.run(AGENT, workflow="bench") as run:
        tw = TripwireHooks(tracer, run=run)
        common = {"session_id": "s", "transcript_path": "/dev/null", "cwd": "/", "tool_name": "lookup",
                  "tool_input": {"order_id": "A-1001"}}
        ctx: Any = {"signal": None}

        async def calls(n: int) -> None:
            for i in range(n):
                tid = f"toolu_{i}"
                await tw.pre_tool_use({**common, "hook_event_name": "PreToolUse", "tool_use_id": tid}, tid, ctx)
                await tw.post_tool_use({**common, "hook_event_name": "PostToolUse", "tool_use_id": tid,
                                        "tool_response": "A-1001"}, tid, ctx)

        async def empty(n: int) -> None:
            for i in range(n):
                tid = f"toolu_{i}"
                _ = ({**common, "hook_event_name": "PreToolUse", "tool_use_id": tid},
                     {**common, "hook_event_name": "PostToolUse", "tool_use_id": tid, "tool_response": "A-1001"})

        times = _interleaved({"none": lambda n: asyncio.run(empty(n)), "tripwire": lambda n: asyncio.run(calls(n))})
    return _figures("claude_agent", times)


# -- kill switch -> the framework's next tool call -------------------------------------------------------
def _trip_to_block(tracer: Any, guard: Any, publisher: Any, trips: int) -> tuple[list[float], list[float]]:
    """Seconds from calling publish() to the refused call, and from publish() returning (the command acked
    by the broker) to the refused call."""
    from langchain_core.tools import tool

    from tripwire.killswitch import new_command
    from tripwire.producers.adapters.langchain import TripwireCallbackHandler
    from tripwire.producers.killswitch import ToolFrozen

    @tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        return order_id

    scope = f"agent:{AGENT}/tool:refund"
    blocked_at: list[float] = []
    ok = threading.Event()
    blocked = threading.Event()
    stop = threading.Event()

    def agent() -> None:
        with tracer.run(AGENT, workflow="bench-ks") as run:
            cfg: Any = {"callbacks": [TripwireCallbackHandler(tracer, run=run)]}
            while not stop.is_set():
                try:
                    refund.invoke({"order_id": "A-1"}, config=cfg)
                    ok.set()
                except ToolFrozen:
                    if not blocked.is_set():
                        blocked_at.append(time.perf_counter())
                        blocked.set()
                stop.wait(0.005)

    # LangChain logs every refusal its handler raises (a warning per blocked call of the 5 ms loop)
    logging.getLogger("langchain_core.callbacks.manager").setLevel(logging.ERROR)
    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    samples: list[float] = []
    after_publish: list[float] = []
    try:
        for _ in range(trips):
            ok.clear()
            if not ok.wait(10):
                raise RuntimeError("the agent's tool never ran")
            blocked.clear()
            t0 = time.perf_counter()
            publisher.publish(new_command(scope=scope, action="freeze_tool", reason="bench", issued_by="bench"))
            t1 = time.perf_counter()
            if not blocked.wait(10):
                raise RuntimeError("the trip never blocked the agent")
            samples.append(blocked_at[-1] - t0)
            after_publish.append(blocked_at[-1] - t1)
            publisher.publish(new_command(scope=scope, action="resume", reason="bench", issued_by="bench"))
            ok.clear()
    finally:
        stop.set()
        thread.join(10)
    return samples, after_publish


def run(trips: int = TRIPS) -> list[Result]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.helpers import uid
    from tripwire.killswitch import CommandPublisher, CommandSigner, CommandVerifier, KillSwitchConfig, ensure_topic
    from tripwire.producers import Tracer, TracerConfig
    from tripwire.producers.killswitch import KillSwitchGuard

    ks = KillSwitchConfig(bootstrap=bootstrap(), topic=uid("bench_adapt_ks"), heartbeat_s=0.2, ready_timeout_s=10)
    ensure_topic(ks)
    signer = CommandSigner(Ed25519PrivateKey.generate())
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_adapters_") as tmp, \
            KillSwitchGuard(ks, verifier=CommandVerifier([signer.public_key()])) as guard, \
            CommandPublisher(ks, signer) as publisher:
        guard.wait_ready(15)
        cfg = TracerConfig(agent={"name": AGENT}, delivery={"spool_dir": Path(tmp) / "spool",
                                                           "handle_signals": False})
        tracer = Tracer.in_process(lambda k, v: None, cfg, guard=guard)
        try:
            for bench in (_langchain, _openai_agents, _claude_agent):
                results += bench(tracer)
            samples, after_publish = _trip_to_block(tracer, guard, publisher, trips)
        finally:
            tracer.close(10)
    extra = {"samples": len(samples), "path": "sign+publish -> LangChain tool.invoke refused by the adapter",
             "after_publish_acked_ms_p50_p95": [round(percentile(after_publish, q) * 1000, 1) for q in (50, 95)]}
    results += [Result("adapter_ks_trip_to_block_p50", percentile(samples, 50) * 1000, "ms", extra=extra),
                Result("adapter_ks_trip_to_block_p95", percentile(samples, 95) * 1000, "ms", goal="p95 < 1000 ms",
                       extra=extra)]
    return results
