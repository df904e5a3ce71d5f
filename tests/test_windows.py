"""Tumbling event-time windows: assignment, max-records cut, watermark closing, lateness, restore."""

import pandas as pd

from collector.windows import IDLE_PARTITION_MS, EventTimeWindows, WindowKey

H = 3_600_000


def rows(times, model="m", version="1"):
    return pd.DataFrame({"model": model, "model_version": version, "event_time_ms": times, "x": range(len(times))})


def test_records_land_in_epoch_aligned_windows():
    w = EventTimeWindows(H, 100)
    a = w.assign(rows([10, H - 1, H, 2 * H + 5]), now_ms=0)
    assert [(k.start_ms, len(r)) for k, r in a.parts] == [(0, 2), (H, 1), (2 * H, 1)]
    assert w.watermark("m", "1") == 2 * H + 5
    # the watermark passed the ends of the first two windows
    assert [(k.start_ms, why) for k, why in w.due(0, None)] == [(0, "watermark"), (H, "watermark")]


def test_max_records_cuts_segments():
    w = EventTimeWindows(H, 3)
    a = w.assign(rows([1, 2, 3, 4, 5]), now_ms=0)
    assert [(k.segment, len(r)) for k, r in a.parts] == [(0, 3), (1, 2)]
    assert w.due(0, None) == [(WindowKey("m", "1", 0, 0), "max_records")]
    w.mark_closed(WindowKey("m", "1", 0, 0), "max_records")
    a = w.assign(rows([6, 7]), now_ms=0)
    assert [(k.segment, len(r)) for k, r in a.parts] == [(1, 1), (2, 1)]


def test_late_records_are_kept_out_of_closed_windows():
    w = EventTimeWindows(H, 100, allowed_lateness_ms=10 * 60_000)
    w.assign(rows([5, H + 20 * 60_000]), now_ms=0)
    for key, why in w.due(0, None):
        w.mark_closed(key, why)
    a = w.assign(rows([7, H + 1]), now_ms=0)
    assert list(a.late["event_time_ms"]) == [7]
    assert [(k.start_ms, len(r)) for k, r in a.parts] == [(H, 1)]


def test_within_lateness_lands_in_its_own_window():
    w = EventTimeWindows(H, 100, allowed_lateness_ms=30 * 60_000)
    w.assign(rows([H + 10 * 60_000]), now_ms=0)
    a = w.assign(rows([H - 1]), now_ms=0)
    assert a.late.empty and [k.start_ms for k, _ in a.parts] == [0]


def test_idle_models_close_on_wall_clock_once_the_window_has_ended():
    w = EventTimeWindows(H, 100, allowed_lateness_ms=60_000)
    w.assign(rows([5]), now_ms=1_000)
    assert w.due(1_500, idle_close_ms=1_000) == []
    # idle, but the window still runs in wall-clock time: a quiet live model keeps it open
    assert w.due(H - 1, idle_close_ms=1_000) == []
    assert w.due(H + 59_999, idle_close_ms=1_000) == []
    assert w.due(H + 60_000, idle_close_ms=1_000) == [(WindowKey("m", "1", 0, 0), "idle")]


def test_models_and_versions_are_separate():
    w = EventTimeWindows(H, 100)
    a = w.assign(pd.concat([rows([1, 2], "a"), rows([3], "b"), rows([4], "a", "2")]), now_ms=0)
    assert sorted((k.model, k.model_version, len(r)) for k, r in a.parts) == [("a", "1", 2), ("a", "2", 1), ("b", "1", 1)]


def test_restore_continues_segments_and_lateness():
    w = EventTimeWindows(H, 3)
    w.restore({("m", "1", H, 1): 2}, {("m", "1", "t", 0): H + 5},
              [("m", "1", 0, 0, "watermark"), ("m", "1", H, 0, "max_records")], now_ms=0)
    a = w.assign(rows([10, H + 6, H + 7]), now_ms=0)
    assert list(a.late["event_time_ms"]) == [10]
    assert [(k.segment, len(r)) for k, r in a.parts] == [(1, 1), (2, 1)]


def test_origin_shifts_the_boundaries():
    w = EventTimeWindows(H, 100, origin_ms=15 * 60_000)
    a = w.assign(rows([0, 15 * 60_000, H + 14 * 60_000]), now_ms=0)
    assert [(k.start_ms, len(r)) for k, r in a.parts] == [(15 * 60_000 - H, 1), (15 * 60_000, 2)]


