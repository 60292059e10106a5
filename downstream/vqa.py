"""The VQA reasoner on CLEVRER: `accelerate launch downstream/vqa.py`.

    accelerate launch downstream/vqa.py                                  # the built-in default
    accelerate launch downstream/vqa.py --config configs/vqa/tiny.yaml data.clevrer_root=...
    accelerate launch downstream/vqa.py --config ... --rollout user/clevrer-rollout-slots
    python downstream/vqa.py --compare runs/vqa runs/vqa-question-only   # runs side by side
    python downstream/vqa.py --families runs/vqa runs/vqa-question-only  # per question family

An Aloe-style transformer (`downstream/reasoner.py`) reads the slots of T frames and a question,
and answers questions of all four CLEVRER types. It trains with the shared accelerate loop
(`downstream/head_training.py`) on one CPU, one GPU or many processes, on a slot dataset (a
folder or a Hub id), on slots encoded on the fly by a frozen SmoothSA encoder, or on a baseline's
inputs (`downstream/vqa_baselines.py`); it writes checkpoints, TensorBoard logs, the model,
`metrics.json` (`downstream/clevrer_metrics.py`), a table, and for a test split the challenge's
`submission.json` (`downstream/submission.py`). Two CPU processes:
`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 downstream/vqa.py ...`
(`--cpu --num_processes 2` runs one process).

With no arguments the config is `configs/vqa/default.yaml`, whose `prepare` section makes the
data first (`downstream/vqa_default.py`): a small CLEVRER-sim set and its slots, each made once
into a cache folder.
"""

import argparse
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:  # `accelerate launch downstream/vqa.py` runs it as a file
    sys.path.insert(0, str(REPOSITORY))

import torch  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from downstream.clevrer_metrics import format_accuracy_table  # noqa: E402
from downstream.clevrer_objects import ClevrerObjects, ClevrerObjectsConfig  # noqa: E402
from downstream.extraction_plan import run_inputs  # noqa: E402
from downstream.head_training import (  # noqa: E402
    HeadTrainingConfig,
    build_accelerator,
    evaluation_batches,
    train_head,
)
from downstream.matched_slots import match_stored_slots  # noqa: E402
from downstream.object_grounding import SlotGrounding, held_objects  # noqa: E402
from downstream.question_families import (  # noqa: E402
    FamilyScore,
    family_scores,
    format_family_table,
)
from downstream.reasoner import ReasonerConfig, ReasonerModel  # noqa: E402
from downstream.slot_encoding import load_frozen_encoder  # noqa: E402
from downstream.submission import build_submission, write_submission  # noqa: E402
from downstream.video_features import (  # noqa: E402
    SlotDatasetFeatures,
    VideoFeatures,
    encode_on_the_fly,
)
from downstream.vqa_baselines import (  # noqa: E402
    DerangedFeatures,
    object_state_features,
)
from downstream.vqa_data import VqaDataset  # noqa: E402
from downstream.vqa_default import (  # noqa: E402
    MissingPieceError,
    PrepareConfig,
    prepare_default_data,
)
from downstream.vqa_task import VqaLossConfig, VqaTask, predict_answers  # noqa: E402
from ocl.config_loading import config_to_yaml, load_config  # noqa: E402
from tasks.bad_input import BadInputError, LoadReport, read_json  # noqa: E402
from tasks.clevrer import (  # noqa: E402
    QuestionLoadingConfig,
    VideoLoadingConfig,
    clevrer_vocabulary,
    load_clevrer_questions,
    load_clevrer_videos,
)
from tasks.clevrer_layout import SPLITS, discover_split  # noqa: E402
from tasks.collate import CollateConfig, QuestionCollator  # noqa: E402
from tasks.dataset_cache import cached_json, resolve_cache_root  # noqa: E402
from tasks.question_records import question_records, read_question_file  # noqa: E402
from tasks.questions import QUESTION_TYPES, QuestionVocabulary  # noqa: E402
from tasks.slots import load_slots, slot_provenance, slot_spec  # noqa: E402

