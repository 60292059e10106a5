"""The training loop every downstream head shares, on accelerate: one CPU, one GPU or many.

A head is a `transformers` `PreTrainedModel`; a `HeadTask` says how to compute its loss on a
batch and how to evaluate it. `train_head` does the rest: AdamW with warm-up + cosine, gradient
accumulation, mixed precision on GPUs, clipping, TensorBoard, a main-process progress bar,
checkpoints every N steps and resume from the newest one, evaluation, the exported model and
`metrics.json`.

Determinism: the samples of every step are a pure function of (seed, step), and torch is reseeded
from (seed, step, process) at every step, so a resumed run repeats an uninterrupted one, and
`batch_size` is the global batch (split over processes and accumulation), so one process and
several see the same samples per step.

Evaluation batches come one of two ways (`evaluation_sharding`): "padded", accelerate's loader,
whose last batch may repeat samples so every process gets as many (gather with
`accelerator.gather_for_metrics`, which drops the repeats); or "disjoint", where process i
evaluates samples i, i + P, i + 2P, ... exactly once, for metrics whose states sum over processes
(torchmetrics); the task then gets the unwrapped model, so processes with fewer batches never
wait in a collective of the model's wrapper.
"""

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.data_loader import DataLoaderShard
from safetensors.torch import load as load_safetensors
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ocl.config_loading import flat_settings
from ocl.learning_rate import warmup_cosine
from tasks.bad_input import BadInputError

RUN_INPUTS_FILE = "run_inputs.json"

EvaluationSharding = Literal["padded", "disjoint"]


@dataclass
class HeadTrainingConfig:
    """How a head is trained.

    output_dir: checkpoints, TensorBoard logs, the exported model and metrics.json.
    seed: seeds the model's initialisation, the sample order and every random draw.
    max_steps: optimiser steps.
    batch_size: samples per optimiser step, over all processes and accumulation steps.
    gradient_accumulation: micro-batches per optimiser step (per process).
    learning_rate, weight_decay: AdamW.
    warmup_fraction, final_learning_rate_fraction: the schedule (see ocl.learning_rate).
    gradient_clip: maximum gradient norm (0: no clipping).
    mixed_precision: "auto" (bf16 on a GPU, none on CPU), "no", "bf16" or "fp16".
    checkpoint_every, evaluate_every: in steps (0: only at the end).
    log_every: in steps (0: no training logs); each `train/` value is the mean over the
        micro-batches since the last log (this process's), not the last batch's alone.
    keep_checkpoints: newest checkpoints kept.
    tracker: "tensorboard" or "none".
    num_workers: data-loading processes per training process.
    evaluation_batch_size: samples per process per evaluation batch.
    initial_weights: a saved head of the same architecture (a run's `model` folder) whose
        weights the run starts from instead of a fresh initialisation; a resumed run takes its
        checkpoint's.
    """

    output_dir: str = "runs/head"
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 64
    gradient_accumulation: int = 1
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    final_learning_rate_fraction: float = 0.01
    gradient_clip: float = 1.0
    mixed_precision: str = "auto"
    checkpoint_every: int = 500
    evaluate_every: int = 0
    log_every: int = 25
    keep_checkpoints: int = 2
    tracker: str = "tensorboard"
    num_workers: int = 0
    evaluation_batch_size: int = 64
    initial_weights: str = ""

    def __post_init__(self):
        if self.max_steps < 1 or self.batch_size < 1 or self.gradient_accumulation < 1:
            raise ValueError(f"max_steps, batch_size, gradient_accumulation must be >= 1: {self}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto|no|bf16|fp16: {self.mixed_precision}")
        if self.tracker not in ("tensorboard", "none"):
            raise ValueError(f"tracker must be tensorboard or none, got {self.tracker!r}")


