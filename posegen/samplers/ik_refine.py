"""The refine stage of :meth:`IKSampler.sample <posegen.samplers.IKSampler.sample>` (draw -> refine -> select):
its settings, each with the measurements behind it, and the merge of retry candidates into the rows they retry.

Draws that are refined anyway need a start in the right basin, not a precise one, so they are made with few
integrator steps (:data:`REFINE_SAMPLE_SOLVER`), wider (:data:`REFINE_TEMPERATURE`) and, on a CPU with native
bfloat16 products, in bfloat16 (:func:`native_bf16`). Spares and retries (:data:`REFINE_DEFAULTS`, per shipped
weights :data:`PRETRAINED_REFINE_OPTIONS`) make every target's ``n`` rows exact.
"""

from __future__ import annotations

import functools
from typing import Dict

import torch

from .ik_select import take_rows, valid_rows

__all__ = ["REFINE_SAMPLE_SOLVER", "REFINE_TEMPERATURE", "LAST_ROUND_ITERS", "RETRY_STARTS", "REFINE_DEFAULTS",
           "PRETRAINED_REFINE_OPTIONS", "keep_better", "native_bf16"]

#: sampling integrator when the samples are refined anyway: DLS needs a start in the right basin, not a precise
#: one. With the sufficient-decrease DLS, on 100 held-out targets x 50 (thread CPU time per 1000 exact solutions,
#: success; 5-minute models): Panda rk4 x 4 / rk4 x 2 / midpoint x 2 / euler x 2: 0.35 / 0.27 / 0.26 / 0.22 s, all
#: >= 99.94 %, but mean pairwise distance 4.55 / 4.53 / 4.47 / 3.95 rad (few Euler steps average the branches
#: together). With the shipped weights, ``need=`` refinement and spare 0.5 (100 held-out targets x 20, 5 rounds each
#: in turns with Robotics Toolbox's ik_LM from random starts, one thread of the shared 2-core CPU under load;
#: benchmarks/results/ik_speed_*_chunk{100,20}{,_midpoint2}.json as of git 5de44cd, the solver before Chan's
#: damping, float32 draws, separate runs; ik_LM Panda 0.222-0.227, UR5e
#: 0.085-0.089 ms): euler x 3 / midpoint x 2 cost Panda 0.065 / 0.086 ms per exact solution at 100 targets per call
#: and 0.095 / 0.122 at 20, UR5e 0.142 / 0.178 and 0.214 / 0.215, with a mean pairwise distance of 4.09 / 4.45
#: rad (Panda; ik_LM 3.95) and 10.9 / 11.6 rad (UR5e; ik_LM 10.1). Three Euler steps (3 network evaluations) keep
#: more spread than ik_LM at 0.76-0.80 of midpoint x 2's cost (the UR5e at 20 targets per call: the same cost);
#: ``method="midpoint", steps=2`` buys the wider spread back
REFINE_SAMPLE_SOLVER = {"method": "euler", "steps": 3}
#: base temperature of refined draws. Measured on 200 held-out targets x 50 (benchmarks/ik.py's protocol, 20-min
#: Panda and 10-min iiwa14 models): mean pairwise distance of the exact solutions 3.99 / 4.34 / 4.46 rad at
#: temperature 1 / 1.4 / 1.6 on the Panda (DLS from random starts: 4.34), 5.27 / 5.53 / 5.70 at 1 / 1.3 / 1.6
#: on the iiwa14 (5.49), success 99.9 % or more throughout; at 2 the iiwa14's fell to 99.91 %. DLS from random
#: starts spreads its solutions partly by leaving 15 % of them on a joint limit; a wider draw does the same.
REFINE_TEMPERATURE = 1.6
#: the last retry round refines uniform random starts for this many times ``max_iters``
LAST_ROUND_ITERS = 4
#: where the new starts of the retry rounds before the last come from (:meth:`IKSampler.sample`'s ``retry_starts``)
RETRY_STARTS = ("draws", "uniform")
#: :meth:`IKSampler.sample`'s refinement settings when the caller leaves them unset
REFINE_DEFAULTS = {"spare": 0.5, "retry_draws": 4, "retry_starts": "draws"}
#: settings measured for shipped weights, which :meth:`IKSampler.pretrained` puts in ``refine_options``. UR5e: its
#: flow's refine-time draws converge little better than uniform starts (85 against 73 % exact after 10 iterations,
#: results/ik_speed_convergence_ur5e.json), so fewer spare draws and more, uniform, retry starts (no flow call for
#: a handful of rows) pay: CPU ms per exact solution 0.055 -> 0.042 at 100 targets per call and 0.092 -> 0.073 at
#: 20, spread 10.41 -> 10.34 rad (results/ik_speed_ur5e_chunk{100,20}{,_spare025_uniform8}.json, 5 rounds each).
#: On the Panda, whose draws converge far better than uniform starts (90 against 43 %), the same settings cost
#: about a quarter more (0.042 -> 0.052 and 0.067 -> 0.084 ms), so they are not the defaults
PRETRAINED_REFINE_OPTIONS = {"ur5e": {"spare": 0.25, "retry_draws": 8, "retry_starts": "uniform"}}


def keep_better(out: Dict[str, torch.Tensor], ti: torch.Tensor, si: torch.Tensor,
                 new: Dict[str, torch.Tensor]) -> None:
    """In place: row ``(ti[i], si[i])`` of ``out`` takes the best of its candidates ``new`` (``(F, c)`` entries,
    ``(F, c, dof)`` joints; valid first, then the smallest position error) if that is valid where the row is
    not, or closer."""
    ok = valid_rows(new)
    pe = new["position_error"]
    best = (pe + torch.where(ok, 0.0, 1e6)).argmin(1, keepdim=True)  # (F, 1)
    pick = take_rows(new, best)
    better = valid_rows(pick)[:, 0] | (pick["position_error"][:, 0] < out["position_error"][ti, si])
    for key, v in pick.items():
        old = out[key][ti, si]
        mask = better if old.dim() == 1 else better[:, None]
        out[key][ti, si] = torch.where(mask, v[:, 0].to(old.dtype), old)


@functools.lru_cache(maxsize=None)
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (oneDNN sees AVX512-BF16 or AMX); without that,
    bfloat16 products are emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


