"""Which slots hold the objects a question names: the targets of the reasoner's grounding loss.

A CLEVRER program names objects by their attributes: every `objects` token followed by one or
more `<value> filter_color|filter_material|filter_shape` pairs picks the objects of the video that
have all those values (`named_objects`; event and motion filters that follow are left out, so a
name may pick more objects than the question means). A multiple-choice sequence
`question <sep> choice` names what its question and its choice name, or with `choices_alone`
what its choice names (a counterfactual choice "the A and the B collide" then points at A and
B, not also at the object its question removes).

A slot is named when the object it holds is. For ground-truth object states (`object_states`)
slot i holds the object of rank i in object_id order (`SlotGrounding.from_annotations`). An
encoder's video slots keep their order over time, so each slot holds one object for the video:
the one its mask is matched to (by IoU, `downstream/matched_slots.py`) in the most frames
(`held_objects`, then `SlotGrounding.from_held_objects`).

Axes: n slots, k choices.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from downstream.matched_slots import MatchedSlots
from tasks.bad_input import BadInputError, read_json

ATTRIBUTE_FILTERS: dict[str, str] = {"filter_color": "color", "filter_material": "material",
                                     "filter_shape": "shape"}


def annotated_objects(path: Path) -> list[dict]:
    """The `object_property` items of the annotation file at `path`."""
    properties = read_json(path).get("object_property")
    if not isinstance(properties, list) or not all(
            isinstance(item, dict) and "object_id" in item for item in properties):
        raise BadInputError(f"{path}: object_property must be a list of objects with an "
                            "object_id")
    return properties


def named_objects(program: Sequence[str], objects: Sequence[Mapping]) -> set[int]:
    """The object_ids of `objects` (annotation `object_property` items) that `program` names."""
    named: set[int] = set()
    position = 0
    while position < len(program):
        if program[position] != "objects":
            position += 1
            continue
        wanted, position = {}, position + 1
        while position + 1 < len(program) and program[position + 1] in ATTRIBUTE_FILTERS:
            wanted[ATTRIBUTE_FILTERS[program[position + 1]]] = program[position]
            position += 2
        if wanted:
            named.update(item["object_id"] for item in objects
                         if all(item.get(name) == value for name, value in wanted.items()))
    return named


def held_objects(matched: MatchedSlots, object_ids: Mapping[int, Sequence[int]],
                 num_slots: int) -> dict[int, list[int]]:
    """For each video of `object_ids` (its objects' object_ids, in the order of the matches'
    `object_index`), the object_id each of its n slots holds: the object the slot is matched to
    in the most frames (ties: the larger summed IoU); -1 for a slot never matched."""
    held = {video: [-1] * num_slots for video in object_ids}
    if not matched.num_matched:
        return held
    keys = torch.stack([matched.sample_id, matched.slot_index, matched.object_index], dim=1)
    pairs, inverse, frames = keys.unique(dim=0, return_inverse=True, return_counts=True)
    iou = torch.zeros(len(pairs), dtype=torch.float64).index_add_(0, inverse,
                                                                  matched.iou.double())
    best: dict[tuple[int, int], tuple[int, float]] = {}
    for (video, slot, item), count, total in zip(pairs.tolist(), frames.tolist(), iou.tolist(),
                                                 strict=True):
        if video not in held:
            raise BadInputError(f"video {video} was matched but is not among the videos whose "
                                "objects were given")
        if (count, total) > best.get((video, slot), (0, 0.0)):
            best[video, slot] = (count, total)
            held[video][slot] = object_ids[video][item]
    return held


class SlotGrounding:
    """For each video, its objects and the object each of its n slots holds (-1: none); with
    `choices_alone`, a choice's targets leave out what its question names (module docstring).

    Raises:
        BadInputError: from `named_slots`, for a video it does not know.
    """

    def __init__(self, objects: Mapping[int, list[dict]], slot_objects: Mapping[int, list[int]],
                 num_slots: int, choices_alone: bool = False):
        self.objects, self.slot_objects, self.num_slots = objects, slot_objects, num_slots
        self.choices_alone = choices_alone

    @classmethod
    def from_annotations(cls, annotations: Mapping[int, Path], num_slots: int,
                         choices_alone: bool = False) -> "SlotGrounding":
        """The slots of `object_states`: slot i holds the object of rank i in object_id order."""
        objects = {video: annotated_objects(path) for video, path in annotations.items()}
        slot_objects = {video: sorted(item["object_id"] for item in properties)
                        for video, properties in objects.items()}
        return cls(objects, slot_objects, num_slots, choices_alone)

    @classmethod
    def from_held_objects(cls, annotations: Mapping[int, Path],
                          held: Mapping[int, list[int]], num_slots: int,
                          choices_alone: bool = False) -> "SlotGrounding":
        """The slots of an encoder: `held` gives each video's slots' object_ids (`held_objects`).

        Raises:
            BadInputError: a video of `held` without an annotation.
        """
        missing = sorted(set(held) - set(annotations))
        if missing:
            raise BadInputError(f"videos {missing[:5]} have slots but no annotation: their "
                                "objects' attributes are unknown")
        return cls({video: annotated_objects(annotations[video]) for video in held},
                   dict(held), num_slots, choices_alone)

    def named_slots(self, video_index: int, program: Sequence[str]) -> np.ndarray:
        """`[n]` bool: the slots holding an object that `program` names."""
        if video_index not in self.objects:
            raise BadInputError(f"video {video_index} has no annotation: its questions cannot "
                                "be grounded (loss.grounding_weight)")
        named = named_objects(program, self.objects[video_index])
        held = self.slot_objects[video_index][:self.num_slots]
        mask = np.zeros(self.num_slots, dtype=bool)
        mask[:len(held)] = [object_id in named for object_id in held]
        return mask

    def row_targets(self, row: Mapping) -> dict[str, np.ndarray]:
        """`named_slots` `[n]` of a question row (with its `program` and `choice_programs`) and
        `choice_named_slots` `[k,n]`: what the question names, and each choice with it (with
        `choices_alone`: each choice without it)."""
        question = self.named_slots(row["video_index"], row["program"])
        with_question = np.zeros_like(question) if self.choices_alone else question
        choices = [with_question | self.named_slots(row["video_index"], program)
                   for program in row["choice_programs"]]
        return {"named_slots": question,
                "choice_named_slots": np.array(choices, dtype=bool).reshape(-1, self.num_slots)}
