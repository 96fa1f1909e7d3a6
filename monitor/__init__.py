"""The pure domain of leukopenia monitoring: feed formats, clinical analysis and simulation, in pandas.

Imports nothing from the rest of the project (``__main__`` only hands ``python -m monitor`` to ``cli``), and
reads neither the environment nor the clock: times, zones and rules are passed in.
"""
