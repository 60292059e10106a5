"""CLEVRER's accuracies on hand-made predictions: descriptive exact match, per option versus per
question, questions with no correct choice, unlabelled questions, accumulation and merging."""

import json
import math

import pytest
import torch

from downstream.clevrer_metrics import (
    ClevrerAccuracy,
    DescriptiveAccuracy,
    MultipleChoiceAccuracy,
    format_accuracy_table,
)
from tasks.collate import QuestionCollator
from tasks.questions import AnswerVocabulary
from tests.tasks.test_clevrer_questions import REAL_QUESTIONS

ANSWERS = AnswerVocabulary()


def row(video, question_id, kind, answer=None, labels=()):
    return {
        "video_index": video, "question_id": question_id, "question_type": kind,
        "question_tokens": [5], "answer_label": ANSWERS.encode(answer) if answer else -1,
        "choice_ids": list(range(len(labels))), "choice_tokens": [[6]] * len(labels),
        "choice_labels": list(labels),
    }


def one_hot_logits(answers: list[str]) -> torch.Tensor:
    logits = torch.zeros(len(answers), len(ANSWERS))
    for position, answer in enumerate(answers):
        if answer:
            logits[position, ANSWERS.encode(answer)] = 1.0
    return logits


def choice_logits(predicted_correct: list[bool]) -> torch.Tensor:
    return torch.tensor([2.0 if correct else -2.0 for correct in predicted_correct])


# (rows, predicted descriptive answer per row, predicted "correct" per choice)
ROWS = [
    row(0, 0, "descriptive", answer="cube"),
    row(0, 1, "descriptive", answer="2"),
    row(0, 2, "explanatory", labels=[1, 0]),  # both choices right: question right
    row(1, 0, "descriptive", answer="yes"),
    row(1, 1, "explanatory", labels=[0, 0, 0]),  # no correct choice; one predicted correct
    row(1, 2, "explanatory", labels=[0, 0]),  # no correct choice, all predicted wrong: right
    row(2, 0, "descriptive", answer="red"),
    row(2, 1, "predictive", labels=[1]),  # missed
]
PREDICTED_ANSWERS = ["cube", "3", None, "yes", None, None, "red", None]
PREDICTED_CHOICES = [True, False, False, False, True, False, False, False]


def test_hand_made_predictions():
    metric = ClevrerAccuracy()
    metric.update(one_hot_logits(PREDICTED_ANSWERS), choice_logits(PREDICTED_CHOICES),
                  QuestionCollator()(ROWS))
    assert metric.compute() == pytest.approx({
        "descriptive/accuracy": 3 / 4,  # "3" is not "2"
        "explanatory/per_option": 6 / 7,
        "explanatory/per_question": 2 / 3,
        "predictive/per_option": 0.0,
        "predictive/per_question": 0.0,
    })  # no counterfactual question: no counterfactual key


def test_accumulation_over_batches_and_merged_processes_equals_one_pass():
    collate = QuestionCollator()
    whole = ClevrerAccuracy()
    whole.update(one_hot_logits(PREDICTED_ANSWERS), choice_logits(PREDICTED_CHOICES),
                 collate(ROWS))
    halves = [ClevrerAccuracy(), ClevrerAccuracy()]
    first_choices = sum(len(item["choice_ids"]) for item in ROWS[:4])
    for metric, rows, answers, choices in (
        (halves[0], ROWS[:4], PREDICTED_ANSWERS[:4], PREDICTED_CHOICES[:first_choices]),
        (halves[1], ROWS[4:], PREDICTED_ANSWERS[4:], PREDICTED_CHOICES[first_choices:]),
    ):
        metric.update(one_hot_logits(answers), choice_logits(choices), collate(rows))
    # what the sum reduction of a sync does across two processes
    halves[0].descriptive.merge_state(halves[1].descriptive)
    for kind, metric in halves[0].multiple_choice.items():
        metric.merge_state(halves[1].multiple_choice[kind])
    assert halves[0].compute() == whole.compute()


