"""Where the collector's CPU goes after the Kafka client: benchmark records through
:meth:`inferwatch.pipeline.Pipeline.process`, no broker.

``records`` records of the collector benchmark (:func:`bench.collector.record_pool` /
:func:`bench.collector.records`: inferwatch's JSON format, 25 features, event time 1 ms apart)
are built as :class:`collector.message.Message` objects of ``partitions`` partitions, then fed
in batches of ``batch`` messages (each batch holds an equal run of every partition, as a poll
returns them) to a :class:`~inferwatch.pipeline.Pipeline` with the default settings on SQLite in
a temporary directory. Each stage is timed in CPU seconds (``time.process_time``) by wrapping
the function that does it:

| stage | what |
| --- | --- |
| decode | ``collector.formats.decode_messages`` |
| caps | ``ModelLimit.admit`` and ``CategoryLimit.apply`` |
| sync | ``Pipeline._sync``: the shared state read from the store under the window lock |
| assign | ``EventTimeWindows.assign_batch`` |
| store | window partials, bootstrap reference rows, offsets, watermarks written |
| close | ``Pipeline._close``: partials read back, profile, tests, the window row |
| other | the rest of ``process`` (transaction, metrics, bookkeeping) |

As the service does once it has started (:func:`inferwatch.runner.run_kafka`), the objects
built before the first batch are frozen out of the garbage collector's scans and its first
threshold is raised; the collections' own time (``gc``) is counted within the stages above.

Run: ``python -m bench.pipeline_profile [--records N] [--batch N] [--cprofile FILE]``.
Prints microseconds of CPU per record per stage.
"""

from __future__ import annotations

import argparse
import functools
import gc
import tempfile
import time
from collections import defaultdict

STAGES = ("decode", "caps", "sync", "assign", "store", "close", "other", "total", "gc")


def build_messages(n: int, partitions: int, pool_size: int, seed: int, batch: int) -> list[list]:
    """The batches: ``n`` benchmark records as Messages, each batch ``batch`` of them with an
    equal run of each partition (partition order within the batch, offsets in order)."""
    from bench.collector import record_pool, records
    from collector.message import Message

    pool = record_pool(pool_size, seed)
    t0_ms = int(time.time() * 1000) - n - 3_600_000  # the stream ends an hour ago, as in the bench
    per_partition = [list(records(p, n, partitions, t0_ms, pool)) for p in range(partitions)]
    run = max(1, batch // partitions)
    out = []
    for lo in range(0, max(len(v) for v in per_partition), run):
        out.append([Message("bench", p, off, value) for p, values in enumerate(per_partition)
                    for off, value in enumerate(values[lo:lo + run], lo)])
    return out


def profile(n: int = 300_000, batch: int = 20_000, partitions: int = 4, pool_size: int = 20_000, seed: int = 11,
            cprofile: str | None = None) -> dict[str, float]:
    """Run the records through a pipeline; returns CPU microseconds per record per stage."""
    import inferwatch  # noqa: F401  (environment defaults before Evidently is imported)
    import inferwatch.pipeline as pl
    from collector.limits import CategoryLimit, ModelLimit
    from collector.windows import EventTimeWindows
    from inferwatch.config import Settings
    from inferwatch.metrics import Metrics
    from inferwatch.runner import open_store
    from inferwatch.store import Store

    spent: dict[str, float] = defaultdict(float)
    depth = [0]

    def timed(stage: str, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            if depth[0]:  # nested in a timed stage: counted there
                return fn(*a, **kw)
            depth[0] += 1
            t = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                spent[stage] += time.process_time() - t
                depth[0] -= 1
        return wrapper

    patches = [(pl, "decode_messages", "decode"), (ModelLimit, "admit", "caps"), (CategoryLimit, "apply", "caps"),
               (pl.Pipeline, "_sync", "sync"), (EventTimeWindows, "assign_batch", "assign"),
               (Store, "add_window_partial", "store"), (pl.Pipeline, "_feed_bootstrap_references", "store"),
               (Store, "save_offsets", "store"), (Store, "save_watermarks", "store"), (pl.Pipeline, "_close", "close")]
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _stage in patches]
    collecting = [0.0]

    def gc_timer(phase: str, _info: dict) -> None:
        if phase == "start":
            collecting[0] = time.process_time()
        else:
            spent["gc"] += time.process_time() - collecting[0]

    batches = build_messages(n, partitions, pool_size, seed, batch)
    threshold = gc.get_threshold()
    total = 0.0
    closed = 0
    try:
        for owner, name, stage in patches:
            setattr(owner, name, timed(stage, getattr(owner, name)))
        with tempfile.TemporaryDirectory(prefix="inferwatch-profile-") as tmp:
            settings = Settings(database_url=f"sqlite:///{tmp}/inferwatch.db", metrics={"enabled": False})
            store = open_store(settings)
            pipeline = pl.Pipeline(settings, store, Metrics(), lambda rejected: None, "bench")
            gc.freeze()  # as inferwatch.runner.run_kafka does once the service has started
            gc.set_threshold(50_000, 20, 100)
            gc.callbacks.append(gc_timer)
            profiler = None
            if cprofile:
                import cProfile
                profiler = cProfile.Profile()
                profiler.enable()
            # a backlog being read, as in the benchmark: every partition behind its end
            sources = {("bench", p): False for p in range(partitions)}
            for msgs in batches:
                t = time.process_time()
                closed += len(pipeline.process(msgs, sources=sources, partitions=sources))
                total += time.process_time() - t
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(cprofile)
            store.close()
    finally:  # the caller's functions and collector settings back
        if gc_timer in gc.callbacks:
            gc.callbacks.remove(gc_timer)
        gc.set_threshold(*threshold)
        gc.unfreeze()
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    spent["other"] = total - sum(spent[s] for s in STAGES[:-3])
    spent["total"] = total
    print(f"{n} records, {len(batches)} batches, {closed} windows closed")
    return {s: spent[s] / n * 1e6 for s in STAGES}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--cprofile", help="also write cProfile statistics to this file")
    args = ap.parse_args(argv)
    us = profile(args.records, args.batch, args.partitions, cprofile=args.cprofile)
    print("stage   us/record (CPU)")
    for stage, v in us.items():
        print(f"{stage:7} {v:8.2f}")


if __name__ == "__main__":
    main()
