"""Physics and event log: collisions match pybullet's contact points and the geometry, removing an
untouched object changes nothing else, and simulations are deterministic."""

import itertools

import numpy as np
import pybullet
import pytest

from tasks.clevrer_sim.camera import Camera
from tasks.clevrer_sim.dataset import simulate_video
from tasks.clevrer_sim.events import (
    MERGE_FRAMES,
    build_event_log,
    collisions_from_contacts,
    counterfactual_collisions,
    entries_and_exits,
)
from tasks.clevrer_sim.physics import simulate
from tasks.clevrer_sim.scene import (
    CUBE_HALF_EXTENT,
    FOOTPRINT_RADIUS,
    FRICTION_DECELERATION,
    RADIUS,
    ObjectState,
    Scene,
)

from .conftest import SMALL

FPS = 25


def _sphere(object_id, x, y, vx=0.0, vy=0.0, color="red"):
    return ObjectState(object_id, color, "rubber", "sphere", (x, y), 0.0, (vx, vy))


def test_head_on_collision_frame_matches_kinematics():
    # Sphere 0 starts 2 m from sphere 1 at 2 m/s: they touch after travelling 2 - 2R = 1 m.
    scene = Scene((_sphere(0, -2.0, 0.0, vx=2.0), _sphere(1, 0.0, 0.0, color="blue")))
    trajectory = simulate(scene, 40, FPS)
    collisions = collisions_from_contacts(trajectory.contacts)
    assert [c.objects for c in collisions] == [(0, 1)]
    gap, speed, deceleration = 2.0 - 2 * RADIUS, 2.0, FRICTION_DECELERATION
    touch_time = (speed - np.sqrt(speed**2 - 2 * deceleration * gap)) / deceleration
    assert collisions[0].frame == int(np.ceil(touch_time * FPS))
    x = collisions[0].location[0]
    assert -2 * RADIUS < x - trajectory.positions[collisions[0].frame, 1, 0] < 0.05
    # Momentum goes to the struck sphere; restitution keeps them apart afterwards.
    after = trajectory.velocities[collisions[0].frame + 2, :, 0]
    assert after[1] > 1.0 and 0.0 <= after[0] < 0.5


def _random_scenes(count):
    for index in range(count):
        video = simulate_video(SMALL, index)
        yield video


@pytest.fixture(scope="module")
def simulated():
    return list(_random_scenes(4))


def test_collision_log_matches_contact_points(simulated):
    for video in simulated:
        trajectory = video.trajectory
        collisions = collisions_from_contacts(trajectory.contacts)
        logged = {(c.objects, c.frame) for c in collisions}
        touching_pairs = {pair for frame in trajectory.contacts for pair in frame}
        assert touching_pairs == {c.objects for c in collisions}
        for pair, frame in logged:
            # The logged frame has a contact of that pair and none in the frames just before it.
            assert pair in trajectory.contacts[frame]
            before = trajectory.contacts[max(0, frame - MERGE_FRAMES - 1) : frame]
            assert all(pair not in contacts for contacts in before)
        # Every contact frame of a pair belongs to a logged collision.
        for frame, contacts in enumerate(trajectory.contacts):
            for pair in contacts:
                starts = [f for p, f in logged if p == pair and f <= frame]
                assert starts, f"contact of {pair} at {frame} has no collision"


def test_collisions_happen_where_objects_touch(simulated):
    for video in simulated:
        positions = video.trajectory.positions[:, :, :2]
        collided = set()
        for event in collisions_from_contacts(video.trajectory.contacts):
            a, b = event.objects
            collided.add((a, b))
            shapes = [video.scene.objects[o].shape for o in (a, b)]
            reach = FOOTPRINT_RADIUS[shapes[0]] + FOOTPRINT_RADIUS[shapes[1]]
            distance = np.linalg.norm(positions[event.frame, a] - positions[event.frame, b])
            assert distance <= reach + 0.15
            location = np.asarray(event.location[:2])
            for o, shape in zip((a, b), shapes, strict=True):
                assert (
                    np.linalg.norm(location - positions[event.frame, o])
                    <= FOOTPRINT_RADIUS[shape] + 0.15
                )
        # Pairs never logged never came within touching distance of two cubes face to face.
        for a, b in itertools.combinations(range(len(video.scene.objects)), 2):
            if (a, b) not in collided:
                distance = np.linalg.norm(positions[:, a] - positions[:, b], axis=-1).min()
                assert distance > 2 * CUBE_HALF_EXTENT


