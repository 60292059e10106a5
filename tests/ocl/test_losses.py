"""SmoothSA's loss terms against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from ocl.losses import LossWeights, slot_contrast_head, slot_contrast_loss, smoothsa_losses
from ocl.modeling import SmoothSAOutput


def output_with(slots, initial_queries=None, reconstruction=None, target=None):
    reconstruction = torch.zeros(2, 3) if reconstruction is None else reconstruction
    target = torch.zeros(2, 3) if target is None else target
    return SmoothSAOutput(slots, initial_queries, None, None, None, reconstruction, target)


def test_slot_contrast_is_low_for_stable_distinct_slots_and_high_for_shuffled():
    slots = torch.eye(4)[None, None].expand(1, 3, 4, 4) * 1.0  # orthogonal, constant in time
    stable = slot_contrast_loss(slots, temperature=0.1)
    # Each next-frame slot has cosine 1 with itself and 0 with the 3 others.
    expected = -math.log(math.exp(10) / (math.exp(10) + 3))
    assert stable.item() == pytest.approx(expected, rel=1e-3)
    shuffled = slots.clone()
    shuffled[:, 1] = shuffled[:, 1, [1, 0, 3, 2]]
    assert slot_contrast_loss(shuffled).item() > 5


def test_slot_contrast_against_a_loop_over_frame_pairs_and_slots():
    generator = torch.Generator().manual_seed(0)
    slots = torch.randn(2, 4, 3, 5, generator=generator)
    flat = F.normalize(slots, dim=-1)
    terms = []
    for t in range(3):
        previous = flat[:, t].reshape(-1, 5)  # (b n) order does not matter for the mean
        following = flat[:, t + 1].reshape(-1, 5)
        for j in range(previous.shape[0]):
            logits = previous @ following[j] / 0.1
            terms.append(-torch.log_softmax(logits, 0)[j])
    torch.testing.assert_close(slot_contrast_loss(slots, 0.1), torch.stack(terms).mean())


def test_slot_contrast_compares_the_slots_through_the_head():
    slots = torch.eye(8).reshape(2, 1, 4, 8).expand(2, 3, 4, 8)  # 8 distinct slots
    weights = LossWeights(slot_contrast=1.0)
    direct = smoothsa_losses(output_with(slots), weights).slot_contrast
    head = slot_contrast_head(8)
    with torch.no_grad():  # a head that maps every slot to one vector: nothing to tell apart
        head[-1].weight.zero_()
        head[-1].bias.fill_(1.0)
    through_head = smoothsa_losses(output_with(slots), weights, head).slot_contrast
    assert through_head.item() == pytest.approx(math.log(2 * 4))  # uniform over b*n slots
    assert direct.item() == pytest.approx(-math.log(math.exp(10) / (math.exp(10) + 7)), rel=1e-3)


def test_smoothsa_losses_weights_and_terms():
    slots = torch.randn(2, 3, 4, 8)
    queries = slots[:, 0] + 0.5
    output = output_with(slots, queries, torch.ones(2, 3), torch.zeros(2, 3))
    losses = smoothsa_losses(output, LossWeights())
    assert losses.reconstruction.item() == pytest.approx(1.0)
    assert losses.preheat.item() == pytest.approx(100 * 0.25)
    assert losses.slot_contrast.item() == pytest.approx(
        0.5 * slot_contrast_loss(slots, 0.1).item()
    )
    assert losses.total.item() == pytest.approx(
        losses.reconstruction.item() + losses.preheat.item() + losses.slot_contrast.item()
    )


def test_image_losses_have_no_slot_contrast_and_preheat_uses_the_slots():
    slots = torch.randn(2, 4, 8)
    losses = smoothsa_losses(output_with(slots, slots + 1), LossWeights(preheat=2.0))
    assert losses.slot_contrast.item() == 0
    assert losses.preheat.item() == pytest.approx(2.0)
    assert smoothsa_losses(output_with(slots), LossWeights()).preheat.item() == 0


def test_preheat_loss_does_not_move_the_slots():
    slots = torch.randn(2, 4, 8, requires_grad=True)
    queries = torch.randn(2, 4, 8, requires_grad=True)
    smoothsa_losses(output_with(slots, queries), LossWeights()).preheat.backward()
    assert slots.grad is None and queries.grad.abs().sum() > 0


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="temperature"):
        LossWeights(slot_contrast_temperature=0)


def test_mask_prediction_is_the_cross_entropy_against_the_composition_masks():
    slots = torch.randn(1, 2, 3, 4)
    masks = torch.tensor([0.5, 0.25, 0.25]).reshape(1, 1, 3, 1, 1).expand(1, 2, 3, 2, 2)
    logits = torch.zeros(1, 2, 3, 2, 2, requires_grad=True)  # uniform prediction
    output = output_with(slots)
    output.decoder_attention, output.decoder_mask_logits = masks, logits
    losses = smoothsa_losses(output, LossWeights(slot_contrast=0, mask_prediction=0.5))
    assert losses.mask_prediction.item() == pytest.approx(0.5 * math.log(3))
    assert losses.total.item() == pytest.approx(losses.reconstruction.item() + 0.5 * math.log(3))
    losses.total.backward()
    # The gradient moves the prediction towards the masks: up where the mask is largest.
    assert logits.grad[0, 0, 0, 0, 0] < 0 < logits.grad[0, 0, 1, 0, 0]
    assert smoothsa_losses(output_with(slots), LossWeights()).mask_prediction.item() == 0


def test_mask_entropy_is_the_mean_entropy_over_slots_and_sharpens_shared_pixels():
    slots = torch.randn(1, 2, 3, 4)
    logits = torch.zeros(1, 2, 3, 2, 2)
    logits[..., 1] = torch.tensor([20.0, 0.0, 0.0]).reshape(3, 1)  # right column: slot 0 alone
    logits.requires_grad_(True)
    output = output_with(slots)
    output.decoder_attention = logits.softmax(dim=-3)
    losses = smoothsa_losses(output, LossWeights(slot_contrast=0, mask_entropy=0.1))
    # Half the pixels shared by three slots (log 3 nats), half held by one (~0).
    assert losses.mask_entropy.item() == pytest.approx(0.1 * math.log(3) / 2, rel=1e-4)
    losses.total.backward()
    # An exact tie is a stationary point, and a pixel one slot holds is left alone; where a
    # slot leads, the gradient raises it and lowers the last.
    assert torch.allclose(logits.grad[0, 0, :, 0, 0], torch.zeros(3), atol=1e-7)
    assert logits.grad[0, 0, :, 0, 1].abs().max() < 1e-6
    leading = torch.tensor([0.5, 0.3, 0.2]).log().requires_grad_(True)
    output.decoder_attention = leading.softmax(0).reshape(1, 1, 3, 1, 1)
    smoothsa_losses(output, LossWeights(slot_contrast=0, mask_entropy=1)).total.backward()
    assert leading.grad[0] < 0 < leading.grad[2]
    assert smoothsa_losses(output_with(slots), LossWeights()).mask_entropy.item() == 0
    with pytest.raises(ValueError, match="loss weights"):
        LossWeights(mask_entropy=-1)
