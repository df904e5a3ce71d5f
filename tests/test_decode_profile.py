"""bench/decode_profile.py: the decode side's cost per record, on a tiny run."""

import gc
import sys
from pathlib import Path

# bench/ lives at the repository root and is not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import decode_profile  # noqa: E402


def test_decode_profile_times_every_stage_and_restores_the_collector_settings():
    before = gc.get_threshold()
    figures = decode_profile.run(600, 250, 1)
    assert list(figures) == ["to_messages", "decode auto", "decode inferwatch", "msgspec parse"]
    assert all(0 < us < 10_000 for us in figures.values())
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    records = decode_profile.consumer_records(3, pool_size=2)
    assert [r.offset for r in records] == [0, 1, 2] and records[0].value.startswith(b'{"model":')
