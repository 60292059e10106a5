"""Which candidate questions are asked: answer balancing across a split, and its statistics.

CLEVRER samples questions "to maintain a balanced answer distribution for each question type and
minimize the correlation between the questions and answers over the entire dataset". Here:
- descriptive: each video gets up to `descriptive_per_video` questions, subtypes drawn in
  CLEVRER's proportions; within a subtype, the candidate whose answer is rarest so far for its
  template is taken, and a candidate is refused while its answer leads its template's other
  common answers by `SLACK` (so one video's lopsided offer cannot tilt the split);
- multiple choice: options are drawn so that, per (template, option kind), correct and wrong
  options stay even (the template tells "not" questions apart); explanatory and counterfactual
  questions get 2–4 options (fewer when the pool is lopsided, none asked below 2; explanatory
  ones may have no correct option, counterfactual ones have at least one), predictive ones 2
  options with exactly one correct, as in CLEVRER; options are shuffled; a question and its
  "not" twin are never both asked about one video.
Videos are visited in index order with one seeded generator, so the result does not depend on
how the videos were produced.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from tasks.clevrer_sim.config import SimConfig
from tasks.questions import COLORS, DESCRIPTIVE_SUBTYPES, MATERIALS, SHAPES

SUBTYPE_WEIGHTS = {
    "count": 0.36,
    "exist": 0.18,
    "query_color": 0.17,
    "query_shape": 0.15,
    "query_material": 0.14,
}
"""Share of each descriptive subtype in CLEVRER's training questions."""
SLACK = 2
"""A descriptive answer may lead the least frequent common answer of its template by this much."""
COMMON_SHARE = 0.1
"""An answer counts as common for a template once it was on offer in this share of the videos
that offered the template."""
CHOICE_SLACK = 2
"""An option's answer may lead the other answer of its (template, kind) by this much."""
CHOICE_COUNT_WEIGHTS = {4: 0.55, 3: 0.25, 2: 0.2}
"""Options per explanatory / counterfactual question."""


@dataclass
class DescriptiveBalancer:
    """Running answer counts per template, and the rule that refuses lopsided picks."""

    asked: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    offered: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    videos_offering: Counter = field(default_factory=Counter)

    def observe(self, candidates: list[dict]) -> None:
        """Record which answers one video offers per template."""
        by_template: dict[str, set[str]] = defaultdict(set)
        for candidate in candidates:
            by_template[candidate["template"]].add(candidate["answer"])
        for template, answers in by_template.items():
            self.videos_offering[template] += 1
            self.offered[template].update(answers)

    def common_answers(self, template: str) -> list[str]:
        threshold = COMMON_SHARE * self.videos_offering[template]
        return [a for a, n in self.offered[template].items() if n >= threshold]

    def allowed(self, template: str, answer: str) -> bool:
        counts = self.asked[template]
        common = self.common_answers(template)
        floor = min((counts[a] for a in common), default=0)
        return counts[answer] < floor + SLACK

    def score(self, template: str, answer: str) -> int:
        return self.asked[template][answer]

    def take(self, template: str, answer: str) -> None:
        self.asked[template][answer] += 1


