"""``posegen grasps generate | train | sample`` through the command line (posegen.cli.main) and their modules.

The grasp model here is trained by the tests themselves (``grasps train`` on two tiny ACRONYM files of boxes whose
labels are known by construction), never the shipped weights.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("mujoco")
pytest.importorskip("scipy")

from posegen.cli import grasps as cli  # noqa: E402
from posegen.cli.common import UsageError  # noqa: E402
from posegen.cli.grasps_sample import LOG_PROB_KEY, read_points  # noqa: E402
from posegen.cli.main import main  # noqa: E402
from posegen.grasps import PANDA, evaluate, load_acronym, load_object, save_acronym  # noqa: E402
from posegen.samplers import GraspSampler, shipped  # noqa: E402

TCP = 0.1034          # the Panda's grasp frame -> TCP distance along z (posegen.grasps.gripper)
SIZES = {"cube": (0.05, 0.05, 0.05), "tall": (0.05, 0.05, 0.16)}
TINY = ["--cloud-points", "64", "--hidden", "64", "--depth", "2", "--encoder-dim", "16", "--encoder-hidden", "32"]


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["grasps", *argv])
    assert args.run is cli.run  # what posegen's main dispatches to
    return args


def _generate_args(*argv):
    return _args("generate", *argv, "--no-progress")


def _top_grasps(height: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Top-down grasps of a box of ``height`` centred at the origin: z (approach) straight down, yaw a multiple of
    pi/2, the TCP within 1 cm of the top face's centre: ``(n, 4, 4)`` in ACRONYM's gripper frame."""
    T = np.tile(np.eye(4), (n, 1, 1))
    for i, yaw in enumerate(rng.integers(4, size=n) * math.pi / 2):
        c, s = math.cos(yaw), math.sin(yaw)
        T[i, :3, :3] = np.diag([1.0, -1.0, -1.0]) @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    T[:, :2, 3] = rng.uniform(-0.005, 0.005, (n, 2))
    T[:, 2, 3] = height / 2 + TCP
    return T


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two box meshes and one ACRONYM file each: 48 top grasps labelled 1, and 16 labelled 0 that sit 0.3 m off
    to the side (a model that learned from the failures would put samples there)."""
    root = tmp_path_factory.mktemp("grasp_data")
    rng = np.random.default_rng(0)
    for name, size in SIZES.items():
        trimesh.creation.box(size).export(root / f"{name}.obj")
        good = _top_grasps(size[2], 48, rng)
        bad = _top_grasps(size[2], 16, rng)
        bad[:, 0, 3] += 0.3
        save_acronym(root / f"{name}.h5", np.concatenate([good, bad]), np.r_[np.ones(48), np.zeros(16)],
                     object_file=f"{name}.obj", sim="mujoco")
    return root


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("grasp_model") / "tiny.pt"
    code = main(["grasps", "train", "--data", str(data), "--out", str(out), "--steps", "250", "--batch-size", "128",
                 "--lr", "3e-3", "--threads", "1", *TINY])
    assert code == 0
    return out


# ---------------------------------------------------------------------- generate
@pytest.fixture
def meshes(tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.box((0.03, 0.05, 0.08)).export(folder / "box.obj")
    trimesh.creation.cylinder(0.02, 0.1, sections=32).export(folder / "can.stl")
    return folder
def test_one_object_one_file(meshes, tmp_path):
    out = tmp_path / "box.h5"
    assert cli.run(_generate_args("--objects", str(meshes / "box.obj"), "--per-object", "12", "--out", str(out))) == 0
    a = load_acronym(out)
    assert len(a) == 12 and a.sim == "mujoco" and a.gripper_type == "panda"
    assert a.gripper_configuration.tolist() == [PANDA.stroke / 2]
    assert (tmp_path / a.object_file).resolve() == (meshes / "box.obj").resolve()  # relative to the file
    assert a.provenance["per_object"] == 12 and a.provenance["gripper"] == "panda"
    assert a.object["mass"] == pytest.approx(0.03 * 0.05 * 0.08 * 150.0)
    assert a.success.float().mean() > 0.8  # antipodal grasps of a small box: nearly all hold
    obj = a.load_object()  # the mesh path is stored relative to the grasp file's folder
    assert np.allclose(obj.bounds, load_object(meshes / "box.obj").bounds)
    assert np.allclose(a.transforms[:, 3].numpy(), [0, 0, 0, 1]) and obj.is_watertight


def test_folder_of_objects_gives_one_file_each(meshes, tmp_path):
    out = tmp_path / "grasps"
    cli.run(_generate_args("--objects", str(meshes), "--per-object", "5", "--out", str(out), "--support-plane"))
    assert sorted(p.name for p in out.iterdir()) == ["box.h5", "can.h5"]
    assert len(load_acronym(out / "can.h5")) == 5


def test_generate_runs_from_a_namespace_without_an_action(meshes, tmp_path):
    """Scripts (benchmarks/grasp_pretrained.py) call ``run`` with a namespace of generate's flags only."""
    out = tmp_path / "box.h5"
    ns = argparse.Namespace(objects=[str(meshes / "box.obj")], per_object=3, out=str(out), gripper="panda", scale=1.0,
                            friction=0.5, support_plane=False, seed=0, processes=1, no_progress=True)
    assert cli.run(ns) == 0 and len(load_acronym(out)) == 3


