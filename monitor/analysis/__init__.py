"""Clinical analysis: CTCAE grading, reference limits, flags, patterns, changes, cycles and the site rules.

Pure pandas; imports only from ``monitor``.
"""