class HeadTask(Protocol):
    """What `train_head` needs to know about a head's task."""

    def training_loss(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        """The batch's losses; "loss" is the one optimised, the others are logged."""

    def evaluate(
        self, model: torch.nn.Module, batches: Iterable, accelerator: Accelerator
    ) -> dict[str, float]:
        """Metrics over all evaluation batches (gather with `accelerator.gather_for_metrics`)."""


class StepSampler(Sampler[int]):
    """Sample indices for the steps `[start_step, max_steps)`, `samples_per_step` each.

    The samples are read epoch by epoch, each epoch a permutation seeded by (seed, epoch), so the
    k-th sample of the run depends only on (seed, k).
    """

    def __init__(self, num_items: int, samples_per_step: int, max_steps: int, seed: int,
                 start_step: int = 0):
        if num_items < 1:
            raise ValueError("the training set is empty")
        self.num_items = num_items
        self.seed = seed
        self.first = start_step * samples_per_step
        self.end = max_steps * samples_per_step

    def __len__(self) -> int:
        return max(self.end - self.first, 0)

    def __iter__(self):
        epoch, order = None, None
        for k in range(self.first, self.end):
            if k // self.num_items != epoch:
                epoch = k // self.num_items
                order = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            yield int(order[k % self.num_items])


def build_accelerator(config: HeadTrainingConfig, run_name: str) -> Accelerator:
    """An Accelerator for the config: precision, accumulation and the tracker."""
    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "no"
    accelerator = Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=config.gradient_accumulation,
        # accelerate would step a prepared schedule once per process at every optimiser step,
        # as if each process had its own epoch; our steps are global, so the loop steps it
        step_scheduler_with_optimizer=False,
        log_with=None if config.tracker == "none" else config.tracker,
        project_dir=config.output_dir,
    )
    if config.tracker != "none":
        accelerator.init_trackers(run_name, config=flat_scalars(asdict(config)))
    return accelerator


def train_head(
    model: PreTrainedModel,
    task: HeadTask,
    train_dataset: Dataset,
    evaluation_dataset: Dataset | None,
    collate: Callable,
    config: HeadTrainingConfig,
    accelerator: Accelerator,
    evaluation_sharding: EvaluationSharding = "padded",
    finish: Callable[[PreTrainedModel, Accelerator], None] | None = None,
    inputs: Mapping | None = None,
) -> dict[str, float]:
    """Trains `model` (resuming from the newest checkpoint in `output_dir`), evaluates it,
    exports it to `output_dir/model` and writes `output_dir/metrics.json`. Returns the metrics.

    `inputs`: what the weights are trained on (JSON-able: the datasets and the encoder that made
    them); checkpoints trained on other inputs are refused rather than resumed (`check_run_inputs`).

    `evaluation_sharding`: how evaluation batches are split over processes (module docstring).
    `finish(model, accelerator)`: called on every process with the trained (unwrapped) model
    after the export, while the processes can still talk (the end of training closes them).
    """
    output = Path(config.output_dir)
    micro_batch = config.batch_size // (accelerator.num_processes * config.gradient_accumulation)
    if micro_batch * accelerator.num_processes * config.gradient_accumulation != config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} must divide by processes "
            f"({accelerator.num_processes}) x gradient_accumulation "
            f"({config.gradient_accumulation})"
        )
    if config.initial_weights:
        inputs = {**(inputs or {}),
                  "initial_weights": load_initial_weights(model, config.initial_weights)}
    decay, no_decay = split_weight_decay(model)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        warmup_cosine(config.max_steps, config.warmup_fraction,
                      config.final_learning_rate_fraction),
    )
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    check_run_inputs(accelerator, output, inputs or {})
    start_step = resume(accelerator, output / "checkpoints")

    def loader_from(step: int) -> DataLoader:
        sampler = StepSampler(len(train_dataset), config.batch_size, config.max_steps,
                              config.seed, start_step=step)
        loader = DataLoader(train_dataset, batch_size=micro_batch, sampler=sampler,
                            collate_fn=collate, num_workers=config.num_workers)
        return accelerator.prepare_data_loader(loader, device_placement=True)

    evaluation_loader = None
    if evaluation_dataset is not None:
        evaluation_loader = evaluation_batches(evaluation_dataset, collate, config, accelerator,
                                               evaluation_sharding)

    step, metrics = start_step, {}
    progress = tqdm(total=config.max_steps, initial=start_step, desc="training",
                    disable=not accelerator.is_local_main_process)
    model.train()
    micro_steps = 0
    window = LossWindow()
    for batch in loader_from(start_step):
        if micro_steps % config.gradient_accumulation == 0:
            torch.manual_seed(config.seed * 1_000_003 + step * 1009 + accelerator.process_index)
        micro_steps += 1
        with accelerator.accumulate(model):
            losses = task.training_loss(model, batch)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}: {losses}")
            accelerator.backward(loss)
            window.add(losses)
            if accelerator.sync_gradients and config.gradient_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.gradient_clip)
            optimizer.step()
            optimizer.zero_grad()
        if not accelerator.sync_gradients:
            continue
        schedule.step()  # once per optimiser step, however many processes (see build_accelerator)
        step += 1
        progress.update(1)
        if config.log_every and step % config.log_every == 0:
            logged = {f"train/{k}": v for k, v in window.means().items()}
            logged["train/learning_rate"] = schedule.get_last_lr()[0]
            progress.set_postfix(loss=f"{logged['train/loss']:.4f}")
            accelerator.log(logged, step=step)
        unfinished = step < config.max_steps
        if config.checkpoint_every and step % config.checkpoint_every == 0 and unfinished:
            save_checkpoint(accelerator, output / "checkpoints", step, config.keep_checkpoints)
        if (evaluation_loader is not None and config.evaluate_every
                and step % config.evaluate_every == 0 and unfinished):
            metrics = evaluate(task, model, evaluation_loader, accelerator, step,
                               evaluation_sharding)
    progress.close()
    if evaluation_loader is not None:
        metrics = evaluate(task, model, evaluation_loader, accelerator, step, evaluation_sharding)
    save_checkpoint(accelerator, output / "checkpoints", step, config.keep_checkpoints)
    if accelerator.is_main_process:
        export_model(accelerator.unwrap_model(model), metrics, output)
    if finish is not None:
        finish(accelerator.unwrap_model(model), accelerator)
    # free the distributed wrapper (DDP) while its process group lives: freed after the group is
    # destroyed, a gloo group's teardown can hang the process at exit
    model, optimizer, schedule = accelerator.free_memory(model, optimizer, schedule)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


