"""Reading one site setting's value (typed on the command line or saved from the Settings page).

A wrong value names the setting and what it takes, rather than Python's own conversion message.
"""

from __future__ import annotations

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
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes a number, not {value!r}") from None


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
        raise ValueError(f"{name} takes a whole number, not {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(number)
