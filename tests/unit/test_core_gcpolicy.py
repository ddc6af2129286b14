"""The garbage-collector policy of the stage processes (tripwire.core.gcpolicy)."""

from __future__ import annotations

import gc

from tripwire.core import tune_gc
from tripwire.core.gcpolicy import YOUNG_THRESHOLD


def test_tune_gc_freezes_what_exists_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    kept: list[int] = []  # a container: tracked by the collector
    try:
        tune_gc()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(kept)
        assert all(o is not kept for o in gc.get_objects())  # frozen: out of every generation
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
