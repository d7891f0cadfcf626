"""Helpers shared by the transfer, trigger and scale benchmarks: memory, machine facts, data, emulator.

Peak memory is read from ``/proc/<pid>/status`` (``VmHWM``) of the process measured, never from
``ru_maxrss``: on Linux that keeps a parent's peak across fork and exec. Each measured side (client,
emulator) runs in its own process so its peak is its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results"
TOKEN = "bench-token"
EMULATOR_MODULE = "airflow_provider_xcompliance.emulator"
LIBRARIES = ("apache-airflow", "requests", "httpx", "pyarrow", "numpy", "starlette", "uvicorn")


def memory_mib(field: str, pid: int | str = "self") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing from /proc/{pid}/status")


def emulator_pid() -> int:
    """The pid of the emulator subprocess this process started (``run_emulator(subprocess=True)``)."""
    for task in Path("/proc/self/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if EMULATOR_MODULE.encode() in cmdline:
                return int(child)
    raise RuntimeError("no emulator subprocess found among this process's children")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def run_child(script: Path, args: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script --child ...`` in a fresh interpreter; its last stdout line is a JSON result."""
    out = subprocess.run(
        [sys.executable, str(script), "--child", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if out.returncode:
        raise RuntimeError(f"child {args} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def generate_text_ids(path: Path, lines: int) -> Path:
    """The ID text file of ``bench_ids.py`` (same seed, so a smaller file is a prefix of a bigger one)."""
    from bench_ids import generate

    DATA.mkdir(exist_ok=True)
    generate(path, lines)
    return path


def directory_bytes(path: Path) -> int:
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(path):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):
                    total += directory_bytes(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


class PeakSampler:
    """Samples a callable every ``interval`` seconds on a thread and keeps the largest value."""

    def __init__(self, sample: Any, interval: float = 0.2) -> None:
        self._sample = sample
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # the process or folder may vanish between samples
                self.peak = max(self.peak, float(self._sample()))
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(Exception):
            self.peak = max(self.peak, float(self._sample()))


def load_average() -> float:
    """The 1-minute load average (``uptime``'s first figure)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def other_benchmarks() -> set[str]:
    """Benchmark scripts other processes are running now (not this process or its children)."""
    mine = {os.getpid(), os.getppid()}
    seen = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        with contextlib.suppress(OSError):
            args = proc.joinpath("cmdline").read_bytes().split(b"\0")
            if "--child" in map(bytes.decode, args):
                continue
            seen.update(Path(a.decode()).name for a in args if a.endswith(b".py") and b"bench_" in a)
    return seen - {Path(sys.argv[0]).name}


class LoadLog:
    """Samples the load average and which other benchmarks run, so a report says how busy the machine was."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.loads: list[float] = []
        self.others: set[str] = set()
        self._sampler = PeakSampler(self._sample, interval)

    def _sample(self) -> float:
        self.loads.append(load_average())
        self.others |= other_benchmarks()
        return self.loads[-1]

    def __enter__(self) -> LoadLog:
        self._sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sampler.__exit__(*exc)

    def summary(self) -> str:
        loads = self.loads or [load_average()]
        others = ", ".join(sorted(self.others)) or "none"
        return (
            f"1-min load average during the run (every {self.interval:.0f} s): min {min(loads):.2f}, "
            f"median {median(loads):.2f}, max {max(loads):.2f} on {os.cpu_count()} cores; "
            f"other benchmarks seen running: {others}"
        )


def machine() -> dict[str, str]:
    """What a reader needs to compare figures: cores, memory, CPU, Python and library versions."""
    models = [
        line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
    ]
    cpu = models[0].split(":", 1)[1].strip() if models else platform.processor()
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.rstrip()
    versions = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "free -g": free,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "curl": " ".join(curl.split()[:2]),
    }


def write_report(
    name: str, command: str, table: str, notes: Sequence[str], raw: dict[str, Any], load: LoadLog
) -> Path:
    """``bench/results/<name>.md`` (command, machine, load, table, notes) and ``<name>.raw.json``."""
    RESULTS.mkdir(exist_ok=True)
    facts = {**machine(), "load": load.summary()}
    free = facts.pop("free -g")
    lines = [
        f"# {name}",
        "",
        f"Command: `{command}`",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
        "- machine shared with other processes (see load): medians are quoted",
        "",
        "```",
        "$ free -g",
        free,
        "```",
        "",
        "```",
        table.rstrip(),
        "```",
        "",
        *notes,
        "",
    ]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines))
    (RESULTS / f"{name}.raw.json").write_text(
        json.dumps({"machine": facts, "load_samples": load.loads, **raw}, indent=2)
    )
    return path


@contextlib.contextmanager
def conn_env(base_url: str) -> Iterator[dict[str, str]]:
    """``AIRFLOW_CONN_X_DEFAULT`` pointing at the emulator, set in this process and returned for children."""
    from airflow_provider_xcompliance.emulator.server import connection_json

    env = {"AIRFLOW_CONN_X_DEFAULT": connection_json(base_url, TOKEN)}
    old = os.environ.get("AIRFLOW_CONN_X_DEFAULT")
    os.environ.update(env)
    try:
        yield env
    finally:
        if old is None:
            os.environ.pop("AIRFLOW_CONN_X_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_X_DEFAULT"] = old


def curl_upload(path: Path, poll: float) -> tuple[float, Any]:
    """Seconds for curl to PUT ``path`` to a new job's upload URL, and that job once complete.

    ``-T`` streams the file (``--data-binary @file`` reads all of it into memory first, which made curl
    several times slower on 1 GiB); ``Expect:`` drops the 100-continue round trip.
    """
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook

    hook = XComplianceHook()
    job = hook.create_job("tweets")
    start = time.perf_counter()
    subprocess.run(
        ["curl", "-sS", "--fail", "-T", str(path), "-H", "Content-Type: text/plain", "-H", "Expect:",
         "-o", "/dev/null", job.upload_url],
        check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return seconds, hook.wait_for_job(job.id, poll_interval=poll)  # completing frees the slot
