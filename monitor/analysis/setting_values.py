"""Reading one site setting's value (typed on the command line or saved from the Settings page).

A wrong value names the setting and what it takes, rather than Python's own conversion message.
"""

from __future__ import annotations

import math
from typing import Any


def a_number(name: str, value: Any) -> float:
    """``value`` as a number, or a ValueError naming ``name``.

    >>> a_number("rcv_z", "1.96")
    1.96
    >>> a_number("rcv_z", "banana")
    Traceback (most recent call last):
    ...
    ValueError: rcv_z takes a number, not 'banana'
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} takes a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} takes a finite number, not {value!r}")
    return number


def a_whole_number(name: str, value: Any) -> int:
    """``value`` as a whole number (``14`` or ``14.0``), or a ValueError naming ``name``.

    >>> a_whole_number("persistent_min_days", "banana")
    Traceback (most recent call last):
    ...
    ValueError: persistent_min_days takes a whole number, not 'banana'
    """
    try:
        number = a_number(name, value)
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise ValueError(f"{name} takes a whole number, not {value!r}")
    return int(number)


def a_boolean(name: str, value: Any) -> bool:
    """``value`` as true or false (JSON ``true``/``false``, or the words), or a ValueError naming ``name``.

    >>> a_boolean("inclusive", "False")
    False
    >>> a_boolean("inclusive", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: inclusive takes true or false, not 1.5
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name} takes true or false, not {value!r}")
