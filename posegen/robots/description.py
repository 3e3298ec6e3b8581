"""Robot descriptions read from URDF text (MJCF: :mod:`posegen.robots.mjcf`): links, joints, origins, axes and limits as plain Python data.

The parser is deliberately small and strict (``xml.etree`` only, no pytorch_kinematics needed): every
problem that would otherwise surface later as a wrong pose (an unknown joint type, a cycle, a second root,
a non-finite number) is a :class:`ValueError` naming the file and the element. Joint limits are the one
exception: they matter only for the joints a :class:`~posegen.robots.robot.Robot` uses, so they are kept
as written and checked there (:func:`limit_problem`); a gripper or leg joint without bounds elsewhere in
the tree does not refuse the file. What tinyxml2-based readers (urdfdom, Pinocchio) accept also loads:
blank lines or comments before the ``<?xml`` declaration, and a namespaced ``<robot xmlns="...">``.

Numbers are kept as Python floats (float64): pytorch_kinematics' own URDF reader rounds joint origins to
float32 (measured on the Panda: 8e-8 rad, 2e-8 m off the DH chain), which float64 kinematics should not
inherit. :mod:`posegen.robots.chain` builds the pytorch_kinematics chain from these values.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

__all__ = ["JointSpec", "Description", "parse_urdf", "xml_root", "limit_problem", "MOVABLE_TYPES", "JOINT_TYPES"]

MOVABLE_TYPES = ("revolute", "continuous", "prismatic")
JOINT_TYPES = MOVABLE_TYPES + ("fixed",)
Vec3 = Tuple[float, float, float]


@dataclass(frozen=True)
class JointSpec:
    """One URDF joint.

    ``lower``/``upper`` (radians or metres) are None for fixed and continuous joints and for a revolute or
    prismatic joint without ``<limit>``; they are kept as written (possibly ``lower >= upper``) and checked
    by :func:`limit_problem` when a robot uses the joint. A mimic joint's value is
    ``mimic_multiplier * q[mimic] + mimic_offset``.
    """

    name: str
    type: str                 # one of JOINT_TYPES
    parent: str
    child: str
    xyz: Vec3                 # origin translation (m), parent frame
    rpy: Vec3                 # origin roll, pitch, yaw (rad): R = Rz(yaw) Ry(pitch) Rx(roll)
    axis: Vec3                # joint axis in the joint frame (URDF default (1, 0, 0))
    lower: Optional[float] = None
    upper: Optional[float] = None
    mimic: Optional[str] = None   # name of the joint this one mimics, if any
    quat: Optional[Tuple[float, float, float, float]] = None  # origin rotation, wxyz; overrides rpy (MJCF)
    mimic_multiplier: float = 1.0
    mimic_offset: float = 0.0

    @property
    def movable(self) -> bool:
        return self.type != "fixed"


@dataclass(frozen=True)
class Description:
    """A parsed kinematic tree.

    ``links`` are in file order, ``joints`` in file order; ``root`` is the one link that is no joint's
    child; ``source`` names where the text came from (used in error messages).
    """

    name: str
    root: str
    links: Tuple[str, ...]
    joints: Tuple[JointSpec, ...]
    source: str

    def joint(self, name: str) -> Optional[JointSpec]:
        """The joint called ``name`` (None when there is none)."""
        cache = self.__dict__.get("_by_name_cache")
        if cache is None:
            cache = {j.name: j for j in self.joints}
            object.__setattr__(self, "_by_name_cache", cache)
        return cache.get(name)

    def joint_to(self, link: str) -> Optional[JointSpec]:
        """The joint whose child is ``link`` (None for the root)."""
        return self._parent_joint.get(link)

    def path_joints(self, link: str) -> Tuple[JointSpec, ...]:
        """Joints from the root down to ``link``, in order (fixed ones included)."""
        out: List[JointSpec] = []
        j = self.joint_to(link)
        while j is not None:
            out.append(j)
            j = self.joint_to(j.parent)
        return tuple(reversed(out))

    @property
    def _parent_joint(self) -> Dict[str, JointSpec]:
        cache = self.__dict__.get("_parent_joint_cache")
        if cache is None:
            cache = {j.child: j for j in self.joints}
            object.__setattr__(self, "_parent_joint_cache", cache)
        return cache


# ---------------------------------------------------------------------------------------------- parsing
def _floats(text: Optional[str], n: int, default: Tuple[float, ...], where: str) -> Tuple[float, ...]:
    if text is None:
        return default
    parts = text.split()
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{where}: expected {n} numbers, got {text!r}") from None
    if len(vals) != n:
        raise ValueError(f"{where}: expected {n} numbers, got {text!r}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{where}: numbers must be finite, got {text!r}")
    return vals


def _float_attr(el: ET.Element, attr: str, where: str) -> Optional[float]:
    raw = el.get(attr)
    if raw is None:
        return None
    return _floats(raw, 1, (0.0,), f"{where} {attr}=")[0]


def _parse_joint(el: ET.Element, links: set, source: str) -> JointSpec:
    name = el.get("name")
    if not name:
        raise ValueError(f"{source}: a <joint> has no name attribute")
    where = f"{source}: joint {name!r}"
    jtype = el.get("type")
    if jtype not in JOINT_TYPES:
        raise ValueError(f"{where}: type {jtype!r} is not supported (supported: {', '.join(JOINT_TYPES)})")
    ends = {}
    for tag in ("parent", "child"):
        sub = el.find(tag)
        link = None if sub is None else sub.get("link")
        if not link:
            raise ValueError(f"{where}: missing <{tag} link=...>")
        if link not in links:
            raise ValueError(f"{where}: {tag} link {link!r} is not a <link> of the file")
        ends[tag] = link
    origin = el.find("origin")
    xyz = _floats(None if origin is None else origin.get("xyz"), 3, (0.0, 0.0, 0.0), f"{where} origin xyz")
    rpy = _floats(None if origin is None else origin.get("rpy"), 3, (0.0, 0.0, 0.0), f"{where} origin rpy")
    axis_el = el.find("axis")
    axis = _floats(None if axis_el is None else axis_el.get("xyz"), 3, (1.0, 0.0, 0.0), f"{where} axis")
    lower = upper = None
    lim = el.find("limit")
    if jtype in ("revolute", "prismatic") and lim is not None:
        # the URDF spec defaults omitted bounds to 0; limit_problem refuses a joint locked at 0 if it is used
        lower = _float_attr(lim, "lower", where + " limit")
        upper = _float_attr(lim, "upper", where + " limit")
        lower = 0.0 if lower is None else lower
        upper = 0.0 if upper is None else upper
    if jtype != "fixed" and math.hypot(*axis) == 0.0:
        raise ValueError(f"{where}: axis must be nonzero, got {axis}")
    mimic_el = el.find("mimic")
    mimic, mult, offset = None, 1.0, 0.0
    if mimic_el is not None:
        mimic = mimic_el.get("joint")
        if not mimic:
            raise ValueError(f"{where}: <mimic> needs a joint= attribute")
        mult = _float_attr(mimic_el, "multiplier", where + " mimic")
        offset = _float_attr(mimic_el, "offset", where + " mimic")
        mult = 1.0 if mult is None else mult
        offset = 0.0 if offset is None else offset
    return JointSpec(name, jtype, ends["parent"], ends["child"], xyz, rpy, axis, lower, upper, mimic,
                     mimic_multiplier=mult, mimic_offset=offset)


def limit_problem(j: JointSpec) -> Optional[str]:
    """Why joint ``j`` cannot be a robot joint with these limits (None when it can).

    Revolute and prismatic joints need ``<limit lower upper>`` with ``lower < upper``; continuous joints
    have no limits; fixed joints are no robot joints.
    """
    if j.type in ("revolute", "prismatic"):
        if j.lower is None or j.upper is None:
            return f"a {j.type} joint needs <limit lower=... upper=...> (MJCF: range=...)"
        if not j.lower < j.upper:
            return f"limit lower={j.lower} must be below upper={j.upper}"
    return None


_DECLARATION = re.compile(r"<\?xml\b.*?\?>", re.DOTALL)
_PROLOGUE = re.compile(r"(?:\s|<!--.*?-->)*", re.DOTALL)


def xml_root(text: str, source: str) -> ET.Element:
    """The root element of XML ``text`` with namespaces dropped from every tag.

    Leading whitespace, a byte-order mark and comments before the ``<?xml ...?>`` declaration are
    accepted (expat refuses a declaration that is not the first thing in the text; tinyxml2 does not).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    text = text.lstrip("\ufeff")
    lead = _PROLOGUE.match(text).end()
    decl = _DECLARATION.match(text, lead)
    if decl is not None:  # the text is already decoded: the declaration's encoding has nothing left to say
        text = text[:lead] + text[decl.end():]
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"{source}: malformed XML ({e})") from None
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]
    return root


