"""The MuJoCo shake test on grasps whose outcome is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("mujoco")
pytest.importorskip("scipy")

from posegen.grasps import PANDA, QUALITY_NAMES, GraspObject, ShakeTest, evaluate, simulate  # noqa: E402


def _centred(offset=(0.0, 0.0, 0.0), turn_z: float = 0.0) -> np.ndarray:
    """A grasp whose TCP sits at ``offset`` in the object frame, closing along x turned by ``turn_z``."""
    c, s = math.cos(turn_z), math.sin(turn_z)
    T = np.eye(4)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = np.asarray(offset) - T[:3, 2] * PANDA.tcp_offset
    return T


@pytest.fixture(scope="module")
def box():
    return GraspObject.from_trimesh(trimesh.creation.box((0.04, 0.06, 0.03)), name="box")


def test_labels_known_by_construction(box):
    T = np.stack([
        _centred(),                          # across the 4 cm side, pads centred: holds
        _centred(turn_z=math.pi / 2),        # across the 6 cm side: holds
        _centred(turn_z=math.pi),            # the jaw-symmetric twin of the first: holds
        _centred(offset=(0.0, 0.0, -0.04)),  # the box 1.5 cm beyond the fingertips: nothing to hold
        _centred(offset=(0.0, 0.2, 0.0)),    # the box 20 cm beside the fingers: nothing to hold
        _centred(offset=(0.0, 0.0, 0.04)),   # the box 12 mm into the palm: starts in collision
    ])
    q = simulate(box, T, progress=False)
    assert set(q) == set(QUALITY_NAMES)
    assert q["object_in_gripper"].tolist() == [True, True, True, False, False, False]
    assert q["object_motion_during_shaking_linear"][3] > 0.1  # the untouched box falls away
    # the held box barely moves: centred, it is squeezed in place and friction carries its weight
    assert (q["object_motion_during_closing_linear"][:3] < 2e-3).all()
    assert (q["object_motion_during_shaking_linear"][:3] < 2e-3).all()
    assert math.isnan(q["object_motion_during_closing_linear"][5])  # in collision: never simulated
    assert evaluate(box, T[:2], progress=False).tolist() == [True, True]


def test_sphere_wider_than_the_stroke_is_never_held():
    ball = GraspObject.from_trimesh(trimesh.creation.icosphere(2, 0.05), name="ball")
    T = np.stack([_centred(turn_z=a) for a in (0.0, 1.0, 2.0)] + [_centred(offset=(0, 0, 0.04))])
    assert not evaluate(ball, T, progress=False).any()


def test_nothing_between_the_fingers_falls_out_without_friction(box):
    """Friction is what holds a squeezed box against gravity along the pads: with (almost) none it slides."""
    slippery = ShakeTest(friction=1e-4, torsional_friction=0.0)
    assert evaluate(box, _centred()[None], test=slippery, progress=False).tolist() == [False]


@pytest.mark.parametrize("T, match", [
    (np.full((2, 4, 4), np.nan), "finite"),
    (np.eye(4), r"shape \(N, 4, 4\)"),
    (np.eye(4)[None] * 2.0, "rigid"),
])
def test_bad_transforms_are_refused_before_any_work(box, T, match):
    with pytest.raises(ValueError, match=match):
        evaluate(box, T, progress=False)


def test_bad_settings(box):
    with pytest.raises(ValueError, match="processes must be"):
        evaluate(box, _centred()[None], processes=0)
    with pytest.raises(ValueError, match="ShakeTest.timestep"):
        ShakeTest(timestep=0.0)
    assert evaluate(box, np.zeros((0, 4, 4))).shape == (0,)


@pytest.mark.slow
def test_two_processes_give_the_same_labels(box):
    T = np.stack([_centred(turn_z=a) for a in np.linspace(0, math.pi, 6)] + [_centred(offset=(0, 0, -0.04))])
    one = simulate(box, T, progress=False)
    two = simulate(box, T, processes=2, chunk=2, progress=False)
    for k in QUALITY_NAMES:
        np.testing.assert_array_equal(one[k].numpy(), two[k].numpy())
