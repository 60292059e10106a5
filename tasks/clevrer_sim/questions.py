"""Question templates: every question that can be asked about one video, with its answer.

Each candidate carries CLEVRER's question text, its postfix program (the official module and
literal tokens) and the answer the generator reads off its own event log; the independent checker
later re-derives every answer by executing the program on the annotation file. Which candidates
are asked is decided across the whole split by `balance.py`.

Multiple-choice candidates carry a pool of possible choices (all answered); `balance.py` picks 1–4
of them. For a choice, the full program is the choice program followed by the question program,
and its answer is "correct" when that program yields "yes".

Object references use a random subset of (color, material, shape) that picks out exactly one
object, as CLEVRER does ("the cyan rubber object", "the cube"); the same subset gives the filter
chain of the program.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from tasks.clevrer_sim.events import MOVING_SPEED, Event, EventLog
from tasks.clevrer_sim.scene import ObjectState
from tasks.questions import COLORS, MATERIALS, SHAPES

AMBIGUOUS_SPEED = (0.5 * MOVING_SPEED, 2.0 * MOVING_SPEED)
"""Motion questions are not asked about a frame where a concerned object's speed (m/s) is in this
band: it may be hard to see whether it moves."""
FILTERS_PER_TEMPLATE = 6
"""Object-set filters drawn per count/exist template and video."""
PER_TEMPLATE_ANSWER = 3
"""Descriptive candidates kept per (template, answer) and video."""
ORDINALS = ("first", "second", "last")
ATTRIBUTES = ("color", "material", "shape")
PLURAL_SHAPE = {"cube": "cubes", "sphere": "spheres", "cylinder": "cylinders"}

Filter = tuple[str | None, str | None, str | None]
"""(color, material, shape); None where the attribute is not constrained."""


@dataclass
class Choice:
    """One possible option of a multiple-choice question."""

    choice: str
    program: list[str]
    answer: str
    """"correct" or "wrong"."""
    kind: str
    """What the option is about, for balancing: presence | entrance | collision."""

    def to_dict(self) -> dict:
        return {
            "choice": self.choice,
            "program": self.program,
            "answer": self.answer,
            "kind": self.kind,
        }


@dataclass
class Candidate:
    """A question that can be asked about one video."""

    question_type: str
    template: str
    """Template family, the unit of answer balancing."""
    question: str
    program: list[str]
    question_subtype: str | None = None
    """Descriptive only: count | exist | query_color | query_shape | query_material."""
    answer: str | None = None
    """Descriptive only."""
    choices: list[Choice] = field(default_factory=list)
    """Multiple choice only: the pool to pick options from."""

    def to_dict(self) -> dict:
        record: dict = {
            "question_type": self.question_type,
            "template": self.template,
            "question": self.question,
            "program": self.program,
        }
        if self.question_type == "descriptive":
            record["question_subtype"] = self.question_subtype
            record["answer"] = self.answer
        else:
            record["choices"] = [c.to_dict() for c in self.choices]
        return record


@dataclass(frozen=True)
class ObjectSet:
    """Objects of one filter that do one thing, for a count or exist question about them."""

    tag: str
    """Template suffix: "enter", "moving_begin", "stationary_video", ..."""
    plural: str
    """The filter as a plural phrase: "objects", "red cubes"."""
    program: list[str]
    """Program up to the set (without the count / exist module)."""
    objects: list[int]
    """Their object ids; for an entrance or exit, one per such event."""
    verb: str = ""
    """"enter" or "exit" for a set of entrances or exits; "" for a state."""
    state: str = ""
    """"moving" or "stationary"."""
    moment: str = ""
    """When the state holds ("when the video begins"); "" for the whole video."""


@dataclass(frozen=True)
class VideoFacts:
    """What the generator knows about one video."""

    objects: tuple[ObjectState, ...]
    log: EventLog
    counterfactual_pairs: dict[int, frozenset[tuple[int, int]]]
    """Removed object_id → pairs that collide within the clip's frames without it."""


# ---------------------------------------------------------------- object phrases and programs


def matches(state: ObjectState, object_filter: Filter) -> bool:
    color, material, shape = object_filter
    return (
        (color is None or state.color == color)
        and (material is None or state.material == material)
        and (shape is None or state.shape == shape)
    )


def filter_program(object_filter: Filter) -> list[str]:
    """`objects` followed by the filters of `object_filter`."""
    color, material, shape = object_filter
    program = ["objects"]
    if color:
        program += [color, "filter_color"]
    if material:
        program += [material, "filter_material"]
    if shape:
        program += [shape, "filter_shape"]
    return program


