"""The HL7 v2 parser's fast path reads exactly what python-hl7's object model read.

`monitor.formats.hl7v2` splits most messages itself and gives python-hl7 only those it cannot split the same
way. `tests/hl7v2_reference.py` is the parser as it was before, python-hl7 for every message: for every HL7
file in tests/data (the NIST, HL7 and vendor messages among them), for those files mutated, and for messages
generated with escapes, repetitions, subcomponents, SN values, missing and blank fields, MSH-7 offsets, PID-3
repetitions, OBX-14 times, odd delimiters and headers cut short, both must return the same records, refusals
(locations and reasons), patients, other observations and pending count, or raise the same error.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.formats import hl7v2
from monitor.formats.parsed import Parsed
from tests import hl7v2_reference as reference
from tests.conftest import DATA

FILES = sorted(DATA.rglob("*.hl7"))


def outcome(parse, text: str, **options) -> Parsed | tuple[str, str]:
    try:
        return parse(text, **options)
    except Exception as error:  # noqa: BLE001 - the error itself is compared
        return type(error).__name__, str(error)


def assert_same(text: str, **options) -> Parsed | tuple[str, str]:
    """The fast parser's outcome, checked against the reference's (frames equal, dtypes included)."""
    expected = outcome(reference.parse_hl7, text, **options)
    got = outcome(hl7v2.parse_hl7, text, **options)
    if not isinstance(expected, Parsed) or not isinstance(got, Parsed):
        assert got == expected
        return got
    for name in ("records", "rejected", "patients", "others"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(expected, name), obj=name)
    assert got.pending == expected.pending
    return got


def test_there_are_files_to_compare() -> None:
    names = {path.name for path in FILES}
    assert {"nist-lri-cbc.hl7", "fhir-converter-lab-oru-1.hl7", "troubles.hl7"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_every_hl7_file_reads_the_same(path: Path, zone: str) -> None:
    text = path.read_bytes().decode("utf-8")
    parsed = assert_same(text, timezone=zone, messages_before=3)
    assert isinstance(parsed, Parsed)
    assert len(parsed.records) + len(parsed.rejected) + len(parsed.others) + parsed.pending > 0


def test_the_fast_path_reads_the_files_messages() -> None:
    """The files' messages are split by the fast path, not handed to python-hl7 (else nothing is compared)."""
    for path in FILES:
        messages, _ = hl7v2.split_messages(path.read_bytes().decode("utf-8"))
        assert all(hl7v2._encoding(message[0]) is not None for message in messages), path.name


# Values that exercise the reading: escapes python-hl7 unescapes (and some it cannot), codes, units, times
# with and without offsets, statuses, identifiers.
ATOMS = st.sampled_from(
    [
        "",
        " ",
        "  5.2 ",
        "6690-2",
        "26464-8",
        "751-8",
        "777-3",
        "718-7",
        "LN",
        "ln",
        "LOINC",
        "L",
        "WBC",
        "wbc",
        "Neutrophils",
        "ANC",
        "10",
        "9/L",
        "10*3/uL",
        "g/dL",
        "%",
        "4.0-11.0",
        "<0.5",
        ">150",
        "normal",
        "<",
        ">=",
        "0.5",
        "105600",
        "SN",
        "NM",
        "CE",
        "CWE",
        "ST",
        "TX",
        "F",
        "P",
        "C",
        "I",
        "O",
        "N",
        "X",
        "D",
        "H",
        "LL",
        "A",
        "MR",
        "mr",
        "PI",
        "MRN",
        "BENCH",
        "Smith",
        "Anna",
        "Maria",
        "M",
        "U",
        "2",
        "20250101",
        "202501010800",
        "20250101080000",
        "202501010800-0500",
        "20250101080000+0100",
        "20250101080000.123-0330",
        "18991231",
        "2025",
        "2025-01-01",
        "ORU",
        "R01",
        "ADT",
        "A01",
        "M0001",
        "\\F\\",
        "\\S\\",
        "\\T\\",
        "\\R\\",
        "\\E\\",
        "\\E\\S\\E\\",
        "\\X41\\",
        "\\X0\\",
        "\\Xzz\\",
        "\\H\\",
        "\\N\\",
        "\\.br\\",
        "\\.sp2\\",
        "\\.spx\\",
        "\\.in\\",
        "\\C2842\\",
        "\\M2442\\",
        "\\Zfoo\\",
        "\\\\",
        "\\",
        "a\\b",
        "10\\S\\9/L",
        "é",
        "\u00a0",
        "\t",
    ]
)
VALUE = st.one_of(ATOMS, ATOMS, ATOMS, st.text(max_size=6))


@st.composite
def field(draw: st.DrawFn, width: int = 3) -> list[list[list[str]]]:
    """A field: repetitions of components of subcomponents (mostly one of each)."""
    depth = st.integers(1, width) if draw(st.integers(0, 3)) == 0 else st.just(1)
    return [
        [[draw(VALUE) for _ in range(draw(depth))] for _ in range(draw(st.integers(1, 6)))]
        for _ in range(draw(depth))
    ]


