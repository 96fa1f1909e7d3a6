"""The audit trail as a person reads it: each row's details in words, not the JSON the store keeps."""

from __future__ import annotations

import json

import pandas as pd

# The columns the Audit page shows, in order: who did what to whom, and the details in words.
SHOWN = ["at (UTC)", "username", "action", "patient_id", "what", "details"]


def _value(value: object) -> str:
    """One detail's value in words: a list as its items, a mapping as ``key value`` pairs."""
    if isinstance(value, dict):
        return ", ".join(f"{key} {_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(item) for item in value) or "none"
    if value is None:
        return "none"
    return str(value)


def _words(details: object) -> tuple[str, str]:
    """``(what, details)`` of one row: the view or export named (``what``), and every other detail as
    ``key: value`` pairs joined by "; " (a detail that is not a JSON object is shown as it is)."""
    if not isinstance(details, str) or not details:
        return "", ""
    try:
        parsed = json.loads(details)
    except ValueError:
        return "", details
    if not isinstance(parsed, dict):
        return "", _value(parsed)
    what = _value(parsed.pop("what")) if "what" in parsed else ""
    pairs = "; ".join(f"{str(key).replace('_', ' ')}: {_value(item)}" for key, item in parsed.items())
    return what, pairs


def readable_trail(trail: pd.DataFrame) -> pd.DataFrame:
    """The trail (``services.audit.read_trail``) with its time as text and its JSON ``details`` split into
    ``what`` (the page, command or file viewed or exported) and ``details`` in words, as the page shows it.

    >>> trail = pd.DataFrame({"at": pd.to_datetime(["2026-11-25 09:30"], utc=True), "username": ["ann"],
    ...     "action": ["acknowledge"], "patient_id": ["MRN1"],
    ...     "details": ['{"comment": "seen", "flags": ["neutropenia", "new_onset"]}']})
    >>> readable_trail(trail).iloc[0].tolist()
    ['2026-11-25 09:30:00', 'ann', 'acknowledge', 'MRN1', '', 'comment: seen; flags: neutropenia, new_onset']
    """
    words = [_words(details) for details in trail["details"]]
    return trail.assign(
        at=trail["at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        what=[what for what, _ in words],
        details=[text for _, text in words],
    ).rename(columns={"at": "at (UTC)"})[SHOWN]
