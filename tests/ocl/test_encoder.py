"""Behaviour of the SmoothSA encoder on tiny configs: shapes, iterations, streaming, gradients."""

import pytest
import torch
from einops import rearrange

from ocl.modeling import SmoothSAModel
from tests.ocl.tiny import tiny_config, tiny_dinov2

CASES = [
    ("cnn", "autoregressive"),
    ("cnn", "mlp"),
    ("cnn", "broadcast"),
    ("dinov2", "autoregressive"),
    ("dinov2", "mlp"),
    ("features", "autoregressive"),
]


def inputs_for(model: SmoothSAModel, *leading: int) -> torch.Tensor:
    height, width = model.config.image_size
    generator = torch.Generator().manual_seed(0)
    return torch.rand(*leading, model.input_channels, height, width, generator=generator)


def build(*args, **kwargs) -> SmoothSAModel:
    torch.manual_seed(0)
    return SmoothSAModel(tiny_config(*args, **kwargs))


@pytest.mark.parametrize("backbone,decoder", CASES)
def test_image_shapes(backbone, decoder):
    model = build(backbone, decoder, video=False).eval()
    config, (h, w) = model.config, model.grid
    output = model(inputs_for(model, 2))
    c = model.backbone.feature_dim
    assert output.slots.shape == (2, config.num_slots, config.slot_dim)
    assert output.initial_queries.shape == (2, config.num_slots, config.slot_dim)
    assert output.attention.shape == (2, config.num_slots, h, w)
    assert output.features.shape == (2, c, h, w)
    if decoder == "broadcast":
        assert output.reconstruction.shape == output.target.shape == (2, 3, 32, 32)
        assert output.decoder_attention.shape == (2, config.num_slots, 32, 32)
    else:
        assert output.reconstruction.shape == output.target.shape == (2, c, h, w)
        assert output.decoder_attention.shape == (2, config.num_slots, h, w)
    # Both attentions are distributions over slots at every position.
    torch.testing.assert_close(output.attention.sum(1), torch.ones(2, h, w))
    torch.testing.assert_close(output.decoder_attention.sum(1),
                               torch.ones_like(output.decoder_attention[:, 0]))


def test_grid_follows_the_configs():
    assert build("dinov2").grid == (4, 4)  # 64 * 0.875 = 56 = 4 patches of 14
    assert build("cnn").grid == (16, 16)  # one stride-2 convolution
    assert build("cnn", cnn_downsample=1).grid == (32, 32)
    assert build("features").grid == (6, 6)


@pytest.mark.parametrize("backbone,decoder", CASES)
def test_video_shapes(backbone, decoder):
    model = build(backbone, decoder).eval()
    config, (h, w) = model.config, model.grid
    output = model(inputs_for(model, 2, 5))
    assert output.slots.shape == (2, 5, config.num_slots, config.slot_dim)
    assert output.initial_queries.shape == (2, config.num_slots, config.slot_dim)
    assert output.attention.shape == (2, 5, config.num_slots, h, w)
    assert output.decoder_attention.shape[:3] == (2, 5, config.num_slots)
    assert output.reconstruction.shape == output.target.shape
    assert output.reconstruction.shape[:2] == (2, 5)


def count_iterations(model: SmoothSAModel, video: torch.Tensor) -> list[int]:
    """GRU calls of Slot Attention per frame."""
    calls, per_frame = [], []

    def end_of_frame(*_):
        per_frame.append(len(calls))
        calls.clear()

    handle = model.slot_attention.gru.register_forward_hook(lambda *_: calls.append(1) and None)
    frame_hook = model.slot_attention.register_forward_hook(end_of_frame)
    model(video)
    handle.remove()
    frame_hook.remove()
    return per_frame


def test_first_frame_runs_three_iterations_later_frames_one():
    model = build("cnn").eval()
    assert count_iterations(model, inputs_for(model, 1, 4)) == [3, 1, 1, 1]
    model = build("cnn", num_iterations=5, num_iterations_later=2).eval()
    assert count_iterations(model, inputs_for(model, 1, 3)) == [5, 2, 2]
    image_model = build("cnn", video=False).eval()
    assert count_iterations(image_model, inputs_for(image_model, 2)) == [3]


