"""Batches for the question heads: padded question tokens, and multiple-choice questions
expanded to one sequence per choice.

Axis legend: b questions in the batch, l tokens, c choice sequences (all choices of the
batch's multiple-choice questions), t frames, n slots, d slot channels.

A multiple-choice question with k choices gives k sequences `question <sep> choice`, each with
segment ids 0 (question and separator) and 1 (choice), a label 1 correct / 0 wrong / -1 unknown
(test split), its `choice_id`, and `choice_to_question`: the row in the batch it came from, so
per-question accuracy can gather a question's choices back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from tasks.questions import DESCRIPTIVE_SUBTYPES, PAD_ID, QUESTION_TYPES, SEPARATOR_ID

SUBTYPE_INDEX: dict[str, int] = {name: index for index, name in enumerate(DESCRIPTIVE_SUBTYPES)}


@dataclass(frozen=True)
class CollateConfig:
    """Lengths the token sequences are cut to."""

    max_question_length: int = 40  # question tokens kept (CLEVRER questions have <= ~25)
    max_choice_length: int = 20  # choice tokens kept after the separator

    def __post_init__(self):
        if self.max_question_length < 1 or self.max_choice_length < 1:
            raise ValueError(f"lengths must be >= 1, got {self.max_question_length}, "
                             f"{self.max_choice_length}")


@dataclass
class QuestionBatch:
    """A batch of questions, with the slots of their videos when the rows carry them."""

    video_index: torch.Tensor  # [b] int64
    question_id: torch.Tensor  # [b] int64
    question_type: torch.Tensor  # [b] int64, index in QUESTION_TYPES
    question_tokens: torch.Tensor  # [b,l] int64, padded with PAD_ID
    question_attention_mask: torch.Tensor  # [b,l] bool, True on real tokens
    answer_labels: torch.Tensor  # [b] int64, descriptive answer index; -1 none or unknown
    choice_tokens: torch.Tensor  # [c,l'] int64: question <sep> choice, padded
    choice_attention_mask: torch.Tensor  # [c,l'] bool, True on real tokens
    choice_segment_ids: torch.Tensor  # [c,l'] int64: 0 question and separator, 1 choice
    choice_labels: torch.Tensor  # [c] int64: 1 correct, 0 wrong, -1 unknown
    choice_ids: torch.Tensor  # [c] int64, the choice_id within its question
    choice_to_question: torch.Tensor  # [c] int64, row in the batch of each choice's question
    slots: torch.Tensor | None = None  # [b,t,n,d] float16 | float32
    slot_masks: torch.Tensor | None = None  # [b,t,n,h,w]
    present_slots: torch.Tensor | None = None  # [b,n] bool, False: a slot left out (padding,
    # a rollout's removed slot)
    question_subtype: torch.Tensor | None = None  # [b] int64, index in DESCRIPTIVE_SUBTYPES;
    # -1 for multiple-choice questions and rows without one
    named_slots: torch.Tensor | None = None  # [b+c,n] bool, the slots holding what each
    # question (then each choice sequence) names (`downstream/object_grounding.py`)

    def to(self, device: torch.device | str) -> QuestionBatch:
        """The same batch with every tensor on `device`."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return QuestionBatch(**{
            name: value.to(device) if value is not None else None
            for name, value in values.items()
        })


class QuestionCollator:
    """`collate_fn` for rows of the question dataset (or of the question/slot join)."""

    def __init__(self, config: CollateConfig = CollateConfig()):
        self.config = config

    def __call__(self, rows: Sequence[Mapping]) -> QuestionBatch:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        questions = [
            list(row["question_tokens"])[: self.config.max_question_length] for row in rows
        ]
        question_tokens, question_mask = _pad(questions)

        sequences, segments, labels, choice_ids, owners = [], [], [], [], []
        for position, (row, question) in enumerate(zip(rows, questions, strict=True)):
            for choice_id, tokens, label in zip(row["choice_ids"], row["choice_tokens"],
                                                row["choice_labels"], strict=True):
                choice = list(tokens)[: self.config.max_choice_length]
                sequences.append([*question, SEPARATOR_ID, *choice])
                segments.append([0] * (len(question) + 1) + [1] * len(choice))
                labels.append(int(label))
                choice_ids.append(int(choice_id))
                owners.append(position)
        choice_tokens, choice_mask = _pad(sequences)
        choice_segments, _ = _pad(segments, fill=0, length=choice_tokens.shape[1])

        return QuestionBatch(
            video_index=_integers([row["video_index"] for row in rows]),
            question_id=_integers([row["question_id"] for row in rows]),
            question_type=_integers([QUESTION_TYPES.index(row["question_type"])
                                     for row in rows]),
            question_tokens=question_tokens,
            question_attention_mask=question_mask,
            answer_labels=_integers([row["answer_label"] for row in rows]),
            choice_tokens=choice_tokens,
            choice_attention_mask=choice_mask,
            choice_segment_ids=choice_segments,
            choice_labels=_integers(labels),
            choice_ids=_integers(choice_ids),
            choice_to_question=_integers(owners),
            slots=_stack(rows, "slots"),
            slot_masks=_stack(rows, "slot_masks"),
            present_slots=_stack(rows, "present_slots"),
            question_subtype=_integers([SUBTYPE_INDEX.get(row.get("question_subtype"), -1)
                                        for row in rows]),
            named_slots=_named_slots(rows),
        )


def _named_slots(rows: Sequence[Mapping]) -> torch.Tensor | None:
    """`[b+c,n]` bool: the rows' `named_slots`, then their `choice_named_slots` in the order of
    the choice sequences; None when the rows carry none."""
    if "named_slots" not in rows[0]:
        return None
    named = [row["named_slots"] for row in rows]
    named += [choice for row in rows for choice in row["choice_named_slots"]]
    return torch.from_numpy(np.stack(named).astype(bool))


def _pad(sequences: list[list[int]], fill: int = PAD_ID,
         length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[k] lists -> [k,l] int64 padded with `fill`, and [k,l] bool True on real entries.

    l is the longest sequence (at least 1, so an empty question still has a position).
    """
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    if length is None:
        length = max(1, int(lengths.max(initial=0)))
    mask = np.arange(length) < lengths[:, None]  # [k,l]
    tokens = np.full((len(sequences), length), fill, dtype=np.int64)
    if len(sequences):
        tokens[mask] = np.fromiter(
            (token for sequence in sequences for token in sequence), np.int64, lengths.sum()
        )
    return torch.from_numpy(tokens), torch.from_numpy(mask)


def _integers(values: list[int]) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.int64).reshape(len(values))


def _stack(rows: Sequence[Mapping], name: str) -> torch.Tensor | None:
    """[b, ...] from the rows' arrays of equal shape, in their own dtype; None if absent."""
    if name not in rows[0]:
        return None
    arrays = [np.asarray(row[name]) for row in rows]
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{name} of different shapes {sorted(shapes)} in one batch")
    return torch.from_numpy(np.stack(arrays))
