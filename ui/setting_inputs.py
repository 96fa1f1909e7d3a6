"""The Settings page's rules in words: one input per setting, in its unit and bounds, and its source.

A setting is edited with the input its kind needs (a number in its unit, a toggle, two days, a choice) and
shown with the rule in words and the source of its default as a reader can check it.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any

import streamlit as st

from monitor.analysis.setting_descriptions import SettingDescription

_URL = re.compile(r"(https?://[^\s;]+)")  # a semicolon separates two sources


def _decimals(step: float) -> int:
    return max(1, -math.floor(math.log10(step)) if step < 1 else 1)


def setting_input(key: str, value: Any, default: Any, description: SettingDescription) -> Any:
    """Show the input for ``key`` at its stored ``value``; return the value asked for, in stored form.

    The widget's key carries the stored value, so a change saved elsewhere (the advanced editor, the
    command line, another administrator) shows at once instead of a stale input that would undo it.
    """
    stored = zlib.crc32(json.dumps(value).encode())
    widget = f"settings_words_{re.sub(r'[^0-9A-Za-z_]', '_', key)}_{stored:08x}"
    unit = f" ({description.unit})" if description.unit else ""
    label = description.label + unit
    help_text = f"Default: {_plain_value(default, description)}"
    if description.kind == "toggle":
        return st.toggle(label, value=bool(value), key=widget, help=help_text)
    if description.kind == "choice":
        options = list(description.choices) + ([] if value in description.choices else [str(value)])
        return st.selectbox(label, options, index=options.index(str(value)), key=widget, help=help_text)
    if description.kind == "days":
        first, last = (int(day) for day in value)
        low = int(min(description.minimum or 0, first))
        high = int(max(description.maximum or 365, last))
        left, right = st.columns(2)
        asked_first = left.number_input(
            f"{description.label}: from",
            min_value=low,
            max_value=high,
            value=first,
            step=1,
            key=widget + "_first",
            help=help_text,
        )
        asked_last = right.number_input(
            f"{description.label}: to",
            min_value=low,
            max_value=high,
            value=last,
            step=1,
            key=widget + "_last",
        )
        return [int(asked_first), int(asked_last)]
    if description.kind == "whole":
        number = int(value)
        low = int(min(description.minimum or 0, number))
        high = int(max(description.maximum or number, number))
        return int(
            st.number_input(
                label, min_value=low, max_value=high, value=number, step=1, key=widget, help=help_text
            )
        )
    scale = description.scale
    shown = round(float(value) * scale, 6)
    step = float(description.step or 0.1)
    low_bound = min(float(description.minimum or 0.0), shown)
    high_bound = max(float(description.maximum if description.maximum is not None else shown), shown)
    asked = st.number_input(
        label,
        min_value=low_bound,
        max_value=high_bound,
        value=shown,
        step=step,
        format=f"%.{_decimals(step)}f",
        key=widget,
        help=help_text,
    )
    return round(float(asked) / scale, 6)


def _plain_value(value: Any, description: SettingDescription) -> str:
    if value is None:
        return "none (set by the site)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return " to ".join(str(day) for day in value) + (f" {description.unit}" if description.unit else "")
    if isinstance(value, int | float) and description.scale != 1:
        value = round(float(value) * description.scale, 6)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {description.unit}".strip()


def _linked(text: str) -> str:
    """``text`` with its web addresses as markdown links (the texts are the product's own descriptions and
    citations, not text from a feed or a form)."""
    return _URL.sub(lambda found: f"[{_short(found.group(1))}]({found.group(1)})", text)


def _short(url: str) -> str:
    """A web address as a link's text: without its scheme, and a long one as its host and its end.

    >>> _short("https://doi.org/10.1373/clinchem.2006.069369")
    'doi.org/10.1373/clinchem.2006.069369'
    >>> _short("https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview.process&ApplNo=020262")
    'www.accessdata.fda.gov/…ApplNo=020262'
    """
    bare = url.split("://", 1)[-1]
    if len(bare) <= 50:
        return bare
    host, _, rest = bare.partition("/")
    return f"{host}/…{rest[-13:]}"


def source_caption(words: str, citation: str, section: str, *, changed: bool, default: str) -> str:
    """The rule in words, then its source, then where docs/clinical-basis.md gives it, as markdown."""
    now = words + (f" (changed; the default is {default})" if changed else "")
    return f"{now}  \nSource: {_linked(citation)} — docs/clinical-basis.md, {section}"


def default_text(value: Any, description: SettingDescription) -> str:
    """A default value with its unit, as the captions say it."""
    return _plain_value(value, description)


def same(asked: Any, stored: Any) -> bool:
    """Whether an input's value is the stored one (numbers compared to 6 decimals, pairs as lists)."""
    if isinstance(stored, bool) or isinstance(asked, bool):
        return bool(asked) == bool(stored)
    if isinstance(stored, list | tuple):
        return list(asked) == list(stored)
    if isinstance(stored, int | float) and isinstance(asked, int | float):
        return round(float(asked), 6) == round(float(stored), 6)
    return str(asked) == str(stored)
