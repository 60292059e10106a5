"""A frozen SmoothSA encoder run over whole videos, as slot extraction runs it.

    encoder, identity = load_frozen_encoder("user/smoothsa-clevrer")
    noise = torch.stack([video_noise(seed, index, encoder.config) for index in indices])
    encoded = encode_videos(encoder, frames, noise, EncodingOptions(chunk_frames=32))
    encoded.slots                                  # [b,t,n,d] float32, on the CPU

Frames stay uint8 until a chunk of them is moved to the device, and the encoder streams chunk
after chunk (`SmoothSAModel.encode_video` carries only the transit window between chunks), in
inference mode, without the decoder, under bf16/fp16 autocast when asked. The preheater's noise
of a video is drawn from a generator seeded by (seed, video index) alone, so a video's slots do
not depend on which process encodes it, which other videos share its batch, or their order.

Axes: b videos, t frames, n slots, d slot channels, h w the encoder's grid (or the stored mask
size), H W pixels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from huggingface_hub import try_to_load_from_cache

from ocl.configuration import SmoothSAConfig
from ocl.modeling import SmoothSAModel

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class EncoderIdentity:
    """What identifies the encoder that made a slot dataset.

    encoder_id: the Hub model id, or a local folder's name (or the name the user gave).
    revision: the Hub commit the weights came from; None for a local folder.
    config_hash: 16 hex digits of the SHA-256 of the encoder's own config fields.
    weights_hash: 16 hex digits of the SHA-256 of every parameter and buffer.
    config: the encoder's own config fields (SmoothSAConfig's, JSON-able).
    """

    encoder_id: str
    revision: str | None
    config_hash: str
    weights_hash: str
    config: dict


@dataclass(frozen=True)
class EncodingOptions:
    """How frames go through the encoder.

    chunk_frames: frames of each video fed to the encoder at once (memory grows with it, not
        with the video's length).
    precision: "fp32", or "bf16" / "fp16" autocast (for GPUs).
    store_masks: also return Slot Attention's attention masks.
    mask_size: (h, w) the masks are resized to (bilinear, antialiased: they still sum to 1 over
        slots); None keeps the encoder's grid.
    """

    chunk_frames: int = 32
    precision: str = "fp32"
    store_masks: bool = False
    mask_size: tuple[int, int] | None = None

    def __post_init__(self):
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.mask_size is not None and (len(self.mask_size) != 2 or min(self.mask_size) < 1):
            raise ValueError(f"mask_size must be (h, w) of positive ints, got {self.mask_size}")


@dataclass
class EncodedVideos:
    """Slots `[b,t,n,d]` and, when asked for, attention masks `[b,t,n,h,w]`; float32, CPU."""

    slots: torch.Tensor
    masks: torch.Tensor | None = None


def load_frozen_encoder(
    name_or_path: str, revision: str | None = None, display_name: str | None = None
) -> tuple[SmoothSAModel, EncoderIdentity]:
    """A SmoothSA encoder in eval mode with gradients off, from a local folder (as
    `save_pretrained` writes it) or a Hub model id, and what identifies it.

    Raises:
        FileNotFoundError: a local path that does not exist, or a folder without config.json.
        OSError: a Hub id that cannot be loaded (the message says why).
    """
    folder = Path(name_or_path).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"encoder folder {folder} has no config.json: save the encoder with "
                "SmoothSAModel.save_pretrained(folder)"
            )
        encoder_id, commit = folder.resolve().name, None
    elif _looks_like_path(name_or_path):
        raise FileNotFoundError(f"encoder folder {folder} does not exist")
    else:
        encoder_id, commit = name_or_path, None
    try:
        # float32 weights whatever they were saved in: autocast sets the compute precision
        model = SmoothSAModel.from_pretrained(str(folder) if folder.exists() else name_or_path,
                                              revision=revision, dtype=torch.float32)
    except OSError as error:
        raise OSError(f"cannot load the encoder {name_or_path!r}: {error}") from error
    if not folder.exists():
        commit = _hub_commit(name_or_path, revision)
    model.eval().requires_grad_(False)
    config = encoder_config_fields(model.config)
    identity = EncoderIdentity(
        encoder_id=display_name or encoder_id,
        revision=commit,
        config_hash=_digest(json.dumps(config, sort_keys=True).encode()),
        weights_hash=weights_hash(model),
        config=config,
    )
    return model, identity


def encoder_config_fields(config: SmoothSAConfig) -> dict:
    """The fields SmoothSAConfig declares (not transformers' bookkeeping), JSON-able."""
    values = {name: getattr(config, name) for name in SmoothSAConfig.__annotations__}
    return json.loads(json.dumps(values))


def weights_hash(model: torch.nn.Module) -> str:
    """16 hex digits of the SHA-256 of every parameter and buffer (names, dtypes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def video_noise(seed: int, video_index: int, config: SmoothSAConfig) -> torch.Tensor:
    """The preheater's standard normal sample for one video `[n,d]` (float32, CPU): a pure
    function of (seed, video_index)."""
    state = np.random.SeedSequence([seed, video_index]).generate_state(1, dtype=np.uint64)[0]
    generator = torch.Generator().manual_seed(int(state))
    return torch.randn(config.num_slots, config.slot_dim, generator=generator)


def encode_videos(
    model: SmoothSAModel, frames: torch.Tensor, noise: torch.Tensor, options: EncodingOptions
) -> EncodedVideos:
    """Slots (and masks) of a batch of equally long videos.

    Args:
        model: a SmoothSA encoder in eval mode (a video model, or an image model: then every
            frame is encoded on its own, all frames of a video from the video's noise).
        frames: `[b,t,3,H,W]` uint8 RGB at the encoder's image size, on any device.
        noise: the preheater's noise `[b,n,d]` (see `video_noise`).
    """
    if frames.dtype != torch.uint8 or frames.ndim != 5:
        raise ValueError(f"frames must be [b,t,3,H,W] uint8, got {frames.dtype} "
                         f"{list(frames.shape)}")
    device = next(model.parameters()).device
    noise = noise.to(device)
    autocast = torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(options.precision),
                              enabled=options.precision != "fp32")
    slots, masks, state = [], [], None
    with torch.inference_mode(), autocast:
        for start in range(0, frames.shape[1], options.chunk_frames):
            chunk = frames[:, start:start + options.chunk_frames]
            chunk = chunk.to(device, non_blocking=True).float().div_(255)
            if model.transit is None:
                output = _encode_frames_as_images(model, chunk, noise)
            else:
                output, state = model.encode_video(chunk, state, noise if state is None else None,
                                                   decode=False)
            slots.append(output.slots.float().cpu())
            if options.store_masks:
                masks.append(_resized(output.attention.float(), options.mask_size).cpu())
    return EncodedVideos(torch.cat(slots, dim=1), torch.cat(masks, dim=1) if masks else None)


def _encode_frames_as_images(model: SmoothSAModel, chunk: torch.Tensor, noise: torch.Tensor):
    """An image model over a chunk `[b,t,3,H,W]`: every frame alone, video-shaped output."""
    batch_size, num_frames = chunk.shape[:2]
    output = model(rearrange(chunk, "b t c h w -> (b t) c h w"),
                   noise=repeat(noise, "b n d -> (b t) n d", t=num_frames), decode=False)
    output.slots = rearrange(output.slots, "(b t) n d -> b t n d", b=batch_size)
    output.attention = rearrange(output.attention, "(b t) n h w -> b t n h w", b=batch_size)
    return output


def _resized(attention: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """`[b,t,n,h,w]` -> `[b,t,n,*size]`, bilinear with antialiasing."""
    if size is None or tuple(size) == tuple(attention.shape[-2:]):
        return attention
    batch_size, num_frames = attention.shape[:2]
    resized = F.interpolate(rearrange(attention, "b t n h w -> (b t) n h w"), size=tuple(size),
                            mode="bilinear", antialias=True, align_corners=False)
    return rearrange(resized, "(b t) n h w -> b t n h w", b=batch_size, t=num_frames)


def _looks_like_path(name: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else the user meant as a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of the cached snapshot `from_pretrained` loaded (None when unknown)."""
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(cached, str):
        return None
    return Path(cached).parent.name


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
