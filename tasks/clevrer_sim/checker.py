"""The independent checker: answers CLEVRER questions by executing their programs on the
annotation file alone.

It shares no code with the generator's event log. From the annotation it reads the objects'
attributes, the per-frame `inside_camera_view` flags and velocities, the collision list, and
(CLEVRER-sim's extra `simulation` key) the collisions after the clip and those of the
re-simulations with one object removed. From these it re-derives, by the definitions below, the
events the programs run on:
- in / out: the first frame an object is in / out of view after a frame it was not / was;
- moving: in view with horizontal speed above `MOVING_SPEED` m/s (with `null`: at some frame);
  stationary: in view and not moving (with `null`: in view at some frame, never moving);
- start = frame 0, end = the last frame;
- causal ancestors: the previous event of each participating object, recursively.

Programs are postfix: a token that names a module pops its arguments and pushes its result;
any other token is pushed as a literal. For a multiple-choice option the full program is the
option's program followed by the question's, and "yes" means the option is correct.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tasks.clevrer_sim.layout import SPLITS, Layout

MOVING_SPEED = 0.2
"""Horizontal speed (m/s) above which an object is moving."""


class ProgramError(ValueError):
    """A program that cannot run on this video (bad arity, type, or a failed `unique`)."""


@dataclass(frozen=True)
class CheckerEvent:
    kind: str
    objects: frozenset[int]
    frame: int | None
    """None for the possible collisions of `all_events`."""


class AnnotationWorld:
    """The events and motion of one video, read from its annotation record."""

    def __init__(self, annotation: dict) -> None:
        self.attributes = {o["object_id"]: o for o in annotation["object_property"]}
        self.object_ids = sorted(self.attributes)
        trajectory = annotation["motion_trajectory"]
        self.num_frames = len(trajectory)
        self.inside: dict[int, list[bool]] = {o: [] for o in self.object_ids}
        self.speed: dict[int, list[float]] = {o: [] for o in self.object_ids}
        for frame in trajectory:
            for state in frame["objects"]:
                vx, vy = state["velocity"][0], state["velocity"][1]
                self.inside[state["object_id"]].append(bool(state["inside_camera_view"]))
                self.speed[state["object_id"]].append((vx * vx + vy * vy) ** 0.5)
        events = [
            CheckerEvent("start", frozenset(), 0),
            CheckerEvent("end", frozenset(), self.num_frames - 1),
        ]
        for object_id in self.object_ids:
            flags = self.inside[object_id]
            for frame in range(1, self.num_frames):
                if flags[frame] != flags[frame - 1]:
                    kind = "in" if flags[frame] else "out"
                    events.append(CheckerEvent(kind, frozenset([object_id]), frame))
        events += [self._collision(c) for c in annotation["collision"]]
        self.events = sorted(events, key=lambda e: e.frame)
        simulation = annotation.get("simulation", {})
        self.unseen = [self._collision(c) for c in simulation.get("unseen_collision", [])]
        self.counterfactual = {
            record["removed_object_id"]: {frozenset(c["object_ids"]) for c in record["collision"]}
            for record in simulation.get("counterfactual", [])
        }

    @staticmethod
    def _collision(record: dict) -> CheckerEvent:
        return CheckerEvent("collision", frozenset(record["object_ids"]), record["frame_id"])

    def is_moving(self, object_id: int, frame: int | None) -> bool:
        if frame is None:
            return any(
                inside and speed > MOVING_SPEED
                for inside, speed in zip(self.inside[object_id], self.speed[object_id], strict=True)
            )
        return self.inside[object_id][frame] and self.speed[object_id][frame] > MOVING_SPEED

    def is_stationary(self, object_id: int, frame: int | None) -> bool:
        if frame is None:
            return any(self.inside[object_id]) and not self.is_moving(object_id, None)
        return self.inside[object_id][frame] and self.speed[object_id][frame] <= MOVING_SPEED

    def ancestors(self, target: CheckerEvent) -> list[CheckerEvent]:
        traces = {
            o: [e for e in self.events if o in e.objects and e.kind in ("in", "out", "collision")]
            for o in self.object_ids
        }
        found: list[CheckerEvent] = []
        pending = [target]
        while pending:
            event = pending.pop()
            for object_id in event.objects:
                trace = traces[object_id]
                if event not in trace:
                    raise ProgramError(f"event {event} is not in the video")
                position = trace.index(event)
                if position > 0 and trace[position - 1] not in found:
                    found.append(trace[position - 1])
                    pending.append(trace[position - 1])
        return found


@dataclass
class Executor:
    """Runs CLEVRER programs on one `AnnotationWorld`."""

    world: AnnotationWorld
    modules: dict[str, tuple[int, Callable]] = field(init=False)

    def __post_init__(self) -> None:
        self.modules = {
            "objects": (0, lambda: list(self.world.object_ids)),
            "events": (0, lambda: list(self.world.events)),
            "unseen_events": (0, lambda: list(self.world.unseen)),
            "all_events": (0, self._all_events),
            "start": (0, lambda: self._special("start")),
            "end": (0, lambda: self._special("end")),
            "unique": (1, self._unique),
            "count": (1, lambda items: len(self._list(items))),
            "exist": (1, lambda items: "yes" if self._list(items) else "no"),
            "negate": (1, self._negate),
            "belong_to": (2, self._belong_to),
            "filter_color": (2, lambda objs, value: self._filter_attribute(objs, "color", value)),
            "filter_material": (
                2,
                lambda objs, value: self._filter_attribute(objs, "material", value),
            ),
            "filter_shape": (2, lambda objs, value: self._filter_attribute(objs, "shape", value)),
            "filter_moving": (2, lambda objs, frame: self._filter_motion(objs, frame, moving=True)),
            "filter_stationary": (
                2,
                lambda objs, frame: self._filter_motion(objs, frame, moving=False),
            ),
            "filter_in": (2, lambda events, objs: self._filter_kind(events, objs, "in")),
            "filter_out": (2, lambda events, objs: self._filter_kind(events, objs, "out")),
            "filter_collision": (
                2,
                lambda events, objs: self._filter_kind(events, objs, "collision"),
            ),
            "filter_order": (2, self._filter_order),
            "filter_before": (
                2,
                lambda events, event: self._filter_time(events, event, before=True),
            ),
            "filter_after": (
                2,
                lambda events, event: self._filter_time(events, event, before=False),
            ),
            "filter_ancestor": (2, self._filter_ancestor),
            "get_frame": (1, lambda event: self._event(event).frame),
            "get_object": (1, self._get_object),
            "get_col_partner": (2, self._get_col_partner),
            "get_counterfact": (2, self._get_counterfact),
            "query_color": (1, lambda obj: self._attribute(obj, "color")),
            "query_material": (1, lambda obj: self._attribute(obj, "material")),
            "query_shape": (1, lambda obj: self._attribute(obj, "shape")),
        }

    def run(self, program: list[str]) -> str:
        """Execute `program`; returns the answer string ("yes", "3", "red", …)."""
        stack: list = []
        for token in program:
            if token not in self.modules:
                stack.append(token)
                continue
            arity, function = self.modules[token]
            if len(stack) < arity:
                raise ProgramError(f"{token} needs {arity} arguments, the stack has {len(stack)}")
            arguments = stack[len(stack) - arity :]
            del stack[len(stack) - arity :]
            stack.append(function(*arguments))
        if len(stack) != 1:
            raise ProgramError(f"program left {len(stack)} values on the stack, not 1")
        answer = stack[0]
        if isinstance(answer, bool) or not isinstance(answer, (int, str)):
            raise ProgramError(f"program ended with {answer!r}, not an answer")
        return str(answer)

    # -- type checks

    @staticmethod
    def _list(value: object) -> list:
        if not isinstance(value, list):
            raise ProgramError(f"expected a list, got {value!r}")
        return value

    def _objects(self, value: object) -> list[int]:
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        items = self._list(value)
        if not all(isinstance(o, int) for o in items):
            raise ProgramError("expected objects")
        return items

    @staticmethod
    def _event(value: object) -> CheckerEvent:
        if not isinstance(value, CheckerEvent):
            raise ProgramError(f"expected an event, got {value!r}")
        return value

    def _events(self, value: object) -> list[CheckerEvent]:
        items = self._list(value)
        if not all(isinstance(e, CheckerEvent) for e in items):
            raise ProgramError("expected events")
        return items

    # -- modules

    def _special(self, kind: str) -> CheckerEvent:
        return next(e for e in self.world.events if e.kind == kind)

    def _all_events(self) -> list[CheckerEvent]:
        ids = self.world.object_ids
        return [
            CheckerEvent("collision", frozenset((a, b)), None)
            for i, a in enumerate(ids)
            for b in ids[i + 1 :]
        ]

    def _unique(self, items: object) -> object:
        items = self._list(items)
        if len(items) != 1:
            raise ProgramError(f"unique on {len(items)} items")
        return items[0]

    @staticmethod
    def _negate(value: object) -> str:
        if value not in ("yes", "no"):
            raise ProgramError(f"negate of {value!r}")
        return "no" if value == "yes" else "yes"

    def _belong_to(self, entry: object, events: object) -> str:
        events = self._events(events)
        if isinstance(entry, CheckerEvent):
            hit = any(e.kind == entry.kind and e.objects == entry.objects for e in events)
        elif isinstance(entry, int) and not isinstance(entry, bool):
            hit = any(entry in e.objects for e in events if e.kind not in ("start", "end"))
        else:
            raise ProgramError(f"belong_to of {entry!r}")
        return "yes" if hit else "no"

    def _filter_attribute(self, objects: object, attribute: str, value: object) -> list[int]:
        return [o for o in self._objects(objects) if self.world.attributes[o][attribute] == value]

    def _filter_motion(self, objects: object, frame: object, moving: bool) -> list[int]:
        if frame == "null":
            frame = None
        elif not isinstance(frame, int) or not 0 <= frame < self.world.num_frames:
            raise ProgramError(f"bad frame {frame!r}")
        test = self.world.is_moving if moving else self.world.is_stationary
        return [o for o in self._objects(objects) if test(o, frame)]

    def _filter_kind(self, events: object, objects: object, kind: str) -> list[CheckerEvent]:
        wanted = set(self._objects(objects))
        return [e for e in self._events(events) if e.kind == kind and e.objects & wanted]

    def _filter_order(self, events: object, order: object) -> CheckerEvent:
        events = self._events(events)
        position = {"first": 0, "second": 1, "last": len(events) - 1}.get(order)
        if position is None or not 0 <= position < len(events):
            raise ProgramError(f"no {order!r} event among {len(events)}")
        return events[position]

    def _filter_time(self, events: object, event: object, before: bool) -> list[CheckerEvent]:
        frame = self._event(event).frame
        events = self._events(events)
        if before:
            return [e for e in events if e.frame < frame]
        return [e for e in events if e.frame > frame]

    def _filter_ancestor(self, events: object, event: object) -> list[CheckerEvent]:
        ancestors = self.world.ancestors(self._event(event))
        return [e for e in self._events(events) if e in ancestors]

    def _get_object(self, event: object) -> int:
        event = self._event(event)
        if event.kind not in ("in", "out"):
            raise ProgramError("get_object needs an in/out event")
        return next(iter(event.objects))

    def _get_col_partner(self, event: object, obj: object) -> int:
        event = self._event(event)
        if event.kind != "collision" or obj not in event.objects:
            raise ProgramError("get_col_partner needs a collision of the object")
        return next(iter(event.objects - {obj}))

    def _get_counterfact(self, events: object, obj: object) -> list[CheckerEvent]:
        if obj not in self.world.counterfactual:
            raise ProgramError(f"no counterfactual simulation without object {obj!r}")
        pairs = self.world.counterfactual[obj]
        return [e for e in self._events(events) if e.kind == "collision" and e.objects in pairs]

    def _attribute(self, obj: object, attribute: str) -> str:
        if not isinstance(obj, int) or obj not in self.world.attributes:
            raise ProgramError(f"expected an object, got {obj!r}")
        return self.world.attributes[obj][attribute]


def answer_question(executor: Executor, question: dict) -> dict:
    """Derived answers of one question record: {"answer": str} for descriptive ones,
    {"choices": [str, …]} ("correct"/"wrong", in choice order) for the others."""
    if question["question_type"] == "descriptive":
        return {"answer": executor.run(question["program"])}
    verdicts = []
    for choice in question["choices"]:
        result = executor.run(choice["program"] + question["program"])
        if result not in ("yes", "no"):
            raise ProgramError(f"choice program gave {result!r}, not yes/no")
        verdicts.append("correct" if result == "yes" else "wrong")
    return {"choices": verdicts}


@dataclass
class CheckReport:
    """Outcome of checking a dataset's answers."""

    questions: int = 0
    choices: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.mismatches


