"""The Panda hand in ACRONYM's grasp frame, against numbers read independently from ACRONYM and franka_ros.

References (read from the public files, not computed by posegen):
* NVlabs/acronym ``acronym_tools/acronym.py`` ``create_gripper_marker``: finger lines at ``x = +-0.041`` from
  ``z = 0.066`` to ``z = 0.11217`` m, the base line from ``z = 0`` to ``0.066``;
* NVlabs/acronym ``data/franka_gripper_collision_mesh.stl`` bounds (trimesh): fingers ``|x|`` in
  ``[0.0399, 0.0664]``, ``|y| <= 0.0105``, ``z`` in ``[0.0585, 0.1122]``; hand ``|y| <= 0.0316``, ``z <= 0.066``;
* franka_ros: ``panda_hand_tcp`` 0.1034 m above ``panda_hand``, fingers moving along ``panda_hand``'s ``y``.
"""

from __future__ import annotations

import numpy as np
import pytest

from posegen.grasps import HAND_FROM_GRASP, PANDA, get_gripper, symmetric_grasp


def _finger_bounds(opening):
    _, f1, f2 = PANDA.parts(opening)
    c1 = np.concatenate([b.corners() for b in f1])
    c2 = np.concatenate([b.corners() for b in f2])
    return c1.min(0), c1.max(0), c2.min(0), c2.max(0)


def test_grasp_frame_is_panda_hand_turned_about_z():
    R = HAND_FROM_GRASP[:3, :3]
    np.testing.assert_allclose(R[:, 0], [0, 1, 0], atol=1e-15)  # closing axis x = the hand's finger axis y
    np.testing.assert_allclose(R[:, 2], [0, 0, 1], atol=1e-15)  # approach z shared
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_open_fingers_match_acronym_collision_mesh():
    lo1, hi1, lo2, hi2 = _finger_bounds(0.08)  # ACRONYM's files: gripper/configuration 0.04 per finger
    assert lo1[0] == pytest.approx(0.0399, abs=5e-4) and hi1[0] == pytest.approx(0.0664, abs=1e-3)
    assert hi2[0] == pytest.approx(-0.0399, abs=5e-4) and lo2[0] == pytest.approx(-0.0664, abs=1e-3)
    assert hi1[2] == pytest.approx(0.1122, abs=1.5e-3) and lo1[2] == pytest.approx(0.0585, abs=1e-3)
    assert max(abs(lo1[1]), abs(hi1[1])) == pytest.approx(0.0105, abs=1e-3)
    palm = np.concatenate([b.corners() for b in PANDA.palm])
    assert palm[:, 2].max() == pytest.approx(0.066, abs=1e-6) and abs(palm[:, 1]).max() == pytest.approx(0.0316)
    # ACRONYM's marker: finger lines at x = +-0.041 between z = 0.066 and 0.112 lie inside the finger boxes
    for z in np.linspace(0.07, 0.11, 5):
        assert lo1[0] < 0.041 < hi1[0] and lo1[2] < z < hi1[2]


def test_pads_close_symmetrically_and_centre_on_the_tcp():
    for opening in (0.0, 0.03, 0.08):
        lo1, _, _, hi2 = _finger_bounds(opening)
        assert lo1[0] == pytest.approx(opening / 2, abs=1e-4) and hi2[0] == pytest.approx(-opening / 2, abs=1e-4)
    pad = PANDA.parts(0.08)[1][-1]  # the rubber tip
    assert pad.center[2] == pytest.approx(PANDA.tcp_offset, abs=5e-4)
    assert PANDA.tcp_offset == 0.1034 and PANDA.stroke == 0.08
    with pytest.raises(ValueError, match="opening must be in"):
        PANDA.parts(0.09)


def test_jaw_symmetry_maps_the_gripper_onto_itself():
    T = np.eye(4)
    S = symmetric_grasp(T)
    np.testing.assert_allclose(S[:3, :3], np.diag([-1.0, -1.0, 1.0]))
    a = np.sort(np.concatenate([b.corners() for b in PANDA.boxes()]).round(9), axis=0)
    b = np.sort(np.concatenate([bx.moved(S).corners() for bx in PANDA.boxes()]).round(9), axis=0)
    np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose(symmetric_grasp(S), T)


def test_unknown_gripper():
    assert get_gripper("panda") is PANDA and get_gripper(PANDA) is PANDA
    with pytest.raises(ValueError, match='Invalid gripper "robotiq"'):
        get_gripper("robotiq")
