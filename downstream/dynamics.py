"""The slot dynamics predictor's entry point: train a world model on slot datasets, write
rollout datasets, evaluate rollouts against baselines.

    accelerate launch downstream/dynamics.py --config configs/dynamics/default.yaml \
        data.train_slots=user/clevrer-slots data.evaluation_slots=user/clevrer-slots
    python downstream/dynamics.py rollout --config configs/dynamics/default.yaml \
        --world-model runs/dynamics/model --slots user/clevrer-slots --output runs/rollouts \
        rollout.split=validation
    python downstream/dynamics.py evaluate --config configs/dynamics/default.yaml \
        --world-model runs/dynamics/model --encoder runs/encoder --slots user/clevrer-slots \
        --videos data/clevrer

`train` (the default command) samples windows of `window + rollout_steps` consecutive frames
from the training slots, gives the model the first `window` and rolls out `rollout_steps`
frames autoregressively (its own predictions fed back, as SlotFormer trains), and minimises
the slot MSE over all predicted frames; optionally plus `reconstruction_weight` times the MSE
of the frozen encoder's decoder reconstruction from the predicted slots against what that
decoder reconstructs in the encoder's training: the frame's pixels for a pixel (broadcast)
decoder, the frozen backbone's features of the frame for a feature decoder. That loss needs
`data.encoder` and `data.videos` (the CLEVRER-layout videos the slots were extracted from, at
the slots' frame stride). It decodes every predicted frame, or `loss.reconstruction_frames`
of them drawn at random per window: decoding costs far more than the world model, so fewer
frames make a step several times cheaper on a CPU. `training.initial_weights` starts a run from
a trained world model, e.g. one trained on the slot MSE alone, fine-tuned with the reconstruction;
a model with `model.step_gate` can start from the same model without it (the gate starts open,
so the rollouts start unchanged).
`loss.mask_weight` adds the cross-entropy of the frozen decoder's masks of the predicted slots
against its masks of the true slots (per pixel, over slots; it needs `data.encoder` only): where
slot MSE rewards a slot halfway between two futures, which the decoder draws as an object in
pieces, this loss asks for the segmentation the true slots would give, decoding the same frames
as the reconstruction loss.
`loss.slot_weight` scales the slot MSE (0 trains on the decoder's losses alone; the slot MSE
is still logged).
`loss.input_noise` adds Gaussian noise of that std to the window's slots in training, not to
the targets, so the model learns to pull drifted slots back, as its own predictions drift in a
rollout (one-frame-ahead training, `loss.rollout_steps=1`, never feeds it those).
Training runs on the shared head loop (`downstream/head_training.py`): checkpoints, resume,
TensorBoard, the model in `training.output_dir/model`, `metrics.json`.

`evaluate` scores the world model beside copying the last frame and constant velocity and, when
`data.train_slots` is set, a linear autoregressive model of each slot fitted by least squares
on those slots (`LeastSquaresDynamics`, the world model's window).

Every command takes `--config FILE` and dotted overrides; the flags are shorthands for the
config fields named in `FLAGS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from einops import rearrange
from tqdm.auto import tqdm

from downstream.dynamics_baselines import LeastSquaresDynamics
from downstream.dynamics_evaluation import evaluate_rollouts, horizon_table, plot_horizon_curves
from downstream.extraction_plan import run_inputs
from downstream.head_training import (
    HeadTrainingConfig,
    build_accelerator,
    train_head,
    write_json_atomically,
)
from downstream.rollout_dataset import slots_of_object, write_rollout_dataset
from downstream.slot_encoding import load_frozen_encoder
from downstream.slot_windows import SlotWindows, load_videos_for_slots
from downstream.world_model import WorldModel, WorldModelConfig
from ocl.config_loading import config_to_yaml, load_config
from ocl.modeling import SmoothSAModel
from tasks.bad_input import BadInputError
from tasks.slots import SlotSpec, load_slots, slot_provenance, slot_spec

COMMANDS = ("train", "rollout", "evaluate")


@dataclass
class ModelSection:
    """The world model's sizes (`WorldModelConfig`; slot_dim comes from the slot dataset)."""

    hidden_dim: int = 128  # transformer width
    num_layers: int = 4
    num_heads: int = 8
    feedforward_dim: int = 512
    dropout: float = 0.0
    window: int = 6  # burn-in frames the model sees (and is trained with)
    residual: bool = True  # predict the change from the last frame's slots
    second_order: bool = False  # with residual: predict the change of the last step (README)
    zero_output: bool = False  # residual models start as copy-last / constant velocity
    step_gate: bool = False  # with residual: a per-slot gate in [0, 1] on the predicted step


