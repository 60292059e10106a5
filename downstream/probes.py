"""Probes: small heads trained on frozen matched slots, and the loop that trains them.

- `ObjectProbe`, the paper's recognition probe: an MLP D -> 2D -> (classes + 4) with GELU and
  dropout 0.1, trained with cross-entropy on the class and L1 on the 4 box numbers.
- `AttributeProbe`: a linear map D -> k, or the same MLP D -> 2D -> k, for one attribute.
Every probe first standardises its input with the training slots' mean and standard deviation
(`Standardize`, fixed buffers): an affine map the first layer could learn, kept so that encoders
whose slots differ in scale are compared on equal optimisation footing.

Training (`fit_probe`) runs on slots that sit in memory (thousands of matched slots) and is
seeded, so a run repeats exactly. A linear probe is a convex problem (logistic or least-squares
regression with a small L2 penalty) and is solved to convergence by full-batch L-BFGS; the MLP
probes train by minibatch AdamW for a fixed number of steps, whatever the number of slots (a
budget in epochs starves small sets: 100 epochs of 367 slots, 200 steps, left a linear colour
probe at 33% where the converged one reaches 75%). The shared
accelerate loop (`downstream/head_training.py`) is for heads over datasets; a probe is a few
thousand parameters on an in-memory tensor, and a table trains dozens of them.

Axes: m matched slots, d slot channels, c classes, k outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from downstream.boxes import BOX_FORMATS
from downstream.head_training import split_weight_decay
from ocl.learning_rate import warmup_cosine

PROBE_KINDS: tuple[str, ...] = ("linear", "mlp")


@dataclass(frozen=True)
class ProbeTrainingConfig:
    """How every probe is trained.

    steps: AdamW steps of an MLP probe (minibatches from reshuffled passes over the slots).
    batch_size: slots per AdamW step.
    learning_rate, weight_decay: AdamW (decay on matrices only); the rate follows a cosine
        from `learning_rate` down to 1% of it, with a 5% linear warm-up.
    linear_penalty: L2 penalty of a linear probe, `penalty * |W|^2` added to its mean loss.
    linear_iterations: most L-BFGS iterations of a linear probe.
    dropout: of the MLP probes (the paper: 0.1).
    box_loss_weight: weight of the L1 box loss beside the class cross-entropy (the paper: 1).
    box_format: the 4 box numbers the object probe predicts, normalised to the image:
        "xywh" (as the official code), "xyxy" or "cxcywh".
    seed: seeds each probe's initialisation, its dropout and the order of its minibatches.
    """

    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    linear_penalty: float = 1e-4
    linear_iterations: int = 500
    dropout: float = 0.1
    box_loss_weight: float = 1.0
    box_format: str = "xywh"
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.linear_iterations < 1:
            raise ValueError(f"steps, batch_size and linear_iterations must be >= 1: {self}")
        if (self.learning_rate <= 0 or self.weight_decay < 0 or self.linear_penalty < 0
                or not 0 <= self.dropout < 1):
            raise ValueError(f"need learning_rate > 0, weight_decay >= 0, linear_penalty >= 0, "
                             f"dropout in [0, 1): {self}")
        if self.box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {self.box_format!r}")


class Standardize(nn.Module):
    """`(x - mean) / std` per channel, with fixed statistics (buffers `[d]`)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone().clamp(min=1e-6))

    @classmethod
    def fit(cls, inputs: torch.Tensor) -> Standardize:
        """Statistics of `inputs` `[m,d]` (identity for fewer than 2 rows)."""
        if len(inputs) < 2:
            return cls(torch.zeros(inputs.shape[1]), torch.ones(inputs.shape[1]))
        return cls(inputs.mean(dim=0), inputs.std(dim=0))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (inputs - self.mean) / self.std


