"""Collation: padded questions, one sequence per choice, the map back to the question."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tasks.clevrer import load_clevrer_questions
from tasks.collate import CollateConfig, QuestionCollator
from tasks.questions import PAD_ID, SEPARATOR_ID


def row(video_index, question_id, question_type, tokens, choices=(), labels=(), answer=-1,
        slots=None):
    item = {
        "video_index": video_index, "question_id": question_id, "question_type": question_type,
        "question_tokens": list(tokens), "answer_label": answer,
        "choice_ids": list(range(len(choices))), "choice_tokens": [list(c) for c in choices],
        "choice_labels": list(labels),
    }
    if slots is not None:
        item["slots"] = slots
    return item


ROWS = [
    row(0, 0, "descriptive", [10, 11, 12], answer=4),
    row(0, 2, "explanatory", [20, 21], choices=[[30], [31, 32, 33]], labels=[1, 0]),
    row(5, 1, "descriptive", [13], answer=0),
    row(5, 3, "counterfactual", [22, 23, 24, 25], choices=[[34, 35], [36], [37]],
        labels=[0, 0, 0]),
]


def test_question_padding_and_fields():
    batch = QuestionCollator()(ROWS)
    assert batch.question_tokens.tolist() == [
        [10, 11, 12, PAD_ID], [20, 21, PAD_ID, PAD_ID], [13, PAD_ID, PAD_ID, PAD_ID],
        [22, 23, 24, 25],
    ]
    assert batch.question_attention_mask.sum(1).tolist() == [3, 2, 1, 4]
    assert batch.video_index.tolist() == [0, 0, 5, 5]
    assert batch.question_id.tolist() == [0, 2, 1, 3]
    assert batch.question_type.tolist() == [0, 1, 0, 3]
    assert batch.answer_labels.tolist() == [4, -1, 0, -1]
    assert batch.slots is None and batch.slot_masks is None


def test_multiple_choice_expansion():
    batch = QuestionCollator()(ROWS)
    assert batch.choice_to_question.tolist() == [1, 1, 3, 3, 3]
    assert batch.choice_ids.tolist() == [0, 1, 0, 1, 2]
    assert batch.choice_labels.tolist() == [1, 0, 0, 0, 0]
    assert batch.choice_tokens.shape == (5, 7)  # 4 question + separator + 2 choice tokens
    assert batch.choice_tokens[1].tolist() == [20, 21, SEPARATOR_ID, 31, 32, 33, PAD_ID]
    assert batch.choice_segment_ids[1].tolist() == [0, 0, 0, 1, 1, 1, 0]
    assert batch.choice_attention_mask[1].tolist() == [True] * 6 + [False]
    assert batch.choice_tokens[2].tolist() == [22, 23, 24, 25, SEPARATOR_ID, 34, 35]
    # each choice sequence starts with its own question's tokens
    for choice, question in enumerate(batch.choice_to_question.tolist()):
        length = int(batch.question_attention_mask[question].sum())
        assert torch.equal(batch.choice_tokens[choice, :length],
                           batch.question_tokens[question, :length])


def test_truncation_and_batches_without_choices():
    collate = QuestionCollator(CollateConfig(max_question_length=2, max_choice_length=1))
    batch = collate(ROWS)
    assert batch.question_tokens.shape == (4, 2)
    assert batch.choice_tokens[4].tolist() == [22, 23, SEPARATOR_ID, 37]
    descriptive = collate([ROWS[0], ROWS[2]])
    assert descriptive.choice_tokens.shape == (0, 1) and descriptive.choice_to_question.numel() == 0
    empty = QuestionCollator()([row(1, 0, "descriptive", [])])
    assert empty.question_tokens.shape == (1, 1) and not empty.question_attention_mask.any()


def test_slots_are_stacked_in_their_dtype():
    slots = [np.full((4, 3, 2), index, dtype=np.float16) for index in range(2)]
    batch = QuestionCollator()([row(index, 0, "descriptive", [1], slots=slots[index])
                                for index in range(2)])
    assert batch.slots.dtype == torch.float16 and batch.slots.shape == (2, 4, 3, 2)
    assert batch.slots[1].eq(1).all()
    with pytest.raises(ValueError, match="slots of different shapes"):
        QuestionCollator()([row(0, 0, "descriptive", [1], slots=slots[0]),
                            row(1, 0, "descriptive", [1], slots=np.zeros((5, 3, 2)))])


def test_batch_moves_to_a_device():
    batch = QuestionCollator()(ROWS).to("cpu")
    assert batch.choice_tokens.device.type == "cpu"


def test_question_dataset_rows_collate(clevrer, cache_dir):
    questions = load_clevrer_questions(clevrer.root, "validation", cache_dir=cache_dir)
    batch = next(iter(DataLoader(questions, batch_size=10, collate_fn=QuestionCollator())))
    assert batch.question_tokens.shape[0] == 10
    # per scene: 2 descriptive, then 2 + 1 + 2 choices
    assert batch.choice_to_question.tolist() == [2, 2, 3, 4, 4, 7, 7, 8, 9, 9]
    assert batch.choice_labels.tolist() == [1, 0, 1, 0, 0] * 2
    assert batch.answer_labels[:2].tolist() != [-1, -1] and batch.answer_labels[2] == -1
