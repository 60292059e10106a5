"""Question and answer vocabularies: splitting, unknown words, truncation, saving."""

import pytest

from tasks.questions import (
    DESCRIPTIVE_ANSWERS,
    PAD_ID,
    SEPARATOR_ID,
    UNKNOWN_ID,
    AnswerVocabulary,
    QuestionVocabulary,
    split_words,
)

TRAIN = [
    "What is the shape of the object to collide with the purple object?",
    "Which of the following is responsible for the gray cylinder's colliding with the cube?",
    "Without the cube, which event will happen?",
]


def test_split_words_lowercases_and_separates_possessives_and_punctuation():
    assert split_words("Without the Cube, what's the sphere's color?") == [
        "without", "the", "cube", ",", "what", "'s", "the", "sphere", "'s", "color", "?"
    ]


def test_special_tokens_come_first_and_words_are_sorted():
    vocabulary = QuestionVocabulary.build(TRAIN)
    assert vocabulary.tokens[:3] == ["<pad>", "<unk>", "<sep>"]
    assert (PAD_ID, UNKNOWN_ID, SEPARATOR_ID) == (0, 1, 2)
    assert vocabulary.tokens[3:] == sorted(vocabulary.tokens[3:])
    assert len(vocabulary) == 3 + len(set(word for text in TRAIN for word in split_words(text)))


def test_unseen_word_becomes_unknown():
    vocabulary = QuestionVocabulary.build(TRAIN)
    ids = vocabulary.encode("What is the colour of the sphere?")
    assert vocabulary.decode(ids) == "what is the <unk> of the <unk> ?"
    assert ids.count(UNKNOWN_ID) == 2


def test_long_question_is_truncated():
    vocabulary = QuestionVocabulary.build(TRAIN)
    long_question = " ".join(["the cube"] * 500)
    assert len(vocabulary.encode(long_question)) == 1000
    assert vocabulary.encode(long_question, max_length=7) == vocabulary.encode(long_question)[:7]
    assert vocabulary.encode("", max_length=7) == []


def test_min_count():
    vocabulary = QuestionVocabulary.build(TRAIN, min_count=2)
    assert "purple" not in vocabulary.token_to_id and "the" in vocabulary.token_to_id


def test_save_and_load_round_trip(tmp_path):
    vocabulary = QuestionVocabulary.build(TRAIN)
    vocabulary.save(tmp_path / "folder" / "vocabulary.json")
    assert QuestionVocabulary.load(tmp_path / "folder" / "vocabulary.json") == vocabulary
    assert not list((tmp_path / "folder").glob(".*tmp"))


def test_answer_vocabulary_has_the_21_clevrer_answers():
    answers = AnswerVocabulary()
    assert len(answers) == 21 == len(set(DESCRIPTIVE_ANSWERS))
    assert [answers.decode(answers.encode(answer)) for answer in DESCRIPTIVE_ANSWERS] == list(
        DESCRIPTIVE_ANSWERS
    )
    assert answers.encode("0") == 0 and "large" not in answers
    with pytest.raises(KeyError, match="not a CLEVRER descriptive answer"):
        answers.encode("large")
