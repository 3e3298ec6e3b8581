"""Reach demos of any robot (built-in name or description file) in robomimic's HDF5 layout.

Each episode moves the arm from a start configuration near the robot's home configuration to a random
reachable goal configuration along a minimum-jerk path in joint space, then holds the goal for a few
frames. Start and goal lie inside the joint limits (shrunk by a margin), and every frame is a convex
combination of the two (the box of the limits is convex, ``s(t)`` stays in ``[0, 1]``), so the whole
trajectory stays inside the limits by construction; nothing is clamped. The end-effector pose of every
frame is ``Robot.pose`` (the robot's URDF kinematics through :mod:`posegen.robots`), not a hand-written chain.

Configurations (numpy, float64, seeded by ``seed``):
    start  ``home + N(0, start_std^2)`` per joint, redrawn while outside the shrunk box (home: a robot's usual
           ready pose for the built-ins, else the middle of the limits);
    goal   ``home + N(0, goal_std^2)`` per joint, redrawn while outside the shrunk box or not "reachable": the
           end effector at least ``min_height`` above the base plane and ``min_radius`` from the base z axis
           (the table and the robot's own column). Joints are drawn per joint, so the goals spread over the
           workspace while keeping a home-centred, non-uniform density.

Layout (per episode ``data/demo_<i>``, ``i = 0, 1, ...``)::

    obs/robot0_joint_pos (T, dof)   joint values as they are (rad / m), inside the limits, not wrapped
    obs/robot0_eef_pos (T, 3)       end-effector position = Robot.pose(q) (m, base frame)
    obs/robot0_eef_quat (T, 4)      end-effector orientation, quaternion x, y, z, w; sign-continuous along the
                                    episode, w >= 0 at t = 0
    actions (T, dof)                joint deltas q(t+1) - q(t), zero at T-1
    attrs: num_samples, source_index

``data`` attrs: ``total``, ``env_args`` (JSON: generator, robot, seed, parameters, conventions); the file's
root attrs ``quat_order = "xyzw"``, ``robot``, ``ee_link``, ``joint_names`` and ``joint_limits``.
``mask/train`` and ``mask/valid``: a seeded 90/10 split of the episode names, like robomimic. Load it with
``load_robomimic(path, keys={"robot0_joint_pos": "I<dof>"}, robot=robot)``.

CLI::

    posegen data generate --robot ur5e --out data/ur5e_reach.hdf5 [--demos 300 --frames 50 --seed 0]
"""

from __future__ import annotations

import json
import os
import time
from typing import Dict, Optional, Union

import h5py
import numpy as np
import torch

from ..atomic import atomic_path
from ..robots import as_robot, load
from ..version import __version__
from .demo_io import H5, continuous_quat, write_masks

__all__ = ["generate_robot_dataset", "HOME", "PARAMS"]

ENV_NAME = "PosegenReach"
#: ready poses of the built-in robots (rad), in joint order; other robots start from the middle of the limits
HOME = {
    "panda": (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785),
    "ur5e": (0.0, -1.571, 1.571, -1.571, -1.571, 0.0),
    "iiwa14": (0.0, 0.524, 0.0, -1.571, 0.0, 1.047, 0.0),
}
#: sampling and motion parameters (recorded in env_args)
PARAMS = {
    "margin": 0.02,         # fraction of each joint's range kept free at both limits
    "start_std": 0.1,       # rad (m for prismatic joints)
    "goal_std": 0.8,
    "min_height": 0.05,     # m above the base plane z = 0
    "min_radius": 0.15,     # m from the base z axis
    "hold_fraction": 0.15,  # frames held at the goal at the end of an episode
    "max_tries": 200,       # rejection rounds before giving up on a goal
}


def _min_jerk(s: np.ndarray) -> np.ndarray:
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


def _robot(robot):
    robot = as_robot(robot)
    if not hasattr(robot, "pose") or not hasattr(robot, "joint_limits"):
        raise ValueError(f"robot must be a built-in name, a description path or a posegen.robots.Robot, got "
                         f"{type(robot).__name__}")
    return robot


