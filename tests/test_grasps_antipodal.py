"""Antipodal candidates and the gripper collision test against analytic answers for boxes and spheres."""

from __future__ import annotations

import math

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("scipy")

from posegen.grasps import PANDA, GraspObject, ObjectCollider, gripper_collides, sample_antipodal  # noqa: E402

HALF = np.array([0.02, 0.03, 0.06])  # a 4 x 6 x 12 cm box: graspable across x (4 cm) and y (6 cm)


@pytest.fixture(scope="module")
def box():
    return GraspObject.from_trimesh(trimesh.creation.box(2 * HALF), name="box")


@pytest.fixture(scope="module")
def candidates(box):
    return sample_antipodal(box, 300, seed=0, friction=0.5)


def test_box_contacts_are_on_opposite_faces_within_the_friction_cone(candidates):
    T, C, w = (x.numpy() for x in (candidates.transforms, candidates.contacts, candidates.width))
    assert T.shape == (300, 4, 4) and C.shape == (300, 2, 3) and w.shape == (300,)
    # each contact on a face of the box (|coordinate| = half extent along some axis)
    face = np.abs(np.abs(C) - HALF).argmin(axis=2)  # (N, 2) axis of each contact's face
    assert (np.abs(np.abs(C) - HALF).min(axis=2) < 1e-9).all()
    # antipodal on a box = the two contacts on opposite faces of one axis; only x and y fit the stroke
    assert (face[:, 0] == face[:, 1]).all() and np.isin(face[:, 0], (0, 1)).all()
    k = face[:, 0]
    idx = np.arange(len(k))
    assert (np.sign(C[idx, 0, k]) == -np.sign(C[idx, 1, k])).all()
    # the closing axis is inside the friction cone of both face normals: angle <= atan(0.5)
    axis = T[:, :3, 0]
    cos = np.abs(axis[idx, k])
    assert (cos >= math.cos(math.atan(0.5)) - 1e-9).all()
    # width = the box side over the cosine of the tilt
    np.testing.assert_allclose(w, 2 * HALF[k] / cos, rtol=1e-9)
    assert (w <= PANDA.stroke - 2 * 0.002 + 1e-12).all()


def test_frames_are_rigid_and_put_the_contacts_between_the_pads(candidates):
    T, C = candidates.transforms.numpy(), candidates.contacts.numpy()
    R = T[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # contacts in the grasp frame: on the x axis at +-width/2 (either jaw), z = TCP +- the pad's half height
    local = np.einsum("nji,nkj->nki", R, C - T[:, None, :3, 3])
    np.testing.assert_allclose(local[:, :, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(local[:, 0, 0], -local[:, 1, 0], atol=1e-12)
    z = local[:, 0, 2]
    assert (np.abs(z - PANDA.tcp_offset) <= PANDA.pad_half_height + 1e-12).all()
    # both jaw assignments occur (the 180-degree symmetry is sampled)
    assert 0.3 < (local[:, 0, 0] < 0).mean() < 0.7


def test_same_seed_same_candidates(box):
    a = sample_antipodal(box, 50, seed=7)
    b = sample_antipodal(box, 50, seed=7)
    assert np.array_equal(a.transforms.numpy(), b.transforms.numpy())


def test_collision_of_centred_boxes_matches_the_analytic_answer():
    """A box centred on the TCP with its x side across the jaws: the open gripper misses it exactly when its
    half width is inside the pads (0.04 m) and it does not reach down to the palm (z = 0.066 m)."""
    T = np.eye(4)[None]
    T[0, 2, 3] = -PANDA.tcp_offset  # grasp frame origin below the box centre
    for hx, hz in [(0.02, 0.02), (0.0395, 0.02), (0.0405, 0.02), (0.02, 0.036), (0.02, 0.039), (0.06, 0.01)]:
        obj = GraspObject.from_trimesh(trimesh.creation.box((2 * hx, 0.03, 2 * hz)))
        hit = gripper_collides(T, PANDA, ObjectCollider.from_object(obj, 6000))[0]
        expected = hx > 0.03998 or hz > PANDA.tcp_offset - 0.066
        assert hit == expected, (hx, hz)


def test_buried_gripper_collides_without_surface_points_inside():
    big = GraspObject.from_trimesh(trimesh.creation.box((1.0, 1.0, 1.0)))
    T = np.eye(4)[None]  # the whole gripper deep inside a 1 m cube: no surface point in any box
    assert gripper_collides(T, PANDA, ObjectCollider.from_object(big, 2000))[0]


def test_support_plane_keeps_every_gripper_corner_above(box):
    support = ((0.0, 0.0, -HALF[2]), (0.0, 0.0, 1.0))  # the box stands on its bottom face
    c = sample_antipodal(box, 100, seed=1, support=support)
    T = c.transforms.numpy()
    corners = np.concatenate([b.corners() for b in PANDA.boxes()])
    world = np.einsum("nij,kj->nki", T[:, :3, :3], corners) + T[:, None, :3, 3]
    assert (world[..., 2] >= -HALF[2] - 1e-12).all()
    with pytest.raises(ValueError, match="support must be"):
        sample_antipodal(box, 10, support=((0, 0, 0), (0, 0, 0)))


def test_sphere_wider_than_the_stroke_has_no_candidate():
    ball = GraspObject.from_trimesh(trimesh.creation.icosphere(3, 0.05), name="ball")  # 10 cm across
    with pytest.raises(ValueError, match="no antipodal contact pair is narrower"):
        sample_antipodal(ball, 10, seed=0, max_rounds=2)


@pytest.mark.parametrize("kw, match", [({"n": 0}, "n must be"), ({"friction": -1.0}, "friction must be"),
                                       ({"approaches": 0}, "approaches must be"),
                                       ({"clearance": math.nan}, "clearance must be")])
def test_bad_arguments(box, kw, match):
    args = {"n": 5, **kw}
    with pytest.raises(ValueError, match=match):
        sample_antipodal(box, args.pop("n"), **args)
