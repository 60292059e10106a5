"""A world model in slot space: predicts the next frames' slots from past frames' slots.

SlotFormer's dynamics model (Wu et al., ICLR 2023): the slots of the last `window` frames are
projected to the model width, each frame's slots get that frame's learned temporal position
embedding (shared by all its slots; there is no slot-index embedding, so the model is
permutation-equivariant over slots), a transformer encoder attends over all of them, and the
outputs at the last frame's slots are projected back to slot space as the next frame's slots
(with `residual`: as a change added to the last frame's slots; with `second_order` as well: as
a change of each slot's velocity, as learned physics simulators predict accelerations, so that
a prediction that knows nothing extrapolates the last step instead of stopping). A rollout
appends each prediction to the window and slides it; predictions are fed back, never the true
slots.

Axes: b batch, t frames, n slots, d slot channels, c model channels, s rollout steps,
H W pixels, h w the decoder's mask grid.
"""

from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from ocl.modeling import SmoothSAModel


class WorldModelConfig(PretrainedConfig):
    """Sizes of a slot world model.

    slot_dim: d, the encoder's slot width (in and out).
    hidden_dim: c, the transformer's width.
    num_layers, num_heads, feedforward_dim, dropout: the transformer encoder (pre-norm, GELU).
    window: frames the model looks at (the burn-in length it was trained with); a shorter
        burn-in works, longer ones are cut to their last `window` frames.
    residual: predict the change from the last frame's slots rather than the slots themselves.
    second_order: with `residual`, predict the change from the last step instead:
        `next = last + (last - previous) + output` (with one frame, `last + output`).
    zero_output: start the output projection at zero, so that a residual model starts as
        copying the last frame and a second-order one as constant velocity, and training
        learns only where the data departs from that baseline.
    step_gate: with `residual`, scale each slot's predicted step (its change from the last
        frame) by a gate in [0, 1] that the transformer gives that slot:
        `next = last + gate * step`, `gate = clamp(1 + Linear(hidden), 0, 1)`, so that a gate of
        0 holds a slot exactly where it was (a still object), which the step alone can only
        approach; the gate's projection starts at zero (the gate open, the model unchanged).
    """

    model_type = "slot_world_model"

    slot_dim: int = 256
    hidden_dim: int = 128
    num_layers: int = 4
    num_heads: int = 8
    feedforward_dim: int = 512
    dropout: float = 0.0
    window: int = 6
    residual: bool = True
    second_order: bool = False
    zero_output: bool = False
    step_gate: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in ("slot_dim", "hidden_dim", "num_layers", "num_heads", "feedforward_dim",
                     "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.second_order and not self.residual:
            raise ValueError("second_order predicts a change of velocity: it needs residual")
        if self.zero_output and not self.residual:
            raise ValueError("zero_output starts a residual model at its baseline: it needs "
                             "residual (without it every prediction would start at zero)")
        if self.step_gate and not self.residual:
            raise ValueError("step_gate scales the step from the last frame: it needs residual")


@dataclass
class WorldModelOutput:
    """slots: the predicted slots of the next s frames `[b,s,n,d]`; a removed slot (False in
    `slot_mask`) is zeros in every frame."""

    slots: torch.Tensor


@dataclass
class Imagination:
    """A video's future imagined in slot space and seen through the frozen decoder.

    observed_slots: the encoder's slots of the burn-in frames `[b,t,n,d]`.
    slots: the predicted slots `[b,s,n,d]`.
    masks: the decoder's masks of the predicted frames `[b,s,n,h,w]` (pixel decoder:
        `[b,s,n,H,W]`); a removed slot's are zeros.
    reconstruction: the decoder's reconstruction `[b,s,c,h,w]` (pixel decoder: `[b,s,3,H,W]`).
    """

    observed_slots: torch.Tensor
    slots: torch.Tensor
    masks: torch.Tensor
    reconstruction: torch.Tensor


class WorldModel(PreTrainedModel):
    """SlotFormer-style autoregressive transformer over a sliding window of frames' slots."""

    config_class = WorldModelConfig
    base_model_prefix = "world_model"
    # a gate added to a trained model starts open, so that model's weights still fit
    _keys_to_ignore_on_load_missing = [r"^project_gate\."]
    main_input_name = "slots"

    def __init__(self, config: WorldModelConfig):
        super().__init__(config)
        self.project_in = nn.Linear(config.slot_dim, config.hidden_dim)
        self.time_embedding = nn.Parameter(torch.empty(config.window, config.hidden_dim))
        nn.init.trunc_normal_(self.time_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            config.hidden_dim, config.num_heads, config.feedforward_dim, config.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, config.num_layers, norm=nn.LayerNorm(config.hidden_dim),
            enable_nested_tensor=False,
        )
        self.project_out = nn.Linear(config.hidden_dim, config.slot_dim)
        self.project_gate = nn.Linear(config.hidden_dim, 1) if config.step_gate else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Run by `post_init` on every module and by `from_pretrained` on those whose weights it
        does not find: parameters keep the initialisation their modules give them (PyTorch's
        defaults), except the output projection with `zero_output` and the gate, which start at
        zero (the gate open)."""
        if module is self.project_gate or (self.config.zero_output and module is self.project_out):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self, slots: torch.Tensor, steps: int = 1, slot_mask: torch.Tensor | None = None
    ) -> WorldModelOutput:
        """Rolls out `steps` frames after the burn-in `slots`, without teacher forcing.

        Args:
            slots: burn-in `[b,t,n,d]`, t >= 1 (only the last `window` frames are used).
            steps: s, frames to predict; each prediction joins the window, the oldest frame
                leaves it once the window is full.
            slot_mask: `[b,n]` bool, False for a removed slot (a counterfactual without that
                object): it is left out of attention in every frame, so it has no influence on
                the others, and it stays removed (zeros) in every predicted frame.
        """
        self.check_input(slots, steps, slot_mask)
        frames = slots[:, -self.config.window:]
        predicted = []
        for _ in range(steps):
            next_slots = self.predict_next(frames, slot_mask)
            predicted.append(next_slots)
            frames = torch.cat([frames, next_slots[:, None]], dim=1)[:, -self.config.window:]
        return WorldModelOutput(slots=torch.stack(predicted, dim=1))

    def rollout(
        self, burn_in: torch.Tensor, steps: int, slot_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The predicted slots `[b,steps,n,d]` after `burn_in` `[b,t,n,d]` (see `forward`)."""
        return self(burn_in, steps, slot_mask).slots

    def predict_next(
        self, frames: torch.Tensor, slot_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The next frame's slots `[b,n,d]` from the slots of t <= window frames `[b,t,n,d]`.

        Frame positions are counted back from the frame predicted: the last frame always has
        position `window - 1`, so a short burn-in at the start of a clip uses the positions
        `window - t, ..., window - 1`, as the same frames have inside a full window.
        """
        num_frames = frames.shape[1]
        position = self.time_embedding[self.config.window - num_frames:]  # [t,c]
        x = self.project_in(frames) + position[:, None, :]
        padding = None
        if slot_mask is not None:
            padding = repeat(~slot_mask, "b n -> b (t n)", t=num_frames)
        hidden = self.transformer(rearrange(x, "b t n c -> b (t n) c"),
                                  src_key_padding_mask=padding)
        last = rearrange(hidden, "b (t n) c -> b t n c", t=num_frames)[:, -1]
        step = self.project_out(last)
        if self.config.second_order and num_frames > 1:
            step = step + frames[:, -1] - frames[:, -2]
        if self.project_gate is not None:
            step = (1 + self.project_gate(last)).clamp(0, 1) * step
        next_slots = step + frames[:, -1] if self.config.residual else step
        if slot_mask is not None:
            next_slots = torch.where(slot_mask[:, :, None], next_slots, 0.0)
        return next_slots

    @torch.no_grad()
    def imagine(
        self,
        video: torch.Tensor,
        encoder: SmoothSAModel,
        burn_in: int,
        steps: int,
        slot_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Imagination:
        """Encodes the first `burn_in` frames of `video` with the frozen encoder, rolls out
        `steps` frames and decodes the predicted slots with the encoder's decoder (inference:
        no gradients).

        Args:
            video: `[b,t,3,H,W]` pixels in `[0,1]` (t >= burn_in; later frames are not used).
            encoder: the video encoder whose slots this model was trained on.
            slot_mask: `[b,n]` bool, False for a removed slot: the encoder still sees its object
                in the burn-in frames, but the rollout and the decoder leave it out.
            generator: the encoder's random draws (its initial queries).
        """
        if video.ndim != 5 or video.shape[1] < burn_in or burn_in < 1:
            raise ValueError(f"video must be [b,t,c,H,W] with t >= burn_in = {burn_in} >= 1, "
                             f"got shape {tuple(video.shape)}")
        encoded, _ = encoder.encode_video(video[:, :burn_in], generator=generator, decode=False)
        slots = self.rollout(encoded.slots, steps, slot_mask)
        masks, reconstruction = encoder.decode_slots(slots, slot_mask)
        return Imagination(encoded.slots, slots, masks, reconstruction)

    def check_input(
        self, slots: torch.Tensor, steps: int, slot_mask: torch.Tensor | None
    ) -> None:
        """Raises ValueError naming what is wrong with a burn-in, a step count or a slot mask."""
        if slots.ndim != 4 or slots.shape[1] < 1 or slots.shape[3] != self.config.slot_dim:
            raise ValueError(f"burn-in slots must be [b,t>=1,n,{self.config.slot_dim}], got "
                             f"shape {tuple(slots.shape)}")
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if slot_mask is None:
            return
        expected = (slots.shape[0], slots.shape[2])
        if slot_mask.dtype != torch.bool or tuple(slot_mask.shape) != expected:
            raise ValueError(f"slot_mask must be bool [b,n] = {list(expected)}, got "
                             f"{slot_mask.dtype} {list(slot_mask.shape)}")
        if not slot_mask.any(dim=1).all():
            raise ValueError("slot_mask removes every slot of a sample; keep at least one")
