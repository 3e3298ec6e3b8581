"""Robots from their URDF (or MJCF) descriptions, with batched kinematics through pytorch_kinematics.

>>> from posegen import robots
>>> panda = robots.load("panda")              # built-ins: panda, ur5e, iiwa14; or a file path
>>> T = panda.fk(q)                           # (..., 7) -> (..., 4, 4), end effector in the base frame
>>> J = panda.jacobian(q)                     # (..., 6, 7): linear rows first, base frame
>>> panda.manifold                            # Interval factor(s) for limited joints, Torus for continuous

pytorch_kinematics (and mujoco, for MJCF files) are optional dependencies (``pip install "posegen[robots]"``);
they are imported only when a robot is loaded, so ``import posegen.robots`` works without them.

Modules: ``descriptions`` (built-in URDF files and their registry), ``description`` (URDF -> joints and
links), ``mjcf`` (MJCF -> the same), ``endeffector`` (the default end effector: the tip of the longest chain
of movable non-finger joints; ``Robot.ee_link_reason`` says why), ``mimic`` (mimic joints driven by the joint
they follow), ``srdf`` (an SRDF's end effector), ``chain`` (pytorch_kinematics chains per dtype/device), ``robot``
(:class:`Robot`), ``loader`` (:func:`load`), ``ik`` (:func:`solve_ik`, batched DLS inside the limits),
``turns`` (full-turn joints as angles, for ``posegen.samplers.IKSampler(full_turns=True)``); collision models:
``collisiongeometry`` (one shape type for both description formats), ``geometry`` (a URDF's ``<collision>``
elements, exact triangle distances), ``mjcfgeometry`` (an MJCF's colliding geoms, as MuJoCo compiles them), ``spherefit`` and ``autofit`` (spheres fitted to each
link's meshes or primitives, with a stated error bound, cached), ``spheres`` (sphere tables, YAML),
``selfcollision`` (MoveIt's rules for the pairs to check, SRDF ``disable_collisions``), ``scene``
(obstacles: boxes, balls, half-spaces, meshes, point clouds; :class:`Scene` from code or YAML) and ``collision``
(:class:`CollisionChecker`). Nothing here learns: the learned IK distribution is
:class:`posegen.samplers.IKSampler`, built on these kinematics.
"""

from .autofit import fit_sphere_table
from .collision import Ball, Box, Capsule, CollisionChecker, CollisionModel, load_sphere_table, ready_configuration
from .description import Description, JointSpec, parse_urdf
from .descriptions import BUILTIN_ROBOTS, builtin_names
from .ik import IKResult, solve_ik
from .loader import DescriptionFileNotFoundError, as_robot, default_ee_link, load, parse_description
from .robot import Robot
from .scene import HalfSpace, MeshObstacle, PointCloud, Scene, floor
from .spheres import SphereTable

__all__ = ["load", "as_robot", "Robot", "builtin_names", "BUILTIN_ROBOTS", "Description", "JointSpec", "parse_urdf",
           "parse_description", "default_ee_link", "DescriptionFileNotFoundError", "solve_ik",
           "IKResult", "CollisionChecker", "CollisionModel", "Capsule", "Box", "Ball", "load_sphere_table",
           "ready_configuration", "Scene", "HalfSpace", "floor", "MeshObstacle", "PointCloud", "SphereTable",
           "fit_sphere_table"]
