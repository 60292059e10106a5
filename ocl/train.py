"""Train a SmoothSA encoder with Lightning, evaluate its object discovery, export it.

    python -m ocl.train --config configs/ocl/clevrer_sim_small.yaml [key=value ...]

Rerunning the same command resumes from `OUTPUT/checkpoints/last.ckpt` and reaches the same
weights as a run that never stopped; a rerun with other settings is refused (`check_same_run`).
A Lightning epoch here is the `trainer.checkpoint_every` steps between two checkpoints. (Resumed
from a checkpoint, Lightning runs one more step in the checkpoint's epoch, so the validations
and checkpoints after it come one step later than in a run that never stopped; the weights at
each step are the same.) The trained encoder is written with `save_pretrained` to
`OUTPUT/encoder`, the last validation's metrics to `OUTPUT/metrics.json`.
"""

import csv
import json
import os
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ocl.checkpoint_export import save_encoder
from ocl.config_loading import (
    config_to_yaml,
    flat_settings,
    load_config,
    parse_config_arguments,
)
from ocl.configuration import SmoothSAConfig
from ocl.lightning_module import SmoothSATraining
from ocl.modeling import SmoothSAModel
from ocl.pictures import SlotPictureCallback
from ocl.training_config import EncoderTrainingConfig
from ocl.video_data import VideoClipDataModule


def appending_csv_logger(output: Path, flush_every: int) -> CSVLogger:
    """A CSV logger whose `metrics.csv` keeps the rows a run logged before the checkpoint it
    resumes from.

    Rows are written every `flush_every` steps (the logging interval), so a crash loses none.
    Lightning's writer deletes an existing `metrics.csv` when it starts; the rows of steps before
    `OUTPUT/checkpoints/last.ckpt` are put back (those after it, logged before a crash, are
    logged again by the resumed run) and their columns given to the writer, which then appends.
    """
    logger = CSVLogger(output, name="csv", version="", flush_logs_every_n_steps=flush_every)
    path = Path(logger.log_dir) / "metrics.csv"
    if path.is_file():
        header, *rows = path.read_text().splitlines(keepends=True)
        writer = logger.experiment  # deletes the file
        columns = next(csv.reader([header]))
        last = output / "checkpoints" / "last.ckpt"
        resumed_step = checkpoint_step(last) if last.is_file() else 0
        step = columns.index("step")
        path.write_text(header + "".join(
            row for row in rows if int(next(csv.reader([row]))[step]) < resumed_step
        ))
        writer.metrics_keys = columns
    return logger


