"""Import of checkpoints released with the official SmoothSA code.

An official checkpoint is a flat state dict (a `.pth`, or the same tensors as `.safetensors`)
whose keys begin with `m.` and name the official modules: `encode_backbone.1.*` (a timm DINOv2
ViT), `encode_project.*`, `initializ.*` (preheater), `aggregat.*` (Slot Attention), `transit.*`
(video) and `decode.*` (the random-order transformer decoder). The sizes are read off the
tensors; what the tensors cannot tell (slot count, heads, iterations) comes from the caller.
"""

import math
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from ocl.configuration import SmoothSAConfig
from ocl.modeling import SmoothSAModel

PREFIX = "m."

# Official decoder-layer names (PyTorch's TransformerDecoderLayer) -> PreNormDecoderLayer names.
DECODER_LAYER_NAMES = {
    "self_attn": "self_attention",
    "multihead_attn": "cross_attention",
    "norm1": "norm_self",
    "norm2": "norm_cross",
    "norm3": "norm_feedforward",
    "linear1": "feedforward.0",
    "linear2": "feedforward.3",
}

# (official pattern, our name) for everything but the backbone; `{}` is the rest of the key.
RENAMES = [
    (r"encode_project\.(\d)\.(.+)", "project.{}.{}"),
    (r"initializ\.mean", "initializer.cold_start.mean"),
    (r"initializ\.logstd", "initializer.cold_start.logstd"),
    (r"initializ\.logstd2", "initializer.logstd_queries"),
    (r"initializ\.detach_flag", "initializer.detach_flag"),
    (r"initializ\.qproj_kv\.(.+)", "initializer.to_memory.{}"),
    (r"initializ\.qinit\.(\w+)\.(.+)", "initializer.layer.{layer}.{}"),
    (r"aggregat\.norm1q\.(.+)", "slot_attention.norm_slots.{}"),
    (r"aggregat\.proj_q\.(.+)", "slot_attention.to_q.{}"),
    (r"aggregat\.norm1kv\.(.+)", "slot_attention.norm_inputs.{}"),
    (r"aggregat\.proj_k\.(.+)", "slot_attention.to_k.{}"),
    (r"aggregat\.proj_v\.(.+)", "slot_attention.to_v.{}"),
    (r"aggregat\.rnn\.(.+)", "slot_attention.gru.{}"),
    (r"aggregat\.norm2\.(.+)", "slot_attention.norm_mlp.{}"),
    (r"aggregat\.ffn\.(\d)\.(.+)", "slot_attention.mlp.{}.{}"),
    (r"transit\.te\.(.+)", "transit.offset_embedding.{}"),
    (r"transit\.proji\.(.+)", "transit.to_memory.{}"),
    (r"transit\.transit\.(.+)", "transit.layer.{}"),
    (r"decode\.mask_token", "decoder.mask_token"),
    (r"decode\.posit_embed\._pe", "decoder.position_embedding"),
    (r"decode\.project1\.(\d)\.(.+)", "decoder.project_target.{}.{}"),
    (r"decode\.project2\.(\d)\.(.+)", "decoder.project_slots.{}.{}"),
    (r"decode\.norm0\.(.+)", "decoder.norm_input.{}"),
    (r"decode\.backbone\.layers\.(\d+)\.(\w+)\.(.+)", "decoder.layers.{}.{layer}.{}"),
]

# timm ViT block names -> transformers Dinov2WithRegistersLayer names (qkv is split apart).
BLOCK_NAMES = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.proj": "attention.o_proj",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}