@pytest.mark.parametrize("chunks", [[1, 1, 1, 1, 1, 1, 1], [3, 4], [2, 2, 3], [7]])
def test_streaming_equals_whole_clip(chunks):
    model = build("cnn", transit_window=4).eval()
    video = inputs_for(model, 2, sum(chunks))
    noise = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(3))
    whole = model(video, noise=noise)
    state, parts, start = None, [], 0
    for size in chunks:
        part, state = model.encode_video(video[:, start:start + size], state, noise=noise)
        parts.append(part)
        start += size
        # The carried state never grows past the transit window.
        assert state.slots.shape[1] <= model.config.transit_window - 1
        assert state.tokens.shape[1] <= model.config.transit_window - 1
    assert state.num_frames == sum(chunks)
    for field in ("slots", "attention", "decoder_attention", "reconstruction"):
        streamed = torch.cat([getattr(part, field) for part in parts], dim=1)
        torch.testing.assert_close(streamed, getattr(whole, field), atol=1e-5, rtol=0)
    torch.testing.assert_close(parts[0].initial_queries, whole.initial_queries)
    assert all(part.initial_queries is None for part in parts[1:])


def test_explicit_noise_and_generator_make_extraction_deterministic():
    model = build("cnn").eval()
    video = inputs_for(model, 2, 3)
    first = model(video, generator=torch.Generator().manual_seed(7)).slots
    again = model(video, generator=torch.Generator().manual_seed(7)).slots
    other = model(video, generator=torch.Generator().manual_seed(8)).slots
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    noise = torch.randn(2, 4, 32)
    assert torch.equal(model(video, noise=noise).slots, model(video, noise=noise).slots)
    with pytest.raises(ValueError, match=r"noise must have shape \(2, 4, 32\)"):
        model(video, noise=torch.randn(2, 3, 32))


