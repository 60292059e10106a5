"""How the reasoner learns and is judged: its loss, its metrics and its answers; a `HeadTask`
for the shared loop (`downstream/head_training.py`).

Loss of a micro-batch of b questions:

    ( sum over descriptive questions of the answer's cross-entropy
    + sum over multiple-choice questions of the mean binary cross-entropy of their choices ) / b

Every question weighs the same, whatever its type and number of choices. The loss is a sum over
questions divided by b, which the configuration fixes (every micro-batch holds b = batch_size /
(processes x accumulation) questions), so the gradient of a step is the same however its global
batch is split over processes and accumulation steps.

With `loss.masked_slot_weight` > 0 (an Aloe-style self-supervised objective), each present slot
token of a training batch is masked with probability `masked_slot_probability`, and the weight
times the masked-slot loss is added: for each masked slot, the cross-entropy of picking it out of
all the present slots of its video, every frame, by the cosine of the reasoner's prediction
(`ReasonerOutput.slot_predictions`) with each, over `masked_slot_temperature`; a mean over the
micro-batch's masked slots. Negatives from the same slot at other frames make it a question of
when as much as which.

With `loss.grounding_weight` > 0 (needs rows with `named_slots`, `downstream/object_grounding.py`,
and a reasoner that `grounds_objects`), the weight times the grounding loss is added: for every
sequence (a question's own, or a question+choice) that names at least one object, the mean
binary cross-entropy of its `grounding_logits` against the named slots, over its video's present
slots; summed over such sequences and divided by b like the answers' loss. A question+choice
sequence names what both name, or with `grounding_choices_alone` what the choice names.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from einops import rearrange

from downstream.clevrer_metrics import ClevrerAccuracy
from downstream.reasoner import ReasonerModel, ReasonerOutput, present_slot_mask
from downstream.submission import Prediction
from tasks.collate import QuestionBatch
from tasks.questions import QUESTION_TYPES, AnswerVocabulary


@dataclass
class VqaLossConfig:
    """The training loss's optional self-supervised part (module docstring).

    masked_slot_weight: weight of the masked-slot loss (0: off).
    masked_slot_probability: chance that a present slot token is masked in training.
    masked_slot_temperature: the contrast's temperature over cosine similarities.
    grounding_weight: weight of the grounding loss (0: off).
    grounding_choices_alone: ground a question+choice sequence to the objects its choice
        names, not also those of its question.
    """

    masked_slot_weight: float = 0.0
    masked_slot_probability: float = 0.15
    masked_slot_temperature: float = 0.1
    grounding_weight: float = 0.0
    grounding_choices_alone: bool = False

    def __post_init__(self):
        if self.masked_slot_weight < 0:
            raise ValueError(f"loss.masked_slot_weight must be >= 0, got "
                             f"{self.masked_slot_weight}")
        if not 0 < self.masked_slot_probability < 1:
            raise ValueError(f"loss.masked_slot_probability must be in (0, 1), got "
                             f"{self.masked_slot_probability}")
        if self.grounding_weight < 0:
            raise ValueError(f"loss.grounding_weight must be >= 0, got {self.grounding_weight}")
        if self.grounding_choices_alone and not self.grounding_weight:
            raise ValueError("loss.grounding_choices_alone picks the grounding loss's targets: "
                             "it needs loss.grounding_weight > 0")
        if self.masked_slot_temperature <= 0:
            raise ValueError(f"loss.masked_slot_temperature must be > 0, got "
                             f"{self.masked_slot_temperature}")


def reasoner_output(model: ReasonerModel, batch: QuestionBatch,
                    masked_slots: torch.Tensor | None = None) -> ReasonerOutput:
    """The reasoner on a collated batch; `masked_slots` `[b,t,n]` as `ReasonerModel.forward`."""
    return model(
        question_tokens=batch.question_tokens,
        question_attention_mask=batch.question_attention_mask,
        choice_tokens=batch.choice_tokens,
        choice_attention_mask=batch.choice_attention_mask,
        choice_segment_ids=batch.choice_segment_ids,
        choice_to_question=batch.choice_to_question,
        slots=batch.slots,
        present_slots=batch.present_slots,
        masked_slots=masked_slots,
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


def sample_masked_slots(present: torch.Tensor, num_frames: int,
                        probability: float) -> torch.Tensor:
    """`[b,t,n]` bool: each present slot token masked with `probability` (the global RNG).

    present: `[b,n]` bool, the slots that take part in each question's video.
    """
    draws = torch.rand(present.shape[0], num_frames, present.shape[1], device=present.device)
    return (draws < probability) & present[:, None]


def masked_slot_loss(predictions: torch.Tensor, slots: torch.Tensor, masked: torch.Tensor,
                     present: torch.Tensor, temperature: float) -> torch.Tensor:
    """The mean cross-entropy of finding each masked slot among its video's present slots.

    predictions, slots: `[b,t,n,d]` the reasoner's predictions and the true slots.
    masked: `[b,t,n]` bool, the slots to score; present: `[b,n]` bool, the candidates (every
    frame of a present slot). Zero when nothing is masked.
    """
    num_frames = slots.shape[1]
    predicted = F.normalize(rearrange(predictions.float(), "b t n d -> b (t n) d"), dim=-1)
    truth = F.normalize(rearrange(slots.float(), "b t n d -> b (t n) d"), dim=-1)
    logits = torch.einsum("bid,bjd->bij", predicted, truth) / temperature  # [b,(t n),(t n)]
    candidates = rearrange(present[:, None].expand(-1, num_frames, -1), "b t n -> b 1 (t n)")
    logits = logits.masked_fill(~candidates, torch.finfo(logits.dtype).min)
    targets = torch.arange(logits.shape[1], device=logits.device).expand(len(logits), -1)
    rows = rearrange(masked, "b t n -> b (t n)")
    if not rows.any():
        return logits.new_zeros(())
    return F.cross_entropy(logits[rows], targets[rows])


def grounding_loss(logits: torch.Tensor, named: torch.Tensor, present: torch.Tensor,
                   num_questions: int) -> torch.Tensor:
    """The grounding loss (module docstring).

    logits, named, present: `[s,n]` the sequences' grounding logits, the slots they name, and the
    slots of their videos that take part. num_questions: b, the divisor.
    """
    named, present = named.bool(), present.bool()
    rows = (named & present).any(-1)
    costs = F.binary_cross_entropy_with_logits(logits.float(), named.float(), reduction="none")
    per_sequence = (costs * present).sum(-1) / present.sum(-1).clamp(min=1)
    return per_sequence[rows].sum() / num_questions


class VqaTask:
    """The reasoner's `HeadTask`: evaluation wants `evaluation_sharding="disjoint"` (its metric
    states sum over processes)."""

    def __init__(self, loss: VqaLossConfig | None = None):
        self.loss = loss or VqaLossConfig()

    def training_loss(self, model: ReasonerModel, batch: QuestionBatch) -> dict:
        masking = bool(self.loss.masked_slot_weight) and batch.slots is not None
        if not masking and not self.loss.grounding_weight:
            return vqa_losses(reasoner_output(model, batch), batch)
        if self.loss.grounding_weight and (batch.named_slots is None or batch.slots is None):
            raise ValueError("loss.grounding_weight needs rows with slots and named_slots "
                             "(a SlotGrounding)")
        present = present_slot_mask(batch.slots, batch.present_slots)
        masked = None
        if masking:
            masked = sample_masked_slots(present, batch.slots.shape[1],
                                         self.loss.masked_slot_probability)
        output = reasoner_output(model, batch, masked)
        losses = vqa_losses(output, batch)
        if masking:
            masked_loss = masked_slot_loss(output.slot_predictions, batch.slots, masked, present,
                                           self.loss.masked_slot_temperature)
            losses["loss"] = losses["loss"] + self.loss.masked_slot_weight * masked_loss
            losses["masked_slot_loss"] = masked_loss.detach()
        if self.loss.grounding_weight:
            if output.grounding_logits is None:
                raise ValueError("loss.grounding_weight needs a reasoner that grounds_objects")
            sequences_present = torch.cat([present, present[batch.choice_to_question]])
            grounding = grounding_loss(output.grounding_logits, batch.named_slots,
                                       sequences_present, len(batch.question_id))
            losses["loss"] = losses["loss"] + self.loss.grounding_weight * grounding
            losses["grounding_loss"] = grounding.detach()
        return losses

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
