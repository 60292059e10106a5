"""Questions: the independent checker agrees with the generator, the executor's semantics on a
hand-made video, and answer balancing."""

import json
from collections import Counter

import numpy as np
import pytest

from tasks.clevrer_sim.balance import (
    ChoiceBalancer,
    DescriptiveBalancer,
    QuestionSelector,
    text_only_baseline,
    text_signature,
)
from tasks.clevrer_sim.checker import (
    AnnotationWorld,
    Executor,
    ProgramError,
    answer_question,
    check_dataset,
)
from tasks.clevrer_sim.layout import Layout, split_of, split_ranges

from .conftest import SMALL


def test_checker_agrees_with_every_asked_question(small_dataset):
    root, summary = small_dataset
    report = check_dataset(root)
    assert report.mismatches == []
    asked = sum(sum(s.questions.values()) for s in summary.statistics.values())
    assert report.questions == asked > 40
    assert report.choices > 20


def test_checker_agrees_with_every_candidate_question(small_dataset):
    root, _ = small_dataset
    layout = Layout(root)
    ranges = split_ranges(SMALL.num_videos)
    checked = Counter()
    for index in range(SMALL.num_videos):
        annotation = json.loads(layout.annotation(split_of(index, ranges), index).read_text())
        executor = Executor(AnnotationWorld(annotation))
        for candidate in json.loads(layout.question_pool(index).read_text())["candidates"]:
            derived = answer_question(executor, candidate)
            if candidate["question_type"] == "descriptive":
                assert derived == {"answer": candidate["answer"]}, candidate
            else:
                assert derived == {"choices": [c["answer"] for c in candidate["choices"]]}, (
                    candidate
                )
            checked[candidate["question_type"]] += 1
    assert checked["descriptive"] > 500 and checked["explanatory"] > 5
    assert checked["predictive"] >= 1 and checked["counterfactual"] > 5


