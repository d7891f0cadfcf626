"""Benchmark: ID validation alone against a plain Python read of the same text file.

The target (issue 6): validating 50 million lines of text takes at most 3x a plain binary
``for line in f: pass``. Each measurement runs in a fresh process so its peak RSS is its own; runs of
the two kinds alternate, so machine noise hits both alike; the file is read once first so both see a
warm page cache. Times exclude interpreter start-up and imports (each child warms up on a tiny file).

    .venv/bin/python bench/bench_ids.py                  # 50M lines, 5 runs each
    .venv/bin/python bench/bench_ids.py --lines 5000000 --runs 3 --prepare

``validate`` is :func:`validate_ids` (checks every line, counts, counts duplicates exactly, writes nothing);
``prepare`` (with ``--prepare``) is :func:`prepare_ids`, which also writes the normalised copy.
Raw per-run figures go to ``bench/results/ids-<lines>.raw.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results"


def generate(path: Path, lines: int) -> None:
    """Snowflake-sized random IDs (17 to 19 digits), one per line; written once and reused."""
    if path.exists():
        return
    rng = np.random.default_rng(20260101)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        for start in range(0, lines, 1_000_000):
            ids = rng.integers(10**16, 2**63 - 1, size=min(1_000_000, lines - start), dtype=np.int64)
            out.write(("\n".join(map(str, ids.tolist())) + "\n").encode())
    tmp.replace(path)


def plain_read(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        for _ in f:
            count += 1
    return count


def memory_mib(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of this process. Not ``ru_maxrss``: on Linux that keeps the
    parent's peak across fork and exec, which would charge the file generation to every child."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def child(kind: str, path: Path) -> None:
    """One measurement, printed as JSON: seconds, RSS before (after imports and warm-up) and peak, in MiB."""
    from airflow_provider_xcompliance.ids import prepare_ids, validate_ids

    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        warm = Path(scratch) / "warm.txt"
        warm.write_text("1\n2\n")
        validate_ids(warm)
        prepare_ids(warm, Path(scratch) / "warm-out")
        before_mib = memory_mib("VmRSS")
        start = time.perf_counter()
        if kind == "plain":
            lines = plain_read(path)
        elif kind == "validate":
            lines = validate_ids(path).read
        else:
            lines = prepare_ids(path, Path(scratch) / "out").counts.read
        seconds = time.perf_counter() - start
    peak_mib = memory_mib("VmHWM")
    result = {"kind": kind, "seconds": seconds, "rss_before_mib": before_mib, "peak_rss_mib": peak_mib}
    print(json.dumps({**result, "lines": lines}))


def measure(kind: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=50_000_000, help="lines in the test file (default 50M)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind (median reported)")
    parser.add_argument("--prepare", action="store_true", help="also time prepare_ids (writes the copy)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    DATA.mkdir(exist_ok=True)
    path = DATA / f"ids-{args.lines}.txt"
    generate(path, args.lines)
    plain_read(path)  # warm the page cache for every run alike
    kinds = ["plain", "validate"] + (["prepare"] if args.prepare else [])
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.runs):
        for kind in kinds:
            result = measure(kind, path)
            if result["lines"] != args.lines:
                raise SystemExit(f"{kind} saw {result['lines']} lines, expected {args.lines}")
            runs[kind].append(result)

    summary = {
        kind: {
            "median_seconds": statistics.median(r["seconds"] for r in results),
            "min_seconds": min(r["seconds"] for r in results),
            "max_seconds": max(r["seconds"] for r in results),
            "median_rss_before_mib": statistics.median(r["rss_before_mib"] for r in results),
            "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results),
        }
        for kind, results in runs.items()
    }
    floor = summary["plain"]["median_seconds"]
    print(f"{args.lines:,} lines, {path.stat().st_size / 2**20:,.0f} MiB, {args.runs} runs each (RSS in MiB)")
    columns = ("median s", "min s", "max s", "RSS before", "peak RSS", "ratio")
    print(f"{'kind':10}" + "".join(f"{c:>12}" for c in columns))
    for kind, s in summary.items():
        row = (s["median_seconds"], s["min_seconds"], s["max_seconds"])
        rss = (s["median_rss_before_mib"], s["median_peak_rss_mib"])
        print(
            f"{kind:10}"
            + "".join(f"{v:12.2f}" for v in row)
            + "".join(f"{v:12.0f}" for v in rss)
            + f"{s['median_seconds'] / floor:12.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    raw = {
        "lines": args.lines,
        "machine": platform.platform(),
        "python": sys.version,
        "summary": summary,
        "runs": runs,
    }
    (RESULTS / f"ids-{args.lines}.raw.json").write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
