"""Model options on the data's points: a config's ``manifold: S2[fourier=K]`` trains a flow with Fourier features
on earth data (plain S2 points), and ``posegen eval`` / ``sample`` / ``plot`` use that checkpoint with the same
data. Data and model meet on the manifold's geometry (``Manifold.geometry``); real mismatches are refused with
a one-line error naming both."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

import posegen as pg
from posegen.cli.datasets import load_splits, model_manifold
from posegen.cli.main import main
from posegen.config import ConfigError, load_config, resolve
from posegen.data import earth_splits, load_points, save_points
from posegen.manifolds import SO3, Sphere, parse

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
VOLCANO = REPO / "data" / "earth" / "volerup.csv"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def earth_config(**top):
    """A volcano config that trains in about a second, on S2 with 2 octaves of Fourier features."""
    cfg = {
        "data": {"source": "earth", "name": "volcano", "split": [0.8, 0.1, 0.1], "seed": 0},
        "manifold": "S2[fourier=2]",
        "objective": {"name": "rfm", "options": {"time_sampling": "late"}},
        "model": {"hidden": 16, "depth": 2},
        "train": {"steps": 12, "batch_size": 32, "lr_schedule": "constant", "warmup": 0, "val_every": 6,
                  "log_every": 6, "checkpoint_every": 6, "val_points": 16,
                  "val_solver": {"method": "euler", "steps": 1}, "progress": False},
        "sample": {"n": 20, "solver": {"method": "euler", "steps": 2}},
        "eval": {"solver": {"method": "euler", "steps": 2}},
        "plot": {"enabled": True, "n": 20, "grid": 4, "solver": {"method": "euler", "steps": 1}},
    }
    cfg.update(top)
    return cfg


def write_yaml(path, cfg):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def fourier_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fourier")
    out = root / "out"
    assert main(["train", str(write_yaml(root / "volcano.yaml", earth_config())), "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------------- geometry
@pytest.mark.parametrize("spec, points", [
    ("S2[fourier=6]", "S2"), ("S2", "S2"), ("S3[fourier=1]", "S3"), ("R3 x S2[fourier=3] x SO3", "R3 x S2 x SO3"),
    ("T7 x I1[0:1]", "T7 x I1[0:1]")])
def test_geometry_drops_model_options_only(spec, points):
    M = parse(spec)
    assert M.geometry == parse(points) and repr(M.geometry) == repr(parse(points))
    assert M.geometry.coord_dim == M.coord_dim and M.geometry.dim == M.dim
    assert M.geometry.geometry == M.geometry
    # equality stays strict: the options change the network's input, so a checkpoint knows them
    assert (M == M.geometry) == (spec == points)


def test_geometry_of_factors():
    assert Sphere(2, fourier=6).geometry == Sphere(2) and Sphere(2, fourier=6) != Sphere(2)
    assert Sphere(2).geometry is not None and SO3().geometry == SO3()
    x = Sphere(2).sample_base(5, generator=torch.Generator().manual_seed(0))
    # the same points and metric: every geometric map agrees
    a, b = Sphere(2, fourier=4), Sphere(2)
    torch.testing.assert_close(a.dist(x[:-1], x[1:]), b.dist(x[:-1], x[1:]))
    torch.testing.assert_close(a.logmap(x[:-1], x[1:]), b.logmap(x[:-1], x[1:]))


# ---------------------------------------------------------------------- config
def test_model_manifold_is_the_configs_when_its_points_are_the_datas():
    cfg = resolve(earth_config())
    assert repr(model_manifold(cfg, parse("S2"))) == "S2[fourier=2]"
    assert model_manifold(resolve(earth_config(manifold=None)), parse("S2")) == parse("S2")
    assert repr(model_manifold(resolve(earth_config(manifold="S2")), parse("S2"))) == "S2"
    splits = load_splits(cfg, ("train", "test"))
    assert repr(splits["train"].manifold) == "S2"   # the data are plain S2 points
    with pytest.raises(ConfigError, match=re.escape("config key 'manifold' is 'S3[fourier=2]' but the data "
                                                    "section gives points on S2")):
        load_splits(resolve(earth_config(manifold="S3[fourier=2]")), ("train",))


@pytest.mark.parametrize("spec", ["S3", "R3 x S2[fourier=2]", "T2"])
def test_train_refuses_a_manifold_of_other_points(spec, tmp_path, capsys):
    path = write_yaml(tmp_path / "bad.yaml", earth_config(manifold=spec))
    assert main(["train", str(path), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"config key 'manifold' is {spec!r} but the data section gives points on S2" in line
    assert not (tmp_path / "o" / "model.pt").exists()


def test_a_bad_fourier_option_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"config key 'manifold': bad manifold spec 'S2\[fourier=x\]'"):
        resolve(earth_config(manifold="S2[fourier=x]"))


@pytest.mark.parametrize("name,results", [("volcano", "earth_nll_fourier.json"),
                                          ("earthquake", "earth_nll_fourier.json"),
                                          ("flood", "earth_nll_fourier4_flood.json"),
                                          ("fire", "earth_nll_fourier.json")])
def test_earth_configs_train_what_the_benchmark_measured(name, results):
    """configs/earth_*.yaml cite the results file of their run (flood: 4 octaves, the others 6): same manifold,
    objective and time sampling, width, depth, steps, batch, validation cadence and eval solver as its settings."""
    cfg = load_config(REPO / "configs" / f"earth_{name}.yaml")
    assert results in (REPO / "configs" / f"earth_{name}.yaml").read_text()  # the config cites it
    args = json.loads((REPO / "benchmarks" / "results" / "full" / results).read_text())["args"]
    assert name in args["datasets"] and args["objectives"] == ["rfm"]
    assert cfg["data"]["name"] == name
    assert repr(parse(cfg["manifold"])) == f"S2[fourier={args['fourier']}]"
    assert cfg["objective"]["name"] == "rfm"
    assert cfg["objective"]["options"] == args["objective_options"]["rfm"] == {"time_sampling": "late"}
    assert (cfg["model"]["hidden"], cfg["model"]["depth"]) == (args["hidden"], args["depth"])
    t = cfg["train"]
    assert (t["steps"], t["batch_size"], t["val_every"]) == (args["steps"], args["batch_size"], args["val_every"])
    assert t["val_solver"] == {"method": "rk4", "steps": args["val_steps"]}
    assert cfg["eval"]["solver"] == {"method": "rk4", "steps": args["eval_steps"]}


# ---------------------------------------------------------------------- the CLI on that checkpoint
def test_train_builds_the_flow_on_the_configs_manifold(fourier_run):
    flow = pg.PoseFlow.load(fourier_run / "model.pt")
    assert repr(flow.manifold) == "S2[fourier=2]" and flow.net.manifold.feature_dim == 3 * 5
    assert yaml.safe_load((fourier_run / "config.yaml").read_text())["manifold"] == "S2[fourier=2]"
    assert load_config(fourier_run / "config.yaml")["objective"]["options"] == {"time_sampling": "late"}
    pngs = sorted((fourier_run / "plots").glob("*.png"))
    assert {p.name for p in pngs} == {"training.png", "samples_S2.png"}   # the density map drew the flow
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in pngs)


def test_eval_scores_the_earth_test_points(fourier_run, capsys):
    assert main(["eval", str(fourier_run / "model.pt"), "--data", str(VOLCANO)]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    test = earth_splits("volcano", 0)[2]
    assert rec["split"] == "test" and rec["n"] == len(test) and rec["manifold"] == "S2[fourier=2]"
    flow = pg.PoseFlow.load(fourier_run / "model.pt").eval()
    lp = flow.log_prob(test.points, method="euler", steps=2)
    assert rec["nll"] == pytest.approx(float(-lp.double().mean()), rel=1e-6)


def test_sample_writes_points_on_s2_and_plot_reads_them_with_the_data(fourier_run, tmp_path, capsys):
    samples = tmp_path / "s.h5"
    assert main(["sample", str(fourier_run / "model.pt"), "-n", "15", "-o", str(samples)]) == 0
    assert "wrote 15 samples on S2 to" in capsys.readouterr().out
    ds = load_points(samples)
    assert repr(ds.manifold) == "S2" and ds.points.shape == (15, 3)
    torch.testing.assert_close(ds.points.norm(dim=1), torch.ones(15, dtype=ds.points.dtype))
    # the samples scored by the flow that drew them: a points file on S2 meets a flow on S2[fourier=2]
    assert main(["eval", str(fourier_run / "model.pt"), "--data", str(samples)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 15
    out = tmp_path / "p"
    assert main(["plot", str(samples), "--data", str(VOLCANO), "--config", str(fourier_run / "config.yaml"),
                 "--out", str(out)]) == 0
    assert [p.name for p in sorted(out.glob("*.png"))] == ["samples_S2.png"]


def test_eval_refuses_data_on_other_points(fourier_run, tmp_path, capsys):
    other = tmp_path / "r3.h5"
    save_points(other, torch.randn(6, 3), "R3")
    assert main(["eval", str(fourier_run / "model.pt"), "--data", str(other)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "the checkpoint models points on S2 (a flow on S2[fourier=2]) but the data are points on R3" in line
