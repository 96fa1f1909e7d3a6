"""The live feed's row-by-row reading gives exactly what the file reading gives, or declines.

Messages are generated around the common case and its edges (units, values, ranges, statuses, times with
and without offsets, in the future, pending, repeated, long or hidden characters, percentages, other
observations): whenever ``read_quickly`` reads a group, the file reading (parse, storable, normalise) must
keep the same results, refuse nothing and hold nothing back.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from db.ingest import field_limits
from monitor.formats.hl7_quick import read_quickly
from monitor.formats.hl7v2 import split_messages
from monitor.formats.piece import PieceReading
from monitor.formats.records import RESULT_COLUMNS

LIMITS = field_limits()
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(hours=1)

# Whether a message's draws may reach the edges, by its draw (`messages`).
EDGES: dict[object, bool] = {}
COMMON_CODES = [
    ("6690-2", "Leukocytes", "LN"),
    ("751-8", "Neutrophils", "LN"),
    ("731-0", "Lymphocytes", "LN"),
    ("718-7", "Hemoglobin", "LN"),
    ("777-3", "Platelets", "LN"),
    ("WBC", "White cells", "L"),
]
EDGE_CODES = [
    ("770-8", "Neutrophils %", "LN"),
    ("8310-5", "Body temperature", "LN"),
    ("787-2", "MCV", "LN"),
    ("99999-9", "Unknown", "LN"),
]
COMMON_UNITS = ["10*3/uL", "10*9/L", "/uL", "K/uL", " 10*3/uL "]
HGB_UNITS = ["g/dL", "g/L", "mmol/L"]
EDGE_UNITS = ["%", "furlongs", ""]
COMMON_VALUES = ["3.1", "0", "007.50", "+2.5", "12.0", "0.45"]
EDGE_VALUES = [
    "1" + "0" * 400,
    "0.0000005",
    "2.0000005",
    "\uff13.\uff11",
    "\u0663.\u0661",
    "3\\E\\.1",
    "1500",
    "-1",
    "<0.1",
    "abc",
    "",
    "1e3",
    " 4.2",
    "2.",
    "250000",
    "99999",
]
COMMON_RANGES = ["4.0-11.0", "1.8-7.7", "<0.5", ">150", "", "12-16", "150 - 450", "normal"]
EDGE_RANGES = ["\uff14.0-11.0", "11.0-4.0", "4.0-x", "1" * 120]
COMMON_STATUSES = ["F", "P", "C", ""]
EDGE_STATUSES = ["X", "I", "Z", "D", "W"]


def pick(draw: st.DrawFn, common: list, edge: list) -> object:
    """Mostly the common case (a value in 20 from the edges, none when ``EDGES`` is off), so that whole
    groups of it are drawn."""
    at_the_edge = EDGES[draw] and draw(st.sampled_from([False] * 19 + [True]))
    return draw(st.sampled_from(edge if at_the_edge else common))


def _stamp(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(2026, 11, 1), max_value=datetime(2026, 12, 5, 10)))
    forms = [f"{moment:%Y%m%d%H%M%S}+0000", f"{moment:%Y%m%d%H%M}-0500"]
    fullwidth = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
    edges = [
        f"{moment:%Y%m%d%H%M%S}+0000".translate(fullwidth),  # digits of another script
        f"{moment:%Y%m%d%H%M%S}",
        f"{moment:%Y%m%d}",
        "",
        "20261305120000+0000",
        "20261201250000+0000",
        "18991231120000+0000",
        "x",
    ]
    return str(pick(draw, forms, edges))


@st.composite
def messages(draw: st.DrawFn, number: int, edges: bool = True) -> str:
    EDGES[draw] = edges
    patient = pick(
        draw, ["P1", "P2", "P 3"], ["P\u200b4", "P" * 70, "P\x005", "P9\\E\\X20\\E\\", "\uff11\uff12"]
    )
    msh_offset = pick(draw, ["+0000", "+0100", ""], ["+9900"])
    sent = f"20261205100000{msh_offset}"
    birth = pick(draw, ["19700101", ""], ["19701301", "2001"])
    sex = pick(draw, ["F", "M", ""], ["A", "X", "U"])
    name = pick(draw, ["Doe^Jane", "", "Smith^J^K"], ["X" * 300])
    collected = _stamp(draw)
    reported = draw(st.sampled_from(["", _stamp(draw)]))
    accession = pick(draw, [f"ACC{number}", ""], ["ACC1", "A" * 150])
    lab = pick(draw, ["LAB", "OTHER LAB"], ["", "L" * 300])
    segments = [
        f"MSH|^~\\&|LIS|{lab}|EHR|WARD|{sent}||ORU^R01|M{number}|P|2.5.1",
        f"PID|1||{patient}^^^HOSP^MR||{name}||{birth}|{sex}",
        f"OBR|1||{accession}|57021-8^CBC^LN|||{collected}|||||||||||||||{reported}",
    ]
    # Each analyte once in a panel (a repeat is the edge of a repeated record); sometimes a second OBR (a
    # differential ordered apart), its own accession, collected then or an hour later.
    codes = draw(st.permutations(COMMON_CODES[:5]))[: draw(st.integers(min_value=1, max_value=5))]
    for k, common in enumerate(codes):
        if k == 2 and draw(st.sampled_from([False, False, True])):
            later = draw(st.sampled_from([collected, collected[:8] + "23" + collected[10:]]))
            segments.append(f"OBR|2||{accession}D|57021-8^CBC^LN|||{later}")
        code, text, system = pick(draw, [common], [*EDGE_CODES, *COMMON_CODES])  # type: ignore[misc]
        observed = draw(st.sampled_from(["", _stamp(draw)]))
        flag = pick(draw, ["", "L", "H"], ["LL~A"])
        kind = pick(draw, ["NM"], ["ST", "SN", "CE", ""])
        value = pick(draw, COMMON_VALUES, EDGE_VALUES)
        unit = pick(draw, HGB_UNITS if code == "718-7" else COMMON_UNITS, EDGE_UNITS)
        limits = pick(draw, COMMON_RANGES, EDGE_RANGES)
        status = pick(draw, COMMON_STATUSES, EDGE_STATUSES)
        segments.append(
            f"OBX|{k + 1}|{kind}|{code}^{text}^{system}||{value}|{unit}|{limits}|{flag}"
            f"|||{status}|||{observed}"
        )
    text = "\r".join(segments)
    if draw(st.sampled_from([False, False, False, True])):
        # A sender's own delimiters instead of ^~\& (none of them in any drawn value, escapes included):
        # both readings take them from MSH-2.
        text = text.replace("^~\\&", "}]!{", 1)
        text = text[:9] + text[9:].translate(str.maketrans({"^": "}", "~": "]", "\\": "!", "&": "{"}))
    return text


def _comparable(value: object) -> object:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=3, unique=True).flatmap(
        lambda numbers: st.tuples(*(messages(n) for n in numbers))
    )
)
def test_the_quick_reading_keeps_what_the_file_reading_keeps_or_declines(texts: tuple[str, ...]) -> None:
    _same_or_declined(texts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=4, unique=True).flatmap(
        lambda numbers: st.tuples(*(messages(n, edges=False) for n in numbers))
    )
)
def test_on_the_common_case_alone_both_readings_agree(texts: tuple[str, ...]) -> None:
    _same_or_declined(texts)


def _same_or_declined(texts: tuple[str, ...]) -> None:
    split = [split_messages(text)[0][0] for text in texts]
    quick = read_quickly(split, zone="UTC", imported_at=NOW, future_tolerance=TOLERANCE, limits=LIMITS)
    event("read quickly" if quick is not None else "declined")
    if quick is None:
        return
    read = PieceReading(
        format_name="hl7",
        zone="UTC",
        limits=LIMITS,
        retry=None,
        imported_at=NOW,
        future_tolerance=TOLERANCE,
        chunk=10**6,
    )("\r\n".join(texts), 0)
    assert read.rejected.empty and read.others.empty and read.pending == 0
    results = pd.concat([chunk.results for chunk in read.chunks], ignore_index=True)
    assert all(chunk.rejected.empty for chunk in read.chunks)
    assert len(results) == len(quick.results)
    for slow, fast in zip(results.to_dict("records"), quick.results, strict=True):
        for column in (*RESULT_COLUMNS, "generation"):
            assert _comparable(slow[column]) == _comparable(fast[column]), column
    slow_patients = read.patients.drop_duplicates(["assigning_authority", "patient_id"]).to_dict("records")
    assert slow_patients == quick.patients


def test_the_common_case_is_read_quickly() -> None:
    text = (
        "MSH|^~\\&|LIS|LAB|EHR|WARD|20261205100000+0000||ORU^R01|M1|P|2.5.1\r"
        "PID|1||P1^^^HOSP^MR||Doe^Jane||19700101|F\r"
        "OBR|1||ACC1|57021-8^CBC^LN|||20261205080000+0000\r"
        "OBX|1|NM|6690-2^Leukocytes^LN||3.1|10*3/uL|4.0-11.0|L|||F\r"
        "OBX|2|NM|751-8^Neutrophils^LN||1400|/uL|1800-7700|L|||F"
    )
    quick = read_quickly(
        [split_messages(text)[0][0]], zone="UTC", imported_at=NOW, future_tolerance=TOLERANCE, limits=LIMITS
    )
    assert quick is not None
    assert [(r["analyte"], r["value"], r["ref_low"], r["unit"]) for r in quick.results] == [
        ("wbc", 3.1, 4.0, "10^9/L"),
        ("anc", 1.4, 1.8, "10^9/L"),
    ]


def test_one_value_is_converted_and_rounded_as_the_vectorised_conversion_does() -> None:
    import numpy as np

    from monitor.formats.hl7_quick import _canonical
    from monitor.formats.units import to_canonical

    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.uniform(0, 5000, 20_000),
            np.arange(0, 3, 0.0000005)[:20_000],
            np.round(rng.uniform(0, 50, 5_000), 7),
        ]
    )
    for factor, shift in ((1.0, 0.0), (0.001, 0.0), (0.1, 0.0), (1.6113438607798902, 0.0), (5 / 9, -160 / 9)):
        expected = to_canonical(pd.Series(values), pd.Series(factor, index=range(len(values))), shift)
        assert [_canonical(float(v), factor, shift) for v in values] == expected.tolist()