@dataclass
class DataSection:
    """What the commands read. Slots are a folder or a Hub id (`tasks.slots.load_slots`)."""

    train_slots: str = ""  # slot dataset to train on
    train_split: str = "train"  # "train+validation": both, one after the other (no videos)
    evaluation_slots: str = ""  # held-out slots: evaluated in training ("": not) and by evaluate
    evaluation_split: str = "validation"
    videos: str = ""  # CLEVRER-layout directory of the slots' videos (same split names)
    encoder: str = ""  # the frozen SmoothSA encoder the slots came from (folder or Hub id)
    world_model: str = ""  # for rollout and evaluate ("": training.output_dir/model)
    cache_dir: str = ""  # datasets cache ("": the default)
    window_stride: int = 1  # training windows start every this many frames

    def __post_init__(self):
        if self.window_stride < 1:
            raise ValueError(f"data.window_stride must be >= 1, got {self.window_stride}")


@dataclass
class LossSection:
    """The training objective."""

    rollout_steps: int = 10  # frames rolled out (and scored) after the window
    slot_weight: float = 1.0  # the slot MSE's weight (0: the decoder's losses alone)
    reconstruction_weight: float = 0.0  # decoder reconstruction loss (needs encoder and videos)
    reconstruction_frames: int = 0  # predicted frames decoded per window (0: all rollout_steps)
    input_noise: float = 0.0  # std of Gaussian noise on the window's slots (0: none)
    mask_weight: float = 0.0  # decoded masks' cross-entropy against the true slots' (needs encoder)

    def __post_init__(self):
        if (self.rollout_steps < 1 or self.reconstruction_weight < 0 or self.input_noise < 0
                or self.mask_weight < 0 or self.slot_weight < 0):
            raise ValueError(f"loss.rollout_steps must be >= 1, slot_weight, "
                             f"reconstruction_weight, input_noise and mask_weight >= 0: {self}")
        if self.slot_weight + self.reconstruction_weight + self.mask_weight == 0:
            raise ValueError("loss.slot_weight, reconstruction_weight and mask_weight are all "
                             "0: nothing to train on")
        if not 0 <= self.reconstruction_frames <= self.rollout_steps:
            raise ValueError(f"loss.reconstruction_frames must be in [0, rollout_steps "
                             f"{self.rollout_steps}], got {self.reconstruction_frames}")


@dataclass
class RolloutSection:
    """The `rollout` command: a rollout dataset (see `downstream/rollout_dataset.py`)."""

    slots: str = ""  # slot dataset to roll out
    split: str = "validation"  # read from `slots`, written under this name
    output_dir: str = "runs/dynamics/rollout"
    observed_frames: int = 0  # frames kept as observed, the burn-in (0: the whole video)
    steps: int = 16  # frames predicted after them
    remove_slot: int = -1  # counterfactual: remove this slot in every video (-1: none)
    remove_object_id: int = -1  # or the slot matched to this annotation object (-1: none)
    batch_size: int = 32
    rows_per_shard: int = 1000

    def __post_init__(self):
        if self.remove_slot >= 0 and self.remove_object_id >= 0:
            raise ValueError("set rollout.remove_slot or rollout.remove_object_id, not both")
        if self.steps < 1 or self.observed_frames < 0 or self.batch_size < 1:
            raise ValueError(f"rollout.steps, batch_size must be >= 1, observed_frames >= 0: "
                             f"{self}")


@dataclass
class EvaluationSection:
    """The `evaluate` command: data.evaluation_slots of data.evaluation_split, one window per
    video from its first frame."""

    burn_in: int = 0  # observed frames (0: the model's window)
    horizon: int = 10  # K, frames predicted and scored
    max_videos: int = 0  # 0: every video
    batch_size: int = 8
    mask_height: int = 0  # size the true masks are compared at (0: the decoder's mask grid)
    mask_width: int = 0
    output_dir: str = "runs/dynamics/evaluation"  # evaluation.json and the PNG

    def __post_init__(self):
        if self.burn_in < 0 or self.horizon < 1 or self.batch_size < 1:
            raise ValueError(f"evaluation.burn_in must be >= 0, horizon, batch_size >= 1: {self}")
        if (self.mask_height > 0) != (self.mask_width > 0):
            raise ValueError("set both evaluation.mask_height and mask_width, or neither")


