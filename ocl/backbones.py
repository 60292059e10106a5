"""Backbones: images `[b,3,H,W]` in `[0,1]` to feature maps `[b,c,h,w]`.

`frozen` backbones are never trained (their features are detached and they stay in eval mode);
`grid` is (h, w) and `feature_dim` is c.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from transformers import Dinov2WithRegistersModel

from ocl.configuration import SmoothSAConfig
from ocl.position_embedding import SoftPositionEmbedding


class Dinov2Backbone(nn.Module):
    """Frozen DINOv2 with registers (`transformers`), as the paper uses it.

    Pixels are normalised (ImageNet mean/std), resized by `resize_factor` (bicubic; 256 -> 224 in
    the paper), patchified and run through every block; the patch tokens of the last block are
    taken WITHOUT the final LayerNorm, the class and register tokens dropped.
    """

    frozen = True

    def __init__(self, config: SmoothSAConfig):
        super().__init__()
        backbone_config = config.dinov2_config
        self.model = Dinov2WithRegistersModel(backbone_config)
        self.model.requires_grad_(False)
        self.resize_factor = config.resize_factor
        self.num_prefix_tokens = 1 + backbone_config.num_register_tokens
        self.feature_dim = backbone_config.hidden_size
        patch = backbone_config.patch_size
        resized = [int(side * config.resize_factor) for side in config.image_size]
        if any(side % patch for side in resized):
            raise ValueError(
                f"image_size {tuple(config.image_size)} resized by {config.resize_factor} gives "
                f"{tuple(resized)}, not divisible by the patch size {patch}"
            )
        self.grid = (resized[0] // patch, resized[1] // patch)
        self.pixel_mean = config.pixel_mean
        self.pixel_std = config.pixel_std

    def load_pretrained(self, name_or_path: str) -> None:
        """Copies weights from a Hub id or local folder of `Dinov2WithRegistersModel`."""
        pretrained = Dinov2WithRegistersModel.from_pretrained(name_or_path)
        self.model.load_state_dict(pretrained.state_dict())

    def train(self, mode: bool = True) -> "Dinov2Backbone":
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`[b,3,H,W]` in `[0,1]` -> `[b,c,h,w]`."""
        mean = images.new_tensor(self.pixel_mean)[:, None, None]
        std = images.new_tensor(self.pixel_std)[:, None, None]
        x = (images - mean) / std
        if self.resize_factor != 1:
            x = F.interpolate(x, scale_factor=self.resize_factor, mode="bicubic")
        tokens = self.model.encoder(self.model.embeddings(x)).last_hidden_state
        patches = tokens[:, self.num_prefix_tokens :]
        return rearrange(patches, "b (h w) c -> b c h w", h=self.grid[0])


class CnnBackbone(nn.Module):
    """A small trainable CNN for small synthetic images (Slot Attention's encoder).

    `cnn_layers` 5x5 convolutions with ReLU, the first of stride `cnn_downsample`, then a soft
    position embedding; the encoder's projection (LayerNorm + MLP) follows, as in Slot Attention.
    Pixels `[0,1]` are mapped to `[-1,1]`. With `cnn_pixel_shortcut`, each token's last 3
    channels are its patch's mean pixel (in `[-1,1]`).
    """

    frozen = False

    def __init__(self, config: SmoothSAConfig):
        super().__init__()
        height, width = config.image_size
        stride = config.cnn_downsample
        if height % stride or width % stride:
            raise ValueError(f"image_size {tuple(config.image_size)} not divisible by {stride}")
        channels = config.cnn_channels
        layers: list[nn.Module] = []
        for index in range(config.cnn_layers):
            layers += [
                nn.Conv2d(3 if index == 0 else channels, channels, 5,
                          stride=stride if index == 0 else 1, padding=2),
                nn.ReLU(),
            ]
        self.network = nn.Sequential(*layers)
        self.stride = stride
        self.pixel_shortcut = config.cnn_pixel_shortcut
        self.grid = (height // stride, width // stride)
        self.feature_dim = channels + 3 if self.pixel_shortcut else channels
        self.position_embedding = SoftPositionEmbedding(self.feature_dim, self.grid)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`[b,3,H,W]` in `[0,1]` -> `[b,c,h,w]`."""
        pixels = images * 2 - 1
        features = self.network(pixels)
        if self.pixel_shortcut:
            features = torch.cat([features, F.avg_pool2d(pixels, self.stride)], dim=1)
        features = rearrange(features, "b c h w -> b h w c")
        return rearrange(self.position_embedding(features), "b h w c -> b c h w")


class FeatureMapInput(nn.Module):
    """No backbone: the input is already a feature map `[b,c,h,w]` (e.g. cached DINOv2 features)."""

    frozen = True

    def __init__(self, config: SmoothSAConfig):
        super().__init__()
        self.feature_dim = config.feature_dim
        self.grid = tuple(config.image_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def build_backbone(config: SmoothSAConfig) -> nn.Module:
    """The backbone `config.backbone` names."""
    if config.backbone == "dinov2":
        return Dinov2Backbone(config)
    if config.backbone == "cnn":
        return CnnBackbone(config)
    return FeatureMapInput(config)
