"""Grasps from object geometry: objects, the Panda gripper, antipodal candidates, physics labels, ACRONYM files.

The data side of posegen's grasp models (a learned ``GraspSampler`` builds on it):

* :func:`load_object` (``GraspObject``: a trimesh mesh in metres, ``surface_points(n, seed=) -> (n, 3)``);
* :data:`PANDA`, the Franka Hand as a parallel-jaw gripper in ACRONYM's grasp frame (see
  :mod:`posegen.grasps.gripper` for the frame, the TCP offset 0.1034 m and the jaw symmetry);
* :func:`sample_antipodal` -> ``GraspCandidates`` (``transforms (N, 4, 4)`` in the object's mesh frame);
* :func:`evaluate` -> ``(N,)`` bool labels from a MuJoCo shake test (:func:`simulate` for all qualities);
* :func:`load_acronym` / :func:`save_acronym` for ACRONYM's HDF5 layout;
* :func:`make_objects` / :func:`write_objects`: a seeded procedural object set.

Needs the ``grasps`` extra: ``pip install 'posegen[grasps]'`` (trimesh, rtree, scipy, mujoco, coacd,
manifold3d).
"""

from .acronym import AcronymGrasps, load_acronym, object_properties, save_acronym
from .antipodal import GraspCandidates, grasp_frames, sample_antipodal
from .collision import ObjectCollider, gripper_collides
from .gripper import GRIPPERS, HAND_FROM_GRASP, PANDA, Box, ParallelJawGripper, get_gripper, symmetric_grasp
from .objects import GraspObject, find_objects, load_object, narrowest_width
from .objectset import KINDS, make_object, make_objects, pybullet_objects, write_objects
from .physics import QUALITY_NAMES, ShakeTest, evaluate, simulate

__all__ = [
    "GraspObject", "load_object", "find_objects", "narrowest_width",
    "ParallelJawGripper", "Box", "PANDA", "GRIPPERS", "get_gripper", "HAND_FROM_GRASP", "symmetric_grasp",
    "GraspCandidates", "sample_antipodal", "grasp_frames", "ObjectCollider", "gripper_collides",
    "ShakeTest", "evaluate", "simulate", "QUALITY_NAMES",
    "AcronymGrasps", "load_acronym", "save_acronym", "object_properties",
    "KINDS", "make_object", "make_objects", "write_objects", "pybullet_objects",
]
