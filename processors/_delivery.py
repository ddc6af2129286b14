"""Which fetched input an agent or the direct path handles, and the direct path's handler.

Two ways a stage's input reaches :class:`~tripwire.processors.agents.Runtime`: the agent's stream
(the ticks, and every message with ``batch_max`` 1), a taken batch at a time (:func:`deliverable`),
or straight from faust's fetcher, a fetched run at a time (``_faust_fixes.deliver_in_batches``
with :func:`direct_handler`). Both skip what faust's stream skips: everything while flow control
is suspended (a rebalance), and messages of an older consumer generation.
"""

from __future__ import annotations

from typing import Any


def deliverable(app: Any, events: list[Any]) -> list[Any]:
    """The events of a taken batch that may be handled now: none while flow control is suspended (a
    rebalance is under way), else those of the consumer's current generation. faust's stream makes
    the same two checks when it delivers a message, but a batch taken before the rebalance began
    reaches the agent after them. Handled then, its state changes would be dropped with the caches at
    the new generation (``Runtime._check_generation``) while its acks let the offsets be committed:
    the batch's events would be lost from every state (a run without a summary)."""
    if not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    return [e for e in events if e.message.generation_id in (generation, None)]


def current_messages(app: Any, messages: list[Any]) -> list[Any]:
    """:func:`deliverable` for messages delivered straight from the fetcher (``direct_handler``)."""
    if not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    return [m for m in messages if m.generation_id in (generation, None)]


def direct_handler(runtime: Any, stage: Any, validate: bool) -> Any:
    """The handler of a stage's input topic for ``_faust_fixes.deliver_in_batches``: a run of fetched
    messages is handled, then acked, with no await in between (so no offset commit, and no flush,
    falls between handling a message and acking it). Skipped, neither handled nor acked, while a
    rebalance is under way or when fetched before one (:func:`current_messages`): the seek to the
    committed offsets reads them again."""
    app, handle = runtime.app, runtime.handle

    def handle_run(messages: list[Any]) -> None:
        current = current_messages(app, messages)
        for msg in current:
            handle(stage, msg, validate)
        ack = app.consumer.ack
        for msg in current:
            ack(msg)

    return handle_run
