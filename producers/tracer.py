"""The entry point of the SDK: ``Tracer`` builds runs and owns delivery.

    tracer = Tracer.from_config("agent.yaml")
    with tracer.run(agent_id="refund-assistant", workflow="refunds", principal="svc-refunds") as run:
        with run.model_call(provider="openai", model="gpt-4.1-mini") as call:
            call.record_usage(input_tokens=812, output_tokens=95, cache_read_tokens=400)
        with run.tool_call("stripe.issue_refund", args={...}, risk="high", idempotency_key=k) as call:
            ...

Disabled by config (``enabled: false`` / ``TRIPWIRE_ENABLED=false``), the tracer is a no-op: the same
API, no threads, no events, no checks.

Shutdown: ``close()`` runs at exit (``atexit``) and on SIGTERM/SIGINT (see
:mod:`tripwire.producers._signals`); servers that manage signals themselves call it from their own
shutdown hook. After ``fork`` the tracer restarts its delivery worker and Kafka client in the child.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tripwire.core.ratelimit import RateLimitedLog
from tripwire.producers import _signals
from tripwire.producers._args import ArgsFinisher
from tripwire.producers._encode import EventEncoder
from tripwire.producers._framing import events_framing
from tripwire.producers._noop import NOOP_RUN, NoopRun
from tripwire.producers._runtime import Runtime, as_risk, non_empty
from tripwire.producers.budget import BudgetLimits
from tripwire.producers.config import TracerConfig, load_config
from tripwire.producers.cost import CostCalculator, PriceOverrides
from tripwire.producers.delivery import Delivery, DeliveryCounters
from tripwire.producers.errors import SpoolError
from tripwire.producers.guard import AllowAllGuard, Approver, ToolGuard
from tripwire.producers.run import CURRENT, Run
from tripwire.producers.spool import Spool
from tripwire.producers.transport import KafkaTransport, QueueTransport, Transport
from tripwire.redaction import CustomRedactor, Redactor

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
_UNSET: Any = object()


def _close_at_exit(ref: weakref.ReferenceType[Tracer]) -> None:
    tracer = ref()
    if tracer is not None:
        tracer.close()


class Tracer:
    """Thread-safe; share one per process (per agent identity)."""

    def __init__(
        self,
        config: TracerConfig | None = None,
        *,
        transport: Transport | None = None,
        guard: ToolGuard | None = None,
        approver: Approver | None = None,
        redactor: CustomRedactor | None = None,
    ) -> None:
        self.config = cfg = config if config is not None else TracerConfig()
        self._rt: Runtime | None = None
        if not cfg.enabled:
            return
        if transport is None:
            if cfg.delivery.transport == "queue":
                raise SpoolError("delivery.transport=queue needs a QueueTransport(sink) passed to Tracer(...)")
            transport = KafkaTransport(cfg.kafka)
        spool = None
        if cfg.delivery.spool_enabled:
            spool = Spool(
                cfg.delivery.spool_dir, max_bytes=cfg.delivery.spool_max_bytes, segment_bytes=cfg.delivery.segment_bytes
            )
        encoder = EventEncoder(framing=events_framing(cfg.schemas, cfg.kafka.topic))
        red = Redactor.from_spec(cfg.redaction, custom=redactor)
        # tool args are hashed and redacted where the event is encoded (the delivery worker), unless a
        # custom hook (user code) must see them on the agent thread: see tripwire.producers._args
        args = ArgsFinisher(red, cfg.logging.log_tool_args == "redact_pii", deferred=redactor is None)
        encode = args.wrap(encoder.encode)
        self._rt = Runtime(
            config=cfg,
            encoder=encoder,
            delivery=Delivery(transport, cfg.delivery, spool, encode),
            redactor=red,
            costs=CostCalculator(PriceOverrides.load(cfg.price_overrides) if cfg.price_overrides else None),
            guard=None if guard is None or type(guard) is AllowAllGuard else guard,
            approver=approver,
            log=RateLimitedLog(logger),
            args=args,
            encode=encode,
        )
        if cfg.logging.trace_id:
            from tripwire.producers import log_correlation

            log_correlation.install()
        atexit.register(_close_at_exit, weakref.ref(self))
        if cfg.delivery.handle_signals:
            _signals.install(self, cfg.delivery.signal_flush_s)

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> Tracer:
        """Build from an agent YAML file (see :func:`tripwire.producers.config.load_config`)."""
        return cls(load_config(path), **kwargs)

    @classmethod
    def in_process(
        cls, sink: Callable[[bytes, bytes], None], config: TracerConfig | None = None, **kwargs: Any
    ) -> Tracer:
        """A tracer whose events go to ``sink(key, value)`` in-process (the embedded demo)."""
        return cls(config, transport=QueueTransport(sink), **kwargs)

    @property
    def enabled(self) -> bool:
        return self._rt is not None

    # -- runs --------------------------------------------------------------------------------------
    def run(
        self,
        agent_id: str | None = None,
        *,
        workflow: str = "",
        principal: str | None = None,
        conversation_id: str | None = None,
        run_id: str | None = None,
        credential_fingerprint: str | None = None,
        max_steps: int | None = _UNSET,
        max_tool_calls: int | None = _UNSET,
        max_prompt_tokens: int | None = _UNSET,
        max_completion_tokens: int | None = _UNSET,
        max_cost_usd: float | None = _UNSET,
    ) -> Run | NoopRun:
        """A new run (a sub-run when started inside another run's context). Budgets default to the config."""
        rt = self._rt
        if rt is None:
            return NOOP_RUN
        agent = self.config.agent
        if agent_id is None:
            agent_id = agent.name
            if agent_id is None:
                raise non_empty_error()
        limits = BudgetLimits(
            max_steps=agent.max_steps if max_steps is _UNSET else max_steps,
            max_tool_calls=agent.max_tool_calls if max_tool_calls is _UNSET else max_tool_calls,
            max_prompt_tokens=agent.max_prompt_tokens if max_prompt_tokens is _UNSET else max_prompt_tokens,
            max_completion_tokens=agent.max_completion_tokens
            if max_completion_tokens is _UNSET
            else max_completion_tokens,
            max_cost_usd=agent.max_cost_usd if max_cost_usd is _UNSET else max_cost_usd,
        )
        _check_limits(limits)
        return Run(
            rt,
            agent_id=agent_id,
            workflow=workflow,
            principal=principal,
            conversation_id=conversation_id,
            run_id=run_id,
            credential_fingerprint=credential_fingerprint or self.config.credential_fingerprint,
            limits=limits,
        )

    @staticmethod
    def current_run() -> Run | None:
        cur = CURRENT.get()
        return cur[0] if cur is not None else None

    # -- decorator ---------------------------------------------------------------------------------
    def tool(self, risk: str = "low", *, name: str | None = None, side_effect: bool | None = None) -> Callable[[F], F]:
        """Trace a function as a tool call of the current run (or of a one-call run if there is none).

        The call's arguments (bound to the signature, ``self``/``cls`` left out) are the tool args.
        """
        as_risk(risk)

        def decorate(fn: F) -> F:
            if not self.enabled:
                return fn
            tool_name = name or fn.__qualname__
            sig = inspect.signature(fn)
            skip = next(iter(sig.parameters), None) if next(iter(sig.parameters), None) in ("self", "cls") else None

            def args_of(a: tuple[Any, ...], kw: dict[str, Any]) -> dict[str, Any]:
                bound = sig.bind(*a, **kw)
                bound.apply_defaults()
                return {k: v for k, v in bound.arguments.items() if k != skip}

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def awrapper(*a: Any, **kw: Any) -> Any:
                    run = self.current_run()
                    if run is None:
                        r = self.run(workflow=tool_name)
                        async with r, r.tool_call(tool_name, args_of(a, kw), risk=risk, side_effect=side_effect):
                            return await fn(*a, **kw)
                    async with run.tool_call(tool_name, args_of(a, kw), risk=risk, side_effect=side_effect):
                        return await fn(*a, **kw)

                return awrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*a: Any, **kw: Any) -> Any:
                run = self.current_run()
                if run is None:
                    with (
                        self.run(workflow=tool_name) as r,
                        r.tool_call(  # type: ignore[union-attr]
                            tool_name, args_of(a, kw), risk=risk, side_effect=side_effect
                        ),
                    ):
                        return fn(*a, **kw)
                with run.tool_call(tool_name, args_of(a, kw), risk=risk, side_effect=side_effect):
                    return fn(*a, **kw)

            return wrapper  # type: ignore[return-value]

        return decorate

    # -- delivery ----------------------------------------------------------------------------------
    def counters(self) -> DeliveryCounters:
        if self._rt is None:
            return DeliveryCounters(0, 0, 0, 0, 0, 0, 0, 0, 0)
        return self._rt.delivery.counters()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until every event emitted so far is delivered; True if so."""
        return True if self._rt is None else self._rt.delivery.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout``, then keep whatever is undelivered in the spool. Idempotent.

        Runs by itself at exit and on SIGTERM/SIGINT (``delivery.handle_signals``). Servers that own the
        signals call it from their shutdown hook: gunicorn ``worker_exit(server, worker)`` in the config
        file, uvicorn/FastAPI a lifespan's shutdown (or ``@app.on_event("shutdown")``), Celery the
        ``worker_process_shutdown`` signal (prefork children) or ``worker_shutdown``.
        """
        if self._rt is None:
            return True
        _signals.forget(self)
        return self._rt.delivery.close(timeout)

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def non_empty_error() -> Exception:
    try:
        non_empty("agent_id", None)
    except Exception as e:
        return e
    raise AssertionError("unreachable")


def _check_limits(limits: BudgetLimits) -> None:
    from tripwire.producers.errors import InvalidArgumentError

    for field in ("max_steps", "max_tool_calls", "max_prompt_tokens", "max_completion_tokens"):
        v = getattr(limits, field)
        if v is not None and (type(v) is not int or v < 0):
            raise InvalidArgumentError(f"{field} must be a non-negative int or None, got {v!r}")
    c = limits.max_cost_usd
    if c is not None and (isinstance(c, bool) or not isinstance(c, int | float) or not c >= 0 or c == float("inf")):
        raise InvalidArgumentError(f"max_cost_usd must be a finite non-negative number or None, got {c!r}")


__all__ = ["Tracer"]
