"""Make the grasp data, train and export the grasp model shipped with posegen (``GraspSampler.pretrained``).

    # 1. objects and physics-labelled grasps (resumable: objects whose file exists are skipped)
    OMP_NUM_THREADS=1 python benchmarks/grasp_pretrained.py data
    # 2. train on the successful grasps of the training objects labelled so far (resumable from the run's
    #    checkpoint; the set is fixed for the run in RUN/train_objects.txt when it starts)
    OMP_NUM_THREADS=1 python benchmarks/grasp_pretrained.py train
    # 3. the EMA weights of the last checkpoint into posegen/samplers/weights/grasp_panda.pt
    python benchmarks/grasp_pretrained.py export

The run folder (``--run``) defaults to ``benchmarks/checkpoints/grasp_panda``: its labelled grasp files and
training checkpoint are committed between sessions (the object meshes are not: they regenerate from the seed).

Settings in ``configs/pretrained/grasps.yaml``. The object set is regenerated from its seed
(:func:`posegen.grasps.make_objects`, written as OBJ files under ``RUN/objects``); each object's grasps go
to ``RUN/grasps/<name>.h5`` in ACRONYM's layout (:func:`posegen.grasps.save_acronym`), the same files
``posegen grasps generate`` writes. Training is posegen's one loop (:meth:`GraspSampler.fit`, per-step
seeds: a resumed run equals an uninterrupted one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posegen.atomic import atomic_open  # noqa: E402
from posegen.checkpoint import load_checkpoint  # noqa: E402
from posegen.samplers import GraspSampler  # noqa: E402
from posegen.samplers.shipped import weights_path  # noqa: E402

CONFIG = ROOT / "configs" / "pretrained" / "grasps.yaml"


def settings(config=CONFIG) -> dict:
    return yaml.safe_load(Path(config).read_text())


def object_files(run: Path, s: dict):
    """The object set as OBJ files (written once from the seed) and the names of the training objects."""
    from posegen.grasps import write_objects

    folder = run / "objects"
    files = list(folder.glob("*.obj"))
    if len(files) != s["objects"]:
        files = [f for f in write_objects(folder, n=s["objects"], seed=s["object_seed"]) if f.suffix == ".obj"]
    # in generation order (names end in the object's index; kinds cycle), so the held-out tail mixes every kind
    files.sort(key=lambda f: int(f.stem.rsplit("_", 1)[1]))
    return files[: len(files) - s["held_out"]], files[len(files) - s["held_out"]:]


def cmd_data(args) -> None:
    from posegen.cli.grasps import run as generate

    torch.set_num_threads(1)
    s = settings(args.config)
    run = Path(args.run)
    train, held = object_files(run, s)
    out = run / "grasps"
    out.mkdir(parents=True, exist_ok=True)
    # the held-out objects first: the evaluation needs every one of them, training only needs many
    todo = [f for f in held + train if not (out / f"{f.stem}.h5").exists()]
    print(f"{len(train) + len(held) - len(todo)} objects labelled, {len(todo)} to go", flush=True)
    for f in todo:   # one object per call: an interrupted run loses at most the object in hand
        t0 = time.perf_counter()
        generate(argparse.Namespace(objects=[str(f)], per_object=s["per_object"], out=str(out / f"{f.stem}.h5"),
                                    gripper="panda", scale=1.0, friction=0.5, support_plane=False, seed=0,
                                    processes=s["processes"], no_progress=True))
        print(f"{f.stem}: {time.perf_counter() - t0:.1f} s", flush=True)


def training_set(run: Path, s: dict):
    """The training objects and their successful grasps. The run's object list (``RUN/train_objects.txt``,
    written when training starts: the training objects labelled by then) fixes the set for the whole run, so a
    resumed run trains on what it started with while labelling goes on. Read as ``posegen grasps train`` reads
    its files (objects without a successful grasp left out)."""
    from posegen.cli.grasps_train import read_training_set

    train, _ = object_files(run, s)
    listed = run / "train_objects.txt"
    if listed.exists():
        names = set(listed.read_text().split())
        train = [f for f in train if f.stem in names]
        missing = names - {f.stem for f in train}
        if missing:
            raise ValueError(f"{listed} names objects that are not training objects here: {sorted(missing)[:5]}")
    else:
        train = [f for f in train if (run / "grasps" / f"{f.stem}.h5").exists()]
    files = [run / "grasps" / f"{f.stem}.h5" for f in train]
    objects, grasps, summary = read_training_set(files)
    skipped = set(summary["skipped"])
    return objects, grasps, [p.stem for p in files if str(p) not in skipped]


def cmd_train(args) -> None:
    torch.set_num_threads(1)
    s = settings(args.config)
    run = Path(args.run)
    objects, grasps, names = training_set(run, s)
    listed = run / "train_objects.txt"
    if not listed.exists():
        with atomic_open(listed) as fh:
            fh.write("\n".join(names) + "\n")
    print(f"training on {len(objects)} objects, {sum(len(g) for g in grasps)} successful grasps", flush=True)
    torch.manual_seed(s["train"]["seed"])
    gs = GraspSampler(**s["model"])
    t = s["train"]
    gs.fit(objects, grasps, steps=t["steps"], max_minutes=t.get("max_minutes"), batch_size=t["batch_size"],
           lr=t["lr"], warmup=t["warmup"], grasps_per_cloud=t.get("grasps_per_cloud", 8), seed=t["seed"], out_dir=Path(args.run) / "train", resume=True, checkpoint_every=t["checkpoint_every"],
           log_every=500, verbose=args.verbose)


def cmd_export(args) -> None:
    s = settings(args.config)
    ck = load_checkpoint(Path(args.run) / "train" / "ckpt.pt", map_location="cpu", kind="training")
    gs = GraspSampler(**s["model"])
    gs.flow.load_state_dict(ck["ema"]["shadow"])
    gs.flow.eval()
    names = (Path(args.run) / "train_objects.txt").read_text().split()
    gs.training = {"objects": len(names), "object_names": names, "steps": int(ck["step"]), "of_steps": int(s["train"]["steps"]), "seconds": float(ck["elapsed_s"]),
                   "config": str(CONFIG.relative_to(ROOT)), "script": "benchmarks/grasp_pretrained.py"}
    path = gs.save(Path(args.out) if args.out else weights_path("grasp", "panda"))
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB): step {ck['step']} of {s['train']['steps']}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("data", "train", "export"):
        q = sub.add_parser(name)
        q.add_argument("--run", default=str(ROOT / "benchmarks" / "checkpoints" / "grasp_panda"))
        q.add_argument("--config", default=str(CONFIG))
        if name == "train":
            q.add_argument("--verbose", action="store_true")
        if name == "export":
            q.add_argument("--out", default=None)
    args = p.parse_args(argv)
    {"data": cmd_data, "train": cmd_train, "export": cmd_export}[args.cmd](args)


if __name__ == "__main__":
    main()
