"""What a loader does with bad input: raise a clear error, or skip and count.

Every loader in `tasks/` takes `on_error: OnError`. With `"raise"` (the default) the first bad
file or record stops the load with a `BadInputError` naming the file and the field. With
`"skip"` the bad item is left out, recorded in a `LoadReport`, and the count is printed once the
load ends. Nothing is ever silently dropped or silently wrong.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

OnError = Literal["raise", "skip"]
ON_ERROR_CHOICES: tuple[str, ...] = ("raise", "skip")


class BadInputError(ValueError):
    """A file or record that cannot be loaded; the message names the file and the field."""


def read_json(path: str | Path):
    """The parsed contents of JSON file `path`; a BadInputError naming it when it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise BadInputError(f"{path} is not valid JSON: {error}") from error


def check_on_error(on_error: str) -> None:
    """Raise a ValueError for an `on_error` value other than "raise" or "skip"."""
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")


@dataclass(frozen=True)
class SkippedItem:
    """One item left out of a load with `on_error="skip"`."""

    unit: str  # what was left out: "video", "scene" or "question"
    location: str  # the file, and where in it (scene / question id)
    reason: str  # the error message that "raise" would have given


@dataclass
class LoadReport:
    """What a load left out; filled by the loaders, read by the caller."""

    skipped: list[SkippedItem] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def counts(self) -> dict[str, int]:
        """Number of skipped items per unit, e.g. {"video": 2, "question": 14}."""
        return dict(sorted(Counter(item.unit for item in self.skipped).items()))

    def record(self, unit: str, location: str, reason: str) -> None:
        self.skipped.append(SkippedItem(unit=unit, location=location, reason=reason))

    def extend(self, other: LoadReport) -> None:
        self.skipped.extend(other.skipped)

    def summary(self, what: str) -> str:
        """One line for the end of a load, with the first reasons."""
        if not self.skipped:
            return f"{what}: skipped nothing"
        counts = ", ".join(f"{count} {unit}(s)" for unit, count in self.counts().items())
        first = "; ".join(f"{item.location}: {item.reason}" for item in self.skipped[:3])
        more = f" (and {self.num_skipped - 3} more)" if self.num_skipped > 3 else ""
        return f"{what}: skipped {counts} because of bad input. First: {first}{more}"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([asdict(item) for item in self.skipped], indent=1))

    @classmethod
    def load(cls, path: Path) -> LoadReport:
        return cls(skipped=[SkippedItem(**item) for item in json.loads(path.read_text())])
