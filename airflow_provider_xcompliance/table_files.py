"""Names of the files the reporting step writes beside its tables.

Dependency-free, so the apply step can find them without loading the converter (numpy, pyarrow).
"""

from __future__ import annotations

REJECTS_FILE = "_rejects.jsonl"
SUMMARY_FILE = "_summary.json"
PART_FILE = "part-00000.parquet"
