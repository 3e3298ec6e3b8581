"""benchmarks/seed_rows.py (issue 24, item 3): the eight configs it trains, its CPU-time budget, the table it
prints (against numpy's mean and sample standard deviation), and the refusals that come before any work."""

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import seed_rows  # noqa: E402

from posegen import PoseFlow  # noqa: E402
from posegen.cli.datasets import load_splits, model_manifold  # noqa: E402
from posegen.cli.train import build_flow  # noqa: E402
from posegen.config import load_config  # noqa: E402
from posegen.manifolds import parse  # noqa: E402
from posegen.paths.proposal import near_data_points  # noqa: E402

PAIRS = [(d, o) for d in seed_rows.SETS for o in seed_rows.OBJECTIVES]


@pytest.mark.parametrize("dataset,objective", PAIRS, ids=[f"{d}-{o}" for d, o in PAIRS])
def test_each_set_and_objective_has_a_config_with_a_20_minute_budget(dataset, objective):
    path = seed_rows.config_path(dataset, objective)
    cfg = load_config(path, ["data.seed=2", "train.seed=2"])
    assert (cfg["data"]["source"], cfg["data"]["name"], cfg["objective"]["name"]) == ("earth", dataset, objective)
    assert cfg["data"]["split"] == [0.8, 0.1, 0.1] and cfg["data"]["seed"] == cfg["train"]["seed"] == 2
    assert cfg["train"]["max_minutes"] == 20 and cfg["train"]["steps"] is None   # the budget is time alone
    assert parse(cfg["manifold"]).geometry == parse("S2")
    if objective == "cnfm":   # the end point chosen from the data (scaled on validation), automatic times
        schedule = cfg["objective"]["options"]["schedule"]
        assert set(cfg["objective"]["options"]) == {"schedule"} and schedule["sigma_min"] == "auto"
        assert 0 < schedule["scale"] <= 1
        solver = cfg["eval"]["solver"]   # rk4 at >= 256 steps, or dopri5 where rk4 blows up far from the data
        assert (solver["method"] == "rk4" and solver["steps"] >= 256) or (
            solver["method"] == "dopri5" and max(solver["atol"], solver["rtol"]) <= 1e-6)
    assert "2-core CPU" in path.read_text().split("\n\n")[0]


def _row(dataset, objective, seed, nll, steps=1000, cpu_s=1200.0):
    return {"set": dataset, "objective": objective, "seed": seed, "test": {"nll": nll, "sem": 0.05, "solver":
            {"method": "rk4", "steps": 256}}, "steps_done": steps, "train_cpu_s": cpu_s, "config": "c.yaml",
            "config_sha256": "0" * 64}


def test_summary_is_numpys_mean_and_sample_std_and_compares_with_the_goals():
    nll = {0: -1.5, 1: -1.2, 2: -1.45}
    rows = [_row("fire", "cnfm", s, v, steps=100 * (s + 1), cpu_s=60.0 * (s + 1)) for s, v in nll.items()]
    rows.append(_row("volcano", "moser", 0, -2.5))
    s = seed_rows.summary(rows)
    fire = s[("cnfm", "fire")]
    assert fire["mean"] == pytest.approx(np.mean(list(nll.values())), abs=1e-12)
    assert fire["seeds"] == [0, 1, 2] and fire["steps"] == pytest.approx(200) and fire["cpu_min"] == pytest.approx(2)
    assert fire["reached"] is False and s[("moser", "volcano")]["reached"] is True   # -1.383 > -1.40
    text = seed_rows.markdown_section({"results": rows, "args": {}, "machine": {
        "cpu": "x", "cores": 2, "torch_threads": 1, "torch": "t", "python": "p", "cuda": None},
        "started": "s", "duration_s": 60.0}, "seed_rows.json")
    std = np.std(list(nll.values()), ddof=1)
    assert f"{np.mean(list(nll.values())):.2f} ± {std:.2f}" in text
    assert "no (-1.383 vs -1.40)" in text and "yes (-2.500 vs -2.02)" in text and "-2.50 (1 seed)" in text
    assert statistics.stdev(nll.values()) == pytest.approx(std)


def test_resume_refuses_rows_whose_config_changed():
    row = _row("fire", "cnfm", 0, -1.0)
    row["config"] = "configs/earth_fire_cnfm.yaml"
    with pytest.raises(ValueError, match=r"config changed since these rows ran: configs/earth_fire_cnfm.yaml"):
        seed_rows.check_resumed({("fire", "cnfm", 0): row})
    row["config_sha256"] = seed_rows.file_sha256(REPO / row["config"])
    seed_rows.check_resumed({("fire", "cnfm", 0): row})


@pytest.mark.parametrize("argv,match", [(["--sets", "moon"], "--sets"), (["--objectives", "rfm"], "--objectives"),
                                        (["--seeds", "a"], "--seeds"), (["--minutes", "-1"], "--minutes"),
                                        (["--workers", "0"], "--workers")])
