"""Encoder training with Lightning on a tiny generated CLEVRER-layout set."""

import csv
import math
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ocl.train
from ocl.checkpoint_export import export_checkpoint
from ocl.configuration import SmoothSAConfig
from ocl.learning_curves import plot_learning_curves
from ocl.lightning_module import SmoothSATraining
from ocl.losses import LossWeights
from ocl.modeling import SmoothSAModel
from ocl.training_config import (
    EncoderTrainingConfig,
    OptimConfig,
    TrainerConfig,
    VideoDataConfig,
)
from tests.ocl.tiny import tiny_config, tiny_fields
from tests.tasks.clevrer_directory import make_clevrer_directory


@pytest.fixture(scope="module")
def clevrer_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clevrer")
    make_clevrer_directory(root, num_frames=6, image_size=(32, 32))
    return root


def training_config(root: Path, output: Path, **optim) -> EncoderTrainingConfig:
    return EncoderTrainingConfig(
        model=tiny_fields("cnn", "broadcast", image_size=[32, 32]),
        data=VideoDataConfig(root=str(root), image_size=[32, 32], clip_frames=2,
                             validation_frames=4, batch_size=4,
                             cache_dir=str(output.parent / "cache")),
        optim=OptimConfig(**{"learning_rate": 2e-3, "max_steps": 12, **optim}),
        trainer=TrainerConfig(output_dir=str(output), validation_every=8, checkpoint_every=4,
                              log_every=1, seed=3),
    )


@contextmanager
def trainers_with(monkeypatch, callback: ocl.train.L.Callback):
    """Inside the block, every trainer `ocl.train` builds also runs `callback`."""
    build = ocl.train.build_trainer

    def build_with_callback(config, output):
        trainer = build(config, output)
        trainer.callbacks.append(callback)
        return trainer

    with monkeypatch.context() as patch:
        patch.setattr(ocl.train, "build_trainer", build_with_callback)
        yield


def logged_losses(output: Path) -> list[float]:
    with open(output / "csv" / "metrics.csv") as rows:
        return [float(row["train/loss"]) for row in csv.DictReader(rows) if row["train/loss"]]


def test_training_lowers_the_loss_and_exports_the_encoder(clevrer_root, tmp_path):
    output = tmp_path / "run"
    metrics = ocl.train.train(training_config(clevrer_root, output, max_steps=40))
    losses = logged_losses(output)
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert {"val/ari", "val/fg_ari", "val/mbo", "val/miou"} <= set(metrics)
    encoder = SmoothSAModel.from_pretrained(output / "encoder")
    assert encoder.config.decoder == "broadcast"
    curves = plot_learning_curves(output)
    assert curves.stat().st_size > 10_000
    exported = export_checkpoint(output, "last", tmp_path / "exported")
    for key, value in encoder.state_dict().items():
        assert torch.equal(exported.state_dict()[key], value), key
    assert (output / "metrics.json").is_file() and (output / "config.yaml").is_file()
    assert sorted(p.name for p in (output / "pictures").glob("*.png")) == [
        f"step_{step:07d}.png" for step in (8, 16, 24, 32, 40)
    ]


def test_frozen_parts_keep_their_starting_weights(clevrer_root, tmp_path):
    torch.manual_seed(0)
    start = SmoothSAModel(SmoothSAConfig(**tiny_fields("cnn", "broadcast", image_size=[32, 32])))
    start.save_pretrained(tmp_path / "start")
    parts = ["backbone", "project", "initializer", "slot_attention", "transit"]
    config = training_config(clevrer_root, tmp_path / "run", max_steps=4, frozen=parts)
    config.initial_weights = str(tmp_path / "start")
    ocl.train.train(config)
    trained = SmoothSAModel.from_pretrained(tmp_path / "run" / "encoder").state_dict()
    for key, value in start.named_parameters():
        frozen = key.split(".")[0] in parts
        assert torch.equal(trained[key], value) == frozen, key
    config.optim.frozen = ["backbone", "slots"]
    config.trainer.output_dir = str(tmp_path / "misspelt")
    with pytest.raises(ValueError, match=r"\['slots'\] are not parts of this encoder"):
        ocl.train.train(config)


