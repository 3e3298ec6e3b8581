"""posegen's one way to write a file: atomically and durably.

Every file posegen writes (checkpoints, point files, generated data sets, configs, rewritten logs) goes
through :func:`atomic_path` (or :func:`atomic_open`, built on it):

1. a temporary file is created in the target's folder (same filesystem, so the rename is atomic), named
   ``.<name>.<random>.tmp<suffix>`` with the permissions ``open()`` would give a new file;
2. the caller writes it (by path: ``torch.save``, ``h5py.File(tmp, "w")``, ``np.savez``; or through the
   file handle of :func:`atomic_open`: json, yaml, text);
3. the temporary file is flushed to disk (``fsync``), ``os.replace``-d over the target, and the folder is
   fsynced so that the rename itself survives a power loss.

If anything fails before the replace (an exception in the ``with`` block, a full disk, Ctrl-C), the
temporary file is removed and the previous file, if any, is left as it was. A ``kill -9`` can leave a
temporary file behind, never a torn target.

Example::

    with atomic_path("run/model.pt") as tmp:
        torch.save(state, tmp)
    with atomic_open("run/config.yaml", "w") as fh:
        yaml.safe_dump(cfg, fh)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional

__all__ = ["atomic_path", "atomic_open", "default_file_mode", "fsync_dir"]


def default_file_mode() -> int:
    """``0o666`` less the process umask: what ``open()`` would give a new file (``mkstemp`` gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(folder) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the file itself is synced already
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDWR)  # write access: fsync needs it on some platforms
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, *, mkdir: bool = False) -> Iterator[Path]:
    """Yield the path of an (empty) temporary file beside ``path``; on a clean exit it replaces ``path``.

    Write the temporary file by name inside the ``with`` block (and close it there). Its name ends in
    ``path``'s suffix, so writers that add or check an extension (``np.savez``) keep the name as given.

    Args:
        path: the file to write.
        mkdir: create ``path``'s folder (and parents) when missing; otherwise a missing folder raises
            :class:`FileNotFoundError`.
    """
    path = Path(path)
    folder = path.parent
    if mkdir:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=folder)
    try:
        os.close(fd)
        os.chmod(tmp, default_file_mode())
        yield Path(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", *, encoding: Optional[str] = "utf-8", newline: Optional[str] = None,
                mkdir: bool = False) -> Iterator[IO]:
    """``open(path, mode)`` for writing (``"w"`` text, ``"wb"`` binary), atomically: the handle writes a
    temporary file that replaces ``path`` when the block exits cleanly (see :func:`atomic_path`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f'Invalid mode "{mode}". Must be one of {sorted(["w", "wb"])}')
    with atomic_path(path, mkdir=mkdir) as tmp:
        if mode == "wb":
            with open(tmp, "wb") as fh:
                yield fh
        else:
            with open(tmp, "w", encoding=encoding, newline=newline) as fh:
                yield fh
