"""Validators for CLEVRER's file formats: annotation, derender proposal, question file.

Each returns a list of problems (empty when the record is valid), every one naming the field
path, e.g. `motion_trajectory[3].objects[1].location: expected 3 numbers`. They accept the
official files as well as CLEVRER-sim's (whose annotations add a `simulation` key).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from tasks.clevrer_sim.vocabulary import PROGRAM_LITERALS, PROGRAM_MODULES
from tasks.questions import (
    CHOICE_ANSWERS,
    COLORS,
    DESCRIPTIVE_ANSWERS,
    DESCRIPTIVE_SUBTYPES,
    MATERIALS,
    MULTIPLE_CHOICE_TYPES,
    SHAPES,
)

VIDEO_FILENAME = re.compile(r"video_\d{5}\.mp4")


class _Problems(list):
    def keys(
        self, where: str, record: object, required: set[str], optional: set[str] = frozenset()
    ) -> bool:
        if not isinstance(record, dict):
            self.append(f"{where}: expected an object, got {type(record).__name__}")
            return False
        missing = sorted(required - record.keys())
        extra = sorted(record.keys() - required - optional)
        if missing:
            self.append(f"{where}: missing keys {missing}")
        if extra:
            self.append(f"{where}: unexpected keys {extra}")
        return not missing

    def integer(self, where: str, value: object, low: int = 0, high: int | None = None) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.append(f"{where}: expected an integer, got {value!r}")
        elif value < low or (high is not None and value >= high):
            self.append(f"{where}: {value} outside [{low}, {high})")

    def vector(self, where: str, value: object, size: int = 3) -> None:
        if (
            not isinstance(value, list)
            or len(value) != size
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        ):
            self.append(f"{where}: expected {size} numbers, got {value!r}")

    def member(self, where: str, value: object, allowed: Collection[str]) -> None:
        if value not in allowed:
            self.append(f"{where}: {value!r} is not one of {sorted(allowed)}")

    def list(self, where: str, value: object) -> bool:
        if not isinstance(value, list):
            self.append(f"{where}: expected a list, got {type(value).__name__}")
            return False
        return True


def _collisions(problems: _Problems, where: str, records: object, num_objects: int) -> None:
    if not problems.list(where, records):
        return
    for i, record in enumerate(records):
        here = f"{where}[{i}]"
        if not problems.keys(here, record, {"object_ids", "frame_id", "location"}):
            continue
        ids = record["object_ids"]
        if not isinstance(ids, list) or len(ids) != 2 or len(set(ids)) != 2:
            problems.append(f"{here}.object_ids: expected two different ids, got {ids!r}")
        else:
            for j, object_id in enumerate(ids):
                problems.integer(f"{here}.object_ids[{j}]", object_id, 0, num_objects)
        problems.integer(f"{here}.frame_id", record["frame_id"])
        problems.vector(f"{here}.location", record["location"])


def validate_annotation(record: object) -> list[str]:
    """Problems of an annotation record (CLEVRER's schema; `simulation` allowed)."""
    problems = _Problems()
    top = {"scene_index", "video_filename", "object_property", "motion_trajectory", "collision"}
    if not problems.keys("annotation", record, top, {"simulation"}):
        return problems
    problems.integer("scene_index", record["scene_index"])
    if not isinstance(record["video_filename"], str) or not VIDEO_FILENAME.fullmatch(
        record["video_filename"]
    ):
        problems.append(f"video_filename: {record['video_filename']!r} is not video_NNNNN.mp4")
    objects = record["object_property"]
    if problems.list("object_property", objects):
        for i, obj in enumerate(objects):
            here = f"object_property[{i}]"
            if problems.keys(here, obj, {"object_id", "color", "material", "shape"}):
                if obj["object_id"] != i:
                    problems.append(f"{here}.object_id: {obj['object_id']!r}, expected {i}")
                problems.member(f"{here}.color", obj["color"], COLORS)
                problems.member(f"{here}.material", obj["material"], MATERIALS)
                problems.member(f"{here}.shape", obj["shape"], SHAPES)
    num_objects = len(objects) if isinstance(objects, list) else 0
    frames = record["motion_trajectory"]
    state_keys = {
        "object_id",
        "location",
        "orientation",
        "velocity",
        "angular_velocity",
        "inside_camera_view",
    }
    if problems.list("motion_trajectory", frames):
        for f, frame in enumerate(frames):
            here = f"motion_trajectory[{f}]"
            if not problems.keys(here, frame, {"frame_id", "objects"}):
                continue
            if frame["frame_id"] != f:
                problems.append(f"{here}.frame_id: {frame['frame_id']!r}, expected {f}")
            if not problems.list(f"{here}.objects", frame["objects"]):
                continue
            if [
                s.get("object_id") if isinstance(s, dict) else None for s in frame["objects"]
            ] != list(range(num_objects)):
                problems.append(f"{here}.objects: must list every object in object_id order")
            for i, state in enumerate(frame["objects"]):
                where = f"{here}.objects[{i}]"
                if not problems.keys(where, state, state_keys):
                    continue
                for key in ("location", "orientation", "velocity", "angular_velocity"):
                    problems.vector(f"{where}.{key}", state[key])
                if not isinstance(state["inside_camera_view"], bool):
                    problems.append(f"{where}.inside_camera_view: expected a bool")
    _collisions(problems, "collision", record["collision"], num_objects)
    if isinstance(frames, list):
        for i, collision in enumerate(
            record["collision"] if isinstance(record["collision"], list) else []
        ):
            if isinstance(collision, dict) and isinstance(collision.get("frame_id"), int):
                if collision["frame_id"] >= len(frames):
                    problems.append(
                        f"collision[{i}].frame_id: {collision['frame_id']} past the last frame"
                    )
    if "simulation" in record:
        simulation = record["simulation"]
        if problems.keys(
            "simulation", simulation, {"future_frames", "unseen_collision", "counterfactual"}
        ):
            problems.integer("simulation.future_frames", simulation["future_frames"])
            _collisions(
                problems, "simulation.unseen_collision", simulation["unseen_collision"], num_objects
            )
            if problems.list("simulation.counterfactual", simulation["counterfactual"]):
                for i, entry in enumerate(simulation["counterfactual"]):
                    here = f"simulation.counterfactual[{i}]"
                    if problems.keys(here, entry, {"removed_object_id", "collision"}):
                        problems.integer(
                            f"{here}.removed_object_id", entry["removed_object_id"], 0, num_objects
                        )
                        _collisions(problems, f"{here}.collision", entry["collision"], num_objects)
    return problems


def validate_proposal(record: object) -> list[str]:
    """Problems of a derender proposal record."""
    problems = _Problems()
    if not problems.keys("proposal", record, {"video_index", "video_filename", "frames"}):
        return problems
    problems.integer("video_index", record["video_index"])
    if not problems.list("frames", record["frames"]):
        return problems
    for f, frame in enumerate(record["frames"]):
        here = f"frames[{f}]"
        if not problems.keys(here, frame, {"frame_index", "objects"}):
            continue
        if frame["frame_index"] != f:
            problems.append(f"{here}.frame_index: {frame['frame_index']!r}, expected {f}")
        if not problems.list(f"{here}.objects", frame["objects"]):
            continue
        for i, obj in enumerate(frame["objects"]):
            where = f"{here}.objects[{i}]"
            required = {"mask", "score", "color", "material", "shape"}
            if not problems.keys(where, obj, required, {"video_index", "frame_index"}):
                continue
            mask = obj["mask"]
            if problems.keys(f"{where}.mask", mask, {"size", "counts"}):
                size = mask["size"]
                if not (
                    isinstance(size, list)
                    and len(size) == 2
                    and all(isinstance(s, int) for s in size)
                ):
                    problems.append(f"{where}.mask.size: expected [height, width], got {size!r}")
                if not isinstance(mask["counts"], str):
                    problems.append(f"{where}.mask.counts: expected a string (compressed RLE)")
            if not isinstance(obj["score"], (int, float)):
                problems.append(f"{where}.score: expected a number")
            problems.member(f"{where}.color", obj["color"], COLORS)
            problems.member(f"{where}.material", obj["material"], MATERIALS)
            problems.member(f"{where}.shape", obj["shape"], SHAPES)
    return problems


def _program(problems: _Problems, where: str, program: object) -> None:
    if not isinstance(program, list) or not program:
        problems.append(f"{where}: expected a non-empty list of tokens")
        return
    for i, token in enumerate(program):
        if token not in PROGRAM_MODULES and token not in PROGRAM_LITERALS:
            problems.append(f"{where}[{i}]: unknown program token {token!r}")


def validate_questions(record: object, with_answers: bool = True) -> list[str]:
    """Problems of a question file (`with_answers=False` for test files: no `answer` keys)."""
    problems = _Problems()
    if not problems.list("questions file", record):
        return problems
    answer_key = {"answer"} if with_answers else set()
    for s, scene in enumerate(record):
        here = f"[{s}]"
        if not problems.keys(here, scene, {"scene_index", "video_filename", "questions"}):
            continue
        problems.integer(f"{here}.scene_index", scene["scene_index"])
        if not problems.list(f"{here}.questions", scene["questions"]):
            continue
        previous_id, seen_multiple_choice = -1, False
        for q, question in enumerate(scene["questions"]):
            where = f"{here}.questions[{q}]"
            if not isinstance(question, dict):
                problems.append(f"{where}: expected an object")
                continue
            question_type = question.get("question_type")
            if question_type == "descriptive":
                required = {
                    "question_id",
                    "question",
                    "question_type",
                    "question_subtype",
                    "program",
                }
                if not problems.keys(where, question, required | answer_key):
                    continue
                if seen_multiple_choice:
                    problems.append(f"{where}: descriptive question after a multiple-choice one")
                problems.member(
                    f"{where}.question_subtype", question["question_subtype"], DESCRIPTIVE_SUBTYPES
                )
                if with_answers:
                    problems.member(f"{where}.answer", question["answer"], DESCRIPTIVE_ANSWERS)
            elif question_type in MULTIPLE_CHOICE_TYPES:
                seen_multiple_choice = True
                required = {"question_id", "question", "question_type", "program", "choices"}
                if not problems.keys(where, question, required):
                    continue
                choices = question["choices"]
                if not problems.list(f"{where}.choices", choices):
                    continue
                if not 1 <= len(choices) <= 4:
                    problems.append(f"{where}.choices: {len(choices)} choices, expected 1 to 4")
                for c, choice in enumerate(choices):
                    there = f"{where}.choices[{c}]"
                    if problems.keys(
                        there, choice, {"choice_id", "choice", "program"} | answer_key
                    ):
                        if choice["choice_id"] != c:
                            problems.append(
                                f"{there}.choice_id: {choice['choice_id']!r}, expected {c}"
                            )
                        _program(problems, f"{there}.program", choice["program"])
                        if with_answers:
                            problems.member(f"{there}.answer", choice["answer"], CHOICE_ANSWERS)
            else:
                problems.append(f"{where}.question_type: {question_type!r} is not a CLEVRER type")
                continue
            problems.integer(f"{where}.question_id", question["question_id"])
            if isinstance(question["question_id"], int) and question["question_id"] <= previous_id:
                problems.append(f"{where}.question_id: not increasing")
                previous_id = question["question_id"]
            elif isinstance(question["question_id"], int):
                previous_id = question["question_id"]
            if not isinstance(question["question"], str) or not question["question"].endswith("?"):
                problems.append(f"{where}.question: expected a question ending in '?'")
            _program(problems, f"{where}.program", question["program"])
    return problems
