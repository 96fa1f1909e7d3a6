"""Validation and unit normalisation of raw records: once, at ingest, never guessed."""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.formats.records import normalise_results


def raw(**fields: list[str]) -> pd.DataFrame:
    """Raw records with sensible defaults; any field can be overridden by a list of values."""
    n = len(next(iter(fields.values()))) if fields else 1
    defaults = {
        "patient_id": ["P1"] * n,
        "collected_at": ["2026-02-01T08:00:00Z"] * n,
        "analyte": ["wbc"] * n,
        "value": ["5.0"] * n,
        "unit": ["10^9/L"] * n,
        "ref_low": [""] * n,
        "ref_high": [""] * n,
        "lab": ["L1"] * n,
        "accession": [f"A{i}" for i in range(n)],
        "status": [""] * n,
        "location": [f"line {i + 2}" for i in range(n)],
        "raw_text": ["..."] * n,
    }
    return pd.DataFrame({**defaults, **fields})


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected"),
    [
        ("wbc", "3.8", "10^9/L", 3.8),
        ("wbc", "3.8", "10*9/L", 3.8),
        ("wbc", "3.8", "10\\S\\9/L", 3.8),
        ("wbc", "3.8", "x10E3/uL", 3.8),
        ("wbc", "3.8", "X10E3/UL", 3.8),
        ("wbc", "3.8", "K/µL", 3.8),
        ("wbc", "3.8", "thou/uL", 3.8),
        ("wbc", "3.8", "G/L", 3.8),
        ("wbc", "3.8", "giga.l-1", 3.8),
        ("anc", "1500", "/uL", 1.5),
        ("anc", "1500", "cells/uL", 1.5),
        ("anc", "1500", "{cells}/uL", 1.5),
        ("anc", "1500", "/mm3", 1.5),
        ("anc", "1500", "/cumm", 1.5),
        ("plt", "210000", "{cells}/uL", 210.0),
        ("hgb", "124", "g/L", 12.4),
        ("hgb", "12.4", "g/dl", 12.4),
        ("hgb", "6.2", "mmol/L", 9.990332),
        ("neut_pct", "55", "%", 55.0),
    ],
)
def test_units_are_converted_to_the_canonical_unit(analyte, value, unit, expected) -> None:
    out = normalise_results(raw(analyte=[analyte], value=[value], unit=[unit]))
    assert out.rejected.empty, out.rejected["reason"].tolist()
    assert out.results.loc[0, "value"] == expected
    assert (out.results.loc[0, "value_raw"], out.results.loc[0, "unit_raw"]) == (value, unit)


def test_a_boundary_count_sent_per_microlitre_compares_exactly() -> None:
    # 1,500 /uL must be exactly 1.5 x10^9/L, not 1.5000000000000002: grades turn on such boundaries.
    out = normalise_results(raw(analyte=["anc"], value=["1500"], unit=["/uL"], ref_low=["1500"]))
    assert out.results.loc[0, "value"] == 1.5 and out.results.loc[0, "ref_low"] == 1.5


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"patient_id": [""]}, "patient_id is empty"),
        ({"collected_at": ["2026-02-01T08:00:00"]}, "collected_at '2026-02-01T08:00:00' has no time zone"),
        ({"collected_at": ["2026-02-31T08:00:00Z"]}, "is not an ISO 8601 date-time"),
        ({"collected_at": ["2026-02-01"]}, "collected_at '2026-02-01' has no time zone offset"),
        # Not ISO 8601 at all: the missing offset is not the reason to give.
        ({"collected_at": ["03/04/2026 08:00"]}, "collected_at '03/04/2026 08:00' is not an ISO 8601 date"),
        ({"collected_at": ["03/04/2026 08:00+01:00"]}, "'03/04/2026 08:00+01:00' is not an ISO 8601 date"),
        ({"analyte": ["11156-7"]}, "analyte '11156-7' is neither a known analyte name nor a CBC LOINC code"),
        ({"value": [""]}, "value is empty"),
        ({"value": ["<x"]}, "value '<x' is not a number"),
        ({"value": ["1-2"]}, "value '1-2' is not a number"),
        ({"unit": [""]}, "unit is empty for WBC"),
        ({"unit": ["g/L"]}, "unknown unit 'g/L' for WBC"),
        (
            {"analyte": ["hgb"], "unit": ["g/mL"], "value": ["12.5"]},
            "12.5 g/mL is 1250 g/dL after conversion",
        ),
        ({"analyte": ["hgb"], "unit": ["mg/dL"], "value": ["12.5"]}, "unknown unit 'mg/dL' for Haemoglobin"),
        ({"ref_low": ["11"], "ref_high": ["4"]}, "reference range is reversed (ref_low 11 > ref_high 4)"),
        ({"ref_low": ["low"]}, "ref_low 'low' is not a number"),
        ({"status": ["maybe"]}, "status 'maybe' is not one of"),
        ({"value": ["4500"], "unit": ["10^3/uL"]}, "above the plausible limit 1000 10^9/L: check the unit"),
        ({"analyte": ["anc"], "value": ["3000"], "unit": ["10*3/uL"]}, "above the plausible limit 1000"),
        # A CML's ANC of 118 lands (docs/clinical-basis.md, Plausibility limits); 118,000 cells/uL sent as
        # 10^9/L is still a unit error.
        ({"analyte": ["anc"], "value": ["118000"], "unit": ["10^9/L"]}, "above the plausible limit 1000"),
    ],
)
def test_an_untrustworthy_record_is_refused_with_the_reason(fields, reason) -> None:
    out = normalise_results(raw(**fields))
    assert out.results.empty
    assert out.rejected.loc[0, "location"] == "line 2"
    assert reason in out.rejected.loc[0, "reason"]


