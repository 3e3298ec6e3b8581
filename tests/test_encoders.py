"""Flows conditioned on raw structured conditions through an encoder trained with them (a point cloud here)."""

from __future__ import annotations

import pytest
import torch

import posegen as pg
from posegen.models import PointCloudEncoder, make_encoder

ENCODER = {"kind": "pointnet", "out_dim": 8, "hidden": 16}


def _clouds(n: int, shift: torch.Tensor, gen: torch.Generator, points: int = 24) -> torch.Tensor:
    """``n`` noisy clouds ``(n, points, 3)`` around the unit sphere, moved by ``shift (n, 3)``."""
    u = torch.randn(n, points, 3, generator=gen, dtype=torch.float64)
    return u / u.norm(dim=-1, keepdim=True) * 0.2 + shift[:, None]


def test_pointnet_features_do_not_depend_on_the_order_of_the_points():
    torch.manual_seed(0)
    enc = PointCloudEncoder(out_dim=8, hidden=16).double()
    c = torch.randn(5, 40, 3, dtype=torch.float64)
    perm = torch.randperm(40)
    torch.testing.assert_close(enc(c), enc(c[:, perm]), rtol=0, atol=1e-12)
    assert enc(c).shape == (5, 8)
    assert not torch.allclose(enc(c[:1]), enc(c[1:2]))  # and they do depend on the cloud


def test_a_flow_learns_a_density_that_follows_the_cloud():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n = 512
    side = torch.randint(0, 2, (n,), generator=gen).double()          # the object is at x = 0 or at x = 2
    shift = torch.stack([2 * side, torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)], -1)
    clouds = _clouds(n, shift, gen)
    x = (2 * side + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64))[:, None]   # p(x | cloud)
    flow = pg.PoseFlow("R1", hidden=32, depth=2, encoder=ENCODER)
    before = [p.detach().clone() for p in flow.encoder.parameters()]
    pg.train(flow, (x.float(), clouds.float()), "rfm", steps=400, batch_size=64, lr=3e-3, warmup=20, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, flow.encoder.parameters()))  # trained with the flow
    for at in (0.0, 2.0):
        cloud = _clouds(1, torch.tensor([[at, 0.0, 0.0]], dtype=torch.float64), gen)[0].float()   # (P, 3): one cloud
        s = flow.sample(400, condition=cloud, seed=1)
        assert abs(float(s.mean()) - at) < 0.3, (at, float(s.mean()))


def test_an_encoded_conditional_density_integrates_to_one_and_survives_save_load(tmp_path):
    torch.manual_seed(1)
    flow = pg.PoseFlow("R1", hidden=16, depth=2, encoder=ENCODER).double()
    cloud = _clouds(1, torch.zeros(1, 3, dtype=torch.float64), torch.Generator().manual_seed(2))[0]
    grid = torch.linspace(-8, 8, 801, dtype=torch.float64)[:, None]
    lp = flow.log_prob(grid, condition=cloud, method="rk4", steps=32)
    integral = torch.trapezoid(lp.exp(), grid[:, 0])
    assert float(integral) == pytest.approx(1.0, abs=2e-3)
    flow.save(tmp_path / "f.pt")
    again = pg.PoseFlow.load(tmp_path / "f.pt")
    torch.testing.assert_close(again.log_prob(grid[::50], condition=cloud, method="rk4", steps=8),
                               flow.log_prob(grid[::50], condition=cloud, method="rk4", steps=8), rtol=0, atol=0)


def test_bad_encoders_and_conditions_are_refused():
    with pytest.raises(ValueError, match='Invalid encoder kind "voxels"'):
        make_encoder({"kind": "voxels"})
    with pytest.raises(ValueError, match="cond_dim=5 but the encoder gives 8"):
        pg.PoseFlow("R1", cond_dim=5, encoder=ENCODER)
    flow = pg.PoseFlow("R1", hidden=8, depth=1, encoder=ENCODER)
    with pytest.raises(ValueError, match=r"shape \(P, 3\) or \(B, P, 3\)"):
        flow.sample(4, condition=torch.zeros(10, 4))
    with pytest.raises(ValueError, match="1 or 4 raw conditions"):
        flow.sample(4, condition=torch.zeros(3, 10, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        flow.sample(4, condition=torch.full((10, 3), float("nan")))
    with pytest.raises(ValueError, match="raw condition for its encoder"):
        flow.sample(4)
