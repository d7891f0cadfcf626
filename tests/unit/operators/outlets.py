"""A stand-in for Airflow's ``outlet_events`` accessor in operator unit tests."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from airflow.sdk import Asset


class OutletEvents:
    """Keyed by the asset's URI like Airflow's accessor (an Asset is unhashable before 3.2)."""

    def __init__(self) -> None:
        self.by_uri: defaultdict[str, SimpleNamespace] = defaultdict(SimpleNamespace)

    def __getitem__(self, asset: Asset) -> SimpleNamespace:
        return self.by_uri[asset.uri]
