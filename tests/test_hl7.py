"""HL7 v2 ORU^R01: real messages written by others and the awkward ones labs send, through the parser."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.formats.hl7v2 import looks_like_hl7, parse_hl7, split_messages
from monitor.formats.parsed import RAW_COLUMNS
from monitor.formats.records import normalise_results
from tests.conftest import DATA

EXTERNAL = DATA / "external"
HL7 = DATA / "hl7"


def read(path) -> str:
    return path.read_bytes().decode("utf-8")


def test_nist_message_lands_its_wbc_in_canonical_units_and_refuses_hgb_in_g_per_ml() -> None:
    parsed = parse_hl7(read(EXTERNAL / "nist-lri-cbc.hl7"))
    out = normalise_results(parsed.records)
    wbc = out.results.set_index("analyte").loc["wbc"]
    assert (wbc["value"], wbc["unit"], wbc["value_raw"], wbc["unit_raw"]) == (
        105.6,
        "10^9/L",
        "105600",
        "{cells}/uL",
    )
    assert (wbc["ref_low"], wbc["ref_high"], wbc["abnormal_flag"]) == (4.3, 10.8, "HH")
    assert wbc["loinc"] == "26464-8" and wbc["accession"] == "R-991133" and wbc["lab"] == "NIST Lab Facility"
    # 14:34:28 at -08:00 is 22:34:28 UTC
    assert wbc["collected_at"] == pd.Timestamp("2011-01-03T22:34:28Z")
    assert out.rejected["reason"].tolist() == [
        "Haemoglobin 12.5 g/mL is 1250 g/dL after conversion, above the plausible limit 30 g/dL: "
        "check the unit"
    ]
    assert out.rejected["location"].tolist() == ["message 1 (NIST-LRI-NG-002.00), OBR 1, OBX 2"]
    patient = parsed.patients.iloc[0]
    assert (patient["patient_id"], patient["assigning_authority"], patient["name"]) == (
        "PATID1234",
        "NIST MPI",
        "Jones, William A",
    )
    assert (patient["birth_date"], patient["sex"]) == ("1961-06-15", "M")


def test_nist_morphology_and_red_cell_indices_are_kept_as_other_observations() -> None:
    parsed = parse_hl7(read(EXTERNAL / "nist-lri-cbc.hl7"))
    assert {"11156-7", "11125-2", "30428-7", "38892-6"} <= set(parsed.others["code"])
    morphology = parsed.others.set_index("code").loc["6742-1"]
    assert morphology["value"] == "Many spherocytes present." and morphology["value_type"] == "TX"


def test_pending_results_are_not_results_and_misused_loinc_codes_are_not_rescued_by_their_text() -> None:
    parsed = parse_hl7(read(EXTERNAL / "fhir-converter-lab-oru-1.hl7"))
    assert parsed.pending == 2  # OBX with status I and no value
    out = normalise_results(parsed.records)
    assert sorted(out.results["analyte"]) == ["baso_pct", "eos_pct", "lymph_pct", "mono_pct", "neut_pct"]
    assert set(out.results["status"]) == {"preliminary"}
    # 11125-2 "PLATELETS" (a morphology code) with 221 giga.l-1 is not a platelet count
    assert "plt" not in set(out.results["analyte"])
    assert parsed.others.set_index("code").loc["11125-2", "unit"] == "giga.l-1"
    # OBR-7 is empty in this message: the time comes from OBX-14
    assert out.results["collected_at"].unique().tolist() == [pd.Timestamp("2014-10-06T06:27:00Z")]
    assert out.rejected.empty and parsed.rejected.empty


def test_local_codes_names_and_escaped_units_are_understood() -> None:
    out = normalise_results(parse_hl7(read(HL7 / "local-codes-percentages.hl7")).records)
    values = out.results.set_index("analyte")
    assert values.loc["wbc", "value"] == 2.9 and values.loc["wbc", "unit_raw"] == "10^9/L"
    assert (
        values.loc["plt", "value"] == 142.0 and values.loc["plt", "unit_raw"] == "10^9/L"
    )  # raw ^ re-joined
    assert values.loc["hgb", "value"] == 11.8 and values.loc["neut_pct", "value"] == 40.0
    assert (
        values.loc["wbc", "patient_id"] == "H123456"
        and values.loc["wbc", "assigning_authority"] == "CITYHOSP"
    )


def test_the_medical_record_number_is_preferred_over_other_identifiers() -> None:
    parsed = parse_hl7(read(HL7 / "local-codes-percentages.hl7"))
    assert parsed.patients["patient_id"].tolist() == ["H123456"]


def test_mllp_framing_and_several_messages_in_one_file() -> None:
    text = read(HL7 / "mllp-preliminary-then-final.hl7")
    messages, stray = split_messages(text)
    assert len(messages) == 2 and not stray
    parsed = parse_hl7(text)
    assert parsed.records["status"].tolist() == ["P", "P", "F", "F"]
    # 07:15 at +01:00 is 06:15 UTC
    assert set(parsed.records["collected_at"]) == {"2026-03-12T06:15:00+00:00"}


def test_times_without_an_offset_are_read_in_the_configured_zone() -> None:
    text = read(HL7 / "local-codes-percentages.hl7")
    assert set(parse_hl7(text, timezone="Europe/Paris").records["collected_at"]) == {
        "2026-03-10T06:30:00+00:00"
    }
    assert set(parse_hl7(text, timezone="UTC").records["collected_at"]) == {"2026-03-10T07:30:00+00:00"}


def test_msh_7s_offset_is_the_default_for_the_messages_times_without_one() -> None:
    """HL7 v2 (TM/DTM): a time without an offset takes MSH-7's, else it is the sender's local time."""
    text = read(HL7 / "local-codes-percentages.hl7")
    msh = text.split("\n", 1)[0]
    stamped = msh.split("|")
    assert stamped[6] == "20260310081500"  # this file's MSH-7 has no offset: the configured zone applies
    stamped[6] = "20260310081500-0500"
    with_offset = text.replace(msh, "|".join(stamped), 1)
    for zone in ("UTC", "Europe/Paris"):  # MSH-7 says where the sender is, whatever the zone given
        parsed = parse_hl7(with_offset, timezone=zone).records
        assert set(parsed["collected_at"]) == {"2026-03-10T12:30:00+00:00"}  # OBR-7 07:30 at -05:00
        assert set(parsed["reported_at"]) == {"2026-03-10T13:10:00+00:00"}  # OBR-22 08:10 at -05:00
    # A time with its own offset keeps it.
    own = with_offset.replace("|20260310073000|", "|20260310073000+0100|")
    assert set(parse_hl7(own).records["collected_at"]) == {"2026-03-10T06:30:00+00:00"}


def test_a_collection_time_that_cannot_be_read_is_named_with_its_field() -> None:
    text = read(HL7 / "local-codes-percentages.hl7")
    month_13 = parse_hl7(text.replace("|20260310073000|", "|20261345990000|"))
    assert month_13.records.empty and len(month_13.rejected) == 6  # every OBX of the panel
    assert set(month_13.rejected["reason"]) == {
        "OBR-7 collection time '20261345990000' is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+/-ZZZZ])"
    }
    assert month_13.rejected.loc[0, "location"].endswith("OBR 1, OBX 1")
    untimed = parse_hl7(text.replace("|20260310073000|", "||"))  # no OBR-7, and no OBX-14 either
    assert set(untimed.rejected["reason"]) == {"no collection time: OBR-7 and OBX-14 are both empty"}


def test_a_message_cut_before_its_first_obx_is_refused_not_passed_over() -> None:
    text = read(HL7 / "local-codes-percentages.hl7")
    cut = text[: text.index("OBX|1|")]
    parsed = parse_hl7(cut)
    assert parsed.records.empty
    assert parsed.rejected[["location", "reason"]].values.tolist() == [
        ["message 1 (MSG0001)", "no OBX segment: the message carries no result"]
    ]


def test_corrections_and_deletions_pass_their_status_through() -> None:
    out = normalise_results(parse_hl7(read(HL7 / "correction-and-deletion.hl7")).records)
    assert out.results[["analyte", "status"]].values.tolist() == [
        ["anc", "corrected"],
        ["wbc", "entered-in-error"],
    ]


def test_coded_and_mislabelled_values_are_refused_and_a_censored_one_kept() -> None:
    parsed = parse_hl7(read(HL7 / "troubles.hl7"))
    out = normalise_results(parsed.records)
    reasons = dict(
        zip(
            pd.concat([parsed.rejected, out.rejected])["location"],
            pd.concat([parsed.rejected, out.rejected])["reason"],
            strict=True,
        )
    )
    assert reasons["message 1 (MSG0005), OBR 1, OBX 2"].startswith("OBX-2 value type CWE is not a number")
    assert reasons["message 1 (MSG0005), OBR 1, OBX 3"] == "unknown unit 'furlongs' for WBC"
    assert reasons["message 2 (MSG0006)"] == "MSH-9 is 'ADT^A01', not ORU^R01: no results"
    assert reasons["message 3 (MSG0007)"] == "PID-3 carries no patient identifier"
    kept = out.results.fillna({"comparator": ""})[["analyte", "comparator", "value"]]
    assert kept.values.tolist() == [["anc", "<", 0.1], ["plt", "", 18.0]]


def test_a_header_cut_short_is_refused_as_having_no_message_type() -> None:
    parsed = parse_hl7("MSH|^~\\&|LIS|LAB\rPID|1||P1\rOBX|1|NM|6690-2^WBC^LN||3.1|10*3/uL\r")
    assert parsed.records.empty
    assert parsed.rejected["reason"].tolist() == ["MSH-9 (message type) is empty, not ORU^R01: no results"]


def test_text_before_the_first_message_is_refused_not_ignored() -> None:
    parsed = parse_hl7("garbage line\r" + read(HL7 / "local-codes-percentages.hl7"))
    assert parsed.rejected.iloc[0]["location"] == "before the first MSH"
    assert len(parsed.records) == 5


@pytest.mark.parametrize("text", ["MSH|^~\\&|x", "MSH|", "MSH|^~\\&\rPID|1", "MSH\rOBX|1|NM|6690-2^^LN||5"])
def test_truncated_messages_are_refused_not_crashes(text: str) -> None:
    parsed = parse_hl7(text)
    assert list(parsed.records.columns) == list(RAW_COLUMNS)
    assert len(parsed.rejected) >= 1


def test_detection() -> None:
    assert looks_like_hl7(read(EXTERNAL / "nist-lri-cbc.hl7"))
    assert looks_like_hl7("\x0bMSH|^~\\&|A")
    assert not looks_like_hl7("patient_id,collected_at\n")


segment_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["MSH", "PID", "OBR", "OBX", "ZZZ", ""]), segment_text), max_size=8)
)
def test_no_input_makes_the_parser_crash(segments) -> None:
    text = "\r".join(name + "|" + body for name, body in segments)
    parsed = parse_hl7(text)
    assert list(parsed.records.columns) == list(RAW_COLUMNS)
    normalise_results(parsed.records)