def singular_phrase(object_filter: Filter) -> str:
    """(None, "rubber", "cube") → "rubber cube"; (None, None, None) → "object"."""
    color, material, shape = object_filter
    return " ".join(w for w in (color, material, shape or "object") if w)


def plural_phrase(object_filter: Filter) -> str:
    """("red", None, "sphere") → "red spheres"; ("red", None, None) → "red objects"."""
    color, material, shape = object_filter
    noun = PLURAL_SHAPE[shape] if shape else "objects"
    return " ".join(w for w in (color, material, noun) if w)


@dataclass(frozen=True)
class Reference:
    """A phrase naming one object, and the program that finds it."""

    object_id: int
    phrase: str
    """Without article: "cyan rubber object"."""
    program: list[str]

    @property
    def the(self) -> str:
        return f"the {self.phrase}"

    @property
    def possessive(self) -> str:
        return f"the {self.phrase}'s"


class Describer:
    """Random identifying references to the objects of one video."""

    def __init__(self, objects: tuple[ObjectState, ...], rng: np.random.Generator) -> None:
        self.objects = objects
        self.rng = rng

    def identifying_filters(self, object_id: int) -> list[Filter]:
        state = self.objects[object_id]
        values = (state.color, state.material, state.shape)
        found = []
        for keep in itertools.product((False, True), repeat=3):
            if not any(keep):
                continue
            candidate: Filter = tuple(v if k else None for v, k in zip(values, keep, strict=True))  # type: ignore[assignment]
            if sum(matches(o, candidate) for o in self.objects) == 1:
                found.append(candidate)
        return found

    def refer(self, object_id: int) -> Reference:
        options = self.identifying_filters(object_id)
        chosen = options[int(self.rng.integers(len(options)))]
        return Reference(object_id, singular_phrase(chosen), filter_program(chosen) + ["unique"])

    def random_filter(self, max_attributes: int = 2) -> Filter:
        """A filter over object sets, biased towards ones that match something in this video."""
        if self.rng.random() < 0.75:
            values = self.objects[int(self.rng.integers(len(self.objects)))]
            values = (values.color, values.material, values.shape)
        else:
            values = (
                COLORS[int(self.rng.integers(len(COLORS)))],
                MATERIALS[int(self.rng.integers(len(MATERIALS)))],
                SHAPES[int(self.rng.integers(len(SHAPES)))],
            )
        count = int(self.rng.integers(0, max_attributes + 1))
        keep = set(self.rng.choice(3, size=count, replace=False).tolist())
        return tuple(v if i in keep else None for i, v in enumerate(values))  # type: ignore[return-value]


# ---------------------------------------------------------------- event programs


def in_event_program(reference: Reference) -> list[str]:
    """Program of the event "<reference> enters the scene"."""
    return ["events"] + reference.program + ["filter_in", "unique"]


def out_event_program(reference: Reference) -> list[str]:
    return ["events"] + reference.program + ["filter_out", "unique"]


def collision_program(first: Reference, second: Reference, source: str = "events") -> list[str]:
    """Program of the collision between two objects, from `events` or `all_events`."""
    return (
        [source]
        + first.program
        + ["filter_collision"]
        + second.program
        + ["filter_collision", "unique"]
    )


# ---------------------------------------------------------------- the generator