def _compare(
    question: dict, derived: dict, expected: dict, where: str, report: CheckReport
) -> None:
    report.questions += 1
    if question["question_type"] == "descriptive":
        if derived["answer"] != expected["answer"]:
            report.mismatches.append(
                f"{where}: {question['question']!r} checker says {derived['answer']!r}, "
                f"file says {expected['answer']!r}"
            )
        return
    report.choices += len(derived["choices"])
    if derived["choices"] != expected["choices"]:
        report.mismatches.append(
            f"{where}: {question['question']!r} checker says {derived['choices']}, "
            f"file says {expected['choices']}"
        )


def check_dataset(root: str | Path) -> CheckReport:
    """Re-derive every answer of `root`'s question files from its annotation files, and compare.

    Train and validation answers are read from the question files; test answers (the test file
    has none) from `sim/test_answers.json`. Only `layout.py` (paths) is shared with the generator.
    """
    layout = Layout(Path(root))
    report = CheckReport()
    test_answers_file = layout.test_answers()
    test_answers = {}
    if test_answers_file.exists():
        test_answers = {s["scene_index"]: s for s in json.loads(test_answers_file.read_text())}
    for split in SPLITS:
        questions_file = layout.questions(split)
        if not questions_file.exists():
            continue
        for scene in json.loads(questions_file.read_text()):
            index = scene["scene_index"]
            annotation_file = layout.annotation(split, index)
            executor = Executor(AnnotationWorld(json.loads(annotation_file.read_text())))
            if split == "test":
                answer_of = {q["question_id"]: q for q in test_answers[index]["questions"]}
            for question in scene["questions"]:
                where = f"{split} video {index} question {question['question_id']}"
                if split == "test":
                    key = answer_of[question["question_id"]]
                    expected = (
                        {"answer": key["answer"]}
                        if "answer" in key
                        else {"choices": [c["answer"] for c in key["choices"]]}
                    )
                elif question["question_type"] == "descriptive":
                    expected = {"answer": question["answer"]}
                else:
                    expected = {"choices": [c["answer"] for c in question["choices"]]}
                try:
                    derived = answer_question(executor, question)
                except ProgramError as error:
                    report.questions += 1
                    report.mismatches.append(f"{where}: {question['question']!r} fails: {error}")
                    continue
                _compare(question, derived, expected, where, report)
    return report
