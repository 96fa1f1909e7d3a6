"""The synthetic demo cohort behaves the way a clinician reading the dashboard would expect, and comes out
of a store, with its published accounts, before real use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cli import cli
from db.accounts import visible
from db.migrate import upgrade
from db.models import (
    Acknowledgement,
    AppUser,
    AuditLog,
    ClinicalEvent,
    ImportBatch,
    Lab,
    Panel,
    Patient,
    PatientStatus,
    PatientTeam,
    ReferenceOverride,
    Result,
    StatusChange,
    UserTeam,
)
from db.session import make_engine, make_session_factory
from monitor.analytes import ANALYTES, DIFFERENTIAL
from monitor.formats.events import EVENT_KINDS
from monitor.simulation.demo import LOCAL_TZ, SCENARIOS, DemoCohort, simulate_cohort
from services.accounts import SYSTEM, add_user, sign_in
from services.admin import DEMO_ACCOUNTS_WARNING, has_active_admin, seed_demo, seed_demo_if_empty
from services.config import Config
from services.imports import ImportOptions, import_path
from services.patient_actions import acknowledge, add_event, set_patient_range
from tests.conftest import DATA

END = dt.date(2025, 6, 30)
FRAMES = ("patients", "memberships", "labs", "results", "events", "overrides")
PANEL = ("wbc", *DIFFERENTIAL, "hgb", "plt", "neut_pct", "lymph_pct", "mono_pct", "eos_pct", "baso_pct")
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def cohort() -> DemoCohort:
    return simulate_cohort(60, seed=7, end_date=END)


@pytest.fixture(scope="module")
def panels(cohort: DemoCohort) -> pd.DataFrame:
    """One row per CBC (accession), analytes as columns, with the patient's scenario."""
    wide = cohort.results.pivot_table(
        index=["patient_id", "collected_at", "accession"], columns="analyte", values="value"
    ).reset_index()
    return wide.merge(cohort.patients[["patient_id", "scenario"]], on="patient_id")


def of(panels: pd.DataFrame, scenario: str) -> pd.DataFrame:
    return panels[panels["scenario"] == scenario]


@pytest.fixture(scope="module")
def cycles(cohort: DemoCohort, panels: pd.DataFrame) -> pd.DataFrame:
    """Every ANC drawn after a chemotherapy cycle started and before the next one, with its cycle day."""
    starts = cohort.events[cohort.events["kind"] == "chemotherapy"][["patient_id", "start"]].copy()
    starts["cycle"] = starts.groupby("patient_id").cumcount() + 1
    starts["next"] = starts.groupby("patient_id")["start"].shift(-1).fillna(starts["start"] + 21 * DAY)
    rows = starts.merge(panels[["patient_id", "collected_at", "anc", "scenario"]], on="patient_id")
    rows = rows[(rows["collected_at"] > rows["start"]) & (rows["collected_at"] < rows["next"])]
    return rows.assign(day=np.round((rows["collected_at"] - rows["start"]) / DAY))


def nadirs(cycles: pd.DataFrame) -> pd.DataFrame:
    """The lowest ANC of each cycle that had a nadir check (a CBC on day 7 to 12)."""
    checked = cycles.groupby(["patient_id", "cycle"])["day"].transform(lambda d: d.between(7, 12).any())
    kept = cycles[checked]
    return kept.loc[kept.groupby(["patient_id", "cycle"])["anc"].idxmin()]


def test_same_seed_gives_identical_frames_and_another_seed_differs(cohort: DemoCohort) -> None:
    again = simulate_cohort(60, seed=7, end_date=END)
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(cohort, name), getattr(again, name))
    other = simulate_cohort(60, seed=8, end_date=END)
    assert not cohort.results["value"].equals(other.results["value"])


def test_a_patient_is_the_same_whatever_the_cohort_size(cohort: DemoCohort) -> None:
    bigger = simulate_cohort(80, seed=7, end_date=END)
    ids = set(cohort.patients["patient_id"])
    assert len(bigger.patients) == 80
    for name in ("patients", "memberships", "results", "events", "overrides"):
        frame = getattr(bigger, name)
        subset = frame[frame["patient_id"].isin(ids)].reset_index(drop=True)
        pd.testing.assert_frame_equal(getattr(cohort, name), subset)


