"""``posegen grasps sample``: grasp poses of one object from a learned grasp model, in ACRONYM's HDF5 layout.

    posegen grasps sample --object mug.obj -n 64 --out mug_grasps.h5                  # the pretrained Panda model
    posegen grasps sample --object mug.obj --model grasps.pt -n 64 --rank --evaluate --out mug_grasps.h5
    posegen grasps sample --points view.npy -n 64 --out view_grasps.h5               # a point cloud, no mesh

The object is a mesh (``--object``, any file :func:`posegen.grasps.load_object` reads, times ``--scale``) or a
point cloud (``--points``: ``.npy`` of shape ``(P, 3)`` or a ``.ply`` of points, times ``--scale``); with both,
the cloud is what the model sees (a partial view, say) and the mesh is what the file names and ``--evaluate``
shakes. The written file (:func:`posegen.grasps.save_acronym`)::

    grasps/transforms                      (n, 4, 4) float64   gripper base frame in the object's frame
    grasps/qualities/posegen/log_prob      (n,) float64        the model's log-density (jaw-symmetric)
    grasps/qualities/mujoco/...            only with --evaluate: object_in_gripper (int64) and the motions
    object/file, object/scale              the mesh (or cloud) path relative to the file's folder; the scale
    object/{mass, com, ...}                with a watertight mesh (ACRONYM's density 150 kg/m^3)
    gripper/type, gripper/configuration    the model's gripper, fully open
    posegen/@provenance                    JSON: model, seed, settings, time

No physics label is written unless ``--evaluate`` ran the shake test: sampled grasps are candidates, not
successes. Every input (the object, the cloud, the model, ``-n``, ``--out``) is checked before any sampling,
and the file is written atomically: a failed run writes nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import __version__
from ..grasps import ShakeTest, get_gripper, load_object, object_properties, save_acronym, simulate
from ..grasps.objects import check_scale
from ..samplers import GraspSampler
from .common import UsageError, say
from .options import debug_flag, solver_flags

__all__ = ["add_arguments", "run", "read_points", "load_grasp_model", "LOG_PROB_KEY"]

#: where the model's log-densities go in the file
LOG_PROB_KEY = "grasps/qualities/posegen/log_prob"
POINT_SUFFIXES = (".npy", ".ply")
H5_SUFFIXES = (".h5", ".hdf5")


def add_arguments(q: argparse.ArgumentParser) -> None:
    """The flags of ``posegen grasps sample``."""
    q.add_argument("--object", metavar="MESH", help="the object's mesh (.obj .stl .ply .off .glb .gltf .urdf)")
    q.add_argument("--points", metavar="CLOUD", help="the object as a point cloud: .npy (P, 3) or .ply points; "
                   "with --object, the cloud is the model's input and the mesh is stored and shaken")
    q.add_argument("--scale", type=float, default=1.0, help="file units -> metres for the mesh and cloud (1)")
    q.add_argument("-n", type=int, default=64, help="grasps to sample (default 64)")
    q.add_argument("--out", required=True, metavar="FILE.h5", help="the grasp file to write (ACRONYM layout)")
    q.add_argument("--model", metavar="MODEL.pt", help="a GraspSampler file (posegen grasps train); default: the "
                   "pretrained Panda model shipped with posegen")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--rank", action="store_true", help="order the grasps by log-density, most probable first")
    q.add_argument("--best-of", type=int, default=1, metavar="K",
                   help="draw K n grasps and keep the n most probable, ranked (2: 88 %% of the shipped model's "
                   "grasps of unseen objects hold, against 73 %% of plain draws)")
    q.add_argument("--evaluate", action="store_true", help="label the grasps with the MuJoCo shake test "
                   "(needs --object) and store object_in_gripper")
    q.add_argument("--processes", type=int, default=1, help="shake-test worker processes (default 1)")
    q.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for torch")
    q.add_argument("--no-progress", action="store_true", help="no progress bar for --evaluate")
    solver_flags(q)
    debug_flag(q)


# ---------------------------------------------------------------------- inputs
def read_points(path, scale: float = 1.0) -> np.ndarray:
    """A point cloud file as ``(P, 3)`` float64 metres: ``.npy`` holding a ``(P, 3)`` array, or a ``.ply`` of points
    (vertices without faces), times ``scale``.

    Raises:
        FileNotFoundError: no such file. ValueError: another suffix, a mesh ``.ply``, another shape, no points,
        NaN or inf, a ``scale`` that is not a finite number > 0.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--points '{p}' does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    if p.suffix.lower() not in POINT_SUFFIXES:
        raise ValueError(f"--points '{p}': unknown suffix {p.suffix!r}; expected one of {list(POINT_SUFFIXES)}")
    check_scale(scale)
    if p.suffix.lower() == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"--points '{p}': not a numeric .npy array ({e})") from None
    else:
        a = _ply_points(p)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] < 1 or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"--points '{p}': expected a numeric (P, 3) array with P >= 1, got {a.dtype} {a.shape}")
    a = a.astype(np.float64) * float(scale)
    if not np.isfinite(a).all():
        raise ValueError(f"--points '{p}': {int((~np.isfinite(a)).any(1).sum())} points hold NaN or inf")
    return a


