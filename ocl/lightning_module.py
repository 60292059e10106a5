"""SmoothSA training as a LightningModule: the network is a plain `SmoothSAModel`.

Batches are dicts: `frames` `[b,t,3,H,W]` float in `[0,1]`, and for evaluation `masks`
`[b,t,H,W]` integer object ids (0 background).
"""

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR

from ocl.learning_rate import warmup_cosine
from ocl.losses import LossWeights, slot_contrast_head, smoothsa_losses
from ocl.metrics import attention_to_segmentation, object_discovery_metrics
from ocl.modeling import SmoothSAModel, SmoothSAOutput
from ocl.training_config import OptimConfig


class SmoothSATraining(L.LightningModule):
    """Trains a SmoothSA encoder with the paper's recipe and scores its object discovery.

    Every step reseeds torch from (seed, step), so a run resumed from a checkpoint draws the same
    noise, permutations and dropout as one that never stopped.
    """

    def __init__(
        self,
        model: SmoothSAModel,
        optim: OptimConfig,
        losses: LossWeights,
        seed: int = 0,
        segmentation_from: str = "decoder",
    ):
        super().__init__()
        self.model = model
        self.contrast_head = (slot_contrast_head(model.config.slot_dim)
                              if losses.slot_contrast_head else None)
        self.optim = optim
        self.loss_weights = losses
        self.seed = seed
        self.segmentation_from = segmentation_from
        self.validation_metrics = object_discovery_metrics(prefix="val/", pixel_shares=True)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        torch.manual_seed(self.seed * 1_000_003 + self.global_step)
        detach = self.global_step < self.optim.preheat_detach_fraction * self.optim.max_steps
        if hasattr(self.model.initializer, "detach_flag"):
            self.model.initializer.detach_flag.fill_(detach)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        output = self.model(batch["frames"])
        losses = smoothsa_losses(output, self.loss_weights, self.contrast_head)
        if not torch.isfinite(losses.total):
            raise FloatingPointError(
                f"loss is {losses.total.item()} at step {self.global_step} (reconstruction "
                f"{losses.reconstruction.item():.4g}, preheat {losses.preheat.item():.4g}, "
                f"slot contrast {losses.slot_contrast.item():.4g}); lower optim.learning_rate or "
                "optim.gradient_clip, or check the data for NaN"
            )
        self.log_dict(
            {
                "train/loss": losses.total,
                "train/reconstruction": losses.reconstruction,
                "train/preheat": losses.preheat,
                "train/slot_contrast": losses.slot_contrast,
                "train/mask_prediction": losses.mask_prediction,
                "train/mask_entropy": losses.mask_entropy,
            },
            prog_bar=True,
            batch_size=batch["frames"].shape[0],
        )
        return losses.total

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        output = self.model(batch["frames"], generator=torch.Generator().manual_seed(batch_idx))
        self.validation_metrics.update(self.segmentation(output, batch), batch["masks"])

    def segmentation(self, output: SmoothSAOutput, batch: dict) -> torch.Tensor:
        """Predicted object ids `[b,t,H,W]`: argmax over slots of the upsampled masks."""
        masks = output.decoder_attention
        if self.segmentation_from == "slot_attention":
            masks = output.attention
        return attention_to_segmentation(masks, tuple(batch["masks"].shape[-2:]))

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.validation_metrics.compute(), prog_bar=True)
        self.validation_metrics.reset()

    def configure_optimizers(self):
        parameters = [p for p in self.parameters() if p.requires_grad]  # the model and head
        optimizer = torch.optim.Adam(parameters, lr=self.optim.learning_rate)
        factor = warmup_cosine(
            self.optim.max_steps, self.optim.warmup_fraction,
            self.optim.final_learning_rate_fraction,
        )
        schedule = LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

