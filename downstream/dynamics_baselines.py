"""Baselines a slot world model must beat, with the signature of `WorldModel.rollout`: copying
the last frame, constant velocity, and a linear autoregressive model fitted by least squares.

All work because a video encoder's slots are temporally consistent: slot i follows the same
object from frame to frame, so slot-space extrapolation is object-wise extrapolation.

Axes: b batch, t burn-in frames, n slots, d slot channels, s rollout steps, w window.
"""

from collections.abc import Iterable

import torch
from einops import rearrange


def copy_last(burn_in: torch.Tensor, steps: int) -> torch.Tensor:
    """Nothing moves: every predicted frame is the last observed one.

    Args:
        burn_in: `[b,t,n,d]`, t >= 1.

    Returns:
        `[b,steps,n,d]`.
    """
    _check(burn_in, steps)
    return burn_in[:, -1:].expand(-1, steps, -1, -1).clone()


def constant_velocity(burn_in: torch.Tensor, steps: int) -> torch.Tensor:
    """Every slot keeps its last change: frame k after the last is `x[-1] + k (x[-1] - x[-2])`.

    Exact on slots that move linearly; with a one-frame burn-in the velocity is zero and this
    is `copy_last`.

    Args:
        burn_in: `[b,t,n,d]`, t >= 1.

    Returns:
        `[b,steps,n,d]`.
    """
    _check(burn_in, steps)
    last = burn_in[:, -1:]
    velocity = last - burn_in[:, -2:-1] if burn_in.shape[1] > 1 else torch.zeros_like(last)
    ahead = torch.arange(1, steps + 1, dtype=burn_in.dtype, device=burn_in.device)
    return last + ahead[None, :, None, None] * velocity


class LeastSquaresDynamics:
    """Each slot's next change as a linear function of its own last `window` frames:
    `x[t+1] - x[t] = [x[t-w+1], ..., x[t], 1] @ weights`, one map shared by all slots, fitted in
    closed form (ridge least squares) on the one-step changes of training videos and rolled out
    autoregressively. It sees no other slot, so it knows no collisions. Constant velocity is one
    such linear map; this one is the best on the training videos' next frames.

    weights: `[w d + 1, d]`, the frames oldest first, then a bias; w is the window.
    """

    def __init__(self, weights: torch.Tensor):
        rows = weights.shape[0] - 1 if weights.ndim == 2 else -1
        if rows < 1 or rows % weights.shape[1]:
            raise ValueError(f"weights must be [window * d + 1, d], got shape "
                             f"{tuple(weights.shape)}")
        self.weights, self.window = weights, rows // weights.shape[1]

    @classmethod
    def fit(cls, videos: Iterable[torch.Tensor], window: int,
            ridge: float = 1.0) -> "LeastSquaresDynamics":
        """Fitted on every run of `window + 1` frames of `videos` (each `[t,n,d]`), in float64;
        `ridge` is added to the diagonal of the normal equations (not the bias's)."""
        gram = cross = None
        for video in videos:
            if video.ndim != 3:
                raise ValueError(f"a training video's slots must be [t,n,d], got shape "
                                 f"{tuple(video.shape)}")
            if video.shape[0] <= window:
                continue
            runs = video.double().unfold(0, window + 1, 1)  # [t-w,n,d,w+1]
            inputs = rearrange(runs[..., :-1], "m n d w -> (m n) (w d)")
            inputs = torch.cat([inputs, inputs.new_ones(len(inputs), 1)], dim=1)
            changes = rearrange(runs[..., -1] - runs[..., -2], "m n d -> (m n) d")
            if gram is None:
                gram = inputs.new_zeros(inputs.shape[1], inputs.shape[1])
                cross = inputs.new_zeros(inputs.shape[1], changes.shape[1])
            gram += inputs.T @ inputs
            cross += inputs.T @ changes
        if gram is None:
            raise ValueError(f"no training video has more than window = {window} frames")
        penalty = torch.full((len(gram),), float(ridge), dtype=gram.dtype)
        penalty[-1] = 0
        weights = torch.linalg.solve(gram + torch.diag(penalty), cross)
        if not torch.isfinite(weights).all():
            raise ValueError("the least-squares fit is not finite: do the training slots hold "
                             "NaN or infinity?")
        return cls(weights.float())

    def rollout(self, burn_in: torch.Tensor, steps: int) -> torch.Tensor:
        """`[b,steps,n,d]` after `burn_in` `[b,t,n,d]`; a burn-in shorter than the window is
        padded at the start with copies of its first frame."""
        _check(burn_in, steps)
        if burn_in.shape[-1] != self.weights.shape[1]:
            raise ValueError(f"slots of {burn_in.shape[-1]} channels; this model was fitted on "
                             f"{self.weights.shape[1]}")
        frames = burn_in[:, -self.window:].float()
        if frames.shape[1] < self.window:
            start = frames[:, :1].expand(-1, self.window - frames.shape[1], -1, -1)
            frames = torch.cat([start, frames], dim=1)
        weights = self.weights.to(frames.device)
        predicted = []
        for _ in range(steps):
            inputs = rearrange(frames, "b w n d -> b n (w d)")
            change = inputs @ weights[:-1] + weights[-1]
            predicted.append(frames[:, -1] + change)
            frames = torch.cat([frames[:, 1:], predicted[-1][:, None]], dim=1)
        return torch.stack(predicted, dim=1).to(burn_in.dtype)


def _check(burn_in: torch.Tensor, steps: int) -> None:
    if burn_in.ndim != 4 or burn_in.shape[1] < 1:
        raise ValueError(f"burn-in slots must be [b,t>=1,n,d], got shape {tuple(burn_in.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