DEFAULT_CONFIG = REPOSITORY / "configs" / "vqa" / "default.yaml"
INPUTS: tuple[str, ...] = ("slots", "none", "shuffled_slots", "object_states")


@dataclass
class VqaDataConfig:
    """Where the questions and what the reasoner reads of each video come from.

    clevrer_root: a CLEVRER directory in the official layout (questions; annotations for
        `object_states`; videos for the on-the-fly encoder). Set by `prepare` when it is on.
    inputs: "slots"; or a baseline: "none" (question-only), "shuffled_slots" (every video reads
        another video's slots, a fixed derangement), "object_states" (ground truth from the
        annotations, see downstream/vqa_baselines.py).
    slots: slot dataset (folder or Hub id) whose splits are named as CLEVRER's.
    encoder: instead of `slots`, a SmoothSA encoder (folder or Hub id) run once over the videos
        when the run starts (small data and demos).
    frame_stride: the on-the-fly encoder reads frames 0, s, 2s, ... of each video.
    rollout: slot dataset (folder or Hub id) of rollouts, observed + predicted frames: predictive
        and counterfactual questions read their frames from it in every split the run reads.
    rollout_frames: 0: those questions read their T frames spread over the whole rollout. R > 0:
        every question reads T observed frames and then R predicted ones (zeros for
        descriptive and explanatory questions), so the predicted frames add to the observed.
    num_frames: T, frames sampled evenly from each video's slots.
    max_objects: objects per frame of `object_states` (padded with zeros).
    train_split, evaluation_split: CLEVRER splits ("" evaluation: none).
    question_types: train and evaluate on these question types only (empty: all four), e.g.
        `[counterfactual]`; the submission split is always answered whole.
    submission_split: a split to answer into output_dir/submission.json ("" none; "test").
    max_question_length, max_choice_length: tokens kept (tasks/collate.py).
    vocabulary_file: question vocabulary ("": built from questions/train.json and cached).
    cache_dir: caches of question and slot datasets ("": the `datasets` default).
    """

    clevrer_root: str = ""
    inputs: str = "slots"
    slots: str = ""
    encoder: str = ""
    frame_stride: int = 4
    rollout: str = ""
    rollout_frames: int = 0
    num_frames: int = 8
    max_objects: int = 8
    train_split: str = "train"
    evaluation_split: str = "validation"
    question_types: list[str] = field(default_factory=list)
    submission_split: str = ""
    max_question_length: int = 40
    max_choice_length: int = 20
    vocabulary_file: str = ""
    cache_dir: str = ""

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"data.inputs must be one of {INPUTS}, got {self.inputs!r}")
        if self.slots and self.encoder:
            raise ValueError("give data.slots or data.encoder, not both")
        if self.rollout and self.inputs != "slots":
            raise ValueError(f"a rollout extends slots; it goes with data.inputs=slots, not "
                             f"{self.inputs!r}")
        if self.rollout_frames < 0 or (self.rollout_frames and not self.rollout):
            raise ValueError(f"data.rollout_frames={self.rollout_frames} counts predicted frames "
                             "of data.rollout: >= 0, and only with a rollout")
        if self.num_frames < 1 or self.frame_stride < 1 or self.max_objects < 1:
            raise ValueError("data.num_frames, frame_stride and max_objects must be >= 1")
        for name in ("train_split", "evaluation_split", "submission_split"):
            split = getattr(self, name)
            if split and split not in SPLITS:
                raise ValueError(f"data.{name} must be one of {SPLITS} or empty, got {split!r}")
        if self.train_split == "test":
            raise ValueError("the test split has no answers to train on")
        unknown = sorted(set(self.question_types) - set(QUESTION_TYPES))
        if unknown:
            raise ValueError(f"data.question_types {unknown} are not among {QUESTION_TYPES}")
        self.collator()  # checks the lengths

    def collator(self) -> QuestionCollator:
        """Batches questions of this data's lengths."""
        return QuestionCollator(CollateConfig(self.max_question_length, self.max_choice_length))


