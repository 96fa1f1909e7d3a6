"""CBCs due: nadir windows in the site's zone, their lead time, windows missed or cut by the next dose, the
regimen's own window, and grade 3-4 without a recent count; through the real importer, on both stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from db.accounts import SYSTEM
from services.due import cbcs_due
from services.imports import ImportOptions, import_path
from services.rules import set_setting
from services.worklist import alerts, patient_list

# Paris is UTC+1 in December: a window's days start at 23:00 UTC the evening before.
ZONE = "Europe/Paris"
HEADER = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
EVENTS = "patient_id,kind,start,end,label,details\n"
# Cycle 1 given at 10:00 Paris on 1 December: D1 is 1 December, D8 8 December, D15 15 December.
DOSE = "2026-12-01T10:00:00+01:00"
OPENS = pd.Timestamp("2026-12-08T00:00:00+01:00")  # D8 starts
CLOSES = pd.Timestamp("2026-12-16T00:00:00+01:00")  # D15 ends


def _import(store, tmp_path: Path, results: str, events: str = "") -> None:
    # These counts of December 2026 may be later than the machine's clock: imported at that clock as they
    # always were, without the refusal of times in the future (tested in tests/test_import.py).
    options = ImportOptions(imported_by="test", site_timezone=ZONE, future_tolerance=timedelta(days=3660))
    for name, rows, header in (("results.csv", results, HEADER), ("events.csv", events, EVENTS)):
        if rows:
            (tmp_path / name).write_text(header + rows)
            import_path(store, tmp_path / name, options=options)


def _counts(patient: str, *times: str, anc: float = 2.5) -> str:
    """A WBC and ANC panel at each time (ISO with an offset)."""
    return "".join(
        f"{patient},{at},wbc,4.5,10^9/L,4.0,11.0,CITY,{patient}-{n},final\n"
        f"{patient},{at},anc,{anc},10^9/L,1.8,7.7,CITY,{patient}-{n},final\n"
        for n, at in enumerate(times)
    )


def _dose(patient: str, at: str = DOSE, details: str = "docetaxel q21d", cycle: int = 1) -> str:
    return f'{patient},chemotherapy,{at},,"Docetaxel, cycle {cycle}",{details}\n'


def _due(store, now: pd.Timestamp, days: int = 3) -> pd.DataFrame:
    return cbcs_due(store, viewer=SYSTEM, timezone=ZONE, now=now.to_pydatetime(), days=days)


def _gaps(store, now: pd.Timestamp, since: timedelta = timedelta(hours=24)) -> dict[str, list[str]]:
    found = alerts(store, viewer=SYSTEM, since=(now - since).to_pydatetime(), timezone=ZONE, now=now)
    return dict(zip(found["patient_id"], found["monitoring_gap"], strict=True))


@pytest.mark.parametrize(("hours", "raised"), [(47, True), (49, False)])
def test_a_monitoring_gap_is_raised_48_hours_before_a_window_with_no_count_opens(
    store, tmp_path: Path, hours: int, raised: bool
) -> None:
    _import(store, tmp_path, _counts("ONC-1", "2026-12-01T08:00:00+01:00"), _dose("ONC-1"))
    now = OPENS - pd.Timedelta(hours=hours)
    sentence = "CBC due: C1 nadir window D8-D15 opens 2026-12-08; no count since 2026-12-01"
    assert _gaps(store, now).get("ONC-1") == ([sentence] if raised else None)
    listed = patient_list(store, viewer=SYSTEM, timezone=ZONE, now=now.to_pydatetime())
    row = listed.set_index("patient_id").loc["ONC-1"]
    assert (bool(row["cbc_due"]), row["cbc_due_reason"]) == ((True, sentence) if raised else (False, ""))


@pytest.mark.parametrize(
    ("drawn", "sampled"),
    [
        ("2026-12-07T23:30:00+01:00", False),  # 23:30 on D7, the day before the window: not in it
        ("2026-12-08T00:10:00+01:00", True),  # D8, first minutes (23:10 UTC on D7)
        ("2026-12-15T23:30:00+01:00", True),  # D15, its last day
        ("2026-12-16T00:10:00+01:00", False),  # D16, the day after
    ],
)
def test_window_days_are_calendar_days_in_the_site_zone_at_both_edges(
    store, tmp_path: Path, drawn: str, sampled: bool
) -> None:
    _import(store, tmp_path, _counts("ONC-1", "2026-12-01T08:00:00+01:00", drawn), _dose("ONC-1"))
    after = _due(store, pd.Timestamp("2026-12-16T12:00:00+01:00"))
    assert after["kind"].tolist() == ([] if sampled else ["missed"])


def test_an_open_window_without_a_count_is_due_until_its_last_day_ends(store, tmp_path: Path) -> None:
    _import(store, tmp_path, _counts("ONC-1", "2026-12-07T23:30:00+01:00"), _dose("ONC-1"))
    due = _due(store, pd.Timestamp("2026-12-15T23:59:00+01:00")).iloc[0]
    assert (due["kind"], due["cycle"], due["window"]) == ("due", 1, "D8-D15")
    assert (due["window_start"], due["window_end"]) == ("2026-12-08", "2026-12-15")
    assert due["reason"] == "CBC due: C1 nadir window D8-D15 open until 2026-12-15; no count since 2026-12-07"
    assert _due(store, CLOSES)["kind"].tolist() == ["missed"]


def test_a_window_that_closed_without_a_count_is_missed_and_alerted_when_it_closed(
    store, tmp_path: Path
) -> None:
    _import(store, tmp_path, _counts("ONC-1", "2026-12-01T08:00:00+01:00"), _dose("ONC-1"))
    now = CLOSES + pd.Timedelta(hours=10)
    missed = _due(store, now)
    assert missed[
        ["patient_id", "kind", "cycle", "window", "window_start", "window_end"]
    ].values.tolist() == [["ONC-1", "missed", 1, "D8-D15", "2026-12-08", "2026-12-15"]]
    sentence = (
        "nadir window missed: C1 D8-D15 (2026-12-08 to 2026-12-15) closed without a count; "
        "no count since 2026-12-01"
    )
    assert missed["reason"].tolist() == [sentence]
    assert missed["last_collected_at"].tolist() == [pd.Timestamp("2026-12-01T07:00:00Z")]
    # Raised when the window closed: in the alerts since the day before, not in those since after it.
    assert _gaps(store, now) == {"ONC-1": [sentence]}
    assert _gaps(store, now, since=timedelta(hours=5)) == {}


def test_a_window_is_cut_at_the_next_dose_and_that_days_count_does_not_sample_it(
    store, tmp_path: Path
) -> None:
    # The next dose on 11 December (D11): cycle 1's window is D8-D10; the pre-dose count that morning is
    # cycle 2's D1.
    counts = _counts("ONC-1", "2026-12-01T08:00:00+01:00", "2026-12-11T08:00:00+01:00")
    doses = _dose("ONC-1") + _dose("ONC-1", "2026-12-11T10:00:00+01:00", cycle=2)
    _import(store, tmp_path, counts, doses)
    found = _due(store, pd.Timestamp("2026-12-12T12:00:00+01:00"))
    assert found[["kind", "cycle", "window", "window_start", "window_end"]].values.tolist() == [
        ["missed", 1, "D8-D10", "2026-12-08", "2026-12-10"]
    ]
    # Cycle 2's window (D8 = 18 December) is listed once its first day is 3 days away or less.
    later = _due(store, pd.Timestamp("2026-12-15T12:00:00+01:00"))
    assert later[["kind", "cycle", "window", "window_start"]].values.tolist() == [
        ["missed", 1, "D8-D10", "2026-12-08"],
        ["due", 2, "D8-D15", "2026-12-18"],
    ]


def test_a_regimens_own_nadir_window_from_the_settings(store, tmp_path: Path) -> None:
    _import(store, tmp_path, _counts("ONC-1", "2026-12-09T08:00:00+01:00"), _dose("ONC-1", details="AC"))
    now = pd.Timestamp("2026-12-09T12:00:00+01:00")
    assert _due(store, now).empty  # the default window D8-D15 was sampled on D9
    set_setting(
        store, "cycles.regimens.ac.nadir_window_days", [10, 14], viewer=SYSTEM, now=now, timezone=ZONE
    )
    due = _due(store, now)
    # Days 10 to 14 after the dose: D11 to D15, 11 to 15 December; the count on D9 is before it.
    assert due[["kind", "window", "window_start", "window_end"]].values.tolist() == [
        ["due", "D11-D15", "2026-12-11", "2026-12-15"]
    ]


@pytest.mark.parametrize(("days", "due"), [(7, False), (8, True)])
def test_grade_3_outside_chemotherapy_is_due_after_more_than_7_days_without_a_count(
    store, tmp_path: Path, days: int, due: bool
) -> None:
    # ANC 0.8 is CTCAE grade 3 (< 1.0); drawn at 23:30 Paris, so the calendar day counts, not 24-hour days.
    _import(store, tmp_path, _counts("HEM-1", "2026-12-01T23:30:00+01:00", anc=0.8))
    now = pd.Timestamp(f"2026-12-{1 + days:02d}T00:30:00+01:00")
    found = _due(store, now)
    if not due:
        assert found.empty
        return
    assert found[["patient_id", "kind", "reason"]].values.tolist() == [
        ["HEM-1", "severe", "grade 3 neutropenia, last count 8 days ago"]
    ]
    listed = patient_list(store, viewer=SYSTEM, timezone=ZONE, now=now.to_pydatetime())
    assert listed.set_index("patient_id").loc["HEM-1", "cbc_due_reason"] == (
        "grade 3 neutropenia, last count 8 days ago"
    )


def test_a_temperature_never_samples_a_nadir_window(store, tmp_path: Path) -> None:
    temperature = "ONC-1,2026-12-09T08:00:00+01:00,temp,37.2,Cel,,,CITY,T1,final\n"
    _import(store, tmp_path, _counts("ONC-1", "2026-12-01T08:00:00+01:00") + temperature, _dose("ONC-1"))
    found = _due(store, pd.Timestamp("2026-12-10T12:00:00+01:00"))
    assert found["kind"].tolist() == ["due"]


def test_the_settings_list_the_lead_time_and_the_grade_3_interval_with_their_source(store) -> None:
    from monitor.analysis.rules import setting_rows
    from services.rules import site_rules

    rows = {row["key"]: row for row in setting_rows(site_rules(store))}
    assert rows["cycles.due_lead_hours"]["value"] == 48
    assert rows["cycles.due_severe_days"]["value"] == 7
    for key in ("cycles.due_lead_hours", "cycles.due_severe_days"):
        assert rows[key]["source"].startswith(
            "no source: site decision; see docs/clinical-basis.md, CBCs due"
        )


def test_db_upgrade_fills_the_nadir_windows_of_a_store_from_before_them(
    store, engine, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from db.migrate import downgrade, upgrade

    _import(store, tmp_path, _counts("ONC-1", "2026-12-01T08:00:00+01:00"), _dose("ONC-1"))
    downgrade(engine, "0017")  # as if the store came from before CBCs due
    upgrade(engine, timezone=ZONE)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT nadir_cycle, nadir_window, nadir_sampled FROM patient_status")
        ).one()
    assert tuple(row) == (1, "D8-D15", False)
    assert _due(store, pd.Timestamp("2026-12-09T12:00:00+01:00"))["kind"].tolist() == ["due"]


def _chemo(*starts: str, details: str = "") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_key": 1,
            "kind": "chemotherapy",
            "details": details,
            "start_at": pd.to_datetime(list(starts), utc=True),
        }
    )


def test_a_window_across_a_clock_change_keeps_whole_local_days_and_the_inputs_unchanged() -> None:
    from monitor.analysis.cycles import CycleRules
    from monitor.analysis.due import nadir_windows

    # London's clocks go forward on 29 March 2026: D8 is 27 March (GMT), D15 3 April (BST).
    events = _chemo("2026-03-20T12:00:00Z")
    counts = pd.DataFrame(
        {"patient_key": [1], "analyte": ["anc"], "collected_at": pd.to_datetime(["2026-04-03T22:30:00Z"])}
    )
    before = (events.copy(), counts.copy())
    found = nadir_windows(events, counts, rules=CycleRules(), timezone="Europe/London").iloc[0]
    assert (found["opens_at"], found["closes_at"]) == (
        pd.Timestamp("2026-03-27T00:00:00Z"),
        pd.Timestamp("2026-04-03T23:00:00Z"),  # midnight BST
    )
    assert found["sampled"]  # 22:30 UTC on 3 April is 23:30 BST: D15's last hour
    pd.testing.assert_frame_equal(events, before[0])
    pd.testing.assert_frame_equal(counts, before[1])


def test_a_dose_on_a_day_the_regimen_names_does_not_cut_the_window() -> None:
    from monitor.analysis.cycles import CycleRules
    from monitor.analysis.due import nadir_windows

    events = _chemo(
        "2026-10-01T09:00:00Z", "2026-10-08T09:00:00Z", details="gemcitabine D1 and D8 every 21 days"
    )
    found = nadir_windows(
        events,
        events.iloc[:0].assign(analyte="", collected_at=events["start_at"].iloc[:0]),
        rules=CycleRules(),
        timezone="UTC",
    )
    assert found[["cycle", "window", "cut"]].values.tolist() == [[1, "D8-D15", False]]


def test_grade_4_without_a_recent_count_comes_first_then_missed_then_due_then_grade_3(
    store, db_url, tmp_path: Path, monkeypatch
) -> None:
    """The service and ``python -m monitor due`` give the same order (docs/clinical-basis.md, CBCs due)."""
    import json

    import time_machine

    from tests.test_golden import run_monitor

    results = (
        _counts("ONC-M", "2026-12-01T08:00:00+01:00")  # pre-dose; its window D8-D15 closed unsampled
        + _counts("ONC-D", "2026-12-14T08:00:00+01:00")  # pre-dose; its window opens on 21 December
        + _counts("HEM-3", "2026-12-05T08:00:00+01:00", anc=0.8)  # grade 3, 15 days ago
        + _counts("HEM-4", "2026-12-10T08:00:00+01:00", anc=0.3)  # grade 4, 10 days ago
    )
    doses = _dose("ONC-M") + _dose("ONC-D", at="2026-12-14T10:00:00+01:00")
    _import(store, tmp_path, results, doses)
    now = pd.Timestamp("2026-12-20T12:00:00+01:00")
    expected = [("HEM-4", "severe"), ("ONC-M", "missed"), ("ONC-D", "due"), ("HEM-3", "severe")]
    found = _due(store, now)
    assert list(zip(found["patient_id"], found["kind"], strict=True)) == expected
    assert found["reason"].iloc[0] == "grade 4 neutropenia, last count 10 days ago"
    monkeypatch.setenv("MONITOR_TIMEZONE", ZONE)
    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    with time_machine.travel(now.to_pydatetime(), tick=False):
        answer = run_monitor("due", "--format", "json", database=db_url)
    rows = json.loads(answer.split("--- stdout\n", 1)[1].split("--- stderr", 1)[0])
    assert [(r["patient_id"], r["kind"]) for r in rows] == expected
