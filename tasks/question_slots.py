"""Questions joined with their video's slots, streamed: heads train on slot datasets that need
not fit in memory.

    joined = join_questions_with_slots(questions, load_slots("user/clevrer-slots"))
    joined = joined.shuffle(seed=0, buffer_size=2_000)   # shard order + a shuffle buffer
    loader = DataLoader(joined, batch_size=64, collate_fn=QuestionCollator(...), num_workers=2)

The result is a `datasets.IterableDataset`. It walks the slot dataset (memory-mapped, so only
the pages read are resident) in contiguous shards of videos, a few videos at a time, and yields
each question of those videos with the video's slots: one row per question, with the question
columns plus `slots` [t,n,d] (and `slot_masks` [t,n,h,w]) as numpy arrays of the stored dtype.
Only the question -> video index (two int arrays) is held in memory. Shards are what DataLoader
workers and `datasets.distributed.split_dataset_by_node` divide; call `set_epoch` to reshuffle.
Iterate it without `with_format("numpy"/"torch")`, which would widen float16 to float32: the
collator makes the tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import numpy as np

from tasks.arrow_arrays import array_rows
from tasks.bad_input import BadInputError, LoadReport, OnError, check_on_error
from tasks.slots import slot_spec


def join_questions_with_slots(
    questions: datasets.Dataset,
    slots: datasets.Dataset,
    with_masks: bool = False,
    on_error: OnError = "raise",
    num_shards: int | None = None,
    videos_per_read: int = 32,
    report: LoadReport | None = None,
) -> datasets.IterableDataset:
    """Stream every question of `questions` with the slots of its video.

    A question whose video has no slots is bad input: a `BadInputError` by default, or with
    `on_error="skip"` left out, counted (printed now, added to `report`). `num_shards` (default:
    one per 8 videos, at most 256) bounds how finely workers and nodes can divide the work.
    """
    check_on_error(on_error)
    spec = slot_spec(slots.features)
    if with_masks and spec.mask_size is None:
        raise ValueError("with_masks=True but the slot dataset has no masks")
    question_videos = _column(questions, "video_index")
    slot_videos = _column(slots, "video_index")
    unique_slot_videos, counts = np.unique(slot_videos, return_counts=True)
    if (counts > 1).any():
        raise BadInputError(
            f"the slot dataset holds videos {unique_slot_videos[counts > 1][:5].tolist()} "
            "more than once"
        )
    missing = ~np.isin(question_videos, slot_videos)
    if missing.any():
        missing_videos = np.unique(question_videos[missing])
        message = (
            f"{int(missing.sum())} questions name {len(missing_videos)} videos without slots, "
            f"e.g. {missing_videos[:5].tolist()}"
        )
        if on_error == "raise":
            raise BadInputError(message)
        skipped = LoadReport()
        for row in np.flatnonzero(missing):
            skipped.record("question", f"question row {row}",
                           f"video {question_videos[row]} has no slots")
        print(skipped.summary("question/slot join"))
        if report is not None:
            report.extend(skipped)
    # questions grouped by video: rows order[start:stop] ask about sorted_videos[start]
    order = np.argsort(question_videos, kind="stable")
    sorted_videos = question_videos[order]

    if num_shards is None:
        num_shards = min(256, max(1, len(slots) // 8))
    num_shards = max(1, min(num_shards, len(slots)))
    bounds = np.linspace(0, len(slots), num_shards + 1).astype(int).tolist()
    slot_ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    features = dict(questions.features)
    features["slots"] = slots.features["slots"]
    if with_masks:
        features["slot_masks"] = slots.features["masks"]
    return datasets.IterableDataset.from_generator(
        _joined_rows,
        features=datasets.Features(features),
        gen_kwargs={
            "slot_ranges": slot_ranges,
            "questions": questions,
            "slots": slots,
            "order": order,
            "sorted_videos": sorted_videos,
            "with_masks": with_masks,
            "videos_per_read": videos_per_read,
        },
    )


def _joined_rows(
    slot_ranges: list[tuple[int, int]],
    questions: datasets.Dataset,
    slots: datasets.Dataset,
    order: np.ndarray,
    sorted_videos: np.ndarray,
    with_masks: bool,
    videos_per_read: int,
) -> Iterator[dict]:
    slot_table = slots.with_format("arrow")
    columns = ["video_index", "slots"] + (["masks"] if with_masks else [])
    for range_start, range_stop in slot_ranges:
        for start in range(range_start, range_stop, videos_per_read):
            table = slot_table[start:min(start + videos_per_read, range_stop)].select(columns)
            videos = table["video_index"].to_numpy()
            video_slots = array_rows(table["slots"])
            video_masks = array_rows(table["masks"]) if with_masks else None
            firsts = np.searchsorted(sorted_videos, videos, side="left")
            lasts = np.searchsorted(sorted_videos, videos, side="right")
            question_rows = np.concatenate(
                [order[first:last] for first, last in zip(firsts, lasts, strict=True)]
            )
            if len(question_rows) == 0:
                continue
            batch = questions[question_rows.tolist()]  # dict of columns
            position = 0
            for video, (first, last) in enumerate(zip(firsts, lasts, strict=True)):
                for _ in range(last - first):
                    row = {name: values[position] for name, values in batch.items()}
                    row["slots"] = video_slots[video]
                    if with_masks:
                        row["slot_masks"] = video_masks[video]
                    position += 1
                    yield row


def _column(dataset: datasets.Dataset, name: str) -> np.ndarray:
    return np.asarray(dataset.with_format("arrow")[name].to_numpy(), dtype=np.int64)
