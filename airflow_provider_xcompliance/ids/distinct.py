"""Exact distinct IDs within a memory bound, spilling to disk beyond it: the duplicate count and ``dedupe``.

IDs are hashed by a bijection of uint64 (so distinct hashes are distinct IDs) that spreads snowflakes,
clustered by time, evenly over 64 bits: spilled files then split evenly on the top hash bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from airflow_provider_xcompliance.concurrency import WORKERS, in_order
from airflow_provider_xcompliance.ids.values import IdBatch

DEFAULT_DEDUPE_MEMORY_IDS = 2_000_000
"""IDs the exact duplicate count (and ``dedupe=True``) keeps in memory before it spills to disk. Peak memory
grows with this bound (bytes per ID in bench/README.md)."""


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: spreads snowflakes (clustered by time) evenly over 64 bits.

    A bijection of uint64 (:func:`_unmix64` inverts it), so distinct hashes are distinct IDs.
    """
    with np.errstate(over="ignore"):
        h = values + np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(30)  # in place: two arrays at most, whatever the size
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        return h


def _unmix64(h: np.ndarray) -> np.ndarray:
    """The IDs behind :func:`_mix64` hashes, in place: each step of the finaliser undone in reverse."""
    with np.errstate(over="ignore"):
        h ^= (h >> np.uint64(31)) ^ (h >> np.uint64(62))
        h *= np.uint64(pow(0x94D049BB133111EB, -1, 1 << 64))
        h ^= (h >> np.uint64(27)) ^ (h >> np.uint64(54))
        h *= np.uint64(pow(0xBF58476D1CE4E5B9, -1, 1 << 64))
        h ^= (h >> np.uint64(30)) ^ (h >> np.uint64(60))
        h -= np.uint64(0x9E3779B97F4A7C15)
        return h


def sorted_hashes(batch: IdBatch) -> np.ndarray | None:
    """The batch's IDs as sorted hashes (in the worker threads: the main thread then only partitions)."""
    if not batch.count:
        return None
    hashes = _mix64(batch.id_values())
    hashes.sort()
    return hashes


def _sorted_unique(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (not ``np.unique``, which would sort it again)."""
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class Deduplicator:
    """Exact distinct IDs within a memory bound: for the duplicate count, and the output of ``dedupe``.

    IDs come as sorted :func:`sorted_hashes`. Up to ``memory_ids`` are held in memory (8 bytes each); beyond
    it they are appended to 64 files of ``uint64`` by their top hash bits (each sorted batch is cut
    with a binary search, no sort); a file still larger than the bound at the end is split again on the
    next bits. Disk used is at most 8 bytes per ID, freed file by file. the IDs come back the
    distinct IDs ascending when nothing was spilled, else ascending within each file: deterministic,
    but not the input order.
    """

    fanout_bits = 6

    def __init__(self, spill_dir: Path, memory_ids: int) -> None:
        self.spill_dir = spill_dir
        self.memory_ids = max(1, memory_ids)
        self.pending: list[np.ndarray] = []
        self.pending_ids = 0
        self.spilled = False
        self.unique = 0

    def add(self, hashes: np.ndarray) -> None:
        self.pending.append(hashes)
        self.pending_ids += len(hashes)
        if self.pending_ids > self.memory_ids:
            self._spill(self.pending, self.spill_dir, 0)
            self.pending, self.pending_ids, self.spilled = [], 0, True

    def _partition_path(self, folder: Path, part: int) -> Path:
        return folder / f"part-{part:02d}.u64"

    def _spill(self, runs: Iterable[np.ndarray], folder: Path, depth: int) -> None:
        """Append sorted ``runs`` (sharing the hash bits above this depth's) to files by this depth's."""
        folder.mkdir(parents=True, exist_ok=True)
        fanout = 1 << self.fanout_bits
        shift = 64 - self.fanout_bits * (depth + 1)
        pieces: list[list[np.ndarray]] = [[] for _ in range(fanout)]
        for run in runs:
            if not len(run):
                continue
            prefix = int(run[0]) >> (shift + self.fanout_bits) << (shift + self.fanout_bits)
            starts = np.array([prefix + (part << shift) for part in range(1, fanout)], np.uint64)
            bounds = [0, *np.searchsorted(run, starts).tolist(), len(run)]
            for part in range(fanout):
                if bounds[part] < bounds[part + 1]:
                    pieces[part].append(run[bounds[part] : bounds[part + 1]])
        for part, arrays in enumerate(pieces):
            if arrays:
                with self._partition_path(folder, part).open("ab") as out:
                    out.writelines(array.data for array in arrays)

    def _loads(self, folder: Path, depth: int) -> Iterator[Callable[[], np.ndarray]]:
        """One call per file, in order, that loads it sorted (and removes it)."""
        for part in range(1 << self.fanout_bits):
            path = self._partition_path(folder, part)
            if not path.exists():
                continue
            # Too big for memory: split again on the next hash bits (64 bits give up to 10 levels).
            if path.stat().st_size // 8 > self.memory_ids and self.fanout_bits * (depth + 2) <= 64:
                sub = folder / f"part-{part:02d}"
                with path.open("rb") as src:
                    while block := src.read(8 * self.memory_ids):
                        self._spill([np.sort(np.frombuffer(block, np.uint64))], sub, depth + 1)
                path.unlink()
                yield from self._loads(sub, depth + 1)
                continue
            yield partial(_load_sorted, path)

    def count(self) -> int:
        """The number of distinct IDs added (spilled files are read back and removed)."""
        for _ in self.drain():
            pass
        return self.unique

    def drain(self, ids: bool = False) -> Iterator[np.ndarray]:
        """Count the distinct IDs into :attr:`unique`; with ``ids``, also yield them (ascending within
        each slice of at most ``memory_ids``). Slices are loaded and sorted in two threads, in order."""
        pending, self.pending, self.pending_ids = self.pending, [], 0
        if self.spilled:
            self._spill(pending, self.spill_dir, 0)
            pending.clear()
            loads: Iterable[Callable[[], np.ndarray]] = self._loads(self.spill_dir, 0)
        else:
            loads = [partial(_merged, pending)]
        calls = ((None, partial(_distinct, load, ids)) for load in loads)
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="xcompliance-dedupe") as pool:
            for _, (count, distinct) in in_order(pool, calls, 1):
                self.unique += count
                if distinct is not None:
                    yield distinct


def _load_sorted(path: Path) -> np.ndarray:
    hashes = np.fromfile(path, np.uint64)
    path.unlink()
    hashes.sort()
    return hashes


def _merged(runs: list[np.ndarray]) -> np.ndarray:
    merged = np.concatenate(runs) if runs else np.empty(0, np.uint64)
    runs.clear()  # one copy in memory while sorting, not two
    merged.sort()
    return merged


def _distinct(load: Callable[[], np.ndarray], ids: bool) -> tuple[int, np.ndarray | None]:
    """How many distinct hashes ``load()`` returns and, with ``ids``, the IDs behind them, ascending."""
    run = load()
    if not ids:
        return len(run) - int(np.count_nonzero(run[1:] == run[:-1])), None
    distinct = _sorted_unique(run)
    for start in range(0, len(distinct), 1 << 20):  # in place, in slices: the temporaries stay small
        _unmix64(distinct[start : start + (1 << 20)])
    distinct.sort()
    return len(distinct), distinct