@dataclass
class ReasonerSettings:
    """The reasoner's transformer (sizes of the inputs come from the data).

    hidden_size, num_layers, num_heads, intermediate_size: a pre-norm transformer encoder.
    dropout: in attention, feed-forward and on the input embeddings.
    slot_tokens: "frame", a token per slot per frame (Aloe); "track", one token per slot
        holding its T frames (`downstream/reasoner.py`).
    pair_tokens: with `slot_tokens="track"`, one more token per pair of slots, made from both
        slots in every frame, so that a relation of two objects (did they collide?) is one token
        the question can find.
    """

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    dropout: float = 0.1
    slot_tokens: str = "frame"
    pair_tokens: bool = False


@dataclass
class VqaConfig:
    """A VQA experiment: data, reasoner, loss, training and (for the default) data
    preparation."""

    data: VqaDataConfig = field(default_factory=VqaDataConfig)
    model: ReasonerSettings = field(default_factory=ReasonerSettings)
    loss: VqaLossConfig = field(default_factory=VqaLossConfig)
    training: HeadTrainingConfig = field(
        default_factory=lambda: HeadTrainingConfig(output_dir="runs/vqa")
    )
    prepare: PrepareConfig = field(default_factory=PrepareConfig)

    def __post_init__(self):
        if self.loss.masked_slot_weight and self.data.inputs == "none":
            raise ValueError("loss.masked_slot_weight needs something to mask: the question-only "
                             "baseline (data.inputs=none) reads no slots")
        if self.loss.masked_slot_weight and self.model.slot_tokens != "frame":
            raise ValueError("loss.masked_slot_weight masks a slot in single frames: it needs "
                             f"model.slot_tokens=frame, not {self.model.slot_tokens!r}")
        if self.loss.grounding_weight and not (
                self.data.inputs == "object_states" or (
                    self.data.inputs == "slots" and not self.data.encoder)):
            raise ValueError("loss.grounding_weight points at the slots that hold the named "
                             "objects: ground-truth states say which (slot i: the object of "
                             "rank i), and a slot dataset extracted with masks lets its slots "
                             "be matched to the objects; it needs data.inputs=object_states or "
                             f"slots from data.slots, not data.inputs={self.data.inputs!r}"
                             f"{' on the fly (data.encoder)' if self.data.encoder else ''}")
        if self.model.pair_tokens and self.model.slot_tokens != "track":
            raise ValueError("model.pair_tokens pairs slot tracks: it needs "
                             f"model.slot_tokens=track, not {self.model.slot_tokens!r}")
        if self.prepare.enabled:
            return  # prepare sets clevrer_root and slots
        if not self.data.clevrer_root:
            raise ValueError("data.clevrer_root is required (a CLEVRER directory)")
        if self.data.inputs in ("slots", "shuffled_slots") and not (
                self.data.slots or self.data.encoder):
            raise ValueError(f"data.inputs={self.data.inputs} needs data.slots (a slot "
                             "dataset) or data.encoder (a SmoothSA encoder run on the videos)")


@dataclass
class VqaData:
    """The datasets of a run and the question vocabulary."""

    train: VqaDataset
    evaluation: VqaDataset | None
    submission: VqaDataset | None
    vocabulary: QuestionVocabulary


