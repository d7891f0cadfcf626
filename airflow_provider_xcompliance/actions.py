"""Which table a result row goes to: its effective action, and that table's folder name.

Geo scrubs: X's documentation shows geo-scrub results as ``"action": "delete", "reason": "scrub_geo"``,
while other sources write ``"action": "scrub_geo"``. A row is a geo scrub when its ``reason`` or its
``action`` is ``scrub_geo``, whatever the other says. The policy ``geo_scrub`` decides its table:

- ``"scrub"`` (default): ``scrub_geo/``. X asked for the geo data to go, not the post: deleting the post
  would remove more than asked.
- ``"delete"``: ``delete/``, for warehouses that would rather drop such posts whole.

The ``action`` column of every table equals its folder (the effective action); the original action of a geo
scrub is implied by its ``reason``. Rows of any other action keep their own table.
"""

from __future__ import annotations

import hashlib
from typing import Literal
from urllib.parse import quote

import numpy as np
import pyarrow as pa

__all__ = [
    "GEO_SCRUB",
    "GEO_SCRUB_POLICIES",
    "GeoScrubPolicy",
    "check_policy",
    "effective_action",
    "effective_actions",
    "table_dir_name",
]

GeoScrubPolicy = Literal["scrub", "delete"]
GEO_SCRUB = "scrub_geo"
GEO_SCRUB_POLICIES: tuple[GeoScrubPolicy, ...] = ("scrub", "delete")
_MAX_NAME = 120  # bytes of a folder name: file systems allow 255, object stores about 1,000 per key


def check_policy(geo_scrub: str) -> GeoScrubPolicy:
    if geo_scrub not in GEO_SCRUB_POLICIES:
        raise ValueError(f"geo_scrub must be one of {GEO_SCRUB_POLICIES}, not {geo_scrub!r}")
    return geo_scrub  # type: ignore[return-value]


def effective_action(action: str, reason: str | None, geo_scrub: GeoScrubPolicy = "scrub") -> str:
    """The table of one result record (for checks against ground truth; the converter works by column)."""
    if GEO_SCRUB in (action, reason):
        return GEO_SCRUB if geo_scrub == "scrub" else "delete"
    return action


def _codes(dictionary: pa.Array, value: str) -> list[int]:
    return [code for code, text in enumerate(dictionary.to_pylist()) if text == value]


def effective_actions(
    action: pa.DictionaryArray, reason: pa.DictionaryArray, geo_scrub: GeoScrubPolicy
) -> pa.DictionaryArray:
    """``action`` with every geo scrub's value replaced by the policy's table (only the codes change)."""
    target = GEO_SCRUB if geo_scrub == "scrub" else "delete"
    reason_codes = reason.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    action_codes = action.indices.to_numpy(zero_copy_only=False)
    geo = np.isin(reason_codes, _codes(reason.dictionary, GEO_SCRUB))
    geo |= np.isin(action_codes, _codes(action.dictionary, GEO_SCRUB))
    values = action.dictionary.to_pylist()
    if not geo.any() or (target in values and (action_codes[geo] == values.index(target)).all()):
        return action
    if target not in values:
        values.append(target)
    codes = np.where(geo, values.index(target), action_codes).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values, pa.string()))


def table_dir_name(action: str) -> str:
    """A folder name for an action: %-escaped, never hidden (a leading ``.`` or ``_`` is escaped too), and
    at most 120 bytes (a longer one keeps its start and a hash of the whole action)."""
    name = quote(action, safe="")
    if name[0] in "._":
        name = f"%{ord(name[0]):02X}{name[1:]}"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(action.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        head = name[: _MAX_NAME - 17]
        if "%" in head[-2:]:  # never half an escape
            head = head[: head.rindex("%")]
        name = f"{head}~{digest}"
    return name
