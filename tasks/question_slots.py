"""Questions joined with their video's slots, streamed: heads train on slot datasets that need
not fit in memory.

    stream = QuestionSlotStream(questions, load_slots("user/clevrer-slots"), JoinConfig())
    loader = DataLoader(stream, batch_size=64, collate_fn=QuestionCollator(), num_workers=2)
    for epoch in range(num_epochs):
        stream.set_epoch(epoch)  # a new order each epoch
        for batch in loader: ...

A `torch.utils.data.IterableDataset` over two Hugging Face datasets: the question dataset and
the slot dataset, both memory-mapped Arrow, so only the pages read are resident and every
process shares them through the page cache. The slot videos are split into shards of
`videos_per_shard` consecutive rows, read together (sequential reads); each epoch visits the
shards in a seeded random order, and a buffer of `buffer_size` question rows mixes the questions
of many videos. Shards are divided among DataLoader workers, and among processes when `rank` /
`world_size` are given (with `accelerate`, its `prepare` can instead split the batches).

Each row is a question row (the columns of `question_features`) plus `slots` [t,n,d] (and
`slot_masks` [t,n,h,w]) as numpy arrays of the stored dtype. Only the map from question to video
(two int arrays) is held in memory.

Not a `datasets.IterableDataset`: its shard interleaving and per-row feature casting ran at
~10k rows/s here against ~50k rows/s for this, and its numpy/torch formats widen float16.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from tasks.arrow_arrays import array_rows
from tasks.bad_input import BadInputError, LoadReport, OnError, check_on_error
from tasks.slots import slot_spec


@dataclass(frozen=True)
class JoinConfig:
    """How the question/slot stream reads and orders its rows."""

    with_masks: bool = False  # also yield the slot dataset's masks as `slot_masks`
    shuffle: bool = True  # shards in random order, rows mixed in a buffer
    buffer_size: int = 1000  # question rows mixed when shuffling
    videos_per_shard: int = 8  # consecutive videos read together; the unit workers divide
    seed: int = 0  # with the epoch, fixes the order
    question_columns: tuple[str, ...] | None = None  # question columns to keep; None: all
    on_error: OnError = "raise"  # a question whose video has no slots: raise, or skip and count

    def __post_init__(self):
        if self.buffer_size < 1 or self.videos_per_shard < 1:
            raise ValueError(f"buffer_size and videos_per_shard must be >= 1, got "
                             f"{self.buffer_size}, {self.videos_per_shard}")
        check_on_error(self.on_error)


class QuestionSlotStream(torch.utils.data.IterableDataset):
    """Every question of `questions` with the slots of its video, streamed."""

    def __init__(
        self,
        questions: datasets.Dataset,
        slots: datasets.Dataset,
        config: JoinConfig = JoinConfig(),
        rank: int = 0,
        world_size: int = 1,
        report: LoadReport | None = None,
    ):
        spec = slot_spec(slots.features)
        if config.with_masks and spec.mask_size is None:
            raise ValueError("with_masks=True but the slot dataset has no masks")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.questions, self.slots, self.config = questions, slots, config
        # Arrow-formatted views, made once: `with_format` copies the dataset object
        self._question_table = questions.with_format("arrow")
        self._slot_table = slots.with_format("arrow")
        self.rank, self.world_size, self.epoch = rank, world_size, 0

        question_videos = _video_indices(questions)
        slot_videos = _video_indices(slots)
        unique_videos, counts = np.unique(slot_videos, return_counts=True)
        if (counts > 1).any():
            raise BadInputError(f"the slot dataset holds videos "
                                f"{unique_videos[counts > 1][:5].tolist()} more than once")
        missing = ~np.isin(question_videos, slot_videos)
        if missing.any():
            _missing_slots(question_videos, missing, config.on_error, report)
        # questions grouped by video: rows order[first:last] ask about sorted_videos[first]
        self.order = np.argsort(question_videos, kind="stable")
        self.sorted_videos = question_videos[self.order]
        self.num_rows = int((~missing).sum())
        starts = range(0, len(slots), config.videos_per_shard)
        self.shards = [(start, min(start + config.videos_per_shard, len(slots)))
                       for start in starts]

    @property
    def features(self) -> datasets.Features:
        """The schema of a row."""
        features = dict(self.questions.features)
        if self.config.question_columns is not None:
            features = {name: features[name] for name in self.config.question_columns}
        features["slots"] = self.slots.features["slots"]
        if self.config.with_masks:
            features["slot_masks"] = self.slots.features["masks"]
        return datasets.Features(features)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict]:
        generator = np.random.default_rng([self.config.seed, self.epoch])
        shards = list(self.shards)
        if self.config.shuffle:
            shards = [shards[i] for i in generator.permutation(len(shards))]
        shards = shards[self.rank :: self.world_size]
        worker = torch.utils.data.get_worker_info()
        if worker is not None:
            shards = shards[worker.id :: worker.num_workers]
            generator = np.random.default_rng([self.config.seed, self.epoch, worker.id])
        rows = (row for start, stop in shards for row in self._shard_rows(start, stop))
        if not self.config.shuffle:
            yield from rows
            return
        yield from _buffer_shuffled(rows, self.config.buffer_size, generator)

    def _shard_rows(self, start: int, stop: int) -> Iterator[dict]:
        columns = ["video_index", "slots"] + (["masks"] if self.config.with_masks else [])
        table = self._slot_table[start:stop].select(columns)
        videos = table["video_index"].to_numpy()
        video_slots = array_rows(table["slots"])
        video_masks = array_rows(table["masks"]) if self.config.with_masks else None
        firsts = np.searchsorted(self.sorted_videos, videos, side="left")
        lasts = np.searchsorted(self.sorted_videos, videos, side="right")
        question_rows = np.concatenate(
            [self.order[first:last] for first, last in zip(firsts, lasts, strict=True)]
        )
        if len(question_rows) == 0:
            return
        # the question columns hold plain values (ints, strings, lists): Arrow gives them as is
        question_table = self._question_table[question_rows.tolist()]
        if self.config.question_columns is not None:
            question_table = question_table.select(list(self.config.question_columns))
        rows = iter(question_table.to_pylist())
        for video, (first, last) in enumerate(zip(firsts, lasts, strict=True)):
            for _ in range(last - first):
                row = next(rows)
                row["slots"] = video_slots[video]
                if video_masks is not None:
                    row["slot_masks"] = video_masks[video]
                yield row


def _buffer_shuffled(rows: Iterator[dict], buffer_size: int,
                     generator: np.random.Generator) -> Iterator[dict]:
    """Rows in random order, holding at most `buffer_size` of them."""
    buffer: list[dict] = []
    for row in rows:
        if len(buffer) < buffer_size:
            buffer.append(row)
            continue
        position = int(generator.integers(buffer_size))
        yield buffer[position]
        buffer[position] = row
    for position in generator.permutation(len(buffer)):
        yield buffer[position]


def _missing_slots(question_videos: np.ndarray, missing: np.ndarray, on_error: OnError,
                   report: LoadReport | None) -> None:
    missing_videos = np.unique(question_videos[missing])
    message = (f"{int(missing.sum())} questions name {len(missing_videos)} videos without "
               f"slots, e.g. {missing_videos[:5].tolist()}")
    if on_error == "raise":
        raise BadInputError(message)
    skipped = LoadReport()
    for row in np.flatnonzero(missing):
        skipped.record("question", f"question row {row}",
                       f"video {question_videos[row]} has no slots")
    print(skipped.summary("question/slot join"))
    if report is not None:
        report.extend(skipped)


def _video_indices(dataset: datasets.Dataset) -> np.ndarray:
    return np.asarray(dataset.with_format("arrow")["video_index"].to_numpy(), dtype=np.int64)
