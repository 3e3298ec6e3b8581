"""``posegen grasps train``: a :class:`~posegen.samplers.GraspSampler` from grasp files in ACRONYM's layout.

    posegen grasps generate --objects meshes/ --per-object 200 --out grasps/
    posegen grasps train --data grasps/ --out grasps.pt --max-minutes 30
    posegen grasps train --data grasps/ --out grasps.pt --max-minutes 30 --resume     # continue the same run

Each file (:func:`posegen.grasps.load_acronym`; folders give their ``*.h5`` files) contributes its object (the
mesh ``object/file`` relative to the file's folder, or to ``--mesh-root``, at ``object/scale``) and its
successful grasps (``object_in_gripper`` of ``--sim``, default ACRONYM's ``flex`` when present, else the file's
only simulator). Training is :meth:`GraspSampler.fit`, posegen's one loop, with its checkpoints in the run
folder (``--run-dir``, default ``<out stem>_run`` beside ``--out``; ``--resume`` continues it and equals an
uninterrupted run; Ctrl-C leaves a checkpoint there to resume from); the model is written atomically to
``--out`` at the end. Every file and mesh is read before training starts; a file without successful grasps is
skipped with a note, and none at all is an error.

The run folder holds the trainer's ``ckpt.pt`` (what ``--resume`` reads), ``metrics.jsonl``, its bare flow
``model.pt``, and ``grasp_model.json`` (the network flags, checked on ``--resume``); the grasp model to sample
from is ``--out`` (:meth:`GraspSampler.load`, ``posegen grasps sample --model``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from ..atomic import atomic_open
from ..grasps import load_acronym
from ..grasps.checks import check_transforms
from ..objectives import OBJECTIVES
from ..samplers import GraspSampler
from .common import UsageError, note, say
from .options import debug_flag

__all__ = ["add_arguments", "run", "find_grasp_files", "read_training_set", "MODEL_KEYS"]

H5_SUFFIXES = (".h5", ".hdf5")
#: GraspSampler keyword <- flag (``args`` attribute): the network a run folder records, so that --resume rebuilds it
MODEL_KEYS = {"points": "cloud_points", "hidden": "hidden", "depth": "depth", "encoder_dim": "encoder_dim",
              "encoder_hidden": "encoder_hidden", "length_scale": "length_scale"}
#: integer flags and their smallest value
MINIMUM = {"steps": 1, "batch_size": 1, "checkpoint_every": 0, "cloud_points": 8, "hidden": 1, "depth": 1,
           "encoder_dim": 1, "encoder_hidden": 1}
SETTINGS = "grasp_model.json"


def add_arguments(q: argparse.ArgumentParser) -> None:
    """The flags of ``posegen grasps train``."""
    q.add_argument("--data", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="ACRONYM-layout grasp files (.h5), or folders of them")
    q.add_argument("--out", required=True, metavar="MODEL.pt", help="the grasp model to write")
    q.add_argument("--run-dir", metavar="DIR", help="run folder for checkpoints and metrics (default: <out stem>_run "
                   "beside --out)")
    q.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    q.add_argument("--mesh-root", metavar="DIR", help="folder the files' object/file paths are relative to "
                   "(default: each file's own folder)")
    q.add_argument("--sim", help="whose object_in_gripper labels to learn from (default: flex if present, else the "
                   "file's only simulator)")
    q.add_argument("--steps", type=int, default=None, help="optimiser steps (default 2000 without --max-minutes)")
    q.add_argument("--max-minutes", type=float, default=None, help="training time budget in minutes")
    q.add_argument("--batch-size", type=int, default=256, help="grasps per step (default 256)")
    q.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    q.add_argument("--objective", default="rfm", help=f"training objective: {', '.join(sorted(OBJECTIVES))} "
                   "(default rfm)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default 500)")
    q.add_argument("--cloud-points", type=int, default=512, help="points per object cloud (default 512)")
    q.add_argument("--hidden", type=int, default=256, help="velocity network width (default 256)")
    q.add_argument("--depth", type=int, default=4, help="velocity network depth (default 4)")
    q.add_argument("--encoder-dim", type=int, default=64, help="PointNet feature width (default 64)")
    q.add_argument("--encoder-hidden", type=int, default=128, help="PointNet hidden width (default 128)")
    q.add_argument("--length-scale", type=float, default=0.05, help="PointNet unit of length in m (default 0.05)")
    q.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for torch")
    q.add_argument("--verbose", action="store_true", help="show the training progress")
    debug_flag(q)


# ---------------------------------------------------------------------- inputs
def find_grasp_files(paths: Sequence) -> List[Path]:
    """Grasp files from files and folders, in order: a file is taken as is; a folder gives its ``*.h5`` and
    ``*.hdf5`` files anywhere below it, sorted.

    Raises:
        FileNotFoundError: a path that does not exist. ValueError: a folder without grasp files, no paths.
    """
    out: List[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in H5_SUFFIXES)
            if not found:
                raise ValueError(f"--data folder '{p}' holds no grasp files ({', '.join(H5_SUFFIXES)})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"--data '{p}' does not exist")
    if not out:
        raise ValueError("--data: no grasp files given")
    return out


def read_training_set(files: Sequence[Path], mesh_root=None, sim: Optional[str] = None) -> Tuple[list, list, dict]:
    """The objects and their successful grasps ``(n_k, 4, 4)`` from ACRONYM files, and a summary.

    Every file and mesh is read before this returns; a file whose grasps all failed is skipped with a note.

    Raises:
        ValueError: a file that is not an ACRONYM grasp file, a ``sim`` it lacks, an unreadable mesh, or no
        successful grasp in any file. FileNotFoundError: a missing mesh.
    """
    objects, grasps, skipped, total = [], [], [], 0
    for f in files:
        g = load_acronym(f, sim=sim)
        if g.success is None:   # grasps sampled by a model and never shaken
            raise ValueError(f"'{f}' has no physics labels (object_in_gripper): label its grasps first "
                             "(posegen grasps sample --evaluate, or posegen grasps generate)")
        total += len(g)
        ok = torch.from_numpy(check_transforms(g.transforms[g.success], f"'{f}' grasps/transforms"))
        if len(ok) == 0:
            skipped.append(str(f))
            continue
        objects.append(g.load_object(mesh_root))
        grasps.append(ok)
    if not objects:
        raise ValueError(f"no successful grasp in the {len(files)} file(s) of --data: nothing to learn from")
    if skipped:
        note(f"skipped {len(skipped)} file(s) without successful grasps: {', '.join(skipped[:3])}"
             + (" ..." if len(skipped) > 3 else ""))
    summary = {"files": [str(f) for f in files], "objects": len(objects), "grasps_read": total,
               "grasps_successful": int(sum(len(g) for g in grasps)), "skipped": skipped, "sim": sim}
    return objects, grasps, summary


def _check_args(args) -> Tuple[Path, Path]:
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {args.out}: is a folder; give a model file (.pt)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {args.out}: folder '{out.parent}' does not exist")
    for name, least in MINIMUM.items():
        v = getattr(args, name)
        if v is not None and v < least:
            raise UsageError(f"--{name.replace('_', '-')} must be >= {least}, got {v}")
    for name in ("max_minutes", "lr", "length_scale"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {v}")
    if args.objective not in OBJECTIVES:
        raise UsageError(f'--objective "{args.objective}": must be one of {sorted(OBJECTIVES)}')
    run_dir = Path(args.run_dir) if args.run_dir else out.parent / f"{out.stem}_run"
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir {run_dir}: exists and is not a folder")
    if (run_dir / "ckpt.pt").exists() and not args.resume:
        raise UsageError(f"run folder '{run_dir}' holds a checkpoint: pass --resume to continue it, or choose "
                         "another --run-dir")
    return out, run_dir


def _model_settings(args, run_dir: Path) -> dict:
    """The network settings of this command line; with --resume, checked against those the run recorded."""
    mine = {key: getattr(args, flag) for key, flag in MODEL_KEYS.items()}
    path = run_dir / SETTINGS
    if args.resume and path.is_file():
        saved = json.loads(path.read_text())
        diff = [(MODEL_KEYS[k].replace("_", "-"), saved.get(k), v) for k, v in mine.items() if saved.get(k) != v]
        if diff:
            raise UsageError(f"cannot resume '{run_dir}': its network was built with "
                             + ", ".join(f"--{flag} {a}" for flag, a, _ in diff) + "; this command line asks for "
                             + ", ".join(f"--{flag} {b}" for flag, _, b in diff))
    return mine


# ---------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    """Run ``posegen grasps train``; returns the exit code (0)."""
    out, run_dir = _check_args(args)
    settings = _model_settings(args, run_dir)
    objects, grasps, summary = read_training_set(find_grasp_files(args.data), args.mesh_root, args.sim)
    if args.resume and not (run_dir / "ckpt.pt").exists():
        note(f"--resume: '{run_dir}' holds no checkpoint yet; starting a new run")
    steps = 2000 if args.steps is None and args.max_minutes is None else args.steps
    say(f"training on {summary['objects']} objects, {summary['grasps_successful']} successful grasps "
        f"(of {summary['grasps_read']}); run folder {run_dir}")
    gs = GraspSampler(**settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(run_dir / SETTINGS, "w") as fh:
        json.dump(settings, fh, indent=1)
    gs.fit(objects, grasps, steps=steps, max_minutes=args.max_minutes, batch_size=args.batch_size, lr=args.lr,
           objective=args.objective, seed=args.seed, out_dir=run_dir, resume=args.resume,
           checkpoint_every=args.checkpoint_every, warmup=200 if steps is None else min(200, steps // 5),
           verbose=args.verbose)
    gs.training.update(data=summary, command="posegen grasps train", run=str(run_dir))
    gs.save(out)
    t = gs.training
    say(f"{out}: {t['steps']} steps in {t['seconds']:.1f} s ({args.objective}), {summary['objects']} objects")
    return 0
