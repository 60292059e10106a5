"""Helpers of the probe tests: encoding a sample as the extractor does."""

import torch
import torch.nn.functional as F

from downstream.labelled_objects import LabelledFrames
from downstream.slot_encoding import video_noise
from ocl.modeling import SmoothSAModel


@torch.no_grad()
def encode_directly(encoder: SmoothSAModel,
                    sample: LabelledFrames) -> tuple[torch.Tensor, torch.Tensor]:
    """Slots `[t,n,d]` and attention `[t,n,h,w]` of a sample, with the frames resized and the
    noise drawn as `extract_matched_slots` does (seed 0)."""
    pixels = F.interpolate(sample.frames.float() / 255, size=tuple(encoder.config.image_size),
                           mode="bilinear", antialias=True)
    video = encoder.config.is_video
    noise = video_noise(0, sample.sample_id, encoder.config)[None]
    output = encoder(pixels[None] if video else pixels,
                     noise=noise if video else noise.expand(sample.num_frames, -1, -1),
                     decode=False)
    if video:
        return output.slots[0], output.attention[0]
    return output.slots, output.attention
