"""Clips of CLEVRER-layout videos for encoder training, through the `datasets` video loader.

Training clips are a pure function of (seed, sample index): sample i of the run is always the same
clip of the same video. An epoch is the `steps_per_epoch` steps between two checkpoints, and its
loader starts at the trainer's step, so a run resumed from a checkpoint sees exactly the batches
an uninterrupted one would.
"""

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ocl.training_config import VideoDataConfig
from tasks.clevrer import VideoLoadingConfig, load_clevrer_videos


def as_tensors(videos):
    """The video dataset read as uint8 tensors (frames `[t,3,h,w]`, masks `[t,h,w]`)."""
    columns = [c for c in ("frames", "masks") if c in videos.column_names]
    return videos.with_format("torch", columns=columns, dtype=torch.uint8)


def preload_frames(videos) -> torch.Tensor:
    """Every video's frames in memory, `[v,t,3,h,w]` uint8 (videos must share their length)."""
    return torch.stack([row["frames"] for row in as_tensors(videos)])


class StepIndexedClips(Dataset):
    """`num_samples` random clips of `clip_frames` frames; sample i is fixed by (seed, i).

    `videos` is the memory-mapped video dataset, or its frames preloaded `[v,t,3,h,w]` uint8
    (much faster to cut clips from, for data that fits in memory).
    Items: `{"frames": [t,3,h,w] float in [0,1]}`.
    """

    def __init__(
        self, videos, clip_frames: int, num_samples: int, seed: int, first_sample: int = 0
    ):
        self.videos = videos if isinstance(videos, torch.Tensor) else as_tensors(videos)
        self.clip_frames = clip_frames
        self.num_samples = num_samples
        self.seed = seed
        self.first_sample = first_sample
        first = self.videos[0]
        self.num_frames = len(first if isinstance(videos, torch.Tensor) else first["frames"])
        if self.num_frames < clip_frames:
            raise ValueError(
                f"videos have {self.num_frames} frames after the stride, fewer than "
                f"clip_frames={clip_frames}"
            )

    def __len__(self) -> int:
        return self.num_samples - self.first_sample

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.first_sample + index])
        video = int(rng.integers(len(self.videos)))
        start = int(rng.integers(self.num_frames - self.clip_frames + 1))
        row = self.videos[video]
        frames = row if isinstance(row, torch.Tensor) else row["frames"]
        return {"frames": frames[start:start + self.clip_frames].float() / 255}


class FirstFrames(Dataset):
    """The first `num_frames` frames of each video with their masks, for evaluation.

    Items: `{"frames": [t,3,h,w] float in [0,1], "masks": [t,h,w] int64}`.
    """

    def __init__(self, videos, num_frames: int):
        if "masks" not in videos.column_names:
            raise ValueError("evaluation videos need instance masks (derender proposals)")
        self.videos = as_tensors(videos)
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        row = self.videos[index]
        return {
            "frames": row["frames"][: self.num_frames].float() / 255,
            "masks": row["masks"][: self.num_frames].long(),
        }


class VideoClipDataModule(L.LightningDataModule):
    """Training clips and evaluation videos of a CLEVRER-layout directory."""

    def __init__(self, config: VideoDataConfig, max_steps: int, steps_per_epoch: int, seed: int):
        super().__init__()
        self.config = config
        self.max_steps = max_steps
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed

    def load(self, split: str, limit: int):
        loading = VideoLoadingConfig(
            frame_stride=self.config.frame_stride, size=tuple(self.config.image_size)
        )
        videos = load_clevrer_videos(self.config.root, split, loading,
                                     cache_dir=self.config.cache_dir)
        return videos.select(range(min(limit, len(videos)))) if limit else videos

    def setup(self, stage: str | None = None) -> None:
        self.train_videos = self.load(self.config.train_split, self.config.max_train_videos)
        if self.config.preload:
            self.train_videos = preload_frames(self.train_videos)
        self.validation_videos = self.load(
            self.config.validation_split, self.config.max_validation_videos
        )

    def train_dataloader(self) -> DataLoader:
        """The batches of the epoch that starts at the trainer's current step."""
        step = self.trainer.global_step if self.trainer is not None else 0
        end = min(step + self.steps_per_epoch, self.max_steps)
        batch = self.config.batch_size
        clips = StepIndexedClips(
            self.train_videos, self.config.clip_frames, end * batch, self.seed,
            first_sample=step * batch,
        )
        return DataLoader(clips, batch_size=batch, num_workers=self.config.num_workers)

    def val_dataloader(self) -> DataLoader:
        evaluation = FirstFrames(self.validation_videos, self.config.validation_frames)
        return DataLoader(evaluation, batch_size=4, num_workers=self.config.num_workers)
