"""Answers from records, as data: the thresholds they rest on (policy.py), comparing two runs, recommending a
backend per M, advising on groups' streams, a fleet's outliers, and decoding kernel names.

No torch, nothing printed: it imports `records`, `spec` and `errors`; the output renders what it returns.
"""
