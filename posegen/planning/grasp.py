r"""A gripper on a robot and an object on a table: grasp poses in the object frame -> end-effector targets in
the robot's base frame, and the collision checkers of grasping.

Frames (all ``(4, 4)`` homogeneous, float64, metres; ``T_a_b`` is frame ``b`` in frame ``a``)
-------------------------------------------------------------------------------------------
* grasp frame ``g``: the gripper's base frame of :mod:`posegen.grasps.gripper` (ACRONYM's Franka gripper:
  ``z`` toward the fingertips, ``x`` the closing direction, TCP at ``z = 0.1034`` m). Grasp poses
  ``T_o_g (n, 4, 4)`` live in the object's mesh frame ``o`` (what :class:`~posegen.samplers.GraspSampler`
  and :func:`~posegen.grasps.sample_antipodal` return).
* object pose ``T_b_o``: the object's mesh frame in the robot's base frame ``b`` (:func:`place_on_table`).
* mount: the gripper is fixed to a robot link ``l`` by ``T_l_g`` (:class:`GripperMount`); the robot's IK
  link ``e`` (``robot.ee_link``) is tied to ``l`` by fixed joints only, so ``T_e_g = T_b_e(q)^-1 T_b_l(q)
  T_l_g`` is the same for every ``q`` (:func:`ee_from_grasp`).
* end-effector target of a grasp: ``T_b_e = T_b_o T_o_g T_e_g^-1`` (:func:`ee_targets`).

Built-in mounts (:data:`MOUNTS`; another robot or mounting: ``GripperMount(link, T_l_g)``)
------------------------------------------------------------------------------------------
* ``panda``: the Franka Hand on its own arm: ``l = panda_hand``, ``T_l_g = Rz(+90 deg)``
  (:data:`posegen.grasps.HAND_FROM_GRASP`); the IK link ``panda_hand_tcp`` sits 0.1034 m along ``z`` of
  ``panda_hand``, so ``T_e_g`` is a translation of -0.1034 m along ``z`` then ``Rz(+90 deg)``. The shipped
  sphere table already covers the hand with its fingers open.
* ``iiwa14``: the Franka Hand on the KUKA media flange: ``l = iiwa_link_ee_kuka`` (the flange face, 0.045 m
  beyond ``iiwa_link_7``, axes those of ``iiwa_link_7``), ``T_l_g = Rz(+90 deg)``: the hand's base face flush
  on the flange (no adapter plate), ``panda_hand``'s axes along the flange's, as on the Panda's own flange
  but without its -45 degree turn.
* ``ur5e``: the same hand flush on the tool flange: ``l = tool0``, ``T_l_g = Rz(+90 deg)``.

A hand that the robot's sphere table does not cover gets spheres fitted inside the gripper's boxes, fully
open (:func:`posegen.robots.spherefit.fit_link_spheres`), fixed to ``l`` (:func:`mounted_sphere_table`), at
:data:`GRIPPER_TOLERANCE` = 1 cm by default: 70 spheres whose measured surface error is 13.3 mm (every box
surface point within 13.3 mm of a sphere; the checkers grow spheres by a quarter of it, as for the arm's own
links, so up to about 10 mm of a box's edges and corners can go unseen). At 5 mm the fit has 348 spheres and
7.5 mm surface error, and self-collision checks of the mounted arm, whose cost grows with the sphere pairs,
take several times as long. Pass ``tolerance=0.005`` to :func:`grasp_world` for the finer model.

The object and the gripper
--------------------------
At a grasp the open fingers straddle the object, so the robot's spheres of the gripper would touch the
object's covering spheres (a mesh obstacle is covered conservatively). :class:`GraspChecker` therefore checks
the whole robot, gripper included, against the table and itself, and only the links that are not the
gripper against the object; the gripper against the object is checked exactly instead, box against object
surface in the object frame (:func:`posegen.grasps.gripper_collides`, with the table as support plane), on
the grasp and on the approach to it (:mod:`posegen.planning.grasp_reach`). A motion planned to the
pre-grasp pose treats the object as an obstacle for every link (:attr:`GraspWorld.checker`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..grasps import HAND_FROM_GRASP, GraspObject, ObjectCollider, get_gripper
from ..robots import as_robot
from ..robots.collision import CollisionChecker, CollisionModel, ready_configuration, robot_sphere_table
from ..robots.scene import HalfSpace, MeshObstacle, Scene
from ..robots.spherefit import fit_link_spheres
from ..robots.spheres import Capsule, SphereTable
from ..rotations import check_rigid, pos_quat_from_se3, rotmat_to_quat

__all__ = ["GripperMount", "MOUNTS", "GRIPPER_TOLERANCE", "gripper_mount", "ee_from_grasp", "place_on_table",
           "grasps_in_base", "ee_targets", "approach_offset", "gripper_spheres", "mounted_sphere_table",
           "gripper_links", "GraspChecker", "GraspWorld", "grasp_world"]


@dataclass(frozen=True)
class GripperMount:
    """A parallel-jaw gripper fixed to a robot link.

    Attributes:
        link: the robot link the gripper is fixed to.
        link_from_grasp: ``T_l_g (4, 4)`` float64, the grasp frame (:mod:`posegen.grasps.gripper`) in ``link``'s
            frame.
        gripper: the gripper's registry name (:func:`posegen.grasps.get_gripper`).
        covered: whether the robot's own sphere table already holds the gripper's geometry (else
            :func:`mounted_sphere_table` adds fitted spheres).
        note: how the mounting was chosen (printed by the example).
    """

    link: str
    link_from_grasp: np.ndarray = field(repr=False)
    gripper: str = "panda"
    covered: bool = False
    note: str = ""

    def __post_init__(self):
        T = np.asarray(self.link_from_grasp, dtype=np.float64)
        R = T[:3, :3] if T.shape == (4, 4) else np.zeros((3, 3))
        if (T.shape != (4, 4) or not np.isfinite(T).all() or not np.allclose(T[3], (0, 0, 0, 1))
                or not np.allclose(R.T @ R, np.eye(3), atol=1e-9) or np.linalg.det(R) <= 0):
            raise ValueError(f"GripperMount link_from_grasp must be a rigid (4, 4) transform, got {T.tolist()}")
        object.__setattr__(self, "link_from_grasp", T)


#: sphere-fit tolerance (m) of a mounted gripper (module docstring)
GRIPPER_TOLERANCE = 0.01

MOUNTS = {
    "panda": GripperMount("panda_hand", HAND_FROM_GRASP, covered=True,
                          note="Franka Hand on the Panda: panda_hand, T_hand_grasp = Rz(+90 deg)"),
    "iiwa14": GripperMount("iiwa_link_ee_kuka", HAND_FROM_GRASP,
                           note="Franka Hand flush on the iiwa media flange (iiwa_link_ee_kuka), no adapter plate, "
                                "T_flange_grasp = Rz(+90 deg)"),
    "ur5e": GripperMount("tool0", HAND_FROM_GRASP,
                         note="Franka Hand flush on the UR5e tool flange (tool0), T_tool0_grasp = Rz(+90 deg)"),
}
"""The built-in robots' gripper mounts (module docstring)."""


