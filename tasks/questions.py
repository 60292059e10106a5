"""Question tokenisation for CLEVRER: a word vocabulary built from the training questions, and
the fixed vocabulary of the 21 descriptive answers.

Text is lower-cased and split into words and punctuation, with the possessive "'s" a token of
its own: "What is the sphere's color?" -> what is the sphere 's color ?. A word the vocabulary
has not seen becomes `<unk>`; `encode(..., max_length)` truncates, so no question crashes.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD_TOKEN, UNKNOWN_TOKEN, SEPARATOR_TOKEN = "<pad>", "<unk>", "<sep>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNKNOWN_TOKEN, SEPARATOR_TOKEN)
PAD_ID, UNKNOWN_ID, SEPARATOR_ID = 0, 1, 2

QUESTION_TYPES: tuple[str, ...] = ("descriptive", "explanatory", "predictive", "counterfactual")
DESCRIPTIVE_SUBTYPES: tuple[str, ...] = (
    "count", "exist", "query_color", "query_shape", "query_material",
)
COLORS: tuple[str, ...] = ("gray", "red", "blue", "green", "brown", "cyan", "purple", "yellow")
SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder")
MATERIALS: tuple[str, ...] = ("metal", "rubber")
COUNT_ANSWERS: tuple[str, ...] = ("0", "1", "2", "3", "4", "5")
DESCRIPTIVE_ANSWERS: tuple[str, ...] = COUNT_ANSWERS + ("yes", "no") + COLORS + SHAPES + MATERIALS
MULTIPLE_CHOICE_TYPES: tuple[str, ...] = QUESTION_TYPES[1:]
CHOICE_ANSWERS: dict[str, int] = {"wrong": 0, "correct": 1}

_TOKEN_PATTERN = re.compile(r"'s\b|[a-z0-9]+|[^\sa-z0-9]")


def split_words(text: str) -> list[str]:
    """Lower-case and split into words, "'s" and single punctuation marks."""
    return _TOKEN_PATTERN.findall(text.lower())


class QuestionVocabulary:
    """Word <-> id for questions and choices; ids 0, 1, 2 are `<pad>`, `<unk>`, `<sep>`."""

    def __init__(self, words: Iterable[str]):
        words = [word for word in words if word not in SPECIAL_TOKENS]
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be unique")
        self.tokens: list[str] = [*SPECIAL_TOKENS, *words]
        self.token_to_id: dict[str, int] = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> QuestionVocabulary:
        """Every word seen at least `min_count` times in `texts`, sorted alphabetically."""
        counts = Counter(word for text in texts for word in split_words(text))
        return cls(sorted(word for word, count in counts.items() if count >= min_count))

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuestionVocabulary) and self.tokens == other.tokens

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """Token ids of `text` (no padding), cut to the first `max_length` tokens if given."""
        ids = [self.token_to_id.get(word, UNKNOWN_ID) for word in split_words(text)]
        return ids if max_length is None else ids[:max_length]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of `ids` joined by spaces, padding left out."""
        return " ".join(self.tokens[i] for i in ids if i != PAD_ID)

    def save(self, path: str | Path) -> None:
        """Write JSON {"tokens": [...]}, atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"tokens": self.tokens}, indent=1))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | Path) -> QuestionVocabulary:
        tokens = json.loads(Path(path).read_text())["tokens"]
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"{path}: the first tokens must be {SPECIAL_TOKENS}")
        return cls(tokens[len(SPECIAL_TOKENS):])


class AnswerVocabulary:
    """The 21 descriptive answers of CLEVRER <-> class index."""

    def __init__(self, answers: Iterable[str] = DESCRIPTIVE_ANSWERS):
        self.answers: tuple[str, ...] = tuple(answers)
        self.answer_to_id: dict[str, int] = {answer: i for i, answer in enumerate(self.answers)}

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, answer: str) -> bool:
        return answer in self.answer_to_id

    def encode(self, answer: str) -> int:
        if answer not in self.answer_to_id:
            raise KeyError(f"{answer!r} is not a CLEVRER descriptive answer {self.answers}")
        return self.answer_to_id[answer]

    def decode(self, index: int) -> str:
        return self.answers[index]
