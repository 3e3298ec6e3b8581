"""``benchmarks/ik.py speed``: time per exact IK solution, success and diversity of posegen's refined sampler,
DLS from uniform random starts (one start per requested solution, and random restarts carried to every row exact),
and Robotics Toolbox's C++ Levenberg-Marquardt (``ik_LM``) from random starts.

    OMP_NUM_THREADS=1 python benchmarks/ik.py speed --robot panda --targets 100 --per-target 20 --chunk 100
    # the shipped weights (IKSampler.pretrained); JSON to benchmarks/results/ik_speed_panda_chunk100.json.
    # --checkpoint runs/ik_bench/panda_2min.pt times a sampler of your own instead

Protocol: ``--targets`` poses from joints drawn uniformly inside the limits (``--target-seed``, as
benchmarks/ik.py eval), ``--per-target`` solutions each. The methods take turns chunk by chunk (``--chunk``
targets per call), on one thread, so a change in the machine's load hits them alike; ``--rounds`` repeats the whole
protocol with other seeds. Every returned solution is
checked by an independent forward kinematics (the robot's pytorch_kinematics chain, not the program posegen
solves with): exact = position error < 1 mm, rotation error < 0.01 rad and inside the joint limits. Reported:
the exact share, this thread's CPU time and the wall time per exact solution, and per target the mean pairwise
joint distance of its exact solutions (rad) and their clusters (connected at ``--cluster-eps``).

Two random-start baselines, because they answer different questions: ``dls_<it>`` refines one uniform start per
requested solution for ``it`` iterations and returns what it reached (its missing solutions are simply not
counted: 12 % of the UR5e's rows, 29 % of the Panda's), and ``restarts_it<it>_spare<s>`` returns as many exact
rows as the sampler does, through the sampler's own completion machinery (spare rows that stop once a target has
its ``n``, retry rounds for the rows still failing, a longer last round) fed with uniform random starts instead of
the flow's draws (:class:`RandomRestarts`): the fair "random restarts" for a caller who needs ``n`` solutions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from common import Result, set_threads
from ik_protocol import diversity, targets_for

from posegen.robots import load, solve_ik
from posegen.robots.ik import parse_targets, pose_errors
from posegen.samplers import IKSampler
from posegen.samplers.ik import REFINE_SAMPLE_SOLVER, REFINE_TEMPERATURE

RESULTS = Path(__file__).resolve().parent / "results"


def add_speed_parser(sub) -> None:
    sp = sub.add_parser("speed", help="posegen refined vs DLS and rtb ik_LM from random starts: time per "
                        "exact solution, success, diversity")
    sp.add_argument("--robot", default="panda")
    sp.add_argument("--checkpoint", default=None, help="an IKSampler checkpoint (from the train step); default: "
                    "the weights shipped for --robot (IKSampler.pretrained)")
    sp.add_argument("--targets", type=int, default=100)
    sp.add_argument("--per-target", type=int, default=20)
    sp.add_argument("--chunk", type=int, default=20, help="targets per call; the methods take turns per chunk")
    sp.add_argument("--rounds", type=int, default=1, help="repeat the protocol with other seeds (per-round times "
                    "kept: the spread under the machine's load)")
    sp.add_argument("--target-seed", type=int, default=10_000)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--dls-iters", type=lambda v: [int(x) for x in v.split(",") if x], default=[30])
    sp.add_argument("--restarts", type=_restart_settings, default="10:0.5,10:1,20:1",
                    help="random restarts to completion (RandomRestarts): iterations:spare pairs, one baseline each "
                         "(10:0.5 was the UR5e's fastest, 20:1 the Panda's, of 10/20/30 x 0.5/1 in session 13)")
    sp.add_argument("--cluster-eps", type=float, default=0.2)
    sp.add_argument("--sample-options", default="{}", help="JSON of IKSampler.sample keywords (default: its own)")
    sp.add_argument("--no-rtb", action="store_true", help="leave out the Robotics Toolbox baseline")
    sp.add_argument("--threads", type=int, default=1)
    sp.add_argument("--suffix", default="", help="appended to the results file's name")
    sp.add_argument("--out", default=str(RESULTS))


def verified_errors(robot, q: torch.Tensor, targets: torch.Tensor):
    """Position (m) and rotation (rad) errors of ``q (T, n, dof)`` against ``targets (T, 7)`` (xyzw) by the
    pytorch_kinematics chain of ``robot`` (independent of the program posegen's solver uses)."""
    backend = robot.kinematics
    robot.kinematics = "pytorch_kinematics"
    try:
        pos, R = parse_targets(targets, dtype=torch.float64)
        _, pe, re = pose_errors(robot.fk(q), pos[:, None], R[:, None])
    finally:
        robot.kinematics = backend
    return pe, re


def _restart_settings(text: str):
    """``"10:0.5,20:1"`` -> ``[(10, 0.5), (20, 1.0)]`` (iterations per refinement, spare share)."""
    out = []
    for item in (t for t in text.split(",") if t):
        it, _, spare = item.partition(":")
        out.append((int(it), float(spare or 0.5)))
    return out


class RandomRestarts(IKSampler):
    """:meth:`IKSampler.sample`'s refinement, spares and retry rounds with uniform random joints where the flow's
    draws would be: the network is never called (``retry_starts="uniform"`` keeps the retries flow-free too)."""

    def draw_joints(self, cond, seed=None, **_):
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
        return self.robot.manifold.sample_base((cond.shape[0],), generator=gen, dtype=torch.float64)


def solvers_for(robot, ik, per: int, args):
    """``{name: solve(part (t, 7), seed) -> joints (t, per, dof)}``."""
    opts = json.loads(args.sample_options)
    solvers = {"posegen": lambda part, seed: ik.sample(part, per, seed=seed, refine=True, **opts)["joints"]}
    for it in args.dls_iters:
        solvers[f"dls_{it}"] = lambda part, seed, it=it: solve_ik(robot, part, robot.manifold.sample_base(
            (part.shape[0], per), generator=torch.Generator().manual_seed(seed), dtype=torch.float64),
            max_iters=it).joints
    restarts = RandomRestarts(robot, _flow=ik.flow)
    for it, spare in args.restarts:
        solvers[f"restarts_it{it}_spare{spare:g}"] = lambda part, seed, it=it, spare=spare: restarts.sample(
            part, per, seed=seed, refine=True, max_iters=it, spare=spare, retry_starts="uniform")["joints"]
    if not args.no_rtb:
        try:
            from ik_rtb import RtbLM
            rtb = RtbLM(robot)
            solvers["rtb_ik_lm"] = lambda part, seed: rtb.solve(part, per, seed)
        except (ImportError, ValueError) as e:  # not installed, or a chain it does not model (mimic joints)
            print(f"skipping the rtb baseline: {e}", flush=True)
    return solvers


def _timed_rounds(solvers, targets, chunk: int, rounds: int, seed: int):
    """Every solver on every chunk of ``targets``, in turns (chunk by chunk, solver by solver), ``rounds`` times
    with other seeds: ``(joints {name: (rounds * T, per, dof)}, cpu {name: [s per round]}, wall {name: [...]})``."""
    joints = {k: [] for k in solvers}
    cpu, wall = {k: [0.0] * rounds for k in solvers}, {k: [0.0] * rounds for k in solvers}
    for r in range(rounds):
        for c in range(0, targets.shape[0], chunk):
            part = targets[c:c + chunk]
            for name, solve in solvers.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                joints[name].append(solve(part, seed + 100_003 * r + c))
                cpu[name][r] += time.thread_time() - c0
                wall[name][r] += time.perf_counter() - t0
    return {k: torch.cat(v).double() for k, v in joints.items()}, cpu, wall


def cmd_speed(args):
    set_threads(args.threads)
    robot = load(args.robot)
    targets = targets_for(robot, args.targets, args.target_seed)
    ik = IKSampler.pretrained(args.robot) if args.checkpoint is None else IKSampler.load(args.checkpoint)
    solvers = solvers_for(robot, ik, args.per_target, args)
    joints, cpu, wall = _timed_rounds(solvers, targets, args.chunk, args.rounds, args.seed)
    res = Result("ik_speed", vars(args))
    res.extra["training"] = {k: v for k, v in ik.training.items() if k != "history"}
    res.extra["model"] = {"checkpoint": Path(args.checkpoint).name if args.checkpoint else f"pretrained:{args.robot}",
                          **ik.flow.config}
    all_targets = targets.repeat(args.rounds, 1)
    per_round = args.targets * args.per_target
    for name in solvers:
        q = joints[name]
        pe, re = verified_errors(robot, q, all_targets)
        exact = (pe < 1e-3) & (re < 1e-2) & robot.within_limits(q)
        n = int(exact.sum())
        n_round = exact.reshape(args.rounds, -1).sum(1).tolist()
        row = {"robot": args.robot, "method": name, "solutions": q.shape[0] * q.shape[1], "exact": n,
               "success": n / (q.shape[0] * q.shape[1]), "cpu_ms_per_exact": 1e3 * sum(cpu[name]) / max(n, 1),
               "wall_ms_per_exact": 1e3 * sum(wall[name]) / max(n, 1),
               "cpu_ms_per_exact_by_round": [1e3 * c / max(k, 1) for c, k in zip(cpu[name], n_round)],
               "solutions_per_round": per_round, "diversity": diversity(q, exact, args.cluster_eps)}
        res.add(row)
        print(json.dumps(row), flush=True)
    print(f"wrote {res.write(Path(args.out) / f'ik_speed_{args.robot}_chunk{args.chunk}{args.suffix}.json')}")


# ------------------------------------------------------------------------------------------ convergence
#: solve_ik's step rule before Chan's damping (its defaults then): steps that do not lower the cost are refused
REFUSING_RULE = {"accept": "decrease", "error_damping": 0.0, "max_step": 0.5, "damping": 1e-3}


def add_convergence_parser(sub) -> None:
    cp = sub.add_parser("convergence", help="solve_ik's share of exact solutions after 5-40 iterations from the "
                        "sampler's draws (float32, bfloat16) and uniform starts, per step rule and error damping")
    cp.add_argument("--robot", default="panda")
    cp.add_argument("--targets", type=int, default=100)
    cp.add_argument("--starts", type=int, default=30, help="starts per target")
    cp.add_argument("--iters", type=lambda v: [int(x) for x in v.split(",")], default=[5, 10, 20, 40])
    cp.add_argument("--k", type=lambda v: [float(x) for x in v.split(",")], default=[0.03, 0.1, 0.3],
                    help="error_damping values of the Chan rule")
    cp.add_argument("--target-seed", type=int, default=10_000)
    cp.add_argument("--seed", type=int, default=1)
    cp.add_argument("--threads", type=int, default=1)
    cp.add_argument("--out", default=str(RESULTS))


def _starts(robot, ik, targets, m: int, seed: int):
    """``{name: (joints (T, m, dof) float64, CPU s of the draw)}``: the sampler's refine-time draws in float32
    and bfloat16 (after one warm-up draw each), and uniform joints."""
    cond = ik.conditions(targets).repeat_interleave(m, 0)
    out = {}
    for name, bf16 in (("flow_fp32", False), ("flow_bf16", True)):
        draw = {"method": REFINE_SAMPLE_SOLVER["method"], "steps": REFINE_SAMPLE_SOLVER["steps"],
                "temperature": REFINE_TEMPERATURE, "bf16": bf16}
        with torch.no_grad():
            ik.draw_joints(cond[:m], seed, **draw)
            c0 = time.thread_time()
            q = ik.draw_joints(cond, seed, **draw)
            out[name] = (q.double().reshape(targets.shape[0], m, -1), time.thread_time() - c0)
    c0 = time.thread_time()
    q = robot.manifold.sample_base(targets.shape[0] * m, generator=torch.Generator().manual_seed(seed),
                                   dtype=torch.float64)
    out["uniform"] = (q.reshape(targets.shape[0], m, -1), time.thread_time() - c0)
    return out


def cmd_convergence(args):
    set_threads(args.threads)
    robot = load(args.robot)
    targets = targets_for(robot, args.targets, args.target_seed)
    ik = IKSampler.pretrained(args.robot)
    rules = {"refusing": REFUSING_RULE, **{f"chan_k{k:g}": {"error_damping": k} for k in args.k}}
    res = Result("ik_convergence", vars(args))
    res.extra["rules"] = rules
    for start, (q, draw_s) in _starts(robot, ik, targets, args.starts, args.seed).items():
        for rule, opts in rules.items():
            row = {"robot": args.robot, "starts": start, "rule": rule, "draw_cpu_ms": 1e3 * draw_s}
            for it in args.iters:
                c0 = time.thread_time()
                out = solve_ik(robot, targets, q, max_iters=it, **opts)
                cpu = time.thread_time() - c0
                row[f"exact_{it}"] = float(out.success.double().mean())
                row[f"cpu_ms_{it}"] = 1e3 * cpu
            res.add(row)
            print(json.dumps(row), flush=True)
    print(f"wrote {res.write(Path(args.out) / f'ik_speed_convergence_{args.robot}.json')}")
