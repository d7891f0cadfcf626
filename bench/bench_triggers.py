"""Benchmark: triggerer capacity, N job triggers waiting concurrently in one event loop.

Targets (issue 4): 1000 concurrent waits in one process under 300 MB, event-loop lag never over 100 ms,
and no more status calls per job than ``duration / poll_interval + 2``.

    .venv/bin/python bench/bench_triggers.py                         # N = 100 and 1000, 3 runs each
    .venv/bin/python bench/bench_triggers.py --triggers 100 --runs 1 --processing-seconds 5
    .venv/bin/python bench/bench_triggers.py --profile 1000          # where the burst's loop stall goes

Each trigger waits on its own job: the emulator (a subprocess, rate limits lifted) is started with
``unfinished_jobs_per_type`` raised, and the child creates N jobs over plain HTTP (in a triggerer they
were created by N task processes) and uploads a tiny file to each, so all N are ``in_progress`` for
``--processing-seconds`` after their upload (each trigger's bound uses its own wait).

Two ways to start them: ``burst`` starts all N in the same instant (a triggerer restarting with N deferred
tasks to resume) and ``staggered`` spreads the starts evenly over the first poll interval (tasks deferring
one after another, how a running triggerer receives them). Variants:

- ``as-shipped``: the trigger and hook as released: one TLS context per process, and status polls that
  never register the job's signed URLs with Airflow's secrets masker (whose cost grows with every secret
  it holds; registering them per poll once made 100 waits stall the loop for 25 s).
- ``gc-frozen``: as shipped, in a process that moved its import-time heap out of the garbage collector's
  reach (``gc.freeze()``) before the triggers start, as a long-running triggerer can: separates what the
  triggers cost from CPython's full collections walking Airflow's and pyarrow's modules; at the largest N.
- ``per-client-tls``: the same with each client given its own ``httpx.create_ssl_context()`` (the behaviour
  before the shared TLS context), at the smallest N in a burst only.

Each run is a fresh process: imports, one warm-up trigger on a finished job, the N jobs created and
uploaded through the hook, then ``rss_before`` and the peak-RSS mark reset (``/proc/self/clear_refs``);
then the N triggers run with a ticker that asks the loop for a 10 ms sleep and records the oversleep
(loop lag). Memory per trigger is (peak RSS - rss_before) / N. Status calls per job come from each
trigger's event (``polls``) and are cross-checked against the emulator's request count.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import cProfile
import gc
import io
import json
import os
import pstats
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import DATA, TOKEN, LoadLog, conn_env, emulator_pid, median, memory_mib, run_child, write_report

TICK = 0.010
VARIANTS = ("as-shipped", "gc-frozen", "per-client-tls")
MODES = ("burst", "staggered")


async def _wait(trigger: Any, delay: float) -> tuple[dict[str, Any], float]:
    await asyncio.sleep(delay)
    start = time.monotonic()
    async for event in trigger.run():
        return event.payload, time.monotonic() - start
    raise RuntimeError("the trigger ended without an event")


async def _ticker(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    origin = loop.time()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(TICK)
        lags.append((loop.time() - start - TICK, start - origin))


async def _run(
    triggers: list[Any], spread: float, profile: cProfile.Profile | None
) -> tuple[list[tuple[dict[str, Any], float]], list[tuple[float, float]]]:
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, stop))
    if profile is not None:  # only the start (the burst), not the steady polling after it
        profile.enable()
        asyncio.get_running_loop().call_later(spread or 5.0, profile.disable)
    step = spread / len(triggers)
    try:
        outcomes = await asyncio.gather(*(_wait(t, i * step) for i, t in enumerate(triggers)))
    finally:
        stop.set()
        await ticker
    return outcomes, lags


def trigger_class(variant: str) -> type:
    """The trigger as shipped or (``per-client-tls``) with a new TLS context for every HTTP client."""
    from airflow_provider_xcompliance.triggers.compliance import XComplianceJobTrigger

    if variant in ("as-shipped", "gc-frozen"):
        return XComplianceJobTrigger
    import httpx

    def per_client_tls(**kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**{**kwargs, "verify": httpx.create_ssl_context()})

    class PerClientTlsTrigger(XComplianceJobTrigger):
        def _make_hook(self) -> Any:
            hook = super()._make_hook()
            hook._async_client_factory = per_client_tls
            return hook

    return PerClientTlsTrigger


def start_jobs(n: int, ids: Path) -> tuple[list[str], float]:
    """N jobs (alternately tweets and users), each ``in_progress`` after a tiny upload, over plain HTTP.

    Not through the hook: in a triggerer the jobs were created by N task processes, each uploading through
    its own hook; the uploads' work must not land on the process that measures the triggers.
    """
    import requests

    conn = json.loads(os.environ["AIRFLOW_CONN_X_DEFAULT"])
    local = threading.local()  # a session per thread: a requests session is not meant to be shared
    body = ids.read_bytes()

    def start(kind: str) -> str:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Bearer {conn['password']}"
        created = local.session.post(f"{conn['host']}/2/compliance/jobs", json={"type": kind}, timeout=30)
        created.raise_for_status()
        job = created.json()["data"]
        requests.put(job["upload_url"], data=body, headers={"Content-Type": "text/plain"}, timeout=30)
        return str(job["id"])

    begin = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(start, ("tweets" if i % 2 == 0 else "users" for i in range(n))))
    return jobs, time.monotonic() - begin


class GcPauses:
    """The longest garbage-collector pause and how many full (generation 2) collections ran."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.longest = max(self.longest, time.perf_counter() - self._started)
        self.full += info["generation"] == 2