def _ply_points(p: Path) -> np.ndarray:
    import trimesh

    try:
        geom = trimesh.load(p, process=False)
    except Exception as e:  # noqa: BLE001 - trimesh raises many kinds; one clear message
        raise ValueError(f"--points '{p}': trimesh could not read it ({type(e).__name__}: {e})") from None
    if len(getattr(geom, "faces", ())) > 0:
        raise ValueError(f"--points '{p}' is a mesh ({len(geom.faces)} faces): pass it as --object, or a .ply of "
                         "points only as --points")
    return np.asarray(getattr(geom, "vertices", np.zeros((0, 3))))


def load_grasp_model(path: Optional[str]) -> GraspSampler:
    """The :class:`~posegen.samplers.GraspSampler` in ``path``, or the pretrained Panda model when None.

    Raises:
        FileNotFoundError: no such file. UsageError: a file that is not a grasp model (another posegen checkpoint,
        or not a checkpoint at all), or no ``path`` and no pretrained weights shipped.
    """
    if path is None:
        try:
            return GraspSampler.pretrained("panda")
        except ValueError as e:
            raise UsageError(f"no --model given and {e}; pass --model MODEL.pt (posegen grasps train writes one)") \
                from None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--model '{p}' does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        return GraspSampler.load(p)
    except ValueError as e:
        raise UsageError(f"--model '{p}' is not a grasp model (posegen grasps train writes one): {e}") from None


def _check_out(out: str) -> Path:
    p = Path(out)
    if p.suffix.lower() not in H5_SUFFIXES:
        raise UsageError(f"--out {out}: expected a file ending in {' or '.join(H5_SUFFIXES)}")
    if p.is_dir():
        raise UsageError(f"--out {out}: is a folder")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder '{p.parent}' does not exist")
    return p


def _check_args(args) -> None:
    if not (math.isfinite(args.scale) and args.scale > 0):
        raise UsageError(f"--scale must be a finite number > 0, got {args.scale}")
    if isinstance(args.n, bool) or args.n < 1:
        raise UsageError(f"-n must be >= 1, got {args.n}")
    if args.object is None and args.points is None:
        raise UsageError("give the object: --object MESH and/or --points CLOUD")
    if args.evaluate and args.object is None:
        raise UsageError("--evaluate shakes the object's mesh: give --object MESH (a point cloud cannot be simulated)")
    if args.processes < 1:
        raise UsageError(f"--processes must be >= 1, got {args.processes}")
    if args.best_of < 1:
        raise UsageError(f"--best-of must be >= 1, got {args.best_of}")
    if args.solver_steps is not None and args.solver_steps < 1:
        raise UsageError(f"--solver-steps must be >= 1, got {args.solver_steps}")


# ---------------------------------------------------------------------- output
# ---------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    """Run ``posegen grasps sample``; returns the exit code (0)."""
    _check_args(args)
    out = _check_out(args.out)
    mesh = load_object(args.object, args.scale) if args.object is not None else None
    cloud = read_points(args.points, args.scale) if args.points is not None else None
    model = load_grasp_model(args.model)
    gripper = get_gripper(model.gripper)
    condition = mesh if cloud is None else cloud
    t0 = time.perf_counter()
    T = model.sample(condition, args.n, seed=args.seed, best_of=args.best_of, method=args.method,
                     steps=args.solver_steps)
    lp = model.log_prob(condition, T, method=args.method, steps=args.solver_steps)
    if args.rank:
        order = torch.argsort(lp, descending=True)
        T, lp = T[order], lp[order]
    seconds = time.perf_counter() - t0
    labels = qualities = None
    test = ShakeTest()
    if args.evaluate:
        qualities = simulate(mesh, T, gripper, test=test, processes=args.processes, progress=not args.no_progress)
        labels = qualities.pop("object_in_gripper")
    source = Path(args.object if args.object is not None else args.points)
    prov = {"generator": "posegen grasps sample", "posegen": __version__,
            "model": str(args.model) if args.model else "pretrained panda", "model_training": model.training,
            "object": str(args.object) if args.object else None, "points": str(args.points) if args.points else None,
            "scale": args.scale, "n": args.n, "seed": args.seed, "rank": args.rank, "best_of": args.best_of, "method": args.method,
            "solver_steps": args.solver_steps, "seconds_sampling": round(seconds, 3),
            "shake_test": asdict(test) if args.evaluate else None}
    props = object_properties(mesh, test.density, test.friction) if mesh is not None else None
    save_acronym(out, T, labels, object_file=os.path.relpath(source.resolve(), out.parent.resolve()),
                 object_scale=args.scale, gripper=gripper.name, gripper_configuration=gripper.stroke / 2,
                 qualities=qualities, object_props=props, provenance=prov, scores={"posegen": {"log_prob": lp}})
    held = f", {int(labels.sum())} of {args.n} hold in the shake test" if labels is not None else ""
    say(f"{out}: {args.n} grasps of {source.name} in {seconds:.2f} s, best log p {float(lp.max()):.2f}{held}")
    return 0