def test_per_option_versus_per_question_directly():
    metric = MultipleChoiceAccuracy()
    # question 7: 3 of 4 right; question 9: 2 of 2 right
    metric.update(torch.tensor([True, False, True, False, False, True]),
                  torch.tensor([1, 0, 0, 0, 0, 1]), torch.tensor([7, 7, 7, 7, 9, 9]))
    values = metric.compute()
    assert values["per_option"].item() == pytest.approx(5 / 6)
    assert values["per_question"].item() == pytest.approx(1 / 2)
    with pytest.warns(UserWarning, match="called before the ``update``"):
        empty = MultipleChoiceAccuracy().compute()
    assert math.isnan(empty["per_option"]) and math.isnan(empty["per_question"])
    with pytest.raises(ValueError, match="differ"):
        metric.update(torch.tensor([True]), torch.tensor([1, 0]), torch.tensor([0, 0]))


def test_descriptive_exact_match_and_unlabelled_rows():
    metric = DescriptiveAccuracy()
    metric.update(torch.tensor([3, 4, 5]), torch.tensor([3, 4, 6]))
    assert metric.compute().item() == pytest.approx(2 / 3)
    test_split = [row(0, 0, "descriptive"), row(0, 1, "explanatory", labels=[-1, -1])]
    unlabelled = ClevrerAccuracy()
    unlabelled.update(one_hot_logits(["1", None]), choice_logits([True, False]),
                      QuestionCollator()(test_split))
    assert unlabelled.compute() == {}


def test_real_explanatory_questions():
    """Predicting every choice wrong scores the share of wrong choices per option, and the share
    of questions with no correct choice per question."""
    scenes = json.loads(REAL_QUESTIONS.read_text())
    rows, wrong_choices, choices, without_correct = [], 0, 0, 0
    for scene in scenes:
        for question in scene["questions"]:
            labels = [int(choice["answer"] == "correct") for choice in question["choices"]]
            rows.append(row(scene["scene_index"], question["question_id"],
                            question["question_type"], labels=labels))
            wrong_choices += labels.count(0)
            choices += len(labels)
            without_correct += not any(labels)
    assert without_correct > 0  # the sample has questions with no correct choice
    metric = ClevrerAccuracy()
    batch = QuestionCollator()(rows)
    metric.update(torch.zeros(len(rows), len(ANSWERS)), torch.full((choices,), -1.0), batch)
    assert metric.compute() == pytest.approx({
        "explanatory/per_option": wrong_choices / choices,
        "explanatory/per_question": without_correct / len(rows),
    })


def test_side_by_side_table():
    table = format_accuracy_table({
        "slots": {"descriptive/accuracy": 0.5, "explanatory/per_option": 0.75},
        "question-only": {"descriptive/accuracy": 0.25},
    })
    lines = table.splitlines()
    assert lines[0].split() == ["accuracy", "(%)", "slots", "question-only"]
    assert lines[1].split() == ["descriptive/accuracy", "50.0", "25.0"]
    assert lines[2].split() == ["explanatory/per_option", "75.0", "-"]


def test_descriptive_accuracy_per_subtype():
    rows = [row(0, 0, "descriptive", answer="2"), row(0, 1, "descriptive", answer="yes"),
            row(1, 0, "descriptive", answer="red"), row(1, 1, "descriptive", answer="blue"),
            row(1, 2, "explanatory", labels=[1])]
    for question, subtype in zip(rows, ["count", "exist", "query_color", "query_color", None],
                                 strict=True):
        question["question_subtype"] = subtype
    metric = ClevrerAccuracy()
    metric.update(one_hot_logits(["2", "no", "red", "red", None]), choice_logits([True]),
                  QuestionCollator()(rows))
    metrics = metric.compute()
    assert metrics["descriptive/accuracy"] == pytest.approx(2 / 4)
    subtypes = {key: value for key, value in metrics.items()
                if key.startswith("descriptive/") and key != "descriptive/accuracy"}
    # query_shape and query_material have no question: left out
    assert subtypes == pytest.approx(
        {"descriptive/count": 1.0, "descriptive/exist": 0.0, "descriptive/query_color": 0.5})
    lines = format_accuracy_table({"slots": metrics}).splitlines()
    assert [line.split()[0] for line in lines[1:5]] == [
        "descriptive/accuracy", "descriptive/count", "descriptive/exist",
        "descriptive/query_color"]
