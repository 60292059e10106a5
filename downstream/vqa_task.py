"""How the reasoner learns and is judged: its loss, its metrics and its answers; a `HeadTask`
for the shared loop (`downstream/head_training.py`).

Loss of a micro-batch of b questions:

    ( sum over descriptive questions of the answer's cross-entropy
    + sum over multiple-choice questions of the mean binary cross-entropy of their choices ) / b

Every question weighs the same, whatever its type and number of choices. The loss is a sum over
questions divided by b, which the configuration fixes (every micro-batch holds b = batch_size /
(processes x accumulation) questions), so the gradient of a step is the same however its global
batch is split over processes and accumulation steps.
"""

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from downstream.clevrer_metrics import ClevrerAccuracy
from downstream.reasoner import ReasonerModel, ReasonerOutput
from downstream.submission import Prediction
from tasks.collate import QuestionBatch
from tasks.questions import QUESTION_TYPES, AnswerVocabulary


def reasoner_output(model: ReasonerModel, batch: QuestionBatch) -> ReasonerOutput:
    """The reasoner on a collated batch."""
    return model(
        question_tokens=batch.question_tokens,
        question_attention_mask=batch.question_attention_mask,
        choice_tokens=batch.choice_tokens,
        choice_attention_mask=batch.choice_attention_mask,
        choice_segment_ids=batch.choice_segment_ids,
        choice_to_question=batch.choice_to_question,
        slots=batch.slots,
        present_slots=batch.present_slots,
    )


def vqa_losses(output: ReasonerOutput, batch: QuestionBatch) -> dict[str, torch.Tensor]:
    """"loss" (module docstring) and its two parts, "descriptive_loss" and "choice_loss".
    Unlabelled questions and choices (label -1) add nothing."""
    num_questions = len(batch.question_id)
    descriptive = F.cross_entropy(output.descriptive_logits.float(), batch.answer_labels,
                                  ignore_index=-1, reduction="sum") / num_questions
    choices_per_question = torch.bincount(batch.choice_to_question, minlength=num_questions)
    weights = (batch.choice_labels >= 0) / choices_per_question[batch.choice_to_question]
    choice = F.binary_cross_entropy_with_logits(
        output.choice_logits.float(), batch.choice_labels.clamp(min=0).float(), weight=weights,
        reduction="sum",
    ) / num_questions
    return {"loss": descriptive + choice, "descriptive_loss": descriptive.detach(),
            "choice_loss": choice.detach()}


class VqaTask:
    """The reasoner's `HeadTask`: evaluation wants `evaluation_sharding="disjoint"` (its metric
    states sum over processes)."""

    def training_loss(self, model: ReasonerModel, batch: QuestionBatch) -> dict:
        return vqa_losses(reasoner_output(model, batch), batch)

    def evaluate(self, model: ReasonerModel, batches: Iterable[QuestionBatch],
                 accelerator: Accelerator) -> dict[str, float]:
        metric = ClevrerAccuracy().to(accelerator.device)
        for batch in batches:
            output = reasoner_output(model, batch)
            metric.update(output.descriptive_logits, output.choice_logits, batch)
        return metric.compute()


def predict_answers(model: ReasonerModel,
                    batches: Iterable[QuestionBatch]) -> dict[tuple[int, int], Prediction]:
    """{(video_index, question_id): the descriptive answer, or {choice_id: correct}}."""
    answers = AnswerVocabulary()
    predictions: dict[tuple[int, int], Prediction] = {}
    with torch.no_grad():
        for batch in batches:
            output = reasoner_output(model, batch)
            chosen = output.descriptive_logits.argmax(-1).tolist()
            correct = (output.choice_logits > 0).tolist()
            keys = list(zip(batch.video_index.tolist(), batch.question_id.tolist(), strict=True))
            for key, kind, answer in zip(keys, batch.question_type.tolist(), chosen, strict=True):
                predictions[key] = (answers.decode(answer) if QUESTION_TYPES[kind] ==
                                    "descriptive" else {})
            for question, choice_id, is_correct in zip(batch.choice_to_question.tolist(),
                                                       batch.choice_ids.tolist(), correct,
                                                       strict=True):
                predictions[keys[question]][choice_id] = is_correct
    return predictions