@dataclass
class DynamicsConfig:
    """One experiment: every command reads the sections it needs."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    training: HeadTrainingConfig = field(
        default_factory=lambda: HeadTrainingConfig(output_dir="runs/dynamics")
    )
    rollout: RolloutSection = field(default_factory=RolloutSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)

    def __post_init__(self):
        if self.loss.reconstruction_weight > 0 and not (self.data.encoder and self.data.videos):
            raise ValueError("loss.reconstruction_weight > 0 needs data.encoder and data.videos")
        if self.loss.mask_weight > 0 and not self.data.encoder:
            raise ValueError("loss.mask_weight > 0 needs data.encoder")

    @property
    def world_model_path(self) -> str:
        return self.data.world_model or str(Path(self.training.output_dir) / "model")

    @property
    def cache_dir(self) -> str | None:
        return self.data.cache_dir or None


# command-line flags: shorthands for config fields, per command
FLAGS = {
    "train": {"--encoder": "data.encoder", "--videos": "data.videos"},
    "rollout": {"--world-model": "data.world_model", "--slots": "rollout.slots",
                "--videos": "data.videos", "--output": "rollout.output_dir"},
    "evaluate": {"--world-model": "data.world_model", "--encoder": "data.encoder",
                 "--slots": "data.evaluation_slots", "--videos": "data.videos",
                 "--output": "evaluation.output_dir"},
}


@dataclass
class DynamicsTask:
    """Training loss and evaluation of a world model on windows `[b,window+steps,n,d]`.

    encoder: the frozen encoder, for the reconstruction and mask losses only (with the
    reconstruction loss, batches carry `frames` `[b,window+steps,3,H,W]` uint8).
    reconstruction_frames: predicted frames of each window that the reconstruction and mask
    losses decode, drawn at random (0: all).
    input_noise: std of Gaussian noise added to the `window` input frames in training (not to
    the targets), so the model learns to correct slots that have drifted, as its own
    predictions do in a rollout (Sanchez-Gonzalez et al., 2020).
    slot_weight: the slot MSE's weight in the loss (it is reported whatever the weight).
    """

    window: int
    rollout_steps: int
    reconstruction_weight: float = 0.0
    encoder: SmoothSAModel | None = None
    reconstruction_frames: int = 0
    input_noise: float = 0.0
    mask_weight: float = 0.0
    slot_weight: float = 1.0

    def training_loss(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        window, target = batch["slots"][:, :self.window], batch["slots"][:, self.window:]
        if self.input_noise > 0:
            window = window + self.input_noise * torch.randn_like(window)
        predicted = model(window, steps=self.rollout_steps).slots
        losses = {"slot_mse": F.mse_loss(predicted, target)}
        loss = self.slot_weight * losses["slot_mse"]
        if self.reconstruction_weight > 0 or self.mask_weight > 0:
            frames = batch.get("frames")
            if frames is not None:
                frames = frames[:, self.window:]
            if self.reconstruction_frames:
                picked = random_frames(len(predicted), self.rollout_steps,
                                       self.reconstruction_frames, predicted.device)
                predicted, target = take_frames(predicted, picked), take_frames(target, picked)
                frames = None if frames is None else take_frames(frames, picked)
            masks, reconstruction = self.encoder.decode_slots(predicted)
        if self.reconstruction_weight > 0:
            losses["reconstruction"] = F.mse_loss(
                reconstruction, reconstruction_target(self.encoder, frames))
            loss = loss + self.reconstruction_weight * losses["reconstruction"]
        if self.mask_weight > 0:
            with torch.no_grad():
                target_masks, _ = self.encoder.decode_slots(target)
            losses["mask"] = mask_cross_entropy(masks, target_masks)
            loss = loss + self.mask_weight * losses["mask"]
        losses["loss"] = loss
        return losses

    def evaluate(self, model: torch.nn.Module, batches, accelerator: Accelerator
                 ) -> dict[str, float]:
        """Slot MSE of the rollout at each step and over all steps."""
        errors = []
        for batch in batches:
            predicted, target = self.roll_out(model, batch["slots"])
            error = (predicted - target).pow(2).mean(dim=(2, 3))  # [b,steps]
            errors.append(accelerator.gather_for_metrics(error))
        per_step = torch.cat(errors).mean(dim=0)
        metrics = {"slot_mse": per_step.mean().item()}
        metrics.update({f"slot_mse_step_{k + 1:02d}": value.item()
                        for k, value in enumerate(per_step)})
        return metrics

    def roll_out(self, model: torch.nn.Module, slots: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's rollout after the first `window` frames of `slots` and the true slots
        of those frames, each `[b,steps,n,d]` (through `forward`, so wrapped models work)."""
        predicted = model(slots[:, :self.window], steps=self.rollout_steps).slots
        return predicted, slots[:, self.window:]


