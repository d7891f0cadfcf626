"""Benchmark: triggerer capacity, N job triggers waiting concurrently in one event loop.

Targets (issue 4): 1000 concurrent waits in one process under 300 MB, event-loop lag never over 100 ms,
and no more status calls per job than ``duration / poll_interval + 2``.

    .venv/bin/python bench/bench_triggers.py                         # N = 100 and 1000, 3 runs each
    .venv/bin/python bench/bench_triggers.py --triggers 100 --runs 1 --processing-seconds 5

Realistic durations compressed: a job takes ``--processing-seconds`` (default 20 s) after its upload and
each trigger polls every ``--poll-interval`` (default 1 s), i.e. the production 30 s polls of a 10-minute
job, 30x faster. The emulator (a subprocess, rate limits lifted) allows one unfinished job per type, so
the N triggers wait on two in-progress jobs (one tweets, one users), N/2 each: the client side (N
triggers, N HTTP clients, N polls per interval) is what a triggerer would carry; only the server holds two
jobs instead of N (see the note printed with the results).

Each run is a fresh process: imports, one warm-up trigger on a finished job, the two jobs created and
uploaded through the hook, then ``rss_before``; then the N triggers start together with a ticker that
asks the loop for a 10 ms sleep and records the oversleep (loop lag). Memory per trigger is
(peak RSS - rss_before) / N. Status calls per job come from each trigger's event (``polls``) and are
cross-checked against the emulator's request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DATA, TOKEN, conn_env, emulator_pid, median, memory_mib, run_child, write_report

TICK = 0.010


async def _wait(trigger: Any) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    async for event in trigger.run():
        return event.payload, time.monotonic() - start
    raise RuntimeError("the trigger ended without an event")


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(TICK)
        lags.append(loop.time() - start - TICK)


async def _run(triggers: list[Any]) -> tuple[list[tuple[dict[str, Any], float]], list[float]]:
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, stop))
    try:
        outcomes = await asyncio.gather(*(_wait(t) for t in triggers))
    finally:
        stop.set()
        await ticker
    return outcomes, lags


def trigger_class(variant: str) -> type:
    """The trigger as shipped, or (``shared-ssl``) with every hook's httpx client built on one SSL context.

    ``shared-ssl`` measures the fix proposed for the hook: ``httpx.AsyncClient()`` builds a new SSL
    context and loads the CA bundle synchronously (tens of ms here), inside the event loop, per trigger.
    """
    from airflow_provider_xcompliance.triggers.compliance import XComplianceJobTrigger

    if variant == "as-is":
        return XComplianceJobTrigger
    import functools
    import ssl

    import httpx

    factory = functools.partial(httpx.AsyncClient, verify=ssl.create_default_context())

    class SharedSslTrigger(XComplianceJobTrigger):
        def _make_hook(self) -> Any:
            hook = super()._make_hook()
            hook._async_client_factory = factory
            return hook

    return SharedSslTrigger


def child(n: int, poll: float, variant: str) -> None:
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook

    trigger = trigger_class(variant)

    hook = XComplianceHook()
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        ids = Path(scratch) / "ids.txt"
        ids.write_text("".join(f"{1000 + i}\n" for i in range(100)))
        warm = hook.create_job("tweets")
        hook.upload_ids(warm, ids)
        hook.wait_for_job(warm.id, poll_interval=0.2)
        asyncio.run(_run([trigger(warm.id, poll_interval=poll)]))  # imports, first client
        jobs = [hook.create_job(kind) for kind in ("tweets", "users")]
        for job in jobs:
            hook.upload_ids(job, ids)
    before = memory_mib("VmRSS")
    triggers = [trigger(jobs[i % 2].id, poll_interval=poll) for i in range(n)]
    start = time.monotonic()
    outcomes, lags = asyncio.run(_run(triggers))
    wall = time.monotonic() - start
    lags.sort()
    polls = [event["polls"] for event, _ in outcomes]
    over_bound = [event["polls"] - (seconds / poll + 2) for event, seconds in outcomes]
    result = {
        "variant": variant,
        "triggers": n,
        "statuses": sorted({event["status"] for event, _ in outcomes}),
        "wall_s": wall,
        "median_wait_s": median(seconds for _, seconds in outcomes),
        "polls_total": sum(polls),
        "polls_median": median(polls),
        "polls_max": max(polls),
        "worst_polls_minus_bound": max(over_bound),
        "lag_max_ms": lags[-1] * 1000,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000,
        "lag_median_ms": median(lags) * 1000,
        "ticks": len(lags),
        "rss_before_mib": before,
        "peak_rss_mib": memory_mib("VmHWM"),
        "per_trigger_kib": (memory_mib("VmHWM") - before) * 1024 / n,
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--triggers", type=int, nargs="+", default=[100, 1000], help="values of N")
    parser.add_argument("--runs", type=int, default=3, help="runs per N (median reported)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between a trigger's polls")
    parser.add_argument("--processing-seconds", type=float, default=20.0, help="how long each job runs")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["as-is", "shared-ssl"],
        choices=["as-is", "shared-ssl"],
        help="the trigger as shipped, and with one shared SSL context for all HTTP clients",
    )
    parser.add_argument("--child", nargs=3, metavar=("N", "POLL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), float(args.child[1]), args.child[2])
        return

    from airflow_provider_xcompliance.emulator import EmulatorConfig, run_emulator
    from airflow_provider_xcompliance.retry import GET_JOB

    DATA.mkdir(exist_ok=True)
    config = EmulatorConfig(token=TOKEN, processing_seconds=args.processing_seconds, rate_limit_count=10**9)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {
        (variant, n): [] for variant in args.variants for n in args.triggers
    }
    with run_emulator(config, subprocess=True) as emu, conn_env(emu.base_url) as env:
        pid = emulator_pid()
        for _ in range(args.runs):
            for variant, n in runs:
                calls_before = emu.state()["requests"].get(GET_JOB, 0)
                result = run_child(Path(__file__), [str(n), str(args.poll_interval), variant], env)
                # The child's own wait_for_job and warm-up trigger polls are in the count too: a few per run.
                result["emulator_get_calls_per_trigger"] = (
                    emu.state()["requests"].get(GET_JOB, 0) - calls_before
                ) / n
                runs[variant, n].append(result)
                print(json.dumps(result), flush=True)
        emulator_peak = memory_mib("VmHWM", pid)

    columns = {
        "peak RSS": "peak_rss_mib",
        "RSS before": "rss_before_mib",
        "KiB/trig": "per_trigger_kib",
        "lag max ms": "lag_max_ms",
        "lag p99 ms": "lag_p99_ms",
        "lag med ms": "lag_median_ms",
        "wait s": "median_wait_s",
        "polls med": "polls_median",
        "polls max": "polls_max",
        "max-bound": "worst_polls_minus_bound",
        "emu GET/trig": "emulator_get_calls_per_trigger",
    }
    rows = [f"{'variant':>11}{'N':>6}" + "".join(f"{c:>12}" for c in columns)]
    for (variant, n), results in runs.items():
        rows.append(
            f"{variant:>11}{n:6}"
            + "".join(f"{median(r[key] for r in results):12.1f}" for key in columns.values())
        )
    text = (
        f"poll_interval {args.poll_interval} s, job processing {args.processing_seconds} s, "
        f"{args.runs} runs each, medians (RSS in MiB)\n" + "\n".join(rows)
    )
    print(text)
    notes = ["Targets, per variant (max over runs):"]
    for variant in args.variants:
        mine = [r for (v, _), rs in runs.items() if v == variant for r in rs]
        biggest = runs[variant, max(args.triggers)]
        peak = max(r["peak_rss_mib"] for r in biggest)
        lag = max(r["lag_max_ms"] for r in mine)
        excess = max(r["worst_polls_minus_bound"] for r in mine)
        notes += [
            f"- {variant}: N = {max(args.triggers)} peak RSS {peak:.0f} MiB (target < 300 MB = 286 MiB): "
            + ("met" if peak * 2**20 < 300e6 else "MISSED"),
            f"- {variant}: loop lag max {lag:.0f} ms (target < 100 ms): "
            + ("met" if lag < 100 else "MISSED"),
            f"- {variant}: status calls per job minus (duration/poll_interval + 2), worst {excess:+.2f}: "
            + ("met" if excess <= 0 else "MISSED"),
        ]
    statuses = sorted({s for rs in runs.values() for r in rs for s in r["statuses"]})
    notes += [
        f"- emulator peak RSS {emulator_peak:.0f} MiB; trigger events seen: {', '.join(statuses)}",
        "- the emulator allows one unfinished job per type, so the N triggers share two in-progress jobs",
    ]
    print("\n".join(notes))
    name = "triggers-" + "-".join(map(str, args.triggers))
    command = (
        f"python bench/bench_triggers.py --triggers {' '.join(map(str, args.triggers))} --runs {args.runs} "
        f"--poll-interval {args.poll_interval} --processing-seconds {args.processing_seconds} "
        f"--variants {' '.join(args.variants)}"
    )
    raw = {"runs": {f"{v}-{n}": r for (v, n), r in runs.items()}}
    write_report(name, command, text, notes, raw)


if __name__ == "__main__":
    main()
