"""Target probability paths for CNFM: schedules, per-factor kernels, the kernel-mixture path and its end point.

``p_t(x) = mean_j k_t(x | y_j)`` runs from the base distribution (t = 0) to concentrated kernels around the
training points (t = 1): Gaussians on R^d and interval charts, von Mises on tori, von Mises-Fisher on
S^1..S^3, the antipodal vMF pair on SO3 (:mod:`.families`, one object per family, named by each factor's
``kernel``), with ``alpha_t, sigma_t, kappa_t`` from :mod:`.schedules` (one end point for all factors, or one
each). :class:`MixturePath` evaluates ``log p_t``, ``d/dt log p_t`` and ``grad log p_t`` in chunks and samples
it; :mod:`.endpoint` chooses the end point from the data and scores the density it is
(:func:`endpoint_kde_nll`). :mod:`.proposal` reuses the kernels as an importance sampler for integrals over a
manifold near given points, mixed with its base law (Moser Flow's penalty, its mass check and the benchmarks'
normalisation check).
"""

from .endpoint import EndpointChoice, endpoint_kde_nll, select_endpoint
from .families import FAMILIES, KernelFamily, kernel_family
from .kernels import log_kernel, pairwise_log_kernel, sample_kernel
from .mixture import MixturePath
from .schedules import SHAPES, FactorSchedule, Schedule, make_schedule
from .vmf import log_vmf_normalizer, log_von_mises_normalizer, sample_vmf, sample_von_mises

__all__ = ["MixturePath", "Schedule", "FactorSchedule", "SHAPES", "make_schedule", "KernelFamily", "FAMILIES",
           "kernel_family", "select_endpoint", "EndpointChoice", "endpoint_kde_nll", "pairwise_log_kernel",
           "log_kernel", "sample_kernel", "sample_vmf", "sample_von_mises", "log_vmf_normalizer",
           "log_von_mises_normalizer"]
