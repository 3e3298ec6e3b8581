"""CI smoke test of the benchmark pipeline: every script runs end to end at a toy size, writes JSON with the
expected keys and finite numbers, and make_results renders the tables. Says nothing about quality or speed;
the full runs are documented in benchmarks/README.md."""

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

TINY = ["--steps", "12", "--batch-size", "32", "--hidden", "16", "--depth", "2", "--val-every", "6",
        "--val-steps", "2", "--eval-steps", "2", "--mc-points", "32", "--check-points", "4",
        "--cnfm-max-components", "32", "--seeds", "0", "--mc-steps", "2"]


def _module(name):
    return importlib.import_module(name)


def _finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _check_row(row):
    assert _finite(row["test"]["nll"]) and row["test"]["finite"]
    assert row["test"]["n"] > 0
    assert _finite(row["train_seconds"]) and row["steps_done"] == 12
    for key in ("base", "defensive"):
        assert _finite(row["normalisation"][key]["estimate"]) and _finite(row["normalisation"][key]["sem"])
    assert row["curve"] and all(_finite(v) for c in row["curve"] for v in c)
    if row["objective"] != "moser":
        assert _finite(row["solver_check"]["max_abs_diff"])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import torch

    out = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()  # the scripts set 1 thread; give the rest of the session its own back
    _module("earth_nll").main(TINY + ["--datasets", "volcano", "--objectives", "rfm,moser,cnfm",
                                      "--out", str(out / "earth_nll.json")])
    # the same Monte Carlo points scored with two solvers, and the Fourier / late-times options
    _module("earth_nll").main(TINY[:-1] + ["2,3", "--datasets", "volcano", "--objectives", "rfm", "--fourier", "1",
                                           "--time-sampling", "late", "--out", str(out / "earth_nll_fourier.json")])
    _module("robot_nll").main(TINY + ["--tasks", "R3xT8xS3^6", "--objectives", "rfm", "--synthetic-n", "200",
                                      "--out", str(out / "robot_nll.json")])
    _module("speed").main(["--hidden", "16", "--depth", "2", "--batch-size", "32", "--repeat", "1",
                           "--n-sample", "16", "--nfe-steps", "1,2", "--sample-steps", "1", "--n-logp", "8",
                           "--fit-steps", "5", "--cnfm-components", "16", "--manifolds", "R2 x S2",
                           "--out", str(out / "speed.json")])
    torch.set_num_threads(threads)
    return out


def test_earth_json(results):
    d = json.loads((results / "earth_nll.json").read_text())
    assert d["benchmark"] == "earth_nll" and d["machine"]["cores"] >= 1 and d["duration_s"] > 0
    assert {"cpu", "torch", "commit", "torch_threads"} <= set(d["machine"])
    assert {(r["dataset"], r["objective"]) for r in d["results"]} == {
        ("volcano", "rfm"), ("volcano", "moser"), ("volcano", "cnfm")}
    for row in d["results"]:
        _check_row(row)
    assert set(d["published"]["RFM (Chen & Lipman 2024)"]) == {"volcano", "earthquake", "flood", "fire"}


def test_earth_json_with_two_check_solvers_and_options_renders(results):
    import make_results

    d = json.loads((results / "earth_nll_fourier.json").read_text())
    (row,) = d["results"]
    _check_row(row)
    assert [m["solver"]["steps"] for m in row["normalisation_by_solver"][1:]] == [2]
    assert d["args"]["fourier"] == 1 and d["args"]["time_sampling"] == "late"
    text = make_results.render(results, None)
    assert "Fourier features (1 octaves)" in text


def test_robot_json(results):
    d = json.loads((results / "robot_nll.json").read_text())
    (row,) = d["results"]
    assert row["task"] == "R3xT8xS3^6" and row["manifold"] == "R3 x T8 x S3^6"
    _check_row(row)


def test_speed_json(results):
    d = json.loads((results / "speed.json").read_text())
    s = d["sections"]
    assert {"train", "cnfm_breakdown", "sampling", "likelihood", "likelihood_accuracy"} <= set(s)
    assert {r["objective"] for r in s["train"]} == {"rfm", "interpolant", "cnfm"}
    for r in s["sampling"]:
        assert _finite(r["poses_per_s"]) and r["poses_per_s"] > 0 and _finite(r["solver_over_network"])
    assert all(_finite(r["points_per_s"]) for r in s["likelihood"])


