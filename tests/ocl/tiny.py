"""Tiny encoder configs built locally (nothing is downloaded)."""

from transformers import Dinov2WithRegistersConfig

from ocl.configuration import SmoothSAConfig


def tiny_dinov2() -> Dinov2WithRegistersConfig:
    """A 2-block, 32-wide DINOv2 with 4 registers and 14-pixel patches."""
    return Dinov2WithRegistersConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14
    )


def tiny_config(backbone: str = "cnn", decoder: str = "autoregressive", video: bool = True,
                **fields) -> SmoothSAConfig:
    """A small encoder: 4 slots of 32, images 32x32 (DINOv2: 64x64, a 4x4 grid)."""
    return SmoothSAConfig(**tiny_fields(backbone, decoder, video, **fields))


def tiny_fields(backbone: str = "cnn", decoder: str = "autoregressive", video: bool = True,
                **fields) -> dict:
    """The SmoothSAConfig fields of `tiny_config`."""
    values = dict(
        backbone=backbone, decoder=decoder, num_slots=4, slot_dim=32,
        transit_window=3 if video else 0, decoder_layers=2, decoder_hidden_dim=32,
        cnn_channels=16, cnn_layers=2, image_size=(32, 32),
    )
    if backbone == "dinov2":
        values.update(backbone_config=tiny_dinov2().to_dict(), image_size=(64, 64))
    if backbone == "features":
        values.update(feature_dim=24, image_size=(6, 6))
    values.update(fields)
    return values