def run_vqa(config: VqaConfig) -> dict[str, float]:
    """Trains (or resumes) the reasoner, evaluates it, writes its outputs; returns the metrics."""
    # the accelerator first: its state reads ACCELERATE_USE_CPU (several CPU processes)
    accelerator = build_accelerator(config.training, "vqa")
    if config.prepare.enabled:
        clevrer_root, slots = prepare_default_data(config.prepare, accelerator)
        config = replace(config, data=replace(config.data, clevrer_root=str(clevrer_root),
                                              slots=str(slots)))
    with accelerator.main_process_first():  # the main process builds the caches, others read
        data = load_vqa_data(config.data, config.training.seed, accelerator.device,
                             grounding=config.loss.grounding_weight > 0,
                             choices_alone=config.loss.grounding_choices_alone)
    torch.manual_seed(config.training.seed)  # before the model's initialisation
    model = ReasonerModel(reasoner_config(config, data))
    accelerator.print(
        f"processes: {accelerator.num_processes}, device {accelerator.device}; reasoner of "
        f"{sum(p.numel() for p in model.parameters()):,} parameters reads {config.data.inputs}"
        f"{' and rollouts' if config.data.rollout else ''}; {len(data.train)} training "
        f"questions, {len(data.evaluation or ())} evaluation questions"
    )
    output = Path(config.training.output_dir)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        staging = output / "config.yaml.partial"
        staging.write_text(config_to_yaml(config))
        os.replace(staging, output / "config.yaml")
        data.vocabulary.save(output / "vocabulary.json")
    collate = config.data.collator()

    def write_submission_file(trained: ReasonerModel, accelerator) -> None:
        write_test_submission(trained, data.submission, collate, config, accelerator)

    sources = {name: getattr(config.data, name) for name in ("slots", "rollout", "encoder")}
    metrics = train_head(model, VqaTask(config.loss), data.train, data.evaluation, collate,
                         config.training, accelerator, evaluation_sharding="disjoint",
                         finish=write_submission_file if data.submission is not None else None,
                         inputs=run_inputs(config.data, sources))
    accelerator.print("\n" + format_accuracy_table({config.data.inputs: metrics}))
    return metrics


def load_vqa_data(data: VqaDataConfig, seed: int, device: torch.device,
                  grounding: bool = False, choices_alone: bool = False) -> VqaData:
    """The train, evaluation and submission datasets of `data`; with `grounding`, the training
    rows carry the slots their questions name (`downstream/object_grounding.py`; with
    `choices_alone`, a choice's targets are what the choice alone names)."""
    vocabulary = clevrer_vocabulary(data.clevrer_root, data.vocabulary_file or None,
                                    data.cache_dir or None)
    encoder = None
    if data.encoder and data.inputs in ("slots", "shuffled_slots"):
        encoder = load_frozen_encoder(data.encoder)[0].to(device)

    def split_dataset(split: str, types: list[str], grounded: bool = False) -> VqaDataset | None:
        if not split:
            return None
        questions = load_clevrer_questions(
            data.clevrer_root, split,
            QuestionLoadingConfig(check_videos=encoder is not None,
                                  vocabulary_file=data.vocabulary_file or None),
            cache_dir=data.cache_dir or None,
        )
        if types:
            questions = questions.filter(lambda kind: kind in types, input_columns="question_type")
            if not len(questions):
                raise BadInputError(f"the {split} split holds no question of the types {types} "
                                    "(data.question_types)")
        rollout = None
        if data.rollout:
            rollout = SlotDatasetFeatures(load_slots(data.rollout, split,
                                                     cache_dir=data.cache_dir or None),
                                          name=f"rollout dataset {data.rollout} ({split})")
        names = slot_grounding(data, split, choices_alone) if grounded else None
        return VqaDataset(questions, data.num_frames,
                          split_features(data, split, encoder, seed, device), rollout, names,
                          data.rollout_frames)

    types = list(data.question_types)
    return VqaData(split_dataset(data.train_split, types, grounding),
                   split_dataset(data.evaluation_split, types),
                   split_dataset(data.submission_split, []), vocabulary)


