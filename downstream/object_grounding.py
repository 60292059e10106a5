"""Which slots hold the objects a question names: the targets of the reasoner's grounding loss.

A CLEVRER program names objects by their attributes: every `objects` token followed by one or
more `<value> filter_color|filter_material|filter_shape` pairs picks the objects of the video that
have all those values (`named_objects`; event and motion filters that follow are left out, so a
name may pick more objects than the question means). A multiple-choice sequence
`question <sep> choice` names what its question and its choice name.

A slot is named when the object it holds is. For ground-truth object states (`object_states`)
slot i holds the object of rank i in object_id order, so `SlotGrounding.from_annotations` knows
every slot's object; the slots of an encoder would need matching to the objects first.

Axes: n slots, k choices.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tasks.bad_input import BadInputError, read_json

ATTRIBUTE_FILTERS: dict[str, str] = {"filter_color": "color", "filter_material": "material",
                                     "filter_shape": "shape"}


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


class SlotGrounding:
    """For each video, its objects and the object each of its n slots holds (-1: none).

    Raises:
        BadInputError: from `named_slots`, for a video it does not know.
    """

    def __init__(self, objects: Mapping[int, list[dict]], slot_objects: Mapping[int, list[int]],
                 num_slots: int):
        self.objects, self.slot_objects, self.num_slots = objects, slot_objects, num_slots

    @classmethod
    def from_annotations(cls, annotations: Mapping[int, Path], num_slots: int) -> "SlotGrounding":
        """The slots of `object_states`: slot i holds the object of rank i in object_id order."""
        objects, slot_objects = {}, {}
        for video_index, path in annotations.items():
            properties = read_json(path).get("object_property")
            if not isinstance(properties, list) or not all(
                    isinstance(item, dict) and "object_id" in item for item in properties):
                raise BadInputError(f"{path}: object_property must be a list of objects with "
                                    "an object_id")
            objects[video_index] = properties
            slot_objects[video_index] = sorted(item["object_id"] for item in properties)
        return cls(objects, slot_objects, num_slots)

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
        `choice_named_slots` `[k,n]`: what the question names, and each choice with it."""
        question = self.named_slots(row["video_index"], row["program"])
        choices = [question | self.named_slots(row["video_index"], program)
                   for program in row["choice_programs"]]
        return {"named_slots": question,
                "choice_named_slots": np.array(choices, dtype=bool).reshape(-1, self.num_slots)}
