"""Accuracy per question family: which kinds of CLEVRER question a reasoner answers.

A question's family is its type (a descriptive question's subtype) and the operations of its
program, without the attribute values and the steps every program has:

    ["objects", "red", "filter_color", "events", "filter_in", "unique", "get_object",
     "query_shape"]  ->  "query_shape: filter_color filter_in get_object"

so "What shape is the red object that enters the scene?" and "... the blue object that enters
the scene?" are one family. Descriptive questions score per question; multiple-choice ones per
option (each option of a question counts once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from downstream.submission import Prediction
from tasks.bad_input import BadInputError
from tasks.question_records import QuestionRecord
from tasks.questions import COLORS, MATERIALS, SHAPES

SHARED_STEPS = frozenset({"objects", "events", "unique"})
ATTRIBUTE_VALUES = frozenset(COLORS + SHAPES + MATERIALS)


@dataclass(frozen=True)
class FamilyScore:
    """Right answers (questions, or options for multiple choice) of one family."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


def question_family(record: QuestionRecord) -> str:
    """`"<subtype or type>: <operations>"` of `record` (module docstring)."""
    kind = record.question_subtype or record.question_type
    steps = [step for step in record.program
             if step not in SHARED_STEPS and step not in ATTRIBUTE_VALUES
             and step != record.question_subtype]
    return f"{kind}: {' '.join(steps)}".rstrip()


def family_scores(records: Iterable[QuestionRecord],
                  predictions: Mapping[tuple[int, int], Prediction]) -> dict[str, FamilyScore]:
    """Scores per family of the answered `records` against `predictions`, keyed by
    (video_index, question_id) as `predict_answers` gives them.

    Raises:
        BadInputError: a record without its answers (the test split), or without a prediction.
    """
    counts: dict[str, list[int]] = {}
    missing = []
    for record in records:
        key = (record.video_index, record.question_id)
        if key not in predictions:
            missing.append(key)
            continue
        if record.question_type == "descriptive":
            if record.answer is None:
                raise BadInputError(f"question {key} has no answer to score against")
            right = [predictions[key] == record.answer]
        else:
            if None in record.choice_answers:
                raise BadInputError(f"question {key} has no answers to score against")
            chosen = predictions[key]
            right = [bool(chosen.get(choice_id)) == (answer == "correct")
                     for choice_id, answer in zip(record.choice_ids, record.choice_answers,
                                                  strict=True)]
        tally = counts.setdefault(question_family(record), [0, 0])
        tally[0] += sum(right)
        tally[1] += len(right)
    if missing:
        raise BadInputError(f"{len(missing)} questions have no prediction, e.g. (video_index, "
                            f"question_id) {missing[:5]}")
    return {family: FamilyScore(*tally) for family, tally in sorted(counts.items())}


def format_family_table(runs: Mapping[str, Mapping[str, FamilyScore]],
                        min_count: int = 1) -> str:
    """Accuracy (%) per family, one column per run, the family last on its line; the families
    every run scored, at least `min_count` times (the count is the first run's)."""
    names = list(runs)
    first = runs[names[0]]
    families = [family for family in first
                if all(family in scores for scores in runs.values())
                and first[family].total >= min_count]
    columns = [max(len(name), 6) + 2 for name in names]
    lines = [f"{'count':>6}"
             + "".join(f"{name:>{column}}" for name, column in zip(names, columns, strict=True))
             + "  family"]
    for family in families:
        cells = "".join(f"{100 * runs[name][family].accuracy:>{column}.1f}"
                        for name, column in zip(names, columns, strict=True))
        lines.append(f"{first[family].total:>6}{cells}  {family}")
    return "\n".join(lines)
