"""The backends: the `Backend` interface (base.py), the registry (registry.py), the built-in backends (one
module each: mm_out_dtype, upcast, linear_cast, the cuBLAS extension's three in cublas_ext, router_small_m
in Triton, router_small_m_ext and router_small_m_mma in CUDA, both in router_small_m_ext.py; the engines'
kernels where their packages import, in engines.py), the producers of the contexts (producers.py), plugins
(plugins.py) and the optional C++/CUDA extension (ext/).

The plugin API is `from gemmbench.backends import Backend, CandidateTimer, GemmCall, GemmInputs,
time_candidates`, and `gemmbench.backends.producers.Producer` (docs/plugins.md). Imports `timing`
(tensors, stopping rules), `spec` and `errors`; never `measure`, `output` or the CLI: a tuned backend
times its candidates with the timer the session gives its `tune`.
"""

from gemmbench.backends.base import Backend, CandidateTimer, GemmCall, GemmInputs, time_candidates
from gemmbench.backends.registry import REGISTRY, Availability, availability, default_backends, select_backends

__all__ = [
    "REGISTRY",
    "Availability",
    "Backend",
    "CandidateTimer",
    "GemmCall",
    "GemmInputs",
    "availability",
    "default_backends",
    "select_backends",
    "time_candidates",
]
