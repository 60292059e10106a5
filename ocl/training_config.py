"""The typed config of an encoder training run (`python -m ocl.train`)."""

from dataclasses import dataclass, field
from typing import Any

from ocl.losses import LossWeights


@dataclass
class VideoDataConfig:
    """Where the videos come from and how clips are cut.

    root: a CLEVRER-layout directory (the real download or CLEVRER-sim output).
    train_split, validation_split: its splits for training and evaluation.
    image_size: frames are resized to this (height, width).
    frame_stride: keep every k-th frame of a video.
    clip_frames: frames per training clip (1 trains on single images).
    validation_frames: frames of each validation video that are evaluated (from the start).
    max_train_videos, max_validation_videos: use at most this many (0: all).
    batch_size: clips per training step.
    num_workers: data-loading processes.
    preload: hold the training frames in memory (fast clips; needs v*t*3*h*w bytes).
    cache_dir: where decoded datasets are cached (default: beside the data).
    """

    root: str = "data/clevrer_sim"
    train_split: str = "train"
    validation_split: str = "validation"
    image_size: list[int] = field(default_factory=lambda: [64, 64])
    frame_stride: int = 1
    clip_frames: int = 3
    validation_frames: int = 16
    max_train_videos: int = 0
    max_validation_videos: int = 24
    batch_size: int = 32
    num_workers: int = 0
    preload: bool = False
    cache_dir: str | None = None

    def __post_init__(self):
        if len(self.image_size) != 2:
            raise ValueError(f"data.image_size must be [height, width], got {self.image_size}")
        for name in ("frame_stride", "clip_frames", "validation_frames", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class OptimConfig:
    """The paper's recipe: Adam, linear warm-up then cosine decay, gradient-norm clipping.

    learning_rate: peak learning rate (the paper: 2e-4 at batch 32, scaled with the batch).
    warmup_fraction: share of the steps spent warming up from 0.
    final_learning_rate_fraction: the cosine ends at learning_rate times this.
    max_steps: training steps.
    gradient_clip: maximum gradient norm (the paper: 1 for images, 0.05 for videos).
    preheat_detach_fraction: share of the first steps during which the preheater's tokens
        are detached.
    frozen: parts of the encoder kept as they start (its top-level modules: "backbone",
        "project", "initializer", "slot_attention", "transit", "decoder"), e.g. all but the
        decoder to redraw fixed slots.
    """

    learning_rate: float = 2e-4
    warmup_fraction: float = 0.05
    final_learning_rate_fraction: float = 1e-3
    max_steps: int = 50_000
    gradient_clip: float = 1.0
    preheat_detach_fraction: float = 0.1
    frozen: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.learning_rate <= 0 or self.max_steps < 1 or self.gradient_clip <= 0:
            raise ValueError(f"optim needs learning_rate > 0, max_steps >= 1, clip > 0: {self}")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.preheat_detach_fraction <= 1:
            raise ValueError(f"optim fractions must lie in [0, 1): {self}")


@dataclass
class TrainerConfig:
    """Running the training.

    output_dir: checkpoints, logs, pictures, metrics.json and the exported encoder go here.
    seed: seeds the model, the clips and every random draw of every step.
    validation_every: steps between validations (metrics, the picture); a multiple of
        checkpoint_every.
    checkpoint_every: steps between checkpoints.
    log_every: steps between logged losses.
    precision: Lightning precision; "auto" is bf16-mixed on a GPU and 32-true on CPU.
    accelerator: "auto", "cpu" or "gpu".
    segmentation_from: masks scored against the ground truth: "decoder" or "slot_attention".
    stop_at_step: end the run after this step, before the schedule of optim.max_steps has run
        out (0: at optim.max_steps); the learning rate follows the full schedule until then.
    max_minutes: end the run after this much training time, counted over resumes (0: no
        limit), then validate and export as at the last step: for a fixed budget on a
        machine whose speed is not known beforehand. The schedule still follows optim.max_steps.
    """

    output_dir: str = "runs/encoder"
    seed: int = 0
    validation_every: int = 1000
    checkpoint_every: int = 500
    log_every: int = 50
    precision: str = "auto"
    accelerator: str = "auto"
    segmentation_from: str = "decoder"
    stop_at_step: int = 0
    max_minutes: float = 0.0

    def __post_init__(self):
        if self.stop_at_step < 0:
            raise ValueError(f"trainer.stop_at_step must be >= 0, got {self.stop_at_step}")
        if not self.max_minutes >= 0:
            raise ValueError(f"trainer.max_minutes must be >= 0, got {self.max_minutes}")
        if self.checkpoint_every < 1 or self.validation_every % self.checkpoint_every:
            raise ValueError(
                f"trainer.validation_every ({self.validation_every}) must be a multiple of "
                f"trainer.checkpoint_every ({self.checkpoint_every})"
            )
        if self.segmentation_from not in ("decoder", "slot_attention"):
            raise ValueError(
                f"trainer.segmentation_from must be decoder or slot_attention, "
                f"got {self.segmentation_from!r}"
            )


@dataclass
class EncoderTrainingConfig:
    """model: SmoothSAConfig fields; backbone_weights: a Hub id or folder of pretrained
    DINOv2-with-registers weights loaded into a "dinov2" backbone; initial_weights: an encoder
    folder (`save_pretrained`) whose weights start the run, e.g. an image model trained further
    on videos (the parameters it lacks, such as a video model's transit, keep their
    initialisation); the rest as documented in each section."""

    model: dict[str, Any] = field(default_factory=dict)
    backbone_weights: str | None = None
    initial_weights: str | None = None
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
