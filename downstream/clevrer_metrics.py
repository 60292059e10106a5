"""CLEVRER's accuracies, as the official evaluation scripts define them, as torchmetrics Metrics.

- descriptive: accuracy, the predicted answer string equal to the true one (the argmax class of
  the 21 answers, which are distinct strings, so class equality is exact string match); also per
  subtype (count, exist, query_color, query_shape, query_material), where the batch has them;
- explanatory, predictive, counterfactual: per option, every choice counts once, right when its
  prediction ("correct" when its logit > 0) equals its label; per question, a question counts
  once, right only when all its choices are right (a question whose choices are all wrong is
  right when every choice is predicted wrong).

Axis legend: b questions, c choices. States are counts with `dist_reduce_fx="sum"`, so the
metrics of several processes, each updated on its own questions, sync to those of one process
that saw them all. Choices are grouped into questions with the collator's `choice_to_question`;
a batch must hold all the choices of each of its questions (the collator guarantees it).
"""

import math

import torch
from torch import nn
from torchmetrics import Metric

from tasks.collate import QuestionBatch
from tasks.questions import DESCRIPTIVE_SUBTYPES, MULTIPLE_CHOICE_TYPES, QUESTION_TYPES


class DescriptiveAccuracy(Metric):
    """Share of descriptive questions whose predicted answer is the true one."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        """predicted, labels: `[b]` answer indices of descriptive questions."""
        if predicted.shape != labels.shape:
            raise ValueError(f"predicted {list(predicted.shape)} and labels "
                             f"{list(labels.shape)} differ in shape")
        self.correct += (predicted == labels).sum()
        self.total += labels.numel()

    def compute(self) -> torch.Tensor:
        return self.correct / self.total if self.total else torch.tensor(math.nan)


class MultipleChoiceAccuracy(Metric):
    """Per-option and per-question accuracy of one multiple-choice question type."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("correct_options", "options", "correct_questions", "questions"):
            self.add_state(name, torch.tensor(0), dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, labels: torch.Tensor,
               choice_to_question: torch.Tensor) -> None:
        """predicted: `[c]` bool, the choice predicted correct; labels: `[c]` 1 correct,
        0 wrong; choice_to_question: `[c]` any id of each choice's question."""
        if not predicted.shape == labels.shape == choice_to_question.shape:
            raise ValueError(f"predicted {list(predicted.shape)}, labels {list(labels.shape)} "
                             f"and choice_to_question {list(choice_to_question.shape)} differ")
        right = predicted.bool() == labels.bool()
        self.correct_options += right.sum()
        self.options += right.numel()
        questions, position = torch.unique(choice_to_question, return_inverse=True)
        wrong = torch.zeros(len(questions), dtype=torch.long, device=right.device)
        wrong.index_add_(0, position, (~right).long())
        self.correct_questions += (wrong == 0).sum()
        self.questions += len(questions)

    def compute(self) -> dict[str, torch.Tensor]:
        nan = torch.tensor(math.nan)
        return {
            "per_option": self.correct_options / self.options if self.options else nan,
            "per_question": (self.correct_questions / self.questions if self.questions
                             else nan),
        }


class ClevrerAccuracy(nn.Module):
    """The metrics of all four question types, updated from a batch and the model's logits."""

    def __init__(self):
        super().__init__()
        self.descriptive = DescriptiveAccuracy()
        self.subtypes = nn.ModuleDict(
            {subtype: DescriptiveAccuracy() for subtype in DESCRIPTIVE_SUBTYPES}
        )
        self.multiple_choice = nn.ModuleDict(
            {kind: MultipleChoiceAccuracy() for kind in MULTIPLE_CHOICE_TYPES}
        )

    def update(self, descriptive_logits: torch.Tensor, choice_logits: torch.Tensor,
               batch: QuestionBatch) -> None:
        """descriptive_logits: `[b,a]`; choice_logits: `[c]`. Questions without labels (the
        test split) are left out."""
        descriptive = (batch.question_type == 0) & (batch.answer_labels >= 0)
        predicted = descriptive_logits.argmax(-1)
        self.descriptive.update(predicted[descriptive], batch.answer_labels[descriptive])
        if batch.question_subtype is not None:
            for index, subtype in enumerate(DESCRIPTIVE_SUBTYPES):
                chosen = descriptive & (batch.question_subtype == index)
                self.subtypes[subtype].update(predicted[chosen], batch.answer_labels[chosen])
        choice_types = batch.question_type[batch.choice_to_question]
        labelled = batch.choice_labels >= 0
        for index, kind in enumerate(QUESTION_TYPES):
            if kind in self.multiple_choice:
                chosen = labelled & (choice_types == index)
                self.multiple_choice[kind].update(choice_logits[chosen] > 0,
                                                  batch.choice_labels[chosen],
                                                  batch.choice_to_question[chosen])

    def compute(self) -> dict[str, float]:
        """`descriptive/accuracy`, `descriptive/{subtype}` and `{type}/per_option`,
        `{type}/per_question` for each multiple-choice type, as fractions; a type or subtype with
        no questions is left out."""
        # every process computes every metric (each compute syncs), then drops the empty ones
        metrics = {"descriptive/accuracy": self.descriptive.compute().item()}
        metrics.update({f"descriptive/{subtype}": metric.compute().item()
                        for subtype, metric in self.subtypes.items()})
        for kind, metric in self.multiple_choice.items():
            metrics.update({f"{kind}/{name}": value.item()
                            for name, value in metric.compute().items()})
        return {key: value for key, value in metrics.items() if not math.isnan(value)}


def format_accuracy_table(runs: dict[str, dict[str, float]]) -> str:
    """Runs side by side, accuracies in percent: one row per metric, one column per run (a
    descriptive subtype only when a run has it)."""
    names = list(runs)
    subtypes = [key for key in (f"descriptive/{subtype}" for subtype in DESCRIPTIVE_SUBTYPES)
                if any(key in metrics for metrics in runs.values())]
    keys = (["descriptive/accuracy"] + subtypes
            + [f"{kind}/{measure}" for kind in MULTIPLE_CHOICE_TYPES
               for measure in ("per_option", "per_question")])
    width = max(len(key) for key in keys) + 2
    columns = [max(len(name), 7) + 2 for name in names]
    lines = [f"{'accuracy (%)':<{width}}"
             + "".join(f"{name:>{column}}" for name, column in zip(names, columns, strict=True))]
    for key in keys:
        cells = []
        for name, column in zip(names, columns, strict=True):
            value = runs[name].get(key)
            cells.append(f"{'-' if value is None else f'{100 * value:.1f}':>{column}}")
        lines.append(f"{key:<{width}}" + "".join(cells))
    return "\n".join(lines)
