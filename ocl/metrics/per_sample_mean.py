"""The shape every object-discovery metric shares: a mean over samples of a per-sample score."""

import abc

import torch
from torchmetrics import Metric


class PerSampleMean(Metric, abc.ABC):
    """Accumulates a per-sample score as a sum and a count, so the mean syncs across processes.

    Subclasses implement `per_sample(pred, target) -> [b, *score_shape]`, NaN marking an invalid
    sample (one the score is undefined for); those are left out of the sum and the count.
    `compute()` returns `sum / count` of shape `score_shape` (a scalar by default), NaN while no
    valid sample has been seen.
    """

    score_shape: tuple[int, ...] = ()

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("score_sum", torch.zeros(self.score_shape, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("num_samples", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @abc.abstractmethod
    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Score `[b, *score_shape]` float64 of each sample; NaN for an invalid one."""

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        scores = self.per_sample(pred, target)
        valid = ~scores.isnan().reshape(len(scores), -1).any(dim=1)
        self.score_sum += scores[valid].sum(dim=0)
        self.num_samples += valid.sum()

    def compute(self) -> torch.Tensor:
        return self.score_sum / self.num_samples