# Keys of our model that official checkpoints do not carry and that no forward pass reads.
UNUSED_KEYS = {"backbone.model.embeddings.mask_token"}
UNUSED_PREFIXES = ("backbone.model.layernorm.",)


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model: missing, unexpected or misshapen keys."""


def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads an official `.pth` (weights only) or `.safetensors` file, without the `m.` prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        state_dict = load_file(path)
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state_dict, dict):
            raise CheckpointMismatchError(f"{path} does not hold a state dict")
    return {key.removeprefix(PREFIX): value for key, value in state_dict.items()}


def config_from_official(
    state_dict: dict[str, torch.Tensor],
    num_slots: int,
    image_size: tuple[int, int] | None = None,
    backbone_heads: int | None = None,
    **kwargs,
) -> SmoothSAConfig:
    """A config whose sizes are read off an official state dict (keys without `m.`).

    Args:
        num_slots: N (official queries share one Gaussian, so the tensors do not hold it).
        image_size: input size; by default the decoder's square token grid (times the patch size
            over the resize factor when there is a DINOv2 backbone).
        backbone_heads: attention heads of the DINOv2 backbone, when there is one.
        kwargs: any other SmoothSAConfig field (iterations, heads, ...).
    """
    require(state_dict, ["initializ.mean", "encode_project.0.weight", "decode.posit_embed._pe"])
    slot_dim = state_dict["initializ.mean"].shape[-1]
    feature_dim = state_dict["encode_project.0.weight"].shape[0]
    num_tokens = state_dict["decode.posit_embed._pe"].shape[1]
    grid = math.isqrt(num_tokens)
    decoder_layers = 1 + max(
        int(match.group(1))
        for key in state_dict
        if (match := re.match(r"decode\.backbone\.layers\.(\d+)\.", key))
    )
    transit = state_dict.get("transit.te.weight")
    fields = dict(
        num_slots=num_slots,
        slot_dim=slot_dim,
        decoder="autoregressive",
        decoder_layers=decoder_layers,
        transit_window=0 if transit is None else transit.shape[0],
        use_preheater="initializ.qinit.linear1.weight" in state_dict,
    )
    if any(key.startswith("encode_backbone.") for key in state_dict):
        if backbone_heads is None:
            raise ValueError("the checkpoint has a DINOv2 backbone: pass backbone_heads")
        backbone_config = dinov2_config_from_timm(state_dict, backbone_heads)
        resize_factor = kwargs.pop("resize_factor", 0.875)
        if image_size is None:
            side = round(grid * backbone_config["patch_size"] / resize_factor)
            image_size = (side, side)
        fields.update(
            backbone="dinov2", backbone_config=backbone_config, resize_factor=resize_factor
        )
    else:
        fields.update(backbone="features", feature_dim=feature_dim)
        image_size = image_size or (grid, grid)
    return SmoothSAConfig(image_size=image_size, **fields, **kwargs)


def dinov2_config_from_timm(state_dict: dict[str, torch.Tensor], num_heads: int) -> dict:
    """`Dinov2WithRegistersConfig` fields for the timm ViT under `encode_backbone.1.`."""
    prefix = "encode_backbone.1."
    require(state_dict, [prefix + name for name in
                         ("cls_token", "reg_token", "pos_embed", "patch_embed.proj.weight")])
    hidden_size = state_dict[prefix + "cls_token"].shape[-1]
    patch_size = state_dict[prefix + "patch_embed.proj.weight"].shape[-1]
    grid = math.isqrt(state_dict[prefix + "pos_embed"].shape[1])
    depth = 1 + max(
        int(match.group(1))
        for key in state_dict
        if (match := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", key))
    )
    return dict(
        hidden_size=hidden_size,
        num_hidden_layers=depth,
        num_attention_heads=num_heads,
        mlp_ratio=state_dict[prefix + "blocks.0.mlp.fc1.weight"].shape[0] // hidden_size,
        patch_size=patch_size,
        image_size=grid * patch_size,
        num_register_tokens=state_dict[prefix + "reg_token"].shape[1],
        qkv_bias=prefix + "blocks.0.attn.qkv.bias" in state_dict,
        layer_norm_eps=1e-6,
    )


def convert_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames official keys (without `m.`) to ours; unknown keys raise CheckpointMismatchError."""
    converted, unknown = {}, []
    for key, value in state_dict.items():
        if key.startswith("encode_backbone.1."):
            converted.update(convert_timm_key(key.removeprefix("encode_backbone.1."), value))
            continue
        name = rename(key)
        if name is None:
            unknown.append(key)
        else:
            converted[name] = value
    if unknown:
        raise CheckpointMismatchError(f"unexpected keys in the checkpoint: {sorted(unknown)}")
    return converted


