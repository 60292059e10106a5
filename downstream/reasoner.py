"""An Aloe-style reasoner: one transformer reads a video's slots and a question, and answers.

Axis legend: b questions, c choice sequences (every choice of the batch's multiple-choice
questions), s = b + c sequences, t frames, n slots, d slot channels, l text tokens, h hidden
width, a descriptive answers.

Every sequence is `[CLS] + the slots of t frames + text`:
- CLS: the token-type embedding "cls" alone;
- a slot: Linear(d, h)(slot) + frame-time embedding[frame] + slot-index embedding[slot] + type
  "slot" (SmoothSA keeps a slot's index on the same object over a video, so the index means
  something across frames); with `slot_tokens="track"`, one token per slot for the whole clip
  instead: Linear(t d, h)(the slot's t frames, concatenated) + slot-index embedding + type "slot"
  (n tokens instead of t n: an object's whole trajectory is one hop away from the question);
- with `pair_tokens` (tracks only), n (n-1) / 2 more tokens after the tracks, one per pair of
  slots: an MLP of the two slots in each frame (summed over both orders), the frames
  concatenated and projected, plus the two track tokens (a relation of two objects, such as a
  collision, one hop away);
- a word: word embedding + position embedding + type "question" or "choice" (the segment id).
A slot marked absent (`present_slots`: padding, a rollout's removed slot) is attended by no
token in any frame, nor are its pairs.
A question's own sequence holds its words; a multiple-choice question also gets one sequence per
choice, `question <sep> choice` (see `tasks/collate.py`). A pre-norm transformer encoder reads all
b + c sequences at once. The descriptive head classifies the CLS output of each question's own
sequence over the answers; the multiple-choice head gives one logit per question+choice sequence
from its CLS output: the choice is "correct" when its logit is > 0.

With `use_slots=False` there are no slot tokens: the question-only baseline.

An Aloe-style self-supervised objective (`predicts_masked_slots`): in training, some slot
tokens of a video are masked (their projected slot replaced by a learned mask embedding, the
frame-time and slot-index embeddings kept), and a linear head maps the question sequence's output
at every slot position back to slot space, `[b,t,n,d]`; `downstream/vqa_task.py` scores the
masked ones against all slots of the same video (a contrastive loss). Predicting a slot from the
other frames and slots asks the transformer for the scene's dynamics, which the questions alone
teach slowly.

A grounding head (`grounds_objects`): each sequence's CLS output, projected, scores every slot
by its dot product with that slot's outputs (averaged over frames; a track's one token) over
sqrt(h): `grounding_logits` `[b+c,n]`, which `downstream/vqa_task.py` trains to pick the slots
of the objects the sequence names (`downstream/object_grounding.py`). It asks the CLS token to
find the objects a question is about, which the answers alone teach slowly.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from tasks.questions import DESCRIPTIVE_ANSWERS

CLS_TYPE, SLOT_TYPE, QUESTION_TYPE, CHOICE_TYPE = 0, 1, 2, 3
SLOT_TOKENS: tuple[str, ...] = ("frame", "track")


class ReasonerConfig(PretrainedConfig):
    """Sizes of the reasoner.

    vocabulary_size: word ids the question vocabulary has (`len(QuestionVocabulary)`).
    num_answers: descriptive answers (CLEVRER: 21).
    use_slots: read slots; False makes the question-only baseline.
    slot_dim: d, channels of an input slot.
    max_slots: slot-index embeddings: n may be at most this.
    max_frames: frame-time embeddings: t may be at most this.
    max_text_length: word-position embeddings: `question <sep> choice` may be at most this long.
    hidden_size, num_layers, num_heads, intermediate_size: the transformer encoder (pre-norm,
        GELU feed-forward of `intermediate_size`).
    dropout: in attention, feed-forward and on the input embeddings.
    initializer_range: standard deviation of the normal initialisation of weights.
    predicts_masked_slots: a mask embedding and a head predicting slots at slot positions
        (module docstring); needs use_slots and frame tokens.
    slot_tokens: "frame", a token per slot per frame (Aloe); "track", a token per slot holding
        all its frames (module docstring).
    pair_tokens: with track tokens, one more token per pair of slots (`SlotEmbedding`).
    pair_width: channels of the per-frame pair MLP.
    grounds_objects: a grounding head (module docstring); needs use_slots.
    """

    model_type = "clevrer_reasoner"

    vocabulary_size: int = 128
    num_answers: int = len(DESCRIPTIVE_ANSWERS)
    use_slots: bool = True
    slot_dim: int = 64
    max_slots: int = 8
    max_frames: int = 16
    max_text_length: int = 64
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    dropout: float = 0.1
    initializer_range: float = 0.02
    predicts_masked_slots: bool = False
    slot_tokens: str = "frame"
    pair_tokens: bool = False
    pair_width: int = 64
    grounds_objects: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in ("vocabulary_size", "num_answers", "slot_dim", "max_slots", "max_frames",
                     "max_text_length", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads "
                             f"{self.num_heads}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.predicts_masked_slots and not self.use_slots:
            raise ValueError("predicts_masked_slots needs use_slots: the question-only "
                             "reasoner has no slots to mask")
        if self.slot_tokens not in SLOT_TOKENS:
            raise ValueError(f"slot_tokens must be one of {SLOT_TOKENS}, got "
                             f"{self.slot_tokens!r}")
        if self.grounds_objects and not self.use_slots:
            raise ValueError("grounds_objects needs use_slots: the question-only reasoner has "
                             "no slots to point at")
        if self.pair_tokens and self.slot_tokens != "track":
            raise ValueError("pair_tokens adds one token per pair of slot tracks: it needs "
                             "slot_tokens='track'")
        if self.predicts_masked_slots and self.slot_tokens != "frame":
            raise ValueError("predicts_masked_slots masks a slot in single frames: it needs "
                             "slot_tokens='frame'")


@dataclass
class ReasonerOutput:
    """What the reasoner computes.

    descriptive_logits: `[b,a]` scores of the descriptive answers, for every question.
    choice_logits: `[c]` one score per question+choice sequence; > 0 means "correct".
    slot_predictions: `[b,t,n,d]` the slots predicted at every slot position of each question's
        own sequence (None unless the config `predicts_masked_slots`).
    grounding_logits: `[b+c,n]` how much each sequence (the questions', then the choices') is
        about each slot (None unless the config `grounds_objects`).
    """

    descriptive_logits: torch.Tensor
    choice_logits: torch.Tensor
    slot_predictions: torch.Tensor | None = None
    grounding_logits: torch.Tensor | None = None


class SlotEmbedding(nn.Module):
    """Slots `[b,t,n,d]` -> tokens `[b,(t n),h]`: a projection plus frame-time, slot-index and
    token-type embeddings; for `slot_tokens="track"`, `[b,n,h]`: a projection of each slot's t
    frames (zeros after the t-th up to max_frames) plus slot-index and token-type embeddings,
    and with `pair_tokens` `[b,n+p,h]`: the pair tokens after them (`pair_embedding`)."""

    def __init__(self, config: ReasonerConfig):
        super().__init__()
        self.tracks = config.slot_tokens == "track"
        width = config.max_frames * config.slot_dim if self.tracks else config.slot_dim
        self.project = nn.Linear(width, config.hidden_size)
        if not self.tracks:
            self.frame_time = nn.Embedding(config.max_frames, config.hidden_size)
        self.slot_index = nn.Embedding(config.max_slots, config.hidden_size)
        self.max_frames, self.max_slots = config.max_frames, config.max_slots
        self.slot_dim = config.slot_dim
        self.pairs = config.pair_tokens
        if self.pairs:
            self.pair_frame = nn.Sequential(
                nn.Linear(2 * config.slot_dim, config.pair_width), nn.GELU(),
                nn.Linear(config.pair_width, config.pair_width))
            self.pair_track = nn.Linear(config.max_frames * config.pair_width,
                                        config.hidden_size)

    def token_mask(self, present: torch.Tensor, num_frames: int) -> torch.Tensor:
        """`[b,n]` present slots -> `[b,tokens]`, True on the tokens that take part."""
        if not self.tracks:
            return repeat(present, "b n -> b (t n)", t=num_frames)
        if not self.pairs:
            return present
        first, second = pair_indices(present.shape[1], present.device)
        return torch.cat([present, present[:, first] & present[:, second]], dim=1)

    def forward(self, slots: torch.Tensor, slot_type: torch.Tensor,
                masked: torch.Tensor | None = None,
                mask_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """`masked`: `[b,t,n]` bool, slots whose projection `mask_embedding` `[h]` replaces."""
        _, num_frames, num_slots, slot_dim = slots.shape
        if num_frames > self.max_frames or num_slots > self.max_slots or slot_dim != self.slot_dim:
            raise ValueError(
                f"slots of shape {list(slots.shape)} [b,t,n,d]: the reasoner takes t <= "
                f"{self.max_frames}, n <= {self.max_slots}, d = {self.slot_dim}"
            )
        indices = self.slot_index.weight[None, :num_slots]  # [1,n,h]
        if self.tracks:
            tracks = F.pad(slots, (0, 0, 0, 0, 0, self.max_frames - num_frames))
            tracks = rearrange(tracks, "b t n d -> b n (t d)")
            tokens = self.project(tracks.to(self.project.weight.dtype)) + indices + slot_type
            if not self.pairs:
                return tokens
            return torch.cat([tokens, self.pair_embedding(slots, tokens)], dim=1)
        frames = self.frame_time.weight[:num_frames, None]  # [t,1,h]
        projected = self.project(slots.to(self.project.weight.dtype))
        if masked is not None:
            projected = torch.where(masked[..., None], mask_embedding.to(projected.dtype),
                                    projected)
        tokens = projected + frames + indices + slot_type
        return rearrange(tokens, "b t n h -> b (t n) h")

    def pair_embedding(self, slots: torch.Tensor, tracks: torch.Tensor) -> torch.Tensor:
        """Slots `[b,t,n,d]` and their track tokens `[b,n,h]` -> `[b,p,h]`, one token per
        unordered pair (p = n (n-1) / 2): a symmetric MLP of the two slots in each frame, the
        frames concatenated and projected, plus both tracks' tokens."""
        num_frames, num_slots = slots.shape[1], slots.shape[2]
        first, second = pair_indices(num_slots, slots.device)
        one, other = slots[:, :, first], slots[:, :, second]  # [b,t,p,d]
        dtype = self.project.weight.dtype
        relation = (self.pair_frame(torch.cat([one, other], -1).to(dtype))
                    + self.pair_frame(torch.cat([other, one], -1).to(dtype)))  # [b,t,p,r]
        relation = F.pad(relation, (0, 0, 0, 0, 0, self.max_frames - num_frames))
        relation = rearrange(relation, "b t p r -> b p (t r)")
        return self.pair_track(relation) + tracks[:, first] + tracks[:, second]


