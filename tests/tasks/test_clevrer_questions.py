"""The CLEVRER question dataset: round trip, splits, real questions and bad records."""

import json
import shutil
from pathlib import Path

import pytest

from tasks.bad_input import BadInputError, LoadReport
from tasks.clevrer import (
    QuestionLoadingConfig,
    clevrer_vocabulary,
    load_clevrer_questions,
)
from tasks.questions import UNKNOWN_ID, AnswerVocabulary, split_words

REAL_QUESTIONS = Path(__file__).parents[2].parent / "shared" / "fixtures" / "clevrer_real" / (
    "explanatory_questions_sample.json"
)
if not REAL_QUESTIONS.is_file():  # the worktree may live elsewhere than beside shared/
    REAL_QUESTIONS = Path("/work/shared/fixtures/clevrer_real/explanatory_questions_sample.json")


def file_questions(path: Path) -> list[tuple[dict, dict]]:
    return [(scene, question) for scene in json.loads(path.read_text())
            for question in scene["questions"]]


def words(vocabulary, text: str) -> str:
    """The words of `text` as the vocabulary knows them: unseen ones are <unk>."""
    return " ".join(word if word in vocabulary.token_to_id else "<unk>"
                    for word in split_words(text))


def test_questions_round_trip(clevrer, cache_dir):
    vocabulary = clevrer_vocabulary(clevrer.root, cache_dir=cache_dir)
    answers = AnswerVocabulary()
    for split in ("train", "validation"):
        rows = list(load_clevrer_questions(clevrer.root, split, cache_dir=cache_dir))
        written = file_questions(clevrer.question_path(split))
        assert len(rows) == len(written) == 5 * len(clevrer.splits[split])
        for row, (scene, question) in zip(rows, written, strict=True):
            assert row["video_index"] == scene["scene_index"]
            assert row["video_filename"] == scene["video_filename"]
            for name in ("question_id", "question", "question_type", "program"):
                assert row[name] == question[name]
            assert vocabulary.decode(row["question_tokens"]) == words(vocabulary,
                                                                     question["question"])
            if split == "train":  # the vocabulary's own split has no unknown words
                assert UNKNOWN_ID not in row["question_tokens"]
            if question["question_type"] == "descriptive":
                assert row["question_subtype"] == question["question_subtype"]
                assert row["answer"] == question["answer"]
                assert answers.decode(row["answer_label"]) == question["answer"]
                assert row["choices"] == [] and row["choice_labels"] == []
            else:
                choices = question["choices"]
                assert row["answer"] is None and row["answer_label"] == -1
                assert row["choice_ids"] == [choice["choice_id"] for choice in choices]
                assert row["choices"] == [choice["choice"] for choice in choices]
                assert row["choice_programs"] == [choice["program"] for choice in choices]
                assert row["choice_labels"] == [
                    int(choice["answer"] == "correct") for choice in choices
                ]
                assert [vocabulary.decode(tokens) for tokens in row["choice_tokens"]] == [
                    words(vocabulary, choice["choice"]) for choice in choices
                ]


def test_all_four_types_and_the_split_of_each_question(clevrer, cache_dir):
    for split, indices in clevrer.splits.items():
        questions = load_clevrer_questions(clevrer.root, split, cache_dir=cache_dir)
        assert set(questions["video_index"]) == set(indices)
        assert set(questions["question_type"]) == {
            "descriptive", "explanatory", "predictive", "counterfactual"
        }


def test_test_split_is_answer_free(clevrer, cache_dir):
    questions = load_clevrer_questions(clevrer.root, "test", cache_dir=cache_dir)
    assert set(questions["answer"]) == {None}
    assert set(questions["answer_label"]) == {-1}
    assert {label for labels in questions["choice_labels"] for label in labels} == {-1}
    assert all(questions["question_tokens"])


def test_question_naming_a_missing_video(clevrer, cache_dir, capsys):
    clevrer.video_path(2).unlink()
    with pytest.raises(BadInputError, match="names video_00002.mp4, which is not in videos/train"):
        load_clevrer_questions(clevrer.root, "train", cache_dir=cache_dir)
    report = LoadReport()
    config = QuestionLoadingConfig(on_error="skip")
    questions = load_clevrer_questions(clevrer.root, "train", config, cache_dir, report)
    assert set(questions["video_index"]) == {0, 1}
    assert report.counts() == {"question": 5}
    assert "CLEVRER train questions: skipped 5 question(s)" in capsys.readouterr().out
    # without the check, questions load without their videos
    unchecked = load_clevrer_questions(
        clevrer.root, "train", QuestionLoadingConfig(check_videos=False), cache_dir
    )
    assert set(unchecked["video_index"]) == {0, 1, 2}


