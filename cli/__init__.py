"""The command line (``python -m monitor``): a click group whose commands call the application layer.

May import services and monitor; a command parses its arguments, calls one service and prints.
"""

from cli import admin, audit, due, importing, listen, reports, views  # noqa: F401 - each module registers its commands on the group
from cli.app import cli, main

__all__ = ["cli", "main"]