def test_g_per_litre_haemoglobin_is_not_giga_per_litre() -> None:
    # "G/L" (giga) is a count unit; "g/L" (grams) is not, whatever the letter case suggests.
    out = normalise_results(raw(analyte=["wbc", "wbc"], unit=["G/L", "g/l"]))
    assert out.results["unit_raw"].tolist() == ["G/L"]
    assert out.rejected["reason"].tolist() == ["unknown unit 'g/l' for WBC"]


def test_times_with_offsets_are_stored_in_utc() -> None:
    out = normalise_results(raw(collected_at=["2026-07-01T10:30:00+02:00", "2026-07-01T03:30:00-05:00"]))
    assert out.results["collected_at"].tolist() == [
        pd.Timestamp("2026-07-01T08:30:00Z"),
        pd.Timestamp("2026-07-01T08:30:00Z"),
    ]


def test_statuses_accept_hl7_letters_and_fhir_words() -> None:
    out = normalise_results(raw(status=["F", "p", "C", "amended", "X", "W", ""]))
    assert out.results["status"].tolist() == [
        "final",
        "preliminary",
        "corrected",
        "corrected",
        "cancelled",
        "entered-in-error",
        "final",
    ]


def test_an_identical_repeat_in_one_file_is_dropped_and_a_different_one_refused() -> None:
    records = raw(value=["5.0", "5.0", "5.5"], accession=["A", "A", "A"])
    out = normalise_results(records)
    assert out.results["location"].tolist() == ["line 2"]
    assert out.rejected["location"].tolist() == ["line 4"]
    assert out.rejected.loc[0, "reason"].startswith("contradicts line 2")


def test_normalising_does_not_modify_its_input() -> None:
    records = raw(value=["1500", "x"], unit=["/uL", "/uL"], analyte=["anc", "anc"])
    before = records.copy()
    normalise_results(records)
    pd.testing.assert_frame_equal(records, before)


def test_a_withdrawn_result_needs_no_value_and_is_kept() -> None:
    out = normalise_results(raw(value=["", "3.1"], unit=["", "10^9/L"], status=["W", "X"]))
    assert out.rejected.empty
    assert out.results["status"].tolist() == ["entered-in-error", "cancelled"]
    assert out.results["value"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("sent", "comparator", "value"),
    [
        ("<0.1", "<", 0.1),
        ("< 100", "<", 100.0),
        ("<=0.5", "<=", 0.5),
        ("≥50", ">=", 50.0),
        ("3.2", None, 3.2),
    ],
)
def test_a_censored_value_keeps_its_comparator(sent, comparator, value) -> None:
    out = normalise_results(raw(analyte=["anc"], value=[sent], unit=["10^9/L"]))
    assert out.rejected.empty
    row = out.results.iloc[0]
    assert (row["comparator"] if pd.notna(row["comparator"]) else None, row["value"], row["value_raw"]) == (
        comparator,
        value,
        sent,
    )


def test_an_empty_frame_gives_empty_results() -> None:
    out = normalise_results(raw().iloc[0:0])
    assert out.results.empty and out.rejected.empty


def test_a_leukaemia_s_neutrophils_and_lymphocytes_above_100_land() -> None:
    """A CML's ANC of 118 with a WBC of 150, a CLL's ALC of 250 (docs/clinical-basis.md, Plausibility
    limits)."""
    out = normalise_results(raw(analyte=["anc", "alc"], value=["118", "250"], unit=["10*3/uL", "10*3/uL"]))
    assert out.rejected.empty
    assert out.results["value"].tolist() == [118.0, 250.0]