class QuestionGenerator:
    """Enumerates the candidate questions of one video."""

    def __init__(self, facts: VideoFacts, rng: np.random.Generator) -> None:
        self.facts = facts
        self.log = facts.log
        self.objects = facts.objects
        self.rng = rng
        self.describe = Describer(facts.objects, rng)
        self.last_frame = self.log.num_frames - 1

    # -- helpers on the event log

    def _single(self, kind: str, object_id: int) -> Event | None:
        events = self.log.of_kind(kind, object_id)
        return events[0] if len(events) == 1 else None

    def _clear_motion(self, frame: int, object_ids: list[int]) -> bool:
        """No concerned object in view at `frame` has an ambiguous speed."""
        low, high = AMBIGUOUS_SPEED
        for object_id in object_ids:
            if (
                self.log.inside[frame, object_id]
                and low <= self.log.speeds[frame, object_id] <= high
            ):
                return False
        return True

    def _moving_at(
        self, frame: int | None, object_ids: list[int], moving: bool
    ) -> list[int] | None:
        """Objects among `object_ids` moving (or stationary) at `frame` (None: the whole video,
        i.e. ever moving while in view / in view and never moving); None if ambiguous."""
        if frame is None:
            low, high = AMBIGUOUS_SPEED
            found = []
            for object_id in object_ids:
                inside = self.log.inside[:, object_id]
                speeds = self.log.speeds[inside, object_id]
                if not inside.any():
                    continue
                ever = bool((speeds > MOVING_SPEED).any())
                if not ever and speeds.max() >= low:
                    return None
                if ever and speeds.max() <= high:
                    return None
                if ever == moving:
                    found.append(object_id)
            return found
        if not self._clear_motion(frame, object_ids):
            return None
        flags = self.log.moving if moving else self.log.stationary
        return [o for o in object_ids if flags[frame, o]]

    def _ordered(self, events: list[Event], ordinal: str) -> Event | None:
        """The event at `ordinal` if its time order is unambiguous."""
        frames = [e.frame for e in events]
        if ordinal == "first" and len(events) >= 2 and frames[0] < frames[1]:
            return events[0]
        if ordinal == "second" and len(events) >= 3 and frames[0] < frames[1] < frames[2]:
            return events[1]
        if ordinal == "last" and len(events) >= 2 and frames[-2] < frames[-1]:
            return events[-1]
        return None

    @cached_property
    def _frames(self) -> list[tuple[str, list[str], int, str]]:
        """Moments a motion question can be about: (phrase, frame program, frame, template tag)."""
        moments = [
            ("when the video begins", ["start", "get_frame"], 0, "begin"),
            ("when the video ends", ["end", "get_frame"], self.last_frame, "end"),
        ]
        for state in self.objects:
            event = self._single("in", state.object_id)
            if event is not None:
                reference = self.describe.refer(state.object_id)
                moments.append(
                    (
                        f"when {reference.the} enters the scene",
                        in_event_program(reference) + ["get_frame"],
                        event.frame,
                        "enter",
                    )
                )
        return moments

    # -- descriptive

    def descriptive(self) -> list[Candidate]:
        return self._count() + self._exist() + self._query()

    def _object_filters(self) -> list[Filter]:
        filters = {(None, None, None)}
        for _ in range(4 * FILTERS_PER_TEMPLATE):
            filters.add(self.describe.random_filter())
            if len(filters) >= FILTERS_PER_TEMPLATE:
                break
        return sorted(filters, key=lambda f: tuple(x or "" for x in f))

    def _members(self, object_filter: Filter) -> list[int]:
        return [o.object_id for o in self.objects if matches(o, object_filter)]

    def _object_sets(self, over_video_moving: bool) -> Iterator[ObjectSet]:
        """For each drawn object filter: its objects that enter and that exit the scene, those
        moving and those stationary at each moment of `_frames`, and over the whole video the
        moving ones (`over_video_moving`) or the stationary ones; sets ambiguous in motion are
        left out."""
        for object_filter in self._object_filters():
            members = self._members(object_filter)
            plural = plural_phrase(object_filter)
            objects_program = filter_program(object_filter)
            for kind, verb in (("in", "enter"), ("out", "exit")):
                actors = [e.objects[0] for e in self.log.of_kind(kind) if e.objects[0] in members]
                yield ObjectSet(verb, plural, ["events"] + objects_program + [f"filter_{kind}"],
                                actors, verb=verb)
            for phrase, frame_program, frame, tag in self._frames:
                for moving in (True, False):
                    state = "moving" if moving else "stationary"
                    subset = self._moving_at(frame, members, moving)
                    if subset is not None:
                        yield ObjectSet(f"{state}_{tag}", plural,
                                        objects_program + frame_program + [f"filter_{state}"],
                                        subset, state=state, moment=phrase)
            state = "moving" if over_video_moving else "stationary"
            subset = self._moving_at(None, members, over_video_moving)
            if subset is not None:
                yield ObjectSet(f"{state}_video", plural,
                                objects_program + ["null", f"filter_{state}"], subset, state=state)

    def _count(self) -> list[Candidate]:
        found = []

        def add(template: str, question: str, program: list[str], answer: int) -> None:
            if answer <= 5:
                found.append(
                    Candidate(
                        "descriptive", template, question, program + ["count"], "count", str(answer)
                    )
                )

        add(
            "count_collisions",
            "How many collisions happen?",
            ["events", "objects", "filter_collision"],
            len(self.log.collisions),
        )
        for found_set in self._object_sets(over_video_moving=True):
            plural, state = found_set.plural, found_set.state
            if found_set.verb:
                question = f"How many {plural} {found_set.verb} the scene?"
            elif found_set.moment:
                question = f"How many {plural} are {state} {found_set.moment}?"
            else:
                question = f"How many {state} {plural} are there?"
            add(f"count_{found_set.tag}", question, found_set.program, len(found_set.objects))
        for state in self.objects:
            reference = self.describe.refer(state.object_id)
            add(
                "count_collide_with",
                f"How many objects collide with {reference.the}?",
                ["events"] + reference.program + ["filter_collision"],
                len(self.log.of_kind("collision", state.object_id)),
            )
            for kind, verb, relation in (("in", "enters", "after"), ("out", "exits", "before")):
                event = self._single(kind, state.object_id)
                if event is None:
                    continue
                if relation == "after":
                    count = sum(1 for e in self.log.collisions if e.frame > event.frame)
                else:
                    count = sum(1 for e in self.log.collisions if e.frame < event.frame)
                event_program = (
                    in_event_program(reference) if kind == "in" else out_event_program(reference)
                )
                add(
                    f"count_collisions_{relation}_{kind}",
                    f"How many collisions happen {relation} {reference.the} {verb} the scene?",
                    ["events"]
                    + event_program
                    + [f"filter_{relation}", "objects", "filter_collision"],
                    count,
                )
        return found

    def _exist(self) -> list[Candidate]:
        found = []

        def add(template: str, question: str, program: list[str], exists: bool) -> None:
            found.append(
                Candidate(
                    "descriptive",
                    template,
                    question,
                    program + ["exist"],
                    "exist",
                    "yes" if exists else "no",
                )
            )

        for found_set in self._object_sets(over_video_moving=False):
            plural, state = found_set.plural, found_set.state
            if found_set.verb:
                question = f"Are there any {plural} that {found_set.verb} the scene?"
            else:
                moment = f" {found_set.moment}" if found_set.moment else ""
                question = f"Are there any {state} {plural}{moment}?"
            add(f"exist_{found_set.tag}", question, found_set.program, bool(found_set.objects))
        for state in self.objects:
            event = self._single("in", state.object_id)
            if event is None:
                continue
            reference = self.describe.refer(state.object_id)
            add(
                "exist_collisions_after_in",
                f"Are there any collisions that happen after {reference.the} enters the scene?",
                ["events"]
                + in_event_program(reference)
                + ["filter_after", "objects", "filter_collision"],
                any(e.frame > event.frame for e in self.log.collisions),
            )
        return found

    def _query(self) -> list[Candidate]:
        found = []
        for attribute in ATTRIBUTES:
            found += self._query_attribute(attribute)
        return found

    def _query_attribute(self, attribute: str) -> list[Candidate]:
        found = []
        subtype = f"query_{attribute}"

        def add(template: str, subject: str, program: list[str], object_id: int) -> None:
            if self.rng.random() < 0.5:
                question = f"What {attribute} is {subject}?"
            else:
                question = f"What is the {attribute} of {subject}?"
            answer = getattr(self.objects[object_id], attribute)
            found.append(
                Candidate("descriptive", template, question, program + [subtype], subtype, answer)
            )

        # The object to collide with X, and the first/second/last one.
        for state in self.objects:
            collisions = self.log.of_kind("collision", state.object_id)
            if not collisions:
                continue
            reference = self.describe.refer(state.object_id)
            partner_program = reference.program + ["get_col_partner"]
            if len(collisions) == 1:
                partner = _partner(collisions[0], state.object_id)
                add(
                    "query_partner",
                    f"the object to collide with {reference.the}",
                    ["events"]
                    + reference.program
                    + ["filter_collision", "unique"]
                    + partner_program,
                    partner,
                )
            for ordinal in ORDINALS:
                event = self._ordered(collisions, ordinal)
                if event is None:
                    continue
                add(
                    "query_partner_order",
                    f"the {ordinal} object to collide with {reference.the}",
                    ["events"]
                    + reference.program
                    + ["filter_collision", ordinal, "filter_order"]
                    + partner_program,
                    _partner(event, state.object_id),
                )
        # The (partially described) object that enters / exits, and the first/last to.
        for kind, verb, infinitive in (("in", "enters", "enter"), ("out", "exits", "exit")):
            events = self.log.of_kind(kind)
            for subject_filter in self._subject_filters(attribute):
                chosen = [e for e in events if matches(self.objects[e.objects[0]], subject_filter)]
                if len(chosen) == 1:
                    add(
                        f"query_{infinitive}",
                        f"the {singular_phrase(subject_filter)} that {verb} the scene",
                        ["events"]
                        + filter_program(subject_filter)
                        + [f"filter_{kind}", "unique", "get_object"],
                        chosen[0].objects[0],
                    )
            for ordinal in ORDINALS:
                event = self._ordered(events, ordinal)
                if event is not None:
                    add(
                        f"query_{infinitive}_order",
                        f"the {ordinal} object to {infinitive} the scene",
                        [
                            "events",
                            "objects",
                            f"filter_{kind}",
                            ordinal,
                            "filter_order",
                            "get_object",
                        ],
                        event.objects[0],
                    )
        # The (partially described) object that is moving / stationary at a moment.
        for phrase, frame_program, frame, tag in self._frames:
            for moving in (True, False):
                state_word = "moving" if moving else "stationary"
                for subject_filter in self._subject_filters(attribute):
                    members = self._members(subject_filter)
                    subset = self._moving_at(frame, members, moving)
                    if subset is not None and len(subset) == 1:
                        add(
                            f"query_{state_word}_{tag}",
                            f"the {singular_phrase(subject_filter)} that is {state_word} {phrase}",
                            filter_program(subject_filter)
                            + frame_program
                            + [f"filter_{state_word}", "unique"],
                            subset[0],
                        )
        return found

    def _subject_filters(self, queried: str) -> list[Filter]:
        """Partial descriptions that do not give away the queried attribute: none, or one other
        attribute taken from an object in the video."""
        filters: set[Filter] = {(None, None, None)}
        position = ATTRIBUTES.index(queried)
        for state in self.objects:
            values = (state.color, state.material, state.shape)
            for other in range(3):
                if other != position:
                    filters.add(tuple(values[i] if i == other else None for i in range(3)))  # type: ignore[arg-type]
        return sorted(filters, key=lambda f: tuple(x or "" for x in f))

    # -- explanatory

    def explanatory(self) -> list[Candidate]:
        found = []
        targets = self.log.collisions + [
            e for e in self.log.of_kind("out") if self._single("out", e.objects[0]) is not None
        ]
        for target in targets:
            ancestors = self.log.ancestors(target)
            if target.kind == "collision":
                first, second = (self.describe.refer(o) for o in self._shuffled(target.objects))
                if self.rng.random() < 0.5:
                    phrase = f"the collision between {first.the} and {second.the}"
                else:
                    phrase = f"{first.possessive} colliding with {second.the}"
                target_program = (
                    ["events"]
                    + first.program
                    + ["filter_collision"]
                    + second.program
                    + ["filter_collision", "unique"]
                )
                template = "explanatory_collision"
            else:
                subject = self.describe.refer(target.objects[0])
                ending = "exit" if self.rng.random() < 0.5 else "exiting the scene"
                phrase = f"{subject.possessive} {ending}"
                target_program = out_event_program(subject)
                template = "explanatory_out"
            choices = self._explanatory_choices(target, ancestors)
            for negate in (False, True):
                word = "not responsible" if negate else "responsible"
                program = ["events"] + target_program + ["filter_ancestor", "belong_to"]
                if negate:
                    program.append("negate")
                found.append(
                    Candidate(
                        "explanatory",
                        template + ("_not" if negate else ""),
                        f"Which of the following is {word} for {phrase}?",
                        program,
                        choices=[_negated(c) if negate else c for c in choices],
                    )
                )
        return found

    def _explanatory_choices(self, target: Event, ancestors: set[Event]) -> list[Choice]:
        choices = []
        ancestor_objects = {o for e in ancestors for o in e.objects}
        for state in self.objects:
            object_id = state.object_id
            if object_id in target.objects:
                continue
            reference = self.describe.refer(object_id)
            choices.append(
                Choice(
                    f"the presence of {reference.the}",
                    reference.program,
                    _verdict(object_id in ancestor_objects),
                    "presence",
                )
            )
        for state in self.objects:
            event = self._single("in", state.object_id)
            if event is None:
                continue
            reference = self.describe.refer(state.object_id)
            ending = "entrance" if self.rng.random() < 0.5 else "entering the scene"
            choices.append(
                Choice(
                    f"{reference.possessive} {ending}",
                    in_event_program(reference),
                    _verdict(event in ancestors),
                    "entrance",
                )
            )
        for event in self.log.collisions:
            if event == target:
                continue
            first, second = (self.describe.refer(o) for o in self._shuffled(event.objects))
            if self.rng.random() < 0.5:
                text = f"the collision between {first.the} and {second.the}"
            else:
                text = f"{first.possessive} colliding with {second.the}"
            choices.append(
                Choice(
                    text,
                    collision_program(first, second),
                    _verdict(event in ancestors),
                    "collision",
                )
            )
        return choices

    # -- predictive

    def predictive(self) -> list[Candidate]:
        happening = {e.objects for e in self.log.unseen_collisions}
        if not happening:
            return []
        collided = {e.objects for e in self.log.collisions}
        choices = []
        for pair in itertools.combinations(range(len(self.objects)), 2):
            if pair in collided:
                continue
            choices.append(self._collision_choice(pair, pair in happening))
        if self.rng.random() < 0.5:
            question, template = "What will happen next?", "predictive_what"
        else:
            question, template = "Which event will happen next?", "predictive_which"
        return [
            Candidate(
                "predictive", template, question, ["unseen_events", "belong_to"], choices=choices
            )
        ]

    def _collision_choice(self, pair: tuple[int, int], happens: bool) -> Choice:
        first, second = (self.describe.refer(o) for o in self._shuffled(pair))
        if self.rng.random() < 0.5:
            text = f"The {first.phrase} and {second.the} collide"
        else:
            text = f"The {first.phrase} collides with {second.the}"
        return Choice(
            text, collision_program(first, second, "all_events"), _verdict(happens), "collision"
        )

    # -- counterfactual

    def counterfactual(self) -> list[Candidate]:
        found = []
        for state in self.objects:
            removed = state.object_id
            pairs = self.facts.counterfactual_pairs[removed]
            remaining = [o.object_id for o in self.objects if o.object_id != removed]
            choices = [
                self._collision_choice(pair, pair in pairs)
                for pair in itertools.combinations(remaining, 2)
            ]
            if not choices:
                continue
            reference = self.describe.refer(removed)
            for negate in (False, True):
                happen = "will not happen" if negate else "will happen"
                style = int(self.rng.integers(3))
                if style == 0:
                    question = f"Which event {happen} if {reference.the} is removed?"
                elif style == 1:
                    question = f"If {reference.the} is removed, which event {happen}?"
                else:
                    question = f"Without {reference.the}, which event {happen}?"
                program = ["all_events"] + reference.program + ["get_counterfact", "belong_to"]
                if negate:
                    program.append("negate")
                found.append(
                    Candidate(
                        "counterfactual",
                        "counterfactual" + ("_not" if negate else ""),
                        question,
                        program,
                        choices=[_negated(c) if negate else c for c in choices],
                    )
                )
        return found

    def _shuffled(self, object_ids: tuple[int, ...]) -> tuple[int, ...]:
        order = self.rng.permutation(len(object_ids))
        return tuple(object_ids[i] for i in order)

    def all(self) -> list[Candidate]:
        """Every candidate of the video: descriptive, explanatory, predictive, counterfactual."""
        return self.descriptive() + self.explanatory() + self.predictive() + self.counterfactual()