def random_frames(batch: int, steps: int, count: int, device: torch.device) -> torch.Tensor:
    """`[b,count]` distinct frame indices in [0, steps) per window, in order, from torch's
    global generator (reseeded every training step)."""
    return torch.rand(batch, steps, device=device).argsort(dim=1)[:, :count].sort(dim=1).values


def take_frames(values: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
    """`values[i, picked[i]]`: `[b,t,...]` and `[b,k]` -> `[b,k,...]`."""
    return values[torch.arange(len(values), device=values.device)[:, None], picked]


def mask_cross_entropy(masks: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy over slots of decoded masks `[b,t,n,...]` (each pixel's
    distribution over the n slots) against `target_masks` of the same shape, averaged over
    pixels."""
    log_masks = masks.clamp_min(torch.finfo(masks.dtype).tiny).log()
    return -(target_masks * log_masks).sum(dim=2).mean()


def reconstruction_target(encoder: SmoothSAModel, frames: torch.Tensor) -> torch.Tensor:
    """What the frozen decoder reconstructs of frames `[b,t,3,H,W]` uint8: the pixels in [0,1]
    (pixel decoder) or the backbone's features `[b,t,c,h,w]` (feature decoders)."""
    pixels = frames.float() / 255
    if encoder.config.decoder == "broadcast":
        return pixels
    with torch.no_grad():
        features = encoder.backbone(rearrange(pixels, "b t c h w -> (b t) c h w"))
    return rearrange(features, "(b t) ... -> b t ...", b=frames.shape[0])


def frozen_encoder_for(path: str, slots: datasets.Dataset) -> SmoothSAModel:
    """The encoder at `path`, in eval mode without gradients, checked against the slot dataset:
    the config of the encoder that made the slots (their provenance's config hash) and frames
    for input."""
    encoder, identity = load_frozen_encoder(path)
    made_by = slot_provenance(slots)
    if identity.config_hash != made_by.config_hash:
        raise BadInputError(
            f"encoder {path} is not the one the slots came from: its config hash is "
            f"{identity.config_hash}, the slots' encoder ({made_by.encoder_id}) had "
            f"{made_by.config_hash}"
        )
    if encoder.config.backbone == "features":
        raise ValueError(f"encoder {path} takes feature maps, not video frames")
    return encoder


def train(config: DynamicsConfig) -> dict[str, float]:
    """Trains a world model (resuming in `training.output_dir`); returns the final metrics."""
    data, length = config.data, config.model.window + config.loss.rollout_steps
    train_slots = load_slots(data.train_slots, data.train_split, cache_dir=config.cache_dir)
    spec = slot_spec(train_slots.features)
    encoder, with_frames = None, config.loss.reconstruction_weight > 0
    if with_frames or config.loss.mask_weight > 0:
        encoder = frozen_encoder_for(data.encoder, train_slots)

    def windows(slots, split: str, stride: int) -> SlotWindows:
        videos = None
        if with_frames:
            videos = load_videos_for_slots(slots, data.videos, split, encoder.config.image_size,
                                           with_masks=False, cache_dir=config.cache_dir)
        return SlotWindows(slots, length, stride, videos=videos, with_frames=with_frames)

    train_windows = windows(train_slots, data.train_split, data.window_stride)
    evaluation_windows = None
    if data.evaluation_slots:
        evaluation_slots = load_slots(data.evaluation_slots, data.evaluation_split,
                                      cache_dir=config.cache_dir)
        check_same_slots(spec, slot_spec(evaluation_slots.features), data.evaluation_slots)
        # non-overlapping windows: every frame scored once
        evaluation_windows = windows(evaluation_slots, data.evaluation_split, length)
    torch.manual_seed(config.training.seed)  # seed before the model's initialisation
    model = WorldModel(WorldModelConfig(slot_dim=spec.slot_dim, **asdict(config.model)))
    accelerator = build_accelerator(config.training, "dynamics")
    if encoder is not None:
        encoder.to(accelerator.device)
    if accelerator.is_main_process:
        write_text_atomically(Path(config.training.output_dir) / "dynamics.yaml",
                              config_to_yaml(config))
    task = DynamicsTask(config.model.window, encoder=encoder, **asdict(config.loss))
    inputs = run_inputs(data, {"train_slots": data.train_slots,
                               "evaluation_slots": data.evaluation_slots,
                               "encoder": data.encoder if encoder is not None else ""})
    return train_head(model, task, train_windows, evaluation_windows, None, config.training,
                      accelerator, inputs=inputs)


def roll_out(config: DynamicsConfig) -> Path:
    """Writes the rollout dataset of `rollout.slots` (split `rollout.split`)."""
    settings = config.rollout
    if not settings.slots:
        raise ValueError("rollout needs the slots to roll out: --slots or rollout.slots")
    slots = load_slots(settings.slots, settings.split, cache_dir=config.cache_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    world_model = load_world_model(config.world_model_path, slot_spec(slots.features)).to(device)
    removed = None
    if settings.remove_slot >= 0:
        removed = np.full(len(slots), settings.remove_slot)
    elif settings.remove_object_id >= 0:
        spec = slot_spec(slots.features)
        if not config.data.videos or spec.mask_size is None:
            raise ValueError("rollout.remove_object_id needs data.videos (--videos) and a slot "
                             "dataset with masks")
        videos = load_videos_for_slots(slots, config.data.videos, settings.split,
                                       spec.mask_size, with_masks=True,
                                       cache_dir=config.cache_dir)
        removed = slots_of_object(slots, videos, settings.remove_object_id,
                                  settings.observed_frames, world_model.config.window)
    output = write_rollout_dataset(
        world_model, slots, settings.output_dir, settings.split, settings.steps,
        config.world_model_path, settings.observed_frames, removed, settings.batch_size,
        settings.rows_per_shard,
    )
    print(f"wrote the {settings.split} rollouts of {len(slots)} videos to {output}")
    return output


def evaluate(config: DynamicsConfig) -> dict[str, dict[str, list[float]]]:
    """Per-horizon scores of the world model and the baselines on the held-out slots: prints
    the table, writes `evaluation.json` and `horizons.png` in `evaluation.output_dir`."""
    data, settings = config.data, config.evaluation
    for name in ("evaluation_slots", "encoder", "videos"):
        if not getattr(data, name):
            raise ValueError(f"evaluate needs data.{name} (see the --help flags)")
    slots = load_slots(data.evaluation_slots, data.evaluation_split, cache_dir=config.cache_dir)
    if settings.max_videos:
        slots = slots.select(range(min(settings.max_videos, len(slots))))
    spec = slot_spec(slots.features)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    world_model = load_world_model(config.world_model_path, spec).to(device)
    encoder = frozen_encoder_for(data.encoder, slots).to(device)
    others = {}
    if data.train_slots:
        others["least squares"] = fit_least_squares(config, slots,
                                                    world_model.config.window).rollout
    burn_in = settings.burn_in or world_model.config.window
    mask_size = (settings.mask_height, settings.mask_width)
    if not settings.mask_height:  # the decoder's own mask grid
        masks, _ = encoder.decode_slots(torch.zeros(1, 1, spec.num_slots, spec.slot_dim,
                                                    device=device))
        mask_size = tuple(masks.shape[-2:])
    videos = load_videos_for_slots(slots, data.videos, data.evaluation_split, mask_size,
                                   with_masks=True, cache_dir=config.cache_dir)
    windows = SlotWindows(slots, burn_in + settings.horizon, max_per_video=1, videos=videos,
                          with_masks=True)
    loader = torch.utils.data.DataLoader(windows, batch_size=settings.batch_size)
    results = evaluate_rollouts(world_model, encoder, tqdm(loader, desc="evaluating"), burn_in,
                                settings.horizon, others)
    output = Path(settings.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomically(output / "evaluation.json", {
        "world_model": config.world_model_path, "encoder": data.encoder,
        "slots": data.evaluation_slots, "split": data.evaluation_split,
        "num_videos": len(windows), "burn_in": burn_in, "horizon": settings.horizon,
        "mask_size": list(mask_size), "scores": results,
    })
    title = (f"{len(windows)} {data.evaluation_split} videos, burn-in {burn_in} frames, "
             f"masks at {mask_size[0]}x{mask_size[1]}")
    plot_horizon_curves(results, output / "horizons.png", title)
    print(f"\n{title}\n{horizon_table(results)}")
    print(f"\nwrote {output / 'evaluation.json'} and {output / 'horizons.png'}")
    return results


def fit_least_squares(config: DynamicsConfig, evaluation_slots: datasets.Dataset,
                      window: int) -> LeastSquaresDynamics:
    """The least-squares baseline fitted on the training slots, which must come from the
    evaluation slots' encoder at the same frame stride."""
    data = config.data
    slots = load_slots(data.train_slots, data.train_split, cache_dir=config.cache_dir)
    check_same_slots(slot_spec(slots.features), slot_spec(evaluation_slots.features),
                     data.evaluation_slots)
    made_by, evaluated = slot_provenance(slots), slot_provenance(evaluation_slots)
    if (made_by.config_hash, made_by.frame_stride) != (evaluated.config_hash,
                                                       evaluated.frame_stride):
        raise BadInputError(
            f"training slots {data.train_slots} ({made_by.encoder_id}, config hash "
            f"{made_by.config_hash}, frame stride {made_by.frame_stride}) and evaluation slots "
            f"{data.evaluation_slots} ({evaluated.encoder_id}, {evaluated.config_hash}, "
            f"{evaluated.frame_stride}) come from different encoders or frame strides"
        )
    videos = (torch.from_numpy(np.asarray(row["slots"], dtype=np.float32))
              for row in slots.with_format("numpy"))
    return LeastSquaresDynamics.fit(videos, window)


def load_world_model(path: str, spec: SlotSpec) -> WorldModel:
    """The world model at `path` in eval mode; its slot width must be the data's."""
    world_model = WorldModel.from_pretrained(path).eval()
    if world_model.config.slot_dim != spec.slot_dim:
        raise ValueError(f"world model {path} takes slots of {world_model.config.slot_dim}, the "
                         f"slot dataset holds slots of {spec.slot_dim}")
    return world_model


def check_same_slots(spec: SlotSpec, other: SlotSpec, where: str) -> None:
    if (other.num_slots, other.slot_dim) != (spec.num_slots, spec.slot_dim):
        raise ValueError(f"{where} holds {other.num_slots} slots of {other.slot_dim}, the "
                         f"training slots {spec.num_slots} of {spec.slot_dim}")


def write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(text)
    os.replace(temporary, path)


def parse_command(argv: list[str] | None = None) -> tuple[str, DynamicsConfig]:
    """The command (`train` when none is named) and its config from the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    parser = argparse.ArgumentParser(
        prog=f"dynamics.py {command}",
        description=f"Slot world model: {command}. Commands: {', '.join(COMMANDS)} (default "
                    "train).",
    )
    parser.add_argument("--config", help="YAML experiment config (configs/dynamics/)")
    for flag, name in FLAGS[command].items():
        parser.add_argument(flag, dest=name, metavar="PATH", help=f"sets {name}")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. loss.rollout_steps=8")
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after flags
    overrides = list(args.overrides) + [
        f"{name}={getattr(args, name)}" for name in FLAGS[command].values()
        if getattr(args, name) is not None
    ]
    return command, load_config(DynamicsConfig, args.config, overrides)


def main(argv: list[str] | None = None):
    command, config = parse_command(argv)
    if command == "train":
        return train(config)
    if command == "rollout":
        return roll_out(config)
    return evaluate(config)


if __name__ == "__main__":
    main()