def test_bad_arguments_are_refused(argv, match, capsys, tmp_path):
    out = tmp_path / "rows.json"
    with pytest.raises(SystemExit):
        seed_rows.main(["run", *argv, "--out", str(out)])
    assert match in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_a_tiny_run_writes_finite_rows_and_resume_keeps_them(tmp_path):
    out = tmp_path / "rows.json"
    tiny = ["--override", "model.hidden=16", "--override", "model.depth=2", "--override", "eval.solver={method: rk4, steps: 4}",
            "--override", "train.val_solver.steps=2", "--override", "objective.options={}"]
    argv = ["run", "--minutes", "0.02", "--sets", "volcano", "--seeds", "0", "--mc-points", "16",
            "--check-points", "2", "--out", str(out), *tiny]
    assert seed_rows.main(argv) == 0
    d = json.loads(out.read_text())
    assert {(r["objective"], r["seed"]) for r in d["results"]} == {("cnfm", 0), ("moser", 0)}
    for r in d["results"]:
        assert np.isfinite(r["test"]["nll"]) and r["test"]["n"] == 82 and r["steps_done"] > 0
        assert 1.2 <= r["train_cpu_s"] < 1.2 + 5 and np.isfinite(r["normalisation"]["defensive"]["estimate"])
    before = d["results"]
    assert seed_rows.main(argv + ["--resume"]) == 0
    assert json.loads(out.read_text())["results"] == before


def test_a_failing_run_is_reported_and_writes_no_row(tmp_path):
    """A run whose child process fails (an override the config loader refuses) is a failure of that run only."""
    job = {"set": "volcano", "objective": "moser", "seed": 0, "minutes": 0.01, "overrides": ["model.hidden=wide"],
           "check_points": 0, "mc_points": 0, "threads": 1, "save_models": None}
    rows, failures = [], []
    seed_rows.run_processes([job], 1, lambda j, r: rows.append(r), lambda j, code: failures.append((j, code)),
                            poll_s=0.2)
    assert rows == [] and len(failures) == 1 and failures[0][0] is job and failures[0][1] != 0


def test_moser_mass_is_the_integral_of_the_density_log_prob_scores():
    """On the same uniform points, integral_mu + excess is the integral of exp(log_prob) (max(mu, eps)), and
    integral_mu is 1 within its standard error (divergence theorem) for a field far from trained."""
    torch.manual_seed(0)
    flow = PoseFlow("S2[fourier=2]", hidden=16, depth=2, parametrization="moser").double()
    with torch.no_grad():
        for w in flow.net.parameters():
            w.normal_(0.0, 0.5)
    m = seed_rows.moser_mass(flow, 4096, seed=3)
    z = flow.manifold.sample_base(4096, generator=torch.Generator().manual_seed(20_003), dtype=flow.dtype)
    p = flow.log_prob(flow.from_internal(z)).exp()
    vol = 4 * np.pi
    assert m["integral_mu"] + m["excess"] == pytest.approx(vol * float(p.mean()), rel=1e-9)
    assert 0.02 < m["share_below_eps"] < 0.98 and m["excess"] > 4 * m["excess_sem"] > 0   # the floor is in play
    assert abs(m["integral_mu"] - 1) < 4 * m["integral_mu_sem"]


def test_moser_mass_near_the_training_points_is_the_same_integral():
    """With centres the check importance-samples around them (posegen.paths.proposal, whose estimates
    tests/test_proposal.py checks): integral_mu is still 1 within its standard error, and integral_mu + excess
    is the weighted integral of exp(log_prob) on the same points."""
    torch.manual_seed(0)
    flow = PoseFlow("S2[fourier=2]", hidden=16, depth=2, parametrization="moser").double()
    with torch.no_grad():
        for w in flow.net.parameters():
            w.normal_(0.0, 0.5)
    centres = flow.manifold.sample_base(50, generator=torch.Generator().manual_seed(1), dtype=flow.dtype)
    m = seed_rows.moser_mass(flow, 4096, seed=3, centres=centres)
    assert m["proposal"] == {"near": seed_rows.MASS_NEAR, "scales": list(seed_rows.MASS_SCALES), "centres": 50}
    z, w = near_data_points(flow.manifold, centres, 4096, seed_rows.MASS_NEAR, seed_rows.MASS_SCALES,
                            generator=torch.Generator().manual_seed(20_003))
    p = flow.log_prob(flow.from_internal(z)).exp()
    assert m["integral_mu"] + m["excess"] == pytest.approx(float((w * p).mean()), rel=1e-9)
    assert abs(m["integral_mu"] - 1) < 4 * m["integral_mu_sem"] and m["excess"] > 0


