"""Samplers: learned models of robot states, IK solutions and grasps, in the conventions planners use.

* :class:`PoseSampler` (:mod:`.pose`): a trained :class:`~posegen.PoseFlow` as named parts in the caller's
  quaternion order, robot states with their end-effector pose, SE(3), ranking; built from :mod:`.parts`
  (naming and conventions), :mod:`.conditions`, :mod:`.robot_state` (FK and reachability) and
  :mod:`.joint_filter` (joint limits of torus models).
* :class:`IKSampler` (:mod:`.ik`): ``p(q | pose)`` for one robot, draw -> refine -> select (:mod:`.ik_select`).
* :class:`GraspSampler` (:mod:`.grasps`): grasp poses conditioned on an object's point cloud.

Everything that learns is trained by :mod:`posegen.training`; kinematics come from :mod:`posegen.robots`.
"""

from .grasps import GraspSampler
from .ik import DEFAULT_SAMPLE_SOLVER, POSE_FEATURES, REFINE_SAMPLE_SOLVER, REFINE_TEMPERATURE, IKSampler, pose_features
from .ik_select import RANKINGS
from .joint_filter import SamplingShortfall, resolve_joint_limits, unwrap_to_limits
from .parts import Part, manifold_parts
from .pose import PoseSampler

__all__ = ["PoseSampler", "IKSampler", "GraspSampler", "Part", "manifold_parts", "SamplingShortfall", "resolve_joint_limits",
           "unwrap_to_limits", "pose_features", "POSE_FEATURES", "DEFAULT_SAMPLE_SOLVER", "REFINE_SAMPLE_SOLVER",
           "REFINE_TEMPERATURE", "RANKINGS"]
