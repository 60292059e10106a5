"""Read a CLEVRER question file (`questions/{split}.json`) into checked, flat question records.

The file is a list of scenes {scene_index, video_filename, questions: [...]}. Each question is
checked field by field; a bad one raises `BadInputError` naming the file, scene, question and
field, or with `on_error="skip"` is left out and recorded. Programs and answers are required in
train and validation; the test split's records carry no answers (answers in it are ignored), and
its programs and descriptive subtypes may be absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tasks.bad_input import BadInputError, LoadReport, OnError
from tasks.clevrer_layout import video_filename as expected_video_filename
from tasks.questions import (
    CHOICE_ANSWERS,
    DESCRIPTIVE_ANSWERS,
    DESCRIPTIVE_SUBTYPES,
    QUESTION_TYPES,
)


@dataclass(frozen=True)
class QuestionRecord:
    """One question of one scene, as the file gives it."""

    video_index: int  # the scene_index
    video_filename: str
    question_id: int
    question: str
    question_type: str  # one of QUESTION_TYPES
    question_subtype: str | None  # descriptive only: one of DESCRIPTIVE_SUBTYPES
    program: list[str]
    answer: str | None  # descriptive answer; None for multiple choice and in the test split
    choice_ids: list[int] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    choice_programs: list[list[str]] = field(default_factory=list)
    choice_answers: list[str | None] = field(default_factory=list)  # "correct" / "wrong" / None


def read_question_file(path: str | Path) -> list:
    """The list of scenes in `path`; the whole file must be valid JSON (never skipped)."""
    path = Path(path)
    try:
        scenes = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise BadInputError(f"question file {path} does not exist") from error
    except json.JSONDecodeError as error:
        raise BadInputError(f"question file {path} is not valid JSON: {error}") from error
    if not isinstance(scenes, list):
        raise BadInputError(f"question file {path}: expected a list of scenes")
    return scenes


def question_records(
    path: str | Path, split: str, on_error: OnError, report: LoadReport
) -> Iterator[QuestionRecord]:
    """Every valid question of the file, in file order."""
    path = Path(path)
    has_answers = split != "test"
    for position, scene in enumerate(read_question_file(path)):
        scene_location = f"{path} scene #{position}"
        try:
            video_index, filename, questions = _scene_fields(scene, scene_location)
        except BadInputError as error:
            if on_error == "raise":
                raise
            report.record("scene", scene_location, str(error))
            continue
        scene_location = f"{path} scene_index {video_index}"
        seen_ids: set[int] = set()
        for question_position, question in enumerate(questions):
            location = f"{scene_location} question #{question_position}"
            try:
                record = _question_record(
                    question, video_index, filename, has_answers, location
                )
                if record.question_id in seen_ids:
                    raise BadInputError(f"{location}: question_id {record.question_id} repeats")
            except BadInputError as error:
                if on_error == "raise":
                    raise
                report.record("question", location, str(error))
                continue
            seen_ids.add(record.question_id)
            yield record


def _scene_fields(scene: object, location: str) -> tuple[int, str, list]:
    if not isinstance(scene, dict):
        raise BadInputError(f"{location}: a scene must be an object")
    video_index = _field(scene, "scene_index", int, location)
    filename = _field(scene, "video_filename", str, location)
    if filename != expected_video_filename(video_index):
        raise BadInputError(
            f"{location}: video_filename {filename!r} does not match scene_index {video_index}"
        )
    return video_index, filename, _field(scene, "questions", list, location)


def _question_record(
    question: object, video_index: int, filename: str, has_answers: bool, location: str
) -> QuestionRecord:
    if not isinstance(question, dict):
        raise BadInputError(f"{location}: a question must be an object")
    question_type = _field(question, "question_type", str, location)
    if question_type not in QUESTION_TYPES:
        raise BadInputError(f"{location}: question_type {question_type!r} not in {QUESTION_TYPES}")
    common = dict(
        video_index=video_index,
        video_filename=filename,
        question_id=_field(question, "question_id", int, location),
        question=_field(question, "question", str, location),
        question_type=question_type,
        program=_program(question, has_answers, location),
    )
    if question_type == "descriptive":
        subtype = question.get("question_subtype")
        if (subtype is not None or has_answers) and subtype not in DESCRIPTIVE_SUBTYPES:
            raise BadInputError(
                f"{location}: question_subtype {subtype!r} not in {DESCRIPTIVE_SUBTYPES}"
            )
        answer = None
        if has_answers:
            answer = _field(question, "answer", str, location)
            if answer not in DESCRIPTIVE_ANSWERS:
                raise BadInputError(f"{location}: answer {answer!r} is not a descriptive answer")
        return QuestionRecord(**common, question_subtype=subtype, answer=answer)

    choices = _field(question, "choices", list, location)
    if not choices:
        raise BadInputError(f"{location}: a {question_type} question needs choices")
    record = QuestionRecord(**common, question_subtype=None, answer=None)
    for choice_position, choice in enumerate(choices):
        choice_location = f"{location} choice #{choice_position}"
        if not isinstance(choice, dict):
            raise BadInputError(f"{choice_location}: a choice must be an object")
        record.choice_ids.append(_field(choice, "choice_id", int, choice_location))
        record.choices.append(_field(choice, "choice", str, choice_location))
        record.choice_programs.append(_program(choice, has_answers, choice_location))
        answer = None
        if has_answers:
            answer = _field(choice, "answer", str, choice_location)
            if answer not in CHOICE_ANSWERS:
                raise BadInputError(
                    f"{choice_location}: answer {answer!r} not in {tuple(CHOICE_ANSWERS)}"
                )
        record.choice_answers.append(answer)
    if len(set(record.choice_ids)) != len(record.choice_ids):
        raise BadInputError(f"{location}: choice_ids {record.choice_ids} repeat")
    return record


def _program(item: dict, required: bool, location: str) -> list[str]:
    if "program" not in item and not required:
        return []
    program = _field(item, "program", list, location)
    if not all(isinstance(token, str) for token in program):
        raise BadInputError(f"{location}: program must be a list of strings")
    return program


def _field(item: dict, name: str, kind: type, location: str):
    if name not in item:
        raise BadInputError(f"{location}: missing field {name!r}")
    value = item[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadInputError(
            f"{location}: field {name!r} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value