def test_make_results_renders_tables(results, tmp_path):
    text = _module("make_results").main(["--results", str(results), "--out", str(tmp_path / "RESULTS.md")])
    assert (tmp_path / "RESULTS.md").read_text() == text
    assert "| **posegen RFM** |" in text and "RFM (Chen & Lipman 2024) (published) | -7.93 |" in text
    assert "beats best published?" in text and "R3xT8xS3^6" in text and "### Sampling" in text
    assert "nan" not in text.lower().replace("n/a", "")


def test_resume_keeps_rows_records_sessions_and_refuses_other_settings(results, tmp_path):
    import shutil

    out = tmp_path / "earth_nll.json"
    shutil.copy(results / "earth_nll.json", out)
    before = json.loads(out.read_text())
    args = TINY + ["--datasets", "volcano", "--objectives", "rfm,moser,cnfm", "--out", str(out), "--resume"]
    _module("earth_nll").main(args)  # every run is done: nothing is retrained
    after = json.loads(out.read_text())
    assert after["results"] == before["results"]
    (session,) = after["earlier_sessions"]
    assert session["rows"] == 3 and session["started"] == before["started"]
    # the scaled table is rendered when its file is there, and says it was resumed
    shutil.copy(out, tmp_path / "earth_nll_scaled.json")
    text = _module("make_results").render(tmp_path)
    assert "at a larger budget" in text and "Resumed run: the last session added 0 of 3 rows" in text
    with pytest.raises(ValueError, match=r"other settings \(steps: 12 there, 13 now"):
        _module("earth_nll").main([a if a != "12" else "13" for a in args])
    assert json.loads(out.read_text())["results"] == before["results"]  # the refused run lost nothing


def test_mc_solver_check_runs_and_renders(tmp_path):
    out = tmp_path / "mc_solver_check.json"
    _module("mc_solver_check").main(["--steps", "4", "--hidden", "8", "--depth", "1", "--val-every", "2",
                                     "--mc-points", "16", "--solvers", "rk4:2,euler:4", "--out", str(out)])
    d = json.loads(out.read_text())
    assert [r["solver"] for r in d["results"]] == [{"method": "rk4", "steps": 2}, {"method": "euler", "steps": 4}]
    for r in d["results"]:
        assert _finite(r["normalisation"]["defensive"]["estimate"]) and _finite(r["test_nll"])
    text = _module("make_results").mc_solver_section(d, "x.json")
    assert "| rk4, 2 steps |" in text and "| euler, 4 steps |" in text


def test_make_results_reports_missing(tmp_path):
    text = _module("make_results").render(tmp_path)
    assert text.count(": missing") == 3


def test_synthetic_big_is_seeded_and_on_the_manifold():
    import posegen.manifolds as pm
    import torch

    rn = _module("robot_nll")
    a, b = rn.synthetic_big(50, seed=0), rn.synthetic_big(50, seed=0)
    assert torch.equal(a, b) and a.shape == (50, 35)
    assert not torch.equal(a, rn.synthetic_big(50, seed=1))
    ok, reason = pm.parse("R3 x T8 x S3^6").check_point(a, explain=True)
    assert ok, reason


def test_fk_consistency_paired_vs_shuffled():
    import torch
    from posegen.data import panda

    rn = _module("robot_nll")
    g = torch.Generator().manual_seed(0)
    lo, hi = panda.JOINT_LIMITS[:, 0], panda.JOINT_LIMITS[:, 1]
    q = (lo + (hi - lo) * torch.rand(64, 7, generator=g, dtype=torch.float64))
    pos, quat = panda.fk(q)
    quat = torch.where(torch.rand(64, 1, generator=g) < 0.5, quat, -quat)  # S3 sign must not matter
    from posegen.manifolds import wrap_angle

    x = torch.cat([pos, wrap_angle(q), quat], -1)
    r = rn.fk_consistency(x)
    assert r["paired"]["pos_cm_p95"] < 1e-6 and r["paired"]["rot_deg_p95"] < 1e-3
    assert r["shuffled"]["pos_cm_median"] > 5 and r["within_limits"] == 1.0