class LossWindow:
    """Sums of a training loop's losses (`{name: scalar tensor}`) since they were last read;
    summed as tensors, so adding does not wait for the device."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: Mapping[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        """The mean of each loss over the batches that gave it since the last call; then
        empties."""
        means = {name: (total / self.counts[name]).item() for name, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means


def evaluation_batches(dataset: Dataset, collate: Callable, config: HeadTrainingConfig,
                       accelerator: Accelerator, sharding: EvaluationSharding) -> DataLoader:
    """The evaluation loader of this process, its batches on the accelerator's device."""
    if sharding == "padded":
        return accelerator.prepare_data_loader(DataLoader(
            dataset, batch_size=config.evaluation_batch_size, collate_fn=collate,
            num_workers=config.num_workers,
        ))
    if sharding != "disjoint":
        raise ValueError(f"evaluation_sharding must be padded or disjoint, got {sharding!r}")
    share = Subset(dataset, range(accelerator.process_index, len(dataset),
                                  accelerator.num_processes))
    return DataLoaderShard(share, device=accelerator.device,
                           batch_size=config.evaluation_batch_size, collate_fn=collate,
                           num_workers=config.num_workers)


def evaluate(task: HeadTask, model, loader, accelerator: Accelerator, step: int,
             sharding: EvaluationSharding = "padded") -> dict:
    model.eval()
    evaluated = accelerator.unwrap_model(model) if sharding == "disjoint" else model
    with torch.no_grad():
        metrics = task.evaluate(evaluated, loader, accelerator)
    model.train()
    accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=step)
    return metrics


