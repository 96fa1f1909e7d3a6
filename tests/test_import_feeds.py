"""Every format through the real importer into both databases: what lands, what is refused, what changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from db.accounts import SYSTEM
from db.models import ClinicalEvent, OtherObservation, Result
from db.queries import find_patient, patient_events, patient_list, patient_results
from services.imports import ImportOptions, import_content, import_path
from tests.conftest import DATA
from tests.test_import import BY_TEST, _counts

EXTERNAL, HL7, CSV, FHIR = DATA / "external", DATA / "hl7", DATA / "csv", DATA / "fhir"


def _current(store, patient_id: str, **options) -> pd.DataFrame:
    with store() as session:
        return patient_results(
            session, find_patient(session, patient_id, viewer=SYSTEM).id, viewer=SYSTEM, **options
        )


def test_nist_message_stores_wbc_105_6_and_refuses_the_g_per_ml_haemoglobin(store) -> None:
    summary = import_path(store, EXTERNAL / "nist-lri-cbc.hl7", options=BY_TEST)
    assert summary.format == "hl7" and summary.exit_code == 1
    assert summary.rejected["reason"].tolist() == [
        "Haemoglobin 12.5 g/mL is 1250 g/dL after conversion, above the plausible limit 30 g/dL: "
        "check the unit"
    ]
    results = _current(store, "PATID1234").set_index("analyte")
    assert results.loc["wbc", "value"] == 105.6 and "hgb" not in results.index
    assert summary.others == 15
    with store() as session:
        patient = find_patient(session, "PATID1234", viewer=SYSTEM)
        assert (patient.name, str(patient.birth_date), patient.sex) == ("Jones, William A", "1961-06-15", "M")
        assert session.scalar(select(func.count()).select_from(OtherObservation)) == 15


def test_lab_oru_1_keeps_preliminary_percentages_and_derives_nothing_without_a_wbc(store) -> None:
    summary = import_path(store, EXTERNAL / "fhir-converter-lab-oru-1.hl7", options=BY_TEST)
    assert (summary.accepted, summary.derived, summary.pending, summary.exit_code) == (5, 0, 2, 0)
    results = _current(store, "10006579")
    assert set(results["analyte"]) == {"neut_pct", "eos_pct", "lymph_pct", "mono_pct", "baso_pct"}
    assert not results["derived"].any()


def test_absolute_counts_are_derived_from_the_same_panel_and_marked(store) -> None:
    summary = import_path(store, HL7 / "local-codes-percentages.hl7", options=BY_TEST)
    assert summary.derived == 2 and summary.others == 1
    results = _current(store, "H123456").set_index("analyte")
    assert results.loc["anc", "value"] == pytest.approx(1.16) and bool(results.loc["anc", "derived"])
    assert results.loc["anc", "value_raw"] == "WBC 2.9 x 40% / 100"
    assert results.loc["alc", "value"] == pytest.approx(1.305)
    assert not bool(results.loc["wbc", "derived"])


def test_a_reported_count_wins_over_a_derived_one(store, tmp_path: Path) -> None:
    import_path(store, HL7 / "local-codes-percentages.hl7", options=BY_TEST)
    reported = (
        "patient_id,assigning_authority,collected_at,analyte,value,unit,lab,accession\n"
        "H123456,CITYHOSP,2026-03-10T07:30:00Z,anc,1.2,10^9/L,CITY HOSPITAL LAB,ACC-7001\n"
    )
    (tmp_path / "reported.csv").write_text(reported)
    assert import_path(store, tmp_path / "reported.csv", options=BY_TEST).superseded == 1
    anc = _current(store, "H123456", history=True).query("analyte == 'anc'")
    assert anc[["value", "derived", "is_current"]].values.tolist() == [
        [1.16, True, False],
        [1.2, False, True],
    ]
    # importing the percentages again derives 1.16 again, which must not replace the reported 1.2
    (tmp_path / "again.hl7").write_bytes((HL7 / "local-codes-percentages.hl7").read_bytes() + b"\n")
    assert import_path(store, tmp_path / "again.hl7", options=BY_TEST).superseded == 0
    assert _current(store, "H123456").set_index("analyte").loc["anc", "value"] == 1.2


def test_preliminary_then_final_in_mllp_framing_leaves_the_final_current(store) -> None:
    summary = import_path(store, HL7 / "mllp-preliminary-then-final.hl7", options=BY_TEST)
    assert summary.exit_code == 0
    history = _current(store, "H123456", history=True)
    assert history.query("analyte == 'wbc'")[["status", "is_current"]].values.tolist() == [
        ["preliminary", False],
        ["final", True],
    ]


def test_a_correction_supersedes_and_a_deletion_is_kept_but_not_counted(store) -> None:
    import_path(store, HL7 / "mllp-preliminary-then-final.hl7", options=BY_TEST)
    summary = import_path(store, HL7 / "correction-and-deletion.hl7", options=BY_TEST)
    assert summary.superseded == 2
    current = _current(store, "H123456").set_index("analyte")
    assert (current.loc["anc", "value"], current.loc["anc", "status"]) == (1.3, "corrected")
    assert current.loc["wbc", "status"] == "entered-in-error"
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id")
    assert pd.isna(listed.loc["H123456", "latest_wbc"])  # the withdrawn WBC no longer counts
    assert listed.loc["H123456", "latest_anc"] == 1.3


def test_results_arriving_after_their_withdrawal_are_refused_with_a_reason_that_reads(store) -> None:
    """The deletion and correction come first; the preliminary and final results they replace come late."""
    import_path(store, HL7 / "correction-and-deletion.hl7", options=BY_TEST)
    summary = import_path(store, HL7 / "mllp-preliminary-then-final.hl7", options=BY_TEST)
    reasons = summary.rejected.set_index("location")["reason"]
    assert reasons["message 1 (MSG0002), OBR 1, OBX 1"] == (
        "a preliminary result differs from the entered-in-error one already stored (no value); "
        "only a correction can change it, so the stored result is kept"
    )
    assert reasons["message 2 (MSG0003), OBR 1, OBX 2"].startswith(
        "a final result differs from the corrected one already stored (1.3);"
    )
    current = _current(store, "H123456").set_index("analyte")
    assert current.loc["wbc", "status"] == "entered-in-error" and current.loc["anc", "value"] == 1.3


def test_every_real_file_imported_twice_changes_nothing_the_second_time(store) -> None:
    files = [
        EXTERNAL / "nist-lri-cbc.hl7",
        EXTERNAL / "fhir-converter-lab-oru-1.hl7",
        EXTERNAL / "us-core-observation-cbc-leukocytes.json",
        HL7 / "local-codes-percentages.hl7",
        CSV / "wide.csv",
    ]
    for path in files:
        import_path(store, path, options=BY_TEST)
    before = _counts(store)
    for path in files:
        again = import_path(store, path, options=BY_TEST)
        assert again.identical_to is not None, path.name
    assert _counts(store) == before


def test_us_core_observation_lands_with_its_unit_and_date_only_time(store) -> None:
    summary = import_path(store, EXTERNAL / "us-core-observation-cbc-leukocytes.json", options=BY_TEST)
    assert summary.format == "fhir" and summary.accepted == 1, summary.rejected
    result = _current(store, "example").iloc[0]
    assert result["analyte"] == "wbc" and result["unit"] == "10^9/L"


def test_a_date_only_fhir_time_is_midnight_at_the_site(store) -> None:
    """effectiveDateTime 2005-07-05 (a date, no offset) from a New York site: midnight there, 04:00 UTC,
    so the count stays on 5 July in the site's calendar (read as UTC midnight it fell on 4 July)."""
    new_york = replace(BY_TEST, site_timezone="America/New_York")
    import_path(store, EXTERNAL / "us-core-observation-cbc-leukocytes.json", options=new_york)
    assert _current(store, "example")["collected_at"].tolist() == [pd.Timestamp("2005-07-05T04:00Z")]


