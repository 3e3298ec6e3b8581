"""Reach-and-grasp "recorded trajectories" of a Franka Panda in robomimic's HDF5 layout.

Each demo: a box or cylinder stands on the table (the plane ``z = 0`` of the robot base frame) at a random
``x, y, yaw`` in front of the robot; the arm starts near the ready configuration (the robot registry's,
plus small Gaussian noise), moves the TCP (``panda_hand_tcp``) to a pre-grasp pose, then to the grasp
pose, and closes the gripper. The end-effector path interpolates position linearly and orientation along
the geodesic, with a minimum-jerk time law; joints come from damped-least-squares IK (:func:`_dls_ik`, on
the kinematics of ``posegen.robots.load("panda")``, the franka_description URDF) warm-started from the
previous frame, so they are continuous. Demos whose IK misses a frame (or jumps) are discarded and counted.

One exception, forced by the robot: a horizontal hand near the table needs a twisted arm (``|q3|`` ~
1.2-2, ``|q5|`` ~ 2.6; joint 6 bends one way only, so with ``q5 = 0`` the hand can only be horizontal
with the TCP above z ~ 0.5 m), a branch no continuous TCP path from the ready pose reaches. "side" demos
therefore reach their pre-grasp configuration (IK from fixed twisted seeds, nearest to the start first)
by min-jerk interpolation in joint space, then approach and grasp along the TCP path like "top" demos.
Side grasps are made on tall objects (18-30 cm) at 15 cm or more above the table.

Grasp families
    ``"top"``: TCP z axis pointing down, the fingers' closing axis across the object's narrow side, i.e. the
    gripper yaw equals the object yaw modulo pi (the representative nearest to the direction of the object
    from the base is used). ``"side"``: horizontal approach from the robot's side (along the object face
    normal nearest to the base-to-object direction for boxes, the radial direction +-15 deg for cylinders),
    TCP x axis up, the fingers closing horizontally. Each demo's ``reach_mode`` attr says "cartesian" or
    "joint".

Layout (per demo ``data/demo_<i>``, ``i = 0, 1, ...`` in generation order; sort names numerically)::

    obs/robot0_joint_pos (T, 7)     raw joint angles (rad), inside JOINT_LIMITS, not wrapped
    obs/robot0_eef_pos (T, 3)       TCP position = FK of the recorded joints (m)
    obs/robot0_eef_quat (T, 4)      TCP orientation, xyzw, sign-continuous along the demo (w >= 0 at t = 0)
    obs/robot0_gripper_qpos (T, 2)  finger joints [left, right] = [w/2, -w/2] for opening width w (m)
    obs/object_pos (T, 3)           object centre (m), constant (the object is grasped, not lifted)
    obs/object_quat (T, 4)          object orientation, xyzw (yaw about z)
    actions (T, 7)                  [eef delta pos (3), eef delta rotvec (3, base frame), gripper (-1 open,
                                    +1 close)]; delta at t is pose(t+1) relative to pose(t), zero at T-1
    attrs: num_samples, grasp_family, reach_mode, object_type, object_size (box x, y, z or cylinder
           2r, 2r, h), grasp_width, source_index (index among the attempted demos)

``data`` attrs: ``total`` (frames) and ``env_args`` (JSON: generator, seed, robot, posegen version, counts).
``mask/train`` and ``mask/valid``: 90/10 split of the demo names as numpy bytes strings, like robomimic.

CLI::

    python -m posegen.data.generate --out data/panda_reach_grasp.hdf5 --demos 300 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Dict, List, Sequence

import h5py
import numpy as np
import roma
import torch

from ..atomic import atomic_path
from ..robots import load
from ..robots.collision import ready_configuration
from ..version import __version__
from .demo_io import H5, continuous_quat, sorted_demo_names, write_masks

__all__ = ["generate_panda_dataset", "sorted_demo_names", "GRASP_FAMILIES", "main"]

GRASP_FAMILIES = ("top", "side")
OBJECT_TYPES = ("box", "cylinder")
ENV_NAME = "PosegenPandaReachGrasp"

# Scene and motion parameters (recorded in env_args).
_SCENE = {
    "table_z": 0.0,
    "object_x": [0.35, 0.70],
    "object_y": [-0.30, 0.30],
    "object_yaw": [-math.pi, math.pi],
    "box_size_xy": [0.03, 0.07],
    "box_size_z": [0.04, 0.15],
    "cylinder_radius": [0.015, 0.035],
    "cylinder_height": [0.06, 0.18],
    "side_object_height": [0.18, 0.30],
    "side_grasp_height_fraction": [0.55, 0.75],
    "side_grasp_min_height": 0.15,
    "start_noise_std": 0.05,
    "pregrasp_distance": [0.08, 0.14],
    "top_grasp_depth": [0.015, 0.035],
    "side_approach_noise_deg": 15.0,
    "gripper_open_width": 0.08,
}
# IK and acceptance parameters.
_IK = {"iters": 60, "damping": 0.02, "tol_pos": 1e-4, "tol_rot": 1e-3, "nullspace_gain": 0.0,
       "max_step": 0.2}
_ACCEPT = {"pos_err": 1e-3, "rot_err": math.radians(0.5), "max_joint_step": 0.3}
# IK seeds for side grasps: with its hand horizontal near the table the Panda needs a twisted arm
# (|q3| ~ 1.2-2, |q5| ~ 2.6; joint 6 bends one way only), branches that a TCP path from the ready pose
# cannot reach continuously. Two with the shoulder leaning back (q2 < 0), two leaning forward; found by
# random-restart IK of side grasps at (0.45-0.5, +-0.15, 0.18).
_SIDE_SEEDS = ((-1.24, -1.6, 2.03, -2.65, -2.62, 2.34, -0.84), (1.24, -1.6, -2.03, -2.65, 2.62, 2.34, 2.41),
               (1.63, 1.08, -1.21, -2.72, -2.71, 2.01, -1.45), (-1.69, 1.22, 1.2, -2.71, 2.67, 2.07, 2.5))

def _panda():
    """The Panda (TCP ``panda_hand_tcp``) from its URDF; loaded once (pytorch_kinematics chains are cached)."""
    global _PANDA
    if _PANDA is None:
        _PANDA = load("panda")
    return _PANDA


_PANDA = None


def _limits() -> torch.Tensor:
    return _panda().joint_limits


def _q_ready() -> torch.Tensor:
    return ready_configuration(_panda())


def _fk(q: torch.Tensor):
    """TCP position ``(..., 3)`` and quaternion ``(..., 4)`` xyzw with ``w >= 0``."""
    T = _panda().fk(q)
    quat = roma.rotmat_to_unitquat(T[..., :3, :3])
    return T[..., :3, 3], torch.where(quat[..., 3:] < 0, -quat, quat)


def _dls_ik(target_pos: torch.Tensor, target_quat: torch.Tensor, q_init: torch.Tensor, iters: int = 100,
            damping: float = 0.05, tol_pos: float = 1e-4, tol_rot: float = 1e-3, q_rest=None,
            nullspace_gain: float = 0.0, max_step: float = 0.2):
    """The generator's IK: damped least squares with joint-limit clamping, on the Panda's URDF kinematics.

    ``dq = J^T (J J^T + damping^2 I)^-1 e`` for the 6-vector pose error ``e = [p* - p; rotvec(R* R^T)]``
    (optionally plus a nullspace pull ``nullspace_gain (I - J^+ J)(q_rest - q)``), scaled so no joint moves
    more than ``max_step`` rad, then clamped to the limits; rows within both tolerances stop. This is the
    iteration the generator has always used (and :func:`posegen.robots.ik.solve_ik` is not: its LM damping
    schedule and projection would give other, equally valid, demos), so the seeds keep their demos.

    Args:
        target_pos (..., 3), target_quat (..., 4) xyzw, q_init (..., 7): broadcast together.
    Returns:
        ``q (..., 7)`` inside the limits, ``success (...)``, ``pos_err (...)`` m, ``rot_err (...)`` rad.
    """
    robot = _panda()
    dtype = q_init.dtype
    batch = torch.broadcast_shapes(target_pos.shape[:-1], target_quat.shape[:-1], q_init.shape[:-1])
    p_t = target_pos.to(dtype).expand(*batch, 3).reshape(-1, 3)
    R_t = roma.unitquat_to_rotmat(target_quat.to(dtype).expand(*batch, 4).reshape(-1, 4))
    lim = robot.joint_limits.to(dtype)
    q = torch.clamp(q_init.expand(*batch, 7).reshape(-1, 7), lim[:, 0], lim[:, 1])
    q_rest = q.clone() if q_rest is None else q_rest.to(dtype).expand(*batch, 7).reshape(-1, 7)
    eye6, eye7 = torch.eye(6, dtype=dtype), torch.eye(7, dtype=dtype)
    eps_null = 1e-10 if dtype == torch.float64 else 1e-6

    def errors(T):
        e = torch.cat([p_t - T[:, :3, 3], roma.rotmat_to_rotvec(R_t @ T[:, :3, :3].transpose(-1, -2))], -1)
        return e, e[:, :3].norm(dim=-1), e[:, 3:].norm(dim=-1)

    with torch.no_grad():
        for _ in range(iters):
            e, ep, er = errors(robot.fk(q))
            active = (ep > tol_pos) | (er > tol_rot)
            if not bool(active.any()):
                break
            J = robot.jacobian(q)
            JJt = J @ J.transpose(-1, -2)
            dq = (J.transpose(-1, -2) @ torch.linalg.inv(JJt + (damping ** 2) * eye6) @ e[..., None])[..., 0]
            if nullspace_gain > 0:
                # undamped projector: the damped one leaks the pull into the task
                J_pinv = J.transpose(-1, -2) @ torch.linalg.inv(JJt + eps_null * eye6)
                dq = dq + nullspace_gain * ((eye7 - J_pinv @ J) @ (q_rest - q)[..., None])[..., 0]
            scale = torch.clamp(max_step / dq.abs().amax(-1, keepdim=True).clamp_min(1e-12), max=1.0)
            q = torch.minimum(torch.maximum(q + dq * scale * active[:, None].to(dtype), lim[:, 0]), lim[:, 1])
        _, ep, er = errors(robot.fk(q))
    success = (ep <= tol_pos) & (er <= tol_rot)
    return q.reshape(*batch, 7), success.reshape(batch), ep.reshape(batch), er.reshape(batch)


def _min_jerk(s: np.ndarray) -> np.ndarray:
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _sample_demo(rng: np.random.Generator, frames: int, families: Sequence[str]) -> Dict:
    """One demo's scene and plan (numpy, float64)."""
    sc = _SCENE
    family = families[int(rng.integers(len(families)))]
    obj_type = OBJECT_TYPES[int(rng.integers(2))]
    x = rng.uniform(*sc["object_x"])
    y = rng.uniform(*sc["object_y"])
    yaw = rng.uniform(*sc["object_yaw"])
    # side grasps are for tall objects (the Panda cannot hold its hand horizontal near the table plane
    # without flipping its wrist), top grasps for short ones
    if family == "side":
        h = rng.uniform(*sc["side_object_height"])
    else:
        h = rng.uniform(*sc["box_size_z" if obj_type == "box" else "cylinder_height"])
    if obj_type == "box":
        size = np.array([rng.uniform(*sc["box_size_xy"]), rng.uniform(*sc["box_size_xy"]), h])
    else:
        r = rng.uniform(*sc["cylinder_radius"])
        size = np.array([2 * r, 2 * r, h])
    obj_pos = np.array([x, y, sc["table_z"] + h / 2])
    heading = math.atan2(y, x)          # direction of the object seen from the base

    if family == "top":
        psi = yaw + math.pi * round((heading - yaw) / math.pi)       # yaw modulo pi, nearest the heading
        R = _rot_z(psi) @ np.diag([1.0, -1.0, -1.0])                 # TCP z down, fingers close along obj y
        width = size[1]
        depth = min(rng.uniform(*sc["top_grasp_depth"]), h / 2)
        grasp_pos = np.array([x, y, sc["table_z"] + h - depth])
    else:
        if obj_type == "box":
            k = round((heading - yaw) / (math.pi / 2))               # face normal nearest the heading
            theta = yaw + k * math.pi / 2
            width = size[1] if k % 2 == 0 else size[0]
        else:
            theta = heading + math.radians(rng.uniform(-1, 1) * sc["side_approach_noise_deg"])
            width = size[0]
        theta = _wrap(theta)
        c, s = math.cos(theta), math.sin(theta)
        # columns x (up), y (horizontal), z (approach): right-handed, x = y cross z
        R = np.array([[0.0, s, c], [0.0, -c, s], [1.0, 0.0, 0.0]])
        z = max(h * rng.uniform(*sc["side_grasp_height_fraction"]), sc["side_grasp_min_height"])
        grasp_pos = np.array([x, y, sc["table_z"] + min(z, h - 0.02)])
    pre_pos = grasp_pos - rng.uniform(*sc["pregrasp_distance"]) * R[:, 2]

    lim = _limits().numpy()
    q_start = _q_ready().numpy() + rng.normal(0.0, sc["start_noise_std"], 7)
    q_start = np.clip(q_start, lim[:, 0] + 0.05, lim[:, 1] - 0.05)

    T = int(frames + rng.integers(-(frames // 5), frames // 5 + 1))
    n_close = max(4, round(0.16 * T))
    n_app = max(6, round(0.30 * T))
    n_reach = T - 1 - n_app - n_close
    if n_reach < 4:
        raise ValueError(f"frames={frames} is too short for a reach, approach and close; use frames >= 20")
    return dict(family=family, obj_type=obj_type, size=size, obj_pos=obj_pos, yaw=yaw, R=R,
                grasp_pos=grasp_pos, pre_pos=pre_pos, q_start=q_start, T=T, n_reach=n_reach,
                n_app=n_app, n_close=n_close, width=float(np.clip(width, 0.0, sc["gripper_open_width"])))


def _targets(demos: List[Dict], T_max: int, start_T: torch.Tensor):
    """Per-frame TCP targets ``pos (N, T_max, 3)`` and ``rot (N, T_max, 3, 3)``, padded with the last one."""
    N = len(demos)
    dt = torch.float64
    p0 = start_T[:, :3, 3]
    R0 = start_T[:, :3, :3]
    pre = torch.tensor(np.stack([d["pre_pos"] for d in demos]), dtype=dt)
    grasp = torch.tensor(np.stack([d["grasp_pos"] for d in demos]), dtype=dt)
    Rg = torch.tensor(np.stack([d["R"] for d in demos]), dtype=dt)
    # segment index (0 reach, 1 approach, 2 hold) and phase s in [0, 1] for every (demo, frame)
    seg = np.full((N, T_max), 2, dtype=np.int64)
    s = np.ones((N, T_max))
    for i, d in enumerate(demos):
        n_r, n_a = d["n_reach"], d["n_app"]
        k = np.arange(n_r + 1)
        seg[i, : n_r + 1], s[i, : n_r + 1] = 0, _min_jerk(k / n_r)
        k = np.arange(1, n_a + 1)
        seg[i, n_r + 1: n_r + 1 + n_a], s[i, n_r + 1: n_r + 1 + n_a] = 1, _min_jerk(k / n_a)
    seg = torch.from_numpy(seg)
    s = torch.tensor(s, dtype=dt)[..., None]
    reach_pos = p0[:, None] + s * (pre - p0)[:, None]
    app_pos = pre[:, None] + s * (grasp - pre)[:, None]
    pos = torch.where((seg == 0)[..., None], reach_pos, torch.where((seg == 1)[..., None], app_pos,
                                                                     grasp[:, None].expand_as(app_pos)))
    # orientation: geodesic from the start orientation to the grasp orientation during the reach,
    # constant (grasp orientation) afterwards
    rv = roma.rotmat_to_rotvec(R0.transpose(-1, -2) @ Rg)                     # (N, 3), body frame
    s_rot = torch.where(seg == 0, s[..., 0], torch.ones_like(s[..., 0]))
    rot = R0[:, None] @ roma.rotvec_to_rotmat(s_rot[..., None] * rv[:, None])
    return pos, rot


def _side_pregrasp_candidates(demos: List[Dict], idx: List[int]) -> Dict[int, List[torch.Tensor]]:
    """IK solutions of the pre-grasp pose of side demos ``idx``, one try per seed in :data:`_SIDE_SEEDS`;
    per demo the successful ones, nearest to the demo's start configuration first."""
    if not idx:
        return {}
    n = len(idx)
    seeds = torch.tensor(_SIDE_SEEDS, dtype=torch.float64)                       # (S, 7)
    S = seeds.shape[0]
    pre = torch.tensor(np.stack([demos[i]["pre_pos"] for i in idx]))
    quat = roma.rotmat_to_unitquat(torch.tensor(np.stack([demos[i]["R"] for i in idx])))
    q, ok, _, _ = _dls_ik(pre.expand(S, n, 3), quat.expand(S, n, 4), seeds[:, None].expand(S, n, 7),
                          iters=300, damping=_IK["damping"], tol_pos=_IK["tol_pos"], tol_rot=_IK["tol_rot"])
    q_start = torch.tensor(np.stack([demos[i]["q_start"] for i in idx]))
    dist = (q - q_start).norm(dim=-1).masked_fill(~ok, float("inf"))             # (S, n)
    order = torch.sort(dist, dim=0, stable=True).indices
    return {i: [q[k, j] for k in order[:, j].tolist() if bool(ok[k, j])] for j, i in enumerate(idx)}


def _track(demos: List[Dict], q_pre: List, pos: torch.Tensor, quat: torch.Tensor):
    """Joint trajectories ``(N, T_max, 7)`` and a success mask ``(N,)`` for one plan per demo.

    ``q_pre[i]`` None: Cartesian reach (IK along the TCP path from the start); a tensor: joint-space
    min-jerk reach to that pre-grasp configuration. The approach and the closing frames are Cartesian, IK
    warm-started from the previous frame. A demo fails at the first Cartesian frame whose IK misses the
    acceptance tolerances or whose joints jump by more than ``_ACCEPT["max_joint_step"]``.
    """
    N = len(demos)
    T_max = pos.shape[1]
    dt = torch.float64
    q_start = torch.tensor(np.stack([d["q_start"] for d in demos]), dtype=dt)
    joint_mode = torch.zeros(N, T_max, dtype=torch.bool)
    q_joint = q_start[:, None].expand(N, T_max, 7).clone()
    q_rest = q_start.clone()
    for i, d in enumerate(demos):
        if q_pre[i] is None:
            continue
        n_r = d["n_reach"]
        s = torch.tensor(_min_jerk(np.arange(n_r + 1) / n_r), dtype=dt)[:, None]
        # convex combination of in-limit configurations; the clamp only removes last-bit rounding when
        # q_pre sits on a limit
        lim = _limits()
        q_joint[i, : n_r + 1] = (q_start[i] + s * (q_pre[i] - q_start[i])).clamp(lim[:, 0], lim[:, 1])
        joint_mode[i, : n_r + 1] = True
        q_rest[i] = q_pre[i]
    lengths = torch.tensor([d["T"] for d in demos])
    alive = torch.ones(N, dtype=torch.bool)
    q_traj = q_start[:, None].repeat(1, T_max, 1)
    q = q_start.clone()
    for t in range(1, T_max):
        live = alive & (t < lengths)
        jm = live & joint_mode[:, t]
        q_new = q.clone()
        q_new[jm] = q_joint[jm, t]
        cart = live & ~joint_mode[:, t]
        if bool(cart.any()):
            q_c, _, ep, er = _dls_ik(pos[cart, t], quat[cart, t], q[cart], q_rest=q_rest[cart], **_IK)
            q_new[cart] = q_c
            bad = torch.zeros(N, dtype=torch.bool)
            bad[cart] = (ep > _ACCEPT["pos_err"]) | (er > _ACCEPT["rot_err"])
            alive &= ~bad
        # the jump test catches IK switching branches; planned joint-space frames are smooth by construction
        alive &= ~(cart & ((q_new - q).abs().amax(-1) > _ACCEPT["max_joint_step"]))
        q = torch.where(live[:, None], q_new, q)
        q_traj[:, t] = q
    return q_traj, alive


def _solve_joints(demos: List[Dict]):
    """Joint trajectories ``(N, T_max, 7)`` and a per-demo success list.

    "top" demos follow the interpolated TCP path from the start. "side" demos reach a pre-grasp
    configuration in joint space and then follow the TCP path; their pre-grasp IK candidates (one per seed)
    are tried in rounds, nearest to the start first, until one tracks the whole demo.
    """
    N = len(demos)
    T_max = max(d["T"] for d in demos)
    q_start = torch.tensor(np.stack([d["q_start"] for d in demos]), dtype=torch.float64)
    with torch.no_grad():
        pos, rot = _targets(demos, T_max, _panda().fk(q_start))
        quat = roma.rotmat_to_unitquat(rot)
        cands = _side_pregrasp_candidates(demos, [i for i, d in enumerate(demos) if d["family"] == "side"])
        q_traj = q_start[:, None].repeat(1, T_max, 1)
        ok = [False] * N
        todo = [i for i, d in enumerate(demos) if d["family"] != "side" or cands[i]]
        for r in range(len(_SIDE_SEEDS)):
            if not todo:
                break
            plans = [None if demos[i]["family"] != "side" else cands[i][r] for i in todo]
            qt, alive = _track([demos[i] for i in todo], plans, pos[todo], quat[todo])
            for k, i in enumerate(todo):
                if bool(alive[k]):
                    ok[i] = True
                    q_traj[i] = qt[k]
            todo = [i for i in todo if not ok[i] and demos[i]["family"] == "side" and len(cands[i]) > r + 1]
    return q_traj, ok


def _env_args(seed: int, n_demos: int, frames: int, families: Sequence[str], kept: int,
              discarded: Dict[str, int]) -> str:
    args = {
        "env_name": ENV_NAME,
        "type": "posegen_synthetic",
        "env_kwargs": {"robots": ["Panda"], "scene": _SCENE, "grasp_families": list(families),
                       "object_types": list(OBJECT_TYPES), "frames": frames, "ik": _IK, "accept": _ACCEPT,
                       "side_seeds": [list(s) for s in _SIDE_SEEDS]},
        "generator": "posegen.data.generate.generate_panda_dataset",
        "seed": seed,
        "n_demos_requested": n_demos,
        "n_demos_kept": kept,
        "n_demos_discarded": discarded,
        "robot": {"name": "Panda", "kinematics": "posegen.robots.load('panda') (franka_description URDF; "
                  "agrees with the manufacturer's modified DH chain, hand -pi/4 and TCP 0.1034 m, to 1e-15 m)",
                  "eef_frame": "panda_hand_tcp", "joint_limits": _limits().tolist(), "q_ready": _q_ready().tolist()},
        "conventions": {"quat": "xyzw", "units": "m, rad", "frame": "panda_link0 (table plane z = 0)",
                        "actions": "[delta eef pos (3), delta eef rotvec in base frame (3), gripper "
                                   "-1 open / +1 close]"},
        "posegen_version": __version__,
    }
    return json.dumps(args, sort_keys=True)


def _write_demo(g, d: Dict, q: torch.Tensor, source_index: int) -> int:
    """One demo (``d`` from :func:`_sample_demo`, joints ``q (T, 7)``) into the HDF5 group ``g``; returns T."""
    T = d["T"]
    eef_pos, eef_quat = _fk(q)
    eef_pos = eef_pos.numpy()
    eef_quat = continuous_quat(eef_quat.numpy())
    Tm = _panda().fk(q)
    d_pos = np.zeros((T, 3))
    d_rot = np.zeros((T, 3))
    d_pos[:-1] = eef_pos[1:] - eef_pos[:-1]
    d_rot[:-1] = roma.rotmat_to_rotvec(Tm[1:, :3, :3] @ Tm[:-1, :3, :3].transpose(-1, -2)).numpy()
    arrive = d["n_reach"] + d["n_app"]          # frame index where the grasp pose is reached
    grip_cmd = np.where(np.arange(T) >= arrive, 1.0, -1.0)
    w_open = _SCENE["gripper_open_width"]
    width = np.full(T, w_open)
    closing = np.arange(T) > arrive
    width[closing] = w_open + (d["width"] - w_open) * np.minimum((np.arange(T)[closing] - arrive) / d["n_close"], 1.0)
    gripper = np.stack([width / 2, -width / 2], -1)
    oq = np.array([0.0, 0.0, math.sin(d["yaw"] / 2), math.cos(d["yaw"] / 2)])
    obs = g.create_group("obs")
    obs.create_dataset("robot0_joint_pos", data=q.numpy(), **H5)
    obs.create_dataset("robot0_eef_pos", data=eef_pos, **H5)
    obs.create_dataset("robot0_eef_quat", data=eef_quat, **H5)
    obs.create_dataset("robot0_gripper_qpos", data=gripper, **H5)
    obs.create_dataset("object_pos", data=np.tile(d["obj_pos"], (T, 1)), **H5)
    obs.create_dataset("object_quat", data=np.tile(oq, (T, 1)), **H5)
    g.create_dataset("actions", data=np.concatenate([d_pos, d_rot, grip_cmd[:, None]], -1), **H5)
    g.attrs["num_samples"] = T
    g.attrs["grasp_family"] = d["family"]
    g.attrs["reach_mode"] = "joint" if d["family"] == "side" else "cartesian"
    g.attrs["object_type"] = d["obj_type"]
    g.attrs["object_size"] = d["size"]
    g.attrs["grasp_width"] = d["width"]
    g.attrs["source_index"] = source_index
    return T


def generate_panda_dataset(path, n_demos: int = 300, seed: int = 0, frames: int = 50,
                           families: Sequence[str] = GRASP_FAMILIES, verbose: bool = False) -> Dict:
    """Generate reach-and-grasp demos and write them to ``path`` (HDF5, robomimic layout; atomic write).

    Args:
        path: output file; written atomically (:func:`posegen.atomic.atomic_path`).
        n_demos: demos to attempt (kept ones are renumbered ``demo_0 ...`` in generation order).
        seed: seed of every random choice; the same seed gives the same arrays.
        frames: nominal demo length; each demo has ``frames +- frames // 5`` frames.
        families: grasp families to draw from, a non-empty subset of :data:`GRASP_FAMILIES`.
        verbose: print a one-line summary.
    Returns:
        dict with ``n_requested``, ``n_kept``, ``n_discarded`` (per family), ``total_frames``, ``seconds``.
    """
    if int(n_demos) != n_demos or n_demos < 1:
        raise ValueError(f"n_demos must be a positive integer, got {n_demos!r}")
    if int(frames) != frames or frames < 20:
        raise ValueError(f"frames must be an integer >= 20, got {frames!r}")
    families = tuple(families)
    unknown = [f for f in families if f not in GRASP_FAMILIES]
    if not families or unknown:
        raise ValueError(f"families must be a non-empty subset of {GRASP_FAMILIES}, got {families}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    demos = [_sample_demo(rng, int(frames), families) for _ in range(int(n_demos))]
    N = len(demos)
    # tiny batched linear algebra: one thread is several times faster than two (no OpenMP hand-offs,
    # no spinning against other processes) and keeps the arithmetic order fixed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        q_traj, ok = _solve_joints(demos)
    finally:
        torch.set_num_threads(threads)
    discarded = {f: sum(1 for d, k in zip(demos, ok) if not k and d["family"] == f) for f in families}
    kept = [i for i in range(N) if ok[i]]
    if not kept:
        raise RuntimeError(f"IK failed for all {N} demos; nothing to write")

    path = os.fspath(path)
    total = 0
    names = []
    # mkdir: the data folder may not exist yet; atomic_path gives the file open()'s usual permissions
    with atomic_path(path, mkdir=True) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for j, i in enumerate(kept):
            names.append(f"demo_{j}")
            total += _write_demo(data.create_group(names[-1]), demos[i], q_traj[i, :demos[i]["T"]], i)
        data.attrs["total"] = total
        data.attrs["env_args"] = _env_args(seed, N, int(frames), families, len(kept), discarded)
        write_masks(f, names, seed)
    stats = {"n_requested": N, "n_kept": len(kept), "n_discarded": discarded, "total_frames": total,
             "seconds": time.perf_counter() - t0, "path": path}
    if verbose:
        print(f"wrote {path}: {len(kept)}/{N} demos kept (discarded by family: {discarded}), "
              f"{total} frames, {os.path.getsize(path) / 1e6:.2f} MB, {stats['seconds']:.1f} s")
    return stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posegen.data.generate",
                                     description="Generate Franka Panda reach-and-grasp demos (robomimic HDF5).")
    parser.add_argument("--out", required=True, help="output .hdf5 path")
    parser.add_argument("--demos", type=int, default=300, help="demos to attempt (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--frames", type=int, default=50, help="nominal frames per demo (default 50)")
    parser.add_argument("--families", nargs="+", default=list(GRASP_FAMILIES), choices=GRASP_FAMILIES,
                        help="grasp families to draw from (default: both)")
    parser.add_argument("--quiet", action="store_true", help="no summary line")
    args = parser.parse_args(argv)
    generate_panda_dataset(args.out, n_demos=args.demos, seed=args.seed, frames=args.frames,
                           families=args.families, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
