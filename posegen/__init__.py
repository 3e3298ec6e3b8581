"""posegen: densities of robot poses and joint configurations on product manifolds.

``R^d x (S^1)^n x (S^3)^m`` (positions, revolute joint angles, unit quaternions): learn them with
simulation-free CNF objectives (CNFM, Moser Flow, stochastic interpolants, Riemannian Flow Matching) over one
velocity model, one ODE integrator and one exact likelihood; sample and score pose candidates for planners.
"""

from . import data, manifolds, robots, rotations
from .flow import PoseFlow
from .manifolds import parse, wrap_angle
from .samplers import GraspSampler, IKSampler, PoseSampler
from .training import TrainConfig, train
from .version import __version__

__all__ = ["manifolds", "data", "robots", "rotations", "parse", "wrap_angle", "PoseFlow", "PoseSampler", "IKSampler", "GraspSampler", "train", "TrainConfig", "__version__"]