def rename(key: str) -> str | None:
    """Our name for an official key, or None when no rule knows it."""
    for pattern, template in RENAMES:
        match = re.fullmatch(pattern, key)
        if match is None:
            continue
        groups = list(match.groups())
        layer = None
        if "{layer}" in template:
            official_layer = groups.pop(-2)
            layer = DECODER_LAYER_NAMES.get(official_layer)
            if layer is None:
                return None
        return template.replace("{layer}", layer or "").format(*groups)
    return None


def convert_timm_key(key: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    """One timm ViT key -> the transformers DINOv2-with-registers key(s) under `backbone.model.`."""
    out = "backbone.model."
    if key == "cls_token":
        return {out + "embeddings.cls_token": value}
    if key == "reg_token":
        return {out + "embeddings.register_tokens": value}
    if key == "pos_embed":
        # timm's table covers the patches only; transformers' has a (here zero) class position.
        class_position = torch.zeros_like(value[:, :1])
        return {out + "embeddings.position_embeddings": torch.cat([class_position, value], 1)}
    if key.startswith("patch_embed.proj."):
        return {out + "embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]: value}
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias|gamma)", key)
    if match is None:
        raise CheckpointMismatchError(f"unexpected backbone key in the checkpoint: {key}")
    index, name, kind = match.groups()
    layer = f"{out}encoder.layer.{index}."
    if name == "attn.qkv":
        query, key_, value_ = value.chunk(3, dim=0)
        return {
            layer + f"attention.q_proj.{kind}": query,
            layer + f"attention.k_proj.{kind}": key_,
            layer + f"attention.v_proj.{kind}": value_,
        }
    if kind == "gamma":
        name = f"{name}.gamma"
    if name not in BLOCK_NAMES:
        raise CheckpointMismatchError(f"unexpected backbone key in the checkpoint: {key}")
    suffix = "" if kind == "gamma" else f".{kind}"
    return {layer + BLOCK_NAMES[name] + suffix: value}


def load_official_checkpoint(
    checkpoint: str | Path | dict[str, torch.Tensor],
    num_slots: int,
    config: SmoothSAConfig | None = None,
    **config_fields,
) -> SmoothSAModel:
    """A SmoothSAModel holding an official checkpoint.

    Args:
        checkpoint: a `.pth` / `.safetensors` path, or a state dict (with or without `m.`).
        num_slots: N.
        config: the model's config; by default read off the checkpoint (`config_from_official`).
        config_fields: passed to `config_from_official` (image_size, backbone_heads, heads,
            iterations, ...).

    Raises:
        CheckpointMismatchError listing the missing and unexpected keys, or misshapen tensors.
    """
    if isinstance(checkpoint, dict):
        state_dict = {key.removeprefix(PREFIX): value for key, value in checkpoint.items()}
    else:
        state_dict = read_official_state_dict(checkpoint)
    config = config or config_from_official(state_dict, num_slots, **config_fields)
    model = SmoothSAModel(config)
    load_strictly(model, convert_official_state_dict(state_dict))
    return model.eval()


def load_strictly(model: SmoothSAModel, state_dict: dict[str, torch.Tensor]) -> None:
    """Loads `state_dict`, raising CheckpointMismatchError unless every key fits exactly."""
    expected = {
        key: value for key, value in model.state_dict().items()
        if key not in UNUSED_KEYS and not key.startswith(UNUSED_PREFIXES)
    }
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshapen = [
        f"{key}: checkpoint {tuple(value.shape)}, model {tuple(expected[key].shape)}"
        for key, value in state_dict.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if missing or unexpected or misshapen:
        raise CheckpointMismatchError(
            "checkpoint does not fit the model:"
            + (f"\n  missing keys: {missing}" if missing else "")
            + (f"\n  unexpected keys: {unexpected}" if unexpected else "")
            + (f"\n  misshapen: {misshapen}" if misshapen else "")
        )
    model.load_state_dict(state_dict, strict=False)


def require(state_dict: dict[str, torch.Tensor], keys: list[str]) -> None:
    """Raises CheckpointMismatchError naming the keys the state dict lacks."""
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise CheckpointMismatchError(f"not an official SmoothSA checkpoint: missing {missing}")
