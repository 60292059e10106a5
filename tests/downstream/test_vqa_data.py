"""The reasoner's rows: frame sampling, rollouts, baselines' inputs, and bad input named."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from downstream.reasoner import ReasonerConfig, ReasonerModel
from downstream.video_features import ArrayFeatures, SlotDatasetFeatures, uniform_frame_indices
from downstream.vqa import VqaDataConfig, load_vqa_data
from downstream.vqa_baselines import (
    OBJECT_STATE_DIM,
    DerangedFeatures,
    derangement,
    object_state_features,
    object_states,
)
from downstream.vqa_data import VqaDataset
from downstream.vqa_task import reasoner_output
from tasks.bad_input import BadInputError
from tasks.clevrer import clevrer_vocabulary, load_clevrer_questions
from tasks.clevrer_layout import discover_split
from tasks.collate import QuestionCollator
from tasks.questions import COLORS, SHAPES, UNKNOWN_ID
from tasks.slots import load_slots
from tests.downstream.vqa_files import video_slots, write_slot_dataset


@pytest.fixture
def questions(vqa_files):
    return load_clevrer_questions(vqa_files.clevrer.root, "train", cache_dir=vqa_files.cache)


def slot_features(folder, cache, split="train"):
    return SlotDatasetFeatures(load_slots(folder, split, cache_dir=cache))


def test_uniform_frames_keep_both_ends():
    assert uniform_frame_indices(5, 3).tolist() == [0, 2, 4]
    assert uniform_frame_indices(9, 3).tolist() == [0, 4, 8]
    assert uniform_frame_indices(3, 3).tolist() == [0, 1, 2]
    assert uniform_frame_indices(128, 1).tolist() == [0]
    with pytest.raises(ValueError, match="cannot sample 3 distinct frames from 2"):
        uniform_frame_indices(2, 3)


def test_rows_carry_their_video_slots(vqa_files, questions):
    dataset = VqaDataset(questions, 3, slot_features(vqa_files.slots, vqa_files.cache))
    for index in range(len(dataset)):
        row = dataset[index]
        expected = video_slots(row["video_index"], 5)[[0, 2, 4]].astype(np.float16)
        np.testing.assert_array_equal(row["slots"], expected.astype(np.float32))
        assert row["slots"].dtype == np.float32
    assert "slots" not in VqaDataset(questions, 3)[0]  # question-only


def test_a_rollout_removed_slot_is_absent_in_the_rows_that_read_it(vqa_files, questions,
                                                                  tmp_path):
    rollout = write_slot_dataset(tmp_path / "rollout", {"train": (0, 1, 2)}, num_frames=9,
                                 removed_slot=2)
    dataset = VqaDataset(questions, 3, slot_features(vqa_files.slots, vqa_files.cache),
                         slot_features(rollout, tmp_path / "hf"))
    for index in range(len(dataset)):
        row = dataset[index]
        from_rollout = row["question_type"] in ("predictive", "counterfactual")
        assert row["present_slots"].tolist() == ([True, True, False] if from_rollout
                                                 else [True, True, True])


def test_with_rollout_frames_rows_read_the_observed_frames_then_the_predicted(
        vqa_files, questions, tmp_path):
    rollout = write_slot_dataset(tmp_path / "rollout", {"train": (0, 1, 2)}, num_frames=9,
                                 offset=100.0, observed_frames=5)
    slots = slot_features(vqa_files.slots, vqa_files.cache)
    dataset = VqaDataset(questions, 3, slots, slot_features(rollout, tmp_path / "hf"),
                         rollout_frames=2)
    kinds = set()
    for index in range(len(dataset)):
        row = dataset[index]
        kinds.add(row["question_type"])
        assert row["slots"].shape == (5, 3, 8)
        if row["question_type"] in ("predictive", "counterfactual"):
            # observed frames 0, 2, 4 of 0..4, then predicted frames 5 and 8 of 5..8
            expected = video_slots(row["video_index"], 9, offset=100.0)[[0, 2, 4, 5, 8]]
        else:  # the video's own slots, then no prediction
            expected = np.concatenate([video_slots(row["video_index"], 5)[[0, 2, 4]],
                                       np.zeros((2, 3, 8))])
        np.testing.assert_allclose(row["slots"], expected, atol=0.06)  # stored as float16
    assert {"predictive", "descriptive"} <= kinds


def test_rollout_frames_need_a_rollout_that_says_what_it_observed(vqa_files, questions,
                                                                  tmp_path):
    slots = slot_features(vqa_files.slots, vqa_files.cache)
    plain = write_slot_dataset(tmp_path / "plain", {"train": (0, 1, 2)}, num_frames=9)
    with pytest.raises(BadInputError, match="needs a rollout dataset that says which frames "
                                            "are observed"):
        VqaDataset(questions, 3, slots, slot_features(plain, tmp_path / "hf"), rollout_frames=2)
    rollout = write_slot_dataset(tmp_path / "rollout", {"train": (0, 1, 2)}, num_frames=9,
                                 observed_frames=7)
    with pytest.raises(BadInputError, match=r"rollout videos \[0, 1, 2\] have \[2, 2, 2\] "
                                            r"predicted frames; the reasoner reads 3"):
        VqaDataset(questions, 3, slots, slot_features(rollout, tmp_path / "hf2"),
                   rollout_frames=3)
    with pytest.raises(ValueError, match="needs a rollout"):
        VqaDataset(questions, 3, slots, rollout_frames=2)
    with pytest.raises(ValueError, match="only with a rollout"):
        VqaDataConfig(rollout_frames=2)


def test_a_question_whose_video_has_no_slots_is_named(vqa_files, questions, tmp_path):
    partial = write_slot_dataset(tmp_path / "slots", {"train": (0, 2)})
    with pytest.raises(BadInputError, match=r"5 questions name 1 videos without slots, e\.g\. "
                                            r"\[1\]"):
        VqaDataset(questions, 3, slot_features(partial, tmp_path / "hf"))
    slots = slot_features(vqa_files.slots, vqa_files.cache)
    with pytest.raises(BadInputError, match=r"have \[5, 5, 5\] frames of slots; the reasoner "
                                            r"samples num_frames=6"):
        VqaDataset(questions, 6, slots)
    rollout = write_slot_dataset(tmp_path / "rollout", {"train": (0, 1)}, num_frames=9)
    with pytest.raises(BadInputError, match="2 questions name 1 videos without rollout slots"):
        VqaDataset(questions, 3, slots, slot_features(rollout, tmp_path / "hf"))


def test_an_unknown_word_becomes_unk_and_is_answered(vqa_files, tmp_path):
    root = tmp_path / "clevrer"
    shutil.copytree(vqa_files.clevrer.root, root)
    path = root / "questions" / "validation.json"
    scenes = json.loads(path.read_text())
    scenes[0]["questions"][0]["question"] = "How many zorblax objects are moving?"
    path.write_text(json.dumps(scenes))
    questions = load_clevrer_questions(root, "validation", cache_dir=tmp_path / "cache")
    dataset = VqaDataset(questions, 3, slot_features(vqa_files.slots, vqa_files.cache,
                                                     "validation"))
    row = dataset[0]
    assert row["question_tokens"].count(UNKNOWN_ID) == 1
    vocabulary = clevrer_vocabulary(root, cache_dir=tmp_path / "cache")
    model = ReasonerModel(ReasonerConfig(vocabulary_size=len(vocabulary), slot_dim=8,
                                         max_slots=3, max_frames=3, hidden_size=16,
                                         num_layers=1, num_heads=2, intermediate_size=16))
    batch = QuestionCollator()([dataset[index] for index in range(len(dataset))])
    output = reasoner_output(model.eval(), batch)
    assert output.descriptive_logits.shape == (len(dataset), 21)
    assert torch.isfinite(output.descriptive_logits).all()


def test_shuffled_slots_are_a_fixed_derangement(vqa_files):
    videos = np.arange(10, 30)
    mapping = derangement(videos, seed=3)
    assert sorted(mapping) == sorted(mapping.values()) == videos.tolist()
    assert all(video != other for video, other in mapping.items())
    assert derangement(videos, seed=3) == mapping and derangement(videos, seed=4) != mapping
    with pytest.raises(BadInputError, match="needs 2 videos"):
        derangement(np.array([5]), seed=0)
    slots = slot_features(vqa_files.slots, vqa_files.cache)
    shuffled = DerangedFeatures(slots, seed=0)
    for video in (0, 1, 2):
        np.testing.assert_array_equal(shuffled(video), slots(shuffled.mapping[video]))


def test_object_states_from_the_annotations(vqa_files):
    annotations = discover_split(vqa_files.clevrer.root, "train").annotations
    features = object_state_features(annotations, max_objects=4, num_frames=3)
    assert (features.num_slots, features.feature_dim) == (4, OBJECT_STATE_DIM)
    states = features(0)  # video 0: a red rubber cube and a blue metal sphere, 8 frames
    assert states.shape == (3, 4, 20)
    assert np.flatnonzero(states[0, 0, :8]).tolist() == [COLORS.index("red")]
    assert np.flatnonzero(states[0, 1, 8:11]).tolist() == [SHAPES.index("sphere")]
    assert states[0, 1, 11:13].tolist() == [1, 0]  # metal
    np.testing.assert_allclose(states[:, 0, 13], [0.0, 0.4, 0.7], atol=1e-6)  # x at 0, 4, 7
    np.testing.assert_allclose(states[:, 0, 16:20], [[0.1, 0, 0, 1]] * 3)  # velocity, in view
    assert not states[:, 2:].any()  # padding, marked absent
    assert features.present_slots(0).tolist() == [True, True, False, False]
    annotation = json.loads(annotations[1].read_text())
    with pytest.raises(BadInputError, match="3 objects, more than max_objects 2"):
        object_states(annotation, 2, 3, "annotation_00001.json")
    del annotation["motion_trajectory"][7]["objects"][0]["velocity"]
    with pytest.raises(BadInputError,
                       match=r"annotation_00001.json motion_trajectory\[7\]: missing field "
                             "'velocity'"):
        object_states(annotation, 4, 3, "annotation_00001.json")
    with pytest.raises(BadInputError, match="the test split has none"):
        object_state_features({}, 4, 3)


def test_in_memory_features_check_shapes():
    with pytest.raises(BadInputError, match="same n, d"):
        ArrayFeatures({0: np.zeros((2, 3, 4)), 1: np.zeros((2, 3, 5))})
    features = ArrayFeatures({4: np.zeros((2, 3, 4)), 7: np.ones((5, 3, 4))})
    assert features.videos().tolist() == [4, 7] and features.frame_counts().tolist() == [2, 5]
    with pytest.raises(BadInputError, match="video 5 is not in the features"):
        features(5)


def test_question_types_keep_training_and_evaluation_to_those_types(vqa_files, tmp_path):
    data = VqaDataConfig(clevrer_root=str(vqa_files.clevrer.root), slots=str(vqa_files.slots),
                         num_frames=3, cache_dir=str(vqa_files.cache),
                         question_types=["counterfactual", "predictive"],
                         submission_split="test")
    loaded = load_vqa_data(data, seed=0, device=torch.device("cpu"))
    everything = load_vqa_data(replace(data, question_types=[]), seed=0,
                               device=torch.device("cpu"))
    for kept, whole in ((loaded.train, everything.train),
                        (loaded.evaluation, everything.evaluation)):
        kinds = [row["question_type"] for row in whole.questions]
        assert sorted(row["question_type"] for row in kept.questions) == sorted(
            kind for kind in kinds if kind in ("counterfactual", "predictive"))
        assert 0 < len(kept) < len(whole)
    assert len(loaded.submission) == len(everything.submission)  # answered whole

    descriptive_only = tmp_path / "clevrer"
    shutil.copytree(vqa_files.clevrer.root, descriptive_only)
    path = descriptive_only / "questions" / "validation.json"
    scenes = json.loads(path.read_text())
    for scene in scenes:
        scene["questions"] = [question for question in scene["questions"]
                              if question["question_type"] == "descriptive"]
    path.write_text(json.dumps(scenes))
    with pytest.raises(BadInputError, match=r"the validation split holds no question of the "
                                            r"types \['counterfactual', 'predictive'\]"):
        load_vqa_data(replace(data, clevrer_root=str(descriptive_only)), seed=0,
                      device=torch.device("cpu"))
    with pytest.raises(ValueError, match=r"data.question_types \['causal'\] are not among"):
        replace(data, question_types=["causal"])
