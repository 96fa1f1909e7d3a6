"""The audit trail as a person reads it: columns in words, each row's details in columns of their own, not
the JSON the store keeps."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

# The columns every row has, in order: when, who did what to whom, and the view or export named.
FIXED = ["When (UTC)", "User", "Action", "Patient", "What"]
# The details beyond these many kinds get one column, "Other details", in words.
MOST_DETAIL_COLUMNS = 10
OTHER = "Other details"


def action_words(action: object) -> str:
    """An action as people read it: "add_event" -> "add event"."""
    return str(action or "").replace("_", " ")


def _value(value: object) -> str:
    """One detail's value in words: a list as its items, a mapping as ``key value`` pairs."""
    if isinstance(value, dict):
        return ", ".join(f"{key} {_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(item) for item in value) or "none"
    if value is None:
        return "none"
    return str(value)


def _parsed(details: object) -> dict[str, str]:
    """One row's details as ``{label: words}``: a JSON object's keys, "What" for the view or export named,
    "Other details" for anything that is not an object."""
    if not isinstance(details, str) or not details:
        return {}
    try:
        parsed = json.loads(details)
    except ValueError:
        return {OTHER: details}
    if not isinstance(parsed, dict):
        return {OTHER: _value(parsed)}
    return {_label(str(key)): _value(item) for key, item in parsed.items()}


def _label(key: str) -> str:
    """A detail's column: "what" -> "What", "rows_refused" -> "Rows refused"; a dotted key (a setting's)
    stays as it is (it is not a column: see ``readable_trail``)."""
    if "." in key:
        return key
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def readable_trail(trail: pd.DataFrame) -> pd.DataFrame:
    """The trail (``services.audit.read_trail``) as the page shows it: the time as text, the action and the
    patient in words, and the JSON ``details`` in columns: "What" (the page, command or file viewed or
    exported), then a column per kind of detail (the ``MOST_DETAIL_COLUMNS`` most frequent in these rows;
    a setting's dotted key and the rarer kinds go into "Other details" as ``key: value`` pairs).

    >>> trail = pd.DataFrame({"at": pd.to_datetime(["2026-11-25 09:30"], utc=True), "username": ["ann"],
    ...     "action": ["acknowledge"], "patient_id": ["MRN1"],
    ...     "details": ['{"comment": "seen", "flags": ["neutropenia", "new_onset"]}']})
    >>> readable_trail(trail).iloc[0].to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'When (UTC)': '2026-11-25 09:30:00', 'User': 'ann', 'Action': 'acknowledge', 'Patient': 'MRN1',
     'What': '', 'Comment': 'seen', 'Flags': 'neutropenia, new_onset'}
    """
    rows = [_parsed(details) for details in trail["details"]]
    counted = Counter(label for row in rows for label in row if label != "What" and "." not in label)
    columns = [label for label, _ in counted.most_common(MOST_DETAIL_COLUMNS) if label != OTHER]
    kept = set(columns)
    out = pd.DataFrame(
        {
            "When (UTC)": trail["at"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(),
            "User": trail["username"].fillna("").to_numpy(),
            "Action": trail["action"].map(action_words).to_numpy(),
            "Patient": trail["patient_id"].fillna("").astype(str).to_numpy(),
            "What": [row.get("What", "") for row in rows],
        }
    )
    for label in columns:
        out[label] = [row.get(label, "") for row in rows]
    other = [
        "; ".join(
            text if label == OTHER else f"{label.lower() if '.' not in label else label}: {text}"
            for label, text in row.items()
            if label != "What" and label not in kept
        )
        for row in rows
    ]
    if any(other):
        out[OTHER] = other
    return out
