"""Where every file of a CLEVRER-format dataset lives: the official directory layout.

```
DIR/videos/{train,validation,test}/video_00000-01000/video_00042.mp4
DIR/annotations/{train,validation}/annotation_00000-01000/annotation_00042.json
DIR/derender_proposals/proposal_NNNNN.json
DIR/questions/{train,validation,test}.json
```
Videos are grouped 1000 a folder: index 1234 lives in `video_01000-02000`. Indices are global
and continuous across splits; the official release splits 0–9999 / 10000–14999 / 15000–19999.
CLEVRER-sim uses the same proportions (train 50 %, validation 25 %, test 25 %) for any count, also
writes annotations for its test videos, and keeps its own bookkeeping under `DIR/sim/`
(`manifest.json` with the config and split ranges, per-video question pools, test answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "validation", "test")
FOLDER_SPAN = 1000
OFFICIAL_SPLITS = {
    "train": range(0, 10_000),
    "validation": range(10_000, 15_000),
    "test": range(15_000, 20_000),
}
"""Index ranges of the real CLEVRER download."""


def split_ranges(num_videos: int) -> dict[str, range]:
    """Continuous index ranges per split for `num_videos` videos, in the official proportions.

    Train gets half (rounded up), validation half of the rest (rounded up), test the remainder:
    20000 → 0–9999 / 10000–14999 / 15000–19999, 6 → 0–2 / 3–4 / 5.
    """
    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}")
    num_train = (num_videos + 1) // 2
    num_validation = (num_videos - num_train + 1) // 2
    return {
        "train": range(0, num_train),
        "validation": range(num_train, num_train + num_validation),
        "test": range(num_train + num_validation, num_videos),
    }


def split_of(index: int, ranges: dict[str, range]) -> str:
    """The split whose range holds `index`."""
    for split, indices in ranges.items():
        if index in indices:
            return split
    raise ValueError(f"video index {index} is in no split range {ranges}")


def folder_name(prefix: str, index: int) -> str:
    """`folder_name("video", 1234)` → `"video_01000-02000"`."""
    low = index // FOLDER_SPAN * FOLDER_SPAN
    return f"{prefix}_{low:05d}-{low + FOLDER_SPAN:05d}"


def video_filename(index: int) -> str:
    """`video_00042.mp4`, as the annotation and question files name a video."""
    return f"video_{index:05d}.mp4"


@dataclass(frozen=True)
class Layout:
    """Paths of one dataset rooted at `root`."""

    root: Path

    def video(self, split: str, index: int) -> Path:
        return self.root / "videos" / split / folder_name("video", index) / video_filename(index)

    def annotation(self, split: str, index: int) -> Path:
        folder = folder_name("annotation", index)
        return self.root / "annotations" / split / folder / f"annotation_{index:05d}.json"

    def proposal(self, index: int) -> Path:
        return self.root / "derender_proposals" / f"proposal_{index:05d}.json"

    def questions(self, split: str) -> Path:
        return self.root / "questions" / f"{split}.json"

    def manifest(self) -> Path:
        """CLEVRER-sim only: config, split ranges, answer statistics."""
        return self.root / "sim" / "manifest.json"

    def question_pool(self, index: int) -> Path:
        """CLEVRER-sim only: every question that could be asked about one video, with answers."""
        return self.root / "sim" / "question_pools" / f"pool_{index:05d}.json"

    def test_answers(self) -> Path:
        """CLEVRER-sim only: answers to `questions/test.json` in the challenge submission format."""
        return self.root / "sim" / "test_answers.json"

    def video_files(self, split: str, index: int) -> tuple[Path, ...]:
        """Every file one video owns; the video is finished when all exist."""
        return (
            self.video(split, index),
            self.annotation(split, index),
            self.proposal(index),
            self.question_pool(index),
        )