def test_gpu_script_quick_on_cpu(tmp_path):
    """benchmarks/gpu.py --quick: every section at toy size on whatever device is here, device named."""
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "gpu.json"
    _module("gpu").main(["--quick", "--device", "cpu", "--out", str(out)])
    torch.set_num_threads(threads)
    d = json.loads(out.read_text())
    assert d["benchmark"] == "gpu" and d["device"]["type"] == "cpu"
    rows = d["results"]
    train = [r for r in rows if r["section"] == "train"]
    assert {(r["manifold"], r["objective"]) for r in train} == {
        ("S2", "rfm"), ("S2", "cnfm"), ("panda joints", "rfm"), ("panda joints", "cnfm")}
    assert all(_finite(r["steps_per_s"]) and r["device"] == "CPU" for r in train)
    for sec, key in (("sample", "poses_per_s"), ("log_prob", "points_per_s")):
        assert len([r for r in rows if r["section"] == sec and _finite(r[key])]) == 2
    fire = [r for r in rows if r["section"] == "fire_nll"]
    assert len(fire) == 1 and _finite(fire[0]["test_nll"]) and fire[0]["steps_done"] > 0


def test_cnfm_cost_quick(tmp_path):
    import torch

    threads = torch.get_num_threads()
    res = _module("cnfm_cost").main(["--quick", "--out", str(tmp_path / "c.json")])
    torch.set_num_threads(threads)
    row = res.rows[0]
    assert all(_finite(row[k]) for k in ("rfm_step_ms", "cnfm_step_ms", "targets_ms", "velocity_div_ms", "ratio"))


def test_fire_budget_quick_with_baseline_and_table(tmp_path):
    """benchmarks/fire_budget.py --quick: a seconds-long budgeted run scored at each checkpoint (posegen with
    Fourier features and another time sampling, and the flow_matching baseline if installed), appended rows,
    and the table make_results renders from the JSON."""
    import torch

    threads = torch.get_num_threads()
    fb = _module("fire_budget")
    out = tmp_path / "fire_budget.json"
    fb.main(["--quick", "--label", "a", "--out", str(out)])
    fb.main(["--quick", "--label", "b", "--fourier", "2", "--time-sampling", "logit_normal", "--coupling", "ot",
             "--append", "--out", str(out)])
    fb.main(["--quick", "--baseline-only", "--append", "--out", str(out)])
    torch.set_num_threads(threads)
    d = json.loads(out.read_text())
    assert d["benchmark"] == "fire_budget" and len(d["earlier_sessions"]) == 2
    rows = d["results"]
    if _module("fire_baseline").available():
        assert [r["model"] for r in rows] == ["posegen", "posegen", "flow_matching"]
    else:
        assert len(rows) == 2 and "not installed" in d["baseline_skipped"]
    assert [r["label"] for r in rows][:2] == ["a", "b"] and rows[1]["settings"]["fourier"] == 2
    assert rows[1]["settings"]["coupling"] == "ot" and rows[0]["settings"]["coupling"] == "independent"
    for r in rows:
        assert [c["minutes"] for c in r["checkpoints"]] == [0.02, 0.04]
        assert all(_finite(c["nll"]) and c["finite"] and c["train_cpu_s"] >= 60 * c["minutes"]
                   for c in r["checkpoints"])
        assert r["steps_done"] > 0 and _finite(r["solver_check"]["max_abs_diff"])
    text = fb.markdown_section(d, "fire_budget.json")
    assert "0.04 min" in text and text.count("\n| ") >= 3
    mr = _module("make_results")
    assert "0.04 min" in mr.render(tmp_path)