class TextEmbedding(nn.Module):
    """Word ids `[s,l]` and segment ids (0 question, 1 choice) -> tokens `[s,l,h]`."""

    def __init__(self, config: ReasonerConfig):
        super().__init__()
        self.words = nn.Embedding(config.vocabulary_size, config.hidden_size)
        self.positions = nn.Embedding(config.max_text_length, config.hidden_size)
        self.vocabulary_size = config.vocabulary_size

    def forward(self, tokens: torch.Tensor, segment_ids: torch.Tensor,
                token_types: nn.Embedding) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.positions.num_embeddings:
            raise ValueError(f"text of {length} tokens; the reasoner takes at most "
                             f"{self.positions.num_embeddings} (max_text_length)")
        if tokens.numel() and int(tokens.max()) >= self.vocabulary_size:
            raise ValueError(f"word id {int(tokens.max())} is outside the reasoner's vocabulary "
                             f"of {self.vocabulary_size}; was the question vocabulary changed?")
        return (self.words(tokens) + self.positions.weight[:length]
                + token_types(QUESTION_TYPE + segment_ids))


class ReasonerModel(PreTrainedModel):
    """The Aloe-style reasoner (module docstring)."""

    config_class = ReasonerConfig
    base_model_prefix = "reasoner"

    def __init__(self, config: ReasonerConfig):
        super().__init__(config)
        self.token_types = nn.Embedding(4, config.hidden_size)
        self.slots = SlotEmbedding(config) if config.use_slots else None
        self.text = TextEmbedding(config)
        self.embedding_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            config.hidden_size, config.num_heads, config.intermediate_size, config.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers,
                                             norm=nn.LayerNorm(config.hidden_size),
                                             enable_nested_tensor=False)
        self.descriptive_head = nn.Linear(config.hidden_size, config.num_answers)
        self.choice_head = nn.Linear(config.hidden_size, 1)
        if config.predicts_masked_slots:
            self.mask_embedding = nn.Parameter(torch.zeros(config.hidden_size))
            self.slot_prediction_head = nn.Linear(config.hidden_size, config.slot_dim)
        if config.grounds_objects:
            self.grounding_head = nn.Linear(config.hidden_size, config.hidden_size)
        self.post_init()

    def forward(
        self,
        question_tokens: torch.Tensor,
        question_attention_mask: torch.Tensor,
        choice_tokens: torch.Tensor,
        choice_attention_mask: torch.Tensor,
        choice_segment_ids: torch.Tensor,
        choice_to_question: torch.Tensor,
        slots: torch.Tensor | None = None,
        present_slots: torch.Tensor | None = None,
        masked_slots: torch.Tensor | None = None,
    ) -> ReasonerOutput:
        """Answers b questions and scores their c choices.

        Args:
            question_tokens, question_attention_mask: `[b,l]` word ids, True on real words.
            choice_tokens, choice_attention_mask, choice_segment_ids: `[c,l']` the
                `question <sep> choice` sequences, True on real words, 0 question / 1 choice.
            choice_to_question: `[c]` the question (row in b) of each choice.
            slots: `[b,t,n,d]` the slots of each question's video (None for question-only).
            present_slots: `[b,n]` bool, False for a slot no token may attend to in any frame
                (padding; a rollout's removed slot); None: every slot takes part.
            masked_slots: `[b,t,n]` bool, slot tokens shown as the mask embedding in all of a
                question's sequences (needs `predicts_masked_slots`); None: none.
        """
        if masked_slots is not None and not self.config.predicts_masked_slots:
            raise ValueError("masked_slots given to a reasoner built without "
                             "predicts_masked_slots")
        if (slots is None) == self.config.use_slots:
            raise ValueError("this reasoner was built with use_slots="
                             f"{self.config.use_slots}, but slots were "
                             f"{'not ' if slots is None else ''}given")
        num_questions = question_tokens.shape[0]
        length = max(question_tokens.shape[1], choice_tokens.shape[1])
        words = torch.cat([pad_to(question_tokens, length), pad_to(choice_tokens, length)])
        real = torch.cat([pad_to(question_attention_mask, length),
                          pad_to(choice_attention_mask, length)])
        segments = torch.cat([torch.zeros_like(pad_to(question_tokens, length)),
                              pad_to(choice_segment_ids, length)])
        tokens = [self.text(words, segments, self.token_types)]  # [s,l,h]
        masks = [real]
        if slots is not None:
            slot_tokens = self.slots(slots, self.token_types.weight[SLOT_TYPE], masked_slots,
                                     getattr(self, "mask_embedding", None))  # [b,(t n),h]
            owners = torch.cat([torch.arange(num_questions, device=slots.device),
                                choice_to_question])
            tokens.insert(0, slot_tokens[owners])
            masks.insert(0, self.slots.token_mask(present_slot_mask(slots, present_slots),
                                                  slots.shape[1])[owners])
        cls = self.token_types.weight[CLS_TYPE].expand(len(words), 1, -1)
        sequence = self.embedding_dropout(torch.cat([cls, *tokens], dim=1))
        attended = torch.cat([real.new_ones(len(words), 1), *masks], dim=1)
        hidden = self.encoder(sequence, src_key_padding_mask=~attended)  # [s,1+...,h]
        cls_output = hidden[:, 0]
        slot_predictions = None
        if self.config.predicts_masked_slots:
            at_slots = hidden[:num_questions, 1:1 + slots.shape[1] * slots.shape[2]]
            slot_predictions = rearrange(self.slot_prediction_head(at_slots),
                                         "b (t n) d -> b t n d", t=slots.shape[1])
        grounding_logits = None
        if self.config.grounds_objects:
            grounding_logits = self.grounding(cls_output, hidden, slots.shape[1], slots.shape[2])
        return ReasonerOutput(
            descriptive_logits=self.descriptive_head(cls_output[:num_questions]),
            choice_logits=self.choice_head(cls_output[num_questions:]).squeeze(-1),
            slot_predictions=slot_predictions,
            grounding_logits=grounding_logits,
        )

    def grounding(self, cls_output: torch.Tensor, hidden: torch.Tensor, num_frames: int,
                  num_slots: int) -> torch.Tensor:
        """`[s,n]` grounding logits from the CLS outputs `[s,h]` and every sequence's outputs
        `[s,1+...,h]` (the slot tokens right after CLS)."""
        if self.config.slot_tokens == "track":
            at_slots = hidden[:, 1:1 + num_slots]
        else:
            at_slots = rearrange(hidden[:, 1:1 + num_frames * num_slots], "s (t n) h -> s t n h",
                                 t=num_frames).mean(1)
        query = self.grounding_head(cls_output)
        return torch.einsum("sh,snh->sn", query, at_slots) / at_slots.shape[-1] ** 0.5


def pair_indices(num_slots: int, device: torch.device) -> torch.Tensor:
    """`[2,p]` the two slots of every unordered pair, in the one order that the pair tokens and
    their mask share: (0,1), (0,2), ..., (n-2,n-1)."""
    return torch.triu_indices(num_slots, num_slots, 1, device=device)


def present_slot_mask(slots: torch.Tensor, present_slots: torch.Tensor | None) -> torch.Tensor:
    """`[b,n]` bool, the slots of `slots` `[b,t,n,d]` that take part: `present_slots`, or all."""
    if present_slots is None:
        return torch.ones(slots.shape[0], slots.shape[2], dtype=torch.bool, device=slots.device)
    return present_slots.bool()


def pad_to(values: torch.Tensor, length: int) -> torch.Tensor:
    """`[k,l]` -> `[k,length]`, padded with zeros (PAD_ID, False, segment 0) on the right."""
    return F.pad(values, (0, length - values.shape[1]))
