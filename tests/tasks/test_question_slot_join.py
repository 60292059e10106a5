"""Questions streamed with their video's slots."""

from collections import Counter

import numpy as np
import pytest
from datasets import concatenate_datasets
from torch.utils.data import DataLoader

from tasks.bad_input import BadInputError, LoadReport
from tasks.clevrer import load_clevrer_questions
from tasks.collate import QuestionCollator
from tasks.question_slots import JoinConfig, QuestionSlotStream
from tasks.slots import SlotSpec, load_slots
from tests.tasks.test_slot_dataset import video_slots, write_slot_folder

SPEC = SlotSpec(num_slots=3, slot_dim=8, dtype="float16", mask_size=(2, 2))


@pytest.fixture
def questions(clevrer, cache_dir):
    return load_clevrer_questions(clevrer.root, "train", cache_dir=cache_dir)


def slots_for(videos, tmp_path):
    write_slot_folder(tmp_path / "slots", SPEC, videos)
    return load_slots(tmp_path / "slots", cache_dir=tmp_path / "hf")


def key(row) -> tuple[int, int]:
    return (int(row["video_index"]), int(row["question_id"]))


def test_every_question_gets_its_video_slots(questions, tmp_path):
    slots = slots_for([2, 0, 1], tmp_path)  # not in question order
    stream = QuestionSlotStream(questions, slots, JoinConfig(with_masks=True))
    rows = list(stream)
    assert sorted(map(key, rows)) == sorted(map(key, questions)) and stream.num_rows == 15
    by_key = {key(row): row for row in questions}
    for row in rows:
        assert row["slots"].dtype == np.float16 and row["slots"].shape == (5, 3, 8)
        np.testing.assert_array_equal(
            row["slots"], video_slots(row["video_index"], 5, SPEC).astype(np.float16))
        assert row["slot_masks"].shape == (5, 3, 2, 2)
        expected = by_key[key(row)]
        assert {name: row[name] for name in expected} == expected
    assert set(stream.features) == set(questions.features) | {"slots", "slot_masks"}


def test_order_is_seeded_and_changes_with_the_epoch(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    config = JoinConfig(videos_per_shard=1, buffer_size=4, seed=3)
    stream = QuestionSlotStream(questions, slots, config)
    first = [key(row) for row in stream]
    assert [key(row) for row in stream] == first
    stream.set_epoch(1)
    second = [key(row) for row in stream]
    assert second != first and sorted(second) == sorted(first)
    in_order = QuestionSlotStream(questions, slots, JoinConfig(shuffle=False))
    assert [key(row) for row in in_order] == sorted(first)


def test_ranks_and_workers_see_every_question_once(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    everything = Counter(map(key, questions))
    config = JoinConfig(videos_per_shard=1)
    per_rank = [QuestionSlotStream(questions, slots, config, rank, 2) for rank in range(2)]
    assert sum((Counter(map(key, stream)) for stream in per_rank), Counter()) == everything
    loader = DataLoader(QuestionSlotStream(questions, slots, config), batch_size=None,
                        num_workers=2)
    assert Counter(map(key, loader)) == everything


def test_questions_without_slots(questions, tmp_path, capsys):
    slots = slots_for([0, 2], tmp_path)
    with pytest.raises(BadInputError, match=r"5 questions name 1 videos without slots, e.g. \[1\]"):
        QuestionSlotStream(questions, slots)
    report = LoadReport()
    stream = QuestionSlotStream(questions, slots, JoinConfig(on_error="skip"), report=report)
    assert {row["video_index"] for row in stream} == {0, 2} and stream.num_rows == 10
    assert report.counts() == {"question": 5}
    assert "question/slot join: skipped 5 question(s)" in capsys.readouterr().out


def test_a_video_twice_in_the_slots_is_rejected(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    with pytest.raises(BadInputError, match=r"holds videos \[0, 1, 2\] more than once"):
        QuestionSlotStream(questions, concatenate_datasets([slots, slots]))


def test_dataloader_batches_with_slots(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    loader = DataLoader(QuestionSlotStream(questions, slots), batch_size=4,
                        collate_fn=QuestionCollator())
    batches = list(loader)
    assert sum(len(batch.video_index) for batch in batches) == len(questions)
    assert batches[0].slots.shape == (4, 5, 3, 8)
    assert str(batches[0].slots.dtype) == "torch.float16"


def test_chosen_question_columns(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    columns = ("video_index", "question_id", "question_tokens")
    stream = QuestionSlotStream(questions, slots, JoinConfig(question_columns=columns))
    assert set(next(iter(stream))) == {*columns, "slots"} == set(stream.features)


def test_masks_asked_of_slots_without_masks(questions, tmp_path):
    write_slot_folder(tmp_path / "slots", SlotSpec(num_slots=3, slot_dim=8), [0, 1, 2])
    slots = load_slots(tmp_path / "slots", cache_dir=tmp_path / "hf")
    with pytest.raises(ValueError, match="has no masks"):
        QuestionSlotStream(questions, slots, JoinConfig(with_masks=True))
