"""``posegen grasps``: grasp data and grasp models, in ACRONYM's HDF5 layout.

    posegen grasps generate --objects meshes/ --per-object 200 --out grasps/     # labelled antipodal grasps
    posegen grasps train --data grasps/ --out grasps.pt --max-minutes 30         # a GraspSampler (grasps_train)
    posegen grasps sample --object mug.obj -n 64 --out mug_grasps.h5             # its grasps (grasps_sample)

This module holds ``generate`` (antipodal grasps with MuJoCo shake-test labels) and the ``grasps`` parser;
``sample`` and ``train`` live in :mod:`.grasps_sample` and :mod:`.grasps_train`.

``generate``: one object and ``--out FILE.h5`` writes that file; several objects (files or folders, see
:func:`posegen.grasps.find_objects`) need ``--out`` to be a folder, which gets one ``<object name>.h5`` per
object, as ACRONYM ships one file per object. ``object/file`` holds the mesh path relative to the output
file's folder (the mesh root, in ACRONYM's terms). Every input is checked before any grasp is sampled; an
object for which no candidate exists is skipped with a note (an error when it is the only one).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..grasps import (ShakeTest, find_objects, get_gripper, load_object, object_properties, sample_antipodal,
                      save_acronym, simulate)
from . import grasps_sample, grasps_train
from .common import UsageError, note, say
from .options import Parser, debug_flag

__all__ = ["add_parser", "run", "run_generate", "ACTIONS"]


def add_parser(subparsers) -> None:
    """Register ``grasps`` and its actions ``generate``, ``sample``, ``train`` on the ``posegen`` subparsers."""
    p = subparsers.add_parser("grasps", help="grasp data (ACRONYM files) and grasp models: generate, train, sample",
                              description="Grasp data from object geometry for parallel-jaw grippers, and "
                              "object-conditioned grasp models (GraspSampler).")
    gsub = p.add_subparsers(dest="grasps_command", metavar="ACTION", parser_class=Parser)
    gsub.required = True
    q = gsub.add_parser("generate", help="sample antipodal grasps of meshes and label them in MuJoCo",
                        description="Sample collision-free antipodal grasps of each object, label them with a "
                        "MuJoCo shake test and write ACRONYM-layout HDF5 files.")
    q.add_argument("--objects", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="mesh files (.obj .stl .ply .off .glb .gltf), single-object URDFs, or folders of them")
    q.add_argument("--per-object", type=int, required=True, metavar="N", help="grasps per object")
    q.add_argument("--out", required=True, metavar="FILE.h5|DIR",
                   help="output file (one object) or folder (one <name>.h5 per object)")
    q.add_argument("--scale", type=float, default=1.0, help="mesh units -> metres for every object (default 1)")
    q.add_argument("--gripper", default="panda", help="gripper (default panda)")
    q.add_argument("--friction", type=float, default=0.5, help="friction coefficient of the antipodal test (0.5)")
    q.add_argument("--support-plane", action="store_true",
                   help="reject grasps below the plane z = min z of each object (it rests on a table)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--processes", type=int, default=1, help="physics worker processes (default 1)")
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    debug_flag(q)
    grasps_sample.add_arguments(gsub.add_parser(
        "sample", help="sample grasps of an object (mesh or point cloud) from a grasp model",
        description="Sample grasp poses of one object from a GraspSampler (default: the pretrained Panda model), "
        "score them by log-density and write an ACRONYM-layout file."))
    grasps_train.add_arguments(gsub.add_parser(
        "train", help="train a grasp model on ACRONYM-layout grasp files",
        description="Train a GraspSampler on the successful grasps of ACRONYM-layout files (posegen grasps "
        "generate writes them) and write the model."))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``posegen grasps ACTION`` (``args.grasps_command``; ``generate`` when absent, for scripts that build
    the namespace themselves); returns the exit code."""
    return ACTIONS[getattr(args, "grasps_command", "generate")](args)


def _outputs(args, files):
    out = Path(args.out)
    if len(files) == 1 and out.suffix.lower() in (".h5", ".hdf5"):
        if not out.parent.is_dir():
            raise FileNotFoundError(f"--out {args.out}: folder '{out.parent}' does not exist")
        return [out]
    if out.suffix.lower() in (".h5", ".hdf5"):
        raise UsageError(f"--out {args.out}: {len(files)} objects need an output folder (one .h5 per object), "
                         "not a file")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    names = [f.stem for f in files]
    dup = sorted({n for n in names if names.count(n) > 1})
    stems = [f"{n}" if n not in dup else f"{f.parent.name}_{n}" for f, n in zip(files, names)]
    return [out / f"{s}.h5" for s in stems]


def _check_args(args) -> None:
    if args.per_object < 1:
        raise UsageError(f"--per-object must be >= 1, got {args.per_object}")
    if args.processes < 1:
        raise UsageError(f"--processes must be >= 1, got {args.processes}")
    if not args.friction > 0:
        raise UsageError(f"--friction must be > 0, got {args.friction}")


def run_generate(args: argparse.Namespace) -> int:
    """Run ``posegen grasps generate``; returns the exit code (0)."""
    _check_args(args)
    gripper = get_gripper(args.gripper)
    files = find_objects(args.objects)
    outs = _outputs(args, files)
    objects = [load_object(f, args.scale) for f in files]  # every file is read before any work
    test = ShakeTest()
    if len(files) > 1:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    written = 0
    for i, (obj, path, out) in enumerate(zip(objects, files, outs)):
        t0 = time.perf_counter()
        support = ((0.0, 0.0, float(obj.bounds[0, 2])), (0.0, 0.0, 1.0)) if args.support_plane else None
        try:
            cand = sample_antipodal(obj, args.per_object, gripper, friction=args.friction, support=support,
                                    seed=args.seed + i)
        except ValueError as e:
            if len(objects) == 1:
                raise
            note(f"skipped {path}: {e}")
            continue
        q = simulate(obj, cand.transforms, gripper, test=test, processes=args.processes,
                     progress=not args.no_progress)
        seconds = time.perf_counter() - t0
        prov = {"generator": "posegen grasps generate", "posegen": __version__, "object": str(path),
                "scale": obj.scale, "seed": args.seed + i, "per_object": args.per_object,
                "friction_antipodal": args.friction, "support_plane": args.support_plane,
                "gripper": gripper.name, "gripper_geometry": gripper.meta, "shake_test": asdict(test),
                "convex_parts": len(obj.convex_parts()), "seconds": round(seconds, 3)}
        success = q.pop("object_in_gripper")
        save_acronym(out, cand.transforms, success, object_file=os.path.relpath(path, out.parent),
                     object_scale=obj.scale, qualities=q, sim="mujoco", gripper=gripper.name,
                     gripper_configuration=gripper.stroke / 2,
                     object_props=object_properties(obj, test.density, test.friction), provenance=prov)
        written += 1
        say(f"{out}: {len(cand)} grasps of {obj.name}, {int(success.sum())} hold ({success.float().mean():.1%}), "
            f"{seconds:.1f} s")
    if written == 0:
        raise ValueError(f"no grasp file written: none of the {len(objects)} objects has a grasp candidate")
    return 0


#: ``posegen grasps`` actions -> their ``run(args)``
ACTIONS = {"generate": run_generate, "sample": grasps_sample.run, "train": grasps_train.run}