def test_bad_command_lines_write_nothing(meshes, tmp_path):
    out = tmp_path / "x.h5"
    with pytest.raises(UsageError, match="need an output folder"):
        cli.run(_generate_args("--objects", str(meshes), "--per-object", "5", "--out", str(out)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli.run(_generate_args("--objects", str(meshes / "nope.obj"), "--per-object", "5", "--out", str(out)))
    with pytest.raises(UsageError, match="--per-object must be >= 1"):
        cli.run(_generate_args("--objects", str(meshes), "--per-object", "0", "--out", str(out)))
    with pytest.raises(ValueError, match="scale must be"):
        cli.run(_generate_args("--objects", str(meshes / "box.obj"), "--per-object", "5", "--out", str(out),
                               "--scale", "0"))
    big = tmp_path / "ball.obj"
    trimesh.creation.icosphere(2, 0.06).export(big)
    with pytest.raises(ValueError, match="no antipodal contact pair"):
        cli.run(_generate_args("--objects", str(big), "--per-object", "5", "--out", str(out)))
    assert not out.exists()


# ---------------------------------------------------------------------- sample
def _sample(*argv):
    return main(["grasps", "sample", *argv, "--threads", "1", "--no-progress"])


def _read(path):
    with h5py.File(path, "r") as f:
        arrays = {}
        f.visititems(lambda k, d: arrays.__setitem__(k, d[()]) if isinstance(d, h5py.Dataset) else None)
        return arrays, json.loads(f["posegen"].attrs["provenance"])


def test_sample_writes_the_model_draws_and_their_log_densities(data, model, tmp_path):
    out = tmp_path / "tall_grasps.h5"
    assert _sample("--object", str(data / "tall.obj"), "--model", str(model), "-n", "24", "--seed", "3",
                   "--out", str(out)) == 0
    arrays, prov = _read(out)
    gs, obj = GraspSampler.load(model), load_object(data / "tall.obj")
    T = gs.sample(obj, 24, seed=3)                             # the same draw, outside the command line
    np.testing.assert_allclose(arrays["grasps/transforms"], T.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(arrays[LOG_PROB_KEY], gs.log_prob(obj, T).numpy(), rtol=0, atol=1e-9)
    assert not any(k.endswith("object_in_gripper") for k in arrays), "sampled grasps carry no physics label"
    assert (tmp_path / arrays["object/file"].decode()).resolve() == (data / "tall.obj").resolve()
    assert arrays["object/scale"] == 1.0 and arrays["gripper/type"].decode() == "panda"
    assert arrays["gripper/configuration"].tolist() == [PANDA.stroke / 2]
    assert arrays["object/mass"] == pytest.approx(0.05 * 0.05 * 0.16 * 150.0)
    assert prov["generator"] == "posegen grasps sample" and prov["n"] == 24 and prov["model"] == str(model)
    # the model learned the successful top grasps only (the failures are 0.3 m to the side)
    z = np.median(arrays["grasps/transforms"][:, 2, 3])
    assert abs(z - (0.16 / 2 + TCP)) < 0.02 and np.abs(arrays["grasps/transforms"][:, 0, 3]).max() < 0.1


def test_sample_round_trip_through_load_acronym(data, model, tmp_path):
    out = tmp_path / "cube_grasps.h5"
    _sample("--object", str(data / "cube.obj"), "--model", str(model), "-n", "8", "--out", str(out))
    a = load_acronym(out)
    arrays, _ = _read(out)
    np.testing.assert_array_equal(a.transforms.numpy(), arrays["grasps/transforms"])
    np.testing.assert_array_equal(a.qualities["posegen"]["log_prob"].numpy(), arrays[LOG_PROB_KEY])
    assert a.success is None and a.load_object().name == "cube"
    _sample("--object", str(data / "cube.obj"), "--model", str(model), "-n", "4", "--evaluate", "--out", str(out))
    a = load_acronym(out)                     # labelled by the shake test: success is MuJoCo's object_in_gripper
    assert a.sim == "mujoco" and a.success.shape == (4,) and a.qualities["posegen"]["log_prob"].shape == (4,)


def test_rank_orders_the_same_grasps_by_log_density(data, model, tmp_path):
    plain, ranked = tmp_path / "plain.h5", tmp_path / "ranked.h5"
    common = ["--object", str(data / "cube.obj"), "--model", str(model), "-n", "16", "--seed", "1"]
    _sample(*common, "--out", str(plain))
    _sample(*common, "--rank", "--out", str(ranked))
    (a, _), (b, _) = _read(plain), _read(ranked)
    lp = b[LOG_PROB_KEY]
    assert (np.diff(lp) <= 0).all() and lp[0] == a[LOG_PROB_KEY].max()
    order = np.argsort(-a[LOG_PROB_KEY], kind="stable")
    np.testing.assert_array_equal(b["grasps/transforms"], a["grasps/transforms"][order])
    best = tmp_path / "best.h5"     # the 8 most probable of the same 16 draws
    _sample(*[x if x != "16" else "8" for x in common], "--best-of", "2", "--out", str(best))
    c, _ = _read(best)
    np.testing.assert_array_equal(c["grasps/transforms"], b["grasps/transforms"][:8])


def test_point_cloud_objects(data, model, tmp_path):
    """A cloud (.npy or .ply points, in millimetres with --scale 0.001) conditions the model as the array does;
    with --object too, the file names the mesh."""
    gs = GraspSampler.load(model)
    cloud = load_object(data / "tall.obj").surface_points(300, seed=0)           # (300, 3) metres
    np.save(tmp_path / "cloud.npy", cloud * 1000.0)
    trimesh.PointCloud(cloud * 1000.0).export(tmp_path / "cloud.ply")
    np.testing.assert_allclose(read_points(tmp_path / "cloud.ply", 0.001), cloud, rtol=0, atol=1e-8)  # PLY: float32
    want = gs.sample(torch.as_tensor(cloud), 8, seed=0)
    for name in ("cloud.npy", "cloud.ply"):
        out = tmp_path / f"{name}.h5"
        _sample("--points", str(tmp_path / name), "--scale", "0.001", "--model", str(model), "-n", "8",
                "--out", str(out))
        arrays, prov = _read(out)
        np.testing.assert_allclose(arrays["grasps/transforms"], want.numpy(), rtol=0, atol=1e-6)
        assert arrays["object/file"].decode() == name and prov["points"] == str(tmp_path / name)
    np.save(tmp_path / "cloud_m.npy", cloud)                 # --scale applies to both: the same units here
    out = tmp_path / "both.h5"
    _sample("--object", str(data / "tall.obj"), "--points", str(tmp_path / "cloud_m.npy"), "--model", str(model),
            "-n", "8", "--out", str(out))
    arrays, _ = _read(out)
    np.testing.assert_allclose(arrays["grasps/transforms"], want.numpy(), rtol=0, atol=1e-12)   # the cloud decides
    assert (tmp_path / arrays["object/file"].decode()).resolve() == (data / "tall.obj").resolve()
    assert arrays["object/mass"] == pytest.approx(0.05 * 0.05 * 0.16 * 150.0)                   # the mesh is stored


def test_evaluate_stores_shake_test_labels_beside_the_log_densities(data, model, tmp_path):
    out = tmp_path / "shaken.h5"
    assert _sample("--object", str(data / "cube.obj"), "--model", str(model), "-n", "6", "--evaluate", "--rank",
                   "--out", str(out)) == 0
    arrays, prov = _read(out)
    labels = arrays["grasps/qualities/mujoco/object_in_gripper"]
    assert labels.dtype == np.int64 and labels.shape == (6,)
    # each label belongs to the transform in its row (ranking reorders both): shake the stored transforms again
    again = evaluate(load_object(data / "cube.obj"), arrays["grasps/transforms"], progress=False)
    np.testing.assert_array_equal(labels.astype(bool), again.numpy())
    assert (np.diff(arrays[LOG_PROB_KEY]) <= 0).all()
    assert arrays["grasps/qualities/mujoco/object_motion_during_shaking_linear"].shape == (6,)
    assert arrays[LOG_PROB_KEY].shape == (6,) and prov["shake_test"]["density"] == 150.0


def test_without_model_the_shipped_panda_weights_are_used(data, model, tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "weights_path", lambda kind, name: tmp_path / f"{kind}_{name}.pt")
    out = tmp_path / "g.h5"
    assert _sample("--object", str(data / "cube.obj"), "-n", "4", "--out", str(out)) == 2   # none shipped
    assert not out.exists()
    (tmp_path / "grasp_panda.pt").write_bytes(model.read_bytes())   # "ship" the tiny model
    assert _sample("--object", str(data / "cube.obj"), "-n", "4", "--out", str(out)) == 0
    arrays, prov = _read(out)
    gs, obj = GraspSampler.load(model), load_object(data / "cube.obj")
    np.testing.assert_allclose(arrays["grasps/transforms"], gs.sample(obj, 4, seed=0).numpy(), rtol=0, atol=1e-12)
    assert prov["model"] == "pretrained panda"


@pytest.fixture
def bad_inputs(data, model, tmp_path):
    GraspSampler.load(model).flow.save(tmp_path / "flow.pt")     # a posegen checkpoint, but not a grasp model
    (tmp_path / "junk.pt").write_text("not a model")
    np.save(tmp_path / "flat.npy", np.zeros((10, 2)))
    np.save(tmp_path / "nan.npy", np.full((10, 3), np.nan))
    trimesh.creation.box((1, 1, 1)).export(tmp_path / "mesh.ply")
    return tmp_path


BAD_SAMPLE = {   # command line (MESH, MODEL, DIR substituted) -> exit code, message
    "missing mesh": (["--object", "DIR/nope.obj"], 2, "does not exist"),
    "zero scale": (["--object", "MESH", "--scale", "0"], 2, "--scale must be a finite number > 0, got 0.0"),
    "nan scale": (["--object", "MESH", "--scale", "nan"], 2, "--scale must be a finite number > 0"),
    "flow, not grasp model": (["--object", "MESH", "--model", "DIR/flow.pt"], 2,
                              "is not a grasp model.*a posegen 'model' checkpoint"),
    "not a checkpoint": (["--object", "MESH", "--model", "DIR/junk.pt"], 2, "is not a grasp model"),
    "missing model": (["--object", "MESH", "--model", "DIR/none.pt"], 2, "--model .* does not exist"),
    "n = 0": (["--object", "MESH", "-n", "0"], 2, "-n must be >= 1, got 0"),
    "best_of = 0": (["--object", "MESH", "--best-of", "0"], 2, "--best-of must be >= 1, got 0"),
    "no object": ([], 2, "give the object"),
    "cloud of 2-vectors": (["--points", "DIR/flat.npy"], 1, r"expected a numeric \(P, 3\) array.*\(10, 2\)"),
    "cloud with NaN": (["--points", "DIR/nan.npy"], 1, "10 points hold NaN or inf"),
    "mesh as cloud": (["--points", "DIR/mesh.ply"], 1, "is a mesh .* pass it as --object"),
    "cloud suffix": (["--points", "MESH"], 1, "unknown suffix '.obj'"),
    "evaluate a cloud": (["--points", "DIR/flat.npy", "--evaluate"], 2, "--evaluate shakes the object's mesh"),
    "out not .h5": (["--object", "MESH", "--out", "DIR/x.txt"], 2, "expected a file ending in .h5"),
    "out folder missing": (["--object", "MESH", "--out", "DIR/no/x.h5"], 2, "folder .* does not exist"),
}


@pytest.mark.parametrize("case", BAD_SAMPLE)
def test_sample_refuses_bad_input_and_writes_nothing(case, data, model, bad_inputs, capsys):
    argv, code, message = BAD_SAMPLE[case]
    argv = [a.replace("MESH", str(data / "cube.obj")).replace("DIR", str(bad_inputs)) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(model)]
    before = sorted(p.name for p in bad_inputs.iterdir())
    assert _sample(*argv, *([] if "--out" in argv else ["--out", str(bad_inputs / "x.h5")])) == code
    err = capsys.readouterr().err
    assert err.startswith("posegen grasps sample: error:") and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert sorted(p.name for p in bad_inputs.iterdir()) == before, "nothing written"


# ---------------------------------------------------------------------- train
def _train(*argv):
    return main(["grasps", "train", "--threads", "1", *TINY, *argv])     # a later flag replaces an earlier one


def test_train_learns_from_the_successful_grasps_of_every_file(model):
    gs = GraspSampler.load(model)
    t = gs.training
    assert t["steps"] == 250 and t["command"] == "posegen grasps train"
    assert t["data"]["objects"] == 2 and t["data"]["grasps_read"] == 128 and t["data"]["grasps_successful"] == 96
    assert gs.points == 64 and gs.flow.config["hidden"] == 64 and gs.flow.config["depth"] == 2
    assert (model.parent / "tiny_run" / "ckpt.pt").is_file()         # the run folder beside the model


def test_train_resumes_its_run_and_refuses_to_overwrite_it(data, tmp_path, capsys):
    out = tmp_path / "m.pt"
    base = ["--data", str(data / "cube.h5"), str(data / "tall.h5"), "--out", str(out), "--batch-size", "64"]
    assert _train(*base, "--steps", "30", "--checkpoint-every", "10") == 0
    first = GraspSampler.load(out)
    assert _train(*base, "--steps", "30") == 2                         # a checkpoint is there: no silent restart
    assert _train(*base, "--steps", "60", "--resume") == 0
    again = GraspSampler.load(out)
    assert first.training["steps"] == 30 and again.training["steps"] == 60
    changed = [k for k, v in first.flow.state_dict().items() if not torch.equal(v, again.flow.state_dict()[k])]
    assert changed, "the resumed run trained on"
    wider = [a if a != "64" else "96" for a in TINY]                   # another network than the run's
    code = main(["grasps", "train", *base, "--steps", "90", "--resume", "--threads", "1", *wider])
    assert code == 2 and GraspSampler.load(out).training["steps"] == 60
    err = capsys.readouterr().err
    assert "built with --cloud-points 64, --hidden 64; this command line asks for --cloud-points 96, --hidden 96" in err


def test_train_reads_meshes_from_mesh_root(data, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for name in SIZES:                                                 # the grasp files, without their meshes
        (files / f"{name}.h5").write_bytes((data / f"{name}.h5").read_bytes())
    out = tmp_path / "m.pt"
    assert _train("--data", str(files), "--out", str(out), "--steps", "5") == 2   # object/file not beside them
    assert not out.exists() and not (tmp_path / "m_run").exists()
    assert _train("--data", str(files), "--out", str(out), "--steps", "5", "--mesh-root", str(data)) == 0
    assert GraspSampler.load(out).training["data"]["objects"] == 2


@pytest.fixture(scope="module")
def sampled(data, model, tmp_path_factory):
    """A file of sampled grasps: no physics labels."""
    out = tmp_path_factory.mktemp("sampled") / "raw.h5"
    _sample("--object", str(data / "cube.obj"), "--model", str(model), "-n", "4", "--out", str(out))
    return out


@pytest.fixture
def bad_files(data, tmp_path):
    (tmp_path / "empty").mkdir()
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    T = _top_grasps(0.05, 4, np.random.default_rng(0))
    save_acronym(tmp_path / "failed.h5", T, np.zeros(4), object_file=str(data / "cube.obj"), sim="mujoco")
    T[0, 0, 0] = 2.0
    with h5py.File(tmp_path / "sheared.h5", "w") as f:   # ACRONYM's layout, but a transform that is not rigid
        f["grasps/transforms"] = T
        f["grasps/qualities/mujoco/object_in_gripper"] = np.ones(4, np.int64)
        f["object/file"] = str(data / "cube.obj")
        f["object/scale"] = 1.0
    return tmp_path


BAD_TRAIN = {   # command line (DATA, DIR, SAMPLED substituted) -> exit code, message
    "missing file": (["--data", "DIR/nope.h5"], 2, "--data .*nope.h5' does not exist"),
    "folder without files": (["--data", "DIR/empty"], 1, "holds no grasp files"),
    "not an ACRONYM file": (["--data", "DIR/other.h5"], 1, "is not an ACRONYM grasp file: missing"),
    "no successful grasp": (["--data", "DIR/failed.h5"], 1, "no successful grasp in the 1 file"),
    "unlabelled samples": (["--data", "SAMPLED"], 1, "no object_in_gripper|has no physics labels"),
    "not rigid": (["--data", "DATA/cube.h5", "DIR/sheared.h5"], 1, "sheared.h5' grasps/transforms: 1 of"),
    "sim absent": (["--data", "DATA/cube.h5", "--sim", "flex"], 1, "has no labels of sim 'flex'"),
    "objective": (["--data", "DATA/cube.h5", "--objective", "nope"], 2, "must be one of"),
    "steps": (["--data", "DATA/cube.h5", "--steps", "0"], 2, "--steps must be >= 1, got 0"),
    "lr": (["--data", "DATA/cube.h5", "--lr", "-1"], 2, "--lr must be > 0"),
    "cloud points": (["--data", "DATA/cube.h5", "--cloud-points", "4"], 2, "--cloud-points must be >= 8, got 4"),
    "out folder": (["--data", "DATA/cube.h5", "--out", "DIR/no/m.pt"], 2, "folder .* does not exist"),
}


@pytest.mark.parametrize("case", BAD_TRAIN)
def test_train_refuses_bad_input_and_writes_nothing(case, data, sampled, bad_files, capsys):
    argv, code, message = BAD_TRAIN[case]
    argv = [a.replace("DATA", str(data)).replace("DIR", str(bad_files)).replace("SAMPLED", str(sampled))
            for a in argv]
    before = sorted(p.name for p in bad_files.iterdir())
    out = [] if "--out" in argv else ["--out", str(bad_files / "m.pt")]
    assert _train("--steps", "5", *argv, *out) == code                # a later --steps replaces the first
    err = capsys.readouterr().err
    assert err.startswith("posegen grasps train: error:") and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert sorted(p.name for p in bad_files.iterdir()) == before, "nothing written"


# ---------------------------------------------------------------------- the example
@pytest.mark.slow
def test_grasp_candidates_example_runs_a_tiny_fit(capsys):
    """examples/grasp_candidates.py end to end with a tiny fit (its default takes minutes)."""
    path = Path(__file__).resolve().parents[1] / "examples" / "grasp_candidates.py"
    spec = importlib.util.spec_from_file_location("grasp_candidates", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(["--fit", "--per-kind", "1", "--per-object", "8", "--steps", "20", "--candidates", "8", "--k", "2"])
    out = capsys.readouterr().out
    assert "data: 7 procedural objects" in out and "object: bottle_0011" in out
    assert re.search(r"shake test: [0-2] of the 2 most probable samples hold the bottle_0011; [0-2] of 2 raw", out)
