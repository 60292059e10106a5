"""Pictures of what an encoder does: frames, their slot masks and per-slot reconstructions."""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from einops import rearrange
from PIL import Image

from ocl.metrics import attention_to_segmentation
from ocl.modeling import SmoothSAModel

# A distinct colour per slot (up to 16), RGB 0-255.
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
     [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
     [170, 255, 195]], dtype=np.uint8,
)


@torch.no_grad()
def slot_picture(model: SmoothSAModel, frames: torch.Tensor, scale: int = 2) -> Image.Image:
    """One row per frame: the frame, its segmentation, then each slot's share of the frame.

    Args:
        frames: one video `[t,3,H,W]` in `[0,1]`.

    With a pixel decoder each slot's cell shows its reconstruction weighted by its mask; with a
    feature decoder, the frame weighted by the slot's mask.
    """
    was_training = model.training
    model.eval()
    output = model(frames[None], generator=torch.Generator().manual_seed(0))
    model.train(was_training)
    size = tuple(frames.shape[-2:])
    masks = output.decoder_attention[0]  # [t,n,h,w]
    masks = torch.nn.functional.interpolate(masks, size=size, mode="bilinear")
    segmentation = attention_to_segmentation(output.decoder_attention, size)[0]  # [t,H,W]
    if model.config.decoder == "broadcast":
        slot_pixels = model.decoder(frames, output.slots[0]).slot_pixels.clamp(0, 1)
    else:
        slot_pixels = frames[:, None].expand(-1, masks.shape[1], -1, -1, -1)
    cells = slot_pixels * masks[:, :, None]
    palette = torch.from_numpy(PALETTE[np.arange(masks.shape[1]) % len(PALETTE)]).float() / 255
    palette = palette.to(frames.device)
    overlay = 0.5 * frames + 0.5 * rearrange(palette[segmentation], "t h w c -> t c h w")
    rows = torch.cat([frames[:, None], overlay[:, None], cells], dim=1)  # [t,2+n,3,H,W]
    grid = rearrange(rows, "t k c h w -> (t h) (k w) c").clamp(0, 1)
    image = Image.fromarray((grid.float().cpu().numpy() * 255).astype(np.uint8))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


class SlotPictureCallback(L.Callback):
    """Writes `pictures/step_NNNNNNN.png` of the first validation video after each validation."""

    def __init__(self, folder: str | Path, num_frames: int = 4):
        self.folder = Path(folder)
        self.num_frames = num_frames

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        dataset = trainer.val_dataloaders.dataset
        frames = dataset[0]["frames"][: self.num_frames].to(module.device)
        picture = slot_picture(module.model, frames.float())
        self.folder.mkdir(parents=True, exist_ok=True)
        picture.save(self.folder / f"step_{trainer.global_step:07d}.png")
