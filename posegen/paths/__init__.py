"""Target probability paths for CNFM: schedules, per-factor kernels and the kernel-mixture path.

``p_t(x) = mean_j k_t(x | y_j)`` runs from the base distribution (t = 0) to concentrated kernels around the
training points (t = 1): Gaussians on R^d, von Mises on tori, von Mises-Fisher on S^1..S^3, the antipodal
vMF pair on SO3 (:mod:`.families`, one object per family, named by each factor's ``kernel``), with ``alpha_t, sigma_t, kappa_t`` from :mod:`.schedules`.
:class:`MixturePath` evaluates ``log p_t``, ``d/dt log p_t`` and ``grad log p_t`` in chunks and samples it.
"""

from .families import FAMILIES, KernelFamily, kernel_family
from .kernels import log_kernel, pairwise_log_kernel, sample_kernel
from .vmf import log_vmf_normalizer, log_von_mises_normalizer, sample_vmf, sample_von_mises
from .mixture import MixturePath
from .schedules import SHAPES, FactorSchedule, Schedule, make_schedule

__all__ = ["MixturePath", "KernelFamily", "FAMILIES", "kernel_family", "Schedule", "FactorSchedule", "SHAPES", "make_schedule", "pairwise_log_kernel", "log_kernel",
           "sample_kernel", "sample_vmf", "sample_von_mises", "log_vmf_normalizer", "log_von_mises_normalizer"]
