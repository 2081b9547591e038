"""What to run: cases (a GEMM of a model at one token count M), groups of GEMMs on CUDA streams, presets and
config files, `--shape` and M lists.

Pure parsing and plain data: it imports no torch, and of gemmbench only `errors`. `Case` is part of the
plugin API (also importable from `gemmbench.shapes`, its former home).
"""

from gemmbench.spec.cases import Case, GemmSpec, GroupMember, GroupSpec

__all__ = ["Case", "GemmSpec", "GroupMember", "GroupSpec"]
