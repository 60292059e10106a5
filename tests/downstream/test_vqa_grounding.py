"""The grounding loss: the objects a program names, the slots holding them (by rank for
ground-truth states, by matched masks for a slot dataset), the head, the loss on hand-made
logits, and a run that learns to point at the named slots."""

import math
import shutil

import numpy as np
import pytest
import torch

from downstream.clevrer_objects import ClevrerObjects
from downstream.matched_slots import MatchedSlots
from downstream.object_grounding import SlotGrounding, held_objects, named_objects
from downstream.reasoner import ReasonerModel
from downstream.vqa import load_vqa_data, reasoner_config, run_vqa
from downstream.vqa_task import VqaLossConfig, VqaTask, grounding_loss
from tasks.bad_input import BadInputError, read_json
from tasks.clevrer_layout import discover_split
from tasks.collate import QuestionCollator
from tasks.slots import SlotShardWriter, SlotSpec
from tests.downstream.test_vqa_reasoner import SLOTS, inputs, model, rows
from tests.downstream.test_vqa_training import tiny_config
from tests.downstream.vqa_files import PROVENANCE, video_slots

OBJECTS = [
    {"object_id": 3, "color": "red", "material": "rubber", "shape": "cube"},
    {"object_id": 1, "color": "blue", "material": "metal", "shape": "sphere"},
    {"object_id": 2, "color": "red", "material": "metal", "shape": "cylinder"},
]


@pytest.mark.parametrize("program,named", [
    (["objects", "red", "filter_color", "unique", "query_shape"], {2, 3}),
    (["objects", "red", "filter_color", "metal", "filter_material", "unique"], {2}),
    (["all_events", "objects", "cube", "filter_shape", "unique", "filter_collision", "objects",
      "blue", "filter_color", "unique", "filter_collision", "unique"], {1, 3}),
    (["objects", "moving", "filter_moving", "end", "count"], set()),  # no attribute named
    (["events", "objects", "green", "filter_color", "unique", "filter_in"], set()),
])
def test_a_program_names_the_objects_its_attribute_filters_pick(program, named):
    assert named_objects(program, OBJECTS) == named


def test_ground_truth_slots_hold_the_objects_in_object_id_order(tmp_path):
    grounding = SlotGrounding({7: OBJECTS}, {7: [1, 2, 3]}, num_slots=4)
    red = ["objects", "red", "filter_color", "unique"]
    assert grounding.named_slots(7, red).tolist() == [False, True, True, False]
    row = {"video_index": 7, "program": ["objects", "sphere", "filter_shape", "unique"],
           "choice_programs": [red, ["objects", "cube", "filter_shape", "unique"]]}
    targets = grounding.row_targets(row)
    assert targets["named_slots"].tolist() == [True, False, False, False]
    assert targets["choice_named_slots"].tolist() == [[True, True, True, False],
                                                      [True, False, True, False]]
    alone = SlotGrounding({7: OBJECTS}, {7: [1, 2, 3]}, num_slots=4, choices_alone=True)
    targets = alone.row_targets(row)
    assert targets["named_slots"].tolist() == [True, False, False, False]
    assert targets["choice_named_slots"].tolist() == [[False, True, True, False],
                                                      [False, False, True, False]]
    no_choices = grounding.row_targets(dict(row, choice_programs=[]))
    assert no_choices["choice_named_slots"].shape == (0, 4)
    with pytest.raises(BadInputError, match="video 8 has no annotation"):
        grounding.named_slots(8, red)
    broken = tmp_path / "annotation_00001.json"
    broken.write_text('{"object_property": [{"color": "red"}]}')
    with pytest.raises(BadInputError, match="annotation_00001.json: object_property"):
        SlotGrounding.from_annotations({1: broken}, 4)


def matches(*pairs: tuple[int, int, int, int, float]) -> MatchedSlots:
    """MatchedSlots of hand-made (video, frame, slot, object, iou) pairs."""
    if not pairs:
        return MatchedSlots.empty(2, ())
    video, frame, slot, item, iou = (torch.tensor(column) for column in zip(*pairs, strict=True))
    return MatchedSlots(slots=torch.zeros(len(pairs), 2), boxes=torch.zeros(len(pairs), 4),
                        iou=iou.float(), sample_id=video, frame_index=frame, slot_index=slot,
                        object_index=item, attributes={}, attribute_specs=(), num_objects=0)


