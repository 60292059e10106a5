"""Probe metrics on hand-made predictions, and probes on separable versus noise slots."""

import math

import pytest
import torch

from downstream.labelled_objects import AttributeSpec
from downstream.matched_slots import MatchedSlots
from downstream.probe_metrics import mean_box_iou, r_squared, top_k_accuracy
from downstream.probe_suite import run_probes
from downstream.probes import (
    AttributeProbe,
    ObjectProbe,
    ProbeTrainingConfig,
    Standardize,
    fit_probe,
    object_probe_loss,
)

SPECS = (
    AttributeSpec("class", "category", ("a", "b", "c", "d")),
    AttributeSpec("position", "continuous", ("x", "y")),
)
TRAINING = ProbeTrainingConfig(steps=200, batch_size=64, learning_rate=3e-3)


def test_top_k_accuracy_on_hand_made_logits():
    logits = torch.tensor([[3.0, 2, 1, 0], [0, 1, 2, 3], [0, 3, 2, 1]])
    target = torch.tensor([1, 1, 3])
    # ranks of the true class: 2nd, 3rd, 3rd
    assert top_k_accuracy(logits, target, 1) == 0.0
    assert top_k_accuracy(logits, target, 2) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, target, 3) == 1.0
    assert top_k_accuracy(logits[:, :2], torch.tensor([0, 1, 1]), 3) == 1.0  # k clipped to 2
    assert math.isnan(top_k_accuracy(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 1))


def test_mean_box_iou_converts_the_format():
    target = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])  # xywh
    predicted = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.75, 0.5, 0.5, 0.5]])  # half overlap
    assert mean_box_iou(predicted, target, "xywh") == pytest.approx((1 + 1 / 3) / 2)
    xyxy = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    assert mean_box_iou(xyxy, xyxy) == pytest.approx(1.0)


def test_r_squared_on_hand_made_values():
    target = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 4.0]])
    assert r_squared(target, target) == pytest.approx(1.0)
    assert r_squared(target.mean(0).expand(3, 2), target) == pytest.approx(0.0, abs=1e-6)
    predicted = torch.tensor([[1.0, 2.0], [2.0, 3.0], [3.0, 5.0]])
    # x: perfect; y: residuals 0,1,1 (2) over total 8/3 -> 1 - 3/4; mean of 1 and 1/4
    assert r_squared(predicted, target) == pytest.approx(0.625)


def test_object_probe_is_the_papers_mlp():
    torch.manual_seed(0)
    probe = ObjectProbe(Standardize.fit(torch.randn(10, 8)), num_classes=5)
    first, activation, dropout, last = probe.body
    assert (first.in_features, first.out_features, last.out_features) == (8, 16, 5 + 4)
    assert isinstance(activation, torch.nn.GELU) and dropout.p == 0.1
    output = probe(torch.randn(3, 8))
    assert output.class_logits.shape == (3, 5) and output.boxes.shape == (3, 4)
    classes, boxes = torch.tensor([0, 1, 2]), torch.rand(3, 4)
    expected = (torch.nn.functional.cross_entropy(output.class_logits, classes)
                + (output.boxes - boxes).abs().mean())
    assert object_probe_loss(output, classes, boxes).item() == pytest.approx(expected.item())
    linear = AttributeProbe(Standardize.fit(torch.randn(10, 8)), 3, "linear")
    assert isinstance(linear.body, torch.nn.Linear)


def synthetic(slots: torch.Tensor, classes: torch.Tensor, positions: torch.Tensor,
              boxes: torch.Tensor) -> MatchedSlots:
    m = len(slots)
    index = torch.arange(m)
    return MatchedSlots(
        slots=slots, boxes=boxes, iou=torch.ones(m), sample_id=index, frame_index=index * 0,
        slot_index=index * 0, object_index=index * 0,
        attributes={"class": classes, "position": positions}, attribute_specs=SPECS,
        num_objects=m,
    )


def separable(m: int, seed: int) -> MatchedSlots:
    """Slots = a class centre + small noise; position and box are linear in the slot."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 16, generator=torch.Generator().manual_seed(99)) * 3
    classes = torch.randint(0, 4, (m,), generator=generator)
    slots = centres[classes] + 0.3 * torch.randn(m, 16, generator=generator)
    positions = slots[:, :2] * 0.5 + 1.0
    corner = torch.sigmoid(slots[:, 2:4]) * 0.5
    boxes = torch.cat([corner, corner + 0.25 + 0.1 * torch.sigmoid(slots[:, 4:6])], dim=1)
    return synthetic(slots, classes, positions, boxes)


def noise(m: int, seed: int) -> MatchedSlots:
    """Labels and slots drawn independently."""
    data = separable(m, seed)
    data.slots = torch.randn(m, 16, generator=torch.Generator().manual_seed(seed + 1))
    return data


def test_probes_learn_separable_slots_and_stay_at_chance_on_noise():
    separable_metrics = run_probes(separable(400, 0), separable(200, 1), "class", None, TRAINING)
    assert separable_metrics["official/top1"] > 0.98
    assert separable_metrics["official/top3"] == 1.0
    assert separable_metrics["official/box_iou"] > 0.6
    assert separable_metrics["class/linear/accuracy"] > 0.98
    assert separable_metrics["class/mlp/accuracy"] > 0.98
    assert separable_metrics["position/linear/r2"] > 0.98
    assert separable_metrics["position/mlp/r2"] > 0.9
    assert separable_metrics["matched"] == 200 and separable_metrics["train_matched"] == 400

    noise_metrics = run_probes(noise(400, 0), noise(200, 1), "class", None, TRAINING)
    chance = noise_metrics["class/majority/accuracy"]
    assert chance < 0.4
    for name in ("official/top1", "class/linear/accuracy", "class/mlp/accuracy"):
        assert noise_metrics[name] < chance + 0.1, name
    assert noise_metrics["position/linear/r2"] < 0.1
    assert noise_metrics["position/mlp/r2"] < 0.1
    assert noise_metrics["official/box_iou"] < separable_metrics["official/box_iou"] - 0.2


def test_probes_are_deterministic_and_skip_unknown_labels():
    train, evaluation = separable(200, 0), separable(100, 1)
    train.attributes["class"][:50] = -1
    evaluation.attributes["position"][:10] = math.nan
    config = ProbeTrainingConfig(steps=20, batch_size=64)
    first = run_probes(train, evaluation, "class", ["position"], config)
    assert first == run_probes(train, evaluation, "class", ["position"], config)
    assert not any(math.isnan(value) for value in first.values())
    assert "class/linear/accuracy" not in first  # only the attributes asked for


def test_linear_probe_is_solved_to_the_ridge_optimum():
    generator = torch.Generator().manual_seed(0)
    slots = torch.randn(300, 8, generator=generator) * 3 + 1
    weights = torch.randn(8, 2, generator=generator)
    targets = slots @ weights + torch.randn(300, 2, generator=generator)
    config = ProbeTrainingConfig(linear_penalty=0.05)
    probe = AttributeProbe(Standardize.fit(slots), 2, "linear")
    fit_probe(probe, slots, (targets,), torch.nn.functional.mse_loss, config)
    # mean((XW + b - Y)^2) + penalty |W|^2 over standardised X: ridge with an unpenalised bias
    x = probe.standardize(slots)
    x, y = x - x.mean(0), targets - targets.mean(0)
    scale = 1 / y.numel()
    ridge = torch.linalg.solve(scale * x.T @ x + config.linear_penalty * torch.eye(8),
                               scale * x.T @ y)
    torch.testing.assert_close(probe.body.weight.detach().T, ridge, rtol=1e-3, atol=1e-4)
