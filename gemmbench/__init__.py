"""gemmbench: which way of computing a bf16 x bf16 -> fp32 GEMM is right and fastest on this GPU."""

__version__ = "0.1.0"