@dataclass
class ChoiceBalancer:
    """Running correct/wrong counts per (question template, option kind)."""

    counts: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))

    def pick(
        self,
        rng: np.random.Generator,
        template: str,
        pool: list[dict],
        count: int,
        one_correct: bool = False,
    ) -> list[dict]:
        """Draw up to `count` options from `pool`, keeping correct and wrong even per kind: an
        option whose answer already leads by `CHOICE_SLACK` for its kind is not taken, so a
        lopsided pool gives fewer options (possibly none). With `one_correct`, one option is a
        correct one (none are drawn if the pool has no correct option). Counts change only when
        the caller `record`s the options it keeps."""
        remaining = list(pool)
        chosen: list[dict] = []
        if one_correct:
            correct = [c for c in remaining if c["answer"] == "correct"]
            if not correct:
                return []
            first = correct[int(rng.integers(len(correct)))]
            chosen.append(first)
            remaining.remove(first)
        while remaining and len(chosen) < count:
            kind_use = Counter(c["kind"] for c in chosen)
            # Ties are broken by draws made in sorted order, not the set's (hash-seeded) order.
            kinds = sorted(
                sorted({c["kind"] for c in remaining}), key=lambda k: (kind_use[k], rng.random())
            )
            option = None
            for kind in kinds:
                option = self._balanced_option(rng, template, kind, remaining, chosen)
                if option is not None:
                    break
            if option is None:
                break
            chosen.append(option)
            remaining.remove(option)
        return chosen

    def record(self, template: str, options: list[dict]) -> None:
        """Count the options of an asked question."""
        for option in options:
            self.counts[template, option["kind"]][option["answer"]] += 1

    def _balanced_option(
        self,
        rng: np.random.Generator,
        template: str,
        kind: str,
        remaining: list[dict],
        chosen: list[dict],
    ) -> dict | None:
        counts = self.counts[template, kind] + Counter(
            c["answer"] for c in chosen if c["kind"] == kind
        )
        of_kind = [c for c in remaining if c["kind"] == kind]
        answers = sorted(
            sorted({c["answer"] for c in of_kind}), key=lambda a: (counts[a], rng.random())
        )
        for answer in answers:
            other = "wrong" if answer == "correct" else "correct"
            if counts[answer] - counts[other] < CHOICE_SLACK:
                options = [c for c in of_kind if c["answer"] == answer]
                return options[int(rng.integers(len(options)))]
        return None


def _weighted_choice(rng: np.random.Generator, weights: dict) -> object:
    keys = list(weights)
    probabilities = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=probabilities / probabilities.sum()))]


def _public_choice(choice: dict, choice_id: int) -> dict:
    return {
        "choice_id": choice_id,
        "choice": choice["choice"],
        "program": choice["program"],
        "answer": choice["answer"],
    }