def slot_grounding(data: VqaDataConfig, split: str, choices_alone: bool = False) -> SlotGrounding:
    """Which object each slot of every video of `split` holds: by rank for ground-truth states;
    for a slot dataset, the object its stored masks are matched to in the most frames."""
    annotations = discover_split(data.clevrer_root, split).annotations
    if data.inputs == "object_states":
        return SlotGrounding.from_annotations(annotations, data.max_objects, choices_alone)
    slots = load_slots(data.slots, split, cache_dir=data.cache_dir or None)
    spec = slot_spec(slots.features)
    if spec.mask_size is None:
        raise BadInputError(f"slot dataset {data.slots} ({split}) has no masks: the grounding "
                            "loss matches slots to objects by their masks; extract it with "
                            "--store-masks")
    objects = ClevrerObjects(
        data.clevrer_root, split,
        ClevrerObjectsConfig(frame_stride=slot_provenance(slots).frame_stride),
        cache_dir=data.cache_dir or None,
    )

    def match() -> dict[int, list[int]]:
        matched = match_stored_slots(slots, objects, progress=True)
        return held_objects(matched, objects.object_ids(), spec.num_slots)

    # matching takes minutes on thousands of videos: done once per slot dataset and split
    key = {"slots": slots._fingerprint, "objects": objects.rows._fingerprint,
           "num_slots": spec.num_slots, "format": 1}
    stored = cached_json(resolve_cache_root(data.cache_dir), f"slot-objects-{split}", key, match)
    held = {int(video): object_ids for video, object_ids in stored.items()}
    return SlotGrounding.from_held_objects(annotations, held, spec.num_slots, choices_alone)


def split_features(data: VqaDataConfig, split: str, encoder, seed: int,
                   device: torch.device) -> VideoFeatures | None:
    """What the reasoner reads of the videos of `split`, by `data.inputs`."""
    if data.inputs == "none":
        return None
    if data.inputs == "object_states":
        annotations = discover_split(data.clevrer_root, split).annotations
        return object_state_features(annotations, data.max_objects, data.num_frames)
    if encoder is not None:
        videos = load_clevrer_videos(
            data.clevrer_root, split,
            VideoLoadingConfig(frame_stride=data.frame_stride,
                               size=tuple(encoder.config.image_size), with_masks=False),
            cache_dir=data.cache_dir or None,
        )
        slots = encode_on_the_fly(encoder, videos, seed)
    else:
        slots = SlotDatasetFeatures(load_slots(data.slots, split,
                                               cache_dir=data.cache_dir or None),
                                    name=f"slot dataset {data.slots} ({split})")
    return DerangedFeatures(slots, seed) if data.inputs == "shuffled_slots" else slots


def reasoner_config(config: VqaConfig, data: VqaData) -> ReasonerConfig:
    """The reasoner of `config.model`, sized for the vocabulary and the training features."""
    features = data.train.features
    return sized_reasoner_config(
        config, len(data.vocabulary),
        (features.num_slots, features.feature_dim) if features is not None else None,
    )


def sized_reasoner_config(config: VqaConfig, vocabulary_size: int,
                          slots: tuple[int, int] | None) -> ReasonerConfig:
    """The reasoner of `config.model` for `vocabulary_size` words and `slots` (n, d) per frame
    (None: the question-only reasoner)."""
    settings = config.model
    num_slots, slot_dim = slots or (1, 1)
    return ReasonerConfig(
        vocabulary_size=vocabulary_size, use_slots=slots is not None, slot_dim=slot_dim,
        max_slots=num_slots, max_frames=config.data.num_frames + config.data.rollout_frames,
        max_text_length=config.data.max_question_length + 1 + config.data.max_choice_length,
        hidden_size=settings.hidden_size, num_layers=settings.num_layers,
        num_heads=settings.num_heads, intermediate_size=settings.intermediate_size,
        dropout=settings.dropout, slot_tokens=settings.slot_tokens,
        pair_tokens=slots is not None and settings.pair_tokens,
        grounds_objects=slots is not None and config.loss.grounding_weight > 0,
        predicts_masked_slots=slots is not None and config.loss.masked_slot_weight > 0,
    )


def write_test_submission(model: ReasonerModel, dataset: VqaDataset, collate, config: VqaConfig,
                          accelerator) -> None:
    """Every process answers its share of the submission split; the main process writes
    output_dir/submission.json in the scene order of the split's question file."""
    model.eval()
    batches = evaluation_batches(dataset, collate, config.training, accelerator, "disjoint")
    with accelerator.autocast():
        mine = predict_answers(model, batches)
    predictions = dict(gather_object(list(mine.items())))
    if accelerator.is_main_process:
        files = discover_split(config.data.clevrer_root, config.data.submission_split)
        scenes = read_question_file(files.questions)
        path = Path(config.training.output_dir) / "submission.json"
        write_submission(path, build_submission(scenes, predictions), scenes)
        print(f"wrote {path} ({len(predictions)} questions)")


