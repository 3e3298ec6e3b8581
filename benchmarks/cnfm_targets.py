"""Dump CNFM targets for a bit-for-bit comparison between two checkouts (refactors must not move a bit).

    python benchmarks/cnfm_targets.py dump /tmp/before.pt      # in the old checkout
    python benchmarks/cnfm_targets.py dump /tmp/after.pt       # in the new one
    python benchmarks/cnfm_targets.py compare /tmp/before.pt /tmp/after.pt

Dumps, on S2, T2, R2 x S2, S2 x R2, SO3, I2 x T1, R3 x T7 x S3 and R3 x SO3 in float32 and float64 (seeded):
pairwise and row log-kernels, the bilinear features of points and centres, seeded kernel draws, MixturePath
``log_prob`` and ``log_prob_dt_grad`` (bilinear and reference paths), and stratified subset targets.
"""

import sys

import torch

from posegen.manifolds import Interval, Product, Torus, parse
from posegen.paths import MixturePath, Schedule, log_kernel, pairwise_log_kernel, sample_kernel
from posegen.paths.kernels import centre_features, point_features


def dump(path: str) -> int:
    torch.set_num_threads(1)
    specs = {"S2": parse("S2"), "T2": parse("T2"), "R2xS2": parse("R2 x S2"), "SO3": parse("SO3"),
             "IxT": Product(Interval([-1.0, 0.0], [2.0, 3.0]), Torus(1)), "S2xR2": parse("S2 x R2"),
             "R3xT7xS3": parse("R3 x T7 x S3"), "R3xSO3": parse("R3 x SO3")}
    out = {}
    for name, M in specs.items():
        for dtype in (torch.float32, torch.float64):
            g = torch.Generator().manual_seed(0)
            y = M.sample_base(300, generator=g, dtype=dtype)
            x = M.sample_base(64, generator=g, dtype=dtype)
            t = torch.rand(64, generator=g, dtype=dtype)
            sch = Schedule(sigma_min=0.05)
            k = f"{name}/{dtype}"
            out[k + "/pair"] = pairwise_log_kernel(M, x, y[:50], t, sch)
            out[k + "/row"] = log_kernel(M, x, y[:64], t, sch)
            U, c = point_features(M, x, t, sch)
            out[k + "/U"], out[k + "/c"] = U, c
            out[k + "/psi"] = centre_features(M, y)
            out[k + "/sample"] = sample_kernel(M, y[:64], t, sch, generator=torch.Generator().manual_seed(1))
            p = MixturePath(M, y, schedule=sch, chunk_size=128)
            for i, r in enumerate(p.log_prob_dt_grad(x, t)):
                out[k + f"/targets{i}"] = r
            out[k + "/logp"] = p.log_prob(x, t)
            p.bilinear = False
            for i, r in enumerate(p.log_prob_dt_grad(x, t)):
                out[k + f"/ref{i}"] = r
            q = MixturePath(M, y, schedule=Schedule(sigma_min=0.05, kappa_max=2000), chunk_size=64, max_components=100)
            xs, idx = q.sample(t, generator=torch.Generator().manual_seed(2))
            out[k + "/xs"] = xs
            for i, r in enumerate(q.log_prob_dt_grad(xs, t, generator=torch.Generator().manual_seed(3), source_index=idx)):
                out[k + f"/sub{i}"] = r
    torch.save(out, path)
    return len(out)


def compare(a_path: str, b_path: str) -> list:
    a, b = torch.load(a_path), torch.load(b_path)
    if set(a) != set(b):
        raise SystemExit(f"the dumps hold different arrays: {sorted(set(a) ^ set(b))[:5]}")
    return [k for k in a if not torch.equal(a[k], b[k])]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        print(f"{dump(sys.argv[2])} arrays written to {sys.argv[2]}")
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        bad = compare(sys.argv[2], sys.argv[3])
        print(f"differ: {bad}" if bad else "all arrays equal bit for bit")
        sys.exit(1 if bad else 0)
    else:
        raise SystemExit(__doc__)