@pytest.mark.parametrize("n", [0, -5])
def test_a_cohort_needs_at_least_one_patient(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        simulate_cohort(n, end_date=END)


def test_sixty_patients_cover_every_scenario_at_least_twice(cohort: DemoCohort) -> None:
    counts = cohort.patients["scenario"].value_counts()
    assert len(cohort.patients) == 60
    assert set(counts.index) == {s.code for s in SCENARIOS}
    assert counts.min() >= 2
    chemo = counts.filter(like="chemo_").sum() / 60
    assert 0.3 <= chemo <= 0.4  # about 35 %


def test_teams_follow_the_clinical_service(cohort: DemoCohort) -> None:
    teams = cohort.memberships.groupby("patient_id")["team"].agg(frozenset)
    scenario = cohort.patients.set_index("patient_id")["scenario"]
    for pid, team in teams.items():
        if scenario[pid].startswith("chemo"):
            assert team == {"oncology"}
        elif scenario[pid] == "marrow_failure":
            assert team == {"oncology", "internal-medicine"}
        else:
            assert team == {"internal-medicine"}


def test_follow_up_lasts_6_to_18_months_and_ends_in_the_last_two_weeks(cohort: DemoCohort) -> None:
    span = cohort.results.groupby("patient_id")["collected_at"].agg(["min", "max"])
    months = (span["max"] - span["min"]) / DAY / 30.44
    assert months.between(5.9, 18.1).all()
    last = span["max"].dt.tz_convert(LOCAL_TZ).dt.date
    assert last.between(END - dt.timedelta(days=14), END).all()


def test_every_patient_is_an_adult_aged_25_to_85(cohort: DemoCohort) -> None:
    first = cohort.results.groupby("patient_id")["collected_at"].min().dt.date
    born = cohort.patients.set_index("patient_id")["birth_date"]
    assert all(isinstance(b, dt.date) for b in born)
    assert ((first - born).map(lambda d: d.days) / 365.25 >= 25).all()
    assert ((END - born).map(lambda d: d.days) / 365.25 <= 85).all()


def test_frames_have_the_documented_dtypes(cohort: DemoCohort) -> None:
    results, events = cohort.results, cohort.events
    assert str(results["collected_at"].dtype) == "datetime64[us, UTC]"
    assert str(events["start"].dtype) == str(events["end"].dtype) == "datetime64[us, UTC]"
    for column in ("value", "ref_low", "ref_high"):
        assert results[column].dtype == np.float64
    for frame, columns in (
        (results, ["patient_id", "analyte", "unit", "lab", "accession", "status"]),
        (events, ["patient_id", "kind", "label", "details"]),
        (cohort.patients, ["patient_id", "name", "sex", "scenario", "scenario_label"]),
    ):
        assert all(pd.api.types.is_string_dtype(frame[c]) for c in columns)
    assert list(cohort.overrides.columns) == ["patient_id", "analyte", "low", "high", "reason"]
    assert results["value"].notna().all() and (results["status"] == "final").all()
    assert set(cohort.patients["sex"]) == {"F", "M"}


def test_each_cbc_is_one_accession_with_the_whole_panel_in_canonical_units(cohort: DemoCohort) -> None:
    by_panel = cohort.results.groupby("accession")
    assert by_panel["analyte"].apply(lambda names: sorted(names) == sorted(PANEL)).all()
    assert (by_panel[["collected_at", "lab", "patient_id"]].nunique() == 1).all().all()
    assert (cohort.results["unit"] == cohort.results["analyte"].map(lambda a: ANALYTES[a].unit)).all()


def test_cbcs_are_drawn_in_clinic_hours_and_strictly_in_order(panels: pd.DataFrame) -> None:
    local = panels["collected_at"].dt.tz_convert(LOCAL_TZ)
    hours = local.dt.hour + local.dt.minute / 60
    assert hours.between(7.5, 16.5).all()
    assert (
        panels.sort_values(["patient_id", "collected_at"])
        .groupby("patient_id")["collected_at"]
        .diff()
        .dropna()
        > pd.Timedelta(0)
    ).all()


def test_wbc_is_the_sum_of_the_differential_and_percentages_match(panels: pd.DataFrame) -> None:
    assert np.allclose(panels["wbc"], panels[list(DIFFERENTIAL)].sum(axis=1), atol=0.0051)
    pairs = {"neut_pct": "anc", "lymph_pct": "alc", "mono_pct": "amc", "eos_pct": "aec", "baso_pct": "abc"}
    for pct, count in pairs.items():
        assert np.allclose(panels[pct], panels[count] / panels["wbc"] * 100, atol=0.051)
    assert panels[list(pairs)].sum(axis=1).between(99.7, 100.3).all()


def test_values_are_rounded_as_a_lab_reports_them(cohort: DemoCohort) -> None:
    results = cohort.results
    decimals = results["analyte"].map(lambda a: 0 if a == "plt" else 1 if a == "hgb" or "pct" in a else 2)
    scale = 10.0 ** decimals.to_numpy()
    assert np.allclose(results["value"] * scale, np.round(results["value"] * scale), atol=1e-6)


def test_reference_ranges_are_the_labs_own_and_haemoglobin_depends_on_sex(cohort: DemoCohort) -> None:
    results = cohort.results.merge(cohort.patients[["patient_id", "sex"]], on="patient_id")
    hgb = results[results["analyte"] == "hgb"].groupby(["lab", "sex"])["ref_low"].unique()
    assert hgb[("DEMO-CENTRAL", "F")].tolist() == [12.0] and hgb[("DEMO-CENTRAL", "M")].tolist() == [14.0]
    wbc = results[results["analyte"] == "wbc"].groupby("lab")["ref_low"].unique()
    assert wbc["DEMO-CENTRAL"].tolist() == [4.0] and wbc["DEMO-ONCDAY"].tolist() == [4.5]
    assert (results["ref_low"] <= results["ref_high"]).all()
    switched = results.groupby("patient_id")["lab"].nunique()
    assert (switched == 2).sum() >= 5  # the WBC band steps when a patient changes lab


def test_chemotherapy_nadir_falls_on_day_7_to_14_in_most_cycles(cycles: pd.DataFrame) -> None:
    lows = nadirs(cycles[cycles["scenario"].isin(["chemo_standard", "chemo_deepening"])])
    assert len(lows) >= 40
    assert lows["day"].between(7, 14).mean() >= 0.8
    assert (lows["anc"] < 1.5).mean() >= 0.75


def test_deepening_chemotherapy_ends_with_deeper_nadirs_than_it_started(cycles: pd.DataFrame) -> None:
    lows = nadirs(cycles[cycles["scenario"] == "chemo_deepening"]).sort_values("cycle")
    first_last = lows.groupby("patient_id")["anc"].agg(["first", "last"])
    assert len(first_last) >= 5
    assert (first_last["last"] < first_last["first"]).mean() >= 0.75


def test_gcsf_patients_recover_faster_than_standard_chemotherapy(cycles: pd.DataFrame) -> None:
    week_two = cycles[cycles["day"].between(7, 14)].groupby("scenario")["anc"]
    recovered = week_two.apply(lambda anc: (anc >= 1.5).mean())
    assert recovered["chemo_gcsf"] > recovered["chemo_standard"]
    assert week_two.median()["chemo_gcsf"] > 2 * week_two.median()["chemo_standard"]


def test_chemotherapy_has_4_to_8_readable_cycles_and_gcsf_with_each(cohort: DemoCohort) -> None:
    events = cohort.events.merge(cohort.patients[["patient_id", "scenario"]], on="patient_id")
    chemo = events[events["kind"] == "chemotherapy"]
    assert chemo["label"].str.fullmatch(r".+ mg/m2.*, cycle [1-8]").all()
    assert chemo.groupby("patient_id").size().between(4, 8).all()
    assert set(chemo["scenario"]) == {"chemo_standard", "chemo_deepening", "chemo_gcsf"}
    per_cycle = events[events["scenario"] == "chemo_gcsf"].groupby(["patient_id", "kind"]).size().unstack()
    assert (per_cycle["gcsf"] == per_cycle["chemotherapy"]).all()
    assert events[events["kind"] == "gcsf"]["label"].str.contains("filgrastim", case=False).all()


def test_no_cycle_is_given_when_the_pre_cycle_anc_is_below_1_5(
    cohort: DemoCohort, panels: pd.DataFrame
) -> None:
    starts = cohort.events[cohort.events["kind"] == "chemotherapy"]
    before = pd.merge_asof(
        starts.sort_values("start"),
        panels.sort_values("collected_at"),
        left_on="start",
        right_on="collected_at",
        by="patient_id",
        direction="backward",
    )
    assert ((before["start"] - before["collected_at"]) <= 2 * DAY).all()
    assert (before["anc"] >= 1.5).all()
    notes = cohort.events[cohort.events["label"].str.contains("postponed")]
    held = pd.merge_asof(
        notes.sort_values("start"),
        panels.sort_values("collected_at"),
        left_on="start",
        right_on="collected_at",
        by="patient_id",
        direction="backward",
    )
    assert (held["anc"] < 1.5).all()


def test_duffy_null_anc_is_low_for_most_yet_inside_their_own_interval_as_the_note_says(
    cohort: DemoCohort, panels: pd.DataFrame
) -> None:
    anc = of(panels, "duffy_null").groupby("patient_id")["anc"]
    counts = of(panels, "duffy_null")["anc"]
    # Below the general adult limit (1.8) yet inside the Duffy-null interval applied (1.21-5.39): the note
    # says "normal for this patient", and the counts must not contradict it.
    assert counts.between(1.21, 1.8).mean() >= 0.7
    notes = cohort.events[cohort.events["label"].str.startswith("Duffy-null", na=False)]
    assert len(notes) == anc.ngroups and notes["details"].str.contains("1.21-5.39").all()
    assert (anc.std() / anc.mean() < 0.25).all()
    overrides = cohort.overrides.set_index(["patient_id", "analyte"])[["low", "high"]]
    for pid in anc.groups:
        assert overrides.loc[(pid, "anc")].tolist() == [1.21, 5.39]
        assert overrides.loc[(pid, "wbc")].tolist() == [3.00, 9.66]
    assert cohort.overrides["reason"].str.contains("Hibbs").all()
    assert set(cohort.overrides["patient_id"]) == set(anc.groups)


def test_b12_counts_are_higher_after_the_supplement_course_than_before(
    cohort: DemoCohort, panels: pd.DataFrame
) -> None:
    course = cohort.events[cohort.events["kind"] == "supplement"].set_index("patient_id")
    sex = cohort.patients.set_index("patient_id")["sex"]
    b12 = of(panels, "b12_deficiency")
    assert set(b12["patient_id"]) == set(course.index)
    for pid, rows in b12.groupby("patient_id"):
        before = rows[rows["collected_at"] < course.loc[pid, "start"]]
        after = rows[rows["collected_at"] > course.loc[pid, "end"]]
        anaemic = 11.7 if sex[pid] == "F" else 14.0  # below either lab's lower limit
        assert before["wbc"].min() < 4.0 and before["hgb"].min() < anaemic
        assert after["wbc"].mean() > before["wbc"].mean() and after["hgb"].mean() > before["hgb"].mean()


def test_drug_induced_neutropenia_resolves_after_the_drug_is_stopped(
    cohort: DemoCohort, panels: pd.DataFrame
) -> None:
    drug = cohort.events[cohort.events["kind"] == "medication"].set_index("patient_id")
    for pid, rows in of(panels, "drug_induced").groupby("patient_id"):
        on_drug = rows[rows["collected_at"].between(drug.loc[pid, "start"], drug.loc[pid, "end"])]
        late = rows[rows["collected_at"] > drug.loc[pid, "end"] + 28 * DAY]
        baseline = rows[rows["collected_at"] < drug.loc[pid, "start"]]["anc"].median()
        assert on_drug["anc"].min() < min(1.5, 0.6 * baseline)
        assert late["anc"].median() >= 1.8  # back inside the lab's range


def test_viral_infection_brings_a_transient_dip(cohort: DemoCohort, panels: pd.DataFrame) -> None:
    onset = cohort.events[cohort.events["kind"] == "infection"].set_index("patient_id")["start"]
    for pid, rows in of(panels, "viral_dip").groupby("patient_id"):
        during = rows["collected_at"].between(onset[pid], onset[pid] + 10 * DAY)
        assert rows.loc[during, "anc"].min() < 0.8 * rows.loc[~during, "anc"].median()


def test_lupus_lymphocytes_stay_between_0_4_and_0_9(panels: pd.DataFrame) -> None:
    alc = of(panels, "autoimmune_lymphopenia")["alc"]
    assert alc.between(0.4, 0.9).mean() >= 0.8 and (alc < 1.0).mean() >= 0.95  # below the lab range


def test_marrow_failure_falls_in_every_lineage_and_needs_transfusions(
    cohort: DemoCohort, panels: pd.DataFrame
) -> None:
    transfused = set(cohort.events.loc[cohort.events["kind"] == "transfusion", "patient_id"])
    for pid, rows in of(panels, "marrow_failure").sort_values("collected_at").groupby("patient_id"):
        first, last = rows.head(3).mean(numeric_only=True), rows.tail(3).mean(numeric_only=True)
        assert last["anc"] < 0.7 * first["anc"] and last["plt"] < 0.6 * first["plt"]
        assert pid in transfused


def test_healthy_controls_stay_inside_the_lab_range(cohort: DemoCohort) -> None:
    healthy = cohort.patients.loc[cohort.patients["scenario"] == "healthy", "patient_id"]
    results = cohort.results[
        cohort.results["patient_id"].isin(healthy) & cohort.results["analyte"].isin(["wbc", "anc"])
    ]
    inside = results["value"].between(results["ref_low"], results["ref_high"])
    assert inside.mean() >= 0.9


def test_everything_a_user_sees_is_marked_synthetic(cohort: DemoCohort) -> None:
    patients = cohort.patients
    assert patients["name"].str.fullmatch(r"Synthetic Patient \d{3,}").all()
    assert patients["scenario_label"].str.startswith("Synthetic: ").all()
    assert patients["patient_id"].str.fullmatch(r"DEMO-\d{4}").all()
    assert cohort.labs["name"].str.contains("(synthetic)", regex=False).all()
    assert set(cohort.results["lab"]) <= set(cohort.labs["code"])


def test_events_use_the_vocabulary_and_read_clearly(cohort: DemoCohort) -> None:
    events = cohort.events
    assert set(events["kind"]) <= set(EVENT_KINDS)
    assert {"chemotherapy", "gcsf", "medication", "infection", "supplement", "transfusion", "note"} <= set(
        events["kind"]
    )
    assert (events["label"].str.len() > 5).all() and not events["label"].str.contains("nan").any()
    ended = events.dropna(subset=["end"])
    assert (ended["end"] >= ended["start"]).all()
    assert set(events["patient_id"]) <= set(cohort.patients["patient_id"])


# --- The demo in a store, and taken out of it before real use ---

NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=1)
# Every table that holds a patient's rows, by the column naming the patient.
PATIENT_ROWS = (
    Panel,
    ClinicalEvent,
    ReferenceOverride,
    PatientStatus,
    StatusChange,
    Acknowledgement,
    PatientTeam,
)