SEGMENT_NAMES = st.sampled_from(
    ["OBX", "OBX", "OBX", "OBX", "OBX", "OBR", "OBR", "PID", "NTE", "ORC", "ZZZ", "OBX ", " OBX", ""]
)
# MSH-1 and MSH-2: the usual, others the splitter reads too, and those it leaves to python-hl7 (too few,
# repeated, letters, a space).
DELIMITERS = st.sampled_from(
    [
        *["|^~\\&"] * 8,
        "|^~\\&#",
        "|^~\\&\\",
        "#$%!@",
        "|^~\\",
        "|^~",
        "|",
        "|^^\\&",
        "|abcd",
        "| ~\\&",
    ]
)


def one(*values: str) -> st.SearchStrategy[list[list[list[str]]]]:
    """A field of one of these values (written with the usual delimiters, split here), or any field."""
    written = st.sampled_from(values).map(
        lambda text: [[part.split("&") for part in rep.split("^")] for rep in text.split("~")]
    )
    return st.one_of(written, written, written, field())


# OBX-1 to OBX-14 and OBR-1 to OBR-25 as labs write them, any field now and then.
OBX_FIELDS = [
    one("1", "2"),
    one("NM", "SN", "CE", "ST", "NM", "", "TX"),
    one(
        "6690-2^WBC^LN",
        "26464-8^Leukocytes^LN^WBC^White cells^L",
        "WBC^White cells^L^6690-2^^LN",
        "751-8^ANC^LOINC",
        "X1^Neutrophils^99LAB",
        "^anc",
        "6690-2^\\T\\WBC\\S\\x^LN",
        "777-3~6690-2^PLT^LN",
        "6690-2&x^W&B^LN&L",
    ),
    one("", "1"),
    one("5.2", "  4.1 ", "<^0.5", "^105600", ">=^150", "1^:^2", "^5^-^6", "POS^Positive^L", "4\\X2E\\2", ""),
    one("10*3/uL", "10^9/L", "10\\S\\9/L", "g/dL", "%", "10^x", "x^9", ""),
    one("4.0-11.0", "<0.5", ">150", "normal", "4\\T\\11", ""),
    one("", "H", "L~H", "LL~~HH~A~AA", "N~"),
    one(""),
    one(""),
    one("F", "P", "C", "I", "O", "D", "", "f"),
    one(""),
    one(""),
    one("", "20250101080000", "202501010800-0500", "2025", "x", "18991231"),
]
OBR_FIELDS = [
    one("1"),
    one("", "ORD1"),
    one("ACC1", "", "AC\\F\\C2", "A&B^LAB"),
    one("57021-8^CBC^LN"),
    one(""),
    one(""),
    one("20250101080000", "202501010800-0500", "20250101080000+0100", "", "2025", "x", "18991231"),
    *([one("")] * 14),
    one("", "20250101093000", "202501010930-0500"),
    one(""),
    one(""),
    one("", "F", "P", "I"),
]


@st.composite
def segment(draw: st.DrawFn, name: str = "") -> str:
    """A segment written with the usual delimiters: an OBX or OBR mostly as labs write them."""
    name = name or draw(SEGMENT_NAMES)
    if name == "OBX" and draw(st.integers(0, 5)) < 5:
        values = [draw(strategy) for strategy in OBX_FIELDS[: draw(st.sampled_from([14, 14, 14, 11, 7, 5]))]]
    elif name == "OBR" and draw(st.integers(0, 3)) < 3:
        values = [draw(strategy) for strategy in OBR_FIELDS[: draw(st.sampled_from([25, 25, 22, 7, 3]))]]
    else:
        values = [draw(field()) for _ in range(draw(st.integers(0, 26)))]
    if not values and draw(st.booleans()):
        return name  # a segment of a name alone
    return "|".join(
        [name, *("~".join("^".join("&".join(parts) for parts in rep) for rep in value) for value in values)]
    )


PID_3 = [
    "P1^^^LAB^MR",
    "X9^^^OTHER^PI~P1^^^LAB^MR",
    "X9^^^OTHER^PI~P2^^^LAB^mr~P3^^^LAB^MR",
    "P\\S\\1^^^L\\T\\AB^MR",
    "^^^LAB^MR",
    "",
    "P1",
    "P1&x^^^A&B^MR",
    "  ^^^LAB^MR~P4^^^LAB^MR ",
]