def test_gradients_reach_what_trains_and_never_the_frozen_backbone():
    model = build("dinov2").train()
    model.initializer.detach_flag.fill_(False)
    losses_input = model(inputs_for(model, 2, 3))
    loss = (losses_input.reconstruction - losses_input.target).pow(2).mean()
    loss = loss + (losses_input.initial_queries - losses_input.slots[:, 0].detach()).pow(2).mean()
    loss.backward()
    backbone = [p for p in model.backbone.parameters()]
    assert backbone and all(not p.requires_grad and p.grad is None for p in backbone)
    for name, parameter in model.named_parameters():
        if name.startswith("backbone."):
            continue
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_trainable_cnn_backbone_gets_gradients():
    model = build("cnn", "broadcast").train()
    output = model(inputs_for(model, 2, 2))
    (output.reconstruction - output.target).pow(2).mean().backward()
    grads = [p.grad for p in model.backbone.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_backbone_stays_in_eval_mode_when_training():
    model = build("dinov2").train()
    assert model.training and not model.backbone.model.training


def test_detach_flag_cuts_the_preheater_from_the_encoder():
    model = build("features", video=False).train()
    features = inputs_for(model, 2).requires_grad_(False)
    for flag, reaches in ((True, False), (False, True)):
        model.zero_grad()
        model.initializer.detach_flag.fill_(flag)
        model(features).initial_queries.sum().backward()
        grad = model.project[1].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == reaches


def test_preheater_off_uses_a_plain_gaussian():
    model = build("cnn", use_preheater=False).eval()
    output = model(inputs_for(model, 2, 2))
    assert output.initial_queries is None
    assert not hasattr(model.initializer, "layer")


def test_learned_queries_are_per_slot_and_need_no_noise():
    model = build("cnn", use_preheater=False, cold_start="learned", video=False).eval()
    images = inputs_for(model, 2)
    first, second = model(images), model(images, noise=torch.randn(2, 4, 32))
    assert torch.equal(first.slots, second.slots)
    queries = model.initializer.queries[0]
    assert torch.nn.functional.cosine_similarity(queries[:, None], queries[None], dim=-1).abs()[
        ~torch.eye(4, dtype=torch.bool)].max() < 0.9
    first.reconstruction.sum().backward()
    assert model.initializer.queries.grad.abs().sum() > 0


def test_preheater_refines_the_learned_cold_start():
    model = build("cnn", cold_start="learned", video=False).eval()
    images = inputs_for(model, 2)
    first, second = model(images), model(images, noise=torch.randn(2, 4, 32))
    torch.testing.assert_close(first.initial_queries, second.initial_queries)
    assert not torch.allclose(first.initial_queries[0], first.initial_queries[1])  # reads frames
    first.initial_queries.sum().backward()
    assert model.initializer.cold_start.queries.grad.abs().sum() > 0
    # It holds no shared Gaussian it would not use.
    assert not any("mean" in name or name.endswith(".logstd")
                   for name, _ in model.initializer.named_parameters())


def test_transit_draws_random_window_frames_only_in_training():
    model = build("features", transit_window=4)
    slots, tokens = torch.randn(8, 3, 4, 32), torch.randn(8, 4, 36, 24)
    model.eval()
    evaluation = model.transit(slots, tokens)
    only_latest = slots.clone()
    only_latest[:, :-1] = 0
    torch.testing.assert_close(model.transit(only_latest, tokens), evaluation)
    model.train()
    model.transit.layer.dropout = torch.nn.Dropout(0.0)
    draws = {tuple(model.transit(slots, tokens, torch.Generator().manual_seed(s))[:, 0, 0].tolist())
             for s in range(4)}
    assert len(draws) > 1


def test_masked_slot_gets_no_attention():
    model = build("features", video=False).eval()
    tokens = torch.randn(2, 36, 24)
    queries = torch.randn(2, 4, 32)
    mask = torch.tensor([[True, True, False, True], [True, False, False, True]])
    _, attention = model.slot_attention(tokens, queries, slot_mask=mask)
    assert torch.all(attention[~mask] == 0)
    torch.testing.assert_close(attention.sum(1), torch.ones(2, 36))


def test_save_load_round_trip(tmp_path):
    for backbone, decoder in [("cnn", "broadcast"), ("dinov2", "autoregressive")]:
        model = build(backbone, decoder).eval()
        model.save_pretrained(tmp_path / backbone)
        assert (tmp_path / backbone / "model.safetensors").is_file()
        loaded = SmoothSAModel.from_pretrained(tmp_path / backbone).eval()
        video = inputs_for(model, 2, 3)
        noise = torch.randn(2, 4, 32)
        before, after = model(video, noise=noise), loaded(video, noise=noise)
        assert torch.equal(before.slots, after.slots)
        assert torch.equal(before.reconstruction, after.reconstruction)


def test_dinov2_backbone_loads_by_local_path(tmp_path):
    from transformers import Dinov2WithRegistersModel

    torch.manual_seed(1)
    Dinov2WithRegistersModel(tiny_dinov2()).save_pretrained(tmp_path)
    model = SmoothSAModel.from_dinov2(str(tmp_path), image_size=(64, 64), num_slots=3, slot_dim=32)
    reference = Dinov2WithRegistersModel.from_pretrained(tmp_path)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.backbone.model.state_dict()[key], value), key
    # The patch tokens of the last block, before the final LayerNorm.
    images = torch.rand(1, 3, 64, 64)
    normalised = (images - torch.tensor(model.config.pixel_mean)[:, None, None]) / torch.tensor(
        model.config.pixel_std)[:, None, None]
    resized = torch.nn.functional.interpolate(normalised, size=(56, 56), mode="bicubic")
    hidden = reference(resized, output_hidden_states=True).hidden_states[-1][:, 5:]
    expected = rearrange(hidden, "b (h w) c -> b c h w", h=4)
    torch.testing.assert_close(model.backbone(images), expected)


@pytest.mark.parametrize(
    "shape,message",
    [
        ((2, 32, 32), r"images \[b,c,H,W\] or videos"),
        ((1, 1, 2, 3, 32, 32), r"images \[b,c,H,W\] or videos"),
        ((2, 4, 32, 32), "input has 4 channels, this encoder takes 3"),
        ((2, 3, 30, 32), "input is 30x32, this encoder was built for 32x32"),
    ],
)
def test_bad_inputs_raise_clear_errors(shape, message):
    model = build("cnn").eval()
    with pytest.raises(ValueError, match=message):
        model(torch.rand(shape))


def test_nan_and_integer_inputs_are_refused():
    model = build("cnn").eval()
    images = torch.rand(2, 3, 32, 32)
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(images)
    with pytest.raises(ValueError, match="floating point"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_image_model_refuses_videos():
    model = build("cnn", video=False).eval()
    with pytest.raises(ValueError, match="no transit"):
        model(torch.rand(1, 2, 3, 32, 32))


def test_resolution_not_divisible_by_the_patch_size_is_refused():
    with pytest.raises(ValueError, match="not divisible by the patch size 14"):
        build("dinov2", image_size=(60, 60))


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(backbone="vit"), "backbone must be one of"),
        (dict(decoder="vae"), "decoder must be one of"),
        (dict(transit_window=1), "transit_window must be 0"),
        (dict(slot_dim=30), "not divisible by preheater_heads"),
        (dict(num_slots=0), "num_slots must be at least 1"),
        (dict(weight_init="orthogonal"), "weight_init must be one of"),
        (dict(iteration_gradients="first"), "iteration_gradients must be"),
        (dict(cold_start="kmeans"), "cold_start must be"),
    ],
)
def test_bad_configs_raise_clear_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**fields)


