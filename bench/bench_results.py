"""Benchmark: compliance results (JSONL) to Parquet, against pandas and against the floor.

Targets (issue 5), on 10 million result lines: :func:`results_to_parquet` within 2.5x the floor on a clean
file; peak RSS under 400 MB at any size (shown at 10M and 50M lines); with 3 % malformed lines no more than
1.5x the clean time, every bad line accounted for.

    .venv/bin/python bench/bench_results.py                         # 10M lines, 3 runs, pandas once
    .venv/bin/python bench/bench_results.py --lines 1000000 --runs 5 --skip-pandas
    .venv/bin/python bench/bench_results.py --rss-lines 50000000    # also one 50M-line converter run

Kinds, each measured in a fresh process so its peak RSS is its own (times exclude start-up and imports):
- ``converter``: :func:`results_to_parquet` on the clean file; ``converter-bad``: on the 3 % malformed file.
- ``floor``: read the file's bytes, plus write the converter's own tables to Parquet from memory (the table is
  loaded untimed): the I/O no converter can avoid.
- ``pandas``: ``pandas.read_json(lines=True)`` + ``to_parquet`` (about 60 s and 15 GB at 10M: run once).
- ``duckdb``: DuckDB's ``read_json`` to Parquet, a reference (needs the ``duckdb`` extra; no rejects file).
Runs of the converter kinds and the floor alternate, so machine noise hits them alike; medians are quoted.
Data lives in ``bench/.data/`` (gitignored); raw per-run figures go to
``bench/results/results-<lines>.raw.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
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

# (action, reason, weight): a tweets job where most rows are deletions, some geo scrubs.
MIX = [
    ("delete", "deleted", 45),
    ("delete", "protected", 14),
    ("delete", "suspended", 14),
    ("delete", "deactivated", 12),
    ("scrub_geo", "scrub_geo", 12),
    ("delete", "bounced", 3),
]
BAD_KINDS = [
    lambda line: line[: len(line) // 2],  # truncated (a partial download)
    lambda line: "not json at all",
    lambda line: line.replace('"id":"', '"ident":"'),  # missing id
    lambda line: line.replace('"id":"', '"id":"x'),  # non-numeric id
    lambda line: line.replace('"created_at":"20', '"created_at":"yesterday 20'),  # bad timestamp
]


def _timestamps(seconds: np.ndarray, millis: np.ndarray, style: np.ndarray) -> list[str]:
    """Vectorised: ``...+00:00`` for style 0, else ``....mmmZ`` (``.000Z`` when millis are 0)."""
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    fraction = np.char.add(np.char.add(".", np.char.zfill(millis.astype(str), 3)), "Z")
    return np.char.add(text, np.where(style == 0, "+00:00", fraction)).tolist()


def generate(path: Path, lines: int, bad_fraction: float = 0.0) -> None:
    """Realistic result lines (all three timestamp forms, 5 % without redacted_at); written once."""
    if path.exists():
        return
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20260105)
    weights = np.array([w for _, _, w in MIX], float)
    heads = [f'","action":"{action}","created_at":"' for action, _, _ in MIX]
    tails = [f'","reason":"{reason}"}}' for _, reason, _ in MIX]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        for start in range(0, lines, 500_000):
            n = min(500_000, lines - start)
            ids = rng.integers(10**17, 2**62, size=n).astype(str).tolist()
            kinds = rng.choice(len(MIX), size=n, p=weights / weights.sum()).tolist()
            created = rng.integers(1_200_000_000, 1_700_000_000, size=n)
            style = rng.integers(0, 20, size=n)
            created_text = _timestamps(created, np.zeros(n, int), style)
            redacted = created + rng.integers(0, 100_000_000, size=n)
            redacted_text = _timestamps(redacted, rng.integers(0, 1000, size=n), style)
            no_redacted = (style == 1).tolist()
            bad = np.flatnonzero(rng.random(n) < bad_fraction).tolist()
            bad_kind = rng.integers(0, len(BAD_KINDS), size=n).tolist()
            chunk = [
                f'{{"id":"{ids[i]}{heads[k]}{created_text[i]}'
                + ("" if no_redacted[i] else f'","redacted_at":"{redacted_text[i]}')
                + tails[k]
                for i, k in enumerate(kinds)
            ]
            for i in bad:
                chunk[i] = BAD_KINDS[bad_kind[i]](chunk[i])
            out.write("\n".join(chunk) + "\n")
    tmp.replace(path)


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def cpu_seconds() -> float:
    """User + system CPU of this process: on a shared, noisy machine it varies less than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def read_bytes(path: Path) -> int:
    buffer = bytearray(8 << 20)
    total = 0
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buffer):  # type: ignore[attr-defined]
            total += n
    return total


