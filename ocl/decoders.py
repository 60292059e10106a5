"""Decoders that reconstruct a frame from its slots, and whose attention gives the slot masks.

Axes: b batch, n slots, d slot channels, p = h*w target tokens, c target channels,
H W pixels.
"""

from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from ocl.decoder_layer import PreNormDecoderLayer
from ocl.position_embedding import SoftPositionEmbedding


@dataclass
class DecoderOutput:
    """reconstruction: `[b,p,c]` features or `[b,3,H,W]` pixels; masks: `[b,n,p]` or `[b,n,H,W]`,
    each token's or pixel's weights over slots; slot_pixels: each slot's own RGB `[b,n,3,H,W]`
    (pixel decoders only); mask_logits: the broadcast decoder's own alpha logits `[b,n,H,W]`
    when the masks were given to it."""

    reconstruction: torch.Tensor
    masks: torch.Tensor
    slot_pixels: torch.Tensor | None = None
    mask_logits: torch.Tensor | None = None


class RandomOrderTransformerDecoder(nn.Module):
    """SmoothSA's feature decoder: an autoregressive transformer decoder in a random token order.

    The target tokens are projected, given a learned 1-D position embedding and decoded by
    pre-norm transformer decoder layers whose memory is the projected slots. In training each
    sample's tokens are shuffled and only a prefix is kept, the rest replaced by a mask token:
    half the samples keep a uniform random prefix, the others keep 10% of the tokens, so the
    decoder must predict most of the frame from the slots. In evaluation nothing is masked. The
    masks are the last layer's cross-attention over slots, averaged over heads.

    Args:
        feature_dim: c. slot_dim: d. num_tokens: p. num_layers, num_heads: the decoder.
        random_prefix_probability: share of training samples that keep a random prefix.
        short_prefix_fraction: share of tokens the other samples keep.
    """

    def __init__(
        self,
        feature_dim: int,
        slot_dim: int,
        num_tokens: int,
        num_layers: int = 4,
        num_heads: int = 4,
        random_prefix_probability: float = 0.5,
        short_prefix_fraction: float = 0.1,
    ):
        super().__init__()
        self.random_prefix_probability = random_prefix_probability
        self.short_prefix = max(int(num_tokens * short_prefix_fraction) - 1, 0)
        self.mask_token = nn.Parameter(torch.randn(1, 1, feature_dim) * feature_dim**-0.5)
        self.position_embedding = nn.Parameter(torch.empty(1, num_tokens, feature_dim))
        nn.init.trunc_normal_(self.position_embedding)
        self.project_target = nn.Sequential(
            nn.Linear(feature_dim, feature_dim, bias=False), nn.LayerNorm(feature_dim)
        )
        self.project_slots = nn.Sequential(
            nn.Linear(slot_dim, feature_dim, bias=False), nn.LayerNorm(feature_dim)
        )
        self.norm_input = nn.LayerNorm(feature_dim, bias=False)
        self.layers = nn.ModuleList(
            PreNormDecoderLayer(feature_dim, num_heads, norm_before_self=index > 0)
            for index in range(num_layers)
        )

    def forward(
        self,
        target: torch.Tensor | None,
        slots: torch.Tensor,
        slot_mask: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """
        Args:
            target: the features to reconstruct `[b,p,c]`; None decodes from the slots alone
                (every token is the mask token), e.g. for predicted slots of unseen frames.
            slots: `[b,n,d]`.
            slot_mask: `[b,n]` bool, True for slots that take part.
        """
        batch_size = slots.shape[0]
        num_tokens, channels = self.position_embedding.shape[1:]
        position = self.position_embedding.expand(batch_size, -1, -1)
        if target is None:
            x = self.norm_input(self.mask_token + position)
            return self.attend_slots(x, slots, slot_mask)
        if target.shape[1] != num_tokens:
            raise ValueError(f"decoder was built for {num_tokens} tokens, got {target.shape[1]}")
        tokens = self.project_target(target)
        if self.training:
            order = torch.stack(
                [torch.randperm(num_tokens, device=target.device) for _ in range(batch_size)]
            )
            keep = torch.where(
                torch.rand(batch_size, 1, device=target.device) < self.random_prefix_probability,
                torch.randint(0, num_tokens - 1, (batch_size, 1), device=target.device),
                self.short_prefix,
            )
            kept = torch.arange(num_tokens, device=target.device)[None] < keep
            index = repeat(order, "b p -> b p c", c=channels)
            tokens = tokens.gather(1, index).where(kept[:, :, None], self.mask_token)
            position = position.gather(1, index)
        decoded = self.attend_slots(self.norm_input(tokens + position), slots, slot_mask)
        if self.training:
            inverse = repeat(order.argsort(dim=1), "b p -> b p 1")
            decoded.reconstruction = decoded.reconstruction.gather(
                1, inverse.expand(-1, -1, channels)
            )
            decoded.masks = decoded.masks.gather(2, inverse.transpose(1, 2).expand(
                -1, slots.shape[1], -1))
        return decoded

    def attend_slots(
        self, x: torch.Tensor, slots: torch.Tensor, slot_mask: torch.Tensor | None
    ) -> DecoderOutput:
        """Runs the layers on queries `x` `[b,p,c]` with the projected slots as memory."""
        memory = self.project_slots(slots)
        padding = None if slot_mask is None else ~slot_mask
        for index, layer in enumerate(self.layers):
            x, attention = layer(
                x, memory, padding, return_cross_attention=index == len(self.layers) - 1
            )
        return DecoderOutput(x, rearrange(attention, "b p n -> b n p"))


class MLPDecoder(nn.Module):
    """DINOSAUR's feature decoder: each slot decodes every token independently.

    Each slot is broadcast to the p tokens, gets a learned position embedding and passes through
    an MLP that gives c features and one alpha logit per token; the alphas are normalised over
    slots and weight the slots' features.

    Args:
        feature_dim: c. slot_dim: d. num_tokens: p. hidden_dim: width of the 3 hidden layers.
    """

    def __init__(self, feature_dim: int, slot_dim: int, num_tokens: int, hidden_dim: int = 1024):
        super().__init__()
        self.position_embedding = nn.Parameter(torch.randn(1, 1, num_tokens, slot_dim) * 0.02)
        self.mlp = nn.Sequential(
            nn.Linear(slot_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, feature_dim + 1),
        )

    def forward(
        self,
        target: torch.Tensor | None,
        slots: torch.Tensor,
        slot_mask: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """target `[b,p,c]` (only its size is checked; may be None), slots `[b,n,d]`,
        slot_mask `[b,n]`."""
        if target is not None and target.shape[1] != self.position_embedding.shape[2]:
            raise ValueError(
                f"decoder was built for {self.position_embedding.shape[2]} tokens, "
                f"got {target.shape[1]}"
            )
        decoded = self.mlp(slots[:, :, None, :] + self.position_embedding)
        features, logits = decoded[..., :-1], decoded[..., -1]
        if slot_mask is not None:
            logits = logits.masked_fill(~slot_mask[:, :, None], float("-inf"))
        masks = logits.softmax(dim=1)
        reconstruction = torch.einsum("bnp,bnpc->bpc", masks, features)
        return DecoderOutput(reconstruction, masks)


class SpatialBroadcastDecoder(nn.Module):
    """The spatial-broadcast pixel decoder of Slot Attention, for training from pixels.

    Each slot is tiled on a `grid x grid` map with a soft position embedding, upsampled by
    stride-2 transposed convolutions to the image size, and decoded to RGB plus an alpha logit;
    the alphas are normalised over slots and weight the slots' RGB.

    Args:
        slot_dim: d. image_size: (H, W), each `grid * 2**k` for the same k.
        channels: width of the convolutions. grid: side of the starting map.
        full_resolution_layers: 5x5 convolutions at the image size before the output layer.
    """

    def __init__(
        self,
        slot_dim: int,
        image_size: tuple[int, int],
        channels: int = 64,
        grid: int = 8,
        full_resolution_layers: int = 1,
    ):
        super().__init__()
        height, width = image_size
        if height % grid or width % grid or height // grid != width // grid:
            raise ValueError(f"image size {image_size} must be a square multiple of grid {grid}")
        num_upsamplings = (height // grid).bit_length() - 1
        if grid * 2**num_upsamplings != height:
            raise ValueError(f"image side {height} must be grid {grid} times a power of two")
        self.grid = grid
        self.num_upsamplings = num_upsamplings
        self.full_resolution_layers = full_resolution_layers
        self.position_embedding = SoftPositionEmbedding(slot_dim, (grid, grid))
        layers: list[nn.Module] = []
        in_channels = slot_dim
        for _ in range(num_upsamplings):
            layers += [
                nn.ConvTranspose2d(in_channels, channels, 5, stride=2, padding=2, output_padding=1),
                nn.ReLU(),
            ]
            in_channels = channels
        for _ in range(full_resolution_layers):
            layers += [nn.Conv2d(in_channels, channels, 5, padding=2), nn.ReLU()]
            in_channels = channels
        layers += [nn.Conv2d(in_channels, 4, 3, padding=1)]
        self.network = nn.Sequential(*layers)

    def grown_state(
        self, state: dict[str, torch.Tensor], full_resolution_layers: int
    ) -> dict[str, torch.Tensor]:
        """`state`, the parameters (no prefix) of a decoder like this one but with fewer
        full-resolution layers or channels, made this decoder's so that it draws what the source
        drew. Extra layers start as the identity (a Dirac kernel and no bias pass the ReLU'd map
        through their ReLU unchanged). Extra channels keep this decoder's initial incoming weights
        and get no bias and zero outgoing weights: they see the map but reach nothing until
        trained."""
        if not 0 <= full_resolution_layers <= self.full_resolution_layers:
            raise ValueError(
                f"a decoder with {full_resolution_layers} full-resolution layers cannot be "
                f"deepened to {self.full_resolution_layers}"
            )
        if full_resolution_layers < self.full_resolution_layers and self.num_upsamplings == 0:
            raise ValueError("a decoder that starts at the image size cannot be deepened")
        output = 2 * (self.num_upsamplings + self.full_resolution_layers)
        source_output = 2 * (self.num_upsamplings + full_resolution_layers)
        grown = {}
        for key, value in state.items():
            if key.startswith(f"network.{source_output}."):
                key = key.replace(f"network.{source_output}.", f"network.{output}.", 1)
            grown[key] = value
        source_channels = state["network.0.weight"].shape[1 if self.num_upsamplings else 0]
        for index in range(source_output, output, 2):  # each new convolution (its ReLU follows)
            kernel = self.network[index].kernel_size
            weight = torch.empty(source_channels, source_channels, *kernel)
            grown[f"network.{index}.weight"] = nn.init.dirac_(weight)
            grown[f"network.{index}.bias"] = torch.zeros(source_channels)
        initial = self.state_dict()
        # only the convolutions' channels grow; another slot size is the caller's mismatch
        return {key: self._widened(key, value, initial[key])
                if key.startswith("network.") and value.shape != initial[key].shape else value
                for key, value in grown.items()}

    def _widened(self, key: str, value: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        """`value`, a parameter of a narrower network, embedded in this one's `initial`."""
        fits = value.dim() == initial.dim() and all(
            old <= new for old, new in zip(value.shape, initial.shape, strict=True)
        )
        if not fits:
            raise ValueError(f"decoder {key} {tuple(value.shape)} cannot grow into "
                             f"{tuple(initial.shape)}")
        widened = initial.clone()
        if value.dim() == 1:  # a bias: the new channels' is zero
            widened[len(value):] = 0
            widened[: len(value)] = value
            return widened
        # the axis of the input channels: [in, out, k, k] transposed, else [out, in, k, k]
        transposed = isinstance(self.network[int(key.split(".")[1])], nn.ConvTranspose2d)
        inputs = 0 if transposed else 1
        new_inputs = initial.shape[inputs] - value.shape[inputs]
        widened.narrow(inputs, value.shape[inputs], new_inputs).zero_()
        widened[: value.shape[0], : value.shape[1]] = value
        return widened

    def forward(
        self,
        target: torch.Tensor | None,
        slots: torch.Tensor,
        slot_mask: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """target `[b,3,H,W]` (only its size is checked; may be None), slots `[b,n,d]`,
        slot_mask `[b,n]`; masks `[b,n,H,W]`: weights over slots to compose the RGB with instead
        of the decoder's own alpha (which is then returned as `mask_logits`)."""
        batch_size, num_slots, _ = slots.shape
        tiled = repeat(slots, "b n d -> (b n) h w d", h=self.grid, w=self.grid)
        tiled = rearrange(self.position_embedding(tiled), "bn h w d -> bn d h w")
        decoded = rearrange(self.network(tiled), "(b n) c h w -> b n c h w", b=batch_size)
        if target is not None and decoded.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"decoded {tuple(decoded.shape[-2:])}, target {tuple(target.shape)}")
        rgb, logits = decoded[:, :, :3], decoded[:, :, 3]
        if slot_mask is not None:
            logits = logits.masked_fill(~slot_mask[:, :, None, None], float("-inf"))
        if masks is None:
            masks = logits.softmax(dim=1)
            logits = None
        elif masks.shape != logits.shape:
            raise ValueError(f"masks {tuple(masks.shape)}, slots' alpha {tuple(logits.shape)}")
        reconstruction = torch.einsum("bnhw,bnchw->bchw", masks, rgb)
        return DecoderOutput(reconstruction, masks, rgb, logits)
