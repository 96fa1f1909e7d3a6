"""One patient: what the patient pages and the command line show of them, and the audit of each look.

``patient_view`` reads everything the Patient timeline and Treatment cycles pages show in one go and
computes what is derived from it (marks on each result, episodes, cycles); ``services.audit.record_view``
writes the audit row of a patient opened or shown. Every read checks that the viewer may see the patient
(a patient outside their teams is "not found"). The actions on a patient are in ``services.patient_actions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import queries
from db.accounts import Viewer
from db.queries import PatientNotFound
from db.settings import site_rules
from monitor.analysis.cycles import (
    CycleRules,
    before_after,
    cycle_days,
    cycle_table,
    cycle_trend,
    treatment_cycles,
)
from monitor.analysis.forecast import Forecast
from monitor.analysis.rules import SiteRules
from monitor.analysis.timeline import low_episodes, marked_results
from services.forecast import forecast_from

__all__ = [
    "CycleView",
    "PatientNotFound",
    "PatientView",
    "around_event",
    "find_patient",
    "patient_cycles",
    "patient_results",
    "patient_view",
]

# What cycles are computed from, and what the cycle overlay and the before/after comparison show.
# The counts of the cycle table, and the temperatures its febrile-neutropenia column is judged from.
CYCLE_ANALYTES = ("wbc", "anc", "plt", "temp")
OVERLAY_ANALYTES = ("wbc", "anc", "alc", "plt")
COMPARED_ANALYTES = ("wbc", "anc", "alc", "hgb", "plt")


@dataclass(frozen=True, slots=True)
class CycleView:
    """A patient's chemotherapy cycles under the site's rules.

    ``cycles``: ``analysis.cycles.treatment_cycles``; ``table``: the same for people (``cycle_table``,
    dates in the site's zone); ``trend``: the sentences on nadir and recovery across cycles (none when
    there is nothing to say); ``placed``: the WBC, ANC, ALC and platelet results inside a cycle with their
    day since its start (``cycle_days``), for the overlay; ``rules``: the rules they were computed under;
    ``now``: the cycle now and readiness for the planned next dose, as the patient list says it on the day
    read ("C5D13. next dose expected on D22 (2026-12-11); readiness judged from D19"; "" outside a cycle);
    ``forecast``: the nadir forecast of the latest cycle as of that day (``analysis.forecast``; None
    without chemotherapy).
    """

    cycles: pd.DataFrame
    table: pd.DataFrame
    trend: tuple[str, ...]
    placed: pd.DataFrame
    rules: CycleRules
    now: str = ""
    forecast: Forecast | None = None


@dataclass(frozen=True, slots=True)
class PatientView:
    """Everything the patient pages show of one patient, read and computed at one moment.

    ``status``: the patient's row of the patient list (latest counts, grades, flags with their sentences,
    pattern, cycle now, acknowledgement); ``results``: current results with the limit that applies and the
    timeline's marks (``analysis.timeline.marked_results``), oldest first; ``history``: every version,
    superseded ones included; ``events``: clinical events, oldest first; ``cycles``: see ``CycleView``;
    ``episodes``: WBC and ANC runs below the limit, newest first; ``ranges``: patient-specific ranges,
    active first; ``acknowledgements``: newest first; ``timezone``: the site's, in which days are counted.
    """

    patient_key: int
    status: pd.Series
    results: pd.DataFrame
    history: pd.DataFrame
    events: pd.DataFrame
    cycles: CycleView
    episodes: pd.DataFrame
    ranges: pd.DataFrame
    acknowledgements: pd.DataFrame
    timezone: str


def find_patient(
    store: sessionmaker[Session], *, viewer: Viewer, patient_id: str, authority: str | None = None
) -> int:
    """The key of the patient with this identifier (and authority) among those ``viewer`` may see.

    Raises ``PatientNotFound`` when there is none, or several and no authority tells them apart.
    """
    with store() as session:
        return queries.find_patient(session, patient_id, viewer=viewer, authority=authority).id


def patient_results(
    store: sessionmaker[Session], *, viewer: Viewer, patient_key: int, history: bool = False
) -> pd.DataFrame:
    """The patient's results with the limit that applies to each, oldest first; ``history`` adds the
    superseded versions of corrected results."""
    with store() as session:
        return queries.patient_results(session, patient_key, viewer=viewer, history=history)


def patient_cycles(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    patient_key: int,
    timezone: str,
    now: datetime | None = None,
) -> CycleView:
    """The patient's chemotherapy cycles under the site's rules, days counted in ``timezone``; the cycle
    now as of ``now`` (the current time unless given)."""
    now = now or datetime.now(UTC)
    with store() as session:
        results = queries.patient_results(
            session, patient_key, viewer=viewer, analytes=(*OVERLAY_ANALYTES, "temp")
        )
        events = queries.patient_events(session, patient_key, viewer=viewer)
        rules = site_rules(session)
        listed = queries.patient_list(
            session, viewer=viewer, timezone=timezone, patient_key=patient_key, now=now
        )
    return _cycle_view(
        results,
        events,
        patient_key=patient_key,
        listed=listed,
        rules=rules,
        timezone=timezone,
        now=now,
    )


def _cycle_now_text(listed: pd.DataFrame) -> str:
    """ "C5D13. <readiness>" from a patient-list row ("" without one, or outside a cycle)."""
    if listed.empty or pd.isna(listed["cycle"].iloc[0]):
        return ""
    row = listed.iloc[0]
    return f"C{row['cycle']}D{row['cycle_day'] + 1}. {row['readiness']}"


def patient_view(
    store: sessionmaker[Session], *, viewer: Viewer, patient_key: int, timezone: str, now: datetime
) -> PatientView:
    """Everything the patient pages show of this patient as of ``now``, days counted in ``timezone``."""
    with store() as session:
        queries.check_access(session, patient_key, viewer)
        listed = queries.patient_list(
            session, viewer=viewer, timezone=timezone, patient_key=patient_key, now=now
        )
        if listed.empty:
            raise PatientNotFound("no such patient among those you may see")
        results = queries.patient_results(session, patient_key, viewer=viewer)
        history = queries.patient_results(session, patient_key, viewer=viewer, history=True)
        events = queries.patient_events(session, patient_key, viewer=viewer)
        ranges = queries.patient_ranges(session, patient_key, viewer=viewer)
        acknowledgements = queries.acknowledgements(session, patient_key, viewer=viewer)
        rules = site_rules(session)
    overlaid = results[results["analyte"].isin((*OVERLAY_ANALYTES, "temp")).to_numpy(dtype=bool)]
    return PatientView(
        patient_key=patient_key,
        # As plain Python values, so that a page's ``status["acknowledged"] is True`` means what it says.
        status=listed.astype(object).iloc[0],
        results=marked_results(results, rules=rules.grading),
        history=history,
        events=events.reset_index(drop=True),
        cycles=_cycle_view(
            overlaid, events, patient_key=patient_key, listed=listed, rules=rules, timezone=timezone, now=now
        ),
        episodes=low_episodes(results, timezone=timezone),
        ranges=ranges,
        acknowledgements=acknowledgements,
        timezone=timezone,
    )


def around_event(view: PatientView, *, event: int, window_days: int) -> pd.DataFrame:
    """The WBC, differential, haemoglobin and platelet results ``window_days`` before and after one of the
    view's events (its position in ``view.events``): count, median and range on each side."""
    chosen = view.events.loc[[event]].assign(event_key=event, patient_key=view.patient_key)
    compared = before_after(view.results, chosen, window_days=window_days)
    return compared[compared["analyte"].isin(COMPARED_ANALYTES).to_numpy(dtype=bool)]


