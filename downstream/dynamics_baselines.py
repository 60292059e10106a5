"""Baselines a slot world model must beat, with the signature of `WorldModel.rollout`.

Both work because a video encoder's slots are temporally consistent: slot i follows the same
object from frame to frame, so slot-space extrapolation is object-wise extrapolation.

Axes: b batch, t burn-in frames, n slots, d slot channels, s rollout steps.
"""

import torch


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


def _check(burn_in: torch.Tensor, steps: int) -> None:
    if burn_in.ndim != 4 or burn_in.shape[1] < 1:
        raise ValueError(f"burn-in slots must be [b,t>=1,n,d], got shape {tuple(burn_in.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