def top_of(profile: cProfile.Profile, lines: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def child(n: int, poll: float, variant: str, mode: str, profile_to: str) -> None:
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook

    trigger = trigger_class(variant)
    hook = XComplianceHook()
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        ids = Path(scratch) / "ids.txt"
        ids.write_text("".join(f"{1000 + i}\n" for i in range(100)))
        warm = hook.create_job("tweets")
        hook.upload_ids(warm, ids)
        hook.wait_for_job(warm.id, poll_interval=0.2)
        asyncio.run(_run([trigger(warm.id, poll_interval=poll)], 0.0, None))  # imports, first client
        jobs, setup = start_jobs(n, ids)
    before = memory_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: the peak is the triggers' own
    triggers = [trigger(job, poll_interval=poll) for job in jobs]
    if variant == "gc-frozen":
        gc.freeze()
    profile = cProfile.Profile() if profile_to != "-" else None
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    start = time.monotonic()
    outcomes, ticks = asyncio.run(_run(triggers, poll if mode == "staggered" else 0.0, profile))
    wall = time.monotonic() - start
    gc.callbacks.remove(pauses)
    if profile is not None:
        Path(profile_to).write_text(top_of(profile))
    lags = sorted(lag for lag, _ in ticks)
    worst_lag, worst_at = max(ticks)
    polls = [event["polls"] for event, _ in outcomes]
    over_bound = [event["polls"] - (seconds / poll + 2) for event, seconds in outcomes]
    result = {
        "variant": variant,
        "mode": mode,
        "triggers": n,
        "statuses": sorted({event["status"] for event, _ in outcomes}),
        "setup_s": setup,
        "wall_s": wall,
        "median_wait_s": median(seconds for _, seconds in outcomes),
        "polls_total": sum(polls),
        "polls_median": median(polls),
        "polls_max": max(polls),
        "worst_polls_minus_bound": max(over_bound),
        "lag_max_ms": worst_lag * 1000,
        "lag_max_at_s": worst_at,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000,
        "lag_median_ms": median(lags) * 1000,
        "ticks_over_100ms": sum(lag > 0.1 for lag in lags),
        "gc_max_ms": pauses.longest * 1000,
        "gc_full_collections": pauses.full,
        "ticks": len(lags),
        "rss_before_mib": before,
        "peak_rss_mib": memory_mib("VmHWM"),
        "per_trigger_kib": (memory_mib("VmHWM") - before) * 1024 / n,
    }
    print(json.dumps(result))


def combinations(variants: list[str], triggers: list[int]) -> list[tuple[str, str, int]]:
    """Both modes at every N as shipped, and at the largest N gc-frozen; per-client TLS once, smallest N."""
    combos = [("as-shipped", mode, n) for n in triggers for mode in MODES] if "as-shipped" in variants else []
    if "gc-frozen" in variants:
        combos += [("gc-frozen", mode, max(triggers)) for mode in MODES]
    if "per-client-tls" in variants:
        combos.append(("per-client-tls", "burst", min(triggers)))
    return combos


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--triggers", type=int, nargs="+", default=[100, 1000], help="values of N")
    parser.add_argument("--runs", type=int, default=3, help="runs per N (median reported)")
    parser.add_argument("--poll-interval", type=float, default=10.0, help="seconds between a trigger's polls")
    parser.add_argument("--processing-seconds", type=float, default=20.0, help="how long each job runs")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--profile", type=int, metavar="N", help="one burst of N triggers under cProfile (its start only)"
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, poll, variant, mode, profile_to = args.child
        child(int(n), float(poll), variant, mode, profile_to)
        return

    from airflow_provider_xcompliance.emulator import EmulatorConfig, run_emulator
    from airflow_provider_xcompliance.retry import GET_JOB

    DATA.mkdir(exist_ok=True)
    combos = combinations(args.variants, args.triggers)
    if args.profile:
        combos = [("as-shipped", "burst", args.profile)]
    config = EmulatorConfig(
        token=TOKEN,
        processing_seconds=args.processing_seconds,
        rate_limit_count=10**9,
        unfinished_jobs_per_type=max(n for *_, n in combos),
    )
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {combo: [] for combo in combos}
    with (
        LoadLog() as load,
        run_emulator(config, subprocess=True) as emu,
        conn_env(emu.base_url) as env,
    ):
        pid = emulator_pid()
        if args.profile:
            with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
                child_args = [str(args.profile), str(args.poll_interval), "as-shipped", "burst", out.name]
                print(json.dumps(run_child(Path(__file__), child_args, env)))
                print(out.read())
            print(load.summary())
            return
        for _ in range(args.runs):
            for variant, mode, n in combos:
                calls_before = emu.state()["requests"].get(GET_JOB, 0)
                child_args = [str(n), str(args.poll_interval), variant, mode, "-"]
                result = run_child(Path(__file__), child_args, env)
                # The child's own wait_for_job and warm-up trigger polls are in the count too: a few per run.
                result["emulator_get_calls_per_trigger"] = (
                    emu.state()["requests"].get(GET_JOB, 0) - calls_before
                ) / n
                runs[variant, mode, n].append(result)
                print(json.dumps(result), flush=True)
        emulator_peak = memory_mib("VmHWM", pid)

    columns = {
        "peak RSS": "peak_rss_mib",
        "RSS before": "rss_before_mib",
        "KiB/trig": "per_trigger_kib",
        "lag max ms": "lag_max_ms",
        "at s": "lag_max_at_s",
        "lag p99 ms": "lag_p99_ms",
        "lag med ms": "lag_median_ms",
        ">100ms": "ticks_over_100ms",
        "GC max ms": "gc_max_ms",
        "wait s": "median_wait_s",
        "polls med": "polls_median",
        "max-bound": "worst_polls_minus_bound",
        "GET/trig": "emulator_get_calls_per_trigger",
    }
    rows = [f"{'variant':>16}{'mode':>10}{'N':>6}" + "".join(f"{c:>11}" for c in columns)]
    for (variant, mode, n), results in runs.items():
        rows.append(
            f"{variant:>16}{mode:>10}{n:6}"
            + "".join(f"{median(r[key] for r in results):11.1f}" for key in columns.values())
        )
    text = (
        f"poll_interval {args.poll_interval} s, job processing {args.processing_seconds} s, one job per "
        f"trigger, {args.runs} runs each, medians (RSS in MiB)\n" + "\n".join(rows)
    )
    print(text)
    notes = ["Targets, per variant and mode (worst run):"]
    for variant, mode, n in combos:
        mine = runs[variant, mode, n]
        peak = max(r["peak_rss_mib"] for r in mine)
        lag = max(r["lag_max_ms"] for r in mine)
        excess = max(r["worst_polls_minus_bound"] for r in mine)
        notes.append(
            f"- {variant} {mode} N = {n}: peak RSS {peak:.0f} MiB (< 286 MiB: "
            + ("met" if peak * 2**20 < 300e6 else "MISSED")
            + f"); loop lag max {lag:.0f} ms (< 100 ms: "
            + ("met" if lag < 100 else "MISSED")
            + f"); polls minus bound {excess:+.2f} (<= 0: "
            + ("met" if excess <= 0 else "MISSED")
            + ")"
        )
    statuses = sorted({s for rs in runs.values() for r in rs for s in r["statuses"]})
    setup = median(r["setup_s"] for rs in runs.values() for r in rs if r["triggers"] == max(args.triggers))
    notes += [
        f"- emulator peak RSS {emulator_peak:.0f} MiB; trigger events seen: {', '.join(statuses)}; "
        f"creating and uploading {max(args.triggers)} jobs took {setup:.1f} s (median)",
    ]
    print("\n".join(notes))
    name = "triggers-" + "-".join(map(str, args.triggers))
    command = (
        f"python bench/bench_triggers.py --triggers {' '.join(map(str, args.triggers))} --runs {args.runs} "
        f"--poll-interval {args.poll_interval} --processing-seconds {args.processing_seconds} "
        f"--variants {' '.join(args.variants)}"
    )
    raw = {"runs": {"-".join(map(str, combo)): r for combo, r in runs.items()}}
    write_report(name, command, text, notes, raw, load)


if __name__ == "__main__":
    main()
