"""Shared pieces of posegen's benchmarks: the machine description, thread settings, timing, JSON results.

Every result file is one JSON object::

    {"benchmark": name, "args": {...}, "machine": machine_info(), "started": iso, "finished": iso,
     "duration_s": float, "results": [...]}

so that ``make_results.py`` can state, next to every table, the machine, the commit and the wall time
that produced it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from posegen.atomic import atomic_open

REPO = Path(__file__).resolve().parents[1]


def now_iso() -> str:
    """UTC time stamp ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> Dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}``: the checkout the numbers come from. ``dirty``
    counts only tracked code under ``posegen/`` and ``benchmarks/`` (others' untracked work is not ours, and a
    resumable benchmark's own results, written between its runs, are no change of the code)."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "posegen", "benchmarks",
                  ":(exclude)benchmarks/results", ":(exclude)benchmarks/RESULTS.md",
                  ":(exclude)benchmarks/checkpoints")
    return {"commit": sha, "dirty": None if status is None else bool(status)}


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> Dict[str, Any]:
    """What the numbers ran on: CPU, cores, threads, load, torch, CUDA device, commit, python."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    cuda = None
    if torch.cuda.is_available():
        cuda = {"device": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                "cuda": torch.version.cuda}
    try:
        from importlib.metadata import version

        pg_version = version("posegen")
    except Exception:  # not installed as a distribution: the checkout is still named by its commit
        pg_version = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg_1_5_15": load, "torch": torch.__version__, "cuda": cuda, "python": sys.version.split()[0],
            "platform": platform.platform(), "posegen": pg_version, **git_commit()}


def set_threads(n: int) -> int:
    """Use ``n`` intra-op threads (1 is far faster than 2 on a CPU shared with other jobs: measured ~30x
    on the 2-core development machine under a load average of 7-12)."""
    if int(n) < 1:
        raise ValueError(f"threads must be >= 1, got {n!r}")
    torch.set_num_threads(int(n))
    return torch.get_num_threads()


class Timer:
    """``with Timer() as t: ...; t.s`` wall seconds (``perf_counter``)."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0
        return False


def timeit(fn, repeat: int = 5, warmup: int = 1, min_time: float = 0.0) -> Dict[str, float]:
    """Median and min wall time of ``fn()`` over ``repeat`` calls after ``warmup`` calls (seconds).
    With ``min_time`` > 0, repeats continue until that much time was spent (at least ``repeat`` calls)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start) < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_s": times[len(times) // 2], "min_s": times[0], "n": len(times)}


def finite(x: Any) -> Any:
    """JSON-safe numbers: NaN/inf become None (JSON has no NaN), tensors become floats/lists."""
    if isinstance(x, torch.Tensor):
        x = x.tolist()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


class Result:
    """Collects one benchmark's rows and writes them with the machine description.

    ``res = Result("earth_nll", vars(args)); res.add({...}); res.write(path)``.
    """

    def __init__(self, benchmark: str, args: Dict[str, Any]):
        self.benchmark = benchmark
        self.args = {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()}
        self.machine = machine_info()
        self.started = now_iso()
        self.t0 = time.perf_counter()
        self.rows = []
        self.extra: Dict[str, Any] = {}

    def add(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)

    # settings that may differ between the sessions of one resumed run (what to run, and how in parallel)
    RESUMABLE = frozenset({"seeds", "datasets", "tasks", "objectives", "workers", "threads", "resume",
                           "objective_options", "panda_path"})

    def resume_from(self, path, key) -> Dict[Any, Dict[str, Any]]:
        """The finished rows of an earlier session's ``path`` (``{key(row): row}``), for ``--resume``.

        Refuses (ValueError) if that session used other protocol settings (steps, width, ...): mixing
        them in one table would be silent nonsense. Records the earlier sessions (start, duration, commit,
        rows) in ``earlier_sessions``, so the results say which rows came from which commit.
        """
        path = Path(path)
        if not path.exists():
            return {}
        old = read_json(path)
        diff = sorted(k for k in set(old.get("args", {})) | set(self.args)
                      if k not in self.RESUMABLE and old.get("args", {}).get(k) != self.args.get(k))
        if diff:
            raise ValueError(f"--resume: {path} was written with other settings ("
                             + ", ".join(f"{k}: {old.get('args', {}).get(k)!r} there, {self.args.get(k)!r} now"
                                         for k in diff)
                             + "); use another --out or the same settings")
        m = old.get("machine", {})
        self.extra["earlier_sessions"] = old.get("earlier_sessions", []) + [
            {"started": old.get("started"), "duration_s": old.get("duration_s"), "commit": m.get("commit"),
             "dirty": m.get("dirty"), "load_avg_1_5_15": m.get("load_avg_1_5_15"),
             "rows": len(old.get("results", []))}]
        return {key(row): row for row in old.get("results", [])}

    def payload(self) -> Dict[str, Any]:
        return finite({"benchmark": self.benchmark, "args": self.args, "machine": self.machine,
                       "started": self.started, "finished": now_iso(),
                       "duration_s": time.perf_counter() - self.t0, **self.extra, "results": self.rows})

    def write(self, path) -> Path:
        """Write the JSON (atomically, :func:`posegen.atomic.atomic_open`) and return its path."""
        path = Path(path)
        with atomic_open(path, "w", mkdir=True) as fh:
            fh.write(json.dumps(self.payload(), indent=1) + "\n")
        return path


def read_json(path) -> Dict[str, Any]:
    return json.loads(Path(path).read_text())


def csv_list(text: str, cast=str):
    """``"a,b"`` -> ``["a", "b"]`` (argparse helper); ``cast`` applied to each item."""
    return [cast(s.strip()) for s in str(text).split(",") if s.strip()]


def add_run_args(p, out: str) -> None:
    """The options every NLL script shares: learning rate, parallelism, resume and output file."""
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--resume", action="store_true", help="keep finished runs found in --out, run the rest")
    p.add_argument("--out", type=Path, default=Path(out))


def resolve_args(p, args, quick: Dict[str, Any], full: Dict[str, Any], choices: Dict[str, Sequence[str]]):
    """Fill options left unset from ``quick`` or ``full`` (per ``--quick``), split the comma lists (``seeds``
    as integers) and refuse unknown names in the ``choices`` lists with an argparse error."""
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.seeds = csv_list(args.seeds, int)
    for name, valid in choices.items():
        values = csv_list(getattr(args, name))
        for v in values:
            if v not in valid:
                p.error(f"--{name}: unknown value {v!r}; valid: {', '.join(valid)}")
        setattr(args, name, values)
    return args


def run_jobs(fn, jobs, workers: int = 1, threads: int = 1, on_result=None) -> list:
    """``[fn(job) for job in jobs]``, in ``workers`` processes (spawned, ``threads`` torch threads each)
    when ``workers > 1``. ``on_result(job, result)`` is called as each finishes (e.g. to save partial
    results, so an interrupted run keeps what it finished). Results come back in job order."""
    jobs = list(jobs)
    results = [None] * len(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            results[i] = fn(job)
            if on_result is not None:
                on_result(job, results[i])
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=set_threads, initargs=(threads,)) as pool:
        futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if on_result is not None:
                on_result(jobs[i], results[i])
    return results
