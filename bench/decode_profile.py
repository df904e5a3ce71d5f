"""CPU cost per record of the collector's decode side, without a broker.

``python -m bench.decode_profile [--records N] [--batch B] [--profile]``

Builds ``N`` benchmark records (:func:`bench.collector.records`, the stream of section (c) of
``bench/README.md``: 25 features, about 660 bytes each) as kafka-python ``ConsumerRecord``
tuples of one partition, then times, best of ``--repeats`` (the stages taking turns), in µs of CPU time (this process)
per record:

- ``to_messages``: :func:`collector.kafka_source.to_messages`, the conversion of polled
  records into :class:`collector.message.Message` objects;
- ``decode auto``: :func:`collector.formats.decode_messages` with the default
  :class:`~collector.formats.FormatConfig` (format ``auto``), ``B`` messages per call, as the
  pipeline calls it per partition;
- ``decode inferwatch``: the same with format ``inferwatch`` (no detection);
- ``msgspec parse``: ``msgspec.json.decode`` of every body, the floor any JSON decoder pays.

The garbage collector runs as in the service (:func:`inferwatch.runner.run_kafka`: objects
that exist at start frozen, first-generation threshold 50,000), the input records being
frozen. ``--profile`` prints the top of a cProfile of ``decode auto``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time

from kafka.consumer.fetcher import ConsumerRecord

from bench.collector import record_pool, records
from collector.formats import FormatConfig, Limits, decode_messages
from collector.kafka_source import to_messages

TOPIC = "predictions"


def consumer_records(n: int, pool_size: int = 20_000, seed: int = 11) -> list[ConsumerRecord]:
    """``n`` records of the benchmark stream as kafka-python would hand them over (one partition)."""
    pool = record_pool(pool_size, seed)
    return [ConsumerRecord(TOPIC, 0, 0, i, 1_700_000_000_000 + i, 0, None, value, [], None, -1, len(value), -1)
            for i, value in enumerate(records(0, n, 1, 1_700_000_000_000, pool))]


def _cpu_seconds(fn) -> float:
    t = time.process_time()  # CPU time: steadier than wall time on a shared machine
    fn()
    return time.process_time() - t


def _each(fn, items) -> None:
    """``fn`` on every item, each result dropped at once (as the service drops a stored batch)."""
    for item in items:
        fn(item)


def run(n: int, batch: int, repeats: int) -> dict[str, float]:
    """CPU µs per record of each stage (see the module docstring), keyed by stage name.

    Raises:
        RuntimeError: the decoder did not accept every benchmark record.
    """
    import msgspec

    recs = consumer_records(n)
    messages = to_messages(recs)
    batches = [messages[i:i + batch] for i in range(0, n, batch)]
    # the service's collector settings (inferwatch.runner): what exists at start is frozen out
    # of the collector's scans, here the input records, which in the service live one batch
    saved = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        auto, fixed, limits = FormatConfig(), FormatConfig(format="inferwatch"), Limits()
        rows = sum(len(decode_messages(b, auto, limits).records) for b in batches)
        if rows != n:
            raise RuntimeError(f"{n - rows} of {n} benchmark records not decoded")
        decode = msgspec.json.Decoder().decode
        stages = {
            "to_messages": lambda: _each(lambda i: to_messages(recs[i:i + batch]), range(0, n, batch)),
            "decode auto": lambda: _each(lambda b: decode_messages(b, auto, limits), batches),
            "decode inferwatch": lambda: _each(lambda b: decode_messages(b, fixed, limits), batches),
            "msgspec parse": lambda: _each(lambda b: [decode(m.value) for m in b], batches),
        }
        best = dict.fromkeys(stages, float("inf"))
        for _ in range(repeats):  # the stages take turns: none gets a quieter moment of a shared machine
            for name, fn in stages.items():
                best[name] = min(best[name], _cpu_seconds(fn))
        return {name: t / n * 1e6 for name, t in best.items()}
    finally:  # leave the caller's collector as it was
        gc.set_threshold(*saved)
        gc.unfreeze()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_profile", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5000, help="messages per decode call (max_poll_records)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the auto decode")
    args = parser.parse_args(argv)
    figures = run(args.records, args.batch, args.repeats)
    floor = figures["msgspec parse"]
    print(f"{args.records} records, {args.batch} per call, best of {args.repeats}")
    for name, us in figures.items():
        print(f"  {name:<20} {us:7.2f} us/record  ({us / floor:5.2f} x msgspec parse)")
    if args.profile:
        messages = to_messages(consumer_records(args.records))
        fmt, limits = FormatConfig(), Limits()
        prof = cProfile.Profile()
        prof.enable()
        for i in range(0, len(messages), args.batch):
            decode_messages(messages[i:i + args.batch], fmt, limits)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
