"""Real files through the real importer, on both databases: nothing lost, nothing doubled."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import SYSTEM
from db.models import AuditLog, Base, ImportBatch, Patient, RejectedRecord, Result
from db.queries import find_patient, patient_list, patient_results
from services.imports import ImportOptions, import_path
from tests.conftest import DATA

BY_TEST = ImportOptions(imported_by="test", site_timezone="UTC")


def _counts(store: sessionmaker[Session]) -> dict[str, int]:
    with store() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def _results(store: sessionmaker[Session], patient_id: str) -> pd.DataFrame:
    with store() as session:
        return patient_results(session, find_patient(session, patient_id, viewer=SYSTEM).id, viewer=SYSTEM)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_lands_in_canonical_units_with_what_was_sent_kept(store) -> None:
    summary = import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    assert (summary.accepted, summary.unchanged, len(summary.rejected), summary.exit_code) == (9, 0, 0, 0)
    with store() as session:
        patient = find_patient(session, "MRN1001", viewer=SYSTEM)
        frame = patient_results(session, patient.id, viewer=SYSTEM)
    second = frame[frame["accession"] == "ACC-2"].set_index("analyte")
    assert second.loc["wbc", "value"] == 3.1 and second.loc["wbc", "unit"] == "10^9/L"
    assert (second.loc["wbc", "value_raw"], second.loc["wbc", "unit_raw"]) == ("3100", "cells/uL")
    assert (second.loc["wbc", "ref_low"], second.loc["wbc", "ref_high"]) == (4.0, 11.0)
    assert second.loc["anc", "loinc"] == "751-8"
    # 09:40 at +01:00 is 08:40 UTC
    assert second.loc["wbc", "collected_at"] == pd.Timestamp("2026-03-16T08:40:00Z")
    assert str(frame["collected_at"].dtype) == "datetime64[us, UTC]"


def test_haemoglobin_in_g_per_litre_is_stored_in_g_per_decilitre(store) -> None:
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    with store() as session:
        frame = patient_results(
            session, find_patient(session, "MRN2002", viewer=SYSTEM).id, viewer=SYSTEM, analytes=("hgb",)
        )
    assert frame.loc[0, ["value", "unit", "ref_low", "ref_high"]].tolist() == [12.4, "g/dL", 12.0, 16.0]


def test_importing_the_same_file_twice_changes_nothing(store) -> None:
    first = import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    before = _counts(store)
    again = import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    assert _counts(store) == before
    assert again.identical_to is not None and again.identical_to.id == first.batch_id
    assert (again.accepted, again.unchanged, again.exit_code) == (0, 9, 0)


def test_read_again_events_refused_before_their_patients_were_stored_land(store) -> None:
    events = DATA / "csv" / "events.csv"
    first = import_path(store, events, options=BY_TEST)
    waiting = first.rejected["reason"].eq("patient 'MRN1001' is not in the store (import results first)")
    assert first.events == 0 and waiting.sum() == 3
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    same = import_path(store, events, options=BY_TEST)  # the same content: not read, still refused
    assert same.identical_to is not None and same.events == 0 and len(same.rejected) == len(first.rejected)
    again = import_path(
        store, events, options=ImportOptions(imported_by="test", site_timezone="UTC", again=True)
    )
    assert again.identical_to is None and again.events == 3
    # What is wrong in the file itself is refused again, for the same reasons.
    assert again.rejected["reason"].tolist() == first.rejected.loc[~waiting, "reason"].tolist()
    before = _counts(store)
    third = import_path(
        store, events, options=ImportOptions(imported_by="test", site_timezone="UTC", again=True)
    )  # nothing left to land
    assert (third.events, third.unchanged) == (0, 3)
    after = _counts(store)
    assert after["clinical_event"] == before["clinical_event"]
    assert after["import_batch"] == before["import_batch"] + 1  # the reading itself is recorded


def test_read_again_a_csv_needing_a_zone_lands_only_what_was_refused(store, tmp_path: Path) -> None:
    text = (DATA / "canonical-good.csv").read_text()
    # One panel's time written without an offset: refused without --timezone, the rest lands.
    naive = _write(tmp_path, "naive.csv", text.replace("2026-03-02T08:15:00Z", "2026-03-02T09:15:00"))
    first = import_path(store, naive, options=BY_TEST)
    assert first.exit_code == 1 and first.accepted == 9 - len(first.rejected) > 0
    assert (
        import_path(
            store,
            naive,
            options=ImportOptions(imported_by="test", site_timezone="UTC", timezone="Europe/Paris"),
        ).identical_to
        is not None
    )
    again = import_path(
        store,
        naive,
        options=ImportOptions(imported_by="test", site_timezone="UTC", timezone="Europe/Paris", again=True),
    )
    assert (again.accepted, again.unchanged, again.exit_code) == (len(first.rejected), first.accepted, 0)
    results = _results(store, "MRN1001")
    assert pd.Timestamp("2026-03-02T08:15Z") in set(results["collected_at"])  # 09:15 in Paris


def test_read_again_only_in_the_zone_it_was_first_read_in(store) -> None:
    feed = DATA / "hl7" / "local-codes-percentages.hl7"  # times without an offset, read at a UTC site
    import_path(store, feed, options=BY_TEST)
    before = _counts(store)
    elsewhere = import_path(
        store,
        feed,
        options=ImportOptions(imported_by="test", site_timezone="UTC", timezone="Europe/Paris", again=True),
    )
    assert elsewhere.exit_code == 2 and elsewhere.batch_id is None
    assert "read this content's times without an offset in UTC" in elsewhere.error
    assert "--timezone UTC" in elsewhere.error
    assert _counts(store) == before  # nothing stored, not even a batch
    same = import_path(
        store, feed, options=ImportOptions(imported_by="test", site_timezone="UTC", again=True)
    )
    assert (same.accepted, same.superseded, same.exit_code) == (0, 0, 0) and same.unchanged > 0
    assert _counts(store)["result"] == before["result"]


def test_read_again_never_undoes_a_later_correction_or_withdrawal(store, tmp_path: Path) -> None:
    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    row = "MRN9,2026-03-02T08:00:00Z,wbc,{value},10^9/L,4.0,11.0,LAB,ACC-9,{status}\n"
    bad = "MRN9,2026-03-02T08:00:00Z,anc,1.2,furlongs,1.8,7.7,LAB,ACC-9,final\n"
    first = _write(tmp_path, "a.csv", header + row.format(value="5.6", status="corrected") + bad)
    assert import_path(store, first, options=BY_TEST).exit_code == 1
    for value, status in (("7.7", "corrected"), ("", "entered-in-error")):
        later = _write(tmp_path, f"{status}.csv", header + row.format(value=value, status=status))
        assert import_path(store, later, options=BY_TEST).superseded == 1
        again = import_path(
            store, first, options=ImportOptions(imported_by="test", site_timezone="UTC", again=True)
        )
        # Only the refused ANC is read again (and refused again); the WBC line is left as stored.
        assert (again.accepted, again.superseded, again.unchanged, len(again.rejected)) == (0, 0, 1, 1)
        with store() as session:
            current = session.execute(
                select(Result.value, Result.status).where(
                    Result.is_current.is_(True), Result.analyte == "wbc"
                )
            ).all()
        assert current == [(float(value) if value else None, status)]


def test_read_again_an_import_from_before_zones_were_recorded_stores_nothing_twice(store) -> None:
    feed = DATA / "hl7" / "local-codes-percentages.hl7"
    import_path(store, feed, options=BY_TEST)
    with store.begin() as session:  # as an import made before migration 0012 left it
        session.execute(update(ImportBatch).values(timezone=None))
    before = _counts(store)
    again = import_path(
        store,
        feed,
        options=ImportOptions(imported_by="test", site_timezone="UTC", timezone="Europe/Paris", again=True),
    )
    assert again.exit_code == 0 and again.accepted == 0 and again.unchanged > 0
    after = _counts(store)
    assert after["result"] == before["result"] and after["panel"] == before["panel"]


def test_an_import_puts_its_patients_in_the_teams_asked_for(store) -> None:
    from datetime import UTC, datetime

    from db.accounts import create_user, viewer_named

    with store.begin() as session:
        create_user(
            session,
            username="onc",
            role="clinician",
            teams=["oncology"],
            password="Ward 7 rounds!",
            now=datetime.now(UTC),
        )
    unknown = import_path(
        store,
        DATA / "canonical-good.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC", teams=("oncolgy",)),
    )
    assert unknown.exit_code == 2 and unknown.error.startswith("no team 'oncolgy'")
    assert _counts(store)["result"] == 0  # refused before anything was read
    alone = import_path(store, DATA / "canonical-bad-row.csv", options=BY_TEST)  # MRN3003
    assert (alone.assigned, alone.teamless) == (0, 1)  # seen by administrators only: said
    summary = import_path(
        store,
        DATA / "canonical-good.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC", teams=("oncology",)),
    )
    assert (summary.assigned, summary.teamless) == (2, 0)  # MRN1001, MRN2002
    # A file imported before: its patients join the team without it being read again.
    later = import_path(
        store,
        DATA / "canonical-bad-row.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC", teams=("oncology",)),
    )
    assert later.identical_to is not None and (later.assigned, later.teamless) == (1, 0)
    with store() as session:
        seen = patient_list(session, viewer=viewer_named(session, "onc"))["patient_id"].tolist()
        audited = session.execute(
            select(AuditLog.username, AuditLog.patient_id, AuditLog.details).where(
                AuditLog.action == "assign_team"
            )
        ).all()
    assert sorted(seen) == ["MRN1001", "MRN2002", "MRN3003"]
    assert len(audited) == 3 and {row.patient_id for row in audited} == set(_keys(store, seen))
    assert all(row.username == "test" and '"team": "oncology"' in row.details for row in audited)


def _keys(store: sessionmaker[Session], mrns: list[str]) -> list[int]:
    with store() as session:
        return list(session.scalars(select(Patient.id).where(Patient.mrn.in_(mrns))))


def test_a_file_imported_before_puts_all_its_patients_in_a_team(store, tmp_path: Path) -> None:
    """Its records were stored by an earlier, overlapping file: the patients are found from the file."""
    from db.accounts import ensure_teams

    with store.begin() as session:
        ensure_teams(session, ["haematology"])
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST)  # MRN1001, MRN2002
    more = (DATA / "canonical-good.csv").read_text() + (
        "MRN4004,2026-03-02T08:15:00Z,wbc,3.1,10^9/L,4.0,11.0,CENTRAL,ACC-44,final\n"
    )
    bigger = _write(tmp_path, "bigger.csv", more)
    first = import_path(store, bigger, options=BY_TEST)
    assert (first.accepted, first.teamless) == (1, 3)
    again = import_path(
        store, bigger, options=ImportOptions(imported_by="test", site_timezone="UTC", teams=("haematology",))
    )
    assert again.identical_to is not None and (again.assigned, again.teamless) == (3, 0)
    events = import_path(
        store,
        DATA / "csv" / "events.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC", teams=("haematology",)),
    )
    assert events.format == "events" and events.teamless == 0  # MRN1001 named, in the team already


def test_a_semicolon_separated_export_is_named_as_such(store, tmp_path: Path) -> None:
    text = (DATA / "canonical-good.csv").read_text().replace(",", ";").replace("5.6", "5,6")
    summary = import_path(store, _write(tmp_path, "excel.csv", text), options=BY_TEST)
    assert summary.exit_code == 2 and "separated by semicolons" in summary.error


def test_the_same_records_in_another_file_are_counted_unchanged(store, tmp_path: Path) -> None:
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    before = _counts(store)
    copy = (DATA / "canonical-good.csv").read_text() + "\n"  # other bytes, same records
    summary = import_path(store, _write(tmp_path, "copy.csv", copy), options=BY_TEST)
    assert (summary.accepted, summary.unchanged, summary.superseded) == (0, 9, 0)
    after = _counts(store)
    assert after["result"] == before["result"] and after["panel"] == before["panel"]
    assert after["import_batch"] == before["import_batch"] + 1


def test_a_bad_row_is_refused_with_its_line_and_reason_and_the_rest_land(store) -> None:
    summary = import_path(store, DATA / "canonical-bad-row.csv", options=BY_TEST)
    assert summary.exit_code == 1
    assert (summary.accepted, len(summary.rejected)) == (3, 1)
    refused = summary.rejected.iloc[0]
    assert refused["location"] == "line 4"
    assert refused["reason"] == "unknown unit 'furlongs' for WBC"
    with store() as session:
        kept = session.execute(select(RejectedRecord.location, RejectedRecord.raw_text)).one()
        assert kept.location == "line 4" and "furlongs" in kept.raw_text
        assert session.scalar(select(func.count()).select_from(Result)) == 3


def test_a_changed_value_supersedes_and_the_earlier_version_is_kept(store, tmp_path: Path) -> None:
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    corrected = (
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "MRN2002,2026-03-05T07:55:00-05:00,wbc,2.6,10*3/uL,4.5,11.0,NORTH,N-77,final\n"
    )
    summary = import_path(store, _write(tmp_path, "final.csv", corrected), options=BY_TEST)
    assert (summary.accepted, summary.superseded) == (0, 1)
    with store() as session:
        key = find_patient(session, "MRN2002", viewer=SYSTEM).id
        current = patient_results(session, key, viewer=SYSTEM, analytes=("wbc",))
        history = patient_results(session, key, viewer=SYSTEM, analytes=("wbc",), history=True)
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id")
    assert current[["value", "status"]].values.tolist() == [[2.6, "final"]]
    assert history[["value", "version", "is_current"]].values.tolist() == [[2.4, 1, False], [2.6, 2, True]]
    assert listed.loc["MRN2002", "latest_wbc"] == 2.6


def test_a_preliminary_result_cannot_hide_the_final_one(store, tmp_path: Path) -> None:
    final = (
        "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
        "MRN5005,2026-03-05T08:00:00Z,wbc,3.0,10^9/L,4.0,11.0,NORTH,N-9,final\n"
    )
    import_path(store, _write(tmp_path, "final.csv", final), options=BY_TEST)
    late = final.replace("3.0,", "3.3,").replace(",final", ",preliminary")
    summary = import_path(store, _write(tmp_path, "late.csv", late), options=BY_TEST)
    assert summary.exit_code == 1
    assert summary.rejected.iloc[0]["reason"].startswith("a preliminary result differs from the final one")
    with store() as session:
        values = patient_results(session, find_patient(session, "MRN5005", viewer=SYSTEM).id, viewer=SYSTEM)[
            "value"
        ].tolist()
    assert values == [3.0]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"name,age\nx,1\n", "not a recognised format"),
        (b"patient_id,collected_at,analyte,value,unit\n\xff\xfe\x00bad", "not UTF-8 text"),
    ],
)
def test_an_unusable_file_is_reported_and_kept_for_review(store, tmp_path: Path, content, reason) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    summary = import_path(store, path, options=BY_TEST)
    assert summary.exit_code == 2 and reason in summary.error
    with store() as session:
        kept = session.execute(select(ImportBatch.format, RejectedRecord.reason).join(RejectedRecord)).one()
    assert kept.format == "unusable" and reason in kept.reason


def test_a_crash_part_way_leaves_the_store_as_it_was(store, monkeypatch) -> None:
    import_path(store, DATA / "canonical-bad-row.csv", options=BY_TEST)
    before = _counts(store)

    def crash(*_args, **_kwargs):
        raise RuntimeError("simulated crash after the results were written")

    monkeypatch.setattr("services.import_file.refresh_patient_status", crash)
    with pytest.raises(RuntimeError):
        import_path(store, DATA / "canonical-good.csv", options=BY_TEST)
    assert _counts(store) == before
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


def test_a_file_with_nul_bytes_is_unusable_not_a_crash(store, tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes((DATA / "canonical-good.csv").read_bytes().replace(b"MRN1001", b"MRN\x001001", 1))
    summary = import_path(store, path, options=BY_TEST)
    assert summary.exit_code == 2 and "NUL byte" in summary.error


def test_a_resent_old_export_cannot_undo_a_correction(store, tmp_path: Path) -> None:
    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    original = header + "MRN6006,2026-03-05T08:00:00Z,anc,0.4,10^9/L,1.8,7.7,NORTH,N-1,final\n"
    corrected = header + "MRN6006,2026-03-05T08:00:00Z,anc,0.6,10^9/L,1.8,7.7,NORTH,N-1,corrected\n"
    resent = original + "MRN6006,2026-03-06T08:00:00Z,anc,0.7,10^9/L,1.8,7.7,NORTH,N-2,final\n"
    for name, text in (("original.csv", original), ("corrected.csv", corrected)):
        import_path(store, _write(tmp_path, name, text), options=BY_TEST)
    summary = import_path(store, _write(tmp_path, "resent.csv", resent), options=BY_TEST)
    assert (summary.accepted, summary.superseded, summary.exit_code) == (1, 0, 1)
    assert "only a correction can change it" in summary.rejected.iloc[0]["reason"]
    with store() as session:
        frame = patient_results(session, find_patient(session, "MRN6006", viewer=SYSTEM).id, viewer=SYSTEM)
    assert frame[["value", "status"]].values.tolist() == [[0.6, "corrected"], [0.7, "final"]]


def test_the_same_value_written_differently_is_not_a_new_version(store, tmp_path: Path) -> None:
    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    first = header + "MRN7007,2026-03-05T08:00:00Z,wbc,2.4,10^9/L,4,11,NORTH,N-1,final\n"
    again = header + "MRN7007,2026-03-05T08:00:00Z,wbc,2400,/uL,4000,11000,NORTH,N-1,F\n"
    import_path(store, _write(tmp_path, "first.csv", first), options=BY_TEST)
    summary = import_path(store, _write(tmp_path, "again.csv", again), options=BY_TEST)
    assert (summary.unchanged, summary.superseded, summary.exit_code) == (1, 0, 0)


def test_a_patient_specific_range_is_the_one_the_status_grades_against(store, tmp_path: Path) -> None:
    """A Duffy-null ANC range (reference 2.2) decides 'below the limit'; CTCAE grade 2+ stays absolute."""
    from datetime import UTC, datetime

    from db.models import ReferenceOverride
    from db.status import refresh_patient_status

    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    text = header + "MRN8008,2026-03-05T08:00:00Z,anc,1.3,10^9/L,1.8,7.7,NORTH,N-1,final\n"
    import_path(store, _write(tmp_path, "anc.csv", text), options=BY_TEST)
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id").loc["MRN8008"]
    assert (listed["latest_anc_lln"], listed["latest_anc_range_source"], listed["latest_anc_grade"]) == (
        1.8,
        "reported",
        2,
    )
    now = datetime.now(UTC)
    with store.begin() as session:
        key = find_patient(session, "MRN8008", viewer=SYSTEM).id
        session.add(
            ReferenceOverride(
                patient_id=key,
                analyte="anc",
                low=1.21,
                high=5.39,
                reason="Duffy-null",
                set_by="test",
                set_at=now,
                is_active=True,
            )
        )
        session.flush()
        refresh_patient_status(session, [key], now=now, timezone="UTC")
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id").loc["MRN8008"]
    assert (listed["latest_anc_lln"], listed["latest_anc_range_source"], listed["latest_anc_grade"]) == (
        1.21,
        "patient override",
        2,
    )


def test_the_patient_status_carries_flags_that_explain_themselves(store, tmp_path: Path) -> None:
    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    series = [("2026-03-01", 5.1), ("2026-03-08", 3.8), ("2026-03-15", 3.1), ("2026-03-29", 1.8)]
    text = header + "".join(
        f"MRN9009,{day}T08:00:00Z,wbc,{value},10^9/L,4.0,11.0,NORTH,N-{n},final\n"
        for n, (day, value) in enumerate(series)
    )
    import_path(store, _write(tmp_path, "wbc.csv", text), options=BY_TEST)
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id").loc["MRN9009"]
    assert {"leukopenia", "persistent", "worsening"} <= set(listed["flags"])
    explained = dict(zip(listed["flags"], listed["explanations"], strict=True))
    assert explained["persistent"] == "WBC below 4.0 on 3 consecutive results over 21 days (3.8 -> 1.8)"


def _statuses(store: sessionmaker[Session]) -> pd.DataFrame:
    from db.models import PatientStatus

    with store() as session:
        rows = session.execute(select(PatientStatus).order_by(PatientStatus.patient_id)).scalars().all()
        skip = {"computed_at"}
        return pd.DataFrame(
            [
                {c.name: getattr(row, c.name) for c in PatientStatus.__table__.columns if c.name not in skip}
                for row in rows
            ]
        )


def test_the_status_an_import_computes_from_its_own_rows_equals_a_full_recompute(
    store, tmp_path: Path
) -> None:
    """The importer takes the results it wrote into its own new panels from memory, not from the store:
    the status must be exactly what reading everything back gives, whatever the file does."""
    from datetime import UTC, datetime

    from db.status import refresh_all_status

    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    first = header + "".join(
        f"OLD1,2026-02-{day:02d}T08:00:00Z,{analyte},{value},10^9/L,{low},11.0,NORTH,O-{day},final\n"
        for day, wbc in ((1, 5.2), (8, 3.9), (15, 3.4))
        for analyte, value, low in (("wbc", wbc, 4.0), ("anc", round(wbc * 0.5, 2), 1.8))
    )
    import_path(store, _write(tmp_path, "first.csv", first), options=BY_TEST)
    second = header + "".join(
        [
            # an existing patient: a correction of a stored panel, and new panels
            "OLD1,2026-02-15T08:00:00Z,wbc,2.9,10^9/L,4.0,11.0,NORTH,O-15,corrected\n",
            "OLD1,2026-02-22T08:00:00Z,wbc,2.5,10^9/L,4.0,11.0,NORTH,O-22,final\n",
            "OLD1,2026-03-01T08:00:00Z,wbc,2.2,10^9/L,4.0,11.0,NORTH,O-29,preliminary\n",
            # a new patient: a preliminary then its final in the same file, counts derived from percentages
            "NEW1,2026-03-01T08:00:00Z,wbc,3.0,10^9/L,4.0,11.0,NORTH,N-1,preliminary\n",
            "NEW1,2026-03-01T08:00:00Z,neut_pct,40,%,,,NORTH,N-1,final\n",
            "NEW1,2026-03-01T08:00:00Z,lymph_pct,30,%,,,NORTH,N-1,final\n",
            "NEW1,2026-03-01T08:00:00Z,wbc,2.8,10^9/L,4.0,11.0,NORTH,N-1,final\n",
            "NEW1,2026-03-08T08:00:00Z,wbc,2.1,10^9/L,4.0,11.0,NORTH,N-2,final\n",
            "NEW1,2026-03-08T08:00:00Z,anc,0.4,10^9/L,1.8,7.7,NORTH,N-2,final\n",
            # a withdrawn result in a new panel: kept, never counted
            "NEW1,2026-03-15T08:00:00Z,wbc,9.9,10^9/L,4.0,11.0,NORTH,N-3,entered-in-error\n",
            "NEW1,2026-03-15T08:00:00Z,hgb,9.1,g/dL,12.0,16.0,NORTH,N-3,final\n",
        ]
    )
    summary = import_path(store, _write(tmp_path, "second.csv", second), options=BY_TEST)
    assert summary.error is None and summary.superseded >= 1
    from_import = _statuses(store)
    with store.begin() as session:
        refresh_all_status(session, now=datetime.now(UTC), timezone="UTC")
    recomputed = _statuses(store)
    pd.testing.assert_frame_equal(from_import, recomputed)
    # and in passes of one patient each (passes are sized by the panels the status last counted)
    import db.status

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db.status, "PANELS_PER_PASS", 1)
        with store() as session:
            assert len(db.status.passes(session, [1, 2])) == 2
        with store.begin() as session:
            refresh_all_status(session, now=datetime.now(UTC), timezone="UTC")
    pd.testing.assert_frame_equal(from_import, _statuses(store))
    new = from_import.set_index("patient_id").loc[2]
    assert (new["n_panels"], new["latest_wbc"], new["latest_anc"]) == (3, 2.1, 0.4)


def test_viewing_an_imports_refused_records_is_audited_and_an_unknown_import_is_not(store) -> None:
    from datetime import UTC, datetime

    from services.imports import NoSuchImport, refused_records

    bad = import_path(store, DATA / "canonical-bad-row.csv", options=BY_TEST)
    looker = dataclasses.replace(SYSTEM, username="reviewer")
    at = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    refused = refused_records(store, bad.batch_id, viewer=looker, now=at, where="command line")
    assert list(refused.columns) == ["location", "reason", "raw_text"]  # as the page and command line show
    assert refused[["location", "reason"]].values.tolist() == [["line 4", "unknown unit 'furlongs' for WBC"]]
    assert refused["raw_text"].str.startswith("MRN3003,").all()
    with pytest.raises(NoSuchImport, match="there is no import #999"):
        refused_records(store, 999, viewer=looker, now=at)
    with store() as session:
        views = session.execute(
            select(AuditLog.username, AuditLog.details).where(AuditLog.action == "view")
        ).all()
    assert len(views) == 1 and views[0].username == "reviewer"
    assert f"command line: refused records of import {bad.batch_id}" in str(views[0].details)


def test_past_imports_and_their_refused_records_are_for_administrators_only(store) -> None:
    """Refused records hold every patient of the file verbatim, whatever their team: a clinician, even one
    following those patients, reads neither them nor the list of imports, and nothing is audited."""
    from datetime import UTC, datetime

    from db.accounts import Viewer
    from services.imports import import_history, refused_records

    bad = import_path(store, DATA / "canonical-bad-row.csv", options=BY_TEST)
    at = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    for role in ("clinician", "viewer"):
        refused = Viewer("someone", role, (1,))
        with pytest.raises(PermissionError, match=f"{role} accounts cannot see an import's refused records"):
            refused_records(store, bad.batch_id, viewer=refused, now=at)
        with pytest.raises(PermissionError, match=f"{role} accounts cannot see past imports"):
            import_history(store, viewer=refused)
    with store() as session:
        assert session.scalar(select(func.count()).where(AuditLog.action == "view")) == 0
    history = import_history(store, viewer=SYSTEM)
    assert history[["file_name", "rejected"]].values.tolist() == [["canonical-bad-row.csv", 1]]


def test_an_identical_file_reports_its_earlier_refusals_in_the_parsers_columns(store) -> None:
    from monitor.formats.parsed import REJECT_COLUMNS

    first = import_path(store, DATA / "canonical-bad-row.csv", options=BY_TEST)
    again = import_path(store, DATA / "canonical-bad-row.csv", options=BY_TEST)
    assert again.identical_to is not None and again.identical_to.id == first.batch_id
    assert list(again.rejected.columns) == list(first.rejected.columns) == list(REJECT_COLUMNS)
    assert again.rejected["reason"].tolist() == ["unknown unit 'furlongs' for WBC"]


def test_the_site_zone_comes_with_the_options_not_from_the_environment(store, monkeypatch) -> None:
    """A date-only FHIR time is midnight at the site the caller names, whatever the environment says."""
    monkeypatch.setenv("MONITOR_TIMEZONE", "Asia/Tokyo")
    site = dataclasses.replace(BY_TEST, site_timezone="America/New_York")
    summary = import_path(store, DATA / "external" / "us-core-observation-cbc-leukocytes.json", options=site)
    assert summary.exit_code == 0
    assert _results(store, "example")["collected_at"].tolist() == [pd.Timestamp("2005-07-05T04:00Z")]
    with store() as session:
        assert session.scalars(select(ImportBatch.timezone)).all() == ["America/New_York"]


def test_an_import_is_recorded_at_the_time_given(store) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    import_path(store, DATA / "canonical-good.csv", options=BY_TEST, now=at)
    with store() as session:
        assert session.scalars(select(ImportBatch.imported_at)).all() == [at]


def test_options_name_only_formats_the_registry_knows() -> None:
    with pytest.raises(ValueError, match="no format 'xml'"):
        ImportOptions(imported_by="test", site_timezone="UTC", format="xml")


def test_an_upload_and_the_same_file_on_disk_import_alike(store, tmp_path: Path) -> None:
    from services.imports import import_content

    data = (DATA / "canonical-bad-row.csv").read_bytes()
    uploaded = import_content(store, "upload.csv", data, options=dataclasses.replace(BY_TEST, dry_run=True))
    on_disk = import_path(store, _write(tmp_path, "disk.csv", data.decode()), options=BY_TEST)
    assert (uploaded.format, uploaded.accepted, len(uploaded.rejected)) == (
        on_disk.format,
        on_disk.accepted,
        1,
    )
    assert uploaded.dry_run and uploaded.batch_id is not None
    read = []
    import_path(
        store,
        tmp_path / "disk.csv",
        options=dataclasses.replace(BY_TEST, again=True),
        progress=lambda done, total: read.append((done, total)),
    )
    assert read and read[-1] == (len(data), len(data))


def test_import_options_refuse_a_zone_that_does_not_exist_and_require_the_sites_zone() -> None:
    with pytest.raises(ValueError, match="site_timezone 'Europe' is not an IANA time zone"):
        ImportOptions(imported_by="test", site_timezone="Europe")
    with pytest.raises(ValueError, match="timezone 'Europe/Lndon' is not an IANA time zone"):
        ImportOptions(imported_by="test", site_timezone="UTC", timezone="Europe/Lndon")
    with pytest.raises(TypeError):
        ImportOptions(imported_by="test")  # type: ignore[call-arg]  # no default zone to fall into


# --- Birth dates in the canonical CSV; paediatric neutropenia; haemoglobin graded in the lab's unit ---

PAEDIATRIC_HEADER = (
    "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status,birth_date\n"
)


def test_a_birth_date_in_the_csv_makes_a_five_year_olds_anc_of_2_below_the_interval_not_neutropenia(
    store, tmp_path: Path
) -> None:
    rows = [
        ("KID5", "2026-03-05", "anc", "2.0", "2021-01-10"),
        ("KID5", "2026-03-05", "wbc", "6.0", "2021-01-10"),
        ("KID5B", "2026-03-05", "anc", "1.4", "2021-01-10"),
        ("BABY6", "2026-03-05", "anc", "1.2", "2025-09-01"),
        ("BABY6B", "2026-03-05", "anc", "0.9", "2025-09-01"),
    ]
    text = PAEDIATRIC_HEADER + "".join(
        f"{mrn},{day}T08:00:00Z,{analyte},{value},10^9/L,,,NORTH,{mrn}-1,final,{born}\n"
        for mrn, day, analyte, value, born in rows
    )
    summary = import_path(store, _write(tmp_path, "children.csv", text), options=BY_TEST)
    assert (summary.accepted, len(summary.rejected)) == (5, 0)
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id")
        stored = session.scalar(select(Patient.birth_date).where(Patient.mrn == "KID5"))
    assert str(stored) == "2021-01-10"
    neutropenic = {
        mrn: "neutropenia" in listed.loc[mrn, "flags"] for mrn in ("KID5", "KID5B", "BABY6", "BABY6B")
    }
    assert neutropenic == {"KID5": False, "KID5B": True, "BABY6": False, "BABY6B": True}
    kid = listed.loc["KID5"]
    # CTCAE grade 1 is below the interval's LLN (2-10 years: 2.4), not the neutropenia cut-off.
    assert (kid["latest_anc_lln"], kid["latest_anc_grade"], kid["age"]) == (2.4, 1, 5)
    assert (
        "ANC 2 below the reference interval for age (2.4), not neutropenia (< 1.5 x10^9/L for age)"
        in kid["pattern_detail"]
    )
    explained = dict(zip(listed.loc["KID5B", "flags"], listed.loc["KID5B", "explanations"], strict=True))
    assert explained["neutropenia"].startswith("ANC 1.4 below 1.5 (CTCAE grade 2")


def test_a_bad_birth_date_is_refused_with_its_line_and_reason_and_a_stored_one_is_kept(
    store, tmp_path: Path
) -> None:
    text = PAEDIATRIC_HEADER + (
        "KID7,2026-03-05T08:00:00Z,anc,2.0,10^9/L,,,NORTH,K-1,final,2021-01-10\n"
        "KID8,2026-03-05T08:00:00Z,anc,2.0,10^9/L,,,NORTH,K-2,final,10/01/2021\n"
        "KID9,2026-03-05T08:00:00Z,anc,2.0,10^9/L,,,NORTH,K-3,final,2026-04-01\n"
    )
    summary = import_path(store, _write(tmp_path, "born.csv", text), options=BY_TEST)
    refused = summary.rejected.set_index("location")["reason"].to_dict()
    assert refused == {
        "line 3": "birth_date '10/01/2021' is not an ISO date (YYYY-MM-DD)",
        "line 4": "birth_date '2026-04-01' is after collected_at '2026-03-05T08:00:00Z'",
    }
    later = PAEDIATRIC_HEADER + "KID7,2026-03-12T08:00:00Z,anc,2.1,10^9/L,,,NORTH,K-4,final,2020-01-10\n"
    import_path(store, _write(tmp_path, "born-again.csv", later), options=BY_TEST)
    with store() as session:
        assert str(session.scalar(select(Patient.birth_date).where(Patient.mrn == "KID7"))) == "2021-01-10"


def test_a_birth_date_sent_later_completes_a_patient_first_seen_without_one(store, tmp_path: Path) -> None:
    # KID10's first count came without a birth date, so no age-specific rule could apply; a later file
    # gives it: the stored patient is completed (never overwritten) and the child's rules apply.
    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    first = header + "KID10,2026-03-05T08:00:00Z,anc,2.0,10^9/L,,,NORTH,K-10,final\n"
    import_path(store, _write(tmp_path, "first.csv", first), options=BY_TEST)
    with store() as session:
        assert session.scalar(select(Patient.birth_date).where(Patient.mrn == "KID10")) is None
    later = PAEDIATRIC_HEADER + "KID10,2026-03-12T08:00:00Z,anc,2.0,10^9/L,,,NORTH,K-11,final,2021-01-10\n"
    import_path(store, _write(tmp_path, "later.csv", later), options=BY_TEST)
    with store() as session:
        assert str(session.scalar(select(Patient.birth_date).where(Patient.mrn == "KID10"))) == "2021-01-10"
        kid = patient_list(session, viewer=SYSTEM).set_index("patient_id").loc["KID10"]
    assert (kid["age"], kid["latest_anc_lln"], kid["latest_anc_grade"]) == (5, 2.4, 1)
    assert "neutropenia" not in kid["flags"]


def test_haemoglobin_in_mmol_per_litre_is_graded_and_printed_in_mmol_per_litre(store, tmp_path: Path) -> None:
    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    text = header + (
        "HB1,2026-03-05T08:00:00Z,wbc,2.0,10^9/L,4.0,11.0,NORTH,H-1,final\n"
        "HB1,2026-03-05T08:00:00Z,hgb,6.2,mmol/L,7.5,10.0,NORTH,H-1,final\n"
        "HB2,2026-03-05T08:00:00Z,wbc,2.0,10^9/L,4.0,11.0,NORTH,H-2,final\n"
        "HB2,2026-03-05T08:00:00Z,hgb,4.9,mmol/L,7.5,10.0,NORTH,H-2,final\n"
    )
    import_path(store, _write(tmp_path, "hb.csv", text), options=BY_TEST)
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id")
        graded = _results(store, "HB1")
    assert (
        listed.loc["HB1", "pattern_detail"]
        == "WBC 2 < 4, Hb 6.2 mmol/L < 7.5 mmol/L (grade 1); not measured: ANC, ALC, platelets"
    )
    assert "Hb 4.9 mmol/L < 7.5 mmol/L (grade 2)" in listed.loc["HB2", "pattern_detail"]
    from monitor.analysis.timeline import marked_results

    marked = marked_results(graded)
    assert marked.set_index("analyte").loc["hgb", "grade"] == 1
    from ui.timeline import flowsheet

    text, _ = flowsheet(marked, "UTC")
    assert "9.99 ↓" in text.to_numpy().ravel().tolist()  # in g/dL, rounded as labs print: not "9.99033"
