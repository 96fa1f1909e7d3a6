"""The patients a viewer may see, as lists: the patient list, the worklist in priority order, the treated
patients, and the alerts since a time; and the audit of a list seen."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import queries
from db.accounts import Viewer
from db.settings import site_rules
from monitor.analysis.alerts import ALERT_COLUMNS, current_alerts
from monitor.analysis.due import due_flags, with_monitoring_gaps
from monitor.analysis.flags import HIGH_FLAGS
from monitor.analysis.forecast import GRADE4_BELOW
from monitor.analysis.status import latest_column
from monitor.analysis.triage import prioritised
from monitor.formats.units import printed
from services.audit import record_for_list

__all__ = ["alerts", "count_and_grade", "patient_list", "record_list_view", "treated_patients", "worklist"]


def patient_list(
    store: sessionmaker[Session], *, viewer: Viewer, timezone: str, now: datetime
) -> pd.DataFrame:
    """One row per patient ``viewer`` may see (their status as materialised), most recent CBC first; days
    since the last CBC and of the current cycle are calendar days in ``timezone`` as of ``now``;
    ``cbc_due`` and ``cbc_due_reason`` as of ``now`` (``analysis.due.due_flags``); ``forecast_grade4`` where
    the nadir forecast's ``p_grade4`` is at least ``cycles.forecast_grade4_threshold`` while its nadir is
    ahead (its window not passed, no grade 4 measured yet)."""
    with store() as session:
        listed = queries.patient_list(session, viewer=viewer, timezone=timezone, now=now)
        rules = site_rules(session).cycles
    listed = listed.join(due_flags(listed, as_of=pd.Timestamp(now), rules=rules, timezone=timezone))
    # The nadir forecast's chance of a grade 4 nadir at or above the site's threshold (analysis.forecast),
    # while the nadir is still ahead: not once its window has passed, nor once a grade 4 was measured (then
    # the count itself ranks the patient).
    chance = pd.to_numeric(listed["p_grade4"], errors="coerce")
    ends = pd.to_datetime(listed["nadir_window_ends_at"], utc=True)
    ahead = ends.isna() | ends.gt(pd.Timestamp(now))
    measured = pd.to_numeric(listed["observed_nadir_anc"], errors="coerce").lt(GRADE4_BELOW)
    forecast = chance.ge(rules.forecast_grade4_threshold) & ahead & ~measured
    listed["forecast_grade4"] = forecast.fillna(False).astype(bool)
    return listed


def worklist(store: sessionmaker[Session], *, viewer: Viewer, timezone: str, now: datetime) -> pd.DataFrame:
    """The patient list in priority order (most urgent clinical risk first), with each patient's ``tier``,
    ``priority_reason`` and ``grade`` (``analysis.triage.prioritised``)."""
    return prioritised(patient_list(store, viewer=viewer, timezone=timezone, now=now))


def treated_patients(store: sessionmaker[Session], *, viewer: Viewer) -> list[int]:
    """Keys of the patients ``viewer`` may see with at least one chemotherapy event."""
    with store() as session:
        return queries.treated_patients(session, viewer=viewer)


def alerts(
    store: sessionmaker[Session], *, viewer: Viewer, since: datetime, timezone: str, now: datetime
) -> pd.DataFrame:
    """Patients whose flags appeared or whose grades rose since ``since`` and still hold, in the worklist's
    order, then the most recent change first (``analysis.alerts.current_alerts``), with the monitoring gaps
    raised since ``since`` that still hold (``monitoring_gap``: CBCs due and nadir windows missed,
    ``analysis.due.with_monitoring_gaps``), each with its ``patient_key`` last (for the audit of who was
    listed)."""
    with store() as session:
        changes = queries.status_changes_since(session, since=since, viewer=viewer)
        patients = queries.patient_list(session, viewer=viewer, timezone=timezone, now=now)
        rules = site_rules(session).cycles
    found = current_alerts(changes, patients) if not changes.empty else pd.DataFrame(columns=ALERT_COLUMNS)
    found = with_monitoring_gaps(
        found, patients, since=pd.Timestamp(since), as_of=pd.Timestamp(now), rules=rules, timezone=timezone
    )
    if found.empty:
        return pd.DataFrame(columns=[*ALERT_COLUMNS, "monitoring_gap", "patient_key"])
    identity = ["patient_id", "assigning_authority"]
    keys = patients[[*identity, "patient_key"]]
    return found.merge(keys, on=identity, how="left", validate="many_to_one")


def record_list_view(
    store: sessionmaker[Session], *, viewer: Viewer, patient_keys: Iterable[int], what: str, now: datetime
) -> None:
    """Record in the audit trail that ``viewer`` saw a list of patients (``what``: the page or command and
    the list's size): one ``view`` row per patient listed, so that the trail of a patient names every list
    that showed them. An empty list showed no patient: nothing is recorded."""
    record_for_list(store, viewer=viewer, action="view", what=what, patient_keys=patient_keys, now=now)


def count_and_grade(frame: pd.DataFrame, analyte: str) -> pd.Series:
    """The latest count of ``analyte`` as printed, with its comparator, the lab's own flag and CTCAE grade:
    "<0.1 LL G4"; a count above its upper limit is marked "↑", with its CTCAE grade where CTCAE grades a
    high count: "105.6 HH ↑G3" (docs/clinical-basis.md, High counts)."""
    value = frame[latest_column(analyte)]
    present = value.notna()
    counts = pd.Series(pd.NA, index=frame.index, dtype="string")
    if present.any():  # (printed needs at least one value)
        counts[present] = printed(value[present], pd.Series(analyte, index=value[present].index))
    text = frame[latest_column(analyte, "comparator")].fillna("").astype("string") + counts
    flag = frame[latest_column(analyte, "lab_flag")].astype("string").str.strip()
    text = text.where(flag.isna() | flag.eq(""), text + " " + flag)
    grade = frame[latest_column(analyte, "grade")]
    high = frame[latest_column(analyte, "high_grade")].astype("Int64")
    above = frame["flags"].map(lambda listed: HIGH_FLAGS[analyte] in listed).astype(bool)
    graded = text.where(grade.isna(), text + " G" + grade.astype("Int64").astype("string"))
    raised = (text + " ↑").where((high < 1).fillna(True), text + " ↑G" + high.astype("string"))
    return graded.where(~above, raised).where(value.notna())
