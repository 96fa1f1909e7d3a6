"""Clinical analysis: CTCAE grading, reference limits, flags, patterns, changes, treatment cycles, the
worklist's triage, alert ranking, the timeline's marks and episodes, and the site rules they read.

Pure pandas; imports only from ``monitor``.
"""
