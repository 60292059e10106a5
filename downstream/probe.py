"""Recognition probes for several encoders side by side: `accelerate launch downstream/probe.py`.

    python downstream/probe.py --config configs/probe/clevrer_sim.yaml data.root=DIR \\
        'encoders=[{name: trained, path: ENC}, {name: random, path: ENC, random_init: true},
                   {name: no-preheater, path: ENC2}]'
    accelerate launch downstream/probe.py --config configs/probe/tiny.yaml ...

For each encoder (a column of the table): its slots are matched to the ground-truth objects of
the training split and of the held-out split (`downstream/matched_slots.py`: argmax of the
upsampled attention, Hungarian matching on IoU, pairs at or under the threshold dropped; videos
frame by frame); every probe is trained on the training split's matched slots and scored on the
held-out split's (`downstream/probe_suite.py`). The table (one row per metric) is printed, and
`metrics.json` ({column: {metric: value}}) and `config.yaml` are written to `output_dir`.

Data sources (`data.source`):
    clevrer       CLEVRER / CLEVRER-sim videos under `data.root` (masks from the derender
                  proposals, labels from the annotations), encoded on the fly;
    coco          COCO-style instances JSON + image folder per split, encoded on the fly;
    slot_dataset  each encoder's `path` is a slot dataset WITH masks (`downstream/extract.py`)
                  whose splits are `data.train_split` / `data.evaluation_split`; the ground truth
                  is the CLEVRER directory `data.root`, read with the dataset's frame stride.
Encoding is split over the processes of an `accelerate launch` (contiguous blocks of samples,
gathered in order, so the result does not depend on the number of processes); the probes, which
are small, train on the main process.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:  # `accelerate launch downstream/probe.py` runs it as a file
    sys.path.insert(0, str(REPOSITORY))

import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402

from downstream.clevrer_objects import ClevrerObjects, ClevrerObjectsConfig  # noqa: E402
from downstream.coco_source import CocoObjects  # noqa: E402
from downstream.head_training import write_json_atomically  # noqa: E402
from downstream.labelled_objects import ObjectSource  # noqa: E402
from downstream.matched_slots import (  # noqa: E402
    MatchedSlots,
    MatchingConfig,
    extract_matched_slots,
    match_stored_slots,
)
from downstream.probe_suite import run_probes  # noqa: E402
from downstream.probes import ProbeTrainingConfig  # noqa: E402
from downstream.slot_encoding import load_frozen_encoder  # noqa: E402
from ocl.config_loading import config_to_yaml, parse_config_arguments  # noqa: E402
from ocl.modeling import SmoothSAModel  # noqa: E402
from tasks.slots import load_slots, slot_provenance  # noqa: E402

SOURCES: tuple[str, ...] = ("clevrer", "coco", "slot_dataset")


@dataclass
class EncoderEntry:
    """One column of the table.

    path: a folder written by `SmoothSAModel.save_pretrained`, or a Hub model id; with the
        slot_dataset source, a slot dataset with masks (folder or Hub id).
    name: the column's title (default: the folder's name, plus "-random" with random_init).
    random_init: the same encoder config with fresh weights (the "random weights" baseline):
        only `path`'s config.json is read.
    seed: seeds the fresh weights of random_init.
    """

    path: str = ""
    name: str = ""
    random_init: bool = False
    seed: int = 0

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        base = Path(self.path.rstrip("/")).name or self.path
        return f"{base}-random" if self.random_init else base


@dataclass
class ProbeDataConfig:
    """Where the images or videos and their objects come from.

    source: "clevrer", "coco" or "slot_dataset" (see the module docstring).
    root: the CLEVRER directory (clevrer and slot_dataset).
    train_split, evaluation_split: CLEVRER (and slot dataset) splits the probes train on and
        are scored on.
    frame_stride: CLEVRER frames 0, s, 2s, ... (slot_dataset: the dataset's own stride is used).
    size: [height, width] CLEVRER frames and masks are stored at (null: the files' size).
    max_samples: the first videos or images of each split only (0: all).
    moving_speed: horizontal speed above which a CLEVRER object is "moving".
    with_height: CLEVRER positions are (x, y, z) instead of (x, y).
    coco_train_annotations, coco_train_images, coco_evaluation_annotations,
        coco_evaluation_images: instances JSON and image folder of each COCO split.
    include_crowd: COCO crowd instances count as objects.
    cache_dir: where CLEVRER videos and slot datasets are cached as Arrow (null: the
        Hugging Face datasets cache).
    """

    source: str = "clevrer"
    root: str = "data/clevrer-sim"
    train_split: str = "train"
    evaluation_split: str = "validation"
    frame_stride: int = 1
    size: list[int] | None = None
    max_samples: int = 0
    moving_speed: float = 0.2
    with_height: bool = False
    coco_train_annotations: str = ""
    coco_train_images: str = ""
    coco_evaluation_annotations: str = ""
    coco_evaluation_images: str = ""
    include_crowd: bool = False
    cache_dir: str | None = None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "coco":
            for name in ("coco_train_annotations", "coco_train_images",
                         "coco_evaluation_annotations", "coco_evaluation_images"):
                if not getattr(self, name):
                    raise ValueError(f"data.source coco needs data.{name}")
        if self.max_samples < 0:
            raise ValueError(f"data.max_samples must be >= 0 (0: all), got {self.max_samples}")


@dataclass
class ProbeConfig:
    """A probe table: encoders, data, matching and probe training.

    output_dir: where metrics.json and config.yaml are written.
    encoders: the columns (at least one).
    class_attribute: the category the official object probe classifies ("shape" on CLEVRER,
        "class" on COCO).
    attributes: the attributes to probe with a linear and an MLP probe (null: all the source
        has).
    """

    output_dir: str = "runs/probe"
    encoders: list[EncoderEntry] = field(default_factory=list)
    data: ProbeDataConfig = field(default_factory=ProbeDataConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    training: ProbeTrainingConfig = field(default_factory=ProbeTrainingConfig)
    class_attribute: str = "shape"
    attributes: list[str] | None = None

    def __post_init__(self):
        if not self.encoders:
            raise ValueError("no encoders: give encoders=[{path: DIR}, ...]")
        titles = [entry.title for entry in self.encoders]
        if any(not entry.path for entry in self.encoders):
            raise ValueError("every encoder needs a path")
        if len(set(titles)) != len(titles):
            raise ValueError(f"encoder columns need distinct names, got {titles}")
        if self.data.source == "slot_dataset" and any(e.random_init for e in self.encoders):
            raise ValueError("random_init needs an encoder; the slot_dataset source has none")


def load_encoder(entry: EncoderEntry) -> SmoothSAModel:
    """The frozen encoder of `entry` (eval mode, no gradients); fresh weights for random_init."""
    encoder, _ = load_frozen_encoder(entry.path)
    if entry.random_init:
        torch.manual_seed(entry.seed)  # before the modules are built: their initial weights
        encoder = SmoothSAModel(encoder.config)
    return encoder.eval().requires_grad_(False)


def object_source(
    data: ProbeDataConfig, training: bool, frame_stride: int | None = None
) -> ObjectSource:
    """The images or videos of the training or the held-out split, with their objects."""
    if data.source == "coco":
        return CocoObjects(
            data.coco_train_annotations if training else data.coco_evaluation_annotations,
            data.coco_train_images if training else data.coco_evaluation_images,
            max_images=data.max_samples, include_crowd=data.include_crowd,
        )
    split = data.train_split if training else data.evaluation_split
    config = ClevrerObjectsConfig(
        frame_stride=frame_stride or data.frame_stride,
        size=tuple(data.size) if data.size else None, max_videos=data.max_samples,
        moving_speed=data.moving_speed, with_height=data.with_height,
    )
    return ClevrerObjects(data.root, split, config, cache_dir=data.cache_dir)


def matched_split(entry: EncoderEntry, encoder: SmoothSAModel | None, training: bool,
                  config: ProbeConfig, state: PartialState) -> MatchedSlots:
    """The matched slots of the training or the held-out split, every process matching a
    contiguous block of samples; gathered in order on every process."""
    progress = state.is_local_main_process
    if config.data.source == "slot_dataset":
        split = config.data.train_split if training else config.data.evaluation_split
        slots = load_slots(entry.path, split=split, cache_dir=config.data.cache_dir)
        stride = slot_provenance(slots).frame_stride
        with state.main_process_first():  # the first process builds the video cache
            source = object_source(config.data, training, frame_stride=stride)
        rows = _block(len(slots), state)
        part = match_stored_slots(slots, source, config.matching.threshold, rows, progress)
    else:
        with state.main_process_first():
            source = object_source(config.data, training)
        part = extract_matched_slots(encoder, source, config.matching, _block(len(source), state),
                                     progress)
    return MatchedSlots.concatenate(gather_object([part]))


def _block(count: int, state: PartialState) -> range:
    """This process's contiguous share of `count` samples."""
    size = math.ceil(count / state.num_processes)
    return range(min(state.process_index * size, count),
                 min((state.process_index + 1) * size, count))


def run_probe_table(config: ProbeConfig) -> dict[str, dict[str, float]]:
    """Every probe for every encoder; returns {column: {metric: value}} (on the main process;
    an empty dict on the others) and writes metrics.json and config.yaml."""
    state = PartialState()
    columns: dict[str, dict[str, float]] = {}
    for entry in config.encoders:
        encoder = None
        if config.data.source != "slot_dataset":
            encoder = load_encoder(entry).to(state.device)
        state.print(f"[{entry.title}] matching slots to objects")
        train = matched_split(entry, encoder, True, config, state)
        evaluation = matched_split(entry, encoder, False, config, state)
        if state.is_main_process:
            print(f"[{entry.title}] {train.num_matched}/{train.num_objects} training and "
                  f"{evaluation.num_matched}/{evaluation.num_objects} held-out objects "
                  "matched; training the probes")
            columns[entry.title] = run_probes(train, evaluation, config.class_attribute,
                                              config.attributes, config.training, state.device,
                                              progress=True)
        del encoder
    if state.is_main_process:
        output = Path(config.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        write_json_atomically(output / "metrics.json", columns)
        temporary = output / "config.yaml.partial"
        temporary.write_text(config_to_yaml(config))
        os.replace(temporary, output / "config.yaml")
        print("\n" + format_table(columns))
        print(f"\nwrote {output / 'metrics.json'}")
    state.wait_for_everyone()
    return columns


def format_table(columns: dict[str, dict[str, float]]) -> str:
    """One row per metric, one column per encoder; counts as integers, the rest to 3 places."""
    rows = list(dict.fromkeys(name for metrics in columns.values() for name in metrics))
    titles = list(columns)
    width = max(len("metric"), *map(len, rows))
    cell = max(9, *map(len, titles))
    lines = ["metric".ljust(width) + "".join(title.rjust(cell + 2) for title in titles)]
    for row in rows:
        values = [columns[title].get(row, math.nan) for title in titles]
        integer = row in ("objects", "matched", "train_matched")
        lines.append(row.ljust(width) + "".join(
            ("nan" if math.isnan(value) else f"{value:.0f}" if integer else f"{value:.3f}")
            .rjust(cell + 2) for value in values))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    config = parse_config_arguments(
        ProbeConfig, "Recognition probes of frozen encoders, side by side.", argv
    )
    return run_probe_table(config)


if __name__ == "__main__":
    main()