def child(kind: str, path: Path, tables: Path) -> None:
    """One measurement, printed as JSON: seconds, RSS after imports and warm-up, and peak RSS, in MiB."""
    import pyarrow.parquet as pq

    from airflow_provider_xcompliance.results import results_to_parquet

    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        warm = Path(scratch) / "warm.jsonl"
        warm.write_text('{"id":"1","action":"delete","created_at":"2020-01-01T00:00:00.000Z","reason":"x"}\n')
        results_to_parquet(warm, Path(scratch) / "warm-out", job_type="tweets")
        before_mib = current_rss_mib()
        extra: dict[str, object] = {}
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        if kind.startswith("converter"):
            summary = results_to_parquet(path, tables, job_type="tweets")
            extra = {"rows": summary.rows_written, "rejected": summary.rejected, "ok": summary.reconciled}
            seconds = time.perf_counter() - start
        elif kind == "floor":
            read_bytes(path)
            seconds = time.perf_counter() - start
            table = pq.read_table(tables, partitioning=None)
            start = time.perf_counter()
            pq.write_table(table, Path(scratch) / "floor.parquet", row_group_size=1 << 20)
            seconds += time.perf_counter() - start
            extra = {"rows": table.num_rows}
        elif kind == "pandas":
            import pandas as pd

            frame = pd.read_json(path, lines=True, dtype={"id": str})
            frame.to_parquet(Path(scratch) / "pandas.parquet")
            seconds = time.perf_counter() - start
            extra = {"rows": len(frame)}
        elif kind == "duckdb":
            import duckdb

            out = Path(scratch) / "duckdb.parquet"
            duckdb.sql(
                f"COPY (SELECT CAST(id AS BIGINT) AS id, action, reason, CAST(created_at AS TIMESTAMPTZ) "
                f"AS created_at, CAST(redacted_at AS TIMESTAMPTZ) AS redacted_at FROM read_json('{path}', "
                f"format='newline_delimited')) TO '{out}' (FORMAT parquet)"
            )
            seconds = time.perf_counter() - start
        else:
            raise SystemExit(f"unknown kind {kind}")
    peak_mib = peak_rss_mib()
    cpu = cpu_seconds() - cpu_start
    print(
        json.dumps({"seconds": seconds, "cpu": cpu, "before_mib": before_mib, "peak_mib": peak_mib, **extra})
    )


def measure(kind: str, path: Path, tables: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", kind, "--input", str(path), "--tables", str(tables)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  {kind:<14} {result['seconds']:8.2f} s  cpu {result['cpu']:7.2f} s"
        f"  peak {result['peak_mib']:7.0f} MiB",
        flush=True,
    )
    return dict(result)


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-pandas", action="store_true", help="pandas takes ~60 s and ~15 GB at 10M")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--rss-lines", type=int, default=0, help="also one converter run on this many lines")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tables", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.input, args.tables)
        return

    clean = DATA / f"results-{args.lines}.jsonl"
    bad = DATA / f"results-{args.lines}-bad3.jsonl"
    print(f"generating {args.lines:,} lines (once) ...", flush=True)
    generate(clean, args.lines)
    generate(bad, args.lines, bad_fraction=0.03)
    tables, bad_tables = DATA / f"tables-{args.lines}", DATA / f"tables-{args.lines}-bad3"
    for path in (clean, bad):
        read_bytes(path)  # warm the page cache for every kind alike

    runs: dict[str, list[dict[str, float]]] = {"converter": [], "converter-bad": [], "floor": []}
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", flush=True)
        runs["converter"].append(measure("converter", clean, tables))
        runs["converter-bad"].append(measure("converter-bad", bad, bad_tables))
        runs["floor"].append(measure("floor", clean, tables))
    if not args.skip_duckdb and _has("duckdb"):
        runs["duckdb"] = [measure("duckdb", clean, tables)]
    if not args.skip_pandas:
        runs["pandas"] = [measure("pandas", clean, tables)]
    if args.rss_lines:
        big = DATA / f"results-{args.rss_lines}.jsonl"
        print(f"generating {args.rss_lines:,} lines (once) ...", flush=True)
        generate(big, args.rss_lines)
        read_bytes(big)
        runs[f"converter-{args.rss_lines}"] = [measure("converter", big, DATA / f"tables-{args.rss_lines}")]

    floor = median(runs["floor"], "seconds")
    clean_s = median(runs["converter"], "seconds")
    print(f"\n{args.lines:,} lines, {clean.stat().st_size / 2**20:,.0f} MiB; medians of {args.runs} run(s)")
    floor_cpu = median(runs["floor"], "cpu")
    print(f"{'kind':<22}{'runs':>5}{'seconds':>10}{'x floor':>9}{'cpu s':>8}{'x floor':>9}{'peak MiB':>10}")
    for kind, results in runs.items():
        seconds, cpu, peak = (median(results, key) for key in ("seconds", "cpu", "peak_mib"))
        print(
            f"{kind:<22}{len(results):>5}{seconds:>10.2f}{seconds / floor:>9.2f}"
            f"{cpu:>8.2f}{cpu / floor_cpu:>9.2f}{peak:>10.0f}"
        )
    bad_s = median(runs["converter-bad"], "seconds")
    print(f"\nconverter / floor = {clean_s / floor:.2f} (target <= 2.5)")
    print(f"malformed / clean = {bad_s / clean_s:.2f} (target <= 1.5)")
    for kind in runs:
        if kind.startswith("converter"):
            last = runs[kind][-1]
            print(f"{kind}: rows {last['rows']:,}, rejected {last['rejected']:,}, reconciled {last['ok']}")
    RESULTS.mkdir(exist_ok=True)
    report = {
        "lines": args.lines,
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "runs": runs,
    }
    (RESULTS / f"results-{args.lines}.raw.json").write_text(json.dumps(report, indent=2))


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
