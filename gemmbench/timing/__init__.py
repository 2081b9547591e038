"""The measurement primitives every measurement shares: timers (timers.py), the NVML clock watch and the
device warm-up (clocks.py), random operands, the float64 reference and the cold-L2 copies (inputs.py),
and the torch.profiler pass (profile.py).

Sweeps, groups and tuned backends all measure with these, so they sit below the backends: they time
callables and make tensors, and know nothing of backends. Imports `records`, `spec` and `errors`;
needs torch.
"""
