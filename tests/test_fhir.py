"""FHIR R4 JSON: the US Core example, Bundles, NDJSON exports and awkward resources, through the parser."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.formats.csv_long import UnusableFile
from monitor.formats.fhir import looks_like_fhir, parse_fhir
from monitor.formats.parsed import OTHER_COLUMNS, PATIENT_COLUMNS, RAW_COLUMNS, REJECT_COLUMNS, Parsed
from monitor.formats.records import normalise_results
from tests.conftest import DATA

US_CORE = DATA / "external" / "us-core-observation-cbc-leukocytes.json"
FHIR = DATA / "fhir"
LOINC = "http://loinc.org"


def read(path) -> str:
    return path.read_bytes().decode("utf-8")


def observation(**fields: Any) -> dict[str, Any]:
    """A final WBC Observation for Patient/p1; ``fields`` replace or add elements (None removes one)."""
    resource = {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "6690-2"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-01-05T08:00:00Z",
        "valueQuantity": {
            "value": 4.2,
            "unit": "10*3/uL",
            "system": "http://unitsofmeasure.org",
            "code": "10*3/uL",
        },
    }
    resource.update(fields)
    return {key: value for key, value in resource.items() if value is not None}


def parse_one(resource: dict[str, Any], **options: Any) -> Parsed:
    return parse_fhir(json.dumps(resource), **options)


def assert_contract(parsed: Parsed) -> None:
    for frame, columns in (
        (parsed.records, RAW_COLUMNS),
        (parsed.rejected, REJECT_COLUMNS),
        (parsed.patients, PATIENT_COLUMNS),
        (parsed.others, OTHER_COLUMNS),
    ):
        assert tuple(frame.columns) == columns
        assert all(pd.api.types.is_string_dtype(dtype) for dtype in frame.dtypes)
        assert not frame.isna().any().any()


# The real US Core example (HL7 US Core STU7 Observation/cbc-leukocytes)


def test_us_core_leukocytes_example_is_one_wbc_record_for_patient_example() -> None:
    parsed = parse_fhir(read(US_CORE))
    assert_contract(parsed)
    assert len(parsed.records) == 1 and parsed.rejected.empty and parsed.others.empty
    record = parsed.records.iloc[0]
    assert (record["patient_id"], record["assigning_authority"]) == ("example", "")
    assert (record["analyte"], record["loinc"], record["status"]) == ("6690-2", "6690-2", "final")
    # valueQuantity has `unit` but no `code`: the unit comes from `unit`
    assert (record["value"], record["unit"]) == ("10.0", "10*3/uL")
    assert (record["ref_low"], record["ref_high"], record["ref_raw"]) == ("4.5", "11.0", "4.5-11.0")
    assert (record["location"], record["lab"], record["accession"]) == ("resource", "", "")
    assert json.loads(record["raw_text"])["id"] == "cbc-leukocytes"
    # no Patient resource alongside: nothing to describe
    assert parsed.patients.empty


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [("UTC", "2005-07-05T00:00:00+00:00"), ("America/New_York", "2005-07-05T04:00:00+00:00")],
)
def test_date_only_effective_time_is_midnight_in_the_configured_zone(timezone: str, expected: str) -> None:
    parsed = parse_fhir(read(US_CORE), timezone=timezone)
    assert parsed.records["collected_at"].tolist() == [expected]


def test_us_core_wbc_lands_as_10_x10e9_per_litre_after_normalisation() -> None:
    out = normalise_results(parse_fhir(read(US_CORE), timezone="America/New_York").records)
    assert out.rejected.empty
    wbc = out.results.iloc[0]
    assert (wbc["analyte"], wbc["value"], wbc["unit"], wbc["value_raw"], wbc["unit_raw"]) == (
        "wbc",
        10.0,
        "10^9/L",
        "10.0",
        "10*3/uL",
    )
    assert (wbc["ref_low"], wbc["ref_high"], wbc["lab"]) == (4.5, 11.0, "unspecified")
    assert wbc["collected_at"] == pd.Timestamp("2005-07-05T04:00:00Z")


# Bundles


def test_searchset_bundle_resolves_the_mr_identifier_the_report_accession_and_its_lab() -> None:
    parsed = parse_fhir(read(FHIR / "bundle-cbc-searchset.json"))
    assert_contract(parsed)
    assert parsed.rejected.empty
    records = parsed.records.set_index("analyte")
    assert sorted(records.index) == ["6690-2", "718-7", "751-8", "777-3"]
    assert set(records["patient_id"]) == {"MRN-4471"}  # the MR identifier, not the first (SSN)
    assert set(records["assigning_authority"]) == {"urn:oid:2.16.840.1.113883.19.5"}
    # relative, absolute and versioned references in DiagnosticReport.result all find their Observation
    in_report = records.loc[["6690-2", "751-8", "718-7"]]
    assert set(in_report["accession"]) == {"ACC-2026-0042"}
    assert set(in_report["lab"]) == {"Riverside Hospital Laboratory"}
    assert set(in_report["reported_at"]) == {"2026-03-02T15:40:00+00:00"}  # DiagnosticReport.issued
    # not in a report: its own identifier, and the performing organisation rather than the practitioner
    platelets = records.loc["777-3"]
    assert (platelets["accession"], platelets["lab"], platelets["status"]) == (
        "ACC-2026-0050",
        "Northside Clinic Lab",
        "preliminary",
    )
    wbc = records.loc["6690-2"]
    assert (wbc["value"], wbc["unit"], wbc["abnormal_flag"]) == ("3100", "/uL", "L")
    assert wbc["collected_at"] == "2026-03-02T13:15:00+00:00"
    assert wbc["location"] == "entry 3 (Observation/wbc-1)"
    assert records.loc["751-8", "value"] == "1.20"  # as written
    assert records.loc["718-7", "ref_raw"] == "12.0-15.5 g/dL"  # referenceRange.text


def test_bundle_counts_in_per_microlitre_are_converted_by_the_normaliser() -> None:
    out = normalise_results(parse_fhir(read(FHIR / "bundle-cbc-searchset.json")).records)
    assert out.rejected.empty
    results = out.results.set_index("analyte")
    assert (results.loc["wbc", "value"], results.loc["wbc", "ref_low"], results.loc["wbc", "ref_high"]) == (
        3.1,
        4.0,
        11.0,
    )
    assert (results.loc["anc", "value"], results.loc["anc", "abnormal_flag"]) == (1.2, "LL")
    assert results.loc["hgb", "status"] == "corrected"


def test_bundle_patients_are_described_with_name_birth_date_and_sex() -> None:
    patients = parse_fhir(read(FHIR / "bundle-cbc-searchset.json")).patients
    assert patients.to_dict("records") == [
        {
            "patient_id": "MRN-4471",
            "assigning_authority": "urn:oid:2.16.840.1.113883.19.5",
            "name": "Okafor, Adaeze N",
            "birth_date": "1968-03-14",
            "sex": "F",
        }
    ]


def test_observation_outside_the_cbc_is_kept_as_another_observation_not_refused() -> None:
    parsed = parse_fhir(read(FHIR / "bundle-cbc-searchset.json"))
    glucose = parsed.others.set_index("code").loc["2345-7"]
    assert (glucose["code_system"], glucose["name"], glucose["value_type"]) == (LOINC, "Glucose", "Quantity")
    assert (glucose["value"], glucose["unit"], glucose["ref_raw"]) == ("132", "mg/dL", "70-99")
    assert (glucose["abnormal_flag"], glucose["status"], glucose["patient_id"]) == ("H", "final", "MRN-4471")
    assert glucose["collected_at"] == "2026-03-02T13:15:00+00:00"


def test_transaction_bundle_resolves_urn_uuid_references() -> None:
    parsed = parse_fhir(read(FHIR / "bundle-transaction-urn-uuid.json"))
    assert_contract(parsed)
    assert parsed.rejected.empty
    record = parsed.records.iloc[0]
    assert (record["patient_id"], record["assigning_authority"]) == (
        "000123456",
        "https://hospital.example.org/mrn",
    )
    # no report identifier: the report's id is the accession; effectivePeriod.start is the collection time
    assert (record["accession"], record["collected_at"]) == (
        "ignored-in-transactions",
        "2026-04-10T04:30:00+00:00",
    )
    assert record["location"] == "entry 3 (Observation)"
    assert parsed.patients[["name", "sex"]].values.tolist() == [["Lindqvist, Erik", "M"]]


# NDJSON bulk export


def test_ndjson_broken_line_is_refused_by_its_line_number_and_the_rest_is_read() -> None:
    parsed = parse_fhir(read(FHIR / "bulk-export-observations.ndjson"))
    assert_contract(parsed)
    reasons = dict(zip(parsed.rejected["location"], parsed.rejected["reason"], strict=True))
    assert reasons == {
        "line 4": "line 4 is not valid JSON (column 139: Unterminated string starting at)",
        "line 10": "value is not a Quantity (valueString)",
    }
    assert parsed.rejected.set_index("location").loc["line 4", "raw_text"].startswith('{"resourceType"')
    records = parsed.records.set_index("location")
    assert records.loc["line 2", ["analyte", "value", "patient_id"]].tolist() == ["6690-2", "2.3", "MRN-9"]
    assert records.loc["line 3", "value"] == "0.4"
    assert records.loc["line 9", "value"].startswith("<")  # a censored value keeps its comparator


def test_registered_and_data_absent_observations_are_pending_and_panels_are_skipped() -> None:
    parsed = parse_fhir(read(FHIR / "bulk-export-observations.ndjson"))
    assert parsed.pending == 2  # line 6 registered, line 7 dataAbsentReason; the hasMember panel not counted
    assert "line 11" not in set(parsed.records["location"]) | set(parsed.others["location"])


def test_entered_in_error_passes_through_and_is_kept_as_a_withdrawal() -> None:
    parsed = parse_fhir(read(FHIR / "bulk-export-observations.ndjson"))
    withdrawn = parsed.records.set_index("location").loc["line 8"]
    assert (withdrawn["status"], withdrawn["value"]) == ("entered-in-error", "")
    out = normalise_results(parsed.records)
    assert out.results.set_index("location").loc["line 8", "status"] == "entered-in-error"


# Refusals, one field at a time


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"subject": None}, "no subject: the patient is unknown"),
        ({"subject": {"reference": "Group/ward-3"}}, "subject 'Group/ward-3' is a Group, not a Patient"),
        (
            {"subject": {"display": "Amy Shaw"}},
            "subject has no usable reference or identifier: the patient is unknown",
        ),
        (
            {"effectiveDateTime": None},
            "no effectiveDateTime, effectivePeriod.start or effectiveInstant: collection time unknown",
        ),
        (
            {"effectiveDateTime": "2026-01"},
            "effectiveDateTime '2026-01' is not a full date (YYYY-MM-DD): the collection day is unknown",
        ),
        ({"effectiveDateTime": "2026-02-30"}, "effectiveDateTime '2026-02-30' is not a readable date-time"),
        ({"status": None}, "no status (final, preliminary, amended, corrected, cancelled, entered-in-error)"),
        (
            {"valueQuantity": None, "valueCodeableConcept": {"text": "low"}},
            "value is not a Quantity (valueCodeableConcept)",
        ),
        ({"valueQuantity": {"code": "10*3/uL"}}, "valueQuantity has no value"),
        ({"valueQuantity": {"value": [1], "code": "10*3/uL"}}, "valueQuantity.value is not a number ([1])"),
        ({"valueQuantity": None}, "no value (valueQuantity) and no dataAbsentReason"),
        (
            {
                "referenceRange": [
                    {"low": {"value": 4000, "code": "/uL"}, "high": {"value": 11000, "code": "/uL"}}
                ]
            },
            "referenceRange[0].low is in '/uL' but the value is in '10*3/uL'",
        ),
    ],
)
def test_an_unreadable_observation_is_refused_naming_the_field(fields: dict[str, Any], reason: str) -> None:
    parsed = parse_one(observation(**fields))
    assert_contract(parsed)
    assert parsed.records.empty
    assert parsed.rejected.to_dict("records") == [
        {
            "location": "resource",
            "raw_text": json.dumps(observation(**fields), separators=(",", ":")),
            "reason": reason,
        }
    ]


def test_an_unknown_status_passes_through_for_the_normaliser_to_name() -> None:
    parsed = parse_one(observation(status="unknown"))
    assert parsed.records["status"].tolist() == ["unknown"]
    reason = normalise_results(parsed.records).rejected["reason"].iloc[0]
    assert reason.startswith("status 'unknown' is not one of")


def test_amended_passes_through_and_the_normaliser_stores_it_as_corrected() -> None:
    out = normalise_results(parse_one(observation(status="amended")).records)
    assert out.results["status"].tolist() == ["corrected"]


def test_a_subject_given_by_identifier_and_an_observation_performer_are_read() -> None:
    resource = observation(
        subject={"identifier": {"system": "urn:oid:9.9", "value": "H-77"}},
        performer=[{"display": "City Lab"}],
        identifier=[{"value": "SPEC-1"}],
        issued="2026-01-05T12:00:00+01:00",
    )
    record = parse_one(resource).records.iloc[0]
    assert (record["patient_id"], record["assigning_authority"]) == ("H-77", "urn:oid:9.9")
    assert (record["lab"], record["accession"], record["reported_at"]) == (
        "City Lab",
        "SPEC-1",
        "2026-01-05T11:00:00+00:00",
    )


def test_a_contained_patient_is_resolved() -> None:
    patient = {"resourceType": "Patient", "id": "pt", "identifier": [{"value": "C-1", "system": "urn:x"}]}
    record = parse_one(observation(contained=[patient], subject={"reference": "#pt"})).records.iloc[0]
    assert (record["patient_id"], record["assigning_authority"]) == ("C-1", "urn:x")


def test_a_year_beyond_9998_is_refused_rather_than_crashing() -> None:
    parsed = parse_one(observation(effectiveDateTime="9999-12-31"), timezone="America/New_York")
    assert parsed.rejected["reason"].tolist() == [
        "effectiveDateTime '9999-12-31' is outside the years 1900-2999 (in UTC)"
    ]


# Whole files


def test_malformed_json_file_is_unusable_with_line_and_column() -> None:
    broken = '{\n  "resourceType": "Observation",\n  "status" "final"\n}'
    with pytest.raises(UnusableFile, match=r"^not valid JSON: line 3 column 12: Expecting ':' delimiter"):
        parse_fhir(broken)


@pytest.mark.parametrize("text", ["", "  \n", "\ufeff"])
def test_an_empty_file_is_unusable(text: str) -> None:
    with pytest.raises(UnusableFile, match="empty"):
        parse_fhir(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1, 2]", "the file is a JSON array, not a FHIR resource (an object with resourceType)"),
        ('{"id": 1}', "no resourceType: not a FHIR resource"),
        (
            '{"resourceType": "OperationOutcome"}',
            "resourceType 'OperationOutcome' carries no results (expected Bundle, Observation, "
            "DiagnosticReport, Patient or NDJSON)",
        ),
        ('{"resourceType": "Bundle", "entry": {}}', "Bundle.entry is not a list"),
    ],
)
def test_json_that_is_not_a_fhir_resource_is_one_refusal(text: str, reason: str) -> None:
    parsed = parse_fhir(text)
    assert_contract(parsed)
    assert parsed.rejected[["location", "reason"]].values.tolist() == [["resource", reason]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (read(US_CORE), True),
        ('\ufeff {"resourceType": "Bundle", "type": "collection"}', True),
        ('{"resourceType":"Observation"}\n{"resourceType":"Observation"', True),  # NDJSON, last line cut
        (
            '{\n  "resourceType": "Observation",\n  "status" "final"\n}',
            True,
        ),  # broken: let the reader say where
        ('{"patient_id": "P1"}', False),
        ("MSH|^~\\&|LAB\r", False),
        ("patient_id,collected_at,analyte,value,unit\n", False),
        ("", False),
    ],
)
def test_looks_like_fhir(text: str, expected: bool) -> None:
    assert looks_like_fhir(text) is expected


# Never anything but UnusableFile


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
KEYS = st.sampled_from(
    [
        "resourceType",
        "status",
        "code",
        "coding",
        "system",
        "value",
        "valueQuantity",
        "valueString",
        "subject",
        "reference",
        "effectiveDateTime",
        "referenceRange",
        "low",
        "high",
        "entry",
        "resource",
        "fullUrl",
        "identifier",
        "result",
        "performer",
        "comparator",
        "hasMember",
        "dataAbsentReason",
    ]
) | st.text(max_size=6)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
NUMBERS = st.integers() | st.floats(allow_nan=False) | st.sampled_from([0, 3.1, 1e400, -1, 10**30])
FIELD_VALUES = {
    "resourceType": st.sampled_from(
        ["Observation", "Observation", "Patient", "DiagnosticReport", "Bundle", "Basic"]
    ),
    "status": st.sampled_from(["final", "registered", "amended", "entered-in-error", "unknown", ""]),
    "code": st.builds(
        lambda code: {"coding": [{"system": LOINC, "code": code}]},
        st.sampled_from(["6690-2", "751-8", "2345-7", ""]),
    ),
    "subject": st.sampled_from(
        [{"reference": "Patient/p1"}, {"reference": "urn:uuid:x"}, {"reference": "#c"}]
    ),
    "effectiveDateTime": st.sampled_from(["2026-01-05", "2026-01-05T08:00:00Z", "9999-12-31", "2026", "x"]),
    "valueQuantity": st.fixed_dictionaries(
        {"value": NUMBERS | JSON_SCALARS},
        optional={"code": st.sampled_from(["10*3/uL", "/uL", ""]) | JSON_SCALARS, "comparator": JSON_SCALARS},
    ),
    "referenceRange": st.lists(
        st.fixed_dictionaries(
            {}, optional={"low": st.fixed_dictionaries({"value": NUMBERS}) | JSON_VALUES, "high": JSON_VALUES}
        ),
        max_size=2,
    ),
}


def mostly(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a plausible value for the field, sometimes any JSON at all."""
    return st.one_of(values, values, values, JSON_VALUES)


