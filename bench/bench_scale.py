"""Benchmark: 100 million IDs in Parquet through validation, chunked upload and download.

Targets (issue 6): peak RSS of the task process under 300 MB, local disk at most one copy of the text,
wall time within 2x of the floor (reading the Parquet column + writing the text file + curl uploading it).

    .venv/bin/python bench/bench_scale.py                        # 100M IDs, chunks of 25M, 1 run
    .venv/bin/python bench/bench_scale.py --ids 10000000 --chunk 2500000 --runs 3

``run`` is what :class:`XComplianceRunJobOperator` does for a chunked run, without the scheduler: the same
calls in the same order (``prepare_ids`` into a staging folder, then per chunk ``create_job``,
``upload_ids``, ``wait_for_job``, ``download_results``, and the staging folder removed at the end), in a
fresh process whose ``VmHWM`` is its peak RSS. The parent samples the size of the staging and results
folders (every 0.2 s) for the disk peak. ``floor`` writes the text with pyarrow's C++ CSV writer (no Python
per ID) in a fresh process, then curl PUTs it to a new job. The emulator (a subprocess, processing time
zero) still reads every uploaded ID before a job completes: that server time is shown apart
(``wait``), and the ratio is given with and without it, since the floor has no server side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from common import (
    DATA,
    TOKEN,
    LoadLog,
    PeakSampler,
    conn_env,
    curl_upload,
    directory_bytes,
    emulator_pid,
    median,
    memory_mib,
    run_child,
    write_report,
)

POLL = 0.2


def generate_parquet(path: Path, ids: int) -> Path:
    """Snowflake-sized int64 IDs in 1M-row groups, like a warehouse export; written once and reused."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20260106)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([("id", pa.int64())])
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, ids, 1_000_000):
            values = rng.integers(10**16, 2**63 - 1, size=min(1_000_000, ids - start), dtype=np.int64)
            writer.write_table(pa.table({"id": values}, schema=schema))
    tmp.replace(path)
    return path


def child_run(parquet: Path, chunk: int, staging: Path, results: Path) -> dict[str, Any]:
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook
    from airflow_provider_xcompliance.ids import prepare_ids

    hook = XComplianceHook()
    hook.get_conn()
    warm = staging.with_name("scale-warm")  # lazy imports (pyarrow.compute takes seconds) are start-up
    prepare_ids(generate_parquet(warm / "ids.parquet", 10), warm / "out", id_column="id")
    shutil.rmtree(warm)
    before = memory_mib("VmRSS")
    times = {"prepare_s": 0.0, "upload_s": 0.0, "wait_s": 0.0, "download_s": 0.0}
    start = time.perf_counter()
    prepared = prepare_ids(parquet, staging, id_column="id", max_ids_per_job=chunk)
    times["prepare_s"] = time.perf_counter() - start
    lines = 0
    for piece in prepared.chunks:
        mark = time.perf_counter()
        job = hook.create_job("tweets")
        hook.upload_ids(job, piece.path)
        times["upload_s"] += time.perf_counter() - mark
        mark = time.perf_counter()
        done = hook.wait_for_job(job.id, poll_interval=POLL)
        times["wait_s"] += time.perf_counter() - mark
        mark = time.perf_counter()
        lines += hook.download_results(done, results / f"{job.id}.jsonl").lines
        times["download_s"] += time.perf_counter() - mark
    shutil.rmtree(staging)
    return {
        **times,
        "wall_s": time.perf_counter() - start,
        "ids": prepared.counts.written,
        "chunks": len(prepared.chunks),
        "result_lines": lines,
        "rss_before_mib": before,
        "peak_rss_mib": memory_mib("VmHWM"),
    }


def child_floor(parquet: Path, text: Path) -> dict[str, Any]:
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    before = memory_mib("VmRSS")
    start = time.perf_counter()
    source = pq.ParquetFile(parquet)
    options = csv.WriteOptions(include_header=False)
    with csv.CSVWriter(text, source.schema_arrow, write_options=options) as writer:
        for batch in source.iter_batches(batch_size=1 << 20, columns=["id"]):
            writer.write_batch(batch)
    return {
        "read_write_s": time.perf_counter() - start,
        "rss_before_mib": before,
        "peak_rss_mib": memory_mib("VmHWM"),
    }


