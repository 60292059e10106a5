"""The SmoothSA encoder for images and videos, as a `transformers` model.

Axes: b batch, t frames, n slots, d slot channels, c feature channels, h w feature grid,
p = h*w tokens, H W pixels.
"""

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from transformers import PreTrainedModel

from ocl.backbones import build_backbone
from ocl.configuration import SmoothSAConfig
from ocl.decoders import MLPDecoder, RandomOrderTransformerDecoder, SpatialBroadcastDecoder
from ocl.preheater import LearnedQueries, Preheater, SharedGaussianQueries
from ocl.slot_attention import SlotAttention
from ocl.transit import Transit


@dataclass
class SmoothSAOutput:
    """What the encoder computes. Video fields carry a frame axis t after the batch axis.

    slots: `[b,(t),n,d]`.
    initial_queries: the preheater's queries for the image or first frame `[b,n,d]` (None when
        the preheater is off, or for a streamed chunk that does not hold the first frame).
    attention: Slot Attention's last-iteration attention `[b,(t),n,h,w]` (softmax over slots).
    decoder_attention: the decoder's masks `[b,(t),n,h,w]` (pixel decoder: `[b,(t),n,H,W]`).
    reconstruction: the decoder's output, shaped like `target`.
    target: what the decoder reconstructs: the features (detached) or the pixels.
    features: the backbone's feature map `[b,(t),c,h,w]`.
    decoder_mask_logits: the broadcast decoder's own alpha logits `[b,(t),n,H,W]`, trained to
        predict `decoder_attention` when that is Slot Attention's (`broadcast_alpha`); else None.
    The decoder fields are None when the decoder was not run (`decode=False`).
    """

    slots: torch.Tensor
    initial_queries: torch.Tensor | None
    attention: torch.Tensor
    features: torch.Tensor
    decoder_attention: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    target: torch.Tensor | None = None
    decoder_mask_logits: torch.Tensor | None = None

    def first_frame_only(self) -> "SmoothSAOutput":
        """The image-shaped output of a one-frame video (drops the t axis)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in values.items():
            if value is not None and name != "initial_queries":
                values[name] = value[:, 0]
        return SmoothSAOutput(**values)


@dataclass
class VideoState:
    """What a video encoder carries from one chunk of frames to the next.

    slots: the latest frames' slots `[b,w,n,d]`, oldest first (w <= transit_window - 1).
    tokens: the same frames' projected tokens `[b,w,p,c]`.
    num_frames: frames encoded so far.
    """

    slots: torch.Tensor
    tokens: torch.Tensor
    num_frames: int


class SmoothSAModel(PreTrainedModel):
    """SmoothSA (Zhao et al., ICML 2026): Slot Attention with preheated queries.

    Image: backbone features -> tokens -> projection (LayerNorm, Linear, GELU, Linear) ->
    preheater -> Slot Attention (`num_iterations`) -> slots -> decoder. Video: the first frame
    as an image; every later frame gets its queries from the transit (previous slots + the
    frame) and runs `num_iterations_later` iterations. Frames can be fed in chunks
    (`encode_video(chunk, state)`); the result equals encoding the whole clip at once, and the
    state stays `transit_window - 1` frames long however long the video is.
    """

    config_class = SmoothSAConfig
    base_model_prefix = "smoothsa"
    main_input_name = "pixel_values"

    def __init__(self, config: SmoothSAConfig):
        super().__init__(config)
        self.backbone = build_backbone(config)
        feature_dim = self.backbone.feature_dim
        self.grid = self.backbone.grid
        num_tokens = self.grid[0] * self.grid[1]
        self.project = nn.Sequential(
            nn.LayerNorm(feature_dim),
            nn.Linear(feature_dim, feature_dim),
            nn.GELU(),
            nn.Linear(feature_dim, feature_dim),
        )
        queries = LearnedQueries if config.cold_start == "learned" else SharedGaussianQueries
        cold_start = queries(config.num_slots, config.slot_dim)
        self.initializer = (
            Preheater(cold_start, config.slot_dim, feature_dim, config.preheater_heads)
            if config.use_preheater else cold_start
        )
        self.slot_attention = SlotAttention(
            feature_dim, config.slot_dim, config.num_iterations,
            truncate=config.iteration_gradients == "last",
        )
        self.transit = None
        if config.is_video:
            self.transit = Transit(
                feature_dim,
                config.slot_dim,
                config.transit_window,
                config.transit_heads,
                config.transit_dropout,
            )
        if config.decoder == "autoregressive":
            self.decoder = RandomOrderTransformerDecoder(
                feature_dim, config.slot_dim, num_tokens, config.decoder_layers,
                config.decoder_heads,
            )
        elif config.decoder == "mlp":
            self.decoder = MLPDecoder(
                feature_dim, config.slot_dim, num_tokens, config.decoder_hidden_dim
            )
        else:
            self.decoder = SpatialBroadcastDecoder(
                config.slot_dim, config.image_size, config.decoder_hidden_dim,
                config.broadcast_grid, config.broadcast_full_resolution_layers,
            )
        if config.weight_init == "variance_preserving":
            if config.backbone == "cnn":
                he_initialise_convolutions(self.backbone)
            if config.decoder == "broadcast":
                he_initialise_convolutions(self.decoder)
                nn.init.zeros_(self.decoder.network[-1].weight)
            glorot_initialise_linears(self.slot_attention)
        for module in (self.project, self.slot_attention, self.transit):
            zero_biases(module)
        self.post_init()

    @classmethod
    def from_dinov2(cls, backbone_name_or_path: str, **config_fields) -> "SmoothSAModel":
        """A new encoder around pretrained DINOv2-with-registers weights (Hub id or folder)."""
        model = cls(SmoothSAConfig.for_dinov2(backbone_name_or_path, **config_fields))
        model.backbone.load_pretrained(backbone_name_or_path)
        return model

    def _init_weights(self, module: nn.Module) -> None:
        """Parameters keep the initialisation their modules give them (PyTorch's defaults)."""

    @property
    def input_channels(self) -> int:
        """Channels the input must have: 3 for pixels, or the feature map's."""
        return self.config.feature_dim if self.config.backbone == "features" else 3

    def forward(
        self,
        pixel_values: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        decode: bool = True,
    ) -> SmoothSAOutput:
        """Encodes images `[b,3,H,W]` or videos `[b,t,3,H,W]` (pixels in `[0,1]`; with the
        "features" backbone, feature maps `[b,(t),c,h,w]`).

        Args:
            noise: the preheater's standard normal sample `[b,n,d]` (drawn when None).
            generator: source of every random draw, for deterministic extraction.
            decode: run the decoder (off for slot extraction, which needs only slots and masks).
        """
        if pixel_values.ndim == 4:
            output, _ = self.encode_video(pixel_values[:, None], None, noise, generator, decode)
            return output.first_frame_only()
        if pixel_values.ndim == 5:
            return self.encode_video(pixel_values, None, noise, generator, decode)[0]
        raise ValueError(
            "pixel_values must be images [b,c,H,W] or videos [b,t,c,H,W], "
            f"got shape {tuple(pixel_values.shape)}"
        )

    def encode_video(
        self,
        video: torch.Tensor,
        state: VideoState | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        decode: bool = True,
    ) -> tuple[SmoothSAOutput, VideoState]:
        """Encodes a chunk of frames `[b,t,3,H,W]` that follows `state` (None: a new video).

        Returns the chunk's output (video-shaped) and the state for the next chunk.
        """
        self.check_input(video, state)
        batch_size, num_frames = video.shape[:2]
        features = self.backbone(rearrange(video, "b t c h w -> (b t) c h w"))
        if self.backbone.frozen:
            features = features.detach()
        tokens = self.project(rearrange(features, "bt c h w -> bt (h w) c"))
        tokens = rearrange(tokens, "(b t) p c -> b t p c", b=batch_size)

        initial_queries = None
        all_slots, all_attention = [], []
        for index in range(num_frames):
            frame_tokens = tokens[:, index]
            if state is None:
                initial_queries, queries = self.initializer(frame_tokens, noise, generator)
                num_iterations = self.config.num_iterations
            else:
                window_tokens = torch.cat([state.tokens, frame_tokens[:, None]], dim=1)
                queries = self.transit(state.slots, window_tokens, generator)
                num_iterations = self.config.num_iterations_later
            slots, attention = self.slot_attention(frame_tokens, queries, num_iterations)
            all_slots.append(slots)
            all_attention.append(attention)
            state = self.advance_state(state, slots, frame_tokens)

        slots = torch.stack(all_slots, dim=1)
        attention = rearrange(
            torch.stack(all_attention, dim=1), "b t n (h w) -> b t n h w", h=self.grid[0]
        )
        output = SmoothSAOutput(
            slots=slots,
            initial_queries=initial_queries,
            attention=attention,
            features=rearrange(features, "(b t) ... -> b t ...", b=batch_size),
        )
        if decode:
            (output.decoder_attention, output.reconstruction, output.target,
             output.decoder_mask_logits) = self.decode(video, features, slots, attention)
        return output, state

    def advance_state(
        self, state: VideoState | None, slots: torch.Tensor, tokens: torch.Tensor
    ) -> VideoState:
        """Appends one frame's slots `[b,n,d]` and tokens `[b,p,c]`, keeping the window."""
        keep = max(self.config.transit_window - 1, 1)
        if state is None:
            return VideoState(slots[:, None], tokens[:, None], 1)
        return VideoState(
            torch.cat([state.slots, slots[:, None]], dim=1)[:, -keep:],
            torch.cat([state.tokens, tokens[:, None]], dim=1)[:, -keep:],
            state.num_frames + 1,
        )

    def decode(
        self, video: torch.Tensor, features: torch.Tensor, slots: torch.Tensor,
        attention: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Runs the decoder on every frame: video `[b,t,3,H,W]`, features `[(b t),c,h,w]`,
        slots `[b,t,n,d]`, Slot Attention's attention `[b,t,n,h,w]`. Returns the masks, the
        reconstruction, its target and the decoder's own mask logits (None unless
        `broadcast_alpha` is "slot_attention"), video-shaped."""
        flat_slots = rearrange(slots, "b t n d -> (b t) n d")
        mask_logits = None
        if self.config.decoder == "broadcast":
            target = rearrange(video, "b t c h w -> (b t) c h w")
            weights = None
            if self.config.broadcast_alpha == "slot_attention":
                weights = F.interpolate(rearrange(attention, "b t n h w -> (b t) n h w"),
                                        size=target.shape[-2:], mode="bilinear")
            decoded = self.decoder(target, flat_slots, masks=weights)
            reconstruction, masks, mask_logits = (decoded.reconstruction, decoded.masks,
                                                  decoded.mask_logits)
        else:
            target = rearrange(features.detach(), "bt c h w -> bt (h w) c")
            decoded = self.decoder(target, flat_slots)
            h = self.grid[0]
            reconstruction = rearrange(decoded.reconstruction, "bt (h w) c -> bt c h w", h=h)
            target = rearrange(target, "bt (h w) c -> bt c h w", h=h)
            masks = rearrange(decoded.masks, "bt n (h w) -> bt n h w", h=h)
        return tuple(
            None if x is None else rearrange(x, "(b t) ... -> b t ...", b=slots.shape[0])
            for x in (masks, reconstruction, target, mask_logits)
        )

    def decode_slots(
        self, slots: torch.Tensor, slot_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decodes slots alone, with no frame to look at (e.g. slots a dynamics model predicted).

        Args:
            slots: `[b,t,n,d]`.
            slot_mask: `[b,n]` bool, False for a slot that takes no part in any frame (a
                removed object): it gets no mask and adds nothing to the reconstruction.

        Returns:
            masks `[b,t,n,h,w]` (pixel decoder: `[b,t,n,H,W]`) and the reconstruction
            `[b,t,c,h,w]` (pixel decoder: `[b,t,3,H,W]`). The autoregressive decoder sees only
            mask tokens, as for the masked part of a frame in training.
        """
        batch_size, num_frames = slots.shape[:2]
        if slot_mask is not None:
            if slot_mask.shape != (batch_size, slots.shape[2]) or slot_mask.dtype != torch.bool:
                raise ValueError(f"slot_mask must be bool [b,n] = {[batch_size, slots.shape[2]]}, "
                                 f"got {slot_mask.dtype} {list(slot_mask.shape)}")
            slot_mask = repeat(slot_mask, "b n -> (b t) n", t=num_frames)
        decoded = self.decoder(None, rearrange(slots, "b t n d -> (b t) n d"), slot_mask)
        masks, reconstruction = decoded.masks, decoded.reconstruction
        if self.config.decoder != "broadcast":
            h = self.grid[0]
            masks = rearrange(masks, "bt n (h w) -> bt n h w", h=h)
            reconstruction = rearrange(reconstruction, "bt (h w) c -> bt c h w", h=h)
        return tuple(
            rearrange(x, "(b t) ... -> b t ...", b=batch_size) for x in (masks, reconstruction)
        )

    def check_input(self, video: torch.Tensor, state: VideoState | None) -> None:
        """Raises ValueError naming what is wrong with a chunk `[b,t,c,H,W]`."""
        if video.ndim != 5:
            raise ValueError(f"video must be [b,t,c,H,W], got shape {tuple(video.shape)}")
        if not video.is_floating_point():
            raise ValueError(f"input must be floating point (pixels in [0,1]), got {video.dtype}")
        channels, size = video.shape[2], tuple(video.shape[3:])
        if channels != self.input_channels:
            raise ValueError(
                f"input has {channels} channels, this encoder takes {self.input_channels} "
                f"(backbone {self.config.backbone!r})"
            )
        if size != tuple(self.config.image_size):
            raise ValueError(
                f"input is {size[0]}x{size[1]}, this encoder was built for "
                f"{self.config.image_size[0]}x{self.config.image_size[1]}"
            )
        if not torch.isfinite(video).all():
            raise ValueError("input contains NaN or infinite values")
        if self.transit is None and (video.shape[1] > 1 or state is not None):
            raise ValueError(
                "this encoder has no transit (transit_window=0): it encodes single images, "
                f"got {video.shape[1]} frames"
            )


def he_initialise_convolutions(module: nn.Module) -> None:
    """He initialisation (fan in, ReLU gain) of every convolution inside `module`, biases zero:
    each ReLU layer then keeps its input's scale."""
    for child in module.modules():
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = child.in_channels * child.kernel_size[0] * child.kernel_size[1]
            if isinstance(child, nn.ConvTranspose2d):
                fan_in //= child.stride[0] * child.stride[1]  # taps that reach each output
            nn.init.normal_(child.weight, std=(2 / fan_in) ** 0.5)
            nn.init.zeros_(child.bias)


def glorot_initialise_linears(module: nn.Module) -> None:
    """Glorot (Xavier) uniform initialisation of every Linear and GRU cell input inside
    `module`."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            nn.init.xavier_uniform_(child.weight)
        elif isinstance(child, nn.GRUCell):
            nn.init.xavier_uniform_(child.weight_ih)


def zero_biases(module: nn.Module | None) -> None:
    """Zeroes the biases of every Linear and GRU cell inside `module`, as SmoothSA initialises."""
    if module is None:
        return
    for child in module.modules():
        if isinstance(child, nn.Linear) and child.bias is not None:
            nn.init.zeros_(child.bias)
        elif isinstance(child, nn.GRUCell):
            nn.init.zeros_(child.bias_ih)
            nn.init.zeros_(child.bias_hh)