def mlp(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """The paper's probe body: Linear(D, 2D) -> GELU -> Dropout -> Linear(2D, out)."""
    return nn.Sequential(
        nn.Linear(in_dim, 2 * in_dim), nn.GELU(), nn.Dropout(dropout),
        nn.Linear(2 * in_dim, out_dim),
    )


@dataclass
class ObjectProbeOutput:
    """class_logits: `[m,c]`; boxes: `[m,4]` normalised, in the probe's box format."""

    class_logits: torch.Tensor
    boxes: torch.Tensor


class ObjectProbe(nn.Module):
    """The official recognition probe: class and box of a matched slot's object."""

    def __init__(self, standardize: Standardize, num_classes: int, dropout: float = 0.1):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.standardize = standardize
        self.body = mlp(standardize.mean.shape[0], num_classes + 4, dropout)

    def forward(self, slots: torch.Tensor) -> ObjectProbeOutput:
        """slots `[m,d]` -> class logits `[m,c]` and box numbers `[m,4]`."""
        output = self.body(self.standardize(slots))
        return ObjectProbeOutput(output[:, : self.num_classes], output[:, self.num_classes :])


def object_probe_loss(output: ObjectProbeOutput, classes: torch.Tensor, boxes: torch.Tensor,
                      box_loss_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy on classes `[m]` + weight x L1 on boxes `[m,4]` (mean over numbers)."""
    return (nn.functional.cross_entropy(output.class_logits, classes)
            + box_loss_weight * nn.functional.l1_loss(output.boxes, boxes))


class AttributeProbe(nn.Module):
    """One attribute from a slot: "linear" (D -> k) or "mlp" (D -> 2D -> k)."""

    def __init__(self, standardize: Standardize, num_outputs: int, kind: str,
                 dropout: float = 0.1):
        super().__init__()
        if kind not in PROBE_KINDS:
            raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")
        self.kind = kind
        self.standardize = standardize
        slot_dim = standardize.mean.shape[0]
        self.body = (nn.Linear(slot_dim, num_outputs) if kind == "linear"
                     else mlp(slot_dim, num_outputs, dropout))

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        """slots `[m,d]` -> `[m,k]` logits or values."""
        return self.body(self.standardize(slots))


def fit_probe(
    probe: nn.Module,
    inputs: torch.Tensor,
    targets: tuple[torch.Tensor, ...],
    loss: Callable[..., torch.Tensor],
    config: ProbeTrainingConfig,
) -> nn.Module:
    """Trains `probe` on `inputs` `[m,d]` to minimise `loss(probe(x), *targets)` and returns it
    in eval mode: a linear `AttributeProbe` by L-BFGS to convergence, any other by AdamW."""
    if len(inputs) == 0:
        raise ValueError("no examples to train the probe on")
    if any(len(target) != len(inputs) for target in targets):
        raise ValueError(f"targets must have {len(inputs)} rows like the inputs, got "
                         f"{[len(target) for target in targets]}")
    threads = torch.get_num_threads()
    if inputs.device.type == "cpu":
        # a probe's matrices are tiny: one thread is far faster than several (on a loaded
        # 2-core machine, 210 steps took 0.4 s on one thread and 12 s on two)
        torch.set_num_threads(1)
    try:
        if isinstance(probe, AttributeProbe) and probe.kind == "linear":
            return _solve_linear(probe, inputs, targets, loss, config)
        return _fit(probe, inputs, targets, loss, config)
    finally:
        torch.set_num_threads(threads)


def _solve_linear(probe: AttributeProbe, inputs: torch.Tensor,
                  targets: tuple[torch.Tensor, ...], loss: Callable[..., torch.Tensor],
                  config: ProbeTrainingConfig) -> AttributeProbe:
    """Full-batch L-BFGS on the mean loss plus `linear_penalty * |W|^2`."""
    weight = probe.body.weight
    optimizer = torch.optim.LBFGS(
        probe.body.parameters(), lr=1.0, max_iter=config.linear_iterations, history_size=20,
        tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(probe(inputs), *targets) + config.linear_penalty * weight.square().sum()
        value.backward()
        return value

    optimizer.step(objective)
    return probe.eval()


def _fit(probe: nn.Module, inputs: torch.Tensor, targets: tuple[torch.Tensor, ...],
         loss: Callable[..., torch.Tensor], config: ProbeTrainingConfig) -> nn.Module:
    torch.manual_seed(config.seed)  # dropout
    order_generator = torch.Generator().manual_seed(config.seed)
    decay, no_decay = split_weight_decay(probe)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.steps, 0.05, 0.01)
    )
    probe.train()
    step = 0
    while step < config.steps:
        order = torch.randperm(len(inputs), generator=order_generator).to(inputs.device)
        for rows in order.split(config.batch_size)[:config.steps - step]:
            value = loss(probe(inputs[rows]), *(target[rows] for target in targets))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            schedule.step()
            step += 1
    return probe.eval()
