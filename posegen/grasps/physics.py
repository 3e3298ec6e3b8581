"""Physics labels for grasps: a MuJoCo shake test in the spirit of ACRONYM's (Eppner et al., ICRA 2021).

For each grasp ``T`` (gripper base frame in the object's mesh frame, :mod:`posegen.grasps.gripper`):

1. the gripper starts at the world origin (world = grasp frame), fingers open at the full stroke; the
   object, a free body, is placed at ``T^-1``; a grasp whose gripper already penetrates the object by more
   than ``ShakeTest.penetration`` fails without simulation (its motions are NaN);
2. **closing**, gravity off: both fingers close with ``gripper.closing_force`` each (coupled by an equality
   constraint like the Franka Hand's mimic joint, speed limited by joint damping) for ``close_time``;
3. **gravity** of ``accel`` along each of ``directions`` (grasp frame) in turn, ``hold_time`` each: the
   object is pushed into the palm, pulled out along the approach axis and dragged along both pad
   directions, with a jerk at every switch;
4. **shake**: gravity pulling the object out of the fingers (approach axis down), the hand (a free body
   welded to a mocap target) moves ``shake_amplitude * sin(2 pi f t)`` along its approach axis while it
   turns ``shake_angle * sin(2 pi f t)`` about the closing axis (the axis a parallel grip resists least),
   for ``shake_time`` (the target moves every ``shake_substeps`` steps; the weld smooths it);
5. **success** (``object_in_gripper``) when, at the end of closing, of every gravity phase and of the
   shake, the object touches both fingers.

The object has ACRONYM's material: density 150 kg/m^3, friction 1.0 (``ShakeTest``). MuJoCo collides meshes as
convex hulls, so non-convex objects are split into convex pieces (CoACD, :meth:`GraspObject.convex_parts`).
Besides the labels, the test measures ACRONYM's per-grasp quality arrays: the object's motion in the hand's
frame during closing and during shaking (linear in m, angular in rad; shaking: the largest at any phase
end, relative to the pose after closing).

Grasps are simulated one after another on one compiled model per process (closing and gravity phases as
``mj_step(model, data, nstep)`` in C, the shake step by step to move the target); ``processes > 1`` splits
them over worker processes. Times per grasp: ``benchmarks/grasps.py``.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_all_start_methods, get_context
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ..optional import require
from .checks import check_transforms
from .gripper import ParallelJawGripper, get_gripper

__all__ = ["ShakeTest", "evaluate", "simulate", "QUALITY_NAMES"]

QUALITY_NAMES = ("object_in_gripper", "object_motion_during_closing_linear",
                 "object_motion_during_closing_angular", "object_motion_during_shaking_linear",
                 "object_motion_during_shaking_angular")
"""The per-grasp arrays :func:`simulate` returns, named as ACRONYM's ``grasps/qualities/flex/*``."""


@dataclass(frozen=True)
class ShakeTest:
    """Settings of the physics test (SI units; directions in the grasp frame)."""

    timestep: float = 0.002
    close_time: float = 0.5
    hold_time: float = 0.15
    accel: float = 9.81
    directions: Tuple[Tuple[float, float, float], ...] = (
        (0.0, 0.0, -1.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0))
    shake_time: float = 0.5
    shake_frequency: float = 2.0
    shake_amplitude: float = 0.03
    shake_angle: float = 0.5
    density: float = 150.0
    friction: float = 1.0
    torsional_friction: float = 0.005
    finger_damping: float = 700.0
    penetration: float = 0.002
    shake_substeps: int = 5

    def __post_init__(self):
        for name in ("timestep", "close_time", "hold_time", "shake_frequency", "density", "friction",
                     "finger_damping"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"ShakeTest.{name} must be a finite number > 0, got {v!r}")
        if isinstance(self.shake_substeps, bool) or not isinstance(self.shake_substeps, int) or self.shake_substeps < 1:
            raise ValueError(f"ShakeTest.shake_substeps must be an integer >= 1, got {self.shake_substeps!r}")
        for name in ("shake_time", "shake_amplitude", "shake_angle"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"ShakeTest.{name} must be a finite number >= 0, got {v!r}")
        if not self.directions or any(len(d) != 3 or not np.linalg.norm(d) > 0 for d in self.directions):
            raise ValueError(f"ShakeTest.directions must be non-zero 3-vectors, got {self.directions!r}")