def test_checker_disagrees_with_a_wrong_answer(small_dataset, tmp_path):
    root, _ = small_dataset
    layout = Layout(root)
    copy = Layout(tmp_path)
    for split in ("train",):
        for index in split_ranges(SMALL.num_videos)[split]:
            target = copy.annotation(split, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(layout.annotation(split, index).read_text())
    scenes = json.loads(layout.questions("train").read_text())
    question = scenes[0]["questions"][0]
    question["answer"] = "5" if question["answer"] != "5" else "4"
    copy.questions("train").parent.mkdir(parents=True)
    copy.questions("train").write_text(json.dumps(scenes))
    report = check_dataset(tmp_path)
    assert len(report.mismatches) == 1 and "question 0" in report.mismatches[0]


def _state(object_id, x, inside, speed):
    return {
        "object_id": object_id,
        "location": [x, 0.0, 0.5],
        "orientation": [0.0, 0.0, 0.0],
        "velocity": [speed, 0.0, 0.0],
        "angular_velocity": [0.0, 0.0, 0.0],
        "inside_camera_view": inside,
    }


@pytest.fixture
def toy_world():
    """Red sphere 0 rests in view; blue cube 1 enters at frame 2 and hits it at frame 4 (then 0
    moves); gray cylinder 2 enters at frame 6 and hits 0 at frame 8; after the clip 1 and 2
    collide; without object 1, objects 0 and 2 would still collide."""
    frames = []
    for f in range(10):
        frames.append(
            {
                "frame_id": f,
                "objects": [
                    _state(0, 0.0, True, 0.0 if f < 4 else 1.0),
                    _state(1, -3.0 + f, f >= 2, 1.0 if f < 4 else 0.1),
                    _state(2, 3.0, f >= 6, 2.0),
                ],
            }
        )
    annotation = {
        "scene_index": 0,
        "video_filename": "video_00000.mp4",
        "object_property": [
            {"object_id": 0, "color": "red", "material": "rubber", "shape": "sphere"},
            {"object_id": 1, "color": "blue", "material": "metal", "shape": "cube"},
            {"object_id": 2, "color": "gray", "material": "metal", "shape": "cylinder"},
        ],
        "motion_trajectory": frames,
        "collision": [
            {"object_ids": [0, 1], "frame_id": 4, "location": [0, 0, 0.5]},
            {"object_ids": [2, 0], "frame_id": 8, "location": [1, 0, 0.5]},
        ],
        "simulation": {
            "future_frames": 5,
            "unseen_collision": [{"object_ids": [1, 2], "frame_id": 12, "location": [0, 0, 0.5]}],
            "counterfactual": [
                {"removed_object_id": 0, "collision": []},
                {
                    "removed_object_id": 1,
                    "collision": [{"object_ids": [0, 2], "frame_id": 7, "location": [0, 0, 0]}],
                },
                {
                    "removed_object_id": 2,
                    "collision": [{"object_ids": [0, 1], "frame_id": 4, "location": [0, 0, 0]}],
                },
            ],
        },
    }
    return Executor(AnnotationWorld(annotation))


RED = ["objects", "red", "filter_color", "unique"]
BLUE = ["objects", "blue", "filter_color", "unique"]
GRAY = ["objects", "gray", "filter_color", "unique"]


def test_executor_descriptive_modules(toy_world):
    run = toy_world.run
    assert run(["events", "objects", "filter_collision", "count"]) == "2"
    assert run(["events", "objects", "filter_in", "count"]) == "2"
    assert run(["objects", "end", "get_frame", "filter_moving", "count"]) == "2"
    assert run(["objects", "start", "get_frame", "filter_stationary", "count"]) == "1"
    assert run(["objects", "null", "filter_stationary", "exist"]) == "no"
    assert run(["objects", "null", "filter_moving", "count"]) == "3"
    assert (
        run(
            [
                "events",
                *RED,
                "filter_collision",
                "first",
                "filter_order",
                *RED,
                "get_col_partner",
                "query_shape",
            ]
        )
        == "cube"
    )
    assert (
        run(
            [
                "events",
                *RED,
                "filter_collision",
                "last",
                "filter_order",
                *RED,
                "get_col_partner",
                "query_color",
            ]
        )
        == "gray"
    )
    assert (
        run(
            [
                "events",
                "objects",
                "filter_in",
                "last",
                "filter_order",
                "get_object",
                "query_material",
            ]
        )
        == "metal"
    )
    after_blue_enters = [
        "events",
        "events",
        *BLUE,
        "filter_in",
        "unique",
        "filter_after",
        "objects",
        "filter_collision",
    ]
    assert run(after_blue_enters + ["count"]) == "2"
    gray_enters = ["events", *GRAY, "filter_in", "unique", "get_frame"]
    assert (
        run(["objects", "metal", "filter_material", *gray_enters, "filter_stationary", "count"])
        == "1"
    )


def test_executor_causal_and_hypothetical_modules(toy_world):
    second_collision = ["events", *GRAY, "filter_collision", *RED, "filter_collision", "unique"]
    responsible = ["events", *second_collision, "filter_ancestor", "belong_to"]
    blue_in = ["events", *BLUE, "filter_in", "unique"]
    first_collision = ["events", *BLUE, "filter_collision", *RED, "filter_collision", "unique"]
    assert toy_world.run(first_collision + responsible) == "yes"
    assert toy_world.run(blue_in + responsible) == "yes"  # entrance → first collision → second
    assert toy_world.run(BLUE + responsible) == "yes"
    assert toy_world.run(BLUE + responsible + ["negate"]) == "no"
    possible = ["all_events", *RED, "filter_collision", *GRAY, "filter_collision", "unique"]
    assert toy_world.run(possible + ["all_events", *BLUE, "get_counterfact", "belong_to"]) == "yes"
    assert toy_world.run(possible + ["all_events", *RED, "get_counterfact", "belong_to"]) == "no"
    future = ["all_events", *BLUE, "filter_collision", *GRAY, "filter_collision", "unique"]
    assert toy_world.run(future + ["unseen_events", "belong_to"]) == "yes"
    assert toy_world.run(possible + ["unseen_events", "belong_to"]) == "no"


def test_executor_rejects_ill_formed_programs(toy_world):
    with pytest.raises(ProgramError):
        toy_world.run(["objects", "metal", "filter_material", "unique", "query_color"])  # two metal
    with pytest.raises(ProgramError):
        toy_world.run(
            ["events", "objects", "filter_in", "second", "filter_order", "second", "filter_order"]
        )
    with pytest.raises(ProgramError):
        toy_world.run(["objects", "count", "negate"])


def test_descriptive_balancer_refuses_lopsided_answers():
    rng = np.random.default_rng(0)
    balancer = DescriptiveBalancer()
    for _ in range(400):
        offered = ["no"] + (["yes"] if rng.random() < 0.3 else [])
        balancer.observe([{"template": "t", "answer": a} for a in offered])
        for answer in sorted(offered, key=lambda a: balancer.score("t", a)):
            if balancer.allowed("t", answer):
                balancer.take("t", answer)
                break
    counts = balancer.asked["t"]
    assert counts["yes"] > 80
    assert abs(counts["yes"] - counts["no"]) <= 2


def test_choice_balancer_keeps_correct_and_wrong_even():
    rng = np.random.default_rng(0)
    balancer = ChoiceBalancer()
    picked = Counter()
    for _ in range(300):
        pool = [
            {"kind": "presence", "answer": "correct" if rng.random() < 0.8 else "wrong"}
            for _ in range(5)
        ]
        options = balancer.pick(rng, "explanatory", pool, 3)
        balancer.record("explanatory", options)
        picked.update(option["answer"] for option in options)
    assert 0.45 < picked["correct"] / sum(picked.values()) < 0.6


def test_selector_writes_clevrer_question_order():
    def choice(text, answer):
        return {"choice": text, "program": [], "answer": answer, "kind": "collision"}

    descriptive = [
        {
            "question_type": "descriptive",
            "question_subtype": "count",
            "template": "c",
            "question": f"q{i}?",
            "program": ["objects", "count"],
            "answer": str(i % 3),
        }
        for i in range(20)
    ]
    counterfactual = {
        "question_type": "counterfactual",
        "template": "counterfactual",
        "question": "Which event will happen if the cube is removed?",
        "program": ["all_events"],
        "choices": [choice("x", "correct"), choice("y", "wrong"), choice("z", "wrong")],
    }
    lone_option = {**counterfactual, "question": "Without the cube, which event will happen?"}
    lone_option["program"] = ["all_events", "cube"]
    lone_option["choices"] = [choice("x", "correct")]
    predictive = {
        "question_type": "predictive",
        "template": "predictive_what",
        "question": "What will happen next?",
        "program": ["unseen_events", "belong_to"],
        "choices": [choice("a", "correct"), choice("b", "wrong")],
    }
    candidates = descriptive + [lone_option, counterfactual, predictive]
    questions = QuestionSelector(SMALL, 0).select(candidates)
    assert [q["question_id"] for q in questions] == list(range(len(questions)))
    types = [q["question_type"] for q in questions]
    assert types[-2:] == ["predictive", "counterfactual"] and set(types[:-2]) == {"descriptive"}
    assert sorted(c["answer"] for c in questions[-2]["choices"]) == ["correct", "wrong"]
    # The counterfactual question with a lone option is not asked; the other keeps a correct one.
    assert questions[-1]["question"] == counterfactual["question"]
    assert 2 <= len(questions[-1]["choices"]) and "correct" in str(questions[-1]["choices"])


def test_text_only_baseline_sees_template_bias_but_not_balanced_answers():
    def exist(color, answer):
        return {
            "question": f"Are there any moving {color} objects when the video ends?",
            "question_type": "descriptive",
            "question_subtype": "exist",
            "answer": answer,
        }

    biased = [exist(c, "no") for c in ("red", "blue", "gray", "cyan")]
    balanced = [exist(c, a) for c in ("red", "blue") for a in ("yes", "no")]
    assert text_signature(biased[0]["question"]) == text_signature(biased[1]["question"])
    assert text_only_baseline(biased, biased) == {"descriptive/exist": 1.0}
    assert text_only_baseline(balanced, balanced) == {"descriptive/exist": 0.5}