def test_a_slot_holds_the_object_it_is_matched_to_in_the_most_frames():
    object_ids = {5: [30, 10, 20], 6: [4]}
    matched = matches(
        (5, 0, 0, 1, 0.9), (5, 1, 0, 1, 0.8), (5, 2, 0, 2, 0.9),  # slot 0: object 1 in 2 frames
        (5, 0, 1, 0, 0.3), (5, 1, 1, 2, 0.6),  # slot 1: a tie, object 2 by the larger IoU
        (6, 3, 2, 0, 0.5),
    )
    assert held_objects(matched, object_ids, 3) == {5: [10, 20, -1], 6: [-1, -1, 4]}
    assert held_objects(matches(), object_ids, 2) == {5: [-1, -1], 6: [-1, -1]}
    with pytest.raises(BadInputError, match="video 6 was matched"):
        held_objects(matched, {5: object_ids[5]}, 3)


def write_masked_slots(vqa_files, folder, floor_only=False):
    """A slot dataset of every fixture video whose masks put object j (of k) in slot k-1-j and
    the floor in the last slot, slots 0 and 1 swapped in frame 0: objects k-1 and k-2 are
    held by slots 0 and 1, the last slot holds the floor (and, with 3 objects, object 0).
    With `floor_only`, the last slot holds every pixel."""
    spec = SlotSpec(num_slots=3, slot_dim=8, dtype="float32",
                    mask_size=vqa_files.clevrer.image_size)
    for split in vqa_files.clevrer.splits:
        source = ClevrerObjects(vqa_files.clevrer.root, split, cache_dir=vqa_files.cache)
        with SlotShardWriter(folder, spec, PROVENANCE, split=split) as writer:
            for sample in source:
                objects = sample.object_masks  # [t,k,H,W]
                count = objects.shape[1]
                segmentation = torch.full((objects.shape[0], *objects.shape[2:]), 2)
                for item in range(0 if floor_only else count):
                    segmentation[objects[:, item]] = min(count - 1 - item, 2)
                masks = torch.nn.functional.one_hot(segmentation, 3).permute(0, 3, 1, 2)
                masks[0, [0, 1]] = masks[0, [1, 0]].clone()
                writer.write(sample.sample_id, video_slots(sample.sample_id, len(masks)),
                             masks.float().numpy())
    return folder


def test_the_slots_of_a_slot_dataset_are_grounded_by_their_masks(vqa_files, tmp_path):
    config = tiny_config(vqa_files, tmp_path / "run", "loss.grounding_weight=1.0",
                         f"data.slots={write_masked_slots(vqa_files, tmp_path / 'slots')}")
    data = load_vqa_data(config.data, 0, torch.device("cpu"), grounding=True)
    object_ids = {video: [item.object_id for item in objects]
                  for video, objects in vqa_files.clevrer.objects.items()}
    train = [data.train[i] for i in range(len(data.train))]
    assert sum(row["named_slots"].sum() for row in train) >= 3  # the test has teeth
    for row in train:
        ids = object_ids[row["video_index"]]
        held = [ids[-1], ids[-2], -1]
        annotation = read_json(vqa_files.clevrer.annotation_path(row["video_index"]))
        named = named_objects(row["program"], annotation["object_property"])
        assert row["named_slots"].tolist() == [object_id in named for object_id in held]
    alone = load_vqa_data(config.data, 0, torch.device("cpu"), grounding=True,
                          choices_alone=True)
    choice_rows = [row for row in (alone.train[i] for i in range(len(alone.train)))
                   if len(row["choice_programs"])]
    assert sum(row["choice_named_slots"].sum() for row in choice_rows) >= 3
    for row in choice_rows:
        ids = object_ids[row["video_index"]]
        annotation = read_json(vqa_files.clevrer.annotation_path(row["video_index"]))
        for program, named_slots in zip(row["choice_programs"], row["choice_named_slots"],
                                        strict=True):
            named = named_objects(program, annotation["object_property"])
            assert named_slots.tolist() == [object_id in named
                                            for object_id in (ids[-1], ids[-2], -1)]
    # the matches are cached by the slot dataset's fingerprint: new slots, new matches
    shutil.rmtree(tmp_path / "slots")
    write_masked_slots(vqa_files, tmp_path / "slots", floor_only=True)
    floor = load_vqa_data(config.data, 0, torch.device("cpu"), grounding=True)
    assert not any(floor.train[i]["named_slots"].any() for i in range(len(floor.train)))
    no_masks = tiny_config(vqa_files, tmp_path / "run", "loss.grounding_weight=1.0")
    with pytest.raises(BadInputError, match="has no masks: the grounding loss matches"):
        load_vqa_data(no_masks.data, 0, torch.device("cpu"), grounding=True)


def test_the_fixture_questions_name_their_objects(vqa_files):
    annotations = discover_split(vqa_files.clevrer.root, "train").annotations
    grounding = SlotGrounding.from_annotations(annotations, num_slots=8)
    video = min(annotations)
    first, second = vqa_files.clevrer.objects[video][:2]
    ranks = sorted(item.object_id for item in vqa_files.clevrer.objects[video])
    program = ["objects", first.material, "filter_material", first.shape, "filter_shape",
               "unique"]
    assert np.flatnonzero(grounding.named_slots(video, program)).tolist() == [
        ranks.index(first.object_id)]
    both = ["objects", first.shape, "filter_shape", "unique", "objects", second.shape,
            "filter_shape", "unique"]
    assert np.flatnonzero(grounding.named_slots(video, both)).tolist() == sorted(
        [ranks.index(first.object_id), ranks.index(second.object_id)])