def _mujoco():
    return require("mujoco", extra="grasps", purpose="posegen.grasps.evaluate")


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    mujoco = _mujoco()
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).ravel())
    return q


def _add_box_geoms(body, boxes, mujoco, **kw) -> None:
    for b in boxes:
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=b.half.tolist(), pos=b.center.tolist(),
                      quat=_quat_wxyz(b.R).tolist(), **kw)


def build_model(parts: List[Tuple[np.ndarray, np.ndarray]], gripper: ParallelJawGripper, test: ShakeTest):
    """The MuJoCo model: the gripper (a free body welded to the mocap body ``target``, gravity compensated)
    with two coupled sliding fingers, and the object as a free body made of the convex ``parts`` (mesh
    frame = body frame)."""
    mujoco = _mujoco()
    spec = mujoco.MjSpec()
    spec.option.timestep = test.timestep
    spec.option.gravity = [0.0, 0.0, 0.0]
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.worldbody.add_body(name="target", mocap=True)  # where the hand should be; moved by the shake
    hand = spec.worldbody.add_body(name="hand", gravcomp=1.0)
    hand.add_freejoint(name="hand")
    hand.mass, hand.inertia, hand.explicitinertial = 2.0, [0.01, 0.01, 0.01], True
    spec.add_equality(type=mujoco.mjtEq.mjEQ_WELD, name1="hand", name2="target", objtype=mujoco.mjtObj.mjOBJ_BODY,
                      solref=[2 * test.timestep, 1.0])
    friction = [test.friction, test.torsional_friction, 1e-4]
    # stiff contacts (MuJoCo averages both geoms' solref/solimp, so every geom gets them): the pads sink
    # about (1 - dmax) / dmax^2 * F / (m k) into the object at rest, k = 1 / (timeconst * dampratio)^2; a
    # damping ratio of 2 stops the pads chattering at this time constant (contacts flickered at 1)
    contact = {"solref": [2 * test.timestep, 2.0], "solimp": [0.99, 0.999, 0.0005, 0.5, 2.0]}
    gripper_bits = {"contype": 1, "conaffinity": 2, **contact}  # the gripper's boxes touch the object only
    _add_box_geoms(hand, gripper.palm, mujoco, friction=friction, **gripper_bits)
    for i, angle in ((1, 0.0), (2, math.pi)):
        finger = hand.add_body(name=f"finger{i}", pos=[0.0, 0.0, gripper.finger_z], gravcomp=1.0,
                               quat=[math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])
        finger.mass = gripper.finger_mass
        finger.inertia = [1e-5, 1e-5, 1e-5]
        finger.explicitinertial = True
        finger.add_joint(name=f"finger{i}", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1.0, 0.0, 0.0],
                         range=[0.0, gripper.stroke / 2], damping=test.finger_damping,
                         limited=mujoco.mjtLimited.mjLIMITED_TRUE, solref_limit=[2 * test.timestep, 2.0])
        _add_box_geoms(finger, gripper.finger, mujoco, friction=friction, condim=4, **gripper_bits)
        spec.add_actuator(name=f"close{i}", target=f"finger{i}", trntype=mujoco.mjtTrn.mjTRN_JOINT,
                          ctrlrange=[-gripper.closing_force, 0.0], ctrllimited=True)
    spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1="finger2", name2="finger1",
                      data=[0.0, 1.0, 0.0, 0.0, 0.0] + [0.0] * 7)  # q2 = 0 + 1 * q1
    obj = spec.worldbody.add_body(name="object")
    obj.add_freejoint(name="object")
    for k, (v, f) in enumerate(parts):
        spec.add_mesh(name=f"part{k}", uservert=np.asarray(v, np.float64).ravel().tolist(),
                      userface=np.asarray(f, np.int64).ravel().tolist())
        obj.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"part{k}", density=test.density,
                     friction=friction, condim=4, contype=2, conaffinity=1, **contact)
    return spec.compile()