def _cycle_view(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    patient_key: int,
    listed: pd.DataFrame,
    rules: SiteRules,
    timezone: str,
    now: datetime,
) -> CycleView:
    """The patient's cycles under the site's ``rules`` as of ``now``, with their cycle now from the
    patient-list row ``listed`` (its birth date: age is a G-CSF risk factor)."""
    keyed = {"patient_key": patient_key}
    results, events = results.assign(**keyed), events.assign(**keyed)
    counted = results[results["analyte"].isin(CYCLE_ANALYTES).to_numpy(dtype=bool)]
    born = None if listed.empty else listed["birth_date"].iloc[0]
    birth_dates = pd.DataFrame({"patient_key": [patient_key], "birth_date": [born]})
    cycle_rules = rules.cycles
    cycles = treatment_cycles(
        counted,
        events,
        rules=cycle_rules,
        timezone=timezone,
        febrile=rules.febrile,
        birth_dates=birth_dates,
        as_of=pd.Timestamp(now),
    )
    # (the overlay shows the counts: temperatures are read only for febrile neutropenia)
    results = results[results["analyte"].ne("temp").to_numpy(dtype=bool)]
    trend = cycle_trend(cycles, rules=cycle_rules)["trend"] if not cycles.empty else pd.Series(dtype="string")
    return CycleView(
        cycles=cycles,
        table=cycle_table(cycles, timezone=timezone, rules=cycle_rules),
        trend=tuple(str(sentence) for sentence in trend if sentence),
        placed=cycle_days(results, events, rules=cycle_rules, timezone=timezone),
        rules=cycle_rules,
        now=_cycle_now_text(listed),
        forecast=(
            forecast_from(
                counted, events, patient_key=patient_key, rules=cycle_rules, timezone=timezone, as_of=now
            )
            if events["kind"].eq("chemotherapy").any()
            else None
        ),
    )