def gripper_mount(robot, mount: Optional[GripperMount] = None) -> GripperMount:
    """``mount`` when given, else the built-in mount of ``robot`` (a :class:`~posegen.robots.Robot`; ValueError
    naming :data:`MOUNTS` for a robot without one)."""
    if mount is not None:
        if not isinstance(mount, GripperMount):
            raise TypeError(f"mount must be a GripperMount, got {type(mount).__name__}")
        return mount
    name = robot.spec["robot"]
    if name not in MOUNTS:
        raise ValueError(f"robot {robot.name!r} has no built-in gripper mount (built-in: {sorted(MOUNTS)}); pass "
                         f"mount=GripperMount(link, T_link_grasp)")
    return MOUNTS[name]


def ee_from_grasp(robot, mount: GripperMount) -> torch.Tensor:
    """``T_e_g (4, 4)`` float64: the grasp frame in the frame of ``robot.ee_link``.

    Raises:
        ValueError: ``mount.link`` is not a link of the robot, or a movable joint lies between it and the
            end-effector link (the transform would depend on ``q``).
    """
    if mount.link not in robot.link_names:
        raise ValueError(f"mount.link {mount.link!r} is not a link of {robot.name!r}")
    desc = robot.description
    path_l, path_e = desc.path_joints(mount.link), desc.path_joints(robot.ee_link)
    between = [j for j in path_l + path_e if (j in path_l) != (j in path_e)]
    movable = [j.name for j in between if j.movable]
    if movable:
        raise ValueError(f"mount.link {mount.link!r} and the end effector {robot.ee_link!r} of {robot.name!r} are "
                         f"joined by movable joint(s) {movable}; mount the gripper on a link fixed to the end "
                         f"effector or load the robot with that ee_link")
    F = robot.frames(ready_configuration(robot), [mount.link, robot.ee_link])
    T_l_g = torch.as_tensor(mount.link_from_grasp, dtype=torch.float64)
    return torch.linalg.inv(F[robot.ee_link].double()) @ F[mount.link].double() @ T_l_g