def test_an_hl7_count_drawn_in_the_repeated_hour_lands_at_its_first_occurrence(store) -> None:
    """01:30 on 1 November 2026 happened twice in New York: read as the first (EDT), not refused."""
    new_york = replace(BY_TEST, site_timezone="America/New_York")
    text = (HL7 / "local-codes-percentages.hl7").read_text().replace("|20260310073000|", "|20261101013000|")
    summary = import_content(store, "night.hl7", text.encode(), options=new_york)
    assert summary.exit_code == 0, summary.rejected
    assert set(_current(store, "H123456")["collected_at"]) == {pd.Timestamp("2026-11-01T05:30Z")}


def test_wide_csv_melts_into_results_and_names_the_bad_cell(store) -> None:
    summary = import_path(store, CSV / "wide.csv", options=BY_TEST)
    assert summary.format == "wide" and summary.accepted == 10  # 11 cells, one unreadable
    assert summary.rejected[["location", "reason"]].values.tolist() == [
        ["line 4, column Hgb (g/dL)", "value 'abc' is not a number"]
    ]
    results = _current(store, "W-1")
    assert results.query("analyte == 'plt'")["value"].tolist() == [151.0, 139.0, 160.0]


def test_a_lab_export_with_other_column_names_is_read_through_a_column_map(store) -> None:
    mapping = {
        "MRN": "patient_id",
        "Drawn": "collected_at",
        "Test": "analyte",
        "Result": "value",
        "Units": "unit",
        "Low": "ref_low",
        "High": "ref_high",
    }
    unmapped = import_path(store, CSV / "export-with-other-names.csv", options=BY_TEST)
    assert unmapped.exit_code == 2 and "--map" in unmapped.error
    summary = import_path(
        store,
        CSV / "export-with-other-names.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC", column_map=mapping),
    )
    assert summary.accepted == 2
    assert _current(store, "X-9")["value"].tolist() == [1.2, 3.6]


