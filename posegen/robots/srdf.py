"""The end-effector link named by an SRDF (MoveIt's semantic robot description) for a URDF.

Only what loading needs is read: the ``parent_link`` of the first ``<end_effector>`` whose link is in the
description, else the ``tip_link`` of the first ``<group><chain base_link= tip_link=/></group>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from .description import Description, xml_root

__all__ = ["srdf_ee_link", "read_srdf"]


def read_srdf(srdf: Union[str, os.PathLike]) -> tuple:
    """``(text, source)`` of an SRDF file; ValueError naming the path when it is missing or unreadable."""
    path = Path(srdf)
    if not path.is_file():
        what = "is a directory, not an SRDF file" if path.is_dir() else "does not exist"
        raise ValueError(f"load: srdf {str(path)!r} {what}")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"load: cannot read srdf {str(path)!r} ({e})") from None


def srdf_ee_link(text: str, source: str, desc: Description) -> str:
    """The end-effector link that SRDF ``text`` names for ``desc``.

    Raises ValueError (naming ``source``) for malformed XML, a root other than ``<robot>``, or an SRDF that
    names no end effector or chain tip among the links of ``desc``.
    """
    root = xml_root(text, source)
    if root.tag != "robot":
        raise ValueError(f"{source}: expected an SRDF <robot> root element, got <{root.tag}>")
    links = set(desc.links)
    named = [el.get("parent_link") for el in root.iter("end_effector")]
    named += [el.get("tip_link") for group in root.iter("group") for el in group.iter("chain")]
    for link in named:
        if link in links:
            return link
    listed = ", ".join(repr(x) for x in named if x) or "none"
    raise ValueError(f"{source}: the SRDF names no end effector (<end_effector parent_link=...>) or chain tip "
                     f"(<chain tip_link=...>) among the links of {desc.source} (named: {listed}); "
                     f"pass ee_link= instead")
