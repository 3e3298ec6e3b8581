"""The README's Python snippets run as written, in order, in one namespace (as a reader pastes them), from a
folder where ``data/`` is the repository's data and ``runs/`` is a temporary folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_snippets_to_run():
    assert len(snippets()) >= 5


def test_every_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pytorch_kinematics")
    pytest.importorskip("ompl")
    pytest.importorskip("trimesh")
    pytest.importorskip("mujoco")
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    env = {"__name__": "__readme__"}
    for i, code in enumerate(snippets()):
        try:
            exec(compile(code, f"README.md snippet {i}", "exec"), env)
        except Exception as e:  # noqa: BLE001 - name the snippet that failed
            raise AssertionError(f"README snippet {i} failed: {type(e).__name__}: {e}\n{code}") from e
    out = capsys.readouterr().out
    assert "100.0% exact" in out  # the pretrained IK sampler's refined draws
    assert os.path.exists(tmp_path / "runs" / "eef" / "pose.pt")