RESOURCES = st.fixed_dictionaries(
    {key: mostly(values) for key, values in FIELD_VALUES.items() if key != "referenceRange"},
    optional={"referenceRange": mostly(FIELD_VALUES["referenceRange"])},
)
BUNDLES = st.builds(
    lambda resources: {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]},
    st.lists(RESOURCES | JSON_VALUES, max_size=4),
)


def parse_or_unusable(text: str) -> None:
    try:
        parsed = parse_fhir(text, timezone="America/New_York")
    except UnusableFile:
        return
    assert_contract(parsed)
    assert parsed.pending >= 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80) | JSON_VALUES.map(json.dumps))
def test_arbitrary_text_gives_frames_in_contract_or_unusable_file(text: str) -> None:
    parse_or_unusable(text)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RESOURCES | BUNDLES | JSON_VALUES, min_size=1, max_size=4), st.booleans())
def test_arbitrary_resources_as_json_or_ndjson_never_raise(documents: list[Any], as_ndjson: bool) -> None:
    if as_ndjson:
        text = "\n".join(json.dumps(document) for document in documents)
    else:
        text = json.dumps({"resourceType": "Bundle", "entry": [{"resource": d} for d in documents]})
    parse_or_unusable(text)


def test_a_censored_quantity_keeps_its_comparator_through_the_normaliser() -> None:
    resource = {
        "resourceType": "Observation",
        "id": "c1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-03-01T08:00:00Z",
        "valueQuantity": {"value": 0.1, "comparator": "<", "code": "10*3/uL"},
    }
    out = normalise_results(parse_fhir(json.dumps(resource)).records)
    assert out.results[["comparator", "value", "value_raw"]].values.tolist() == [["<", 0.1, "<0.1"]]