def _partner(event: Event, object_id: int) -> int:
    first, second = event.objects
    return second if first == object_id else first


def _verdict(yes: bool) -> str:
    return "correct" if yes else "wrong"


def _negated(choice: Choice) -> Choice:
    flipped = "wrong" if choice.answer == "correct" else "correct"
    return Choice(choice.choice, choice.program, flipped, choice.kind)


def generate_candidates(facts: VideoFacts, rng: np.random.Generator) -> list[Candidate]:
    """The candidate questions about one video (see `QuestionGenerator`): all multiple-choice
    ones, and of the descriptive ones at most `PER_TEMPLATE_ANSWER` per (template, answer),
    drawn at random (enough for balancing, and it keeps the pool files small)."""
    candidates = QuestionGenerator(facts, rng).all()
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for candidate in candidates:
        if candidate.question_type == "descriptive":
            groups.setdefault((candidate.template, candidate.answer), []).append(candidate)
    dropped: set[int] = set()
    for group in groups.values():
        if len(group) > PER_TEMPLATE_ANSWER:
            keep = set(rng.choice(len(group), size=PER_TEMPLATE_ANSWER, replace=False).tolist())
            dropped.update(id(c) for i, c in enumerate(group) if i not in keep)
    return [c for c in candidates if id(c) not in dropped]
