"""Duplicates in bounded memory: rows are ordered by hash bucket of their id as they are parsed, each row's
id is spilled with its row number to a local file per (action, bucket), and each spill file is then checked
with one sort. The first occurrence of an (id, action) pair wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.concurrency import WORKER_MEMORY_POOL
from airflow_provider_xcompliance.results.general import as_array

__all__ = ["INT_KEYS", "STRING_KEYS", "bucket_count", "duplicate_rows", "order_by_bucket", "spill_keys"]

BUCKET_BYTES = 128 << 20  # JSON per bucket: a bucket's spill file sorts in little memory
_MAX_BUCKETS = 256
_DEFAULT_BUCKETS = 64  # when the input size is unknown (a source that cannot be stat'ed)
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: snowflake low bits are not uniform
TWIN_MULTIPLIER = np.uint64(0xC2B2AE3D27D4EB4F)  # another odd constant: hashes independent of the bucket
# Spill records: an id and its row in its action's table.
INT_KEYS = np.dtype([("id", "<i8"), ("row", "<i8")])
STRING_KEYS = np.dtype([("id", "<u8"), ("digits", "<i4"), ("row", "<i8")])


def bucket_count(total_bytes: int | None) -> int:
    if total_bytes is None:
        return _DEFAULT_BUCKETS
    wanted = min(max(1, -(-total_bytes // BUCKET_BYTES)), _MAX_BUCKETS)
    return 1 << (wanted - 1).bit_length()  # a power of two: the hash keeps its top bits


def order_by_bucket(rows: pa.Table, lines: np.ndarray, buckets: int) -> tuple[pa.Table, np.ndarray]:
    """Order rows by (action, hash bucket of id, line), so first occurrences stay first in each bucket;
    also the row count per (action, bucket)."""
    action = as_array(rows["action"])
    actions = len(action.dictionary)
    key = action.indices.to_numpy().astype(np.int64) * buckets
    if buckets > 1 and rows.num_rows:
        ids = as_array(rows["id"])
        hashes = (pc.cast(ids, pa.uint64()) if ids.type == pa.string() else ids).to_numpy()
        shift = np.uint64(64 - buckets.bit_length() + 1)
        key += ((hashes.astype(np.uint64) * _HASH_MULTIPLIER) >> shift).astype(np.int64)
    counts = np.bincount(key, minlength=actions * buckets).reshape(actions, buckets)
    if actions * buckets <= 1 << 16:
        # rows come as a few runs in line order (one per parse path), which a stable sort merges; then a
        # radix sort of the keys keeps line order among ties
        in_order = (lines[1:] > lines[:-1]).all()
        by_line = np.arange(len(lines)) if in_order else np.argsort(lines, kind="stable")
        order = by_line[np.argsort(key[by_line].astype(np.uint16), kind="stable")]
    else:
        order = np.lexsort((lines, key))
    if (order[1:] < order[:-1]).any():
        rows = pc.take(rows, pa.array(order), memory_pool=WORKER_MEMORY_POOL)
    return rows, counts


def spill_keys(ids: pa.Array) -> np.ndarray:
    """Spill records of a part: what identifies each id, and its row (0, 1, ...; the run adds the offset).

    A string id is its number and its digit count: "007" and "7" differ, as strings do.
    """
    if ids.type == pa.string():
        keys = np.empty(len(ids), STRING_KEYS)
        keys["id"] = pc.cast(ids, pa.uint64()).to_numpy()
        keys["digits"] = pc.binary_length(ids).to_numpy()
    else:
        keys = np.empty(len(ids), INT_KEYS)
        keys["id"] = ids.to_numpy()
    keys["row"] = np.arange(len(ids))
    return keys


def duplicate_rows(path: Path, keys: np.dtype) -> np.ndarray:
    """Rows (in their table) whose id an earlier row of the same spill file has: all but the first.

    Sorting 32-bit hashes of the ids is cheaper than sorting the ids. Rows whose hash has a twin (a few per
    million ids by chance, plus the true duplicates) are then compared exactly.
    """
    records = np.fromfile(path, keys)
    hashes = ((records["id"].view(np.uint64) * TWIN_MULTIPLIER) >> np.uint64(32)).astype(np.uint32)
    ordered = np.sort(hashes)
    twins = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(twins):
        return np.zeros(0, np.int64)  # the common case: one sort proves there is nothing to drop
    records = records[np.isin(hashes, twins)]
    fields = [name for name in keys.names or () if name != "row"]
    records = records[np.lexsort([records[name] for name in ["row", *reversed(fields)]])]
    same = np.ones(len(records) - 1, bool)
    for name in fields:
        same &= records[name][1:] == records[name][:-1]
    return records["row"][1:][same]
