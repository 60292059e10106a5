"""The reasoner: shapes from its config, invariances of the sequences, bad input, round trip."""

import numpy as np
import pytest
import torch

from downstream.reasoner import ReasonerConfig, ReasonerModel
from tasks.collate import QuestionCollator

VOCABULARY, SLOT_DIM, SLOTS, FRAMES = 30, 6, 4, 3


TOKENS = {"frame": dict(slot_tokens="frame"), "track": dict(slot_tokens="track"),
          "track+pairs": dict(slot_tokens="track", pair_tokens=True)}


def tiny_config(**fields) -> ReasonerConfig:
    values = dict(vocabulary_size=VOCABULARY, slot_dim=SLOT_DIM, max_slots=SLOTS,
                  max_frames=FRAMES, max_text_length=16, hidden_size=16, num_layers=2,
                  num_heads=2, intermediate_size=32, dropout=0.0)
    values.update(fields)
    return ReasonerConfig(**values)


def rows():
    """Question 0 descriptive, 1 explanatory with 2 choices, 2 counterfactual with 3."""
    generator = torch.Generator().manual_seed(0)

    def words(length):
        return torch.randint(3, VOCABULARY, (length,), generator=generator).tolist()

    def item(question_id, length, choices):
        return {"video_index": question_id, "question_id": question_id,
                "question_type": "descriptive" if not choices else "explanatory",
                "question_tokens": words(length), "answer_label": 1 if not choices else -1,
                "choice_ids": list(range(len(choices))),
                "choice_tokens": [words(k) for k in choices], "choice_labels": [0] * len(choices),
                "slots": torch.randn(FRAMES, SLOTS, SLOT_DIM, generator=generator).numpy()}

    return [item(0, 5, []), item(1, 3, [2, 4]), item(2, 6, [1, 1, 3])]


def inputs(batch, with_slots=True):
    return dict(
        question_tokens=batch.question_tokens,
        question_attention_mask=batch.question_attention_mask,
        choice_tokens=batch.choice_tokens, choice_attention_mask=batch.choice_attention_mask,
        choice_segment_ids=batch.choice_segment_ids, choice_to_question=batch.choice_to_question,
        slots=batch.slots if with_slots else None,
    )


def model(**fields) -> ReasonerModel:
    torch.manual_seed(0)
    return ReasonerModel(tiny_config(**fields)).eval()


def test_output_shapes():
    batch = QuestionCollator()(rows())
    output = model()(**inputs(batch))
    assert output.descriptive_logits.shape == (3, 21)
    assert output.choice_logits.shape == (2 + 3,)
    question_only = model(use_slots=False)(**inputs(batch, with_slots=False))
    assert question_only.descriptive_logits.shape == (3, 21)
    assert question_only.choice_logits.shape == (5,)
    descriptive_only = QuestionCollator()(rows()[:1])
    assert model()(**inputs(descriptive_only)).choice_logits.shape == (0,)


@pytest.mark.parametrize("tokens", TOKENS)
def test_a_sequence_sees_only_its_own_question_slots_and_words(tokens):
    """Reordering or dropping the other questions, and extra padding, change no logit."""
    reasoner = model(**TOKENS[tokens])
    items = rows()
    whole = reasoner(**inputs(QuestionCollator()(items)))
    alone = reasoner(**inputs(QuestionCollator()(items[1:2])))
    torch.testing.assert_close(alone.choice_logits, whole.choice_logits[:2])
    torch.testing.assert_close(alone.descriptive_logits, whole.descriptive_logits[1:2])
    reversed_batch = reasoner(**inputs(QuestionCollator()(items[::-1])))
    torch.testing.assert_close(reversed_batch.descriptive_logits,
                               whole.descriptive_logits.flip(0))
    other_slots = [dict(item) for item in items]
    other_slots[0]["slots"] = other_slots[0]["slots"] + 1.0
    changed = reasoner(**inputs(QuestionCollator()(other_slots)))
    torch.testing.assert_close(changed.choice_logits, whole.choice_logits)
    assert not torch.allclose(changed.descriptive_logits[0], whole.descriptive_logits[0])


