"""The data of the built-in default run (`accelerate launch downstream/vqa.py`, no arguments),
each part made once into a cache folder and reused: a small CLEVRER-sim set
(`tasks.clevrer_sim.generate_dataset`), then its slots by the small SmoothSA encoder that the
encoder training ships (`downstream.extract.extract_slots`). The run then trains the reasoner on
them as on any data.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from accelerate import Accelerator

from downstream.extract import ExtractionConfig, extract_slots
from downstream.extraction_plan import source_identity
from tasks.clevrer_sim import SimConfig, generate_dataset

REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass
class PrepareConfig:
    """The built-in default's data, made once into `cache_dir` before training (when `enabled`).

    videos, frames, size, seed, field_of_view: the CLEVRER-sim set (videos of `frames` frames,
        `size` pixels square, seen through the camera's `field_of_view`; split into train,
        validation and test by the generator). The encoder should have been trained on the same
        field of view: it sets the objects' size in pixels.
    pixel_format: the videos' H.264 pixel format; yuv420p, the format the shipped small
        encoders were trained on.
    descriptive_per_video, explanatory_per_video, predictive_per_video,
        counterfactual_per_video: most questions of each type asked of a video (multiple-choice
        questions are also limited by the events a video holds).
    encoder: the small SmoothSA encoder, a folder as `save_pretrained` writes it (a relative
        path is looked for under the repository first, then the working directory).
    frame_stride: the slots of frames 0, s, 2s, ... of every video are extracted.
    """

    enabled: bool = False
    cache_dir: str = ".cache/vqa-default"
    videos: int = 300
    frames: int = 32
    size: int = 64
    seed: int = 0
    field_of_view: float = SimConfig.field_of_view
    pixel_format: str = "yuv420p"
    descriptive_per_video: int = SimConfig.descriptive_per_video
    explanatory_per_video: int = SimConfig.explanatory_per_video
    predictive_per_video: int = SimConfig.predictive_per_video
    counterfactual_per_video: int = SimConfig.counterfactual_per_video
    encoder: str = "models/clevrer_sim_small_gpu"
    frame_stride: int = 2

    def __post_init__(self):
        for name in ("videos", "frames", "size", "frame_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"prepare.{name} must be >= 1, got {getattr(self, name)}")

    def sim_config(self) -> SimConfig:
        return SimConfig(
            num_videos=self.videos, num_frames=self.frames, width=self.size, height=self.size,
            seed=self.seed, field_of_view=self.field_of_view, pixel_format=self.pixel_format,
            descriptive_per_video=self.descriptive_per_video,
            explanatory_per_video=self.explanatory_per_video,
            predictive_per_video=self.predictive_per_video,
            counterfactual_per_video=self.counterfactual_per_video,
        )


class MissingPieceError(RuntimeError):
    """The built-in default needs a part of the project that this checkout does not have."""


def prepare_default_data(prepare: PrepareConfig, accelerator: Accelerator) -> tuple[Path, Path]:
    """The CLEVRER-sim folder and its slot dataset folder under `prepare.cache_dir`, made where
    missing: the main process generates the videos; every process takes its share of the
    extraction (which resumes, and does nothing when its output is complete)."""
    encoder = encoder_folder(prepare.encoder)
    cache = Path(prepare.cache_dir).expanduser()
    sim = prepare.sim_config()
    fingerprint = hashlib.sha256(json.dumps(sim.to_dict(), sort_keys=True).encode()).hexdigest()
    name = f"{prepare.videos}v-{prepare.frames}f-{prepare.size}px-{fingerprint[:8]}"
    clevrer_root = cache / f"clevrer-sim-{name}"
    weights = source_identity(str(encoder))["weights_sha256"]  # new weights: new slots
    slots = cache / f"slots-{name}-stride{prepare.frame_stride}-{encoder.name}-{weights[:8]}"
    if accelerator.is_main_process and not (clevrer_root / "questions" / "test.json").is_file():
        generate_dataset(sim, clevrer_root, workers=os.cpu_count() or 1)
    accelerator.wait_for_everyone()
    extract_slots(ExtractionConfig(encoder=str(encoder), data=str(clevrer_root),
                                   out=str(slots), frame_stride=prepare.frame_stride,
                                   seed=prepare.seed))
    return clevrer_root, slots


def encoder_folder(path: str) -> Path:
    """The encoder folder `path`: under the repository, or as given."""
    for candidate in (REPOSITORY / path, Path(path).expanduser()):
        if (candidate / "config.json").is_file():
            return candidate
    raise MissingPieceError(
        f"the built-in default run reads the small SmoothSA encoder in {path} "
        "(prepare.encoder), which holds no encoder: train it (configs/ocl/clevrer_sim_small.yaml"
        ", exported to OUTPUT/encoder) or point prepare.encoder at an encoder folder"
    )
