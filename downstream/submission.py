"""The CLEVRER test-split submission file, in the challenge server's format, and its validator.

    [{"scene_index": 15000, "questions": [
        {"question_id": 0, "answer": "2"},                                   # descriptive
        {"question_id": 5, "choices": [{"choice_id": 0, "answer": "correct"},
                                       {"choice_id": 1, "answer": "wrong"}]},  # the others
     ]}, ...]

One entry per scene of `questions/test.json`, in its order; every question of the scene, in its
order; no other keys. Predictions are keyed by (scene_index, question_id): a descriptive answer
string, or {choice_id: predicted correct} for a multiple-choice question.
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path

from tasks.questions import CHOICE_ANSWERS, DESCRIPTIVE_ANSWERS

Prediction = str | Mapping[int, bool]
SCENE_KEYS = frozenset({"scene_index", "questions"})
DESCRIPTIVE_KEYS = frozenset({"question_id", "answer"})
MULTIPLE_CHOICE_KEYS = frozenset({"question_id", "choices"})
CHOICE_KEYS = frozenset({"choice_id", "answer"})


class SubmissionError(ValueError):
    """A submission that the challenge server would not take; the message lists the problems."""


def build_submission(scenes: list[dict],
                     predictions: Mapping[tuple[int, int], Prediction]) -> list[dict]:
    """The submission for `scenes` (the parsed test.json) from `predictions`.

    Raises:
        SubmissionError: a question has no prediction, or one of the wrong kind.
    """
    submission, missing = [], []
    for scene in scenes:
        entries = []
        for question in scene["questions"]:
            key = (scene["scene_index"], question["question_id"])
            if key not in predictions:
                missing.append(key)
                continue
            prediction = predictions[key]
            if question["question_type"] == "descriptive":
                entries.append({"question_id": question["question_id"], "answer": prediction})
                continue
            if not isinstance(prediction, Mapping):
                raise SubmissionError(f"scene {key[0]} question {key[1]} is multiple-choice; "
                                      f"its prediction must map choice ids, got {prediction!r}")
            entries.append({"question_id": question["question_id"], "choices": [
                {"choice_id": choice["choice_id"],
                 "answer": "correct" if prediction.get(choice["choice_id"]) else "wrong"}
                for choice in question["choices"]
            ]})
        submission.append({"scene_index": scene["scene_index"], "questions": entries})
    if missing:
        raise SubmissionError(f"{len(missing)} questions have no prediction, e.g. (scene_index, "
                              f"question_id) {missing[:5]}")
    validate_submission(submission, scenes)
    return submission


def validate_submission(submission: object, scenes: list[dict]) -> None:
    """Checks `submission` against the test questions `scenes`.

    Raises:
        SubmissionError: naming every problem (the first 20): a scene out of order or missing,
            a question missing, unknown or repeated, a key too many or too few, an answer that
            is not a descriptive answer or "correct"/"wrong", choices that differ from the
            question's.
    """
    problems: list[str] = []
    if not isinstance(submission, list):
        raise SubmissionError(f"a submission is a list of scenes, got {type(submission).__name__}")
    if len(submission) != len(scenes):
        problems.append(f"{len(submission)} scenes, test.json has {len(scenes)}")
    for position, (entry, scene) in enumerate(zip(submission, scenes, strict=False)):
        where = f"entry {position}"
        if not isinstance(entry, dict) or set(entry) != SCENE_KEYS:
            problems.append(f"{where}: keys must be {sorted(SCENE_KEYS)}, got "
                            f"{sorted(entry) if isinstance(entry, dict) else type(entry).__name__}")
            continue
        if entry["scene_index"] != scene["scene_index"]:
            problems.append(f"{where}: scene_index {entry['scene_index']!r}, test.json has "
                            f"{scene['scene_index']} here")
            continue
        problems += _scene_problems(entry["questions"], scene, f"scene {scene['scene_index']}")
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise SubmissionError("invalid submission:\n  " + "\n  ".join(problems[:20]) + more)


def _scene_problems(answers: object, scene: dict, where: str) -> list[str]:
    if not isinstance(answers, list):
        return [f"{where}: questions must be a list"]
    questions = {question["question_id"]: question for question in scene["questions"]}
    problems, seen = [], set()
    for answer in answers:
        if not isinstance(answer, dict) or "question_id" not in answer:
            problems.append(f"{where}: a question entry without question_id: {answer!r}")
            continue
        question_id = answer["question_id"]
        at = f"{where} question {question_id!r}"
        if question_id in seen:
            problems.append(f"{at}: answered twice")
            continue
        seen.add(question_id)
        question = questions.get(question_id)
        if question is None:
            problems.append(f"{at}: not a question of this scene")
        elif question["question_type"] == "descriptive":
            if set(answer) != DESCRIPTIVE_KEYS:
                problems.append(f"{at}: keys must be {sorted(DESCRIPTIVE_KEYS)}, got "
                                f"{sorted(answer)}")
            elif answer["answer"] not in DESCRIPTIVE_ANSWERS:
                problems.append(f"{at}: answer {answer['answer']!r} is not a CLEVRER answer")
        else:
            problems += _choice_problems(answer, question, at)
    absent = sorted(set(questions) - seen)
    if absent:
        problems.append(f"{where}: questions {absent} are not answered")
    return problems


def _choice_problems(answer: dict, question: dict, at: str) -> list[str]:
    if set(answer) != MULTIPLE_CHOICE_KEYS:
        return [f"{at}: keys must be {sorted(MULTIPLE_CHOICE_KEYS)}, got {sorted(answer)}"]
    choices = answer["choices"]
    if not isinstance(choices, list) or not all(isinstance(item, dict) for item in choices):
        return [f"{at}: choices must be a list of objects"]
    problems = [f"{at}: choice keys must be {sorted(CHOICE_KEYS)}, got {sorted(item)}"
                for item in choices if set(item) != CHOICE_KEYS]
    problems += [f"{at}: choice answer {item['answer']!r} is not correct or wrong"
                 for item in choices if item.get("answer", "correct") not in CHOICE_ANSWERS]
    given = [item.get("choice_id") for item in choices]
    expected = [choice["choice_id"] for choice in question["choices"]]
    if sorted(given, key=repr) != sorted(expected, key=repr):
        problems.append(f"{at}: choice ids {given}, the question has {expected}")
    return problems


def write_submission(path: str | Path, submission: list[dict], scenes: list[dict]) -> None:
    """Validates `submission` and writes it as JSON, atomically (a temporary file, renamed)."""
    validate_submission(submission, scenes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(submission))
    os.replace(temporary, path)