class QuestionSelector:
    """Selects the questions of every video of one split, in index order."""

    def __init__(self, config: SimConfig, seed_key: int) -> None:
        self.config = config
        self.rng = np.random.default_rng([config.seed, seed_key, 7])
        self.descriptive = DescriptiveBalancer()
        self.choices = ChoiceBalancer()
        self.negated = Counter()

    def select(self, candidates: list[dict]) -> list[dict]:
        """The questions of one video, question_id from 0, descriptive first, then explanatory,
        predictive, counterfactual. Keys beginning with "_" (template, option kinds) are
        bookkeeping: `public` removes them."""
        questions = self._descriptive(candidates)
        questions += self._multiple_choice(
            candidates, "explanatory", self.config.explanatory_per_video
        )
        questions += self._multiple_choice(
            candidates, "predictive", self.config.predictive_per_video
        )
        questions += self._multiple_choice(
            candidates, "counterfactual", self.config.counterfactual_per_video
        )
        for question_id, question in enumerate(questions):
            question["question_id"] = question_id
        return [{"question_id": q.pop("question_id"), **q} for q in questions]

    def _descriptive(self, candidates: list[dict]) -> list[dict]:
        pool = [c for c in candidates if c["question_type"] == "descriptive"]
        self.descriptive.observe(pool)
        asked_texts: set[str] = set()
        questions = []
        for _ in range(self.config.descriptive_per_video):
            subtype = _weighted_choice(self.rng, SUBTYPE_WEIGHTS)
            picked = self._pick_descriptive(pool, subtype, asked_texts)
            if picked is None:
                continue
            asked_texts.add(picked["question"])
            self.descriptive.take(picked["template"], picked["answer"])
            questions.append(
                {
                    "question": picked["question"],
                    "question_type": "descriptive",
                    "question_subtype": picked["question_subtype"],
                    "program": picked["program"],
                    "answer": picked["answer"],
                    "_template": picked["template"],
                }
            )
        return questions

    def _pick_descriptive(self, pool: list[dict], subtype: str, asked: set[str]) -> dict | None:
        options = [
            c
            for c in pool
            if c["question_subtype"] == subtype
            and c["question"] not in asked
            and self.descriptive.allowed(c["template"], c["answer"])
        ]
        if not options:
            return None
        best = min(self.descriptive.score(c["template"], c["answer"]) for c in options)
        options = [c for c in options if self.descriptive.score(c["template"], c["answer"]) == best]
        return options[int(self.rng.integers(len(options)))]

    def _multiple_choice(
        self, candidates: list[dict], question_type: str, limit: int
    ) -> list[dict]:
        pool = [c for c in candidates if c["question_type"] == question_type and c["choices"]]
        questions = []
        used_subjects: set[str] = set()
        order = self.rng.permutation(len(pool))
        for position in order:
            if len(questions) >= limit:
                break
            candidate = pool[position]
            negated = candidate["template"].endswith("_not")
            # A question and its "not" twin share options: ask at most one of them, and keep
            # "not" questions as frequent as plain ones.
            subject = _subject(candidate)
            if subject in used_subjects:
                continue
            if (
                question_type != "predictive"
                and self.negated[question_type, negated] > self.negated[question_type, not negated]
            ):
                continue
            if question_type == "predictive":
                options = self._predictive_options(candidate)
                if options is None:
                    continue
            else:
                count = int(_weighted_choice(self.rng, CHOICE_COUNT_WEIGHTS))
                # As in CLEVRER, a counterfactual question has at least one correct option.
                options = self.choices.pick(
                    self.rng,
                    candidate["template"],
                    candidate["choices"],
                    count,
                    one_correct=question_type == "counterfactual",
                )
                if len(options) < 2:
                    # A lone option would always be correct for counterfactual questions.
                    continue
                self.choices.record(candidate["template"], options)
                options = [options[i] for i in self.rng.permutation(len(options))]
            used_subjects.add(subject)
            self.negated[question_type, negated] += 1
            questions.append(
                {
                    "question": candidate["question"],
                    "question_type": question_type,
                    "program": candidate["program"],
                    "choices": [_public_choice(c, i) for i, c in enumerate(options)],
                    "_template": candidate["template"],
                    "_kinds": [c["kind"] for c in options],
                }
            )
        return questions

    def _predictive_options(self, candidate: dict) -> list[dict] | None:
        correct = [c for c in candidate["choices"] if c["answer"] == "correct"]
        wrong = [c for c in candidate["choices"] if c["answer"] == "wrong"]
        if not correct or not wrong:
            return None
        options = [
            correct[int(self.rng.integers(len(correct)))],
            wrong[int(self.rng.integers(len(wrong)))],
        ]
        if self.rng.random() < 0.5:
            options.reverse()
        return options


def public(question: dict) -> dict:
    """A selected question with only the official keys."""
    return {k: v for k, v in question.items() if not k.startswith("_")}


def _subject(candidate: dict) -> str:
    """What a multiple-choice question is about: its program without `negate` (the same for a
    question and its "not" twin, whatever their wording)."""
    return " ".join(token for token in candidate["program"] if token != "negate")