def measure(kind: str, parquet: Path, chunk: int, env: dict[str, str]) -> dict[str, Any]:
    staging, results, text = DATA / "scale-staging", DATA / "scale-results", DATA / "scale-floor.txt"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    args = [kind, str(parquet), str(chunk), str(staging), str(results), str(text)]
    with (
        PeakSampler(lambda: directory_bytes(staging)) as staged,
        PeakSampler(lambda: directory_bytes(results)) as resulted,
    ):
        result = run_child(Path(__file__), args, env)
    if kind == "floor":
        result["text_bytes"] = text.stat().st_size
        result["curl_s"], _ = curl_upload(text, POLL)
        result["wall_s"] = result["read_write_s"] + result["curl_s"]
        text.unlink()
    result["staging_peak_mib"] = staged.peak / 2**20
    result["results_peak_mib"] = resulted.peak / 2**20
    shutil.rmtree(results, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", type=int, default=100_000_000, help="IDs in the Parquet file (default 100M)")
    parser.add_argument("--chunk", type=int, default=25_000_000, help="max_ids_per_job (default 25M)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each kind (median reported)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, parquet, chunk, staging, results, text = args.child
        if kind == "run":
            out = child_run(Path(parquet), int(chunk), Path(staging), Path(results))
        else:
            out = child_floor(Path(parquet), Path(text))
        print(json.dumps(out))
        return

    from airflow_provider_xcompliance.emulator import EmulatorConfig, run_emulator

    parquet = generate_parquet(DATA / f"ids-{args.ids}.parquet", args.ids)
    config = EmulatorConfig(token=TOKEN, processing_seconds=0.0, rate_limit_count=10**9)
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "run": []}
    with (
        LoadLog() as load,
        run_emulator(config, subprocess=True) as emu,
        conn_env(emu.base_url) as env,
    ):
        pid = emulator_pid()
        for _ in range(args.runs):
            for kind in runs:
                os.sync()  # the previous run's gigabytes of writes would otherwise be flushed during this one
                runs[kind].append(measure(kind, parquet, args.chunk, env))
                print(json.dumps(runs[kind][-1]), flush=True)
        emulator_peak = memory_mib("VmHWM", pid)

    floor = {key: median(r[key] for r in runs["floor"]) for key in runs["floor"][0]}
    run = {key: median(r[key] for r in runs["run"]) for key in runs["run"][0]}
    text_mib = floor["text_bytes"] / 2**20
    client_s = run["wall_s"] - run["wait_s"]
    rows = [
        f"{args.ids:,} IDs ({parquet.stat().st_size / 2**20:,.0f} MiB Parquet, {text_mib:,.0f} MiB as text), "
        f"chunks of {args.chunk:,}, {args.runs} run(s), medians",
        f"floor: read+write text {floor['read_write_s']:.1f} s + curl PUT {floor['curl_s']:.1f} s "
        f"= {floor['wall_s']:.1f} s (peak RSS {floor['peak_rss_mib']:.0f} MiB)",
        f"run:   prepare_ids {run['prepare_s']:.1f} s, upload {run['upload_s']:.1f} s, "
        f"wait (emulator processing) {run['wait_s']:.1f} s, download {run['download_s']:.1f} s "
        f"= {run['wall_s']:.1f} s over {run['chunks']:.0f} chunks, {run['result_lines']:,.0f} result lines",
        f"run:   peak RSS {run['peak_rss_mib']:.0f} MiB (after imports {run['rss_before_mib']:.0f}); "
        f"staging peak {run['staging_peak_mib']:,.0f} MiB; results {run['results_peak_mib']:,.0f} MiB",
        f"ratio wall / floor: {run['wall_s'] / floor['wall_s']:.2f}; "
        f"without the emulator's processing wait: {client_s / floor['wall_s']:.2f}",
        f"emulator peak RSS {emulator_peak:.0f} MiB",
    ]
    text = "\n".join(rows)
    print(text)
    peak = max(r["peak_rss_mib"] for r in runs["run"])
    staging_peak = max(r["staging_peak_mib"] for r in runs["run"])
    notes = [
        f"- peak RSS {peak:.0f} MiB (target < 300 MB = 286 MiB): "
        + ("met" if peak * 2**20 < 300e6 else "MISSED"),
        f"- staging peak {staging_peak:,.0f} MiB for {text_mib:,.0f} MiB of text (target: one copy): "
        + ("met" if staging_peak <= text_mib * 1.02 else "MISSED"),
        f"- wall {run['wall_s']:.1f} s vs floor {floor['wall_s']:.1f} s: ratio "
        f"{run['wall_s'] / floor['wall_s']:.2f} (target <= 2): "
        + ("met" if run["wall_s"] <= 2 * floor["wall_s"] else "MISSED")
        + f"; {client_s / floor['wall_s']:.2f} without the emulator's processing time",
    ]
    print("\n".join(notes))
    command = f"python bench/bench_scale.py --ids {args.ids} --chunk {args.chunk} --runs {args.runs}"
    write_report(
        f"scale-{args.ids}",
        command,
        text,
        notes,
        {"runs": runs, "emulator_peak_rss_mib": emulator_peak},
        load,
    )


if __name__ == "__main__":
    main()