def test_the_batch_holds_the_questions_named_slots_then_the_choices():
    items = rows()
    for position, item in enumerate(items):
        item["named_slots"] = np.eye(SLOTS, dtype=bool)[position]
        item["choice_named_slots"] = np.ones((len(item["choice_ids"]), SLOTS), dtype=bool)
        item["choice_named_slots"][:, 3] = False
    named = QuestionCollator()(items).named_slots
    assert named.shape == (3 + 5, SLOTS)
    assert named[:3].tolist() == np.eye(SLOTS, dtype=bool)[:3].tolist()
    assert named[3:].all(0).tolist() == [True, True, True, False]
    assert QuestionCollator()(rows()).named_slots is None


@pytest.mark.parametrize("slot_tokens", ["frame", "track"])
def test_the_head_scores_every_slot_of_every_sequence(slot_tokens):
    batch = QuestionCollator()(rows())
    output = model(slot_tokens=slot_tokens, grounds_objects=True)(**inputs(batch))
    assert output.grounding_logits.shape == (3 + 5, SLOTS)
    assert torch.isfinite(output.grounding_logits).all()
    assert model()(**inputs(batch)).grounding_logits is None
    with pytest.raises(ValueError, match="grounds_objects needs use_slots"):
        model(use_slots=False, grounds_objects=True)


def test_the_loss_on_hand_made_logits():
    logits = torch.tensor([[4.0, -4.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    named = torch.tensor([[True, False, False], [False, False, False], [False, True, False]])
    present = torch.tensor([[True, True, False], [True, True, True], [True, True, False]])
    # row 0: slots 0 and 1 right by a margin of 4; row 1 names nothing; row 2: slot 1 named,
    # scored 0, and slot 0 scored 0 (slot 2 absent, whatever its logit)
    softplus = math.log1p(math.exp(-4.0))
    expected = (softplus + math.log(2.0)) / 4  # (row 0 + row 2) / 4 questions
    assert grounding_loss(logits, named, present, 4).item() == pytest.approx(expected, rel=1e-5)


def test_bad_settings_are_named(vqa_files, tmp_path):
    with pytest.raises(ValueError, match="not data.inputs='shuffled_slots'"):
        tiny_config(vqa_files, tmp_path, "loss.grounding_weight=1.0",
                    "data.inputs=shuffled_slots")
    with pytest.raises(ValueError, match="not data.inputs='slots' on the fly"):
        tiny_config(vqa_files, tmp_path, "loss.grounding_weight=1.0", "data.slots=''",
                    "data.encoder=somewhere")
    batch = QuestionCollator()(rows())
    with pytest.raises(ValueError, match="needs rows with slots and named_slots"):
        VqaTask(VqaLossConfig(grounding_weight=1.0)).training_loss(model(), batch)
    with pytest.raises(ValueError, match="loss.grounding_weight must be >= 0"):
        tiny_config(vqa_files, tmp_path, "data.inputs=object_states",
                    "loss.grounding_weight=-1.0")
    with pytest.raises(ValueError, match="grounding_choices_alone .* needs loss.grounding_weight"):
        tiny_config(vqa_files, tmp_path, "loss.grounding_choices_alone=true")


def test_a_run_with_the_grounding_loss_learns_to_point_at_the_named_slots(vqa_files, tmp_path):
    config = tiny_config(vqa_files, tmp_path / "run", "data.inputs=object_states",
                         "model.slot_tokens=track", "model.pair_tokens=true",
                         "loss.grounding_weight=1.0", "training.max_steps=40",
                         "training.learning_rate=0.005")
    data = load_vqa_data(config.data, 0, torch.device("cpu"), grounding=True)
    assert data.evaluation.grounding is None  # the loss trains; evaluation reads answers
    batch = QuestionCollator()([data.train[i] for i in range(len(data.train))])
    assert batch.named_slots.any()
    task = VqaTask(config.loss)

    def pointing_loss(reasoner: ReasonerModel) -> float:
        with torch.no_grad():
            return task.training_loss(reasoner.eval(), batch)["grounding_loss"].item()

    torch.manual_seed(0)
    untrained = ReasonerModel(reasoner_config(config, data))
    assert untrained.config.grounds_objects and untrained.config.pair_tokens
    run_vqa(config)
    trained = ReasonerModel.from_pretrained(tmp_path / "run" / "model")
    assert pointing_loss(trained) < 0.5 * pointing_loss(untrained)
