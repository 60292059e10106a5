"""The rows the reasoner learns from: each question with T frames of its video's features.

Axis legend: T sampled frames, t frames a video has, n slots, d channels.

`VqaDataset` is map-style, so the shared loop's step sampler can pick rows by index; rows are
the question columns `tasks/collate.py` reads plus `slots` `[T,n,d]` float32 and
`present_slots` `[n]` bool (neither for the question-only baseline). The questions stay
memory-mapped Arrow and the features are read per row, so the dataset costs each process little
memory whatever its size.

Frames: T frames spread evenly over the video's t, the first and the last always in
(`uniform_frame_indices`). With a rollout (the features of the observed frames followed by
those the dynamics model predicts), predictive and counterfactual questions read their T frames
spread evenly over the whole rollout instead, so part of them lie after the video's end;
descriptive and explanatory questions always read the observed video. With `rollout_frames`
R > 0, every row reads T + R frames instead: T spread over the observed frames, as without a
rollout, then R spread over the predicted ones (the rollout's `observed_frames` column says where
they start); descriptive and explanatory rows get R frames of zeros there, so the observed part
of every row is what the reasoner without a rollout reads and the predicted frames only add to
it. A rollout's removed slot (a counterfactual rollout) is marked absent in the rows that read
the rollout.

With a `SlotGrounding`, rows also carry `named_slots` `[n]` and `choice_named_slots` `[k,n]`
bool, the slots holding the objects that the question and each choice name (the grounding loss's
targets, `downstream/object_grounding.py`).
"""

import datasets
import numpy as np
from torch.utils.data import Dataset

from downstream.object_grounding import SlotGrounding
from downstream.video_features import VideoFeatures, uniform_frame_indices
from tasks.bad_input import BadInputError
from tasks.questions import QUESTION_TYPES

QUESTION_COLUMNS: tuple[str, ...] = (
    "video_index", "question_id", "question_type", "question_subtype", "question_tokens",
    "answer_label", "choice_ids", "choice_tokens", "choice_labels",
)
ROLLOUT_TYPES: tuple[str, ...] = ("predictive", "counterfactual")