def _demo_with_a_real_patient(url: str, _folder: Path) -> None:
    """A migrated store with a small demo cohort (an acknowledgement, a note and a patient range on one of
    its patients) and a real patient imported beside it with the same kinds of rows."""
    engine = make_engine(url)
    try:
        upgrade(engine, timezone="UTC")
        store = make_session_factory(engine)
        seed_demo(store, patients=3, seed=7, now=NOW, timezone="UTC")
        options = ImportOptions(imported_by="test", site_timezone="UTC", teams=("oncology",))
        assert import_path(store, DATA / "canonical-good.csv", options=options, now=NOW).accepted
        with store() as session:
            demo_key, real_key = (
                session.scalar(select(Patient.id).where(Patient.mrn == mrn))
                for mrn in ("DEMO-0001", "MRN1001")
            )
        for key in (demo_key, real_key):
            assert key is not None
            acknowledge(store, viewer=SYSTEM, patient_key=key, comment="seen", now=NOW)
            add_event(
                store,
                viewer=SYSTEM,
                patient_key=key,
                kind="note",
                start=NOW,
                end=None,
                label="Phoned the patient",
                details="",
                now=NOW,
                timezone="UTC",
            )
            set_patient_range(
                store,
                viewer=SYSTEM,
                patient_key=key,
                analyte="anc",
                low=1.2,
                high=None,
                reason="Duffy-null",
                now=NOW,
                timezone="UTC",
            )
    finally:
        engine.dispose()


