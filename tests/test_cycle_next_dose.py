"""Readiness is for the planned next dose day: a 21-day docetaxel cycle given on 2 March 2026 expects its
next dose on D22 (23 March) and judges readiness from D19 (20 March), the 3-day window before it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from monitor.analysis.cycles import (
    CycleRules,
    cycle_table,
    readiness_as_of,
    readiness_now,
    regimen_cycle_days,
    stored_readiness,
    treatment_cycles,
)

START = pd.Timestamp("2026-03-02 10:00", tz="UTC")


def _at(day: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=day)


def _chemo(*days: float, regimen: str = "docetaxel 75 mg/m2 every 21 days") -> pd.DataFrame:
    return pd.DataFrame(
        {"patient_key": 1, "kind": "chemotherapy", "start_at": [_at(d) for d in days], "details": regimen}
    )


def _counts(day: float, anc: float, plt: float = 180.0) -> pd.DataFrame:
    return pd.DataFrame(
        {"patient_key": 1, "analyte": ["anc", "plt"], "value": [anc, plt], "collected_at": _at(day)}
    )


def test_mid_cycle_on_d10_there_is_no_verdict_only_the_expected_dose_and_window() -> None:
    """ANC 1.1 on D10 (the nadir) is no reason to call the patient 'NOT ready' for a dose due on D22."""
    now = readiness_now(_counts(9 - 2 / 24, 1.1), _chemo(0), as_of=_at(9))
    assert now.loc[0, "cycle_day"] == 9 and pd.isna(now.loc[0, "ready_now"])
    assert now.loc[0, "readiness"] == "Next dose expected on D22 (2026-03-23); readiness judged from D19"
    assert (now.loc[0, "next_dose_day"], now.loc[0, "readiness_from_day"]) == (21, 18)


def test_on_d20_readiness_is_judged_on_the_counts_drawn_since_d19() -> None:
    results = pd.concat([_counts(9, 0.6), _counts(19 - 2 / 24, 2.1)])  # D10 nadir; D20 pre-cycle CBC
    now = readiness_now(results, _chemo(0), as_of=_at(19))
    assert now.loc[0, "ready_now"]
    assert now.loc[0, "readiness"].startswith("Next dose expected on D22 (2026-03-23): ready: ANC 2.1")
    # In the window but no count since D19 yet: unknown, and said so.
    early = readiness_now(_counts(9, 0.6), _chemo(0), as_of=_at(18))
    assert pd.isna(early.loc[0, "ready_now"])
    assert early.loc[0, "readiness"].endswith(
        ": readiness unknown: no ANC or platelets since D19 (a pre-cycle CBC is needed)"
    )


def test_past_the_expected_day_without_a_new_dose_readiness_applies_now() -> None:
    """D22 came with ANC 1.2 (postponed); on D25 a new count of 1.7: readiness now."""
    results = pd.concat([_counts(21 - 2 / 24, 1.2), _counts(24 - 2 / 24, 1.7)])
    now = readiness_now(results, _chemo(0), as_of=_at(24))
    assert now.loc[0, "ready_now"]
    assert now.loc[0, "readiness"].startswith(
        "Next dose was expected on D22 (2026-03-23); readiness now: ready: ANC 1.7"
    )


@pytest.mark.parametrize(
    ("regimen", "starts", "expected_day"),
    [
        ("AC q14d", (0,), 14),  # the regimen's length: D15
        ("", (0, 28, 56), 28),  # no length written: the median of the previous cycles (28, 28)
        ("", (0,), 28),  # nothing to go on: the site default (28 days)
    ],
)
def test_the_expected_day_comes_from_the_regimen_then_previous_cycles_then_the_site_default(
    regimen: str, starts: tuple[float, ...], expected_day: int
) -> None:
    now = readiness_now(
        _counts(starts[-1] + 3, 2.0), _chemo(*starts, regimen=regimen), as_of=_at(starts[-1] + 5)
    )
    assert now.loc[0, "next_dose_day"] == expected_day


def test_the_readiness_window_is_a_site_setting() -> None:
    wider = CycleRules(readiness_window_days=5)
    now = readiness_now(_counts(16, 2.0), _chemo(0), as_of=_at(16.5), rules=wider)
    assert now.loc[0, "readiness_from_day"] == 16 and now.loc[0, "ready_now"]


def test_regimen_texts_name_their_cycle_length() -> None:
    found = regimen_cycle_days(pd.Series(["every 3 weeks", "q21d", "28-day cycle", "weekly", "FOLFOX"]))
    assert found.tolist()[:4] == [21.0, 21.0, 28.0, 7.0] and pd.isna(found.iloc[4])


@pytest.mark.parametrize(
    ("regimen", "days"),
    [
        ("docetaxel 75 mg/m2 3-weekly", 21),
        ("4-weekly", 28),
        ("three-weekly", 21),
        ("tri-weekly", 21),
        ("every three weeks", 21),
        ("q21", 21),
        ("fortnightly", 14),
        ("biweekly", 14),  # every two weeks, as oncology uses it
        ("R-CHOP-14", 14),
        ("6 cycles of 21 days", 21),
        ("2-weekly", 14),
        ("q2w", 14),
        ("paclitaxel 80 mg/m2 weekly", 7),  # "m2" is not "2-weekly"
    ],
)
def test_regimen_texts_as_oncologists_write_them_name_their_cycle_length(regimen: str, days: int) -> None:
    """A haematologist's review: "3-weekly" was read as 7 days and "fortnightly" not at all (28)."""
    assert regimen_cycle_days(pd.Series([regimen, "FOLFOX"])).tolist()[0] == days