@st.composite
def message(draw: st.DrawFn) -> str:
    """A message written with the usual delimiters, then given those of its MSH-1 and MSH-2."""
    delimiters = draw(DELIMITERS)
    header = [
        draw(VALUE),
        draw(st.sampled_from(["LAB", "", "\\T\\LAB", " LAB "])),
        "EHR",
        "WARD",
        draw(st.sampled_from(["20250101080000", "20250101080000-0500", "202501010800+0130", "", "x"])),
        "",
        draw(st.sampled_from(["ORU^R01", "ORU^R01", "ORU^R01^ORU_R01", "oru^r01", "ADT^A01", "ORU", ""])),
        draw(st.sampled_from(["M1", "", "M\\F\\2"])),
        "P",
        "2.5.1",
    ]
    pid = [
        "PID",
        "1",
        "",
        draw(st.sampled_from(PID_3)),
        "",
        draw(st.sampled_from(["Smith^Anna^Maria", "Sm\\F\\ith^^M", "", "^Anna", "O\\E\\Brien^ A "])),
        "",
        draw(st.sampled_from(["19700101", "1970", "19701301", "", "x"])),
        draw(st.sampled_from(["F", "m", "A", "N", "", "Q"])),
    ]
    body = ["|".join(pid)] if draw(st.integers(0, 4)) < 4 else []
    for _ in range(draw(st.integers(0, 3))):  # order groups: an OBR and its OBX
        body.append(draw(segment("OBR")))
        body.extend(draw(st.lists(segment("OBX"), max_size=5)))
    for _ in range(draw(st.integers(0, 3))):  # other segments, anywhere
        body.insert(draw(st.integers(0, len(body))), draw(segment()))
    cut = len(header) if draw(st.integers(0, 4)) < 4 else draw(st.integers(-1, len(header)))
    rest = "\r".join(["|" + "|".join(header[:cut]) if cut >= 0 else "", *body])
    own = str.maketrans(dict(zip("|^~\\&", delimiters, strict=False)))
    return "MSH" + delimiters + rest.translate(own)


ENDS = st.sampled_from(["\r", "\n", "\r\n", "\x1c\r\x0b", "  \r", "\t\n", "\u00a0\r"])


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.tuples(message(), ENDS), min_size=1, max_size=4),
    st.sampled_from(["", "stray\r", "\ufeff"]),
    st.sampled_from(["UTC", "Europe/Paris"]),
)
def test_generated_messages_read_the_same(messages, before: str, zone: str) -> None:
    text = before + "".join(text + end for text, end in messages)
    assert_same(text, timezone=zone)


def fields_of(text: str) -> list[str]:
    """Where a value begins and ends in an HL7 file: a mutation replaces what lies between."""
    import re

    return re.split(r"([|^~&\r\n])", text)


SAMPLES = [path.read_bytes().decode("utf-8") for path in FILES]


@settings(max_examples=75, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_files_read_the_same(data: st.DataObject) -> None:
    parts = fields_of(data.draw(st.sampled_from(SAMPLES)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(parts) - 1))
        parts[at] = data.draw(
            st.one_of(VALUE, st.sampled_from(["|", "^", "~", "&", "\\", "\r", "MSH|^~\\&|"]))
        )
    assert_same("".join(parts))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MSH",
        "MSH|",
        "MSH|^~\\&",
        "MSH|^~\\&|",
        "MSH|^~\\&|x",
        "MSH|^~\\&\rPID|1",
        "MSH\rOBX|1|NM|6690-2^^LN||5",
        "MSH|^~\\&|||||20250101||ORU^R01|1\rPID|||P1\rOBX",
        "MSH|^~\\&|||||20250101||ORU^R01|1\rPID|||P1\rOBR\rOBX|1|NM|6690-2^^LN||5|||||F|||20250101",
        "MSH|^~\\&|||||20250101||ORU^R01|1\rPID\rOBX|1|NM|6690-2^^LN||5",
        "MSH|^~\\&|||||20250101||ORU^R01|1\rPID|||P1\rOBX|1|ST|x^\\E\\.spx\\E\\^LN||5|||||F|||20250101",
        "MSH|^~\\&|||||20250101||ORU^R01|1\rPID|||P1\rOBX|1|NM|6690-2^^LN||5|10^9/L||||F|||20250101   ",
        "MSH|^~\\&|||||20250101||ORU^R01|1\rPID|||P1\rOBX|1|NM|6690-2^^LN||5|10\\S\\9/L|||||||20250101",
        "MSH|^~\\&|||||20250101||ORU^R01|1\rPID|||P1\rOBX|1|SN|6690-2^^LN||<^0.5|||L~H~LL~HH~A~AA||F||||",
    ],
)
def test_awkward_messages_read_the_same(text: str) -> None:
    assert_same(text)


def test_the_benchmark_feed_reads_the_same(tmp_path: Path) -> None:
    """Many plain messages: the fast path's common case."""
    from benchmarks.feeds import hl7_file

    path = tmp_path / "feed.hl7"
    results = hl7_file(path, 300)
    parsed = assert_same(path.read_bytes().decode("utf-8"), timezone="Europe/Paris")
    assert isinstance(parsed, Parsed) and len(parsed.records) == results
