"""SmoothSA's training losses: reconstruction, preheat self-distillation and SlotContrast.

Axes: b batch, t frames, n slots, d slot channels.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ocl.modeling import SmoothSAOutput


@dataclass
class LossWeights:
    """Weights of SmoothSA's loss terms (the paper's values).

    preheat: weight of MSE(initial queries, converged slots), the self-distillation.
    slot_contrast: weight of SlotContrast between consecutive frames' slots (videos only).
    slot_contrast_temperature: its softmax temperature.
    slot_contrast_head: compare the slots through a trained projection head (an MLP D->2D->D,
        trained with the encoder but not part of it) instead of directly, so the contrast can
        shape the head's output rather than everything the slots hold.
    mask_prediction: weight of the cross-entropy of the broadcast decoder's own alpha against
        Slot Attention's masks it composed with (`broadcast_alpha: slot_attention` only).
    mask_entropy: weight of the decoder masks' entropy over slots, averaged over pixels (nats):
        pushes each pixel to one slot, so that two slots cannot share an object's alpha.
    """

    preheat: float = 100.0
    slot_contrast: float = 0.5
    slot_contrast_temperature: float = 0.1
    slot_contrast_head: bool = False
    mask_prediction: float = 0.01
    mask_entropy: float = 0.0

    def __post_init__(self):
        if (min(self.preheat, self.slot_contrast, self.mask_prediction, self.mask_entropy) < 0
                or self.slot_contrast_temperature <= 0):
            raise ValueError(f"loss weights must be >= 0 and the temperature > 0, got {self}")


def slot_contrast_head(slot_dim: int) -> nn.Module:
    """The projection head SlotContrast can compare slots through: `[...,D] -> [...,D]`."""
    return nn.Sequential(nn.Linear(slot_dim, 2 * slot_dim), nn.GELU(),
                         nn.Linear(2 * slot_dim, slot_dim))


@dataclass
class SmoothSALosses:
    """Each weighted term and their sum (scalars); absent terms are zero."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    preheat: torch.Tensor
    slot_contrast: torch.Tensor
    mask_prediction: torch.Tensor
    mask_entropy: torch.Tensor


def smoothsa_losses(
    output: SmoothSAOutput, weights: LossWeights, contrast_head: nn.Module | None = None
) -> SmoothSALosses:
    """The loss of one forward pass, image- or video-shaped; SlotContrast compares
    `contrast_head(slots)` where a head is given."""
    reconstruction = F.mse_loss(output.reconstruction, output.target)
    zero = reconstruction.new_zeros(())
    preheat = zero
    if output.initial_queries is not None:
        converged = output.slots if output.slots.ndim == 3 else output.slots[:, 0]
        preheat = weights.preheat * F.mse_loss(output.initial_queries, converged.detach())
    slot_contrast = zero
    if output.slots.ndim == 4 and output.slots.shape[1] > 1 and weights.slot_contrast > 0:
        compared = output.slots if contrast_head is None else contrast_head(output.slots)
        slot_contrast = weights.slot_contrast * slot_contrast_loss(
            compared, weights.slot_contrast_temperature
        )
    mask_prediction = zero
    if output.decoder_mask_logits is not None and weights.mask_prediction > 0:
        log_masks = output.decoder_mask_logits.log_softmax(dim=-3)
        cross_entropy = -(output.decoder_attention.detach() * log_masks).sum(dim=-3).mean()
        mask_prediction = weights.mask_prediction * cross_entropy
    mask_entropy = zero
    if output.decoder_attention is not None and weights.mask_entropy > 0:
        masks = output.decoder_attention
        entropy = -(masks * masks.clamp_min(1e-8).log()).sum(dim=-3).mean()
        mask_entropy = weights.mask_entropy * entropy
    return SmoothSALosses(
        reconstruction + preheat + slot_contrast + mask_prediction + mask_entropy,
        reconstruction, preheat, slot_contrast, mask_prediction, mask_entropy,
    )


def slot_contrast_loss(slots: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SlotContrast (Manasyan et al., 2025): each slot must find itself in the previous frame.

    For consecutive frames t and t+1, each slot of each video at t+1 is compared (cosine
    similarity over `temperature`) with every slot of every video in the batch at t, and
    classified (cross-entropy) with the same slot of the same video as the answer; averaged over
    frame pairs and slots.

    Args:
        slots: `[b,t,n,d]`, t >= 2.
    """
    slots = rearrange(F.normalize(slots, dim=-1), "b t n d -> t (n b) d")
    logits = torch.einsum("tid,tjd->tij", slots[:-1], slots[1:]) / temperature
    answers = torch.arange(logits.shape[1], device=slots.device).expand(logits.shape[0], -1)
    return F.cross_entropy(rearrange(logits, "t i j -> (t j) i"), answers.flatten())
