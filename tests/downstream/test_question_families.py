"""Accuracy per question family: the family of a program, scores per question and per option on
hand-made predictions, the table, and `vqa.py --families` on a finished tiny run, whose family
scores add up to the run's own metrics."""

import pytest

from downstream.question_families import (
    FamilyScore,
    family_scores,
    format_family_table,
    question_family,
)
from downstream.vqa import main, run_family_scores, run_vqa
from tasks.bad_input import BadInputError
from tasks.question_records import QuestionRecord
from tests.downstream.test_vqa_training import tiny_config

SHAPE_OF_ENTERING = ["events", "objects", "red", "filter_color", "filter_in", "unique",
                     "get_object", "query_shape"]


def descriptive(video: int, question_id: int, program: list[str], subtype: str,
                answer: str | None) -> QuestionRecord:
    return QuestionRecord(video, f"video_{video:05d}.mp4", question_id, "q?", "descriptive",
                          subtype, program, answer)


def predictive(video: int, question_id: int, answers: list[str]) -> QuestionRecord:
    ids = list(range(len(answers)))
    return QuestionRecord(video, f"video_{video:05d}.mp4", question_id, "q?", "predictive", None,
                          ["events", "objects", "unseen_events", "belong_to"], None, ids,
                          ["c"] * len(ids), [[]] * len(ids), answers)


def test_a_family_keeps_the_operations_and_drops_values_and_shared_steps():
    assert (question_family(descriptive(0, 0, SHAPE_OF_ENTERING, "query_shape", "cube"))
            == "query_shape: filter_color filter_in get_object")
    blue = [step if step != "red" else "blue" for step in SHAPE_OF_ENTERING]
    assert question_family(descriptive(0, 1, blue, "query_shape", "cube")) == question_family(
        descriptive(0, 0, SHAPE_OF_ENTERING, "query_shape", "cube"))
    assert (question_family(descriptive(0, 2, ["objects", "metal", "filter_material", "count"],
                                        "count", "2")) == "count: filter_material")
    assert question_family(predictive(0, 3, ["correct"])) == "predictive: unseen_events belong_to"


def test_descriptive_questions_score_per_question_and_multiple_choice_per_option():
    records = [
        descriptive(0, 0, SHAPE_OF_ENTERING, "query_shape", "cube"),
        descriptive(1, 0, SHAPE_OF_ENTERING, "query_shape", "sphere"),
        descriptive(1, 1, ["objects", "count"], "count", "3"),
        predictive(0, 1, ["correct", "wrong"]),
        predictive(1, 2, ["wrong", "correct"]),
    ]
    predictions = {(0, 0): "cube", (1, 0): "cube", (1, 1): "3",
                   (0, 1): {0: True, 1: False},   # both options right
                   (1, 2): {0: True, 1: True}}    # one of two right
    scores = family_scores(records, predictions)
    assert scores == {
        "count:": FamilyScore(1, 1),
        "predictive: unseen_events belong_to": FamilyScore(3, 4),
        "query_shape: filter_color filter_in get_object": FamilyScore(1, 2),
    }
    table = format_family_table({"a": scores, "b": scores}, min_count=2)
    assert "count:" not in table  # one question, under min_count
    assert table.splitlines()[1].split() == ["4", "75.0", "75.0", "predictive:",
                                             "unseen_events", "belong_to"]


def test_missing_predictions_and_unanswered_questions_are_named():
    records = [descriptive(0, 0, SHAPE_OF_ENTERING, "query_shape", "cube")]
    with pytest.raises(BadInputError, match=r"1 questions have no prediction.*\(0, 0\)"):
        family_scores(records, {})
    unanswered = [descriptive(0, 0, SHAPE_OF_ENTERING, "query_shape", None)]
    with pytest.raises(BadInputError, match="no answer"):
        family_scores(unanswered, {(0, 0): "cube"})


def test_families_of_a_finished_run_add_up_to_its_metrics(vqa_files, tmp_path, capsys):
    config = tiny_config(vqa_files, tmp_path / "run", "training.max_steps=10")
    metrics = run_vqa(config)
    scores = run_family_scores(tmp_path / "run")
    for kind in ("explanatory", "predictive", "counterfactual"):
        mine = [score for family, score in scores.items() if family.startswith(kind)]
        assert (sum(s.correct for s in mine) / sum(s.total for s in mine)
                == pytest.approx(metrics[f"{kind}/per_option"]))
    described = [score for family, score in scores.items()
                 if family.split(":")[0] in ("count", "exist") or family.startswith("query")]
    assert (sum(s.correct for s in described) / sum(s.total for s in described)
            == pytest.approx(metrics["descriptive/accuracy"]))

    capsys.readouterr()
    main(["--families", str(tmp_path / "run"), "--min-count", "1"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["count", "run", "family"]
    assert len(printed) == 1 + len(scores)
    with pytest.raises(SystemExit, match="has no config.yaml: not a finished VQA run"):
        main(["--families", str(tmp_path)])

    # a run on some question types is scored on those alone
    saved = tmp_path / "run" / "config.yaml"
    saved.write_text(saved.read_text().replace("question_types: []",
                                               "question_types: [counterfactual]"))
    assert run_family_scores(tmp_path / "run") == {
        family: score for family, score in scores.items() if family.startswith("counterfactual")}