def damage(path: Path, change) -> None:
    scenes = json.loads(path.read_text())
    change(scenes)
    path.write_text(json.dumps(scenes))


@pytest.mark.parametrize(
    ("change", "message", "unit"),
    [
        (lambda scenes: scenes[1]["questions"][2].pop("question_type"),
         r"scene_index 1 question #2: missing field 'question_type'", "question"),
        (lambda scenes: scenes[1]["questions"][0].update(answer="seven"),
         r"answer 'seven' is not a descriptive answer", "question"),
        (lambda scenes: scenes[1]["questions"][4]["choices"][1].update(answer="maybe"),
         r"question #4 choice #1: answer 'maybe'", "question"),
        (lambda scenes: scenes[1]["questions"][1].update(question_id="one"),
         r"field 'question_id' must be int, got str", "question"),
        (lambda scenes: scenes[1].update(video_filename="video_00007.mp4"),
         r"does not match scene_index 1", "scene"),
    ],
)
def test_malformed_record(clevrer, cache_dir, change, message, unit):
    damage(clevrer.question_path("train"), change)
    with pytest.raises(BadInputError, match=message):
        load_clevrer_questions(clevrer.root, "train", cache_dir=cache_dir)
    report = LoadReport()
    config = QuestionLoadingConfig(on_error="skip")
    questions = load_clevrer_questions(clevrer.root, "train", config, cache_dir, report)
    assert report.counts() == {unit: 1}
    assert len(questions) == (14 if unit == "question" else 10)


def test_question_file_that_is_not_json_always_raises(clevrer, cache_dir):
    clevrer.question_path("validation").write_text('[{"scene_index": 10000,')
    for on_error in ("raise", "skip"):
        with pytest.raises(BadInputError, match="validation.json is not valid JSON"):
            load_clevrer_questions(
                clevrer.root, "validation", QuestionLoadingConfig(on_error=on_error), cache_dir
            )


def test_vocabulary_is_built_from_train_and_saved(clevrer, cache_dir, tmp_path):
    vocabulary = clevrer_vocabulary(clevrer.root, cache_dir=cache_dir)
    assert list(cache_dir.glob("clevrer-vocabulary-*.json"))
    assert clevrer_vocabulary(clevrer.root, cache_dir=cache_dir) == vocabulary
    chosen = tmp_path / "vocabulary.json"
    assert clevrer_vocabulary(clevrer.root, chosen, cache_dir) == vocabulary
    assert chosen.is_file()
    # the validation and test questions use the training vocabulary
    questions = load_clevrer_questions(
        clevrer.root, "test", QuestionLoadingConfig(vocabulary_file=str(chosen)), cache_dir
    )
    assert len(questions) == 5


def test_real_explanatory_questions(tmp_path, cache_dir):
    root = tmp_path / "clevrer"
    (root / "questions").mkdir(parents=True)
    shutil.copy(REAL_QUESTIONS, root / "questions" / "train.json")
    config = QuestionLoadingConfig(check_videos=False)
    questions = load_clevrer_questions(root, "train", config, cache_dir)
    written = file_questions(REAL_QUESTIONS)
    assert len(questions) == len(written) and len({scene["scene_index"] for scene, _ in written})
    assert set(questions["question_type"]) == {"explanatory"}
    vocabulary = clevrer_vocabulary(root, cache_dir=cache_dir)
    assert 30 < len(vocabulary) < 100  # CLEVRER's question vocabulary is about 80 words
    for row, (_, question) in zip(questions, written, strict=True):
        assert UNKNOWN_ID not in row["question_tokens"]
        assert row["choice_labels"] == [
            int(choice["answer"] == "correct") for choice in question["choices"]
        ]
    labels = questions["choice_labels"]
    assert any(sum(question_labels) == 0 for question_labels in labels)  # none correct
    assert any(sum(question_labels) > 1 for question_labels in labels)  # several correct
    # possessives are tokens of their own: "sphere's" is sphere + 's
    assert {"'s", "sphere", "?"} <= set(vocabulary.tokens)
    assert "sphere's" not in vocabulary.tokens