RESULTS = """patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status
ONC-15,2026-03-02T08:00:00Z,anc,4.0,10^9/L,1.8,7.7,CITY,A1,final
ONC-15,2026-03-02T08:00:00Z,plt,250,10^9/L,150,450,CITY,A1,final
ONC-15,2026-03-11T08:00:00Z,anc,0.9,10^9/L,1.8,7.7,CITY,A2,final
ONC-15,2026-03-11T08:00:00Z,plt,90,10^9/L,150,450,CITY,A2,final
"""
EVENTS = """patient_id,kind,start,end,label,details
ONC-15,chemotherapy,2026-03-02T10:00:00Z,,"Docetaxel, cycle 1",docetaxel every 21 days
"""


def test_the_worklist_and_patient_list_show_readiness_only_from_the_window(store, tmp_path) -> None:
    """Status computed on D10 after the nadir count (ANC 0.9, platelets 90): read on D10 the list shows
    the expected dose and no verdict; read on D20 with no new count it asks for the pre-cycle count, never
    the nadir's 'NOT ready'."""
    from db.accounts import SYSTEM
    from db.queries import find_patient, patient_list
    from db.status import refresh_patient_status
    from services.imports import import_path
    from services.patients import patient_cycles
    from tests.test_import import BY_TEST
    from ui.worklist import cycle_text

    for name, text in (("results.csv", RESULTS), ("events.csv", EVENTS)):
        (tmp_path / name).write_text(text)
        import_path(store, tmp_path / name, options=BY_TEST)
    with store.begin() as session:
        key = find_patient(session, "ONC-15", viewer=SYSTEM).id
        refresh_patient_status(session, [key], now=datetime(2026, 3, 11, 12, tzinfo=UTC), timezone="UTC")
    with store() as session:
        mid = patient_list(session, viewer=SYSTEM, timezone="UTC", today=date(2026, 3, 11)).iloc[0]
        late = patient_list(session, viewer=SYSTEM, timezone="UTC", today=date(2026, 3, 21)).iloc[0]
    assert mid["readiness"] == "Next dose expected on D22 (2026-03-23); readiness judged from D19"
    assert pd.isna(mid["ready_now"])
    assert pd.isna(late["ready_now"]) and late["readiness"] == (
        "Next dose expected on D22 (2026-03-23): readiness unknown: no ANC or platelets since D19 (a "
        "pre-cycle CBC is needed)"
    )
    shown = cycle_text(pd.DataFrame([mid, late]), "UTC").tolist()
    assert shown == ["C1D10 · next dose D22 (2026-03-23)", "C1D20 · readiness unknown"]
    # The cycles view (the Treatment cycles page and `cycles`) says the same on the day it is read.
    cycles_now = patient_cycles(
        store, viewer=SYSTEM, patient_key=key, timezone="UTC", now=datetime(2026, 3, 11, 15, tzinfo=UTC)
    ).now
    assert cycles_now == "C1D10. Next dose expected on D22 (2026-03-23); readiness judged from D19"