def test_events_land_once_and_bad_ones_are_refused_with_reasons(store) -> None:
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    summary = import_path(
        store,
        CSV / "events.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC", timezone="Europe/Paris"),
    )
    assert summary.format == "events" and summary.events == 3
    reasons = dict(zip(summary.rejected["location"], summary.rejected["reason"], strict=True))
    assert reasons["line 5"].startswith("kind 'holiday' is not one of chemotherapy, gcsf")
    assert reasons["line 6"] == "end 2026-03-02 is before start 2026-03-09"
    assert reasons["line 7"] == "patient 'NOBODY' is not in the store (import results first)"
    with store() as session:
        events = patient_events(session, find_patient(session, "MRN1001", viewer=SYSTEM).id, viewer=SYSTEM)
        assert session.scalar(select(func.count()).select_from(ClinicalEvent)) == 3
    cycle = events.query("kind == 'chemotherapy'").iloc[0]
    assert cycle["start_at"] == pd.Timestamp("2026-03-02T23:00:00Z")  # midnight in Paris


def test_a_dry_run_reports_everything_and_stores_nothing(store) -> None:
    before = _counts(store)
    summary = import_path(
        store,
        EXTERNAL / "nist-lri-cbc.hl7",
        options=ImportOptions(imported_by="test", site_timezone="UTC", dry_run=True),
    )
    assert summary.dry_run and summary.accepted == 12 and len(summary.rejected) == 1
    assert _counts(store) == before


def test_a_crash_while_writing_an_hl7_file_leaves_nothing_half_written(store, monkeypatch) -> None:
    before = _counts(store)

    def crash(*_args, **_kwargs):
        raise RuntimeError("simulated crash after the results were written")

    monkeypatch.setattr("services.import_file.write_others", crash)
    with pytest.raises(RuntimeError):
        import_path(store, EXTERNAL / "nist-lri-cbc.hl7", options=BY_TEST)
    assert _counts(store) == before
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 0


def test_a_fhir_bundle_in_per_microlitre_and_thousands_lands_in_canonical_units(store) -> None:
    summary = import_path(store, FHIR / "bundle-cbc-searchset.json", options=BY_TEST)
    assert summary.format == "fhir" and summary.exit_code == 0 and summary.others == 1
    results = _current(store, "MRN-4471").set_index("analyte")
    assert (results.loc["wbc", "value"], results.loc["wbc", "unit_raw"]) == (3.1, "/uL")
    assert (results.loc["anc", "value"], results.loc["anc", "unit_raw"]) == (1.2, "10*3/uL")
    assert results.loc["wbc", "accession"] == "ACC-2026-0042"
    assert results.loc["plt", "status"] == "preliminary"
    again = import_path(store, FHIR / "bundle-cbc-searchset.json", options=BY_TEST)
    assert again.identical_to is not None