def test_moser_rows_are_judged_by_their_normalised_nll_and_only_when_the_floor_mass_is_resolved():
    """max(mu, eps) / (1 + excess) is the density scored: its NLL is nll + log(1 + excess). A row whose excess
    is known only to within more than MOSER_RESOLVED_NATS (the lam-10 volcano run: 1045 +- 354) never counts."""
    small = seed_rows.moser_normalised(-2.0, {"excess": 0.01, "excess_sem": 0.001})
    assert small["nll_normalised"] == pytest.approx(-2.0 + np.log1p(0.01), abs=1e-15) and small["resolved"]
    lo, hi = small["nll_normalised_range"]
    assert lo == pytest.approx(-2.0 + np.log1p(0.008)) and hi == pytest.approx(-2.0 + np.log1p(0.012))
    spiky = seed_rows.moser_normalised(-9.12, {"excess": 1045.0, "excess_sem": 354.0})
    assert spiky["nll_normalised"] == pytest.approx(-9.12 + np.log(1046.0)) and not spiky["resolved"]
    good, bad = _row("fire", "moser", 0, -1.2), _row("volcano", "moser", 0, -9.12)
    good["test"].update(small)
    bad["test"].update(spiky)
    s = seed_rows.summary([good, bad])
    assert s[("moser", "fire")]["mean"] == pytest.approx(small["nll_normalised"]) and s[("moser", "fire")]["reached"]
    assert s[("moser", "volcano")]["resolved"] is False and s[("moser", "volcano")]["reached"] is False
    text = seed_rows.markdown_section({"results": [good, bad], "args": {}, "machine": {
        "cpu": "x", "cores": 2, "torch_threads": 1, "torch": "t", "python": "p", "cuda": None},
        "started": "s", "duration_s": 60.0}, "seed_rows.json")
    assert "no: floor mass unresolved" in text and "unresolved; raw -9.120" in text


def test_a_row_whose_solver_or_normalisation_check_fails_never_counts():
    """A spike far from the data (one uniform point carrying the Monte Carlo estimate) or rk4 far from dopri5 keeps
    a row from reaching its goal, however low its NLL; the table says which check failed."""
    ok = _row("volcano", "cnfm", 0, -3.0)
    ok["solver_check"] = {"n": 32, "rk4_ladder": [{"mean_nll_minus_dopri5": 4e-4}]}
    ok["normalisation"] = {"defensive": {"estimate": 0.97, "sem": 0.05, "ess": 230.0}}
    assert seed_rows.check_problems(ok) == [] and seed_rows.summary([ok])[("cnfm", "volcano")]["reached"]
    spike = json.loads(json.dumps(ok))
    spike["normalisation"]["defensive"] = {"estimate": 1.6e129, "sem": 1.6e129, "ess": 1.0}
    stiff = json.loads(json.dumps(ok))
    stiff["solver_check"]["rk4_ladder"][0]["mean_nll_minus_dopri5"] = -0.035
    assert seed_rows.check_problems(spike) == ["normalisation 1.6e+129 ± 1.6e+129 (ESS 1)"]
    assert seed_rows.check_problems(stiff) == ["solver -0.035 nats from dopri5"]
    for bad in (spike, stiff):
        s = seed_rows.summary([bad])[("cnfm", "volcano")]
        assert not s["reached"] and s["mean"] == -3.0
    text = seed_rows.markdown_section({"results": [spike], "args": {}, "machine": {
        "cpu": "x", "cores": 2, "torch_threads": 1, "torch": "t", "python": "p", "cuda": None},
        "started": "s", "duration_s": 60.0}, "seed_rows.json")
    assert "no: checks failed (seed 0: normalisation 1.6e+129" in text and "1.6e+129 ± 1.6e+129 (ESS 1)" in text


def _flow(seed=0):
    torch.manual_seed(seed)
    flow = PoseFlow("S2[fourier=2]", hidden=16, depth=2).double()
    with torch.no_grad():
        for w in flow.net.parameters():
            w.normal_(0.0, 0.3)
    return flow