def test_bad_input_is_named():
    batch = QuestionCollator()(rows())
    with pytest.raises(ValueError, match="use_slots=False, but slots were given"):
        model(use_slots=False)(**inputs(batch))
    with pytest.raises(ValueError, match="use_slots=True, but slots were not given"):
        model()(**inputs(batch, with_slots=False))
    with pytest.raises(ValueError, match=r"slots of shape \[3, 3, 4, 6\].*t <= 2"):
        model(max_frames=2)(**inputs(batch))
    with pytest.raises(ValueError, match="word id .* outside the reasoner's vocabulary of 10"):
        model(vocabulary_size=10)(**inputs(batch))
    with pytest.raises(ValueError, match="hidden_size 16 is not divisible by num_heads 3"):
        tiny_config(num_heads=3)
    with pytest.raises(ValueError, match="slot_tokens must be one of"):
        tiny_config(slot_tokens="object")
    with pytest.raises(ValueError, match="predicts_masked_slots .* needs slot_tokens='frame'"):
        tiny_config(slot_tokens="track", predicts_masked_slots=True)
    with pytest.raises(ValueError, match="pair_tokens .* needs slot_tokens='track'"):
        tiny_config(pair_tokens=True)


def test_a_track_token_holds_a_slot_over_time():
    """A slot's frames make one token: their order matters, a shorter clip reads as the same
    clip padded with zero frames, and the sequence is n slot tokens long, not t n."""
    reasoner = model(slot_tokens="track", max_frames=FRAMES + 2)
    items = rows()
    whole = reasoner(**inputs(QuestionCollator()(items)))
    padded = [dict(item, slots=np.concatenate([item["slots"], np.zeros_like(item["slots"][:2])]))
              for item in items]
    torch.testing.assert_close(reasoner(**inputs(QuestionCollator()(padded))).choice_logits,
                               whole.choice_logits)
    reversed_time = [dict(item, slots=item["slots"][::-1].copy()) for item in items]
    changed = reasoner(**inputs(QuestionCollator()(reversed_time)))
    assert not torch.allclose(changed.descriptive_logits, whole.descriptive_logits)
    tokens = reasoner.slots(QuestionCollator()(items).slots, torch.zeros(16))
    assert tokens.shape == (3, SLOTS, 16)


def test_a_pair_token_reads_its_two_slots_alone_in_either_order():
    """n (n-1) / 2 pair tokens follow the n track tokens; the token of slots (0, 1) is the same
    with the two slots swapped, and does not change with slot 3."""
    reasoner = model(slot_tokens="track", pair_tokens=True)
    slots = QuestionCollator()(rows()).slots
    tokens = reasoner.slots(slots, torch.zeros(16))
    assert tokens.shape == (3, SLOTS + SLOTS * (SLOTS - 1) // 2, 16)
    swapped = reasoner.slots(slots[:, :, [1, 0, 2, 3]], torch.zeros(16))
    torch.testing.assert_close(swapped[:, SLOTS], tokens[:, SLOTS])  # the pair (0, 1)
    assert not torch.allclose(swapped[:, SLOTS + 1], tokens[:, SLOTS + 1])  # (0, 2): now (1, 2)
    moved = slots.clone()
    moved[:, :, 3] += 1.0
    changed = reasoner.slots(moved, torch.zeros(16))
    torch.testing.assert_close(changed[:, SLOTS:SLOTS + 2], tokens[:, SLOTS:SLOTS + 2])
    assert not torch.allclose(changed[:, SLOTS + 2], tokens[:, SLOTS + 2])  # (0, 3)


def test_save_and_load(tmp_path):
    reasoner = model()
    reasoner.save_pretrained(tmp_path / "reasoner")
    loaded = ReasonerModel.from_pretrained(tmp_path / "reasoner").eval()
    assert loaded.config.slot_dim == SLOT_DIM
    batch = QuestionCollator()(rows())
    torch.testing.assert_close(loaded(**inputs(batch)).choice_logits,
                               reasoner(**inputs(batch)).choice_logits)


@pytest.mark.parametrize("tokens", TOKENS)
def test_an_absent_slot_changes_nothing(tokens):
    """A slot marked absent (padding, a rollout's removed slot) is attended by no token, nor
    are the pair tokens it is part of."""
    reasoner = model(**TOKENS[tokens])
    items = rows()
    present = torch.tensor([True, False, True, True])
    for item in items:
        item["present_slots"] = present.numpy()
    batch = QuestionCollator()(items)
    assert batch.present_slots.shape == (3, 4)
    masked = reasoner(**inputs(batch), present_slots=batch.present_slots)
    for item in items:
        item["slots"] = item["slots"].copy()
        item["slots"][:, 1] = 100.0  # the absent slot, in every frame
    changed = reasoner(**inputs(QuestionCollator()(items)), present_slots=batch.present_slots)
    torch.testing.assert_close(changed.descriptive_logits, masked.descriptive_logits)
    torch.testing.assert_close(changed.choice_logits, masked.choice_logits)
    every = reasoner(**inputs(QuestionCollator()(items)))
    assert not torch.allclose(every.descriptive_logits, masked.descriptive_logits)
