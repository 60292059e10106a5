"""Questions streamed with their video's slots."""

from collections import Counter

import numpy as np
import pytest
from datasets import concatenate_datasets
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from tasks.bad_input import BadInputError, LoadReport
from tasks.clevrer import load_clevrer_questions
from tasks.collate import QuestionCollator
from tasks.question_slots import join_questions_with_slots
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
    joined = join_questions_with_slots(questions, slots, with_masks=True, num_shards=2)
    rows = list(joined)
    assert sorted(map(key, rows)) == sorted(map(key, questions))
    by_key = {key(row): row for row in questions}
    for row in rows:
        assert row["slots"].dtype == np.float16 and row["slots"].shape == (5, 3, 8)
        np.testing.assert_array_equal(
            row["slots"], video_slots(row["video_index"], 5, SPEC).astype(np.float16))
        assert row["slot_masks"].shape == (5, 3, 2, 2)
        expected = by_key[key(row)]
        assert {name: row[name] for name in expected} == expected


def test_shards_shuffle_and_nodes_cover_every_question_once(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    joined = join_questions_with_slots(questions, slots, num_shards=3)
    assert joined.num_shards == 3
    everything = Counter(map(key, questions))
    shuffled = joined.shuffle(seed=0, buffer_size=4)
    assert Counter(map(key, shuffled)) == everything
    assert [key(row) for row in shuffled] != [key(row) for row in joined]
    per_node = [split_dataset_by_node(joined, rank, 3) for rank in range(3)]
    assert sum((Counter(map(key, node)) for node in per_node), Counter()) == everything


def test_questions_without_slots(questions, tmp_path, capsys):
    slots = slots_for([0, 2], tmp_path)
    with pytest.raises(BadInputError, match=r"5 questions name 1 videos without slots, e.g. \[1\]"):
        join_questions_with_slots(questions, slots)
    report = LoadReport()
    joined = join_questions_with_slots(questions, slots, on_error="skip", report=report)
    assert {row["video_index"] for row in joined} == {0, 2}
    assert report.counts() == {"question": 5}
    assert "question/slot join: skipped 5 question(s)" in capsys.readouterr().out


def test_dataloader_batches_with_slots(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    joined = join_questions_with_slots(questions, slots)
    loader = DataLoader(joined, batch_size=4, collate_fn=QuestionCollator())
    batches = list(loader)
    assert sum(len(batch.video_index) for batch in batches) == len(questions)
    assert batches[0].slots.shape == (4, 5, 3, 8)
    assert str(batches[0].slots.dtype) == "torch.float16"


def test_a_video_twice_in_the_slots_is_rejected(questions, tmp_path):
    slots = slots_for([0, 1, 2], tmp_path)
    with pytest.raises(BadInputError, match=r"holds videos \[0, 1, 2\] more than once"):
        join_questions_with_slots(questions, concatenate_datasets([slots, slots]))