@dataclass
class AnswerStatistics:
    """Answer distribution of a set of questions, and how well answering from the question
    alone could do (majority-answer rates)."""

    descriptive: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """Subtype → answer counts."""
    descriptive_templates: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """Template → answer counts."""
    choices: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """Multiple-choice type → correct / wrong counts over all options."""
    choices_by_kind: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """"type/template/kind" → correct / wrong counts."""
    correct_per_question: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """Multiple-choice type → number of correct options per question."""
    questions: Counter = field(default_factory=Counter)
    """Question type → count."""

    def add(self, question: dict) -> None:
        """Count one selected question (with its "_template" / "_kinds" bookkeeping keys)."""
        template, kinds = question.get("_template"), question.get("_kinds")
        question_type = question["question_type"]
        self.questions[question_type] += 1
        if question_type == "descriptive":
            self.descriptive[question["question_subtype"]][question["answer"]] += 1
            if template:
                self.descriptive_templates[template][question["answer"]] += 1
            return
        answers = [c["answer"] for c in question["choices"]]
        self.choices[question_type].update(answers)
        self.correct_per_question[question_type][answers.count("correct")] += 1
        for answer, kind in zip(answers, kinds or [], strict=False):
            self.choices_by_kind[f"{question_type}/{template}/{kind}"][answer] += 1

    @staticmethod
    def majority_rate(counts: Counter) -> float:
        total = sum(counts.values())
        return max(counts.values()) / total if total else 0.0

    def table(self) -> list[dict]:
        """One row per descriptive subtype and per multiple-choice type."""
        rows = []
        for subtype in DESCRIPTIVE_SUBTYPES:
            counts = self.descriptive.get(subtype, Counter())
            if counts:
                answer, _ = max(counts.items(), key=lambda item: item[1])
                rows.append(
                    {
                        "type": f"descriptive/{subtype}",
                        "questions": sum(counts.values()),
                        "majority_answer": answer,
                        "majority_rate": round(self.majority_rate(counts), 3),
                        "answers": dict(sorted(counts.items())),
                    }
                )
        for question_type in ("explanatory", "predictive", "counterfactual"):
            counts = self.choices.get(question_type, Counter())
            if counts:
                answer, _ = max(counts.items(), key=lambda item: item[1])
                rows.append(
                    {
                        "type": question_type,
                        "questions": self.questions[question_type],
                        "options": sum(counts.values()),
                        "correct_share": round(counts["correct"] / sum(counts.values()), 3),
                        "majority_answer": answer,
                        "majority_rate": round(self.majority_rate(counts), 3),
                        "correct_per_question": dict(
                            sorted(self.correct_per_question[question_type].items())
                        ),
                    }
                )
        return rows

    def worst_template(self) -> tuple[str, float]:
        """The descriptive template whose answers are most lopsided (with >= 20 questions)."""
        rates = {
            t: self.majority_rate(c)
            for t, c in self.descriptive_templates.items()
            if sum(c.values()) >= 20
        }
        if not rates:
            return "", 0.0
        template = max(rates, key=rates.get)
        return template, round(rates[template], 3)


_WORD_CLASS = (
    {c: "<color>" for c in COLORS}
    | {m: "<material>" for m in MATERIALS}
    | {s: "<shape>" for s in SHAPES}
    | {s + "s": "<shapes>" for s in SHAPES}
    | {s + "'s": "<shape>'s" for s in SHAPES}
    | {s + ",": "<shape>," for s in SHAPES}
)


def text_signature(text: str) -> str:
    """A question or option with its attribute words replaced by their class: what a model
    that reads only the text can tell templates apart by."""
    return " ".join(_WORD_CLASS.get(w, w) for w in text.lower().rstrip("?").split())


def text_only_baseline(train: list[dict], evaluation: list[dict]) -> dict[str, float]:
    """Accuracy of answering from the text alone: the majority answer of each question
    signature (descriptive) or (question, option) signature pair (multiple choice) on `train`,
    falling back to the majority of the subtype / type; measured per option for multiple choice.
    Both arguments are lists of question records (official keys)."""
    by_key: dict[tuple, Counter] = defaultdict(Counter)
    by_type: dict[str, Counter] = defaultdict(Counter)
    for question in train:
        signature = text_signature(question["question"])
        if question["question_type"] == "descriptive":
            by_key[(signature,)][question["answer"]] += 1
            by_type[question["question_subtype"]][question["answer"]] += 1
        else:
            for choice in question["choices"]:
                by_key[signature, text_signature(choice["choice"])][choice["answer"]] += 1
                by_type[question["question_type"]][choice["answer"]] += 1

    def guess(key: tuple, kind: str) -> str | None:
        counts = by_key.get(key) or by_type.get(kind)
        return max(sorted(counts), key=counts.get) if counts else None

    right: Counter = Counter()
    total: Counter = Counter()
    for question in evaluation:
        signature = text_signature(question["question"])
        if question["question_type"] == "descriptive":
            kind = f"descriptive/{question['question_subtype']}"
            total[kind] += 1
            right[kind] += guess((signature,), question["question_subtype"]) == question["answer"]
        else:
            kind = question["question_type"]
            for choice in question["choices"]:
                total[kind] += 1
                key = (signature, text_signature(choice["choice"]))
                right[kind] += guess(key, kind) == choice["answer"]
    return {kind: round(right[kind] / total[kind], 3) for kind in sorted(total)}