def checkpoint_step(path: Path) -> int:
    """The global step a Lightning checkpoint was saved at."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])


RESUMABLE_CHANGES = frozenset({
    "trainer.output_dir", "trainer.stop_at_step", "trainer.max_minutes", "data.cache_dir",
    "data.num_workers", "data.preload",
})


def check_same_run(config: EncoderTrainingConfig, output: Path) -> None:
    """Before resuming from the checkpoints in `output`, raises ValueError naming each setting
    that differs from the run's `config.yaml`: resuming with other data, model, losses or
    schedule would give weights that neither run describes. Settings that do not change the
    weights (`RESUMABLE_CHANGES`, e.g. `trainer.stop_at_step`) may differ."""
    saved = output / "config.yaml"
    if not saved.is_file():
        raise ValueError(f"{output} holds checkpoints but no config.yaml saying how they were "
                         "trained: give another trainer.output_dir, or delete the checkpoints")
    # Settings the saved file lacks (added to the config since) take their defaults.
    before = flat_settings(asdict(load_config(type(config), saved)))
    now = flat_settings(asdict(config))
    differences = [
        f"{key}: {before.get(key)!r} there, {now.get(key)!r} now"
        for key in sorted(before.keys() | now.keys())
        if key not in RESUMABLE_CHANGES and before.get(key) != now.get(key)
    ]
    if differences:
        raise ValueError(
            f"{output} holds checkpoints of a run with other settings ("
            + "; ".join(differences) + "): give another trainer.output_dir, or the same settings"
        )


def build_trainer(config: EncoderTrainingConfig, output: Path) -> L.Trainer:
    trainer_config = config.trainer
    precision = trainer_config.precision
    if precision == "auto":
        precision = "bf16-mixed" if torch.cuda.is_available() else "32-true"
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    budget = timedelta(minutes=trainer_config.max_minutes) if trainer_config.max_minutes else None
    return L.Trainer(
        max_steps=min(trainer_config.stop_at_step or config.optim.max_steps,
                      config.optim.max_steps),
        accelerator=trainer_config.accelerator,
        devices=1,
        precision=precision,
        gradient_clip_val=config.optim.gradient_clip,
        max_epochs=-1,
        max_time=budget,
        reload_dataloaders_every_n_epochs=1,
        check_val_every_n_epoch=trainer_config.validation_every // trainer_config.checkpoint_every,
        num_sanity_val_steps=0,
        log_every_n_steps=trainer_config.log_every,
        logger=[
            TensorBoardLogger(output, name="tensorboard", version=""),
            appending_csv_logger(output, trainer_config.log_every),
        ],
        callbacks=[
            ModelCheckpoint(
                dirpath=output / "checkpoints", save_last=True, save_on_train_epoch_end=True
            ),
            SlotPictureCallback(output / "pictures"),
        ],
        enable_model_summary=False,
        benchmark=torch.cuda.is_available(),
    )


def train(config: EncoderTrainingConfig) -> dict[str, float]:
    """Trains (or resumes) the run `config` describes; returns the final validation metrics."""
    output = Path(config.trainer.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    last = output / "checkpoints" / "last.ckpt"
    if last.is_file():
        check_same_run(config, output)
    (output / "config.yaml").write_text(config_to_yaml(config))
    L.seed_everything(config.trainer.seed, verbose=False)  # before the model is built
    model = SmoothSAModel(SmoothSAConfig(**config.model))
    if config.backbone_weights:
        model.backbone.load_pretrained(config.backbone_weights)
    if config.initial_weights:
        start_from_encoder(model, config.initial_weights)
    freeze(model, config.optim.frozen)
    module = SmoothSATraining(
        model, config.optim, config.losses, config.trainer.seed, config.trainer.segmentation_from
    )
    data = VideoClipDataModule(
        config.data, config.optim.max_steps, config.trainer.checkpoint_every, config.trainer.seed
    )
    trainer = build_trainer(config, output)
    trainer.fit(module, data, ckpt_path=last if last.is_file() else None)
    validation = trainer.validate(module, datamodule=data, verbose=False)[0]
    metrics = {key: float(value) for key, value in validation.items()}
    export(model, metrics, output)
    return metrics


def start_from_encoder(model: SmoothSAModel, folder: str) -> None:
    """Copies into `model` every parameter of the encoder in `folder` that it also has; raises
    ValueError when a shared parameter's shape differs or nothing is shared. A cold start
    without a preheater (`initializer.*`) seeds the cold start of a preheater
    (`initializer.cold_start.*`). A broadcast decoder with more full-resolution layers or
    channels than the source's starts drawing what the source drew
    (`SpatialBroadcastDecoder.grown_state`)."""
    if not (Path(folder) / "config.json").is_file():
        raise FileNotFoundError(f"initial_weights: {folder} holds no encoder (config.json)")
    encoder = SmoothSAModel.from_pretrained(folder)
    source = encoder.state_dict()
    target = model.state_dict()
    layers = encoder.config.broadcast_full_resolution_layers
    if (encoder.config.decoder == model.config.decoder == "broadcast"
            and (layers, encoder.config.decoder_hidden_dim)
            != (model.config.broadcast_full_resolution_layers, model.config.decoder_hidden_dim)):
        decoder = {key.removeprefix("decoder."): source.pop(key)
                   for key in [key for key in source if key.startswith("decoder.")]}
        grown = model.decoder.grown_state(decoder, layers)
        source.update({f"decoder.{key}": value for key, value in grown.items()})
    for key in [key for key in source if key.startswith("initializer.")]:
        preheated = key.replace("initializer.", "initializer.cold_start.", 1)
        if key not in target and preheated in target:
            source[preheated] = source.pop(key)
    shared = sorted(source.keys() & target.keys())
    mismatched = [f"{key} {tuple(source[key].shape)} vs {tuple(target[key].shape)}"
                  for key in shared if source[key].shape != target[key].shape]
    if mismatched or not shared:
        raise ValueError(f"initial_weights {folder} does not fit this model: "
                         + ("; ".join(mismatched[:5]) or "no parameter in common"))
    model.load_state_dict({key: source[key] for key in shared}, strict=False)
    kept = sorted({key.split(".")[0] for key in target.keys() - source.keys()})
    print(f"started from {folder}: {len(shared)} of {len(target)} tensors"
          + (f"; kept their initialisation: {', '.join(kept)}" if kept else ""))


def freeze(model: SmoothSAModel, parts: list[str]) -> None:
    """Stops the gradient of each named top-level part of `model`; raises ValueError naming an
    unknown part."""
    modules = dict(model.named_children())
    unknown = sorted(set(parts) - modules.keys())
    if unknown:
        raise ValueError(f"optim.frozen: {unknown} are not parts of this encoder "
                         f"(its parts: {sorted(modules)})")
    for part in parts:
        modules[part].requires_grad_(False)


def export(model: SmoothSAModel, metrics: dict[str, float], output: Path) -> None:
    """Writes the encoder (`save_pretrained`) and `metrics.json`, each via a temp name."""
    final = output / "encoder"
    save_encoder(model, final)
    temporary = output / "metrics.json.partial"
    temporary.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    os.replace(temporary, output / "metrics.json")
    print(f"\n{'metric':<28}{'value':>10}")
    for key, value in sorted(metrics.items()):
        print(f"{key:<28}{value:>10.4f}")
    print(f"encoder saved to {final}")


def main(argv: list[str] | None = None) -> None:
    train(parse_config_arguments(EncoderTrainingConfig, __doc__.split("\n")[0], argv))


if __name__ == "__main__":
    main()
