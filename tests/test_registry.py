"""The format registry: one entry per format, read by detection, parsing, cutting and the zone rule."""

from __future__ import annotations

import io

import pytest

from monitor.formats.csv_long import UnusableFile
from monitor.formats.parsed import EVENT_COLUMNS, RAW_COLUMNS, Parsed
from monitor.formats.registry import (
    FORMAT_NAMES,
    FORMATS,
    WHOLE_FILE_LIMIT,
    detect_format,
    format_named,
    read_text,
)
from tests.conftest import DATA

SAMPLES = {
    "hl7": DATA / "external" / "nist-lri-cbc.hl7",
    "fhir": DATA / "external" / "us-core-observation-cbc-leukocytes.json",
    "csv": DATA / "canonical-good.csv",
    "events": DATA / "csv" / "events.csv",
    "wide": DATA / "csv" / "wide.csv",
}


def test_every_format_has_one_entry_and_a_sample_it_recognises_as_its_own() -> None:
    assert sorted(FORMAT_NAMES) == sorted(SAMPLES) and len(set(FORMAT_NAMES)) == len(FORMATS)
    for name, path in SAMPLES.items():
        assert detect_format(path.read_text()).name == name


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_format_parses_its_sample_into_what_it_says_it_yields(name: str) -> None:
    known = format_named(name)
    pieces = list(known.pieces([SAMPLES[name].read_text()]))
    parsed = known.parse(pieces[0][0], "UTC", pieces[0][1])
    assert isinstance(parsed, Parsed) and list(parsed.records.columns) == list(RAW_COLUMNS)
    if known.yields == "events":
        assert len(parsed.events) and parsed.records.empty
        assert list(parsed.events.columns) == list(EVENT_COLUMNS)
    else:
        assert len(parsed.records) and parsed.events.empty


def test_formats_are_recognised_in_the_registry_order() -> None:
    """A header naming the canonical columns and an analyte column with its unit is both canonical and wide:
    the earlier entry, the canonical CSV, wins."""
    both = "patient_id,collected_at,analyte,value,unit,WBC (10^9/L)\n"
    assert format_named("csv").looks_like(both) and format_named("wide").looks_like(both)
    assert detect_format(both).name == "csv"
    assert FORMAT_NAMES.index("csv") < FORMAT_NAMES.index("wide")


@pytest.mark.parametrize(
    ("name", "named", "expected"),
    [
        ("hl7", None, "Europe/Paris"),
        ("fhir", None, "Europe/Paris"),
        ("events", None, "Europe/Paris"),
        ("csv", None, ""),
        ("wide", None, ""),
        ("csv", "Asia/Tokyo", "Asia/Tokyo"),
        ("hl7", "Asia/Tokyo", "Asia/Tokyo"),
    ],
)
def test_times_without_an_offset_follow_each_formats_zone_rule(
    name: str, named: str | None, expected: str
) -> None:
    assert format_named(name).reading_zone(named, site="Europe/Paris") == expected


def test_only_formats_read_whole_are_refused_for_their_size() -> None:
    whole = [known.name for known in FORMATS if known.cut is None]
    assert whole == ["fhir", "events"]
    with pytest.raises(UnusableFile, match="a FHIR file is read whole"):
        format_named("fhir").refuse_too_large(WHOLE_FILE_LIMIT + 1)
    format_named("fhir").refuse_too_large(WHOLE_FILE_LIMIT)
    format_named("csv").refuse_too_large(WHOLE_FILE_LIMIT * 10)  # cut into pieces: any size


def test_a_named_format_is_not_detected_and_an_unknown_name_is_refused() -> None:
    found, text = read_text(io.BytesIO(b"patient_id,kind,start,label\n"), "csv", {})
    assert found.name == "csv" and "".join(text).startswith("patient_id,kind")
    with pytest.raises(KeyError, match="no format 'xml'"):
        format_named("xml")


def test_a_column_map_renames_the_header_before_the_format_is_detected() -> None:
    export = b"MRN,Drawn,Test,Result,Units\nX-9,2026-01-01T08:00Z,wbc,4.1,10^9/L\n"
    mapping = {
        "MRN": "patient_id",
        "Drawn": "collected_at",
        "Test": "analyte",
        "Result": "value",
        "Units": "unit",
    }
    found, text = read_text(io.BytesIO(export), None, mapping)
    assert found.name == "csv"
    assert "".join(text).splitlines()[0] == "patient_id,collected_at,analyte,value,unit"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty"),
        ("a;b;c\n1;2;3\n", "separated by semicolons"),
        ("name,age\nx,1\n", "not a recognised format"),
        # A CSV that names most of a format's required columns is told which it lacks, as that format says.
        ("patient_id,collected_at,analyte,value\nP1,2026-03-02T08:15:00Z,wbc,5.6\n", "the header lacks unit"),
        ("patient_id,collected_at,value,unit\n", "the header lacks analyte "),
        ("patient_id,kind,start\nP1,fever,2026-03-02\n", "the events header lacks label"),
    ],
)
def test_content_of_no_known_format_is_unusable_with_what_to_do(text: str, reason: str) -> None:
    with pytest.raises(UnusableFile, match=reason):
        detect_format(text)