def test_objects_slide_upright(simulated):
    for video in simulated:
        heights = video.trajectory.positions[:, :, 2]
        assert np.abs(heights - heights[0]).max() < 0.05
        assert np.abs(video.trajectory.orientations[:, :, :2]).max() < 0.1


def test_simulation_is_deterministic():
    first = simulate_video(SMALL, 1)
    second = simulate_video(SMALL, 1)
    assert first.scene == second.scene
    np.testing.assert_array_equal(first.trajectory.positions, second.trajectory.positions)
    assert first.trajectory.contacts == second.trajectory.contacts


def test_removing_an_untouched_object_changes_no_other_event():
    # Two spheres collide; a cube rests far away and is never touched.
    scene = Scene(
        (
            _sphere(0, -2.0, 0.0, vx=2.5),
            _sphere(1, 0.0, 0.2, color="blue"),
            ObjectState(2, "green", "metal", "cube", (0.0, 3.0), 0.3, (0.0, 0.0)),
        )
    )
    full = simulate(scene, 60, FPS)
    reduced = simulate(scene.without(2), 60, FPS)
    assert counterfactual_collisions(full, 60) == counterfactual_collisions(reduced, 60)
    np.testing.assert_array_equal(full.positions[:, :2], reduced.positions)


def test_removing_untouched_objects_in_sampled_scenes():
    checked = 0
    for index in range(6):
        video = simulate_video(SMALL, index)
        collisions = collisions_from_contacts(video.trajectory.contacts)
        touched = {o for c in collisions for o in c.objects}
        clip = [c for c in collisions if c.frame < SMALL.num_frames]
        for state in video.scene.objects:
            if state.object_id in touched:
                continue
            # The re-simulation without it has exactly the same collisions (pairs, frames, places).
            assert video.counterfactual[state.object_id] == clip
            checked += 1
    assert checked >= 1


def test_entries_and_exits_from_view_flags():
    inside = np.array([[False, True], [True, True], [True, False], [False, False]])
    events = entries_and_exits(inside, (0, 1))
    assert [(e.kind, e.frame, e.objects) for e in events] == [
        ("in", 1, (0,)),
        ("out", 2, (1,)),
        ("out", 3, (0,)),
    ]


def test_event_log_views_and_motion(simulated):
    camera = Camera(SMALL.width, SMALL.height)
    video = simulated[0]
    log = build_event_log(video.trajectory, camera, SMALL.num_frames)
    assert log.inside.shape == (SMALL.num_frames, len(video.scene.objects))
    for event in log.of_kind("in"):
        (o,) = event.objects
        assert log.inside[event.frame, o] and not log.inside[event.frame - 1, o]
    assert all(e.frame >= SMALL.num_frames for e in log.unseen_collisions)
    # Causal parents: the first collision of an object that entered has its entrance as ancestor.
    for collision in log.collisions:
        ancestors = log.ancestors(collision)
        for o in collision.objects:
            earlier = [e for e in log.trace(o) if e.frame < collision.frame]
            if earlier:
                assert earlier[-1] in ancestors


def test_camera_matrices_match_pybullet():
    camera = Camera(96, 64)
    view = pybullet.computeViewMatrix(camera.eye, camera.target, (0, 0, 1))
    projection = pybullet.computeProjectionMatrixFOV(
        camera.fov_degrees, 96 / 64, camera.near, camera.far
    )
    ours_view, ours_projection = camera.gl_matrices()
    np.testing.assert_allclose(ours_view, view, atol=1e-5)
    np.testing.assert_allclose(ours_projection, projection, atol=1e-5)
    # The camera target projects to the image centre; floor_point inverts project.
    np.testing.assert_allclose(camera.project(np.array(camera.target)), (48, 32), atol=1e-6)
    point = camera.floor_point(10.5, 50.25)
    np.testing.assert_allclose(camera.project(point), (10.5, 50.25), atol=1e-6)