def parse_urdf(text: str, source: str = "<urdf>") -> Description:
    """Parse URDF text into a :class:`Description`; ValueError (naming ``source``) for anything malformed."""
    root = xml_root(text, source)
    if root.tag != "robot":
        raise ValueError(f"{source}: expected a URDF <robot> root element, got <{root.tag}>")
    links: List[str] = []
    for el in root.findall("link"):
        name = el.get("name")
        if not name:
            raise ValueError(f"{source}: a <link> has no name attribute")
        if name in links:
            raise ValueError(f"{source}: link {name!r} is defined twice")
        links.append(name)
    if not links:
        raise ValueError(f"{source}: the robot has no <link>")
    link_set = set(links)
    joints: List[JointSpec] = []
    seen_child: Dict[str, str] = {}
    for el in root.findall("joint"):
        j = _parse_joint(el, link_set, source)
        if any(j.name == k.name for k in joints):
            raise ValueError(f"{source}: joint {j.name!r} is defined twice")
        if j.child in seen_child:
            raise ValueError(f"{source}: link {j.child!r} is the child of two joints "
                             f"({seen_child[j.child]!r} and {j.name!r}); a URDF must be a tree")
        seen_child[j.child] = j.name
        joints.append(j)
    roots = [lk for lk in links if lk not in seen_child]
    if len(roots) != 1:
        raise ValueError(f"{source}: a URDF needs exactly one root link (a link that is no joint's child), "
                         f"found {len(roots)}: {roots[:5]}")
    desc = Description(root.get("name") or "robot", roots[0], tuple(links), tuple(joints), source)
    # with one root and one parent per link, a link that cannot reach the root sits on a cycle
    for link in links:
        seen = {link}
        j = desc.joint_to(link)
        while j is not None:
            if j.parent in seen:
                raise ValueError(f"{source}: the joints around link {link!r} form a cycle")
            seen.add(j.parent)
            j = desc.joint_to(j.parent)
    return desc