@pytest.fixture
def demo_store(store_copy: Callable[[str, Callable[[str, Path], None]], str]) -> sessionmaker[Session]:
    engine = make_engine(store_copy("demo-with-a-real-patient", _demo_with_a_real_patient))
    yield make_session_factory(engine)
    engine.dispose()


def _rows(store: sessionmaker[Session], *, synthetic: bool) -> dict[str, int]:
    """How many rows each patient table (and the results) holds for synthetic or for real patients."""
    with store() as session:
        patients = select(Patient.id).where(Patient.is_synthetic.is_(synthetic))
        counts = {
            model.__tablename__: session.scalar(
                select(func.count()).where(model.patient_id.in_(patients))  # type: ignore[attr-defined]
            )
            for model in PATIENT_ROWS
        }
        panels = select(Panel.id).where(Panel.patient_id.in_(patients))
        counts["result"] = session.scalar(select(func.count()).where(Result.panel_id.in_(panels)))
        counts["patient"] = session.scalar(select(func.count()).select_from(patients.subquery()))
        return {table: int(n or 0) for table, n in counts.items()}


def _demo(store: sessionmaker[Session], *args: str) -> tuple[int, str, str]:
    url = store.kw["bind"].url.render_as_string(hide_password=False)
    done = CliRunner().invoke(cli, ["demo", *args, "--database", url], catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def test_an_import_into_a_store_with_the_demo_accounts_warns_until_they_are_removed(
    demo_store: sessionmaker[Session], tmp_path: Path
) -> None:
    options = ImportOptions(imported_by="test", site_timezone="UTC")
    before = import_path(demo_store, DATA / "canonical-good.csv", options=options, now=LATER)
    assert before.warnings == (DEMO_ACCOUNTS_WARNING,)
    assert "published password 'demo'" in DEMO_ACCOUNTS_WARNING
    assert "`python -m monitor demo --remove`" in DEMO_ACCOUNTS_WARNING
    url = demo_store.kw["bind"].url.render_as_string(hide_password=False)
    printed = CliRunner().invoke(cli, ["import", str(DATA / "canonical-good.csv"), "--database", url])
    assert f"warning: {DEMO_ACCOUNTS_WARNING}" in printed.stderr

    assert _demo(demo_store, "--remove")[0] == 0
    after = import_path(demo_store, DATA / "canonical-good.csv", options=options, now=LATER)
    assert after.warnings == ()
    printed = CliRunner().invoke(cli, ["import", str(DATA / "canonical-good.csv"), "--database", url])
    assert "warning" not in printed.stderr


def test_removing_the_demo_takes_out_every_row_of_its_patients_and_leaves_real_ones_and_the_trail(
    demo_store: sessionmaker[Session],
) -> None:
    real = _rows(demo_store, synthetic=False)
    synthetic = _rows(demo_store, synthetic=True)
    assert all(synthetic.values()) and all(real.values())  # every kind of row is there to remove
    with demo_store() as session:
        trail = session.scalar(select(func.count()).select_from(AuditLog))

    code, out, _ = _demo(demo_store, "--remove")

    assert code == 0
    removed = f"synthetic demo cohort removed: {synthetic['patient']} patients, {synthetic['result']} results"
    assert removed in out
    assert _rows(demo_store, synthetic=True) == dict.fromkeys(synthetic, 0)
    assert _rows(demo_store, synthetic=False) == real
    with demo_store() as session:
        assert session.scalar(select(func.count()).where(Lab.is_synthetic.is_(True))) == 0
        assert session.scalar(select(func.count()).where(ImportBatch.format == "demo")) == 0
        audit = session.execute(select(AuditLog.action, AuditLog.details).order_by(AuditLog.id)).all()
    assert len(audit) > trail  # nothing taken from the trail, the removal added to it
    added = audit[trail:]
    assert any('"removed": "synthetic demo cohort"' in details for _, details in added)
    assert sorted(details for action, details in added if action == "user_disable") == sorted(
        d for d in (details for _, details in added) if '"user": ' in d
    )
    # and the demo's own regimen setting (the showcase's TAC risk) is taken out, audited as a settings change
    assert {action for action, _ in added} == {"import", "user_disable", "settings"}
    # Seeding again (deliberately) brings the same cohort back.
    assert _demo(demo_store, "--patients", "3")[1].startswith("synthetic demo cohort of 3 patients")


def test_the_viewer_demo_account_reads_every_demo_patient_and_cannot_change_anything(
    demo_store: sessionmaker[Session],
) -> None:
    viewer = sign_in(demo_store, username="viewer", password="demo", now=NOW)

    assert not isinstance(viewer, str), viewer
    assert viewer.role == "viewer" and not viewer.may("record")
    with demo_store() as session:
        synthetic = set(session.scalars(select(Patient.id).where(Patient.is_synthetic.is_(True))))
        seen = set(session.scalars(select(Patient.id).where(visible(Patient.id, viewer))))
        acknowledged = session.scalar(select(func.count()).select_from(Acknowledgement))
    assert synthetic and synthetic <= seen  # the demo patients of both teams, as the clinicians see theirs
    key = min(synthetic)
    with pytest.raises(PermissionError, match="viewer accounts cannot add or change records"):
        acknowledge(demo_store, viewer=viewer, patient_key=key, comment="seen", now=LATER)
    with pytest.raises(PermissionError):
        add_event(
            demo_store,
            viewer=viewer,
            patient_key=key,
            kind="note",
            start=LATER,
            end=None,
            label="a note",
            details="",
            now=LATER,
            timezone="UTC",
        )
    with demo_store() as session:
        assert session.scalar(select(func.count()).select_from(Acknowledgement)) == acknowledged


def test_the_demo_accounts_cannot_sign_in_once_removed_and_their_names_stay_taken(
    demo_store: sessionmaker[Session],
) -> None:
    assert not isinstance(sign_in(demo_store, username="admin", password="demo", now=NOW), str)

    code, out, _ = _demo(demo_store, "--remove")

    disabled = "demo accounts disabled, their passwords cleared: admin, oncology, medicine, viewer"
    assert code == 0 and disabled in out
    for name in ("admin", "oncology", "medicine", "viewer"):
        assert isinstance(sign_in(demo_store, username=name, password="demo", now=LATER), str)
    with demo_store() as session:
        users = session.execute(select(AppUser.username, AppUser.is_active, AppUser.password_hash)).all()
        assert session.scalar(select(func.count()).select_from(UserTeam)) == 0
    assert sorted(users) == [
        ("admin", False, None),
        ("medicine", False, None),
        ("oncology", False, None),
        ("viewer", False, None),
    ]
    with pytest.raises(ValueError, match="exists already"):  # nobody inherits the demo admin's trail
        add_user(
            demo_store,
            viewer=SYSTEM,
            username="admin",
            role="admin",
            teams=(),
            password="a long real password",
            now=LATER,
        )


def test_a_store_left_without_an_administrator_says_how_to_create_one(
    demo_store: sessionmaker[Session],
) -> None:
    assert has_active_admin(demo_store)
    code, _, err = _demo(demo_store, "--remove")
    assert code == 0 and not has_active_admin(demo_store)
    assert "python -m monitor users add NAME --role admin" in err

    add_user(
        demo_store,
        viewer=SYSTEM,
        username="j.smith",
        role="admin",
        teams=(),
        password="a long real password",
        display_name="Demo administrator",  # as the demo's, under another name: left alone
        now=LATER,
    )
    assert has_active_admin(demo_store)
    code, out, err = _demo(demo_store, "--remove")
    assert code == 0 and "disabled" not in out and "users add" not in err
    assert has_active_admin(demo_store)


def test_the_dashboard_does_not_seed_the_demo_again_into_a_store_it_was_removed_from(
    store: sessionmaker[Session],
) -> None:
    _demo(store, "--patients", "2")
    _demo(store, "--remove")
    url = store.kw["bind"].url.render_as_string(hide_password=False)
    assert seed_demo_if_empty(store, config=Config(database_url=url, seed_demo=True), now=LATER) is None
    assert _rows(store, synthetic=True)["patient"] == 0
    with store() as session:
        assert (
            session.scalar(select(func.count()).select_from(AppUser).where(AppUser.is_active.is_(True))) == 0
        )
