"""Benchmark: the emulator's processing of an upload (which IDs need action, writing their result lines).

The emulator must never be the bottleneck of the other benchmarks: target well under 0.2 us per uploaded
ID. Runs in one process, so the first run includes first-use costs (a job on a fresh emulator pays them);
wall and CPU time are both shown because the machine is shared (CPU time is the steadier figure).

    .venv/bin/python bench/bench_emulator_results.py                     # 5M lines, 3 runs
    .venv/bin/python bench/bench_emulator_results.py --lines 50000000 --runs 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_ids import DATA, generate  # noqa: E402
from common import memory_mib  # noqa: E402

from airflow_provider_xcompliance.emulator.results import RuleSource, process_upload  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--job-type", default="tweets", choices=("tweets", "users"))
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    upload = DATA / f"ids-{args.lines}.txt"
    generate(upload, args.lines)
    upload.read_bytes()  # a warm page cache for every run
    with tempfile.TemporaryDirectory() as scratch:
        results, truth = Path(scratch) / "results.jsonl", Path(scratch) / "truth.jsonl"
        for run in range(1, args.runs + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = process_upload(upload, results, truth, job_type=args.job_type, source=RuleSource())
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"run {run}: {outcome.ids:,} IDs, {outcome.results:,} results; "
                f"wall {wall:.2f} s ({wall / outcome.ids * 1e6:.3f} us/ID), "
                f"CPU {cpu:.2f} s ({cpu / outcome.ids * 1e6:.3f} us/ID); "
                f"peak RSS {memory_mib('VmHWM'):.0f} MiB"
            )


if __name__ == "__main__":
    main()