def place_on_table(obj: GraspObject, xy: Sequence[float] = (0.5, 0.0), yaw: float = 0.0,
                   table_z: float = 0.0) -> torch.Tensor:
    """``T_b_o (4, 4)`` float64: ``obj`` standing upright (its mesh ``z`` up) on the table top ``z = table_z``,
    turned by ``yaw`` (rad) about the vertical, its mesh origin above ``xy = (x, y)`` (m, base frame) and its
    lowest point on the table."""
    vals = [float(v) for v in xy] + [float(yaw), float(table_z)]
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"place_on_table needs finite xy (2 numbers), yaw and table_z, got xy={xy!r}, yaw={yaw!r}, "
                         f"table_z={table_z!r}")
    c, s = math.cos(vals[2]), math.sin(vals[2])
    T = torch.eye(4, dtype=torch.float64)
    T[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    T[:3, 3] = torch.tensor([vals[0], vals[1], vals[3] - float(obj.bounds[0, 2])], dtype=torch.float64)
    return T


def _object_pose(object_pose) -> torch.Tensor:
    """``object_pose`` as one rigid ``(4, 4)`` float64 transform; ValueError otherwise."""
    T_b_o = torch.as_tensor(object_pose, dtype=torch.float64)
    if T_b_o.shape != (4, 4):
        raise ValueError(f"object_pose must be one (4, 4) transform, got shape {tuple(T_b_o.shape)}")
    return check_rigid(T_b_o[None], "object_pose")[0]


def grasps_in_base(grasps, object_pose) -> torch.Tensor:
    """``T_b_g = T_b_o T_o_g``: grasp poses ``grasps (n, 4, 4)`` (object frame) in the base frame, ``(n, 4, 4)``."""
    return _object_pose(object_pose) @ check_rigid(grasps, "grasps")


def ee_targets(grasps_base, robot, mount: GripperMount) -> torch.Tensor:
    """IK targets ``(n, 7)`` (position, quaternion **xyzw**) of ``robot.ee_link`` in the base frame that put the
    grasp frame at ``grasps_base (n, 4, 4)`` (base frame): ``T_b_e = T_b_g T_e_g^-1``."""
    T = check_rigid(grasps_base, "grasps_base") @ torch.linalg.inv(ee_from_grasp(robot, mount))
    return torch.cat(pos_quat_from_se3(T, "xyzw"), -1)


def approach_offset(T, distance: float) -> torch.Tensor:
    """Grasp poses ``T (n, 4, 4)`` moved back by ``distance`` (m) along their approach axis ``z``:
    ``T Trans(0, 0, -distance)`` (the pre-grasp poses)."""
    back = torch.eye(4, dtype=torch.float64)
    back[2, 3] = -float(distance)
    return check_rigid(T, "T") @ back


def gripper_spheres(gripper: str = "panda", tolerance: float = GRIPPER_TOLERANCE) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Spheres inside the fully open ``gripper``'s boxes, in the grasp frame: ``centers (S, 3)``, ``radii (S,)``
    (float64) and the measured surface error (m) of :func:`~posegen.robots.spherefit.fit_link_spheres`
    (fitted once per gripper and tolerance, then copied from a cache)."""
    centers, radii, err = _gripper_spheres(get_gripper(gripper).name, float(tolerance))
    return centers.clone(), radii.clone(), err


@functools.lru_cache(maxsize=8)
def _gripper_spheres(gripper: str, tolerance: float) -> Tuple[torch.Tensor, torch.Tensor, float]:
    tris = [torch.as_tensor(b.corners(), dtype=torch.float64)[_BOX_FACES] for b in get_gripper(gripper).boxes()]
    fit = fit_link_spheres(torch.cat(tris), tolerance, seed=0)
    return fit.centers, fit.radii, float(fit.surface_error)


# the 12 outward-wound triangles of a box whose corners are indexed by (sx, sy, sz) bits as in Box.corners
_BOX_FACES = torch.tensor([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                           [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def mounted_sphere_table(robot, mount: GripperMount, spheres=None, tolerance: float = GRIPPER_TOLERANCE) -> SphereTable:
    """The robot's sphere table (``spheres``, else its own: :func:`~posegen.robots.collision.robot_sphere_table`)
    with the gripper's fitted spheres (:func:`gripper_spheres`) fixed to ``mount.link``, unless ``mount.covered``."""
    base = robot_sphere_table(robot, spheres)
    if mount.covered:
        return base
    if mount.link not in robot.link_names:
        raise ValueError(f"mount.link {mount.link!r} is not a link of {robot.name!r}")
    centers, radii, err = gripper_spheres(mount.gripper, float(tolerance))
    T = torch.as_tensor(mount.link_from_grasp, dtype=torch.float64)
    local = centers @ T[:3, :3].T + T[:3, 3]
    caps = tuple(Capsule(mount.link, tuple(c), float(r)) for c, r in zip(local.tolist(), radii.tolist()))
    return SphereTable(robot=base.robot, capsules=base.capsules + caps,
                       source=f"{base.source} + {mount.gripper} gripper on {mount.link}", disabled=base.disabled,
                       surface_error={**base.surface_error, mount.link: err}, header=base.header)


def gripper_links(robot, mount: GripperMount, table: SphereTable) -> Tuple[str, ...]:
    """The links of ``table`` that belong to the gripper: ``mount.link`` and the links below it."""
    return tuple(lk for lk in table.links
                 if lk == mount.link or any(j.parent == mount.link for j in robot.description.path_joints(lk)))


class GraspChecker(CollisionChecker):
    """A :class:`~posegen.robots.collision.CollisionChecker` with a grasped object: the whole robot against
    ``obstacles`` (the table) and itself, and every link except those in ``exclude`` (the gripper, at a grasp)
    against ``target`` (the object).

    The object is checked with a broad phase: only robot spheres within its bounding sphere (plus ``margin``)
    are compared with its spheres, exactly; the result is the same as checking every pair.

    Args:
        robot, obstacles: as for :class:`~posegen.robots.collision.CollisionChecker`.
        target: the object's :class:`~posegen.robots.scene.MeshObstacle` (base frame).
        exclude: links of the sphere table left out of the object check (:func:`gripper_links`), or none.
        options: the other keyword arguments of :class:`~posegen.robots.collision.CollisionChecker` (``spheres``
            the robot's table with the gripper, :func:`mounted_sphere_table`, or a ready ``model``).
    """

    def __init__(self, robot, obstacles, target: MeshObstacle, *, exclude: Sequence[str] = (), **options):
        super().__init__(robot, obstacles, **options)
        if not isinstance(target, MeshObstacle):
            raise TypeError(f"target must be a MeshObstacle (the grasped object), got {type(target).__name__}")
        unknown = sorted(set(exclude) - set(self.model.links))
        if unknown:
            raise ValueError(f"exclude must name links with spheres {list(self.model.links)}, got {unknown}")
        self.target, self.exclude = target, tuple(exclude)
        keep = torch.tensor([lk not in self.exclude for lk in self.model.links])[self.model.link_index.cpu()]
        self._object_spheres = keep.nonzero().flatten().to(self.device)
        kw = dict(dtype=self.dtype, device=self.device)
        self._obj_c, self._obj_r = target.centers.to(**kw), target.radii.to(**kw)
        self._obj_center = self._obj_c.mean(0)
        self._obj_bound = float(((self._obj_c - self._obj_center).norm(dim=-1) + self._obj_r).max())

    def object_free(self, q, centers: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(...,)`` bool: the checked spheres of ``q (..., dof)`` keep ``margin`` from the object."""
        q = self.model.as_q(q)
        with torch.no_grad():
            c = self.model.sphere_centers(q) if centers is None else centers
            c = c[..., self._object_spheres, :].reshape(-1, len(self._object_spheres), 3)
            r = self.model.radii[self._object_spheres]
            near = (c - self._obj_center).norm(dim=-1) - r - self._obj_bound < self.margin      # (B, S')
            b, s = near.nonzero(as_tuple=True)
            d = ((c[b, s].unsqueeze(-2) - self._obj_c).norm(dim=-1) - self._obj_r).amin(-1) - r[s]
            hit = torch.zeros(c.shape[0], dtype=torch.bool, device=c.device)
            hit[b[d < self.margin]] = True
        return ~hit.view(q.shape[:-1])

    def collision_free(self, q) -> torch.Tensor:
        """``(...,)`` bool: the robot clear of the obstacles and itself, and its checked links of the object."""
        q = self.model.as_q(q)
        return super().collision_free(q) & self.object_free(q)


@dataclass
class GraspWorld:
    """A robot with a gripper, an object on a table, and their checkers (built by :func:`grasp_world`).

    Attributes:
        robot, mount, obj, object_pose ``T_b_o (4, 4)``; table_z (m): the table top, a half-space the robot
        stands on; scene: the table alone; target: the object as a mesh obstacle (base frame); spheres: the
        robot's sphere table with the gripper; checker: every link against table, object and itself (motions to
        the pre-grasp); grasp_checker: :class:`GraspChecker` (configurations at the grasp); collider: the
        object's exact surface points for gripper tests (:class:`posegen.grasps.ObjectCollider`); support:
        ``(point, normal)`` of the table in the object frame.
    """

    robot: object
    mount: GripperMount
    obj: GraspObject
    object_pose: torch.Tensor
    table_z: float
    scene: Scene
    target: MeshObstacle
    spheres: SphereTable
    checker: GraspChecker
    grasp_checker: GraspChecker
    collider: ObjectCollider
    support: Tuple[np.ndarray, np.ndarray]


def grasp_world(robot, obj: GraspObject, object_pose=None, *, table_z: float = 0.0, mount=None, spheres=None,
                margin: float = 0.0, tolerance: float = GRIPPER_TOLERANCE) -> GraspWorld:
    """The :class:`GraspWorld` of ``robot`` (a Robot or a built-in name) grasping ``obj`` at ``object_pose``
    (``T_b_o (4, 4)``; default :func:`place_on_table` at ``(0.5, 0)``) on the table top ``z = table_z``, a
    half-space: the robot's base stands on it at 0 (its fixed links are never checked against it), a negative
    value puts the base on a pedestal above it.

    ``margin`` (m) is every checker's clearance; ``tolerance`` the gripper sphere fit's (m)."""
    robot = as_robot(robot, "grasp_world")
    mount = gripper_mount(robot, mount)
    T_b_o = place_on_table(obj, table_z=table_z) if object_pose is None else _object_pose(object_pose)
    table = HalfSpace((0.0, 0.0, float(table_z)), (0.0, 0.0, 1.0), name="table")
    target = MeshObstacle(torch.tensor(np.asarray(obj.mesh.triangles), dtype=torch.float64),
                          position=tuple(T_b_o[:3, 3].tolist()),
                          quat=tuple(rotmat_to_quat(T_b_o[:3, :3], "xyzw").tolist()), name=obj.name)
    table_sph = mounted_sphere_table(robot, mount, spheres, tolerance)
    scene = Scene([table])
    model = CollisionModel(robot, table_sph)
    checker = GraspChecker(robot, scene, target, model=model, margin=margin)
    grasp_checker = GraspChecker(robot, scene, target, model=model, margin=margin,
                                 exclude=gripper_links(robot, mount, table_sph))
    R, t = T_b_o[:3, :3].numpy(), T_b_o[:3, 3].numpy()
    support = (R.T @ (np.array([0.0, 0.0, float(table_z)]) - t), R.T @ np.array([0.0, 0.0, 1.0]))
    return GraspWorld(robot=robot, mount=mount, obj=obj, object_pose=T_b_o, table_z=float(table_z), scene=scene,
                      target=target, spheres=table_sph, checker=checker, grasp_checker=grasp_checker,
                      collider=ObjectCollider.from_object(obj), support=support)