def test_the_watermark_is_the_slowest_partition():
    w = EventTimeWindows(H, 100)
    w.assign(rows([5]), now_ms=0, source=("t", 0))
    w.assign(rows([3 * H]), now_ms=0, source=("t", 1))  # partition 1 is read far ahead
    assert w.watermark("m", "1") == 5 and w.due(0, None) == []
    a = w.assign(rows([H + 1, 2 * H + 1]), now_ms=0, source=("t", 0))  # partition 0 catches up
    assert a.late.empty and [k.start_ms for k, _ in a.parts] == [H, 2 * H]
    assert w.watermark("m", "1") == 2 * H + 1
    assert [k.start_ms for k, _ in w.due(0, None)] == [0, H]


def test_partitions_behind_hold_the_watermark_until_they_deliver():
    w = EventTimeWindows(H, 100)
    w.set_sources({("t", 0): False, ("t", 1): False})
    w.assign(rows([3 * H]), now_ms=0, source=("t", 0))
    assert w.watermark("m", "1") is None  # partition 1 has a backlog but delivered nothing yet
    w.assign(rows([H]), now_ms=0, source=("t", 1))
    assert w.watermark("m", "1") == H
    # partition 1 caught up; it delivered just now, so in a live stream more may come: it holds
    w.set_sources({("t", 0): False, ("t", 1): True})
    assert w.watermark("m", "1") == H
    # quiet for IDLE_PARTITION_MS of wall clock: it no longer holds back
    assert [k.start_ms for k, _ in w.due(IDLE_PARTITION_MS, None)] == [H] and w.watermark("m", "1") == 3 * H
    w.set_sources({("t", 0): True, ("t", 1): True, ("t", 2): True})  # all caught up and quiet: the highest
    assert w.watermark("m", "1") == 3 * H


def test_no_idle_close_while_partitions_have_a_backlog_or_none_are_assigned():
    w = EventTimeWindows(H, 100)
    w.assign(rows([5]), now_ms=0, source=("t", 0))
    late = 10 * H
    w.set_sources({})  # waiting for an assignment after a restart
    assert w.due(late, idle_close_ms=1) == []
    w.set_sources({("t", 0): True, ("t", 1): False})
    assert w.due(late, idle_close_ms=1) == []
    w.set_sources({("t", 0): True, ("t", 1): True})
    assert w.due(late, idle_close_ms=1) == [(WindowKey("m", "1", 0, 0), "idle")]


def test_rows_of_one_poll_are_judged_against_the_watermark_before_it():
    """A poll bringing a lagging partition up to date: its rows must not be late because of
    rows of the partition ahead in the same poll."""
    w = EventTimeWindows(H, 100)
    w.set_sources({("t", 0): False, ("t", 1): False})
    w.assign_batch([(("t", 0), rows([H])), (("t", 1), rows([10]))], now_ms=0)
    w.set_sources({("t", 0): True, ("t", 1): False})
    a = w.assign_batch([(("t", 0), rows([5 * H])), (("t", 1), rows([20, H + 5]))], now_ms=0)
    assert a.late.empty and len(a.on_time) == 3
    w.set_sources({})  # a rebalance: nothing assigned, no watermark
    assert w.watermark("m", "1") is None and w.due(0, None) == []


