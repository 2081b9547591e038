"""Measuring: the sessions that turn a plan into records, built on one `Bench` (bench.py) and the timing
primitives. A sweep's points (points.py) and a preset's groups on CUDA streams (groups.py) run through
one driver (session.py); a fleet's ranks under torchrun, a distribution of that driver's work (fleet.py); the
provenance and device selection (environment.py), the roofline floor (roofline.py) and the routing-accuracy
check (routing.py).

Imports `backends`, `timing`, `records`, `spec` and `errors`; never `analysis`, `output` or the CLI.
Nothing here prints: sessions report through callbacks.
"""
