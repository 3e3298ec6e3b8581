"""posegen.plots: every figure kind writes a real PNG, inputs are checked, matplotlib stays optional."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import posegen as pg  # noqa: E402
from posegen import plots  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 1024, f"{path} is only {len(data)} bytes"


def points(spec, n, seed):
    M = pg.parse(spec)
    g = torch.Generator().manual_seed(seed)
    x = M.sample_base(n, generator=g, dtype=torch.float64)
    return M, M.projx(x)


@pytest.mark.parametrize("spec", ["R1", "R2", "R5"])
def test_positions(tmp_path, spec):
    _, s = points(spec, 300, 0)
    _, d = points(spec, 200, 1)
    out = plots.plot_positions(tmp_path / f"{spec}.png", s, d.numpy())
    assert out == tmp_path / f"{spec}.png"
    assert_png(out)


# T7 (the Panda's joints, a 7 x 7 grid) is drawn by tests/test_cli.py through `posegen plot`.
@pytest.mark.parametrize("spec", ["T1", "T3"])
def test_torus_pairs(tmp_path, spec):
    _, s = points(spec, 200, 0)
    _, d = points(spec, 200, 1)
    assert_png(plots.plot_torus_pairs(tmp_path / "t.png", s, d, title=spec))


def test_torus_pairs_only_data_and_angle_mismatch(tmp_path):
    _, d = points("T3", 100, 1)
    assert_png(plots.plot_torus_pairs(tmp_path / "t.png", data=d))
    _, s = points("T2", 100, 0)
    with pytest.raises(ValueError, match="2 angles but data have 3"):
        plots.plot_torus_pairs(tmp_path / "u.png", s, d)


def test_rotations(tmp_path):
    _, s = points("SO3", 300, 0)
    _, d = points("SO3", 300, 1)
    assert_png(plots.plot_rotations(tmp_path / "r.png", s, -d))


def test_quat_to_rotvec_np_is_sign_invariant_and_in_the_ball():
    _, q = points("SO3", 200, 3)
    q = q.numpy()
    r = plots.quat_to_rotvec_np(q)
    assert r.shape == (200, 3)
    assert (abs(r - plots.quat_to_rotvec_np(-q)) < 1e-9).all()
    norms = (r ** 2).sum(1) ** 0.5
    assert norms.max() <= math.pi + 1e-9
    # the angle of a rotation is 2 acos|w|
    assert abs(norms - 2 * torch.as_tensor(abs(q[:, 3])).clamp(max=1).acos().numpy()).max() < 1e-7


def test_sphere_with_density_of_a_flow(tmp_path):
    flow = pg.PoseFlow("S2", hidden=8, depth=1, solver={"method": "euler", "steps": 2}).double()
    _, d = points("S2", 200, 1)
    s = flow.sample(100, seed=0)
    out = plots.plot_sphere(tmp_path / "s.png", s, d, flow, grid=6)
    assert_png(out)
    lon, lat, dens = plots.sphere_density_grid(flow, grid=6)
    assert lon.shape == (13,) and lat.shape == (7,) and dens.shape == (6, 12)
    # a density on S2: its integral over the sphere (cells weighted by their area) is close to 1
    area = (lon[1] - lon[0]) * (torch.sin(torch.as_tensor(lat[1:])) - torch.sin(torch.as_tensor(lat[:-1])))
    total = float((torch.as_tensor(dens) * area[:, None]).sum())
    assert abs(total - 1) < 0.05


def test_sphere_refuses_flows_off_s2(tmp_path):
    flow = pg.PoseFlow("S3", hidden=8, depth=1)
    with pytest.raises(ValueError, match="flows on S2"):
        plots.plot_sphere(tmp_path / "s.png", flow=flow)
    with pytest.raises(ValueError, match="give samples="):
        plots.plot_sphere(tmp_path / "s.png")


def test_samples_vs_data_one_figure_per_factor(tmp_path):
    M, s = points("R3 x T2 x SO3 x S2 x S3", 150, 0)
    _, d = points("R3 x T2 x SO3 x S2 x S3", 150, 1)
    paths = plots.plot_samples_vs_data(tmp_path, M, s, d, labels=["pos", "joints", "rot", "dir", "quat"])
    assert [p.name for p in paths] == ["samples_pos.png", "samples_joints.png", "samples_rot.png",
                                       "samples_dir.png", "samples_quat.png"]
    for p in paths:
        assert_png(p)


def test_samples_vs_data_checks_shapes_and_labels(tmp_path):
    M, s = points("R3 x SO3", 20, 0)
    with pytest.raises(ValueError, match=r"shape \(N, 7\)"):
        plots.plot_samples_vs_data(tmp_path, M, s[:, :5])
    with pytest.raises(ValueError, match="labels has 1 names"):
        plots.plot_samples_vs_data(tmp_path, M, s, labels=["pos"])
    with pytest.raises(ValueError, match="give samples= or data="):
        plots.plot_rotations(tmp_path / "r.png")


def test_training_curves_from_file_dedupes_resumed_steps(tmp_path):
    recs = [{"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.0, "val_nll": 1.5}, {"step": 20, "loss": 2.5},
            {"step": 30, "loss": 1.0, "val_nll": 1.2}]
    f = tmp_path / "metrics.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    got = plots.read_metrics(f)
    assert [r["step"] for r in got] == [10, 20, 30]
    assert got[1] == {"step": 20, "loss": 2.5, "val_nll": 1.5}
    assert_png(plots.plot_training_curves(f, tmp_path / "curves.png"))
    assert_png(plots.plot_training_curves([{"step": 1, "loss": -2.0}], tmp_path / "neg.png"))


def test_training_curves_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics file"):
        plots.plot_training_curves(tmp_path / "nope.jsonl", tmp_path / "c.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        plots.read_metrics(bad)
    with pytest.raises(ValueError, match="no training records"):
        plots.plot_training_curves([{"step": 1, "lr": 0.1}], tmp_path / "c.png")


@pytest.mark.parametrize("module", ["matplotlib.figure", "matplotlib.backends.backend_agg"])
def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    _, s = points("R3", 10, 0)
    with pytest.raises(ImportError, match=r"pip install \"posegen\[plot\]\""):
        plots.plot_positions(tmp_path / "p.png", s)
    assert not (tmp_path / "p.png").exists()


# ---------------------------------------------------------------------- the joint pair grid, drawn and read back
PANDA_LIMITS = [[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698], [-2.8973, 2.8973],
                [-0.0175, 3.7525], [-2.8973, 2.8973]]


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, kept for reading back (drawn, so extents are final)."""
    kept = []
    save = plots._save

    def keep(fig, out):
        kept.append(fig)
        return save(fig, out)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def asymmetric_joints(n=300, seed=0):
    """``(n, 3)`` joints inside the first three Panda limits whose every pair is asymmetric: q1 follows q0 on
    a steep line, q2 sits in a narrow band near its upper limit, so a transposed panel has another shape."""
    g = torch.Generator().manual_seed(seed)
    q0 = -2.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    q1 = 3 * (q0 + 2.25) + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    q2 = 2.5 + 0.2 * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.stack([q0, q1, q2], 1)