def _box(robot) -> np.ndarray:
    """``(dof, 2)`` limits shrunk by ``margin`` of each range."""
    lim = robot.joint_limits.numpy().astype(np.float64)
    m = PARAMS["margin"] * (lim[:, 1] - lim[:, 0])
    return np.stack([lim[:, 0] + m, lim[:, 1] - m], 1)


def _home(robot, box: np.ndarray) -> np.ndarray:
    h = HOME.get(robot.name)
    if h is not None and len(h) == robot.dof and np.all((np.asarray(h) >= box[:, 0]) & (np.asarray(h) <= box[:, 1])):
        return np.asarray(h, dtype=np.float64)
    return box.mean(1)


def _draw(rng: np.random.Generator, n: int, centre: np.ndarray, std: float, box: np.ndarray, accept=None):
    """``n`` rows of ``centre + N(0, std^2)`` inside ``box`` (and accepted), by rejection."""
    out = np.empty((n, len(centre)))
    todo = np.arange(n)
    for _ in range(PARAMS["max_tries"]):
        if not len(todo):
            return out
        q = centre + std * rng.standard_normal((len(todo), len(centre)))
        ok = np.all((q >= box[:, 0]) & (q <= box[:, 1]), 1)
        if accept is not None and ok.any():
            ok[ok] = accept(q[ok])
        out[todo[ok]] = q[ok]
        todo = todo[~ok]
    if len(todo):
        raise RuntimeError(f"could not draw {len(todo)} of {n} configurations inside the limits (and reachable) "
                           f"after {PARAMS['max_tries']} rounds; the robot's workspace may not reach "
                           f"{PARAMS['min_height']} m above its base plane")
    return out


