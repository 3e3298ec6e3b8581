"""posegen.atomic, the one writer of posegen's files: a failure mid-write leaves the previous file intact and
no temporary file; the file is fsynced before the rename and the folder after it; every writer of posegen
(checkpoints, point files, configs, the metrics log rewrite) goes through it."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import torch
import yaml

from posegen.atomic import atomic_open, atomic_path, default_file_mode


class Boom(Exception):
    pass


def _listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("writer", ["torch", "h5py", "npz", "json", "yaml", "bytes"])
def test_writes_by_path_or_handle_and_a_failure_keeps_the_old_file(tmp_path, writer):
    suffix = {"torch": ".pt", "h5py": ".h5", "npz": ".npz", "json": ".json", "yaml": ".yaml", "bytes": ".bin"}
    path = tmp_path / f"f{suffix[writer]}"

    def write(value, fail=False):
        if writer in ("json", "yaml", "bytes"):
            mode = "wb" if writer == "bytes" else "w"
            with atomic_open(path, mode) as fh:
                if writer == "json":
                    json.dump({"v": value}, fh)
                elif writer == "yaml":
                    yaml.safe_dump({"v": value}, fh)
                else:
                    fh.write(bytes([value]) * 100)
                if fail:
                    fh.flush()  # part of the new content is on disk when the failure comes
                    raise Boom
            return
        with atomic_path(path) as tmp:
            assert tmp.parent == path.parent and tmp.name.endswith(path.suffix) and ".tmp" in tmp.name
            if writer == "torch":
                torch.save({"v": torch.tensor(value)}, tmp)
            elif writer == "h5py":
                with h5py.File(tmp, "w") as f:
                    f["v"] = np.full(100, value)
            else:
                np.savez(tmp, v=np.full(100, value))  # no ".npz" added: the temporary name ends in it
            if fail:
                raise Boom

    def read():
        if writer == "torch":
            return int(torch.load(path, weights_only=True)["v"])
        if writer == "h5py":
            with h5py.File(path, "r") as f:
                return int(f["v"][0])
        if writer == "npz":
            with np.load(path) as z:
                return int(z["v"][0])
        if writer == "json":
            return json.loads(path.read_text())["v"]
        if writer == "yaml":
            return yaml.safe_load(path.read_text())["v"]
        return path.read_bytes()[0]

    write(1)
    assert read() == 1 and _listing(tmp_path) == [path.name]
    before = path.read_bytes()
    with pytest.raises(Boom):
        write(2, fail=True)
    assert path.read_bytes() == before and _listing(tmp_path) == [path.name]  # old file, no temporary file
    write(3)
    assert read() == 3 and _listing(tmp_path) == [path.name]


def test_a_first_write_that_fails_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(tmp_path / "new.txt") as fh:
            fh.write("partial")
            raise KeyboardInterrupt  # Ctrl-C too
    assert _listing(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="tells files from folders by /proc/self/fd")
def test_fsync_file_then_replace_then_fsync_folder(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        return fsync(fd)

    def spy_replace(a, b):
        events.append(("replace", os.path.basename(b)))
        return replace(a, b)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    with atomic_open(tmp_path / "a.txt") as fh:
        fh.write("x")
    assert events == [("fsync", "file"), ("replace", "a.txt"), ("fsync", "dir")]


def test_permissions_and_folders(tmp_path):
    with atomic_open(tmp_path / "a.txt") as fh:
        fh.write("x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == default_file_mode()  # not mkstemp's 0o600
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_open(tmp_path / "missing" / "b.txt") as fh:
            fh.write("x")
    with atomic_open(tmp_path / "made" / "deep" / "b.txt", mkdir=True) as fh:
        fh.write("y")
    assert (tmp_path / "made" / "deep" / "b.txt").read_text() == "y"
    with pytest.raises(ValueError, match=r"Must be one of \['w', 'wb'\]"):
        with atomic_open(tmp_path / "c.txt", "a"):
            pass


def test_posegen_writers_go_through_it(tmp_path, monkeypatch):
    """Checkpoints, point files, configs and the metrics rewrite all fail cleanly the same way."""
    import posegen as pg
    import posegen.atomic as atomic
    from posegen.config import default_config, dump_config
    from posegen.data import save_points

    flow = pg.PoseFlow("S2", hidden=8, depth=1)
    x = flow.sample(5, seed=0)
    writers = {"model.pt": lambda p: flow.save(p), "points.h5": lambda p: save_points(p, x, "S2", overwrite=True),
               "config.yaml": lambda p: dump_config(default_config(), p)}
    for name, write in writers.items():
        write(tmp_path / name)
    before = {n: (tmp_path / n).read_bytes() for n in writers}

    real = atomic._fsync_file

    def disk_full(path):
        real(path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_fsync_file", disk_full)
    for name, write in writers.items():
        with pytest.raises(OSError, match="No space left"):
            write(tmp_path / name)
    assert _listing(tmp_path) == sorted(writers)
    assert {n: (tmp_path / n).read_bytes() for n in writers} == before