def test_kill_and_resume_gives_the_weights_of_an_uninterrupted_run(clevrer_root, tmp_path,
                                                                   monkeypatch):
    ocl.train.train(training_config(clevrer_root, tmp_path / "whole"))

    class Crash(Exception):
        pass

    class CrashAfterStep(ocl.train.L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 5:
                raise Crash

    with pytest.raises(Crash), trainers_with(monkeypatch, CrashAfterStep()):
        ocl.train.train(training_config(clevrer_root, tmp_path / "resumed"))
    assert (tmp_path / "resumed" / "checkpoints" / "last.ckpt").is_file()
    ocl.train.train(training_config(clevrer_root, tmp_path / "resumed"))
    whole = load_file(tmp_path / "whole" / "encoder" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "encoder" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    # The learning curve survives the crash, and the steps logged between the last checkpoint
    # and the crash are not there twice.
    def logged_training_steps(run):
        with (tmp_path / run / "csv" / "metrics.csv").open(newline="") as file:
            return [(row["step"], row["train/loss"]) for row in csv.DictReader(file)
                    if row["train/loss"]]

    assert logged_training_steps("resumed") == logged_training_steps("whole")


def test_a_run_resumes_only_with_the_same_settings(clevrer_root, tmp_path):
    output = tmp_path / "run"
    config = training_config(clevrer_root, output, max_steps=4)
    ocl.train.train(config)
    config.losses.slot_contrast = 0.1
    config.optim.learning_rate = 1e-3
    with pytest.raises(ValueError, match=r"losses\.slot_contrast: 0\.5 there, 0\.1 now; "
                                         r"optim\.learning_rate: 0\.002 there, 0\.001 now"):
        ocl.train.train(config)
    assert "slot_contrast: 0.5" in (output / "config.yaml").read_text()  # not overwritten
    saved = output / "config.yaml"  # as saved before the setting existed: its default
    saved.write_text(saved.read_text().replace("  slot_contrast_head: false\n", ""))
    assert "slot_contrast_head" not in saved.read_text()
    rerun = training_config(clevrer_root, output, max_steps=4)
    rerun.trainer.stop_at_step = 2  # does not change the weights: allowed
    assert ocl.train.train(rerun).keys() >= {"val/ari", "val/fg_ari"}


def test_preloaded_frames_give_the_same_clips(clevrer_root, tmp_path):
    from ocl.video_data import StepIndexedClips, VideoClipDataModule, preload_frames

    config = training_config(clevrer_root, tmp_path / "run").data
    data = VideoClipDataModule(config, max_steps=4, steps_per_epoch=4, seed=1)
    data.setup()
    mapped = StepIndexedClips(data.train_videos, 2, 16, seed=1)
    preloaded = StepIndexedClips(preload_frames(data.train_videos), 2, 16, seed=1)
    assert preloaded.videos.shape == (3, 6, 3, 32, 32)
    for index in range(16):
        assert torch.equal(mapped[index]["frames"], preloaded[index]["frames"])


def test_nan_loss_stops_training_with_a_clear_message():
    model = SmoothSAModel(tiny_config("cnn", "broadcast"))
    with torch.no_grad():
        model.slot_attention.to_q.weight.fill_(float("nan"))
    module = SmoothSATraining(model, OptimConfig(max_steps=10), LossWeights())
    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        module.training_step({"frames": torch.rand(2, 2, 3, 32, 32)}, 0)


def test_the_slot_contrast_head_trains_with_the_encoder_but_is_not_part_of_it():
    model = SmoothSAModel(tiny_config("cnn", "broadcast"))
    module = SmoothSATraining(model, OptimConfig(max_steps=10),
                              LossWeights(slot_contrast_head=True))
    trained = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups
               for p in group["params"]}
    assert {id(p) for p in module.contrast_head.parameters()} <= trained
    assert {id(p) for p in model.parameters()} <= trained
    assert not any("contrast" in key for key in model.state_dict())


def test_preheat_detach_schedule():
    model = SmoothSAModel(tiny_config("cnn", "broadcast"))
    module = SmoothSATraining(model, OptimConfig(max_steps=100, preheat_detach_fraction=0.1),
                              LossWeights())
    flags = []
    for step in (0, 9, 10, 50):
        module._trainer = None
        type(module).global_step = property(lambda self, step=step: step)
        module.on_train_batch_start({}, 0)
        flags.append(bool(model.initializer.detach_flag))
    del type(module).global_step
    assert flags == [True, True, False, False]


def test_evaluation_table_scores_encoders_and_grids(clevrer_root, tmp_path):
    from ocl.evaluate import main as evaluate

    model = SmoothSAModel(tiny_config("cnn", "broadcast"))
    model.save_pretrained(tmp_path / "tiny" / "encoder")
    scores = evaluate([
        "--encoders", str(tmp_path / "tiny" / "encoder"), "--data", str(clevrer_root),
        "--frames", "4", "--untrained", "--cache-dir", str(tmp_path / "cache"),
        "--out", str(tmp_path / "scores.json"),
    ])
    assert list(scores) == ["tiny", "tiny (untrained)", "grid_2x2", "grid_3x3",
                            "horizontal_stripes", "vertical_stripes"]
    for score in scores.values():
        assert -1 <= score.ari <= 1 and 0 <= score.mbo <= 1 and 0 <= score.miou <= 1
        shares = (score.kept, score.background, score.split)
        assert min(shares) >= -1e-9 and sum(shares) == pytest.approx(1.0)
        entering = (score.entering_kept, score.entering_background, score.entering_split)
        # NaN where no object comes into view within the first 4 frames
        assert all(map(math.isnan, entering)) or sum(entering) == pytest.approx(1.0)
        assert -1 <= score.fg_ari_outline_returned <= 1
    assert scores["tiny"].frames_per_second > 0 and scores["grid_2x2"].frames_per_second is None
    assert "grid_3x3" in (tmp_path / "scores.json").read_text()


def test_learning_curves_keep_the_later_value_of_a_step_logged_twice(tmp_path):
    from ocl.learning_curves import read_log

    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text(
        "epoch,step,train/preheat,val/fg_ari\n0,0,3.0,\n0,1,2.0,\n0,2,1.5,0.1\n"
        "0,1,2.5,\n0,2,1.0,0.2\n0,3,0.5,\n"  # steps 1-2 again after a resume
    )
    series = read_log(tmp_path)
    assert series["train/preheat"] == [(0, 3.0), (1, 2.5), (2, 1.0), (3, 0.5)]
    assert series["val/fg_ari"] == [(2, 0.2)]


def test_a_video_run_starts_from_an_image_encoder(tmp_path):
    torch.manual_seed(0)
    image = SmoothSAModel(tiny_config("cnn", "broadcast", video=False, use_preheater=False))
    image.save_pretrained(tmp_path / "image")
    torch.manual_seed(1)
    video = SmoothSAModel(tiny_config("cnn", "broadcast", use_preheater=False))
    transit_before = {k: v.clone() for k, v in video.state_dict().items() if "transit" in k}
    ocl.train.start_from_encoder(video, str(tmp_path / "image"))
    state = video.state_dict()
    for key, value in image.state_dict().items():
        assert torch.equal(state[key], value), key
    for key, value in transit_before.items():
        assert torch.equal(state[key], value), key
    wider = SmoothSAModel(tiny_config("cnn", "broadcast", slot_dim=48, use_preheater=False))
    with pytest.raises(ValueError, match="does not fit this model: .*32.*48"):
        ocl.train.start_from_encoder(wider, str(tmp_path / "image"))
    with pytest.raises(FileNotFoundError, match="holds no encoder"):
        ocl.train.start_from_encoder(video, str(tmp_path / "missing"))


@pytest.mark.parametrize(("layers", "channels"), [(2, 32), (0, 48), (1, 48)])
def test_a_deeper_or_wider_broadcast_decoder_starts_drawing_what_the_source_drew(
    tmp_path, layers, channels
):
    torch.manual_seed(0)
    source = SmoothSAModel(tiny_config("cnn", "broadcast", broadcast_grid=8,
                                       broadcast_full_resolution_layers=0,
                                       decoder_hidden_dim=32)).eval()
    source.save_pretrained(tmp_path / "source")
    torch.manual_seed(1)
    grown = SmoothSAModel(tiny_config("cnn", "broadcast", broadcast_grid=8,
                                      broadcast_full_resolution_layers=layers,
                                      decoder_hidden_dim=channels)).eval()
    initial = {key: value.clone() for key, value in grown.decoder.state_dict().items()}
    ocl.train.start_from_encoder(grown, str(tmp_path / "source"))
    output = grown.decoder.network[-1].weight
    assert torch.equal(output[:, :32], source.decoder.network[4].weight)
    assert not output[:, 32:].any()
    if channels > 32:  # new channels see the map through their initial weights
        first = grown.decoder.network[0].weight
        assert torch.equal(first[:, 32:], initial["network.0.weight"][:, 32:])
    video, noise = torch.rand(2, 3, 3, 32, 32), torch.randn(2, 4, 32)
    with torch.no_grad():
        drawn, redrawn = source(video, noise), grown(video, noise)
    torch.testing.assert_close(redrawn.reconstruction, drawn.reconstruction)
    torch.testing.assert_close(redrawn.decoder_attention, drawn.decoder_attention)
    assert redrawn.reconstruction.std() > 0.01


def test_a_decoder_does_not_shrink_into_a_smaller_one(tmp_path):
    torch.manual_seed(0)
    deep = SmoothSAModel(tiny_config("cnn", "broadcast", broadcast_grid=8,
                                     broadcast_full_resolution_layers=2)).eval()
    shallow = SmoothSAModel(tiny_config("cnn", "broadcast", broadcast_grid=8,
                                        broadcast_full_resolution_layers=0)).eval()
    with pytest.raises(ValueError, match="2 full-resolution layers cannot be deepened to 0"):
        shallow.decoder.grown_state(deep.decoder.state_dict(), 2)
    wide = SmoothSAModel(tiny_config("cnn", "broadcast", broadcast_grid=8,
                                     broadcast_full_resolution_layers=0, decoder_hidden_dim=48))
    wide.save_pretrained(tmp_path / "wide")
    with pytest.raises(ValueError, match=r"decoder network.0.weight \(32, 48, 5, 5\) cannot grow"):
        ocl.train.start_from_encoder(shallow, str(tmp_path / "wide"))
    other_slots = SmoothSAModel(tiny_config("cnn", "broadcast", broadcast_grid=8, slot_dim=48,
                                            broadcast_full_resolution_layers=0,
                                            decoder_hidden_dim=48))
    shallow.save_pretrained(tmp_path / "shallow")  # wider channels, but other slots: no fit
    with pytest.raises(ValueError, match="does not fit this model: .*position_embedding"):
        ocl.train.start_from_encoder(other_slots, str(tmp_path / "shallow"))


def test_a_preheater_starts_from_the_learned_queries_of_an_encoder_without_one(tmp_path):
    torch.manual_seed(0)
    plain = SmoothSAModel(tiny_config("cnn", "broadcast", use_preheater=False,
                                      cold_start="learned"))
    plain.save_pretrained(tmp_path / "plain")
    torch.manual_seed(1)
    preheated = SmoothSAModel(tiny_config("cnn", "broadcast", cold_start="learned"))
    ocl.train.start_from_encoder(preheated, str(tmp_path / "plain"))
    assert torch.equal(preheated.initializer.cold_start.queries, plain.initializer.queries)


def test_stop_at_step_cuts_a_run_short_of_its_schedule(clevrer_root, tmp_path, monkeypatch):
    at_step_8 = {}

    class Capture(ocl.train.L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            if trainer.global_step == 8:
                at_step_8.update({k: v.clone() for k, v in module.model.state_dict().items()})

    with trainers_with(monkeypatch, Capture()):
        ocl.train.train(training_config(clevrer_root, tmp_path / "whole"))  # 12 steps
    config = training_config(clevrer_root, tmp_path / "stopped")
    config.trainer.stop_at_step = 8
    ocl.train.train(config)
    assert len(logged_losses(tmp_path / "stopped")) == 8
    stopped = load_file(tmp_path / "stopped" / "encoder" / "model.safetensors")
    for key, value in stopped.items():
        torch.testing.assert_close(value, at_step_8[key], rtol=0, atol=0, msg=key)


def test_evaluated_encoders_keep_apart_in_the_table():
    from ocl.evaluate import encoder_names

    assert encoder_names(["runs/a/encoder", "runs/b/encoder500"]) == ["a", "encoder500"]
    assert encoder_names(["runs/a/step500", "runs/b/step500"]) == ["runs/a/step500",
                                                                   "runs/b/step500"]


def test_max_minutes_ends_a_run_on_time_then_validates_and_exports(clevrer_root, tmp_path,
                                                                   monkeypatch):
    class Slow(ocl.train.L.Callback):
        def on_train_batch_end(self, *args):
            time.sleep(0.1)

    config = training_config(clevrer_root, tmp_path / "run")  # 12 steps
    config.trainer.max_minutes = 0.25 / 60  # a quarter of a second: two or three steps
    with trainers_with(monkeypatch, Slow()):
        metrics = ocl.train.train(config)
    assert 1 <= len(logged_losses(tmp_path / "run")) < 6
    assert metrics.keys() >= {"val/ari", "val/fg_ari"}
    assert (tmp_path / "run" / "encoder" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match=r"trainer\.max_minutes must be >= 0, got -1"):
        TrainerConfig(max_minutes=-1)