def split_weight_decay(model: torch.nn.Module) -> tuple[list, list]:
    """Weights of matrices decay; biases, norms and embeddings' 1-D parameters do not."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return decay, no_decay


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int, keep: int) -> None:
    """`folder/step_NNNNNNN` with the model, optimiser and schedule; written under a temporary
    name and renamed, so a crash never leaves a half checkpoint that resume would pick."""
    final = folder / f"step_{step:07d}"
    if final.exists():
        return
    partial = folder / f"step_{step:07d}.partial"
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "step.json").write_text(json.dumps({"step": step}))
        os.replace(partial, final)
        for old in sorted(folder.glob("step_???????"))[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def check_run_inputs(accelerator: Accelerator, output: Path, inputs: Mapping) -> None:
    """Records `inputs` in `output/run_inputs.json`, or, when `output` holds checkpoints, checks
    that they were trained on the same: a BadInputError naming each input that differs (or saying
    that none was recorded), so a run never resumes weights trained on other data."""
    current = json.loads(json.dumps(inputs, sort_keys=True, default=str))
    path = output / RUN_INPUTS_FILE
    checkpoints = output / "checkpoints"
    if any(checkpoints.glob("step_???????")):
        if not path.is_file():
            raise BadInputError(
                f"{checkpoints} holds checkpoints but {path} does not say what they were trained "
                "on: give another training.output_dir, or delete the checkpoints to start over"
            )
        recorded = json.loads(path.read_text())
        differences = [
            f"{key}: {json.dumps(recorded.get(key))} there, {json.dumps(current.get(key))} now"
            for key in sorted(recorded.keys() | current.keys())
            if recorded.get(key) != current.get(key)
        ]
        if differences:
            raise BadInputError(
                f"the checkpoints in {checkpoints} were trained on other inputs ("
                + "; ".join(differences) + "): give another training.output_dir, or delete the "
                "checkpoints to start over"
            )
        return
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        write_json_atomically(path, current)
    accelerator.wait_for_everyone()


def load_initial_weights(model: PreTrainedModel, folder: str) -> dict[str, str]:
    """Loads `folder/model.safetensors` into `model` (every tensor, same shapes; only the
    parameters the model's `_keys_to_ignore_on_load_missing` names may be absent, and keep
    their initial values); returns what identifies them for `check_run_inputs`: the folder and
    a hash of the file."""
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise BadInputError(f"training.initial_weights {folder}: no model.safetensors there "
                            "(give the `model` folder of an earlier run)")
    data = path.read_bytes()  # read once: loaded and hashed
    may_miss = [re.compile(pattern) for pattern in model._keys_to_ignore_on_load_missing or []]
    does_not_fit = f"training.initial_weights {folder} do not fit this model"
    try:
        loaded = model.load_state_dict(load_safetensors(data), strict=False)
    except RuntimeError as error:  # a tensor of another shape
        raise BadInputError(f"{does_not_fit}: {error}") from error
    missing = [key for key in loaded.missing_keys
               if not any(pattern.search(key) for pattern in may_miss)]
    if missing or loaded.unexpected_keys:
        raise BadInputError(f"{does_not_fit}: missing keys {missing}, unexpected keys "
                            f"{loaded.unexpected_keys}")
    return {"folder": str(folder), "weights_hash": hashlib.sha256(data).hexdigest()[:16]}


def resume(accelerator: Accelerator, folder: Path) -> int:
    """Loads the newest complete checkpoint in `folder`; returns its step (0 when none)."""
    checkpoints = sorted(folder.glob("step_???????"))
    if not checkpoints:
        return 0
    accelerator.load_state(str(checkpoints[-1]))
    step = json.loads((checkpoints[-1] / "step.json").read_text())["step"]
    accelerator.print(f"resumed from {checkpoints[-1]} (step {step})")
    return step


def export_model(model: PreTrainedModel, metrics: dict[str, float], output: Path) -> None:
    """`output/model` (save_pretrained) and `output/metrics.json`, each under a temporary name
    first; then prints the metrics as a table."""
    staging = output / "model.partial"
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(staging)
    if (output / "model").exists():
        shutil.rmtree(output / "model")
    os.replace(staging, output / "model")
    write_json_atomically(output / "metrics.json", metrics)
    print_table(metrics)


def write_json_atomically(path: Path, value) -> None:
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True))
    os.replace(temporary, path)


def print_table(metrics: dict[str, float], title: str = "metric") -> None:
    width = max([len(title), *map(len, metrics)]) + 2
    print(f"\n{title:<{width}}{'value':>10}")
    for key, value in metrics.items():
        print(f"{key:<{width}}{value:>10.4f}")


def flat_scalars(values: dict) -> dict:
    """Nested dicts flattened to `a/b` keys with scalar values (TensorBoard's hparams)."""
    return {key: value for key, value in flat_settings(values, separator="/").items()
            if isinstance(value, (int, float, str, bool))}
