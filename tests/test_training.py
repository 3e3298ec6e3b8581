"""The training loop: every objective learns, resume equals an uninterrupted run, NaN stops with the last
good checkpoint kept, bad data is refused before any work, and two-process DDP trains."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import posegen as pg
from posegen.checkpoint import load_checkpoint
from posegen.objectives import OBJECTIVES
from posegen.paths import sample_vmf
from posegen.training import TrainingDiverged, train

SMALL = dict(hidden=48, depth=2, activation="gelu")
FAST = dict(batch_size=128, lr=1e-2, warmup=10, progress=False, val_solver={"method": "rk4", "steps": 8})


def _vmf_mixture_s2(n, seed):
    g = torch.Generator().manual_seed(seed)
    mus = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), dim=-1)
    idx = torch.randint(0, 2, (n,), generator=g)
    return sample_vmf(mus[idx], torch.full((n,), 40.0), generator=g).float()


def _von_mises_mixture_t2(n, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-2.0, 1.0], [1.5, -0.5]])
    idx = torch.randint(0, 2, (n,), generator=g)
    return pg.wrap_angle(centres[idx] + 0.25 * torch.randn(n, 2, generator=g))


def _r3_so3(n, seed):
    g = torch.Generator().manual_seed(seed)
    pos = torch.tensor([0.5, 0.0, 0.3]) + 0.05 * torch.randn(n, 3, generator=g)
    q = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 0.0, 1.0]) + 0.15 * torch.randn(n, 4, generator=g),
                                      dim=-1)
    return torch.cat([pos, q], -1)


CASES = {
    "S2": (_vmf_mixture_s2, ["cnfm", "rfm", "interpolant", "moser"]),
    "T2": (_von_mises_mixture_t2, ["cnfm", "rfm"]),
    "R3 x SO3": (_r3_so3, ["cnfm", "rfm"]),
}


@pytest.mark.parametrize("spec,objective", [(s, o) for s, (_, objs) in CASES.items() for o in objs])
def test_each_objective_beats_the_base_density(spec, objective):
    torch.manual_seed(0)
    make, _ = CASES[spec]
    data, val = make(1500, 0), make(300, 1)
    flow = pg.PoseFlow(spec, parametrization="moser" if objective == "moser" else "cnf", **SMALL)
    # NLL of the base distribution (after the flow's own standardisation of R^d columns).
    flow.fit_standardization(data)
    base_nll = float(-flow.log_prob(val, steps=1).mean())  # zero output layer: the flow is the base
    res = train(flow, data, objective, steps=250, val_data=val, val_every=250, **FAST)
    assert res.best_val_nll is not None and math.isfinite(res.best_val_nll)
    # "well below the base's": at least 1 nat better on these concentrated sets.
    assert res.best_val_nll < base_nll - 1.0, (objective, spec, res.best_val_nll, base_nll)


class _Interrupt:
    """Wraps an objective's loss: raises KeyboardInterrupt (Ctrl-C) or returns NaN at a chosen call."""

    def __init__(self, at, kind):
        self.at, self.kind, self.calls = at, kind, 0

    def install(self, monkeypatch, name):
        cls = OBJECTIVES[name]
        original = cls.loss
        me = self

        def loss(obj, *a, **k):
            me.calls += 1
            if me.calls == me.at + 1:
                if me.kind == "interrupt":
                    raise KeyboardInterrupt
                return torch.tensor(float("nan"), requires_grad=True)
            return original(obj, *a, **k)

        monkeypatch.setattr(cls, "loss", loss)


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    data = _vmf_mixture_s2(600, 0)
    opts = dict(steps=30, checkpoint_every=10, log_every=5, seed=3, **FAST)

    torch.manual_seed(0)
    full = train(pg.PoseFlow("S2", **SMALL), data, "cnfm", out_dir=tmp_path / "full", **opts).flow

    torch.manual_seed(0)
    flow = pg.PoseFlow("S2", **SMALL)
    with monkeypatch.context() as m:
        _Interrupt(17, "interrupt").install(m, "cnfm")
        with pytest.raises(KeyboardInterrupt):
            train(flow, data, "cnfm", out_dir=tmp_path / "cut", **opts)
    assert load_checkpoint(tmp_path / "cut" / "ckpt.pt")["step"] == 17  # Ctrl-C saved where it stopped

    torch.manual_seed(123)  # a different fresh init: resume must not depend on it
    resumed = train(pg.PoseFlow("S2", **SMALL), data, "cnfm", out_dir=tmp_path / "cut", resume=True, **opts).flow
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    # and the metrics file was appended to, not overwritten: one row per logged step of the one run
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30]


