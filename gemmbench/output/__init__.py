"""What people read: each answer's rich tables, Markdown, JSON dicts and generated code, one module per
answer, built from records and the analysis' answers (format.py holds what they share: units scaled and
numbers rounded for display, the run header, Markdown tables). Printers only read: nothing here measures,
loads or writes a file, and nothing prints (the CLI does).

Imports `analysis`, `records`, `spec`; no torch (matplotlib only inside plot.py's function).
"""
