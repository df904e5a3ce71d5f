"""Run the benchmarks and print their tables: ``python -m bench [--quick] [--only speed|memory|quality|collector]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

import inferwatch  # noqa: F401  (sets DO_NOT_TRACK before Evidently is imported)

from . import collector, memory, quality, speed

SECTIONS = ("speed", "memory", "quality", "collector")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    parser.add_argument("--workers", type=int, default=None, help="processes for the quality run (default: CPUs)")
    parser.add_argument("--collector-records", type=int, default=None, metavar="N",
                        help="records the collector section streams (default 10,000,000; --quick 30,000)")
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)

    import evidently
    import numpy
    import pandas
    import scipy

    print(f"inferwatch benchmarks{' (quick)' if args.quick else ''}: {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, numpy {numpy.__version__}, pandas {pandas.__version__}, "
          f"scipy {scipy.__version__}, evidently {evidently.__version__}")
    ok = True
    for name in sections:
        t0 = time.perf_counter()
        if name == "speed":
            text = speed.report(speed.run_speed(speed.QUICK if args.quick else speed.SpeedConfig()))
        elif name == "collector":
            cfg = collector.QUICK if args.quick else collector.CollectorConfig()
            if args.collector_records:
                if args.collector_records < 1_000:
                    parser.error("--collector-records: at least 1000 records")
                cfg = dataclasses.replace(cfg, records=args.collector_records)
            text = collector.report(collector.run_collector_bench(cfg))
        elif name == "memory":
            text = memory.report(memory.run_memory(memory.QUICK if args.quick else memory.MemoryConfig()))
        else:
            cfg = quality.QUICK if args.quick else quality.QualityConfig()
            if args.workers:
                cfg = quality.QualityConfig(**{**cfg.__dict__, "workers": args.workers})
            text = quality.report(quality.run_quality(cfg))
        print()
        print(text)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)")
        sys.stdout.flush()
        ok = ok and "FAIL" not in text
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