class _Simulator:
    """One compiled model and its data; :meth:`run_one` labels one grasp, on the same model each time."""

    def __init__(self, parts, gripper: ParallelJawGripper, test: ShakeTest):
        mujoco = _mujoco()
        self.mj, self.test, self.gripper = mujoco, test, gripper
        self.model = build_model(parts, gripper, test)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.obj_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "object")
        self.fingers = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"finger{i}") for i in (1, 2)]
        self.hand = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "hand")
        self.qadr = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"finger{i}")] for i in (1, 2)]
        self.obj_qadr = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "object")]

    def _touching(self) -> Tuple[bool, bool, float]:
        """Whether the object touches finger 1, finger 2, and its deepest penetration of the gripper (m)."""
        d, m = self.data, self.model
        if d.ncon == 0:
            return False, False, 0.0
        bodies = m.geom_bodyid[d.contact.geom[: d.ncon]]
        with_obj = (bodies == self.obj_body).any(axis=1)
        other = np.where(bodies[:, 0] == self.obj_body, bodies[:, 1], bodies[:, 0])[with_obj]
        depth = float(np.clip(-d.contact.dist[: d.ncon][with_obj], 0.0, None).max(initial=0.0))
        return bool((other == self.fingers[0]).any()), bool((other == self.fingers[1]).any()), depth

    def _object_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """The object's position and rotation in the hand's frame (the grasp frame, wherever the hand is)."""
        d = self.data
        R_h = d.xmat[self.hand].reshape(3, 3)
        return (R_h.T @ (d.xpos[self.obj_body] - d.xpos[self.hand]),
                R_h.T @ d.xmat[self.obj_body].reshape(3, 3))

    def _held(self) -> bool:
        return all(self._touching()[:2])

    def _shake_path(self) -> Tuple[np.ndarray, np.ndarray]:
        """Mocap target every ``shake_substeps`` steps of the shake: positions ``(S, 3)`` along z, quaternions
        ``(S, 4)`` wxyz turning about x, both ``sin(2 pi f t)`` times their amplitude."""
        test = self.test
        dt = test.timestep * test.shake_substeps
        t = np.arange(1, max(1, round(test.shake_time / dt)) + 1) * dt
        s = np.sin(2 * math.pi * test.shake_frequency * t)
        pos = np.zeros((len(t), 3))
        pos[:, 2] = test.shake_amplitude * s
        half = 0.5 * test.shake_angle * s
        quat = np.stack([np.cos(half), np.sin(half), np.zeros_like(t), np.zeros_like(t)], axis=1)
        return pos, quat

    def run_one(self, T: np.ndarray) -> Tuple[bool, float, float, float, float]:
        """``(success, closing linear, closing angular, shaking linear, shaking angular)`` for grasp ``T``."""
        mj, m, d, test = self.mj, self.model, self.data, self.test
        mj.mj_resetData(m, d)
        R_inv = T[:3, :3].T
        d.qpos[self.obj_qadr:self.obj_qadr + 3] = -R_inv @ T[:3, 3]
        d.qpos[self.obj_qadr + 3:self.obj_qadr + 7] = _quat_wxyz(R_inv)
        for a in self.qadr:
            d.qpos[a] = self.gripper.stroke / 2
        m.opt.gravity[:] = 0.0
        mj.mj_forward(m, d)
        if self._touching()[2] > test.penetration:
            return False, math.nan, math.nan, math.nan, math.nan
        p0, R0 = self._object_pose()
        d.ctrl[:] = -self.gripper.closing_force
        mj.mj_step(m, d, nstep=max(1, round(test.close_time / test.timestep)))
        p1, R1 = self._object_pose()
        close_lin, close_ang = float(np.linalg.norm(p1 - p0)), _angle(R0, R1)
        ok = self._held()
        shake_lin = shake_ang = 0.0

        def moved():
            p, R = self._object_pose()
            return max(shake_lin, float(np.linalg.norm(p - p1))), max(shake_ang, _angle(R1, R))

        for direction in test.directions:
            g = np.asarray(direction, dtype=np.float64)
            m.opt.gravity[:] = test.accel * g / np.linalg.norm(g)
            mj.mj_step(m, d, nstep=max(1, round(test.hold_time / test.timestep)))
            shake_lin, shake_ang = moved()
            ok = ok and self._held()
        if test.shake_time > 0:
            m.opt.gravity[:] = (0.0, 0.0, test.accel)  # approach axis down: the weight pulls out of the fingers
            for pos, quat in zip(*self._shake_path()):
                d.mocap_pos[0], d.mocap_quat[0] = pos, quat
                mj.mj_step(m, d, nstep=test.shake_substeps)
            shake_lin, shake_ang = moved()
            ok = ok and self._held()
        return ok, close_lin, close_ang, shake_lin, shake_ang