def test_truncation_cuts_gradients_through_early_iterations_only():
    """Bi-level truncation changes gradients, not slots; with one iteration it changes nothing."""
    from ocl.slot_attention import SlotAttention

    torch.manual_seed(0)
    inputs, queries = torch.randn(2, 10, 8), torch.randn(2, 3, 16, requires_grad=True)
    truncated = SlotAttention(8, 16, num_iterations=3)
    full = SlotAttention(8, 16, num_iterations=3, truncate=False)
    full.load_state_dict(truncated.state_dict())
    gradients = {}
    for name, module in (("truncated", truncated), ("full", full)):
        slots, _ = module(inputs, queries)
        gradients[name] = torch.autograd.grad(slots.sum(), [module.to_k.weight, queries])
        gradients[name + " slots"] = slots.detach()
        one, _ = module(inputs, queries, num_iterations=1)
        gradients[name + " one"] = torch.autograd.grad(one.sum(), [module.to_k.weight])[0]
    torch.testing.assert_close(gradients["truncated slots"], gradients["full slots"])
    assert not torch.allclose(gradients["truncated"][0], gradients["full"][0], atol=1e-4)
    assert not torch.allclose(gradients["truncated"][1], gradients["full"][1], atol=1e-4)
    torch.testing.assert_close(gradients["truncated one"], gradients["full one"])
    model = build("cnn", iteration_gradients="all")
    assert not model.slot_attention.truncate and build("cnn").slot_attention.truncate


def test_extraction_without_decoder_gives_the_same_slots():
    model = build("cnn").eval()
    video = inputs_for(model, 2, 3)
    noise = torch.randn(2, 4, 32)
    full = model(video, noise=noise)
    slots_only = model(video, noise=noise, decode=False)
    assert torch.equal(full.slots, slots_only.slots)
    assert torch.equal(full.attention, slots_only.attention)
    assert slots_only.reconstruction is None and slots_only.decoder_attention is None


@pytest.mark.parametrize("backbone,decoder", CASES)
def test_decoding_slots_alone(backbone, decoder):
    model = build(backbone, decoder).eval()
    slots = torch.randn(2, 3, 4, 32)
    masks, reconstruction = model.decode_slots(slots)
    encoded = model(inputs_for(model, 2, 3))
    assert masks.shape == encoded.decoder_attention.shape
    assert reconstruction.shape == encoded.reconstruction.shape
    torch.testing.assert_close(masks.sum(2), torch.ones_like(masks[:, :, 0]))
    if decoder != "autoregressive":  # these decoders never look at the frame
        again, _ = model.decode_slots(encoded.slots)
        torch.testing.assert_close(again, encoded.decoder_attention)


@pytest.mark.parametrize("decoder", ["autoregressive", "mlp", "broadcast"])
def test_decoding_slots_alone_without_a_removed_slot(decoder):
    model = build("cnn", decoder).eval()
    slots = torch.randn(2, 3, 4, 32)
    slot_mask = torch.tensor([[True, False, True, True], [True, True, True, True]])
    masks, reconstruction = model.decode_slots(slots, slot_mask)
    assert masks[0, :, 1].abs().max() == 0
    torch.testing.assert_close(masks.sum(2), torch.ones_like(masks[:, :, 0]))
    changed = slots.clone()
    changed[0, :, 1] = 100.0  # a removed slot's values do not matter
    again_masks, again_reconstruction = model.decode_slots(changed, slot_mask)
    torch.testing.assert_close(again_masks, masks)
    torch.testing.assert_close(again_reconstruction, reconstruction)
    with pytest.raises(ValueError, match="slot_mask must be bool"):
        model.decode_slots(slots, slot_mask.float())


