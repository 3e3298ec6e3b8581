"""examples/plan_with_ompl.py --urdf --quick end to end, on a robot from a file that is not built in.

The robot: a six-joint arm of cylinders and a box written here (its spheres fitted to those primitives into a
temporary cache). Checked: the table's rows and runs, the JSON equal to the returned record, the held-out
queries are top grasps in the bins (forward kinematics of the returned joints against the bin squares, the
heights and the downward tool axis) and valid for a checker built anew, and the experience was solved.
Minutes on this project's loaded 2-core CPU (RRT-Connect, IK and training), so marked slow."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest
import torch

from posegen.planning.scene import BINS, CollisionChecker, tabletop_scene
from posegen.robots import load

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plan_with_ompl.py"

CYL = '<collision><origin xyz="0 0 {z}"/><geometry><cylinder radius="{r}" length="{h}"/></geometry></collision>'
LIMIT = '<limit lower="-{0}" upper="{0}" effort="10" velocity="1"/>'
JOINTS = [("j1", "base_link", "link1", 0.10, "0 0 1", 3.1), ("j2", "link1", "link2", 0.10, "0 1 0", 2.0),
          ("j3", "link2", "link3", 0.45, "0 1 0", 2.6), ("j4", "link3", "link4", 0.40, "0 1 0", 2.6),
          ("j5", "link4", "link5", 0.08, "0 0 1", 3.1), ("j6", "link5", "link6", 0.08, "0 1 0", 2.6)]
LINKS = {"base_link": CYL.format(z=0.05, r=0.06, h=0.1), "link1": CYL.format(z=0.05, r=0.05, h=0.1),
         "link2": CYL.format(z=0.225, r=0.04, h=0.45), "link3": CYL.format(z=0.2, r=0.035, h=0.4),
         "link4": '<collision><origin xyz="0 0 0.04"/><geometry><box size="0.05 0.05 0.08"/></geometry></collision>',
         "link5": CYL.format(z=0.04, r=0.025, h=0.08), "link6": CYL.format(z=0.02, r=0.025, h=0.04), "tool": ""}


def arm_urdf() -> str:
    """A 6R arm standing at the origin, 1.3 m tall when straight: shoulder at 0.2 m, links 0.45 and 0.4 m,
    a wrist, and a fixed tool frame 4 cm past the flange."""
    links = "\n".join(f'  <link name="{n}">{g}</link>' for n, g in LINKS.items())
    joints = "\n".join(f'  <joint name="{j}" type="revolute"><parent link="{p}"/><child link="{c}"/>'
                       f'<origin xyz="0 0 {z}"/><axis xyz="{ax}"/>{LIMIT.format(lim)}</joint>'
                       for j, p, c, z, ax, lim in JOINTS)
    tool = ('  <joint name="tool_joint" type="fixed"><parent link="link6"/><child link="tool"/>'
            '<origin xyz="0 0 0.04"/></joint>')
    return f'<?xml version="1.0"?>\n<robot name="cylinder_arm6">\n{links}\n{joints}\n{tool}\n</robot>\n'


def example_module():
    spec = importlib.util.spec_from_file_location("plan_with_ompl_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_quick_urdf_comparison_plans_held_out_bin_queries(tmp_path, monkeypatch):
    pytest.importorskip("ompl")
    pytest.importorskip("trimesh")
    monkeypatch.setenv("POSEGEN_CACHE_DIR", str(tmp_path / "spheres"))
    urdf = tmp_path / "arm6.urdf"
    urdf.write_text(arm_urdf())
    out = tmp_path / "plan.json"
    rec = example_module().main(["--urdf", str(urdf), "--quick", "--experience-time-limit", "20",
                                 "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(rec))
    assert rec["robot"]["name"] == "cylinder_arm6" and rec["robot"]["dof"] == 6 and rec["robot"]["ee_link"] == "tool"
    names = [(r["planner"], r["sampler"]) for r in rec["rows"]]
    assert names == [("PRM", "OMPL uniform"), ("PRM", "uniform (batched)"), ("PRM", "posegen (80% learned)"),
                     ("PRM", "posegen (50% learned)"), ("RRTConnect", "OMPL uniform (reference)")]
    n = len(rec["queries"])
    assert 1 <= n <= 2 and all(r["runs"] == n for r in rec["rows"]) and len(rec["runs"]) == 5 * n
    for r in rec["rows"]:
        runs = [x for x in rec["runs"] if (x["planner"], x["sampler"]) == (r["planner"], r["sampler"])]
        assert r["success"] == pytest.approx(sum(x["solved"] for x in runs) / n)
        limit = rec["args"]["time_limit"]
        assert r["in_limit"] == pytest.approx(sum(x["solved"] and x["time_s"] <= limit for x in runs) / n)
        assert r["median_time_s"] == pytest.approx(statistics.median(x["time_s"] if x["solved"] else limit
                                                                     for x in runs))
    assert rec["experience"]["solved"] >= 1 and rec["experience"]["configurations"] > 0

    robot = load(urdf)
    checker = CollisionChecker(robot, tabletop_scene())
    z_lo, z_hi = rec["grasp_z"]
    for key, centre in (("start", BINS[0]), ("goal", BINS[1])):
        q = torch.tensor([x[key] for x in rec["queries"]], dtype=torch.float64)
        assert bool(checker.is_valid(q).all())
        T = robot.fk(q)
        assert bool(((T[:, :2, 3] - torch.tensor(centre, dtype=torch.float64)).abs() <= 0.03 + 1e-3).all())
        assert bool(((T[:, 2, 3] >= z_lo - 1e-3) & (T[:, 2, 3] <= z_hi + 1e-3)).all())
        torch.testing.assert_close(T[:, :3, 2], torch.tensor([[0.0, 0.0, -1.0]] * n, dtype=torch.float64),
                                   rtol=0, atol=2e-3)
