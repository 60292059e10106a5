"""CLEVRER-sim: CLEVRER-format physics videos with questions, generated offline.

Made the way CLEVRER was made (a physics engine, a camera, an event log, questions from
templates) and written in CLEVRER's own layout (`layout.py`), so the loader that reads the real
download reads this too:

    python -m tasks.clevrer_sim --out DIR --videos N [--frames 128 --size 64 --seed 0 --workers K]

Pipeline, one module per step: `scene` (objects and initial states from a seed) → `physics`
(pybullet, contact log) → `events` (collisions, entering/exiting the view, motion, causes) →
`render` (pybullet CPU renderer, instance masks) → `questions` (templates, answers) → `balance`
(which questions are asked) → `writer` (mp4, annotation, proposals, question files);
`dataset` runs it over many videos in parallel and resumably. `checker` re-derives every answer
from the annotation files alone; `schema` validates the files.
"""

from tasks.clevrer_sim.checker import CheckReport, check_dataset
from tasks.clevrer_sim.config import SimConfig, parse_size
from tasks.clevrer_sim.dataset import DatasetSummary, generate_dataset, splits_present
from tasks.clevrer_sim.layout import OFFICIAL_SPLITS, SPLITS, Layout, split_ranges
from tasks.clevrer_sim.schema import validate_annotation, validate_proposal, validate_questions

__all__ = [
    "OFFICIAL_SPLITS",
    "SPLITS",
    "CheckReport",
    "DatasetSummary",
    "Layout",
    "SimConfig",
    "check_dataset",
    "generate_dataset",
    "parse_size",
    "split_ranges",
    "splits_present",
    "validate_annotation",
    "validate_proposal",
    "validate_questions",
]
