"""bench/pipeline_profile.py on a tiny stream: every stage timed, the pipeline left as it was."""

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pipeline_profile  # noqa: E402
from collector.windows import EventTimeWindows  # noqa: E402


def test_tiny_profile_times_every_stage_and_restores_what_it_wraps():
    assign, threshold = EventTimeWindows.assign_batch, gc.get_threshold()
    us = pipeline_profile.profile(n=6_000, batch=2_000, partitions=2, pool_size=200)
    assert set(us) == set(pipeline_profile.STAGES)
    assert us["total"] > 0 and all(us[s] > 0 for s in ("decode", "sync", "assign", "store"))
    assert abs(sum(us[s] for s in pipeline_profile.STAGES[:-2]) - us["total"]) < 1e-6
    assert EventTimeWindows.assign_batch is assign and gc.get_threshold() == threshold
    batches = pipeline_profile.build_messages(10, 2, 5, 1, 4)
    # each batch an equal run of each partition, offsets in order
    assert [[(m.partition, m.offset) for m in b] for b in batches] == [
        [(0, 0), (0, 1), (1, 0), (1, 1)], [(0, 2), (0, 3), (1, 2), (1, 3)], [(0, 4), (1, 4)]]
