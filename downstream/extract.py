"""Extract slots once with a frozen SmoothSA encoder, as a slot dataset (and publish it).

    python downstream/extract.py --encoder PATH_OR_HUB_ID --data DIR --out DIR \
        [--push-to-hub USER/NAME] [--config extract.yaml] [key=value ...]
    accelerate launch downstream/extract.py ...        # shards split over processes / GPUs

    from downstream.extract import ExtractionConfig, extract_slots
    summary = extract_slots(ExtractionConfig(encoder=..., data=..., out=...))

Every video of a CLEVRER-layout folder (`tasks/clevrer_layout.py`) is decoded (every
`frame_stride`-th frame, resized to the encoder's image size) and streamed through the encoder
(`downstream/slot_encoding.py`); the output folder is what a Hub dataset repository holds:

    OUT/data/{split}-{i:05d}-of-{n:05d}.parquet   slot rows (schema: tasks/slots.py)
    OUT/README.md                                  card: YAML `configs` + `slot_dataset` metadata
    OUT/extraction.json                            what the output is made of (for resuming)

so `tasks.slots.load_slots(OUT)` and `load_slots("user/name")` are one code path. Shards are
fixed up front (`videos_per_shard`, `downstream/extraction_plan.py`) and each is written under a
temporary name and renamed when complete: an interrupted run continues from the shards it
finished, and a run over finished output writes nothing. Slots are a pure function of the
encoder, the frames and (seed, video index), whatever the number of processes or shard order.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import datasets
import torch
import transformers
from accelerate import PartialState
from accelerate.utils import gather_object, parse_flag_from_env
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from downstream.extraction_plan import (
    ExtractionPlan,
    ShardTask,
    check_record,
    plan_shards,
    write_record,
    write_text_atomically,
)
from downstream.hub_publishing import HubPublishingError, push_slot_folder
from downstream.slot_encoding import (
    PRECISIONS,
    EncoderIdentity,
    EncodingOptions,
    encode_videos,
    load_frozen_encoder,
    video_noise,
)
from ocl.config_loading import load_config
from ocl.modeling import SmoothSAModel
from tasks.slots import (
    SLOT_DTYPES,
    SlotProvenance,
    SlotShard,
    SlotSpec,
    check_complete_shards,
    slot_dataset_card,
)
from tasks.video_decoding import decode_video

FORMAT_VERSION = 1  # of extraction.json; bump when the rows an extraction writes change


@dataclass
class ExtractionConfig:
    """What to extract, how, and where to.

    encoder: a folder written by `SmoothSAModel.save_pretrained`, or a Hub model id.
    data: a folder in the CLEVRER layout (videos/{split}/video_00000-01000/video_00042.mp4).
    out: the output folder (a Hub dataset repo's layout).
    splits: the splits to extract; None: every split that has videos (train/validation/test).
    encoder_revision: the Hub revision (branch, tag or commit) of the encoder.
    encoder_name: what the card and the rows call the encoder (default: the Hub id, or the
        local folder's name; local paths are never written into the output).
    frame_stride: encode frames 0, s, 2s, ... of every video.
    image_size: [height, width] frames are resized to; None: the encoder's image_size (any
        other size is refused: the encoder was built for one).
    chunk_frames: frames per encoder call; memory grows with it, not with video length.
    videos_per_shard: rows of each Parquet shard (fixes the shards up front).
    batch_videos: equally long videos encoded together.
    dtype: "float16" or "float32" for the stored slots and masks.
    store_masks: also store Slot Attention's attention masks [t,n,h,w].
    mask_size: [h, w] the stored masks are resized to; None: the encoder's grid.
    seed: seeds each video's preheater noise, with the video index.
    precision: "auto" (bf16 on a GPU, fp32 on CPU), "fp32", "bf16" or "fp16" autocast.
    decode_workers: processes decoding videos ahead of the encoder (0: in this process).
    push_to_hub: a dataset repo id to publish the output to when it is complete.
    private: the Hub repo is private (default) or public.
    max_videos: only the first videos of each split (smoke runs).
    """

    encoder: str
    data: str
    out: str
    splits: list[str] | None = None
    encoder_revision: str | None = None
    encoder_name: str | None = None
    frame_stride: int = 1
    image_size: list[int] | None = None
    chunk_frames: int = 32
    videos_per_shard: int = 250
    batch_videos: int = 8
    dtype: str = "float16"
    store_masks: bool = False
    mask_size: list[int] | None = None
    seed: int = 0
    precision: str = "auto"
    decode_workers: int = 0
    push_to_hub: str | None = None
    private: bool = True
    max_videos: int | None = None

    def __post_init__(self):
        for name in ("encoder", "data", "out"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required (--{name})")
        for name in ("frame_stride", "chunk_frames", "videos_per_shard", "batch_videos"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_videos is not None and self.max_videos < 1:
            raise ValueError(f"max_videos must be >= 1, got {self.max_videos}")
        if self.decode_workers < 0:
            raise ValueError(f"decode_workers must be >= 0, got {self.decode_workers}")
        if self.dtype not in SLOT_DTYPES:
            raise ValueError(f"dtype must be one of {SLOT_DTYPES}, got {self.dtype!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be auto|fp32|bf16|fp16, got {self.precision!r}")
        for name in ("image_size", "mask_size"):
            size = getattr(self, name)
            if size is not None and (len(size) != 2 or min(size) < 1):
                raise ValueError(f"{name} must be [height, width] > 0, got {list(size)}")
        if self.mask_size is not None and not self.store_masks:
            raise ValueError("mask_size is set but store_masks is off")


@dataclass
class ExtractionSummary:
    """What an extraction run did.

    output_dir: the slot dataset folder.
    split_videos, split_shards: videos and shards per split in the output.
    shards_written: shards written in this run (by all processes).
    shards_skipped: shards that were already finished when this run began.
    videos_encoded: videos encoded in this run (by all processes).
    seconds: time from start to end (loading the encoder included), on this process.
    repo_url: where the output was published (None: not published).
    """

    output_dir: Path
    split_videos: dict[str, int]
    split_shards: dict[str, int]
    shards_written: int = 0
    shards_skipped: int = 0
    videos_encoded: int = 0
    seconds: float = 0.0
    repo_url: str | None = None

    @property
    def videos_per_second(self) -> float:
        return self.videos_encoded / self.seconds if self.seconds else 0.0


@dataclass
class Extraction:
    """An extraction ready to run: the plan, the loaded encoder and what the output records."""

    config: ExtractionConfig
    plan: ExtractionPlan
    encoder: SmoothSAModel
    identity: EncoderIdentity
    options: EncodingOptions
    image_size: tuple[int, int]
    spec: SlotSpec
    provenance: SlotProvenance
    record: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    def pending(self, tasks: tuple[ShardTask, ...]) -> list[ShardTask]:
        return [task for task in tasks if not (self.out / "data" / task.filename).is_file()]


def extract_slots(config: ExtractionConfig) -> ExtractionSummary:
    """Runs (or resumes) an extraction in this process, or in each process of an `accelerate
    launch`; the main process then writes the card and, if asked, publishes the output.

    Raises:
        FileNotFoundError: the encoder or the data folder does not exist.
        BadInputError: no videos, or a video that cannot be decoded.
        ValueError: settings that do not fit the encoder, or an output folder made otherwise.
        HubPublishingError: the upload failed (the local output is complete and intact).
    """
    start = time.perf_counter()
    # PartialState, not Accelerator: it fixes no mixed precision, so a training Accelerator
    # can follow in the same process. `cpu` as Accelerator reads it, so that several CPU
    # processes (accelerate launch --multi_gpu with ACCELERATE_USE_CPU=1) form a gloo group.
    processes = PartialState(
        cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    )
    extraction = prepare_extraction(config, processes.device)
    already = check_record(extraction.out, extraction.record)
    skipped = len(extraction.plan.shards) - len(extraction.pending(extraction.plan.shards))
    processes.wait_for_everyone()  # every process checked the record before it is written
    if processes.is_main_process and not already:
        write_record(extraction.out, extraction.record)
    processes.wait_for_everyone()
    finished = skipped == len(extraction.plan.shards) and (extraction.out / "README.md").is_file()
    summary = ExtractionSummary(extraction.out, dict(extraction.plan.split_videos),
                                extraction.plan.split_shards(), shards_skipped=skipped)
    if finished:
        if processes.is_main_process:
            print(f"nothing to do: {extraction.out} already holds all "
                  f"{len(extraction.plan.shards)} shards and its card")
    else:
        written = run_shards(extraction, processes.process_index, processes.num_processes,
                             show_progress=processes.is_local_main_process)
        counts = gather_object([written])  # every process's (shards, videos)
        summary.shards_written = sum(shards for shards, _ in counts)
        summary.videos_encoded = sum(videos for _, videos in counts)
    processes.wait_for_everyone()
    if processes.is_main_process:
        write_card(extraction)
    summary.seconds = time.perf_counter() - start
    if processes.is_main_process:
        if config.push_to_hub:
            summary.repo_url = push_slot_folder(extraction.out, config.push_to_hub,
                                                private=config.private)
        print_summary(summary)
    return summary


def prepare_extraction(config: ExtractionConfig, device: torch.device | str) -> Extraction:
    """Plans the shards, loads the encoder onto `device` and checks the settings against it."""
    plan = plan_shards(config.data, tuple(config.splits) if config.splits else None,
                       config.videos_per_shard, config.max_videos)
    encoder, identity = load_frozen_encoder(config.encoder, config.encoder_revision,
                                            config.encoder_name)
    encoder_config = encoder.config
    if encoder_config.backbone == "features":
        raise ValueError(f"encoder {config.encoder} takes feature maps (backbone 'features'), "
                         "not video frames")
    image_size = tuple(encoder_config.image_size)
    if config.image_size is not None and tuple(config.image_size) != image_size:
        raise ValueError(
            f"image_size {list(config.image_size)} does not match the encoder's "
            f"{list(image_size)} (image_size in {config.encoder}'s config.json): the encoder "
            "takes frames of one size; leave image_size unset to resize frames to it"
        )
    device = torch.device(device)
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    mask_size = None
    if config.store_masks:
        mask_size = tuple(config.mask_size) if config.mask_size else tuple(encoder.grid)
    options = EncodingOptions(config.chunk_frames, precision, config.store_masks, mask_size)
    spec = SlotSpec(encoder_config.num_slots, encoder_config.slot_dim, config.dtype, mask_size)
    provenance = SlotProvenance(identity.encoder_id, identity.config_hash, config.frame_stride)
    extraction = Extraction(config, plan, encoder.to(device), identity, options, image_size,
                            spec, provenance)
    extraction.record = {
        "format_version": FORMAT_VERSION,
        "encoder": {"id": identity.encoder_id, "revision": identity.revision,
                    "config_hash": identity.config_hash, "weights_hash": identity.weights_hash},
        "splits": {split: {"videos": plan.split_videos[split],
                           "shards": plan.split_shards()[split],
                           "files_hash": plan.split_fingerprints[split]}
                   for split in plan.split_videos},
        "frame_stride": config.frame_stride,
        "image_size": list(image_size),
        "chunk_frames": config.chunk_frames,
        "videos_per_shard": config.videos_per_shard,
        "batch_videos": config.batch_videos,
        "dtype": config.dtype,
        "mask_size": list(mask_size) if mask_size else None,
        "seed": config.seed,
        "precision": precision,
    }
    return extraction


def run_shards(extraction: Extraction, process_index: int = 0, num_processes: int = 1,
               show_progress: bool = True) -> tuple[int, int]:
    """Writes the unfinished shards of process `process_index` of `num_processes`; returns
    (shards written, videos encoded)."""
    pending = extraction.pending(extraction.plan.assigned(process_index, num_processes))
    config = extraction.config
    progress = tqdm(total=sum(len(task.videos) for task in pending), unit="video",
                    desc="extracting slots", disable=not show_progress)
    videos = 0
    for task in pending:
        with SlotShard(extraction.out / "data" / task.filename, extraction.spec,
                       extraction.provenance) as shard:
            for indices, frames in video_batches(task, config.frame_stride,
                                                 extraction.image_size, config.batch_videos,
                                                 config.decode_workers):
                noise = torch.stack([video_noise(config.seed, index, extraction.encoder.config)
                                     for index in indices])
                encoded = encode_videos(extraction.encoder, frames, noise, extraction.options)
                for row, video_index in enumerate(indices):
                    masks = encoded.masks[row].numpy() if encoded.masks is not None else None
                    shard.write(video_index, encoded.slots[row].numpy(), masks)
                videos += len(indices)
                progress.update(len(indices))
    progress.close()
    return len(pending), videos


class ShardVideos(Dataset):
    """The decoded videos of one shard: (video index, frames `[t,3,h,w]` uint8)."""

    def __init__(self, task: ShardTask, frame_stride: int, image_size: tuple[int, int]):
        self.videos, self.frame_stride, self.image_size = task.videos, frame_stride, image_size

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, position: int) -> tuple[int, torch.Tensor]:
        video_index, path = self.videos[position]
        decoded = decode_video(path, self.frame_stride, self.image_size)
        return video_index, torch.from_numpy(decoded.frames)


def video_batches(task: ShardTask, frame_stride: int, image_size: tuple[int, int],
                  batch_videos: int, decode_workers: int = 0
                  ) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Batches of up to `batch_videos` consecutive, equally long videos of a shard, decoded in
    `decode_workers` processes: (video indices, frames `[b,t,3,h,w]` uint8). The batches depend
    only on the shard, so every process count makes the same ones."""
    loader = DataLoader(ShardVideos(task, frame_stride, image_size), batch_size=None,
                        num_workers=decode_workers)
    indices, frames = [], []
    for video_index, video in loader:
        if frames and (len(frames) == batch_videos or video.shape != frames[0].shape):
            yield indices, torch.stack(frames)
            indices, frames = [], []
        indices.append(int(video_index))
        frames.append(video)
    if frames:
        yield indices, torch.stack(frames)


def write_card(extraction: Extraction) -> None:
    """README.md: the `datasets` configs and everything the output was made from."""
    check_complete_shards(extraction.out)
    config, identity = extraction.config, extraction.identity
    metadata = {
        "encoder": {"id": identity.encoder_id, "revision": identity.revision,
                    "weights_hash": identity.weights_hash, "config": identity.config},
        "data": {"layout": "CLEVRER", "name": Path(config.data).expanduser().resolve().name,
                 "splits": extraction.record["splits"]},
        "image_size": extraction.record["image_size"],
        "noise": "preheater noise of each video: torch.randn([n,d]) from a torch.Generator "
                 "seeded by numpy SeedSequence([seed, video_index])",
        **{key: extraction.record[key]
           for key in ("seed", "precision", "chunk_frames", "videos_per_shard", "batch_videos")},
        "software": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "datasets": datasets.__version__},
    }
    card = slot_dataset_card(extraction.spec, extraction.provenance,
                             tuple(extraction.plan.split_videos), metadata)
    path = extraction.out / "README.md"
    if not path.is_file() or path.read_text() != card:
        write_text_atomically(path, card)