# The training process is blocked inside the loss of step 16 (after steps 1..15 were logged and step 10
# was checkpointed) and killed there with SIGKILL: no handler, no finally block runs.
_BLOCK_IN_LOSS = textwrap.dedent("""
    import pathlib, sys, time
    from posegen.cli.main import main
    from posegen.objectives import OBJECTIVES

    ready, after = pathlib.Path(sys.argv[1]), int(sys.argv[2])
    cls, calls = OBJECTIVES["rfm"], [0]
    original = cls.loss

    def loss(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            ready.write_text("blocked")
            time.sleep(600)  # until the test kills this process
        return original(self, *args, **kwargs)

    cls.loss = loss
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_resume_after_sigkill_leaves_the_log_of_one_run(tmp_path):
    import yaml

    from posegen.cli.main import main
    from posegen.data import save_points

    save_points(tmp_path / "s2.h5", _vmf_mixture_s2(200, 0), "S2")
    cfg = {"data": {"source": "points", "path": str(tmp_path / "s2.h5"), "split": [0.9, 0.1]},
           "objective": {"name": "rfm"}, "model": {"hidden": 16, "depth": 2},
           "train": {"steps": 30, "batch_size": 32, "log_every": 1, "checkpoint_every": 10, "val_every": 10,
                     "val_points": 16, "val_solver": {"method": "euler", "steps": 2}, "progress": False,
                     "device": "cpu"},
           "plot": {"enabled": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out, ready = tmp_path / "run", tmp_path / "blocked"
    args = ["train", str(tmp_path / "c.yaml"), "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", _BLOCK_IN_LOSS, str(ready), "15", *args],
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    def logged_steps():
        return [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines()]

    # the situation of the bug: the log holds steps past the checkpoint, which the resumed run replays
    assert load_checkpoint(out / "ckpt.pt", kind="training")["step"] == 10
    assert logged_steps() == list(range(1, 16))

    assert main([*args, "--resume"]) == 0
    steps = logged_steps()
    assert steps == list(range(1, 31))  # strictly increasing, no step twice, ending at the final step
    assert load_checkpoint(out / "ckpt.pt", kind="training")["step"] == 30
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_resume_refuses_another_objective(tmp_path):
    data = _vmf_mixture_s2(300, 0)
    train(pg.PoseFlow("S2", **SMALL), data, "rfm", steps=4, out_dir=tmp_path, **FAST)
    with pytest.raises(ValueError, match="objective='rfm'"):
        train(pg.PoseFlow("S2", **SMALL), data, "cnfm", steps=8, out_dir=tmp_path, resume=True, **FAST)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    data = _vmf_mixture_s2(300, 0)
    _Interrupt(7, "nan").install(monkeypatch, "rfm")
    with pytest.raises(TrainingDiverged, match=r"at step 7 .*last good checkpoint .*step 6"):
        train(pg.PoseFlow("S2", **SMALL), data, "rfm", steps=20, checkpoint_every=3, out_dir=tmp_path, **FAST)
    ck = load_checkpoint(tmp_path / "ckpt.pt", kind="training")
    assert ck["step"] == 6
    assert all(torch.isfinite(v).all() for v in ck["model"]["state_dict"].values())


@pytest.mark.parametrize("bad,match", [
    (lambda x: x[:, :6], r"must have shape \(N, 7\)"),
    (lambda x: x.index_put_((torch.tensor([4]), torch.tensor([1])), torch.tensor(float("nan"))), "NaN"),
    (lambda x: torch.cat([x[:, :3], 3 * x[:, 3:]], -1), "norm"),
])
def test_bad_data_is_refused_before_any_work(tmp_path, bad, match):
    data = bad(_r3_so3(100, 0))
    with pytest.raises(ValueError, match=match):
        train(pg.PoseFlow("R3 x SO3", **SMALL), data, "rfm", steps=5, out_dir=tmp_path / "run", **FAST)
    assert not (tmp_path / "run").exists()


def test_nearly_unit_quaternions_are_normalised_with_a_warning():
    data = _r3_so3(100, 0)
    data[:10, 3:] *= 1.01
    with pytest.warns(UserWarning, match="10"):
        res = train(pg.PoseFlow("R3 x SO3", **SMALL), data, "rfm", steps=3, **FAST)
    assert res.steps_done == 3


def test_conditions_must_match_the_flow():
    data = _r3_so3(50, 0)
    with pytest.raises(ValueError, match="conditional"):
        train(pg.PoseFlow("R3 x SO3", cond_dim=2, **SMALL), data, "rfm", steps=2, **FAST)
    with pytest.raises(ValueError, match="unconditional"):
        train(pg.PoseFlow("R3 x SO3", **SMALL), (data, torch.zeros(50, 2)), "rfm", steps=2, **FAST)


def test_conditional_training_runs_and_samples():
    data = _r3_so3(200, 0)
    cond = data[:, :3] + 0.01  # e.g. an object position near the grasp
    res = train(pg.PoseFlow("R3 x SO3", cond_dim=3, **SMALL), (data, cond), "cnfm", steps=5, **FAST)
    x = res.flow.sample(8, condition=cond[0], seed=0, steps=4)
    assert x.shape == (8, 7)


def test_unknown_option_names_the_nearest_valid_one():
    with pytest.raises(TypeError, match="did you mean 'batch_size'"):
        train(pg.PoseFlow("S2", **SMALL), _vmf_mixture_s2(10, 0), "rfm", batchsize=3)
    with pytest.raises(ValueError, match='Invalid objective "nope"'):
        train(pg.PoseFlow("S2", **SMALL), _vmf_mixture_s2(10, 0), "nope", steps=1, progress=False)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_trains_on_cpu(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch, posegen as pg
        from posegen.training import train
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        data = torch.nn.functional.normalize(torch.tensor([0., 0., 1.]) + 0.3 * torch.randn(400, 3, generator=g), dim=-1)
        flow = pg.PoseFlow("S2", hidden=32, depth=2)
        if int(os.environ["RANK"]) == 1:
            torch.nn.init.normal_(flow.net.layers[0].weight)  # rank 0's weights must win the broadcast
        res = train(flow, data, "rfm", steps=12, batch_size=64, progress=False, device="cpu",
                    out_dir=r"{tmp_path / 'run'}", checkpoint_every=6)
        flat = torch.cat([p.detach().reshape(-1) for p in res.flow.parameters()])
        torch.save(flat, r"{tmp_path}" + f"/params_{{os.environ['RANK']}}.pt")
    """))
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = ([str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--nproc_per_node=2", f"--master_port={_free_port()}", str(script)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    p0, p1 = torch.load(tmp_path / "params_0.pt"), torch.load(tmp_path / "params_1.pt")
    assert torch.equal(p0, p1)  # gradients were averaged: every rank holds the same weights
    assert load_checkpoint(tmp_path / "run" / "ckpt.pt")["step"] == 12
    assert (tmp_path / "run" / "model.pt").exists()


def test_max_minutes_ends_cleanly_with_the_best_model_saved(tmp_path):
    data = _vmf_mixture_s2(300, 0)
    t0 = time.perf_counter()
    res = train(pg.PoseFlow("S2", **SMALL), data, "rfm", val_data=data[:64], steps=10 ** 6, max_minutes=0.02,
                val_every=10 ** 6, checkpoint_every=10 ** 6, out_dir=tmp_path, **{**FAST, "log_every": 10 ** 6})
    assert time.perf_counter() - t0 < 30
    assert 0 < res.steps_done < 10 ** 6 and res.stopped_early
    last = res.history[-1]
    assert last["stopped"] == "max_minutes=0.02" and math.isfinite(last["val_nll"])
    assert res.best_step == res.steps_done  # validated once, at the end
    assert (tmp_path / "model.pt").exists() and load_checkpoint(tmp_path / "ckpt.pt", kind="training")["elapsed_s"] > 0
    # the schedule followed the clock: the last lr is the cosine floor, not the start of a 10^6-step decay
    assert last["lr"] < 0.1 * FAST.get("lr", 2e-3) + 1e-12
    with pytest.raises(ValueError, match="max_minutes must be a positive number"):
        train(pg.PoseFlow("S2", **SMALL), data, "rfm", steps=2, max_minutes=0, **FAST)


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_the_budget_clock_counts_training_with_validation_off_it(clock):
    """0.01 minutes on either clock with a validation every step: the run stops at the budget on its clock, and
    the validations (rk4-8 on 64 points, each longer than a step) are counted beside it, not in it."""
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(256, 3), dim=-1)
    now = time.process_time if clock == "cpu" else time.perf_counter
    t0 = now()
    res = train(pg.PoseFlow("S2", hidden=16, depth=2), x, "rfm", val_data=x[:64], steps=None, max_minutes=0.01,
                clock=clock, batch_size=32, val_every=1, val_points=64, val_solver={"method": "rk4", "steps": 8},
                checkpoint_every=0, progress=False, device="cpu")
    total = now() - t0
    assert 0.6 <= res.seconds < 0.6 + 0.5 and res.steps_done > 1
    assert res.validation_seconds > 0.1
    assert res.seconds + res.validation_seconds <= total + 1e-6
    with pytest.raises(ValueError, match='Invalid clock "gpu"'):
        train(pg.PoseFlow("S2", hidden=16, depth=2), x, "rfm", steps=2, clock="gpu")


def test_max_minutes_in_configs():
    from posegen.config import ConfigError, default_config, resolve

    assert default_config()["train"]["max_minutes"] is None
    cfg = resolve({"manifold": "S2", "data": {"source": "earth", "name": "fire"}}, ["train.max_minutes=4"])
    assert cfg["train"]["max_minutes"] == 4
    with pytest.raises(ConfigError, match="max_minutes"):
        resolve({"manifold": "S2", "data": {"source": "earth", "name": "fire"}}, ["train.max_minutes=-1"])
