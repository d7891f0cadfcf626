"""What a pass over the ID sources saw, counted batch by batch, and the error quoting the first refusals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from airflow_provider_xcompliance.exceptions import InvalidIdsError
from airflow_provider_xcompliance.ids.values import MAX_ID_DIGITS, IdBatch, InvalidId

MAX_SAMPLES = 5
"""Invalid lines quoted in an :class:`InvalidIdsError`."""


@dataclass(frozen=True)
class IdCounts:
    """What a pass over the sources saw.

    ``read`` counts every line or row (``read == blank + valid + invalid``). ``duplicates`` is exact,
    ``dedupe`` or not: valid IDs minus distinct ones, counted within the dedupe memory bound (spilling
    to disk beyond it). ``written`` is the number of IDs in the normalised output.
    """

    read: int
    blank: int
    valid: int
    invalid: int
    duplicates: int
    written: int

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass
class RunningCounts:
    """The counts so far, and the first :data:`MAX_SAMPLES` invalid values."""

    read: int = 0
    blank: int = 0
    valid: int = 0
    invalid: int = 0
    samples: list[InvalidId] = field(default_factory=list)

    def add(self, batch: IdBatch) -> None:
        self.read += batch.lines
        self.blank += batch.blank
        self.valid += batch.count
        self.invalid += len(batch.invalid)
        if len(self.samples) < MAX_SAMPLES:
            self.samples.extend(batch.invalid[: MAX_SAMPLES - len(self.samples)])

    def error(self) -> InvalidIdsError:
        first = "; ".join(str(sample) for sample in self.samples)
        return InvalidIdsError(
            f"{self.invalid} invalid ID value(s) in {self.read} records; first: {first}. An ID is 1 to "
            f"{MAX_ID_DIGITS} ASCII digits, not zero. Fix the source, or pass on_invalid='skip' to leave "
            "them out and list them in a rejects file.",
            samples=self.samples,
            total=self.invalid,
        )

    def final(self, distinct: int, written: int) -> IdCounts:
        return IdCounts(self.read, self.blank, self.valid, self.invalid, self.valid - distinct, written)
