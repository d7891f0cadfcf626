"""Benchmark: upload then download an ID file through the hook, against curl, on a loopback emulator.

Targets (issue 3): peak RSS of the client process under 200 MB whatever the size (100 MB and 1 GiB
shown); emulator RSS flat too; hook throughput within 1.5x of ``curl`` doing the same PUT and GET
against the same emulator in the same run.

    .venv/bin/python bench/bench_transfer.py            # 5M and 50M lines (~95 MiB, ~950 MiB), 3 runs
    .venv/bin/python bench/bench_transfer.py --lines 2000000 --runs 3

The emulator runs as a subprocess (processing_seconds=0, no upload cap, rate limits lifted); its peak RSS
is its ``VmHWM`` after each size. Each hook run is a fresh process (create, upload, wait, download), so
its peak RSS is the client's alone; ``rss_before`` is that process after imports (Airflow's SDK is most
of it). curl runs use a job the parent creates; every run gets a new job, so fresh signed URLs. Kinds
alternate within a run so machine noise hits them alike. Only the transfers are timed, not the wait for
the emulator to process the upload.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    DATA,
    TOKEN,
    LoadLog,
    conn_env,
    curl_upload,
    emulator_pid,
    generate_text_ids,
    median,
    memory_mib,
    run_child,
    write_report,
)

KINDS = ("hook", "hook-resumable", "curl")
POLL = 0.2


def child(kind: str, path: Path) -> None:
    """One hook run: create a job, upload, wait for it, download; prints seconds and memory as JSON."""
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook

    hook = XComplianceHook()
    hook.get_conn()  # the connection lookup is start-up, not transfer
    before = memory_mib("VmRSS")
    job = hook.create_job("tweets", resumable=kind == "hook-resumable")
    up = hook.upload_ids(job, path)
    done = hook.wait_for_job(job.id, poll_interval=POLL)
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        down = hook.download_results(done, Path(scratch) / "results.jsonl")
    result = {
        "upload_s": up.seconds,
        "download_s": down.seconds,
        "down_bytes": down.bytes,
        "rss_before_mib": before,
        "peak_rss_mib": memory_mib("VmHWM"),
    }
    print(json.dumps(result))


def curl_run(path: Path) -> dict[str, Any]:
    """The same PUT and GET done by curl, on a job created (and waited for) through the hook here."""
    upload, done = curl_upload(path, POLL)
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        out = Path(scratch) / "results.jsonl"
        start = time.perf_counter()
        subprocess.run(["curl", "-sS", "--fail", "-o", str(out), done.download_url], check=True)
        download = time.perf_counter() - start
        size = out.stat().st_size
        start = time.perf_counter()
        with out.open("rb") as written:  # the hook fsyncs before its atomic rename; curl does not
            os.fsync(written.fileno())
        fsync = time.perf_counter() - start
    return {"upload_s": upload, "download_s": download, "down_bytes": size, "fsync_s": fsync}


def measure_size(path: Path, runs: int, env: dict[str, str], emu_pid: int) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for _ in range(runs):
        for kind in KINDS:
            # the previous run's 1 GiB of writes would otherwise be flushed to disk during this one (untimed)
            os.sync()
            if kind == "curl":
                results[kind].append(curl_run(path))
            else:
                results[kind].append(run_child(Path(__file__), [kind, str(path)], env))
    return {
        "bytes": path.stat().st_size,
        "runs": results,
        "emulator_rss_mib": memory_mib("VmRSS", emu_pid),
        "emulator_peak_rss_mib": memory_mib("VmHWM", emu_pid),
    }


def summarise(size: dict[str, Any]) -> dict[str, dict[str, float]]:
    mib = size["bytes"] / 2**20
    summary: dict[str, dict[str, float]] = {}
    for kind, runs in size["runs"].items():
        up = median(r["upload_s"] for r in runs)
        down = median(r["download_s"] for r in runs)
        summary[kind] = {
            "upload_s": up,
            "download_s": down,
            "upload_mib_s": mib / up,
            "download_mib_s": median(r["down_bytes"] for r in runs) / 2**20 / down,
            "rss_before_mib": median(r.get("rss_before_mib", 0.0) for r in runs),
            "peak_rss_mib": max(r.get("peak_rss_mib", 0.0) for r in runs),
        }
    curl = summary["curl"]
    curl["download_fsync_s"] = median(r["download_s"] + r["fsync_s"] for r in size["runs"]["curl"])
    return summary


def table(sizes: dict[int, dict[str, Any]]) -> str:
    head = (
        "upload s",
        "up MiB/s",
        "up ratio",
        "download s",
        "down MiB/s",
        "down ratio",
        "RSS before",
        "peak RSS",
    )
    rows = [f"{'lines / kind':24}" + "".join(f"{h:>11}" for h in head)]
    for lines, size in sizes.items():
        s = size["summary"]
        rows.append(
            f"{lines:,} lines, {size['bytes'] / 2**20:,.0f} MiB; emulator RSS "
            f"{size['emulator_rss_mib']:.0f} MiB now, {size['emulator_peak_rss_mib']:.0f} MiB peak so far"
        )
        for kind, k in s.items():
            values = (
                k["upload_s"],
                k["upload_mib_s"],
                k["upload_s"] / s["curl"]["upload_s"],
                k["download_s"],
                k["download_mib_s"],
                k["download_s"] / s["curl"]["download_s"],
            )
            rss = (k["rss_before_mib"], k["peak_rss_mib"]) if kind != "curl" else ()
            rows.append(
                f"  {kind:22}" + "".join(f"{v:11.2f}" for v in values) + "".join(f"{v:11.0f}" for v in rss)
            )
        durable = s["curl"]["download_fsync_s"]
        rows.append(
            f"  curl download + fsync {durable:.2f} s (the hook fsyncs before its rename); hook download "
            + ", ".join(f"{kind} {s[kind]['download_s'] / durable:.2f}x" for kind in s if kind != "curl")
            + " of that"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lines", type=int, nargs="+", default=[5_000_000, 50_000_000], help="file sizes in lines (IDs)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind per size (median reported)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    import logging

    from airflow_provider_xcompliance.emulator import EmulatorConfig, run_emulator

    logging.getLogger("airflow_provider_xcompliance").setLevel(logging.WARNING)  # one line per poll otherwise
    paths = {lines: generate_text_ids(DATA / f"ids-{lines}.txt", lines) for lines in args.lines}
    config = EmulatorConfig(token=TOKEN, processing_seconds=0.0, rate_limit_count=10**9)
    sizes: dict[int, dict[str, Any]] = {}
    with (
        LoadLog() as load,
        run_emulator(config, subprocess=True) as emu,
        conn_env(emu.base_url) as env,
    ):
        pid = emulator_pid()
        emulator_start = memory_mib("VmRSS", pid)
        for lines, path in paths.items():
            sizes[lines] = measure_size(path, args.runs, env, pid)
            sizes[lines]["summary"] = summarise(sizes[lines])
            print(table({lines: sizes[lines]}), flush=True)
    text = f"emulator RSS at start {emulator_start:.0f} MiB; {args.runs} runs per kind, medians\n" + table(
        sizes
    )
    print(text)
    worst_ratio = max(
        k[f"{d}_s"] / size["summary"]["curl"][f"{d}_s"]
        for size in sizes.values()
        for kind, k in size["summary"].items()
        for d in ("upload", "download")
        if kind != "curl"
    )
    peak = max(
        k["peak_rss_mib"] for s in sizes.values() for kind, k in s["summary"].items() if kind != "curl"
    )
    notes = [
        f"- client peak RSS (max over runs and sizes): {peak:.0f} MiB; target < 200 MB (190.7 MiB): "
        + ("met" if peak * 2**20 < 200e6 else "MISSED"),
        f"- worst hook/curl time ratio: {worst_ratio:.2f}; target <= 1.5: "
        + ("met" if worst_ratio <= 1.5 else "MISSED"),
        "- emulator peak RSS after each size: "
        + ", ".join(f"{lines:,} lines: {s['emulator_peak_rss_mib']:.0f} MiB" for lines, s in sizes.items()),
    ]
    print("\n".join(notes))
    name = "transfer-" + "-".join(str(lines) for lines in args.lines)
    command = "python bench/bench_transfer.py " + " ".join(
        ["--lines", *map(str, args.lines), "--runs", str(args.runs)]
    )
    raw = {"emulator_start_rss_mib": emulator_start, "sizes": {str(k): v for k, v in sizes.items()}}
    write_report(name, command, text, notes, raw, load)


if __name__ == "__main__":
    main()