class VqaDataset(Dataset):
    """Questions (`tasks.clevrer.load_clevrer_questions`) with their videos' features.

    Raises:
        BadInputError: a question's video is not in `features` (or, for a predictive or
            counterfactual question, not in `rollout`), or has fewer than `num_frames` frames;
            with `rollout_frames`, a rollout without an `observed_frames` column, or with fewer
            than `num_frames` observed or `rollout_frames` predicted frames.
    """

    def __init__(self, questions: datasets.Dataset, num_frames: int,
                 features: VideoFeatures | None = None, rollout: VideoFeatures | None = None,
                 grounding: SlotGrounding | None = None, rollout_frames: int = 0):
        if rollout is not None and features is None:
            raise ValueError("a rollout replaces the slots of some questions; give features too")
        if rollout_frames < 0 or (rollout_frames and rollout is None):
            raise ValueError(f"rollout_frames={rollout_frames}: it counts predicted frames of a "
                             "rollout, >= 0, and needs a rollout")
        if grounding is not None and (features is None
                                      or grounding.num_slots != features.num_slots):
            raise ValueError("grounding names slots of the features: give features of "
                             f"{grounding.num_slots} slots")
        if rollout is not None and (rollout.num_slots, rollout.feature_dim) != (
                features.num_slots, features.feature_dim):
            raise BadInputError(
                f"rollout slots are [t,{rollout.num_slots},{rollout.feature_dim}], the video "
                f"slots [t,{features.num_slots},{features.feature_dim}]"
            )
        programs = ["program", "choice_programs"] if grounding is not None else []
        self.questions = questions.select_columns(list(QUESTION_COLUMNS) + programs)
        self.grounding = grounding
        self.num_frames, self.rollout_frames = num_frames, rollout_frames
        self.features, self.rollout = features, rollout
        table = self.questions.with_format("arrow")
        videos = np.asarray(table["video_index"].to_numpy(), dtype=np.int64)
        kinds = np.asarray(table["question_type"].to_pylist())
        self.reads_rollout = np.zeros(len(videos), dtype=bool)
        if rollout is not None:
            self.reads_rollout = np.isin(kinds, ROLLOUT_TYPES)
        if features is not None:
            check_coverage(videos[~self.reads_rollout], features, num_frames, "slots")
        if rollout is not None and not rollout_frames:
            check_coverage(videos[self.reads_rollout], rollout, num_frames, "rollout slots")
        self.observed_frames: dict[int, int] = {}
        if rollout_frames:
            self.observed_frames = check_rollout_coverage(videos[self.reads_rollout], rollout,
                                                          num_frames, rollout_frames)
        unknown = set(kinds.tolist()) - set(QUESTION_TYPES)
        if unknown:
            raise BadInputError(f"question types {sorted(unknown)} are not {QUESTION_TYPES}")

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int) -> dict:
        row = self.questions[int(index)]
        source = self.rollout if self.reads_rollout[index] else self.features
        if source is not None:
            video = source(row["video_index"])
            if self.rollout_frames:
                row["slots"] = self.observed_then_predicted(video, row["video_index"],
                                                            self.reads_rollout[index])
            else:
                row["slots"] = video[uniform_frame_indices(len(video), self.num_frames)]
            row["present_slots"] = source.present_slots(row["video_index"])
        if self.grounding is not None:
            row.update(self.grounding.row_targets(row))
        return row

    def observed_then_predicted(self, video: np.ndarray, video_index: int,
                                reads_rollout: bool) -> np.ndarray:
        """`[T+R,n,d]`: T frames spread over the observed frames of `video` `[t,n,d]`, then R
        spread over its predicted ones (a rollout's) or R frames of zeros (observed slots)."""
        if reads_rollout:
            observed = self.observed_frames[video_index]
            predicted = video[observed:]
            predicted = predicted[uniform_frame_indices(len(predicted), self.rollout_frames)]
            video = video[:observed]
        else:
            predicted = np.zeros((self.rollout_frames, *video.shape[1:]), dtype=video.dtype)
        return np.concatenate([video[uniform_frame_indices(len(video), self.num_frames)],
                               predicted])


def check_rollout_coverage(videos: np.ndarray, rollout: VideoFeatures, num_frames: int,
                           rollout_frames: int) -> dict[int, int]:
    """Every video in `videos` is in `rollout`, with `num_frames` observed and `rollout_frames`
    predicted frames. Returns the observed frames of each video of `rollout`."""
    observed = getattr(rollout, "observed_frame_counts", lambda: None)()
    if observed is None:
        raise BadInputError("rollout_frames needs a rollout dataset that says which frames are "
                            "observed (its observed_frames column); this one does not")
    check_coverage(videos, rollout, 1, "rollout slots")
    held = rollout.videos()
    used = np.isin(held, videos)
    predicted = rollout.frame_counts() - observed
    for what, counts, wanted in (("observed", observed, num_frames),
                                 ("predicted", predicted, rollout_frames)):
        short = used & (counts < wanted)
        if short.any():
            raise BadInputError(
                f"rollout videos {held[short][:5].tolist()} have "
                f"{counts[short][:5].tolist()} {what} frames; the reasoner reads {wanted}"
            )
    return dict(zip(held.tolist(), observed.tolist(), strict=True))


def check_coverage(videos: np.ndarray, features: VideoFeatures, num_frames: int,
                   what: str) -> None:
    """Every video in `videos` (one per question) is in `features`, with `num_frames` frames."""
    held = features.videos()
    missing = ~np.isin(videos, held)
    if missing.any():
        missing_videos = np.unique(videos[missing])
        raise BadInputError(
            f"{int(missing.sum())} questions name {len(missing_videos)} videos without {what}, "
            f"e.g. {missing_videos[:5].tolist()}"
        )
    counts = features.frame_counts()
    short = np.isin(held, videos) & (counts < num_frames)
    if short.any():
        raise BadInputError(
            f"videos {held[short][:5].tolist()} have {counts[short][:5].tolist()} frames of "
            f"{what}; the reasoner samples num_frames={num_frames}"
        )