def test_pair_grid_samples_triangle_has_the_data_triangles_axes(tmp_path, figures):
    x = asymmetric_joints()
    plots.plot_torus_pairs(tmp_path / "p.png", samples=x, data=x, names=["q0", "q1", "q2"],
                           bounds=PANDA_LIMITS[:3])
    axes = [a for a in figures[0].axes]
    grid = [[axes[3 * i + j] for j in range(3)] for i in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            data_ax, sample_ax = grid[b][a], grid[a][b]
            d, s = data_ax.collections[0].get_offsets(), sample_ax.collections[0].get_offsets()
            # the same points on the same axes: x = coordinate a, y = coordinate b, in both triangles
            assert abs(d[:, 0] - x[:, a].numpy()).max() < 1e-12 and abs(d[:, 1] - x[:, b].numpy()).max() < 1e-12
            assert abs(s - d).max() < 1e-12, f"samples panel of ({a}, {b}) is transposed"
            assert sample_ax.get_xlim() == data_ax.get_xlim() == tuple(PANDA_LIMITS[a])
            assert sample_ax.get_ylim() == data_ax.get_ylim() == tuple(PANDA_LIMITS[b])


def _extents(texts, renderer):
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]


def _panda_grid(tmp_path, figures, k, title=None):
    """A ``k``-joint grid with the Panda's limits, as `posegen plot` draws it: ``(figure, renderer)``."""
    M = pg.parse("I7", limits=PANDA_LIMITS)
    x = M.sample_base(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[:, :k]
    plots.plot_torus_pairs(tmp_path / "p.png", x, x, names=[f"q{i}" for i in range(k)], title=title,
                           bounds=PANDA_LIMITS[:k])
    return figures[-1], figures[-1].canvas.get_renderer()


@pytest.mark.parametrize("k", [1, 2, 7])
def test_pair_grid_title_is_inside_the_figure(tmp_path, figures, k):
    long = "robot0_joint_pos (" + repr(pg.parse("I7", limits=PANDA_LIMITS)) + ")"  # wider than any figure
    fig, renderer = _panda_grid(tmp_path, figures, k, title=long)
    box, title = fig.bbox, fig._suptitle.get_window_extent(renderer)
    assert box.x0 <= title.x0 and title.x1 <= box.x1 and box.y0 <= title.y0 and title.y1 <= box.y1, title
    for ax in fig.axes:  # and above the panels
        assert title.y0 >= ax.get_window_extent(renderer).y1


@pytest.mark.parametrize("k", [2, 7])
def test_pair_grid_tick_labels_do_not_overlap(tmp_path, figures, k):
    """Neighbouring panels put a limit's label at the same edge: no two labels may overlap."""
    fig, renderer = _panda_grid(tmp_path, figures, k)
    xt = _extents([t for ax in fig.axes for t in ax.get_xticklabels()], renderer)
    yt = _extents([t for ax in fig.axes for t in ax.get_yticklabels()], renderer)
    assert len(xt) == 2 * k and len(yt) == 2 * (k - 1)
    for ext in (xt, yt):
        for m, a in enumerate(ext):
            assert fig.bbox.x0 <= a.x0 and a.x1 <= fig.bbox.x1
            for b in ext[m + 1:]:
                assert not a.overlaps(b), (a, b)


def test_samples_vs_data_titles_joints_by_their_short_spec(tmp_path, figures):
    M = pg.parse("I7", limits=PANDA_LIMITS)
    x = M.sample_base(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plots.plot_samples_vs_data(tmp_path, M, x, x, labels=["robot0_joint_pos"])
    text = figures[0]._suptitle.get_text()
    assert text.startswith("robot0_joint_pos (I7): joint pairs") and "2.8973" not in text


def test_workspace_draws_the_positions_on_three_planes(tmp_path, figures):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(120, 3, generator=g, dtype=torch.float64) * torch.tensor([0.3, 0.1, 0.05]) + 0.4
    d = torch.randn(80, 3, generator=g, dtype=torch.float64) * 0.2
    out = plots.plot_workspace(tmp_path / "w.png", s, d, title="panda (panda_hand_tcp)")
    assert_png(out)
    axes = figures[0].axes
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in axes] == [("x (m)", "y (m)"), ("x (m)", "z (m)"),
                                                                   ("y (m)", "z (m)")]
    for ax, (i, j) in zip(axes, ((0, 1), (0, 2), (1, 2))):
        data_pts, sample_pts = (c.get_offsets() for c in ax.collections)
        assert abs(data_pts - d[:, [i, j]].numpy()).max() < 1e-12
        assert abs(sample_pts - s[:, [i, j]].numpy()).max() < 1e-12
        # one scale for every view: the same span on both axes of every panel
        spans = {round(float(np.diff(lim)[0]), 9) for lim in (ax.get_xlim(), ax.get_ylim())}
        assert len(spans) == 1
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        plots.plot_workspace(tmp_path / "bad.png", s[:, :2])
