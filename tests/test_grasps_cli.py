"""``posegen grasps generate`` through its module's ``run(args)`` (main.py wiring is the lead's)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("mujoco")
pytest.importorskip("scipy")

from posegen.cli import grasps as cli  # noqa: E402
from posegen.cli.common import UsageError  # noqa: E402
from posegen.grasps import PANDA, load_acronym, load_object  # noqa: E402


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["grasps", "generate", *argv, "--no-progress"])
    assert args.run is cli.run  # what posegen's main dispatches to
    return args


@pytest.fixture
def meshes(tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.box((0.03, 0.05, 0.08)).export(folder / "box.obj")
    trimesh.creation.cylinder(0.02, 0.1, sections=32).export(folder / "can.stl")
    return folder


def test_one_object_one_file(meshes, tmp_path):
    out = tmp_path / "box.h5"
    assert cli.run(_args("--objects", str(meshes / "box.obj"), "--per-object", "12", "--out", str(out))) == 0
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
    cli.run(_args("--objects", str(meshes), "--per-object", "5", "--out", str(out), "--support-plane"))
    assert sorted(p.name for p in out.iterdir()) == ["box.h5", "can.h5"]
    assert len(load_acronym(out / "can.h5")) == 5


def test_bad_command_lines_write_nothing(meshes, tmp_path):
    out = tmp_path / "x.h5"
    with pytest.raises(UsageError, match="need an output folder"):
        cli.run(_args("--objects", str(meshes), "--per-object", "5", "--out", str(out)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli.run(_args("--objects", str(meshes / "nope.obj"), "--per-object", "5", "--out", str(out)))
    with pytest.raises(UsageError, match="--per-object must be >= 1"):
        cli.run(_args("--objects", str(meshes), "--per-object", "0", "--out", str(out)))
    with pytest.raises(ValueError, match="scale must be"):
        cli.run(_args("--objects", str(meshes / "box.obj"), "--per-object", "5", "--out", str(out), "--scale", "0"))
    big = tmp_path / "ball.obj"
    trimesh.creation.icosphere(2, 0.06).export(big)
    with pytest.raises(ValueError, match="no antipodal contact pair"):
        cli.run(_args("--objects", str(big), "--per-object", "5", "--out", str(out)))
    assert not out.exists()