def test_sliding_windows_place_each_record_in_every_window_covering_it():
    w = EventTimeWindows(H, 100, slide_ms=H // 4)
    q = H // 4
    a = w.assign(rows([0, q + 1, H + 5]), now_ms=0)
    placed = sorted((k.start_ms, tuple(r["event_time_ms"])) for k, r in a.parts)
    # windows start every quarter hour; each record is in the four that cover it
    assert placed == [(-3 * q, (0,)), (-2 * q, (0, q + 1)), (-q, (0, q + 1)), (0, (0, q + 1)),
                      (q, (q + 1, H + 5)), (2 * q, (H + 5,)), (3 * q, (H + 5,)), (H, (H + 5,))]
    assert len(a.on_time) == 3 and a.late.empty
    # the watermark H + 5 has passed the ends of the windows starting at -3q .. 0
    assert [k.start_ms for k, why in w.due(0, None)] == [-3 * q, -2 * q, -q, 0]


def test_a_sliding_record_is_late_only_when_every_window_of_it_has_closed():
    q = H // 4
    w = EventTimeWindows(H, 100, slide_ms=q)
    w.assign(rows([H + q + 1]), now_ms=0)  # watermark H + q + 1: windows starting <= q have ended
    for key, why in w.due(0, None):
        w.mark_closed(key, why)
    a = w.assign(rows([q - 1, 2 * q]), now_ms=0)
    # q - 1 lies in windows starting -3q..0, all closed; 2q also lies in 2q's window, still open
    assert list(a.late["event_time_ms"]) == [q - 1]
    assert sorted(k.start_ms for k, _ in a.parts) == [2 * q]


def test_slide_must_divide_the_length():
    import pytest

    with pytest.raises(ValueError, match="must divide"):
        EventTimeWindows(H, 100, slide_ms=7 * 60_000)


def test_the_watermark_waits_for_partitions_read_by_other_members():
    # this member reads partition 0; partition 1 is another member's, and what the store says
    # about it (highest event time 10, still behind its end) holds the watermark back
    w = EventTimeWindows(H, 100)
    behind = {("t", 0): False, ("t", 1): False}
    w.sync({}, {("m", "1", "t", 1): 10}, {}, (), sources=behind)
    w.assign(rows([5, 2 * H]), now_ms=0, source=("t", 0))
    assert w.watermark("m", "1") == 10 and w.due(0, None) == []
    # the other member has read on to H + 1: the first window may close, not the third
    w.sync({tuple(vars(k).values()): n for k, n in w.open.items()}, {**w.max_event_time, ("m", "1", "t", 1): H + 1}, {}, (), sources=behind)
    assert w.watermark("m", "1") == H + 1
    assert w.due(0, None) == [(WindowKey("m", "1", 0, 0), "watermark")]
    # a partition nobody has reported on (None of its event time known) blocks every close
    w.sync({tuple(vars(k).values()): n for k, n in w.open.items()}, dict(w.max_event_time), {}, (), sources={**behind, ("t", 2): False})
    assert w.watermark("m", "1") is None and w.due(0, None) == []


def test_model_version_groups_match_the_pandas_group_by():
    import numpy as np

    from collector.windows import model_version_groups

    frame = pd.DataFrame({"model": pd.array(["b", "a", "b", None, "a", "b"], dtype="str"),
                          "model_version": ["2", "1", "1", "1", "1", "2"]})
    got = [(k, list(idx)) for k, idx in model_version_groups(frame)]
    expected = [(k, list(idx)) for k, idx in frame.groupby(["model", "model_version"]).indices.items()]
    assert got == expected == [(("a", "1"), [1, 4]), (("b", "1"), [2]), (("b", "2"), [0, 5])]
    # one pair: no positions to apply
    assert model_version_groups(rows([1, 2])) == [(("m", "1"), None)]
    assert model_version_groups(rows([])) == []
    assert isinstance(model_version_groups(frame)[0][1], np.ndarray)


def test_a_batch_gives_one_part_per_segment_in_batch_order():
    w = EventTimeWindows(H, 4)
    batch = [(("t", 0), rows([1, 2, H + 1])), (("t", 1), rows([3, 4, 5]))]
    a = w.assign_batch(batch, now_ms=0)
    # partition 0's rows before partition 1's; the segment cut at 4 rows falls inside partition 1
    assert [(k.start_ms, k.segment, list(r["event_time_ms"])) for k, r in a.parts] == [
        (0, 0, [1, 2, 3, 4]), (0, 1, [5]), (H, 0, [H + 1])]
    assert list(a.on_time["event_time_ms"]) == [1, 2, H + 1, 3, 4, 5] and a.late.empty
    assert w.open == {WindowKey("m", "1", 0, 0): 4, WindowKey("m", "1", 0, 1): 1, WindowKey("m", "1", H, 0): 1}


def test_partitions_of_different_columns_keep_their_own():
    w = EventTimeWindows(H, 100)
    other = rows([3]).rename(columns={"x": "y"})
    a = w.assign_batch([(("t", 0), rows([1, 2])), (("t", 1), other)], now_ms=0)
    assert [sorted(r.columns) for _k, r in a.parts] == [["event_time_ms", "model", "model_version", "x"],
                                                       ["event_time_ms", "model", "model_version", "y"]]
    assert len(a.on_time) == 3
