"""Which events of a taken batch the agent handles (``_delivery.deliverable``): none while a rebalance
is under way, else those of the consumer's current generation. Driven with faust's own app (its flow
control and generation id), and messages of faust's ``Message`` type."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import Message

from tripwire.processors._delivery import deliverable


def event(offset: int, generation: int | None) -> Any:
    msg = Message("t", 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation)
    return SimpleNamespace(message=msg)


def app_at(generation: int) -> Any:
    app = faust.App("tw-deliverable", broker="kafka://127.0.0.1:1")
    app.consumer_generation_id = generation
    return app


def test_a_batch_taken_before_a_rebalance_is_not_handled_while_flow_is_suspended() -> None:
    app = app_at(2)
    batch = [event(496 + i, 2) for i in range(7)]  # the current generation, flow suspended (rebalance)
    app.flow_control.suspend()
    assert deliverable(app, batch) == []
    app.flow_control.resume()
    assert [e.message.offset for e in deliverable(app, batch)] == list(range(496, 503))


def test_events_of_an_older_generation_are_skipped_and_unknown_generations_kept() -> None:
    app = app_at(3)
    app.flow_control.resume()
    batch = [event(1, 2), event(2, 3), event(3, None), event(4, 2)]
    assert [e.message.offset for e in deliverable(app, batch)] == [2, 3]


# -- the direct path: runs of messages straight from the fetcher (``_faust_fixes.deliver_in_batches``) --
class _AckingConsumer:
    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    def ack(self, message: Message) -> bool:
        self.log.append(("ack", message.offset))
        return True


def _direct(generation: int, suspended: bool = False) -> tuple[Any, list[tuple[str, int]], Any]:
    """A handler of the direct path with faust's own flow control, and the log of what it did."""
    from tripwire.processors._delivery import direct_handler

    log: list[tuple[str, int]] = []
    flow = app_at(generation).flow_control
    flow.suspend() if suspended else flow.resume()
    app = SimpleNamespace(flow_control=flow, consumer_generation_id=generation, consumer=_AckingConsumer(log))
    stage = object()

    def handle(got_stage: Any, msg: Message, validate: bool) -> None:
        assert got_stage is stage and validate is True
        log.append(("handle", msg.offset))

    runtime = SimpleNamespace(app=app, handle=handle)
    return direct_handler(runtime, stage, True), log, stage  # type: ignore[arg-type]


def message(offset: int, generation: int | None) -> Message:
    return Message("t", 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation)


def test_a_direct_run_is_handled_whole_before_any_of_it_is_acked() -> None:
    handler, log, _ = _direct(5)
    handler([message(10, 5), message(11, 5), message(12, None)])
    assert log == [("handle", 10), ("handle", 11), ("handle", 12), ("ack", 10), ("ack", 11), ("ack", 12)]


def test_a_direct_run_is_neither_handled_nor_acked_during_a_rebalance() -> None:
    handler, log, _ = _direct(5, suspended=True)
    handler([message(10, 5), message(11, 5)])
    assert log == []


def test_a_direct_run_skips_and_leaves_unacked_the_messages_of_an_older_generation() -> None:
    handler, log, _ = _direct(5)
    handler([message(10, 4), message(11, 5), message(12, 4)])
    assert log == [("handle", 11), ("ack", 11)]


@pytest.mark.parametrize(("batch_max", "direct"), [(500, True), (1, False)])
def test_register_agents_delivers_the_stage_inputs_directly_unless_batch_max_is_1(
    tmp_path: Any, batch_max: int, direct: bool
) -> None:
    # With batch_max > 1 the three stages' input topics bypass the agents' streams (fix 10); the
    # ticks always take faust's path. Nothing here connects to a broker.
    from tripwire.processors.agents import Runtime, register_agents
    from tripwire.processors.app import create_app
    from tripwire.processors.config import ProcessorConfig
    from tripwire.processors.pipeline import Pipeline
    from tripwire.processors.tables import create_tables
    from tripwire.processors.topics import RuntimeTopics

    config = ProcessorConfig(
        bootstrap="127.0.0.1:1", topic_prefix=f"u{batch_max}", data_dir=tmp_path, batch_max=batch_max
    )
    app = create_app(config)
    topics = RuntimeTopics.from_config(config)
    runtime = Runtime(app, config, topics, create_tables(app, config), Pipeline())
    register_agents(runtime)
    handlers = getattr(app, "_tripwire_direct", None)
    if direct:
        assert handlers is not None and set(handlers) == {topics.events, topics.by_agent, topics.by_credential}
    else:
        assert handlers is None