def test_solver_check_of_an_adaptive_solver_is_against_itself_at_a_hundredth_of_its_tolerances():
    """dopri5 at 1e-3 is checked against dopri5 at 1e-5 (the fixed-step check's dopri5 at 1e-6 would be no tighter
    reference); the ladder's first rung is the solver itself, and its gap is its NLL minus the reference's, computed here."""
    budget_clock = pytest.importorskip("budget_clock")
    flow = _flow()
    x = flow.manifold.projx(torch.randn(6, 3, dtype=torch.float64))
    solver = {"method": "dopri5", "atol": 1e-3, "rtol": 1e-3}
    chk = budget_clock.solver_check(flow.log_prob, x, solver, 4)
    assert chk["reference"] == {"method": "dopri5", "atol": 1e-5, "rtol": 1e-5} and chk["n"] == 4
    assert [(r["atol"], r["rtol"]) for r in chk["tolerance_ladder"]] == [(1e-3, 1e-3), (1e-4, 1e-4)]
    with torch.no_grad():
        gap = float((flow.log_prob(x[:4], **chk["reference"]) - flow.log_prob(x[:4], **solver)).mean())  # NLL - ref
    assert chk["tolerance_ladder"][0]["mean_nll_minus_dopri5"] == pytest.approx(gap, abs=1e-12)
    assert seed_rows.solver_ladder(chk) is chk["tolerance_ladder"]
    assert seed_rows.solver_label({**flow.solver, **solver}) == "dopri5 (1e-03)"
    assert seed_rows.solver_label({**flow.solver, "method": "rk4", "steps": 256}) == "rk4-256"
    with pytest.raises(ValueError, match="solver: expected fixed steps"):
        budget_clock.solver_check(flow.log_prob, x, {"method": "dopri5"}, 2)


def _saved_run(tmp_path, dataset="volcano", objective="cnfm"):
    """A row as run_one writes it (its training settings from the config), with a small untrained flow saved."""
    overrides = ["data.seed=0", "train.seed=0", "model.hidden=16", "model.depth=2"]
    cfg = seed_rows.run_config(dataset, objective, overrides)
    train = load_splits(cfg, ("train",))["train"]
    flow = build_flow(cfg, model_manifold(cfg, train.manifold), 0)
    path = tmp_path / f"{dataset}_{objective}_seed0.pt"
    flow.save(path)
    config = seed_rows.make_config(None, objective=objective, objective_options=cfg["objective"]["options"],
                                   **cfg["train"])
    row = {"set": dataset, "objective": objective, "seed": 0, "overrides": overrides, "manifold": repr(flow.manifold),
           "config": f"configs/earth_{dataset}_{objective}.yaml", "config_sha256": "0" * 64, "model_path": str(path),
           **json.loads(json.dumps(seed_rows.finite(seed_rows.train_settings(config, cfg)))),
           "test": {"nll": 99.0, "sem": 0.1, "solver": {"method": "rk4", "steps": 256}}}
    return row, cfg


def test_rescore_scores_a_saved_model_with_the_config_as_it_is_and_keeps_the_old_scores(tmp_path):
    row, cfg = _saved_run(tmp_path)
    new = seed_rows.rescore_one(dict(row), {"check_points": 2, "mc_points": 8}, None)
    flow = PoseFlow.load(row["model_path"]).eval()
    test = load_splits(cfg, ("test",))["test"].points
    expected = seed_rows.score_test(flow, test, cfg["eval"])
    assert new["test"]["nll"] == pytest.approx(expected["nll"], abs=1e-12) and new["test"]["n"] == 82
    assert new["test"]["solver"]["method"] == cfg["eval"]["solver"]["method"]
    assert new["config_sha256"] == seed_rows.file_sha256(REPO / row["config"])
    assert new["rescored"][0]["test"]["nll"] == 99.0 and new["rescored"][0]["config_sha256"] == "0" * 64
    assert np.isfinite(new["normalisation"]["defensive"]["estimate"]) and new["solver_check"]["n"] == 2
    seed_rows.check_resumed({("volcano", "cnfm", 0): new})   # the rescored row now belongs to the config


def test_rescore_refuses_a_row_trained_otherwise_or_without_its_model(tmp_path):
    row, _ = _saved_run(tmp_path)
    other = json.loads(json.dumps(row))
    other["train_config"]["lr"] = 1.0
    with pytest.raises(ValueError, match="trains otherwise than this row did"):
        seed_rows.rescore_one(other, {"check_points": 0, "mc_points": 0}, None)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        seed_rows.rescore_one(dict(row), {"check_points": 0, "mc_points": 0}, tmp_path / "elsewhere")


def test_rescore_takes_more_monte_carlo_points_when_asked(tmp_path):
    """``rescore --mc-points N`` scores the normalisation with N points per estimator (a stricter check: the same
    standard-error and ESS rules on more points); without it, the file's own setting."""
    row, _ = _saved_run(tmp_path, objective="moser")
    out = tmp_path / "rows.json"
    base = ["rescore", "--sets", "volcano", "--objectives", "moser", "--seeds", "0", "--out", str(out)]
    out.write_text(json.dumps({"args": {"check_points": 0, "mc_points": 8}, "results": [row]}))
    assert seed_rows.main(base + ["--mc-points", "24"]) == 0
    assert json.loads(out.read_text())["results"][0]["normalisation"]["n"] == 24
    assert seed_rows.main(base) == 0
    assert json.loads(out.read_text())["results"][0]["normalisation"]["n"] == 8
    with pytest.raises(ValueError, match="--mc-points must be a positive"):
        seed_rows.main(base + ["--mc-points", "0"])