def _angle(R0: np.ndarray, R1: np.ndarray) -> float:
    c = (np.trace(R0.T @ R1) - 1.0) / 2.0
    return float(math.acos(min(1.0, max(-1.0, c))))


_WORKER: Optional[_Simulator] = None


def _init_worker(parts, gripper, test_kwargs) -> None:
    global _WORKER
    _WORKER = _Simulator(parts, gripper, ShakeTest(**test_kwargs))


def _run_chunk(T: np.ndarray) -> np.ndarray:
    return np.array([_WORKER.run_one(t) for t in T], dtype=np.float64).reshape(-1, 5)


def _context():
    """``fork`` where the platform has it (workers start in milliseconds and share the parent's imports;
    they run only MuJoCo and numpy), else ``spawn`` (each worker imports posegen: seconds)."""
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def simulate(obj, transforms, gripper="panda", *, test: Optional[ShakeTest] = None, processes: int = 1,
             progress: bool = True, chunk: int = 32) -> Dict[str, torch.Tensor]:
    """The shake test of every grasp: a dict of ``(N,)`` tensors named as :data:`QUALITY_NAMES`.

    ``object_in_gripper`` is bool; the motions are float64 (NaN for grasps that start in collision).

    Args:
        obj: a :class:`~posegen.grasps.GraspObject`.
        transforms: ``(N, 4, 4)`` grasps (gripper base frame in the mesh frame), tensor or array.
        gripper: ``"panda"`` or a :class:`~posegen.grasps.ParallelJawGripper`.
        test: the :class:`ShakeTest` settings (default ``ShakeTest()``).
        processes: worker processes (>= 1); 1 runs here. Keep it at most the free cores.
        progress: show a tqdm progress bar over grasps.
        chunk: grasps per task handed to a worker.
    """
    T = check_transforms(transforms, "transforms")
    g = get_gripper(gripper)
    test = ShakeTest() if test is None else test
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be an integer >= 1, got {processes!r}")
    if len(T) == 0:
        return _as_qualities(np.zeros((0, 5)))
    parts = obj.convex_parts()
    chunks = [T[i:i + chunk] for i in range(0, len(T), chunk)]
    rows = []
    with tqdm(total=len(T), desc=f"shake test {obj.name}", unit="grasp", disable=not progress) as bar:
        if processes == 1:
            sim = _Simulator(parts, g, test)
            for c in chunks:
                rows.append(np.array([sim.run_one(t) for t in c], dtype=np.float64).reshape(-1, 5))
                bar.update(len(c))
        else:
            with ProcessPoolExecutor(min(processes, len(chunks)), mp_context=_context(),
                                     initializer=_init_worker, initargs=(parts, g, asdict(test))) as pool:
                for c, r in zip(chunks, pool.map(_run_chunk, chunks)):
                    rows.append(r)
                    bar.update(len(c))
    return _as_qualities(np.concatenate(rows))


def _as_qualities(rows: np.ndarray) -> Dict[str, torch.Tensor]:
    out = {QUALITY_NAMES[0]: torch.from_numpy(rows[:, 0] > 0.5)}
    for k, name in enumerate(QUALITY_NAMES[1:], start=1):
        out[name] = torch.from_numpy(np.ascontiguousarray(rows[:, k]))
    return out


def evaluate(obj, transforms, gripper="panda", **kwargs) -> torch.Tensor:
    """``(N,)`` bool: whether each grasp holds ``obj`` through the shake test (:func:`simulate`'s
    ``object_in_gripper``); keyword arguments as :func:`simulate`."""
    return simulate(obj, transforms, gripper, **kwargs)["object_in_gripper"]