def _reachable(robot):
    def accept(q: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            pos, _ = robot.pose(torch.from_numpy(q))
        pos = pos.numpy()
        return (pos[:, 2] >= PARAMS["min_height"]) & (np.hypot(pos[:, 0], pos[:, 1]) >= PARAMS["min_radius"])
    return accept


def _env_args(robot, source: str, seed: int, n_demos: int, frames: int, home: np.ndarray) -> str:
    return json.dumps({
        "env_name": ENV_NAME,
        "type": "posegen_synthetic",
        "generator": "posegen.data.generate_robot.generate_robot_dataset",
        "seed": seed,
        "n_demos": n_demos,
        "env_kwargs": {"robots": [robot.name], "frames": frames, "params": PARAMS},
        "robot": {"name": robot.name, "source": source, "kinematics": "posegen.robots.Robot (pytorch_kinematics)",
                  "ee_link": robot.ee_link, "base_link": robot.base_link, "joint_names": list(robot.joint_names),
                  "joint_limits": robot.joint_limits.tolist(), "home": home.tolist()},
        "conventions": {"quat": "xyzw", "units": "m, rad", "frame": robot.base_link,
                        "joints": "as stored, inside the limits, not wrapped", "actions": "joint deltas"},
        "posegen_version": __version__,
    }, sort_keys=True)


def generate_robot_dataset(path, robot: Union[str, os.PathLike, object] = "ur5e", n_demos: int = 300,
                           seed: int = 0, frames: int = 50, verbose: bool = False,
                           ee_link: Optional[str] = None) -> Dict:
    """Generate reach demos of ``robot`` and write them to ``path`` (HDF5, robomimic layout; atomic write).

    Args:
        path: output file; written atomically (:func:`posegen.atomic.atomic_path`), folders created.
        robot: a built-in name (``"panda"``, ``"ur5e"``, ``"iiwa14"``), a URDF/MJCF path or a Robot.
        n_demos: episodes (all are kept: the plans stay inside the limits by construction).
        seed: seed of every random choice; the same seed gives the same arrays.
        frames: nominal episode length; each episode has ``frames +- frames // 5`` frames (>= 10).
        verbose: print a one-line summary.
        ee_link: end-effector link when ``robot`` is a name or path (default: the robot's).
    Returns:
        dict with ``n_demos``, ``total_frames``, ``robot``, ``dof``, ``seconds``, ``path``.
    """
    if isinstance(n_demos, bool) or int(n_demos) != n_demos or n_demos < 1:
        raise ValueError(f"n_demos must be a positive integer, got {n_demos!r}")
    if isinstance(frames, bool) or int(frames) != frames or frames < 10:
        raise ValueError(f"frames must be an integer >= 10, got {frames!r}")
    n_demos, frames = int(n_demos), int(frames)
    t0 = time.perf_counter()
    source = os.fspath(robot) if isinstance(robot, (str, os.PathLike)) else repr(robot)
    if ee_link is not None and isinstance(robot, (str, os.PathLike)):
        robot = load(robot, ee_link=ee_link)
    robot = _robot(robot)
    box = _box(robot)
    home = _home(robot, box)
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # small batched FK: one thread is faster and keeps the arithmetic order fixed
    try:
        starts = _draw(rng, n_demos, home, PARAMS["start_std"], box)
        goals = _draw(rng, n_demos, home, PARAMS["goal_std"], box, accept=_reachable(robot))
        lengths = frames + rng.integers(-(frames // 5), frames // 5 + 1, size=n_demos)
        trajs = []
        for i in range(n_demos):
            T = int(lengths[i])
            n_move = max(2, T - max(1, round(PARAMS["hold_fraction"] * T)))
            s = np.ones(T)
            s[:n_move] = _min_jerk(np.arange(n_move) / (n_move - 1))
            # a convex combination of two points of the box: inside it (no clamping); s in [0, 1] exactly
            q = (1 - s)[:, None] * starts[i] + s[:, None] * goals[i]
            trajs.append(q)
        q_all = torch.from_numpy(np.concatenate(trajs))
        with torch.no_grad():
            pos_all, quat_all = robot.pose(q_all, "xyzw")
        pos_all, quat_all = pos_all.numpy(), quat_all.numpy()
    finally:
        torch.set_num_threads(threads)
    inside = robot.within_limits(q_all)
    if not bool(inside.all()):  # pragma: no cover - guaranteed by construction
        raise RuntimeError("internal error: a planned configuration left the joint limits")

    path = os.fspath(path)
    names, total, at = [], 0, 0
    with atomic_path(path, mkdir=True) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["quat_order"] = "xyzw"
        f.attrs["robot"] = robot.name
        f.attrs["ee_link"] = robot.ee_link
        f.attrs["joint_names"] = json.dumps(list(robot.joint_names))
        f.attrs["joint_limits"] = robot.joint_limits.numpy()
        data = f.create_group("data")
        for i, q in enumerate(trajs):
            T = len(q)
            name = f"demo_{i}"
            names.append(name)
            g = data.create_group(name)
            obs = g.create_group("obs")
            obs.create_dataset("robot0_joint_pos", data=q, **H5)
            obs.create_dataset("robot0_eef_pos", data=pos_all[at: at + T], **H5)
            obs.create_dataset("robot0_eef_quat", data=continuous_quat(quat_all[at: at + T]), **H5)
            actions = np.zeros_like(q)
            actions[:-1] = q[1:] - q[:-1]
            g.create_dataset("actions", data=actions, **H5)
            g.attrs["num_samples"] = T
            g.attrs["source_index"] = i
            at += T
            total += T
        data.attrs["total"] = total
        data.attrs["env_args"] = _env_args(robot, source, int(seed), n_demos, frames, home)
        write_masks(f, names, seed)
    stats = {"n_demos": n_demos, "total_frames": total, "robot": robot.name, "dof": int(robot.dof),
             "seconds": time.perf_counter() - t0, "path": path}
    if verbose:
        print(f"wrote {path}: {n_demos} reach episodes of {robot.name} ({robot.dof} joints), {total} frames, "
              f"{os.path.getsize(path) / 1e6:.2f} MB, {stats['seconds']:.1f} s")
    return stats
