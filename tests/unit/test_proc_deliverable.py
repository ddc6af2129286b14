"""Which events of a taken batch the agent handles (``agents.deliverable``): none while a rebalance
is under way, else those of the consumer's current generation. Driven with faust's own app (its flow
control and generation id), and messages of faust's ``Message`` type."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
from faust.types import Message

from tripwire.processors.agents import deliverable


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