@pytest.mark.parametrize("spec", ["S2", "R2 x S1"])
def test_fire_budget_ot_pairing_is_the_cheapest_permutation(spec):
    """The minibatch OT coupling pairs x_0 with x_1 at the least total squared geodesic distance: checked against
    every permutation of 5 points, and it only reorders x_0."""
    import itertools

    import torch

    pytest.importorskip("scipy")
    from posegen.manifolds import parse

    M = parse(spec)
    g = torch.Generator().manual_seed(3)
    x0, x1 = M.sample_base(5, generator=g, dtype=torch.float64), M.sample_base(5, generator=g, dtype=torch.float64)
    paired = _module("fire_budget").ot_pairing(M, x0, x1)
    cost = lambda a: float((M.dist(a, x1) ** 2).sum())  # noqa: E731
    best = min(cost(x0[list(p)]) for p in itertools.permutations(range(5)))
    assert cost(paired) == pytest.approx(best, rel=1e-12) and cost(paired) <= cost(x0)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, x0.tolist()))


def test_ik_benchmark_trains_evaluates_and_renders(tmp_path):
    """benchmarks/ik.py end to end at a toy size: train, eval (raw, refined, baseline at two caps), markdown."""
    pytest.importorskip("pytorch_kinematics")
    ik = _module("ik")
    run, out = tmp_path / "run", tmp_path / "out"
    ik.main(["train", "--robot", "iiwa14", "--minutes", "5", "--steps", "6", "--snapshots", "", "--run", str(run),
             "--hidden", "16", "--depth", "1", "--batch-size", "32"])
    ik.main(["eval", "--robot", "iiwa14", "--run", str(run), "--targets", "6", "--per-target", "3",
             "--baseline-iters", "4,8", "--ode-steps", "2", "--out", str(out)])
    d = json.loads((out / "ik_iiwa14.json").read_text())
    flow, base = d["results"]
    assert flow["raw"]["inside_limits"] == 1.0 and _finite(flow["raw"]["pos_mm"]["mean"])
    assert set(flow["refined"]) == {"1mm_0.01rad", "0.1mm_0.001rad"}
    assert [b["max_iters"] for b in base["by_max_iters"]] == [4, 8] and base["max_iters"] in (4, 8)
    assert all(r["refined"]["1mm_0.01rad"]["inside_limits"] == 1.0 for r in [flow] + base["by_max_iters"])
    assert [r["draws_per_solution"] for r in flow["density_rank"]] == [1, 2.0, 4.0]
    assert all(_finite(r["pos_mm"]["mean"]) and r["inside_limits"] == 1.0 for r in flow["density_rank"])
    text = ik.markdown_section(d, "ik_iiwa14.json")
    assert "IKSampler.sample(refine=True)" in text and "8 iterations" in text and "of 4x draws" in text


def test_compile_cost_runs_and_renders(tmp_path):
    cc = _module("compile_cost")
    out = tmp_path / "cc.json"
    cc.main(["--manifolds", "S2", "--hidden", "8", "--depth", "1", "--batch", "16", "--steps", "1", "--repeat", "1",
             "--out", str(out)])
    d = json.loads(out.read_text())
    r = d["results"][0]
    assert _finite(r["eager"]["cpu_ms"]) and _finite(r["compiled"]["cpu_ms"]) and _finite(r["speedup_cpu"])
    assert "torch.compile" in cc.markdown_section(d, "cc.json")


def test_dirty_counts_code_not_a_benchmarks_own_results(tmp_path, monkeypatch):
    """A resumable benchmark writes its results between runs; that must not mark its later rows as run from
    changed code, while a changed script or package module must."""
    import subprocess

    common = _module("common")
    for rel in ("posegen/m.py", "benchmarks/b.py", "benchmarks/results/full/r.json", "README.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("0\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(git + ["add", "."], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=tmp_path, check=True)
    monkeypatch.setattr(common, "REPO", tmp_path)
    assert common.git_commit()["dirty"] is False
    for rel in ("benchmarks/results/full/r.json", "README.md"):
        (tmp_path / rel).write_text("1\n")
    assert common.git_commit()["dirty"] is False
    for rel in ("benchmarks/b.py", "posegen/m.py"):
        (tmp_path / rel).write_text("1\n")
        assert common.git_commit()["dirty"] is True
        subprocess.run(["git", "checkout", "-q", "--", rel], cwd=tmp_path, check=True)
