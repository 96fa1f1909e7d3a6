"""Temperatures are results too: real HL7 v2, FHIR and CSV files through the real importer, on both stores."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import SYSTEM
from db.models import RejectedRecord
from db.queries import find_patient, patient_list, patient_results
from monitor.formats.parsed import RAW_COLUMNS
from monitor.formats.records import normalise_results
from services.imports import ImportOptions, import_path
from tests.conftest import DATA

TEMPERATURES = DATA / "temperatures"
BY_TEST = ImportOptions(imported_by="test", site_timezone="UTC")
SHOWN = ["collected_at", "value", "unit", "value_raw", "unit_raw", "loinc"]


def _temperatures(store: sessionmaker[Session], patient_id: str) -> pd.DataFrame:
    with store() as session:
        key = find_patient(session, patient_id, viewer=SYSTEM).id
        frame = patient_results(session, key, viewer=SYSTEM)
    temps = frame[frame["analyte"] == "temp"].sort_values("collected_at")
    return temps.assign(
        collected_at=temps["collected_at"].dt.strftime("%Y-%m-%d %H:%M"), loinc=temps["loinc"].fillna("")
    )[SHOWN]


def _stored_refusals(store: sessionmaker[Session]) -> list[tuple[str, str]]:
    with store() as session:
        query = select(RejectedRecord.location, RejectedRecord.reason).order_by(RejectedRecord.id)
        rows = session.execute(query)
        return [tuple(row) for row in rows]


def test_an_hl7_message_lands_its_temperatures_beside_its_cbc_in_celsius(store) -> None:
    summary = import_path(store, TEMPERATURES / "oru-cbc-and-temperatures.hl7", options=BY_TEST)
    # WBC, ANC and four temperatures land; two temperatures are refused and the file says so.
    assert (summary.accepted, len(summary.rejected), summary.exit_code) == (6, 2, 1)
    assert _temperatures(store, "T-5001").values.tolist() == [
        ["2026-03-10 11:30", 38.6, "Cel", "38.6", "Cel", "8310-5"],
        # 100.4 °F oral is 38.0 °C; what the lab sent is kept beside it
        ["2026-03-10 14:00", 38.0, "Cel", "100.4", "[degF]", "8331-1"],
        # local code TEMP, and a local name only ("Ear temperature"), through the alias table
        ["2026-03-10 16:00", 37.2, "Cel", "37.2", "Cel", ""],
        ["2026-03-10 16:30", 37.0, "Cel", "37.0", "degC", ""],
    ]
    refused = [
        (
            "message 1 (TMP0001), OBR 6, OBX 1",
            "Temperature 24.9 Cel is below the plausible limit 25 °C: check the unit",
        ),
        (
            "message 1 (TMP0001), OBR 7, OBX 1",
            "Temperature 113.5 [degF] is 45.2778 °C after conversion, above the plausible limit 45 °C: "
            "check the unit",
        ),
    ]
    assert list(zip(summary.rejected["location"], summary.rejected["reason"], strict=True)) == refused
    assert _stored_refusals(store) == refused


def test_a_fhir_bundle_of_vital_signs_lands_its_temperatures_and_refuses_the_implausible(store) -> None:
    summary = import_path(store, TEMPERATURES / "bundle-vital-signs.json", options=BY_TEST)
    assert (summary.accepted, len(summary.rejected), summary.exit_code) == (3, 2, 1)
    assert _temperatures(store, "T-6001").values.tolist() == [
        ["2026-03-12 08:00", 38.3, "Cel", "38.3", "Cel", "8310-5"],
        ["2026-03-12 09:30", 38.0, "Cel", "100.4", "[degF]", "8332-9"],
    ]
    refused = [
        (
            "entry 5 (Observation/temp-3)",
            "Temperature 45.1 Cel is above the plausible limit 45 °C: check the unit",
        ),
        (
            "entry 6 (Observation/temp-4)",
            "Temperature 100.4 Cel is a Fahrenheit reading (25-45 °C is 77-113 °F) sent as Celsius"
            ": check the unit",
        ),
    ]
    assert list(zip(summary.rejected["location"], summary.rejected["reason"], strict=True)) == refused
    assert _stored_refusals(store) == refused


def test_the_canonical_csv_takes_temp_in_every_spelling_of_celsius_and_fahrenheit(store) -> None:
    summary = import_path(store, TEMPERATURES / "canonical-temperatures.csv", options=BY_TEST)
    assert (summary.accepted, len(summary.rejected), summary.exit_code) == (5, 4, 1)
    assert _temperatures(store, "T-7001").values.tolist() == [
        ["2026-03-13 09:00", 37.9, "Cel", "37.9", "degC", ""],
        ["2026-03-13 10:00", 38.1, "Cel", "38.1", "°C", ""],
        ["2026-03-13 11:00", 38.0, "Cel", "100.4", "degF", ""],
        ["2026-03-13 12:00", 38.5, "Cel", "101.3", "°F", ""],
    ]
    assert list(zip(summary.rejected["location"], summary.rejected["reason"], strict=True)) == [
        ("line 7", "Temperature 24.9 °C is below the plausible limit 25 °C: check the unit"),
        ("line 8", "Temperature 45.1 degC is above the plausible limit 45 °C: check the unit"),
        (
            "line 9",
            "Temperature 113.5 °F is 45.2778 °C after conversion, above the plausible limit 45 °C"
            ": check the unit",
        ),
        (
            "line 10",
            "Temperature 100.4 degC is a Fahrenheit reading (25-45 °C is 77-113 °F) sent as Celsius: "
            "check the unit",
        ),
    ]


def test_a_temperature_only_message_is_not_a_cbc(store) -> None:
    import_path(store, TEMPERATURES / "oru-cbc-and-temperatures.hl7", options=BY_TEST)

    def listed() -> tuple[int, str]:
        with store() as session:
            row = patient_list(session, viewer=SYSTEM).set_index("patient_id").loc["T-5001"]
        return int(row["n_panels"]), row["last_collected_at"].isoformat()

    # The temperatures later on the day of the count neither add panels nor move the last CBC.
    assert listed() == (1, "2026-03-10T07:30:00+00:00")
    summary = import_path(store, TEMPERATURES / "oru-temperatures-only.hl7", options=BY_TEST)
    assert (summary.accepted, len(summary.rejected)) == (1, 1)
    assert listed() == (1, "2026-03-10T07:30:00+00:00")
    assert _temperatures(store, "T-5001")["collected_at"].iloc[-1] == "2026-03-11 08:45"


def _one(analyte: str, value: str, unit: str) -> pd.DataFrame:
    row = dict.fromkeys(RAW_COLUMNS, "")
    row.update(
        patient_id="P1",
        collected_at="2026-03-01T08:00:00Z",
        analyte=analyte,
        value=value,
        unit=unit,
        status="final",
    )
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    ("value", "unit", "stored"),
    [
        ("25", "Cel", 25.0),
        ("45", "°C", 45.0),
        ("77", "°F", 25.0),
        ("113", "[degF]", 45.0),
        ("76.9", "Cel", 76.9),
    ],
)
def test_the_plausible_limits_are_kept_at_their_edges(value: str, unit: str, stored: float) -> None:
    out = normalise_results(_one("temp", value, unit))
    if stored > 45:
        # 76.9 is neither a Celsius body temperature nor, labelled Celsius, inside the Fahrenheit band
        assert out.rejected["reason"].tolist() == [
            "Temperature 76.9 Cel is above the plausible limit 45 °C: check the unit"
        ]
    else:
        assert out.rejected.empty and out.results["value"].tolist() == [stored]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (("temp", "46.5", "Cel"), "Temperature 46.5 Cel is above the plausible limit 45 °C: check the unit"),
        (
            ("temp", "24.99", "degC"),
            "Temperature 24.99 degC is below the plausible limit 25 °C: check the unit",
        ),
        (
            ("temp", "76", "[degF]"),
            "Temperature 76 [degF] is 24.4444 °C after conversion, below the plausible limit 25 °C"
            ": check the unit",
        ),
        # a count sent in a unit equal to the canonical one reads the same way: the number is said once
        (
            ("wbc", "4500", "10^3/uL"),
            "WBC 4500 10^3/uL is above the plausible limit 1000 10^9/L: check the unit",
        ),
    ],
)
def test_an_implausible_value_says_what_is_implausible_once(
    fields: tuple[str, str, str],
    reason: str,
) -> None:
    assert normalise_results(_one(*fields)).rejected["reason"].tolist() == [reason]
