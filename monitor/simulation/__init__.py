"""Simulation: the synthetic demo cohort and the Friberg myelosuppression model behind it.

Pure; imports only from ``monitor``.
"""