def test_fhir_ndjson_keeps_good_lines_and_names_the_broken_ones(store) -> None:
    summary = import_path(store, FHIR / "bulk-export-observations.ndjson", options=BY_TEST)
    assert summary.format == "fhir" and summary.exit_code == 1
    assert all(location.startswith("line ") for location in summary.rejected["location"])
    anc = _current(store, "MRN-9").query("analyte == 'anc'")
    assert 0.4 in anc["value"].tolist()
    assert "<" in anc["comparator"].tolist()  # the censored ANC is kept with its comparator


def test_an_evening_dose_in_new_york_is_counted_on_its_own_date(store, tmp_path: Path, monkeypatch) -> None:
    """Events without an offset are the site's times; cycle days and the worklist count its calendar."""
    from datetime import UTC, date, datetime

    from db.status import refresh_patient_status
    from services.patients import patient_cycles

    monkeypatch.setenv("MONITOR_TIMEZONE", "America/New_York")  # the status and the worklist count its days
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    events = tmp_path / "events.csv"
    events.write_text(
        "patient_id,kind,start,end,label,details\n"
        "MRN1001,chemotherapy,2026-02-24T20:00,,Docetaxel cycle 1,docetaxel\n"  # 01:00 UTC on 25 February
    )
    new_york = replace(BY_TEST, site_timezone="America/New_York")
    assert import_path(store, events, options=new_york).events == 1  # no --timezone: the site's zone
    with store() as session:
        key = find_patient(session, "MRN1001", viewer=SYSTEM).id
    found = patient_cycles(store, viewer=SYSTEM, patient_key=key, timezone="America/New_York")
    cycles = found.cycles
    assert cycles.loc[0, "start"] == pd.Timestamp("2026-02-25T01:00Z")
    assert found.table.loc[0, "start"] == "2026-02-24"
    # ANC 0.9 at 08:40 UTC on 16 March (04:40 in New York): day 20 (D21) of a cycle given on 24 February;
    # counted from the UTC dates it would be day 19.
    assert cycles.loc[0, "nadir_anc"] == 0.9 and cycles.loc[0, "nadir_day"] == 20
    with store.begin() as session:
        refresh_patient_status(  # 2 March, 22:00 in New York
            session, [key], now=datetime(2026, 3, 3, 3, 0, tzinfo=UTC), timezone="America/New_York"
        )
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM, timezone="America/New_York", today=date(2026, 3, 2))
        listed = listed.set_index("patient_id")
    assert (listed.loc["MRN1001", "cycle"], listed.loc["MRN1001", "cycle_day"]) == (1, 6)  # C1D7


def test_an_events_file_recomputes_the_status_of_the_patients_it_names(store) -> None:
    # Results first, then the chemotherapy they followed: the worklist must show the cycle at once, not
    # after the next result or a recompute.
    results = (
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "EV1,2026-03-02T08:00:00Z,anc,3.0,10^9/L,1.8,7.7,NORTH,E-1,final\n"
        "EV1,2026-03-09T08:00:00Z,anc,0.9,10^9/L,1.8,7.7,NORTH,E-2,final\n"
    )
    now = pd.Timestamp("2026-03-10T12:00:00Z").to_pydatetime()
    import_content(store, "results.csv", results.encode(), options=BY_TEST, now=now)
    events = (
        "patient_id,kind,start,end,label,details\n"
        "EV1,chemotherapy,2026-03-02T10:00:00Z,,Docetaxel 75 mg/m2 cycle 1,docetaxel every 21 days\n"
    )
    summary = import_content(store, "events.csv", events.encode(), options=BY_TEST, now=now)
    assert summary.events == 1
    with store() as session:
        patient = patient_list(session, viewer=SYSTEM).set_index("patient_id").loc["EV1"]
    assert patient["cycle"] == 1 and "expected on D22 (2026-03-23" in patient["readiness"]
