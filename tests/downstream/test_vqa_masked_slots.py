"""The Aloe-style masked-slot objective: the loss on hand-made predictions, the masked tokens,
the head, and a run that trains with it."""

import pytest
import torch

from downstream.reasoner import ReasonerModel
from downstream.vqa import VqaConfig, load_vqa_data, reasoner_config, run_vqa
from downstream.vqa_task import (
    VqaLossConfig,
    VqaTask,
    masked_slot_loss,
    sample_masked_slots,
)
from ocl.config_loading import load_config
from tasks.collate import QuestionCollator
from tests.downstream.test_vqa_reasoner import inputs, model, rows
from tests.downstream.test_vqa_training import tiny_config


def one_hot_slots(frames: int, slots: int) -> torch.Tensor:
    """`[1,t,n,t*n]`: every slot token of the video its own direction."""
    return torch.eye(frames * slots).reshape(1, frames, slots, frames * slots)


def test_the_loss_finds_each_masked_slot_among_its_videos_slots():
    truth = one_hot_slots(2, 3)
    present = torch.ones(1, 3, dtype=torch.bool)
    masked = torch.zeros(1, 2, 3, dtype=torch.bool)
    masked[0, 1, 2] = True
    right = masked_slot_loss(truth, truth, masked, present, temperature=0.1)
    # a cosine of 1 against 0 for the 5 others, at temperature 0.1
    expected = torch.log1p(5 * torch.exp(torch.tensor(-10.0))).item()
    assert right.item() == pytest.approx(expected, rel=1e-3)
    same_slot_other_frame = truth.clone()
    same_slot_other_frame[0, 1, 2] = truth[0, 0, 2]
    wrong = masked_slot_loss(same_slot_other_frame, truth, masked, present, temperature=0.1)
    assert wrong.item() == pytest.approx(10.0, abs=1e-3)
    nothing = masked_slot_loss(truth, truth, torch.zeros_like(masked), present, 0.1)
    assert nothing.item() == 0.0


def test_absent_slots_are_no_candidates():
    truth = one_hot_slots(2, 3)
    masked = torch.zeros(1, 2, 3, dtype=torch.bool)
    masked[0, 0, 0] = True
    guess = truth.clone()
    guess[0, 0, 0] = truth[0, 0, 1] + truth[0, 0, 0]  # half towards slot 1
    both = masked_slot_loss(guess, truth, masked, torch.ones(1, 3, dtype=torch.bool), 0.1)
    without_slot_1 = masked_slot_loss(guess, truth, masked,
                                      torch.tensor([[True, False, True]]), 0.1)
    assert without_slot_1 < both
    assert both.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=5e-3)


def test_only_present_slots_are_masked_at_the_given_rate():
    torch.manual_seed(0)
    present = torch.tensor([[True, False, True, True]]).expand(500, -1)
    masked = sample_masked_slots(present, num_frames=4, probability=0.25)
    assert masked.shape == (500, 4, 4)
    assert not masked[:, :, 1].any()
    assert masked[:, :, [0, 2, 3]].float().mean().item() == pytest.approx(0.25, abs=0.02)


def test_a_masked_token_hides_its_slot_and_the_head_predicts_every_position():
    reasoner = model(predicts_masked_slots=True)
    items = rows()
    batch = QuestionCollator()(items)
    masked = torch.zeros(3, 3, 4, dtype=torch.bool)
    masked[:, 1, 2] = True
    output = reasoner(**inputs(batch), masked_slots=masked)
    assert output.slot_predictions.shape == (3, 3, 4, 6)
    for item in items:
        item["slots"] = item["slots"].copy()
        item["slots"][1, 2] = 50.0  # only the masked token's slot
    hidden = reasoner(**inputs(QuestionCollator()(items)), masked_slots=masked)
    torch.testing.assert_close(hidden.descriptive_logits, output.descriptive_logits)
    torch.testing.assert_close(hidden.slot_predictions, output.slot_predictions)
    shown = reasoner(**inputs(QuestionCollator()(items)))
    assert not torch.allclose(shown.descriptive_logits, output.descriptive_logits)
    assert model()(**inputs(batch)).slot_predictions is None
    with pytest.raises(ValueError, match="predicts_masked_slots"):
        model()(**inputs(batch), masked_slots=masked)
    with pytest.raises(ValueError, match="use_slots"):
        model(use_slots=False, predicts_masked_slots=True)


def test_bad_settings_are_named(vqa_files, tmp_path):
    with pytest.raises(ValueError, match="masked_slot_probability"):
        VqaLossConfig(masked_slot_weight=1.0, masked_slot_probability=1.0)
    with pytest.raises(ValueError, match="question-only"):
        tiny_config(vqa_files, tmp_path, "data.inputs=none", "loss.masked_slot_weight=0.5")
    with pytest.raises(ValueError, match="needs model.slot_tokens=frame, not 'track'"):
        tiny_config(vqa_files, tmp_path, "model.slot_tokens=track", "loss.masked_slot_weight=0.5")


def test_a_run_with_the_masked_slot_loss_learns_to_find_the_masked_slots(vqa_files, tmp_path):
    config = tiny_config(vqa_files, tmp_path / "run", "training.max_steps=40",
                         "training.learning_rate=0.005", "loss.masked_slot_weight=1.0",
                         "loss.masked_slot_probability=0.3")
    data = load_vqa_data(config.data, 0, torch.device("cpu"))
    batch = QuestionCollator()([data.train[i] for i in range(len(data.train))])
    task = VqaTask(config.loss)

    def masked_loss(reasoner: ReasonerModel) -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return task.training_loss(reasoner.eval(), batch)["masked_slot_loss"].item()

    torch.manual_seed(0)
    untrained = ReasonerModel(reasoner_config(config, data))
    assert untrained.config.predicts_masked_slots
    run_vqa(config)
    trained = ReasonerModel.from_pretrained(tmp_path / "run" / "model")
    assert trained.config.predicts_masked_slots
    assert masked_loss(trained) < 0.7 * masked_loss(untrained)
    assert load_config(VqaConfig, tmp_path / "run" / "config.yaml").loss == config.loss
