"""Leukopenia monitoring, the pure domain: pandas analysis of longitudinal CBC results.

No I/O, no clock, no environment: times, ``as_of`` and the site's time zone are passed in. Imports only
from ``monitor`` (``__main__`` is the ``python -m monitor`` shim to the ``cli`` package).
"""