def test_a_next_dose_recorded_ahead_is_the_expected_day() -> None:
    """Cycle 2 booked for D25 (a 24-day gap, e.g. around a holiday): on D20 readiness waits for D22."""
    now = readiness_now(_counts(19, 2.0), _chemo(0, 24), as_of=_at(19.5))
    assert (now.loc[0, "next_dose_day"], now.loc[0, "readiness_from_day"]) == (24, 21)
    assert now.loc[0, "readiness"] == "Next dose expected on D25 (2026-03-26); readiness judged from D22"


def test_an_expected_day_from_the_site_default_or_previous_cycles_says_so() -> None:
    """No length in the regimen: D29 rests on the site's 28 days, not on a plan; after two 21-day cycles
    it rests on their median."""
    first = readiness_now(_counts(3, 2.0), _chemo(0, regimen=""), as_of=_at(9))
    assert first.loc[0, "readiness"] == (
        "Next dose expected on D29 (2026-03-30; no length in the regimen: site default 28 days); readiness "
        "judged from D26"
    )
    third = readiness_now(_counts(45, 2.0), _chemo(0, 21, 42, regimen=""), as_of=_at(47))
    assert third.loc[0, "readiness"] == (
        "Next dose expected on D22 (2026-05-04; from the previous cycles' median, 21 days); readiness "
        "judged from D19"
    )
    # The materialised status keeps the note with the verdict, and the list says the same when read.
    stored = first.assign(
        verdict=stored_readiness(first["planned_note"], first["verdict"]), judged_day=first["cycle_day"]
    ).drop(columns="planned_note")
    assert readiness_as_of(stored, timezone="UTC").loc[0, "readiness"] == first.loc[0, "readiness"]


def test_a_late_dose_keeps_the_patient_in_the_cycle_with_readiness_now() -> None:
    """Docetaxel q21d on 26 October (next dose expected 16 November, D22), not given; ANC 1.1, 1.3 and
    1.4 since. On D38 (2 December) the patient is still in cycle 1 and not ready; two cycle lengths past
    the expected day (28 December) the patient is no longer shown as in a cycle."""
    start = pd.Timestamp("2026-10-26 10:00", tz="UTC")
    events = pd.DataFrame(
        {
            "patient_key": 1,
            "kind": ["chemotherapy"],
            "start_at": [start],
            "details": "docetaxel 75 mg/m2 q21d",
        }
    )
    drawn = {21: 1.1, 28: 1.3, 35: 1.4}
    results = pd.concat(
        [
            pd.DataFrame(
                {"patient_key": 1, "analyte": ["anc", "plt"], "value": [anc, 180.0]}
                | {"collected_at": start + pd.Timedelta(days=day, hours=-2)}
            )
            for day, anc in drawn.items()
        ]
    )
    now = readiness_now(results, events, as_of=start + pd.Timedelta(days=37))
    assert (now.loc[0, "cycle"], now.loc[0, "cycle_day"], now.loc[0, "ready_now"]) == (1, 37, False)
    assert now.loc[0, "readiness"] == (
        "Next dose was expected on D22 (2026-11-16); readiness now: not ready: ANC 1.4, platelets 180 "
        "against ANC >= 1.5 and platelets >= 100"
    )
    assert len(readiness_now(results, events, as_of=start + pd.Timedelta(days=62))) == 1
    assert readiness_now(results, events, as_of=start + pd.Timedelta(days=63)).empty
    # A shorter overdue period is a site setting: one cycle length, to D43.
    one = CycleRules(overdue_cycle_lengths=1)
    assert readiness_now(results, events, as_of=start + pd.Timedelta(days=42), rules=one).empty


def test_the_last_cycle_s_recovery_counts_the_counts_of_its_overdue_period() -> None:
    """Nadir ANC 0.4 on D11, 1.4 on D29 and 1.81 on D36 with the next dose still not given: recovered by
    D36, not "not recovered by the last count" (the counts after D28 were cut off)."""
    anc = pd.DataFrame(
        {"patient_key": 1, "analyte": "anc", "value": [0.4, 1.4, 1.81], "lln": 1.5}
        | {"collected_at": [_at(10), _at(28), _at(35)]}
    )
    cycle = treatment_cycles(anc, _chemo(0)).iloc[0]
    assert (cycle["recovery_after_day"], cycle["recovery_day"]) == (28, 35)
    assert cycle_table(treatment_cycles(anc, _chemo(0))).loc[0, "recovered"] == "after D29, by D36"
