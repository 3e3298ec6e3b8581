"""GraspSampler: grasp poses conditioned on an object's point cloud, with the jaw symmetry exact."""

from __future__ import annotations

import math

import pytest
import torch

from posegen.rotations import se3_from_pos_quat
from posegen.samplers import GraspSampler
from posegen.samplers.grasps import jaw_flip


def _box_cloud(size, n: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` points on the surface of a box of edge lengths ``size`` centred at the origin."""
    g = torch.Generator().manual_seed(seed)
    half = torch.as_tensor(size, dtype=torch.float64) / 2
    p = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * half
    face = torch.randint(3, (n,), generator=g)
    sign = torch.randint(2, (n,), generator=g).double() * 2 - 1
    p[torch.arange(n), face] = sign * half[face]
    return p


def _top_grasps(size, n: int, seed: int = 0) -> torch.Tensor:
    """Top-down grasps of a box: approach -z from above its top face, fingers closing along x, any yaw
    multiple of pi/2 (the analytic antipodal grasps of a box through its centre)."""
    g = torch.Generator().manual_seed(seed)
    yaw = torch.randint(4, (n,), generator=g).double() * math.pi / 2
    down = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)   # xyzw: pi about x, z points down
    zq = torch.stack([torch.zeros(n), torch.zeros(n), torch.sin(yaw / 2), torch.cos(yaw / 2)], -1).double()
    # q = down * zq (rotate about the local z)
    x1, y1, z1, w1 = down
    x2, y2, z2, w2 = zq.unbind(-1)
    q = torch.stack([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2], -1)
    pos = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * 0.02   # within 1 cm of the top face's centre
    pos[:, 2] = float(size[2]) / 2 + 0.1034                                     # the hand frame above the TCP
    return se3_from_pos_quat(pos, q, "xyzw")


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    sizes = [(0.05, 0.05, 0.05), (0.05, 0.05, 0.2)]   # a cube and a tall box: their grasps differ in height
    objects = [_box_cloud(s, seed=k) for k, s in enumerate(sizes)]
    grasps = [_top_grasps(s, 64, seed=k) for k, s in enumerate(sizes)]
    gs = GraspSampler(points=64, hidden=64, depth=2, encoder_dim=16, encoder_hidden=32)
    gs.fit(objects, grasps, steps=500, batch_size=128, lr=3e-3, seed=0)
    return gs, sizes, objects


def test_samples_follow_the_object(trained):
    gs, sizes, objects = trained
    for size, obj in zip(sizes, objects):
        T = gs.sample(obj, 200, seed=1)
        assert T.shape == (200, 4, 4)
        torch.testing.assert_close(T[:, :3, :3].transpose(-1, -2) @ T[:, :3, :3],
                                   torch.eye(3, dtype=torch.float64).expand(200, 3, 3), atol=1e-5, rtol=0)
        want = size[2] / 2 + 0.1034
        assert abs(float(T[:, 2, 3].median()) - want) < 0.03, (size, float(T[:, 2, 3].median()), want)
        assert float((T[:, 2, 2] < -0.7).float().mean()) > 0.8   # approach axis points down


def test_log_prob_is_jaw_symmetric_and_ranks(trained, tmp_path):
    gs, sizes, objects = trained
    T = gs.sample(objects[0], 16, seed=2)
    torch.testing.assert_close(gs.log_prob(objects[0], T), gs.log_prob(objects[0], jaw_flip(T)), rtol=0, atol=1e-9)
    ranked = gs.sample(objects[0], 16, seed=2, rank=True)
    lp = gs.log_prob(objects[0], ranked)
    assert bool((lp[:-1] >= lp[1:] - 1e-9).all())
    # best_of=2: the 8 most probable of the same 16 draws, ranked
    best = gs.sample(objects[0], 8, seed=2, best_of=2)
    torch.testing.assert_close(best, ranked[:8], rtol=0, atol=0)
    with pytest.raises(ValueError, match="best_of must be a positive integer"):
        gs.sample(objects[0], 8, best_of=0)
    gs.save(tmp_path / "g.pt")
    again = GraspSampler.load(tmp_path / "g.pt")
    torch.testing.assert_close(again.log_prob(objects[0], T), gs.log_prob(objects[0], T), rtol=0, atol=0)


def test_bad_inputs_are_refused(trained):
    gs, _, objects = trained
    with pytest.raises(ValueError, match=r"\(P, 3\) point cloud"):
        gs.sample(torch.zeros(10, 4), 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        gs.sample(torch.full((10, 3), float("nan")), 3)
    with pytest.raises(ValueError, match=r"\(N, 4, 4\)"):
        gs.log_prob(objects[0], torch.zeros(3, 3, 4))
    bad = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    bad[1, 0, 0] = 2.0
    with pytest.raises(ValueError, match="not rigid transforms"):
        gs.log_prob(objects[0], bad)
    with pytest.raises(ValueError, match="one grasp array per object"):
        GraspSampler(points=16).fit([objects[0]], [], steps=1)
    with pytest.raises(ValueError, match="have no grasps"):
        GraspSampler(points=16).fit([objects[0]], [torch.zeros(0, 4, 4)], steps=1)


@pytest.mark.parametrize("per_cloud", [1, 3, 8])
def test_training_draw_groups_rows_by_cloud_and_keeps_grasps_uniform(per_cloud):
    """Rows come in groups that share an object and one cloud, and each row's grasp is uniform over all grasps
    (objects of 2, 5 and 13 grasps: an object is drawn in proportion to its grasps)."""
    counts = [2, 5, 13]
    sizes = [(0.05, 0.05, 0.05 * (k + 1)) for k in range(len(counts))]
    objects = [_box_cloud(s, n=64, seed=k) for k, s in enumerate(sizes)]
    grasps = [_top_grasps(s, c, seed=k) for k, (s, c) in enumerate(zip(sizes, counts))]
    gs = GraspSampler(points=16, hidden=8, depth=1, encoder_dim=4, encoder_hidden=8)
    draw = gs._stream(objects, grasps, clouds_per_object=4, grasps_per_cloud=per_cloud)
    n = 20000 - 20000 % per_cloud + 1            # a last, incomplete group too
    x, clouds = draw(n, torch.Generator().manual_seed(0))
    assert x.shape == (n, 7) and clouds.shape == (n, 16, 3)
    # which grasp each row is (up to the jaw flip: same position, rotation axes x and y negated)
    table = torch.cat(grasps)
    pos = table[:, :3, 3]
    row = torch.cdist(x[:, :3].double(), pos).argmin(1)
    assert torch.allclose(pos[row], x[:, :3].double(), atol=1e-12)
    owner = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))[row]
    m = n - n % per_cloud
    groups = clouds[:m].reshape(-1, per_cloud, 16 * 3)
    assert (groups == groups[:, :1]).all(), "rows of a group share one cloud"
    assert (owner[:m].reshape(-1, per_cloud) == owner[:m].reshape(-1, per_cloud)[:, :1]).all()
    freq = torch.bincount(row, minlength=len(table)).double() / n
    expected = 1.0 / len(table)
    # binomial standard error of each of 20 frequencies; 5 sigma
    assert (freq - expected).abs().max() < 5 * math.sqrt(expected * (1 - expected) / (n / per_cloud))


def test_repeated_conditions_are_encoded_once_with_the_same_features():
    """The flow encodes each distinct raw condition once; the features equal encoding every row."""
    gs = GraspSampler(points=32, hidden=8, depth=1, encoder_dim=6, encoder_hidden=16)
    flow = gs.flow.double()
    clouds = torch.stack([_box_cloud((0.05, 0.05, 0.05 * (k + 1)), n=32, seed=k) for k in range(3)])
    batch = clouds[torch.tensor([0, 2, 2, 1, 0, 0, 2])]
    calls = []
    hook = flow.encoder.register_forward_hook(lambda m, a, out: calls.append(a[0].shape[0]))
    features = flow._check_condition(batch, batch.shape[0])
    hook.remove()
    assert calls == [3]
    assert torch.allclose(features, flow.encoder(batch), atol=1e-12, rtol=0)


def test_the_shipped_panda_model_grasps_an_unseen_box_where_it_is():
    """The pretrained weights load in seconds and put the tool centre point of their grasps on a box they never
    saw (a 4 x 6 x 10 cm box centred at the origin): the TCPs within 1 cm of the box (median) and 90 % within 3 cm
    (73 % of its grasps hold on unseen objects, so some miss; an untrained model's are metres away)."""
    gs = GraspSampler.pretrained("panda")
    assert gs.gripper == "panda" and gs.training["steps"] > 0 and gs.training["objects"] > 100
    size = torch.tensor([0.04, 0.06, 0.10], dtype=torch.float64)
    T = gs.sample(_box_cloud(size.tolist(), n=512, seed=3), 32, seed=0)
    assert T.shape == (32, 4, 4)
    R = T[:, :3, :3]
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=torch.float64).expand(32, 3, 3),
                               atol=1e-6, rtol=0)
    tcp = T[:, :3, 3] + 0.1034 * R[:, :, 2]
    outside = (tcp.abs() - size / 2).clamp_min(0).norm(dim=-1)
    assert outside.median() < 0.01 and (outside < 0.03).double().mean() >= 0.9, outside