def run_columns(run_folders: list[str]) -> dict[str, Path]:
    """Column name -> run folder: the folder's name, or the path as given where two runs share
    a name (so no run's column hides another's)."""
    names = [Path(folder).name for folder in run_folders]
    return {name if names.count(name) == 1 else folder: Path(folder)
            for name, folder in zip(names, run_folders, strict=True)}


def check_finished_run(run: Path, files: tuple[str, ...], folders: tuple[str, ...] = ()) -> None:
    """Raise a BadInputError naming `run` if any of `files` is not a file in its folder, or any
    of `folders` not a folder."""
    missing = ([name for name in files if not (run / name).is_file()]
               + [name for name in folders if not (run / name).is_dir()])
    if missing:
        raise BadInputError(f"{run} has no {missing[0]}: not a finished VQA run")


def compare_runs(run_folders: list[str]) -> str:
    """The metrics.json of several runs, side by side."""
    runs = {}
    for column, folder in run_columns(run_folders).items():
        check_finished_run(folder, files=("metrics.json",))
        runs[column] = read_json(folder / "metrics.json")
    return format_accuracy_table(runs)


def family_table(run_folders: list[str], min_count: int) -> str:
    """Finished runs side by side, accuracy per question family on their evaluation split."""
    return format_family_table(
        {column: run_family_scores(folder) for column, folder in run_columns(run_folders).items()},
        min_count,
    )


def run_family_scores(run: Path) -> dict[str, FamilyScore]:
    """The evaluation split of finished `run` answered again by its exported model, scored per
    question family (`downstream/question_families.py`)."""
    check_finished_run(run, files=("config.yaml",), folders=("model",))
    config = load_config(VqaConfig, str(run / "config.yaml"), [])
    split = config.data.evaluation_split
    if not split:
        raise BadInputError(f"{run}: its config names no data.evaluation_split")
    data = load_vqa_data(replace(config.data, train_split="", submission_split=""),
                         config.training.seed, torch.device("cpu"))
    model = ReasonerModel.from_pretrained(run / "model").eval()
    collate = config.data.collator()
    batches = DataLoader(data.evaluation, batch_size=config.training.evaluation_batch_size,
                         collate_fn=collate)
    predictions = predict_answers(model, batches)
    questions = discover_split(config.data.clevrer_root, split).questions
    types = config.data.question_types or QUESTION_TYPES
    records = question_records(questions, split, "raise", LoadReport())
    return family_scores([record for record in records if record.question_type in types],
                         predictions)


def parse_arguments(argv: list[str] | None = None) -> tuple[VqaConfig | None, argparse.Namespace]:
    """(config, arguments) for a run; (None, arguments) for `--compare` or `--families`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="YAML experiment config (default: the built-in default run)")
    parser.add_argument("--rollout", help="slot dataset of rollouts (folder or Hub id) for "
                        "predictive and counterfactual questions; sets data.rollout")
    parser.add_argument("--compare", nargs="+", metavar="RUN", help="print the metrics of "
                        "finished runs side by side, and exit")
    parser.add_argument("--families", nargs="+", metavar="RUN", help="print the accuracy of "
                        "finished runs per question family on their evaluation split, and exit")
    parser.add_argument("--min-count", type=int, default=30, help="with --families: leave out "
                        "families with fewer questions (options, for multiple choice)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. "
                        "training.max_steps=500 data.inputs=none")
    args = parser.parse_args(argv)
    if args.compare or args.families:
        return None, args
    overrides = list(args.overrides)
    if args.rollout:
        overrides.append(f"data.rollout={args.rollout}")
    return load_config(VqaConfig, args.config, overrides), args


def main(argv: list[str] | None = None) -> None:
    config, args = parse_arguments(argv)
    try:
        if args.compare:
            print(compare_runs(args.compare))
        elif args.families:
            print(family_table(args.families, args.min_count))
        else:
            run_vqa(config)
    except (MissingPieceError, BadInputError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
