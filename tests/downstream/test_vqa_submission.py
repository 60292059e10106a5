"""The test-split submission: the challenge's schema exactly, and a validator naming problems."""

import copy
import json

import pytest

from downstream.submission import (
    SubmissionError,
    build_submission,
    validate_submission,
    write_submission,
)

SCENES = [  # as questions/test.json holds them: no answers
    {"scene_index": 15001, "video_filename": "video_15001.mp4", "questions": [
        {"question_id": 0, "question": "How many objects are moving?",
         "question_type": "descriptive", "program": []},
        {"question_id": 1, "question": "What will happen next?", "question_type": "predictive",
         "program": [], "choices": [
             {"choice_id": 0, "choice": "The cube and the sphere collide", "program": []},
             {"choice_id": 1, "choice": "The cube exits the scene", "program": []}]},
    ]},
    {"scene_index": 15000, "video_filename": "video_15000.mp4", "questions": [
        {"question_id": 0, "question": "What is the shape of the red object?",
         "question_type": "descriptive", "program": []},
    ]},
]
PREDICTIONS = {(15001, 0): "2", (15001, 1): {0: True, 1: False}, (15000, 0): "cube"}


def test_build_gives_the_challenge_format(tmp_path):
    submission = build_submission(SCENES, PREDICTIONS)
    assert submission == [
        {"scene_index": 15001, "questions": [
            {"question_id": 0, "answer": "2"},
            {"question_id": 1, "choices": [{"choice_id": 0, "answer": "correct"},
                                           {"choice_id": 1, "answer": "wrong"}]}]},
        {"scene_index": 15000, "questions": [{"question_id": 0, "answer": "cube"}]},
    ]
    write_submission(tmp_path / "submission.json", submission, SCENES)
    assert json.loads((tmp_path / "submission.json").read_text()) == submission
    assert [path.name for path in tmp_path.iterdir()] == ["submission.json"]


def test_a_question_without_prediction_is_an_error():
    predictions = dict(PREDICTIONS)
    del predictions[(15000, 0)]
    with pytest.raises(SubmissionError, match=r"1 questions have no prediction.*\(15000, 0\)"):
        build_submission(SCENES, predictions)
    with pytest.raises(SubmissionError, match="multiple-choice; its prediction must map"):
        build_submission(SCENES, {**PREDICTIONS, (15001, 1): "yes"})


def broken(change):
    submission = build_submission(SCENES, PREDICTIONS)
    change(submission)
    return submission


@pytest.mark.parametrize("change,message", [
    (lambda s: s[0].update(video_filename="video_15001.mp4"), "entry 0: keys must be"),
    (lambda s: s[0]["questions"][0].update(question_type="descriptive"),
     "scene 15001 question 0: keys must be"),
    (lambda s: s[0]["questions"][1]["choices"][0].update(choice="x"), "choice keys must be"),
    (lambda s: s[0]["questions"].pop(0), r"scene 15001: questions \[0\] are not answered"),
    (lambda s: s[1]["questions"].append({"question_id": 7, "answer": "no"}),
     "question 7: not a question of this scene"),
    (lambda s: s[1]["questions"].append({"question_id": 0, "answer": "no"}), "answered twice"),
    (lambda s: s[0]["questions"][0].update(answer="two"), "'two' is not a CLEVRER answer"),
    (lambda s: s[0]["questions"][1]["choices"][1].update(answer="maybe"),
     "'maybe' is not correct or wrong"),
    (lambda s: s[0]["questions"][1]["choices"].pop(), r"choice ids \[0\], the question has"),
    (lambda s: s.reverse(), "scene_index 15000, test.json has 15001"),
    (lambda s: s.pop(), "1 scenes, test.json has 2"),
])
def test_validator_rejects(change, message):
    with pytest.raises(SubmissionError, match=message):
        validate_submission(broken(change), SCENES)


def test_nothing_is_written_for_an_invalid_submission(tmp_path):
    submission = broken(lambda s: s[1]["questions"].clear())
    with pytest.raises(SubmissionError):
        write_submission(tmp_path / "submission.json", submission, SCENES)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SubmissionError, match="a list of scenes"):
        validate_submission({"scenes": []}, SCENES)
    validate_submission(copy.deepcopy(build_submission(SCENES, PREDICTIONS)), SCENES)