@pytest.mark.parametrize("layers", [0, 2])
def test_broadcast_decoder_full_resolution_layers(layers):
    model = build("cnn", "broadcast", video=False, broadcast_full_resolution_layers=layers).eval()
    convolutions = [m for m in model.decoder.network if isinstance(m, torch.nn.Conv2d)]
    assert len(convolutions) == layers + 1  # then the RGB + alpha layer
    output = model(inputs_for(model, 2))
    assert output.reconstruction.shape == (2, 3, 32, 32)
    torch.testing.assert_close(output.decoder_attention.sum(1), torch.ones(2, 32, 32))
    with pytest.raises(ValueError, match="broadcast_full_resolution_layers must be >= 0"):
        build("cnn", "broadcast", broadcast_full_resolution_layers=-1)


def test_broadcast_alpha_from_slot_attention():
    model = build("cnn", "broadcast", broadcast_alpha="slot_attention").train()
    video = inputs_for(model, 2, 3)
    output = model(video)
    # The composition weights are Slot Attention's masks, upsampled to the pixels.
    upsampled = torch.nn.functional.interpolate(
        rearrange(output.attention, "b t n h w -> (b t) n h w"), size=(32, 32), mode="bilinear"
    )
    torch.testing.assert_close(
        output.decoder_attention, rearrange(upsampled, "(b t) n h w -> b t n h w", b=2)
    )
    composed = torch.einsum("btnhw,btnchw->btchw", output.decoder_attention,
                            model.decoder(None, rearrange(output.slots, "b t n d -> (b t) n d"))
                            .slot_pixels.unflatten(0, (2, 3)))
    torch.testing.assert_close(output.reconstruction, composed)
    assert output.decoder_mask_logits.shape == output.decoder_attention.shape
    # The reconstruction error reaches Slot Attention's keys through the masks; the decoder's
    # own alpha (trained apart, by `mask_prediction`) decodes slots alone.
    keys = model.slot_attention.to_k.weight
    (grad,) = torch.autograd.grad(
        torch.nn.functional.mse_loss(output.reconstruction, output.target), keys
    )
    assert grad.abs().sum() > 0
    masks, _ = model.eval().decode_slots(output.slots.detach())
    torch.testing.assert_close(masks, output.decoder_mask_logits.detach().softmax(dim=2))
    with pytest.raises(ValueError, match="broadcast_alpha must be one of"):
        build("cnn", "broadcast", broadcast_alpha="attention")


def test_default_broadcast_decoder_composes_with_its_own_alpha():
    model = build("cnn", "broadcast", video=False).eval()
    assert model(inputs_for(model, 2)).decoder_mask_logits is None


def test_variance_preserving_init_keeps_the_cnn_features_scale():
    """PyTorch's default initialisation shrinks the features of a ReLU CNN layer by layer, so at
    the start the tokens are mostly the position embedding; He initialisation keeps them."""
    images = inputs_for(build("cnn"), 8) * 2 - 1
    scales = {}
    for init in ("pytorch", "variance_preserving"):
        model = build("cnn", "broadcast", cnn_layers=4, weight_init=init)
        scales[init] = model.backbone.network(images).pow(2).mean().sqrt().item()
    keys = model.slot_attention.to_k.weight
    glorot_bound = (6 / (keys.shape[0] + keys.shape[1])) ** 0.5
    assert keys.abs().max() <= glorot_bound
    assert keys.std().item() == pytest.approx(glorot_bound / 3**0.5, rel=0.1)
    assert model.decoder.network[-1].weight.abs().max() == 0  # every slot starts drawn alike
    input_scale = images.pow(2).mean().sqrt().item()
    assert scales["pytorch"] < 0.1 * input_scale
    assert 0.3 * input_scale < scales["variance_preserving"] < 3 * input_scale


def test_cnn_pixel_shortcut_appends_each_patchs_mean_pixel():
    model = build("cnn", "broadcast", cnn_pixel_shortcut=True).eval()
    channels = model.config.cnn_channels
    assert model.backbone.feature_dim == channels + 3
    images = inputs_for(model, 2)
    position = model.backbone.position_embedding(torch.zeros(1, *model.grid, channels + 3))
    features = model.backbone(images) - rearrange(position, "1 h w c -> 1 c h w")
    patches = rearrange(images * 2 - 1, "b c (h p) (w q) -> b c h w (p q)", p=2, q=2).mean(-1)
    torch.testing.assert_close(features[:, channels:], patches)
    torch.testing.assert_close(features[:, :channels], model.backbone.network(images * 2 - 1))
    with pytest.raises(ValueError, match="cnn_pixel_shortcut needs backbone 'cnn'"):
        tiny_config("features", cnn_pixel_shortcut=True)