def print_summary(summary: ExtractionSummary) -> None:
    print(f"\n{'split':<12}{'videos':>8}{'shards':>8}")
    for split, videos in summary.split_videos.items():
        print(f"{split:<12}{videos:>8}{summary.split_shards[split]:>8}")
    print(f"output {summary.output_dir}: {summary.shards_written} shards written, "
          f"{summary.shards_skipped} already finished; {summary.videos_encoded} videos in "
          f"{summary.seconds:.1f} s ({summary.videos_per_second:.2f} videos/s)")
    if summary.repo_url:
        print(f"published to {summary.repo_url}")


def parse_arguments(argv: list[str] | None = None) -> ExtractionConfig:
    """`--config FILE`, dotted `key=value` overrides, and flags for the common fields (flags
    win over the file and the overrides)."""
    parser = argparse.ArgumentParser(description="Extract slots with a frozen SmoothSA encoder",
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help="YAML file of ExtractionConfig fields")
    parser.add_argument("overrides", nargs="*", default=[],
                        help="key=value overrides of any ExtractionConfig field")
    parser.add_argument("--encoder", help="encoder folder or Hub model id")
    parser.add_argument("--data", help="CLEVRER-layout folder")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--splits", nargs="+", help="default: every split with videos")
    parser.add_argument("--frame-stride", type=int)
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--chunk-frames", type=int)
    parser.add_argument("--videos-per-shard", type=int)
    parser.add_argument("--batch-videos", type=int)
    parser.add_argument("--dtype", choices=SLOT_DTYPES)
    parser.add_argument("--store-masks", action="store_true")
    parser.add_argument("--mask-size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--precision", choices=("auto", *PRECISIONS))
    parser.add_argument("--decode-workers", type=int)
    parser.add_argument("--max-videos", type=int)
    parser.add_argument("--push-to-hub", metavar="REPO_ID")
    parser.add_argument("--public", action="store_true", help="publish a public repo")
    args = vars(parser.parse_args(argv))
    path, overrides = args.pop("config"), args.pop("overrides")
    if args.pop("public", False):
        args["private"] = False
    names = {item.name for item in fields(ExtractionConfig)}
    flags = {key: value for key, value in args.items() if key in names}
    required = [f"{name}={flags.pop(name)}" for name in ("encoder", "data", "out")
                if name in flags]
    # the three required fields must be present before the dataclass is built from YAML
    config = load_config(ExtractionConfig, path, required + list(overrides))
    return replace(config, **flags)


def main(argv: list[str] | None = None) -> ExtractionSummary:
    config = parse_arguments(argv)
    try:
        return extract_slots(config)
    except (HubPublishingError, ValueError, OSError) as error:
        # bad input, settings or output folder, a missing file, no network: the message says
        # what and where; a traceback would only bury it
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

