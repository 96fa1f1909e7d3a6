"""Febrile neutropenia for every patient: IDSA 2010 and CTCAE v5.0 at their boundaries, the ANC
in force, episodes to recovery, and the flag through the importer, the worklist, alerts and the cycle table
on both stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import select

from db.models import Patient, StatusChange
from db.session import make_engine, make_session_factory
from db.store import open_store
from monitor.analysis.febrile import (
    FebrileRules,
    febrile_episodes,
    febrile_now,
    fever_pairs,
    on_day,
    unjudged_now,
)
from monitor.analysis.flags import FLAGS
from monitor.analysis.rules import SiteRules, set_value, setting_rows
from monitor.analysis.triage import headline
from services.accounts import SYSTEM, Viewer
from services.patient_actions import acknowledge
from services.worklist import worklist
from tests.test_cli import monitor

T0 = pd.Timestamp("2026-03-10 12:00", tz="UTC")


def results(*rows: tuple[str, float, float], patient: int = 1, comparator: str | None = None) -> pd.DataFrame:
    """(analyte, value, minutes after T0) rows as a long results frame."""
    return pd.DataFrame(
        {
            "patient_key": patient,
            "analyte": [analyte for analyte, _, _ in rows],
            "value": [value for _, value, _ in rows],
            "comparator": [comparator if analyte == "anc" else None for analyte, _, _ in rows],
            "collected_at": [T0 + pd.Timedelta(minutes=minutes) for _, _, minutes in rows],
        }
    )


def met(frame: pd.DataFrame) -> list[tuple[bool, bool]]:
    return [(bool(i), bool(c)) for i, c in zip(frame["idsa"], frame["ctcae"], strict=True)]


# --- The definitions at their boundaries ---


@pytest.mark.parametrize(
    ("celsius", "expected"),
    [(38.2, (False, False)), (38.3, (True, False)), (38.4, (True, True)), (38.33, (True, False))],
)
def test_a_single_temperature_meets_idsa_at_38_3_and_ctcae_only_above_it(celsius: float, expected) -> None:
    pairs = fever_pairs(results(("anc", 0.4, 0), ("temp", celsius, 30)))
    assert met(pairs) == [expected]


@pytest.mark.parametrize(
    ("anc", "expected"),
    [(0.49, (True, True)), (0.5, (False, True)), (0.99, (False, True)), (1.0, (False, False))],
)
def test_idsa_needs_anc_below_0_5_and_ctcae_below_1_0(anc: float, expected) -> None:
    assert met(fever_pairs(results(("anc", anc, 0), ("temp", 38.6, 30)))) == [expected]


def test_a_censored_anc_is_below_when_its_bound_says_so() -> None:
    assert met(fever_pairs(results(("anc", 0.1, 0), ("temp", 38.6, 30), comparator="<"))) == [(True, True)]
    assert met(fever_pairs(results(("anc", 0.4, 0), ("temp", 38.6, 30), comparator=">"))) == [(False, False)]


@pytest.mark.parametrize(
    ("minutes", "expected"),
    # IDSA "over an hour": readings at least 60 minutes apart; CTCAE "more than one hour": over 60.
    [(59, (False, False)), (60, (True, False)), (61, (True, True))],
)
def test_a_sustained_fever_of_38_0_lasts_60_minutes_for_idsa_and_more_for_ctcae(
    minutes: int, expected
) -> None:
    pairs = fever_pairs(results(("anc", 0.4, 0), ("temp", 38.0, 0), ("temp", 38.1, minutes)))
    assert met(pairs) == [(False, False), expected]


def test_a_reading_below_38_0_in_between_breaks_a_sustained_fever() -> None:
    pairs = fever_pairs(results(("anc", 0.4, 0), ("temp", 38.0, 0), ("temp", 37.9, 30), ("temp", 38.1, 90)))
    assert met(pairs) == [(False, False), (False, False)]
    found = febrile_episodes(results(("anc", 0.4, 0), ("temp", 38.0, 0), ("temp", 38.1, 61)))
    assert on_day(found["sentence"], "2026-03-10")[0] == (
        "ANC 0.40 at 12:00 and temperature 38.0 °C at 12:00 to 38.1 °C at 13:01 (IDSA 2010 and CTCAE v5.0)"
    )


@pytest.mark.parametrize(
    ("minutes", "paired"),
    [(-24 * 60, True), (-24 * 60 - 1, False), (12 * 60, True), (12 * 60 + 1, False)],
)
def test_the_anc_in_force_is_drawn_24_hours_before_to_12_hours_after(minutes: int, paired: bool) -> None:
    pairs = fever_pairs(results(("anc", 0.4, minutes), ("temp", 38.6, 0)))
    assert pairs["anc_at"].notna().tolist() == [paired]
    assert met(pairs) == [(paired, paired)] and pairs["unknown"].tolist() == [not paired]


def test_the_anc_in_force_is_the_lower_of_the_one_before_and_the_one_after() -> None:
    # A higher count after the fever never replaces the one in force at it.
    pairs = fever_pairs(results(("anc", 0.3, -120), ("anc", 0.7, 60), ("temp", 38.6, 0)))
    assert pairs["anc"].tolist() == [0.3] and met(pairs) == [(True, True)]
    # A lower count after it is the one in force (the fever came as the count fell).
    lower = fever_pairs(results(("anc", 1.2, -120), ("anc", 0.4, 60), ("temp", 38.6, 0)))
    assert lower["anc"].tolist() == [0.4] and met(lower) == [(True, True)]
    # Of several before it, the latest; of several after it, the first.
    several = fever_pairs(
        results(("anc", 0.2, -300), ("anc", 0.8, -60), ("anc", 0.9, 60), ("anc", 0.1, 120), ("temp", 38.6, 0))
    )
    assert several["anc"].tolist() == [0.8]
    # Equal counts: the one before.
    assert fever_pairs(results(("anc", 0.4, -60), ("anc", 0.4, 60), ("temp", 38.6, 0)))[
        "anc_at"
    ].tolist() == [T0 - pd.Timedelta(minutes=60)]


def test_a_higher_anc_after_the_fever_keeps_the_episode_until_the_recovery_rule_ends_it() -> None:
    # The reviewer's case: ANC 0.3 at 08:00, 38.9 °C at 10:00, ANC 1.2 at 21:00.
    rows = results(("anc", 0.3, -4 * 60), ("temp", 38.9, -2 * 60), ("anc", 1.2, 9 * 60))
    fever = T0 - pd.Timedelta(hours=2)
    found = febrile_episodes(rows, as_of=T0 + pd.Timedelta(hours=10))
    assert found["ongoing"].tolist() == [True]
    assert on_day(found["sentence"], "2026-03-10").tolist() == [
        "ANC 0.30 at 08:00 and temperature 38.9 °C at 10:00 (IDSA 2010 and CTCAE v5.0)"
    ]
    # It ends 24 h after the fever (ANC >= 0.5 and afebrile for 24 h), not when the higher count came.
    assert found["until"].tolist() == [fever + pd.Timedelta(hours=24)]
    ended = febrile_episodes(rows, as_of=fever + pd.Timedelta(hours=24))
    assert ended["end"].tolist() == [fever + pd.Timedelta(hours=24)]
    # ANC 0.4 at 08:00, 38.4 at 10:00, ANC 0.6 at 20:00: paired with 0.40, IDSA kept.
    low = results(("anc", 0.4, -4 * 60), ("temp", 38.4, -2 * 60), ("anc", 0.6, 8 * 60))
    assert on_day(febrile_episodes(low)["sentence"], "2026-03-10").tolist() == [
        "ANC 0.40 at 08:00 and temperature 38.4 °C at 10:00 (IDSA 2010 and CTCAE v5.0)"
    ]


def test_the_falling_rule_reads_the_paired_anc_and_the_one_before_it() -> None:
    # 1.2 at 02:00, 0.8 at 12:00, fever 38.4 at 12:10, then 1.5 at 20:00: 0.80 is in force, falling.
    rows = results(("anc", 1.2, -600), ("anc", 0.8, 0), ("temp", 38.4, 10), ("anc", 1.5, 8 * 60))
    pairs = fever_pairs(rows)
    assert pairs["anc"].tolist() == [0.8] and pairs["falling"].tolist() == [True]
    assert met(pairs) == [(True, True)]


def test_an_anc_below_1_0_falling_to_below_0_5_within_48_hours_meets_idsa() -> None:
    # 1.2 then 0.8 ten hours later: the line through them is below 0.5 well within 48 h.
    falling = fever_pairs(results(("anc", 1.2, -600), ("anc", 0.8, 0), ("temp", 38.4, 10)))
    assert met(falling) == [(True, True)] and falling["falling"].tolist() == [True]
    sentence = febrile_episodes(results(("anc", 1.2, -600), ("anc", 0.8, 0), ("temp", 38.4, 10)))["sentence"]
    assert on_day(sentence, "2026-03-10")[0] == (
        "ANC 0.80 at 12:00, falling from 1.20 at 02:00 and temperature 38.4 °C at 12:10"
        " (IDSA 2010 and CTCAE v5.0)"
    )
    # ANC 0.5 exactly is not below 0.5: IDSA only when falling (1.0 then 0.5 ten hours later).
    at_half = fever_pairs(results(("anc", 1.0, -600), ("anc", 0.5, 0), ("temp", 38.4, 10)))
    assert met(at_half) == [(True, True)]
    assert met(fever_pairs(results(("anc", 0.5, 0), ("temp", 38.4, 10)))) == [(False, True)]
    # 0.85 then 0.8 in 24 h: at 48 h the line is at 0.7, not below 0.5.
    slow = fever_pairs(results(("anc", 0.85, -1440), ("anc", 0.8, 0), ("temp", 38.4, 10)))
    assert met(slow) == [(False, True)]
    # The earlier count more than 48 h before: no line.
    old = fever_pairs(results(("anc", 3.0, -48 * 60 - 1), ("anc", 0.8, 0), ("temp", 38.4, 10)))
    assert met(old) == [(False, True)]


def test_a_free_text_fever_is_set_aside_only_by_a_temperature_measured_within_an_hour() -> None:
    fever = pd.DataFrame(
        {"patient_key": [1], "kind": ["fever"], "start_at": [T0], "label": ["Fever 38.9 C"], "details": [""]}
    )
    alone = febrile_episodes(results(("anc", 0.3, -60)), fever)
    assert on_day(alone["sentence"], "2026-03-10").tolist() == [
        "ANC 0.30 at 11:00 and fever 38.9 °C at 12:00 (free text) (IDSA 2010 and CTCAE v5.0)"
    ]
    assert alone["free_text"].tolist() == [True]
    # Measured within an hour, before or after: the same reading written twice; the measured one wins.
    for minutes in (-60, 60):
        measured = results(("anc", 0.3, -60), ("temp", 37.2, minutes))
        assert febrile_episodes(measured, fever).empty, minutes
    # A normal temperature measured later (or earlier) than that never sets the written fever aside.
    for minutes in (-61, 61, 12 * 60):
        later = results(("anc", 0.3, -60), ("temp", 37.2, minutes))
        assert len(febrile_episodes(later, fever)) == 1, minutes
    # The site may widen the window.
    wide = FebrileRules.from_mapping({"free_text_window_hours": 12})
    assert febrile_episodes(results(("anc", 0.3, -60), ("temp", 37.2, 12 * 60)), fever, rules=wide).empty


@pytest.mark.parametrize(
    ("written", "celsius", "expected"),
    [
        ("Fever 102 F", 38.9, (True, True)),
        ("fever 101.3°F at home", 38.5, (True, True)),
        ("Fever 101.0 °F", 38.3, (True, False)),  # 38.33 °C compares as 38.3: IDSA's >= 38.3 only
        ("Fever 100.9 F", 38.3, (True, False)),  # 38.28 °C rounds to 38.3
        ("Fever 38,6 C", 38.6, (True, True)),
    ],
)
def test_a_free_text_fever_in_fahrenheit_is_converted_as_the_importer_converts_it(
    written: str, celsius: float, expected
) -> None:
    fever = pd.DataFrame(
        {"patient_key": [1], "kind": ["fever"], "start_at": [T0], "label": [written], "details": [""]}
    )
    pairs = fever_pairs(results(("anc", 0.3, -60)), fever)
    assert pairs["celsius"].tolist() == [celsius] and met(pairs) == [expected]


def test_a_written_temperature_out_of_the_plausible_range_is_not_read() -> None:
    # "39 F" is 3.9 °C: not a temperature; the fever is written without one and cannot be judged.
    fever = pd.DataFrame(
        {"patient_key": [1], "kind": ["fever"], "start_at": [T0], "label": ["Fever 39 F"], "details": [""]}
    )
    pairs = fever_pairs(results(("anc", 0.3, -60)), fever)
    assert pairs["celsius"].isna().tolist() == [True] and pairs["unknown"].tolist() == [True]


def test_an_episode_ends_with_anc_0_5_or_more_and_24_hours_without_fever() -> None:
    # The fever at T0 with ANC 0.4; ANC 0.6 thirteen hours later (after the fever's pairing window).
    rows = results(("anc", 0.4, 0), ("temp", 38.6, 0), ("anc", 0.6, 13 * 60))
    almost = febrile_episodes(rows, as_of=T0 + pd.Timedelta(hours=23, minutes=59))
    assert almost["ongoing"].tolist() == [True] and febrile_now(almost)["current"].tolist() == [True]
    ended = febrile_episodes(rows, as_of=T0 + pd.Timedelta(hours=24))
    assert ended["ongoing"].tolist() == [False] and ended["end"].tolist() == [T0 + pd.Timedelta(hours=24)]
    now = febrile_now(ended)
    assert now["current"].tolist() == [False] and now["past"].tolist() == [1]
    # An ANC still below 0.5 does not end it, however long without fever.
    still = results(("anc", 0.4, 0), ("temp", 38.6, 0), ("anc", 0.45, 13 * 60))
    assert febrile_episodes(still, as_of=T0 + pd.Timedelta(days=5))["ongoing"].tolist() == [True]


def test_a_fever_after_recovery_opens_a_new_episode_and_one_before_it_does_not() -> None:
    rows = results(
        ("anc", 0.4, 0),
        ("temp", 38.6, 0),
        ("temp", 38.5, 20 * 60),  # within the episode: delays its end
        ("anc", 0.6, 21 * 60),
        ("anc", 0.3, 50 * 60),
        ("temp", 38.7, 50 * 60),
    )
    found = febrile_episodes(rows)
    assert found["episode"].tolist() == [1, 2]
    assert found["start"].tolist() == [T0, T0 + pd.Timedelta(hours=50)]
    assert found["end"].iloc[0] == T0 + pd.Timedelta(hours=44)


def test_the_settings_change_the_window_and_the_episode_end() -> None:
    rules = FebrileRules.from_mapping({"anc_before_hours": 6, "afebrile_hours": 48})
    assert fever_pairs(results(("anc", 0.4, -7 * 60), ("temp", 38.6, 0)), rules=rules)["anc"].isna().all()
    rows = results(("anc", 0.4, 0), ("temp", 38.6, 0), ("anc", 0.6, 13 * 60))
    assert febrile_episodes(rows, rules=rules, as_of=T0 + pd.Timedelta(hours=47))["ongoing"].tolist() == [
        True
    ]
    with pytest.raises(ValueError, match="unknown febrile settings"):
        FebrileRules.from_mapping({"idsa_single": 38.0})


def test_the_febrile_settings_are_listed_with_their_sources() -> None:
    rows = {
        row["key"]: row for row in setting_rows(SiteRules.from_mapping({"febrile": {"afebrile_hours": 48}}))
    }
    for key in (
        "anc_before_hours",
        "anc_after_hours",
        "sustained_minutes",
        "falling_hours",
        "end_anc",
        "afebrile_hours",
        "free_text_window_hours",
        "unjudged_hours",
    ):
        assert rows[f"febrile.{key}"]["source"], key
    assert rows["febrile.anc_before_hours"]["source"].startswith("no source: site default")
    assert rows["febrile.afebrile_hours"]["value"] == 48 and rows["febrile.afebrile_hours"]["changed"]
    assert SiteRules.from_mapping(set_value({}, "febrile.anc_after_hours", 6)).febrile.anc_after_hours == 6
    with pytest.raises(ValueError, match="positive"):
        SiteRules.from_mapping({"febrile": {"afebrile_hours": 0}})


def test_the_functions_leave_their_inputs_alone() -> None:
    rows = results(("anc", 0.4, 0), ("temp", 38.6, 0))
    before = rows.copy()
    febrile_episodes(rows, as_of=T0 + pd.Timedelta(hours=1))
    pd.testing.assert_frame_equal(rows, before)


def test_the_flag_is_first_in_the_flags_order() -> None:
    assert FLAGS[0] == "febrile_neutropenia"


# --- Through the importer, on both stores ---

HEADER = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _told(moment: datetime, zone: str) -> str:
    """A time as the sentences tell it, read today in ``zone``: the clock alone today, dated otherwise."""
    local = moment.astimezone(ZoneInfo(zone))
    today = datetime.now(ZoneInfo(zone)).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


def _import(url: str, folder: Path, name: str, rows: list[str], *options: str, zone: str = "UTC") -> None:
    (folder / name).write_text((HEADER if not options else "") + "\n".join(rows) + "\n")
    done = monitor("import", str(folder / name), *options, url=url, zone=zone)
    assert done.returncode == 0, done.stderr


def _patients(url: str, zone: str = "UTC") -> dict[str, dict]:
    listed = monitor("patients", "--format", "json", url=url, zone=zone)
    assert listed.returncode == 0, listed.stderr
    return {p["patient_id"]: p for p in json.loads(listed.stdout)}


def test_fever_with_neutropenia_outside_chemotherapy_is_flagged_first_ranked_first_and_alerted(
    upgraded: str, tmp_path: Path
) -> None:
    # FN: no events at all (drug-induced agranulocytosis, say): ANC 0.4, then 101.0 °F = 38.33 -> 38.3 °C,
    # IDSA's >= 38.3 but not CTCAE's > 38.3. G4: ANC 0.3 with 100.4 °F (38.0 °C) once: no fever.
    zone = "Europe/London"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    drawn, hot = now - timedelta(hours=3), now - timedelta(hours=1)
    _import(
        upgraded,
        tmp_path,
        "results.csv",
        [
            f"FN,{_at(drawn)},wbc,1.2,10^9/L,4.0,11.0,CITY,FN1,final",
            f"FN,{_at(drawn)},anc,0.4,10^9/L,1.5,7.7,CITY,FN1,final",
            f"FN,{_at(hot)},temp,101.0,[degF],,,CITY,FNT1,final",
            f"G4,{_at(drawn)},anc,0.3,10^9/L,1.5,7.7,CITY,G41,final",
            f"G4,{_at(hot)},temp,100.4,[degF],,,CITY,G4T1,final",
        ],
        zone=zone,
    )
    found = _patients(upgraded, zone)
    sentence = f"ANC 0.40 at {_told(drawn, zone)} and temperature 38.3 °C at {_told(hot, zone)} (IDSA 2010)"
    assert found["FN"]["febrile_neutropenia"] is True and found["FN"]["febrile_detail"] == sentence
    assert found["FN"]["flags"][0] == "febrile_neutropenia"
    assert found["FN"]["explanations"]["febrile_neutropenia"] == sentence
    assert (
        found["FN"]["priority"] == 1 and found["FN"]["priority_reason"] == f"febrile neutropenia ({sentence})"
    )
    assert found["G4"]["febrile_neutropenia"] is False and "febrile_neutropenia" not in found["G4"]["flags"]
    store = open_store(upgraded, timezone=zone)
    ordered = worklist(store, viewer=SYSTEM, timezone=zone, now=now)
    tiers = dict(zip(ordered["patient_id"], ordered["tier"], strict=True))
    assert tiers == {"FN": 1, "G4": 1} and headline(ordered)["Urgent (priority 1-2)"] == 2
    alerts = json.loads(
        monitor("alerts", "--since", "2000-01-01", "--format", "json", url=upgraded, zone=zone).stdout
    )
    said = {alert["patient_id"]: alert["changes"] for alert in alerts}
    assert said["FN"][0] == f"febrile neutropenia appeared: {sentence}"  # the first change told
    assert not any("febrile" in change for change in said["G4"])
    # Acknowledged like any flag: the worklist says so until a new flag appears.
    key = int(ordered.loc[ordered["patient_id"].eq("FN"), "patient_key"].iloc[0])
    flags = acknowledge(
        store, viewer=Viewer("doc", "clinician", None), patient_key=key, comment="seen", now=datetime.now(UTC)
    )
    assert "febrile_neutropenia" in flags
    again = worklist(store, viewer=SYSTEM, timezone=zone, now=datetime.now(UTC))
    assert again.loc[again["patient_id"].eq("FN"), "acknowledged"].tolist() == [True]


def test_recovery_ends_the_flag_and_is_told_as_recovered_in_the_history(
    upgraded: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    fever = now - timedelta(hours=49)
    _import(
        upgraded,
        tmp_path,
        "first.csv",
        [
            f"P1,{_at(fever - timedelta(hours=1))},anc,0.3,10^9/L,1.5,7.7,CITY,A1,final",
            f"P1,{_at(fever)},temp,38.9,Cel,,,CITY,T1,final",
        ],
    )
    assert _patients(upgraded)["P1"]["febrile_neutropenia"] is True
    # ANC 0.7 now, more than 24 h after the last fever: the episode ended with this count.
    _import(
        upgraded,
        tmp_path,
        "second.csv",
        [f"P1,{_at(now - timedelta(hours=1))},anc,0.7,10^9/L,1.5,7.7,CITY,A2,final"],
    )
    found = _patients(upgraded)["P1"]
    assert found["febrile_neutropenia"] is False and "febrile_neutropenia" not in found["flags"]
    engine = make_engine(upgraded)
    try:
        with make_session_factory(engine)() as session:
            changes = session.execute(
                select(StatusChange.change, StatusChange.explanation)
                .join(Patient, Patient.id == StatusChange.patient_id)
                .where(StatusChange.flag == "febrile_neutropenia")
                .order_by(StatusChange.id)
            ).all()
    finally:
        engine.dispose()
    assert [change for change, _ in changes] == ["appeared", "cleared"]
    assert changes[1][1].startswith("recovered from febrile neutropenia (was: ANC 0.30 at ")


def test_an_episode_whose_quiet_end_passes_is_read_as_ended_before_the_next_recompute(
    upgraded: str, tmp_path: Path
) -> None:
    # Fever 38.9 with ANC 0.3, then ANC 0.7 an hour later (a count >= 0.5 while the fever is recent): the
    # episode ends 24 h after the fever if nothing new arrives. No import or recompute comes after.
    fever = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    _import(
        upgraded,
        tmp_path,
        "episode.csv",
        [
            f"P1,{_at(fever - timedelta(hours=1))},anc,0.3,10^9/L,1.5,7.7,CITY,A1,final",
            f"P1,{_at(fever)},temp,38.9,Cel,,,CITY,T1,final",
            f"P1,{_at(fever + timedelta(hours=1))},anc,0.7,10^9/L,1.5,7.7,CITY,A2,final",
        ],
    )
    store = open_store(upgraded, timezone="UTC")

    def listed(at: datetime) -> dict:
        ordered = worklist(store, viewer=SYSTEM, timezone="UTC", now=at)
        return ordered.set_index("patient_id").loc["P1"].to_dict()

    almost = listed(fever + timedelta(hours=23, minutes=59))
    assert almost["febrile_neutropenia"] is True and almost["flags"][0] == "febrile_neutropenia"
    assert almost["tier"] == 1
    ended = listed(fever + timedelta(hours=24))
    assert ended["febrile_neutropenia"] is False and "febrile_neutropenia" not in ended["flags"]
    assert len(ended["flags"]) == len(ended["explanations"]) and ended["tier"] != 1
    assert not ended["priority_reason"].startswith("febrile")
    # Acknowledged from the page that shows the episode ended (the stored flags still hold it): the
    # acknowledgement covers the flags shown, and is not refused as if they had changed.
    covered = acknowledge(
        store,
        viewer=SYSTEM,
        patient_key=int(ended["patient_key"]),
        comment="seen",
        now=fever + timedelta(hours=25),
        seen=list(ended["flags"]),
        seen_changed_at=ended["flags_changed_at"],
    )
    assert covered == ",".join(ended["flags"]) and "febrile" not in covered


def test_a_higher_anc_after_the_fever_does_not_erase_the_episode_through_the_importer(
    upgraded: str, tmp_path: Path
) -> None:
    # ANC 0.3, fever 38.9 two hours later, ANC 1.2 eleven hours after the fever (a second import).
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    fever = now - timedelta(hours=12)
    dosed = now - timedelta(days=9)
    _import(
        upgraded,
        tmp_path,
        "first.csv",
        [
            f"P1,{_at(dosed - timedelta(hours=2))},anc,3.0,10^9/L,1.5,7.7,CITY,A0,final",
            f"P1,{_at(fever - timedelta(hours=2))},anc,0.3,10^9/L,1.5,7.7,CITY,A1,final",
            f"P1,{_at(fever)},temp,38.9,Cel,,,CITY,T1,final",
        ],
    )
    _import(
        upgraded,
        tmp_path,
        "events.csv",
        ["patient_id,kind,start,end,label", f"P1,chemotherapy,{_at(dosed)},,paclitaxel"],
        "--format",
        "events",
    )
    sentence = (
        f"ANC 0.30 at {_told(fever - timedelta(hours=2), 'UTC')} and temperature 38.9 °C at "
        f"{_told(fever, 'UTC')} (IDSA 2010 and CTCAE v5.0)"
    )
    assert _patients(upgraded)["P1"]["febrile_detail"] == sentence
    _import(
        upgraded,
        tmp_path,
        "second.csv",
        [f"P1,{_at(fever + timedelta(hours=11))},anc,1.2,10^9/L,1.5,7.7,CITY,A2,final"],
    )
    found = _patients(upgraded)["P1"]
    assert found["febrile_neutropenia"] is True and found["febrile_detail"] == sentence
    assert found["flags"][0] == "febrile_neutropenia" and found["priority"] == 1
    cycles = json.loads(monitor("cycles", "P1", "--format", "json", url=upgraded).stdout)
    assert [cycle["febrile_neutropenia"] for cycle in cycles] == [True]
    engine = make_engine(upgraded)
    try:
        with make_session_factory(engine)() as session:
            changes = session.scalars(
                select(StatusChange.change).where(StatusChange.flag == "febrile_neutropenia")
            ).all()
    finally:
        engine.dispose()
    assert list(changes) == ["appeared"]  # not "recovered" when the higher count came


def test_a_written_fever_stays_when_a_normal_temperature_is_measured_hours_later(
    upgraded: str, tmp_path: Path
) -> None:
    # W: "Fever 38.9 C" written 3 h ago, ANC 0.3 4 h ago, 37.2 measured 1 h ago. F: "Fever 102 F".
    # S: the written fever and a measured 37.2 within the hour (the same reading): set aside.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    drawn, written = now - timedelta(hours=4), now - timedelta(hours=3)
    rows = []
    for patient in ("W", "F", "S"):
        rows.append(f"{patient},{_at(drawn)},anc,0.3,10^9/L,1.5,7.7,CITY,{patient}A,final")
    rows.append(f"W,{_at(now - timedelta(hours=1))},temp,37.2,Cel,,,CITY,WT,final")
    rows.append(f"S,{_at(written + timedelta(minutes=30))},temp,37.2,Cel,,,CITY,ST,final")
    _import(upgraded, tmp_path, "results.csv", rows)
    events = [
        "patient_id,kind,start,end,label",
        f"W,fever,{_at(written)},,Fever 38.9 C",
        f"F,fever,{_at(written)},,Fever 102 F",
        f"S,fever,{_at(written)},,Fever 38.9 C",
    ]
    _import(upgraded, tmp_path, "events.csv", events, "--format", "events")
    found = _patients(upgraded)
    for patient, celsius in (("W", "38.9"), ("F", "38.9")):
        assert found[patient]["febrile_neutropenia"] is True, patient
        assert found[patient]["febrile_detail"] == (
            f"ANC 0.30 at {_told(drawn, 'UTC')} and fever {celsius} °C at {_told(written, 'UTC')} (free text)"
            " (IDSA 2010 and CTCAE v5.0)"
        )
    assert found["S"]["febrile_neutropenia"] is False


def test_the_cycle_tables_fn_agrees_with_the_flag(upgraded: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    dosed = now - timedelta(days=9)
    _import(
        upgraded,
        tmp_path,
        "results.csv",
        [
            f"FN,{_at(dosed - timedelta(hours=2))},anc,3.0,10^9/L,1.5,7.7,CITY,FN0,final",
            f"FN,{_at(now - timedelta(hours=5))},anc,0.6,10^9/L,1.5,7.7,CITY,FN1,final",
            f"FN,{_at(now - timedelta(hours=4))},temp,38.0,Cel,,,CITY,FNT1,final",
            f"FN,{_at(now - timedelta(hours=2, minutes=59))},temp,38.2,Cel,,,CITY,FNT2,final",
            f"NO,{_at(dosed - timedelta(hours=2))},anc,3.0,10^9/L,1.5,7.7,CITY,NO0,final",
            f"NO,{_at(now - timedelta(hours=5))},anc,1.2,10^9/L,1.5,7.7,CITY,NO1,final",
            f"NO,{_at(now - timedelta(hours=4))},temp,39.0,Cel,,,CITY,NOT1,final",
        ],
    )
    events = [
        "patient_id,kind,start,end,label",
        f"FN,chemotherapy,{_at(dosed)},,paclitaxel",
        f"NO,chemotherapy,{_at(dosed)},,paclitaxel",
    ]
    _import(upgraded, tmp_path, "events.csv", events, "--format", "events")
    found = _patients(upgraded)
    # FN: ANC 0.6 with 38.0 then 38.2 61 minutes later: CTCAE v5.0 (more than an hour), not IDSA (ANC >= 0.5).
    assert found["FN"]["febrile_neutropenia"] is True
    assert found["FN"]["febrile_detail"].endswith("(CTCAE v5.0)")
    assert found["NO"]["febrile_neutropenia"] is False
    for patient, fn in (("FN", True), ("NO", False)):
        cycles = json.loads(monitor("cycles", patient, "--format", "json", url=upgraded).stdout)
        assert [cycle["febrile_neutropenia"] for cycle in cycles] == [fn]
        assert cycles[0]["fever"].startswith("fever 3")
    table = monitor("cycles", "FN", url=upgraded).stdout
    assert "YES" in table.splitlines()[1]


# --- A fever that cannot be judged ---


def test_a_recent_fever_without_an_anc_in_its_window_cannot_be_judged_and_says_why() -> None:
    now = T0 + pd.Timedelta(hours=2)
    before = unjudged_now(results(("anc", 0.4, -25 * 60), ("temp", 38.6, 0)), as_of=now)
    assert on_day(before["sentence"], "2026-03-10").tolist() == [
        "temperature 38.6 °C at 12:00 cannot be judged: no ANC from 24 h before to 12 h after"
        " (last ANC 0.40, 25 h before): a CBC would settle it (IDSA 2010, CTCAE v5.0)"
    ]
    assert before["until"].tolist() == [T0 + pd.Timedelta(hours=48)]
    after = unjudged_now(results(("temp", 38.6, 0), ("anc", 0.4, 13 * 60)), as_of=T0 + pd.Timedelta(hours=14))
    assert on_day(after["sentence"], "2026-03-10").tolist() == [
        "temperature 38.6 °C at 12:00 cannot be judged: no ANC from 24 h before to 12 h after"
        " (first ANC after it 0.40, 13 h after): a CBC would settle it (IDSA 2010, CTCAE v5.0)"
    ]
    never = unjudged_now(results(("temp", 38.1, 0)), as_of=now)
    assert never["sentence"].str.contains(r"\(no ANC on record\)").tolist() == [True]
    # With an ANC in the window it is judged (here: no febrile neutropenia), not unknown.
    assert unjudged_now(results(("anc", 2.0, -24 * 60), ("temp", 38.6, 0)), as_of=now).empty
    # The latest fever of the last 48 h decides; an older one no longer counts.
    assert len(unjudged_now(results(("temp", 38.6, 0)), as_of=T0 + pd.Timedelta(hours=48))) == 1
    assert unjudged_now(results(("temp", 38.6, 0)), as_of=T0 + pd.Timedelta(hours=48, minutes=1)).empty
    judged_later = results(("temp", 38.6, 0), ("anc", 2.0, 20 * 60), ("temp", 38.4, 21 * 60))
    assert unjudged_now(judged_later, as_of=T0 + pd.Timedelta(hours=22)).empty
    # A written fever too.
    fever = pd.DataFrame(
        {"patient_key": [1], "kind": ["fever"], "start_at": [T0], "label": ["Fever 102 F"], "details": [""]}
    )
    written = unjudged_now(results(("anc", 0.7, -30 * 60)), fever, as_of=now)
    assert on_day(written["sentence"], "2026-03-10").str.startswith(
        "fever 38.9 °C at 12:00 (free text) cannot be judged"
    ).tolist() == [True]


def test_an_unjudged_fever_is_unknown_flagged_told_and_ranked_through_the_importer(
    upgraded: str, tmp_path: Path
) -> None:
    # U4: ANC 0.4 25 h before a 38.6 reading 2 h ago. U3: ANC 0.7 likewise (grade 3). UA: ANC 0.4 13 h
    # after a 38.6 reading 15 h ago. UN: ANC 1.2 25 h before. G4: ANC 0.3, no fever. FN: febrile neutropenia.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    hot = now - timedelta(hours=2)
    early, late_hot = hot - timedelta(hours=25), now - timedelta(hours=15)
    rows = [
        f"U4,{_at(early)},anc,0.4,10^9/L,1.5,7.7,CITY,U4A,final",
        f"U4,{_at(hot)},temp,38.6,Cel,,,CITY,U4T,final",
        f"U3,{_at(early)},anc,0.7,10^9/L,1.5,7.7,CITY,U3A,final",
        f"U3,{_at(hot)},temp,38.6,Cel,,,CITY,U3T,final",
        f"UA,{_at(late_hot)},temp,38.6,Cel,,,CITY,UAT,final",
        f"UA,{_at(late_hot + timedelta(hours=13))},anc,0.4,10^9/L,1.5,7.7,CITY,UAA,final",
        f"UN,{_at(early)},anc,1.2,10^9/L,1.5,7.7,CITY,UNA,final",
        f"UN,{_at(hot)},temp,38.6,Cel,,,CITY,UNT,final",
        f"G4,{_at(hot)},anc,0.3,10^9/L,1.5,7.7,CITY,G4A,final",
        f"FN,{_at(hot)},anc,0.6,10^9/L,1.5,7.7,CITY,FNA,final",
        f"FN,{_at(hot)},temp,38.9,Cel,,,CITY,FNT,final",
    ]
    _import(upgraded, tmp_path, "results.csv", rows)
    found = _patients(upgraded)
    tail = "a CBC would settle it (IDSA 2010, CTCAE v5.0)"
    expected = {
        "U4": f"temperature 38.6 °C at {_told(hot, 'UTC')} cannot be judged: no ANC from 24 h before to 12 h"
        f" after (last ANC 0.40, 25 h before): {tail}",
        "UA": f"temperature 38.6 °C at {_told(late_hot, 'UTC')} cannot be judged: no ANC from 24 h before to"
        f" 12 h after (first ANC after it 0.40, 13 h after): {tail}",
    }
    for patient, sentence in expected.items():
        row = found[patient]
        assert row["febrile_neutropenia"] is None and row["febrile_detail"] == sentence, patient
        assert row["flags"][0] == "febrile_unjudged" and "febrile_neutropenia" not in row["flags"]
        assert row["explanations"]["febrile_unjudged"] == sentence
        assert row["priority"] == 1 and row["priority_reason"].endswith("; " + sentence)
    # ANC 0.7 (grade 3): tier 1 with the fever; ANC 1.2: ranked by its counts, the sentence appended.
    assert found["U3"]["priority"] == 1 and found["U3"]["priority_reason"].startswith("ANC grade 3")
    assert found["UN"]["febrile_neutropenia"] is None and found["UN"]["priority"] != 1
    assert found["UN"]["priority_reason"].endswith("; " + found["UN"]["febrile_detail"])
    assert found["G4"]["febrile_neutropenia"] is None and found["G4"]["febrile_detail"] == ""
    store = open_store(upgraded, timezone="UTC")
    ordered = worklist(store, viewer=SYSTEM, timezone="UTC", now=now)
    order = [p for p in ordered["patient_id"] if p != "UN"]
    # After febrile neutropenia, before an afebrile grade 4 (then by ANC grade: U4 and UA before U3).
    assert order[0] == "FN" and order[-1] == "G4" and set(order[1:4]) == {"U4", "UA", "U3"}
    assert order[3] == "U3"
    for patient in ("U4", "UA", "U3", "UN"):
        row = ordered.set_index("patient_id").loc[patient]
        assert len(row["flags"]) == len(row["explanations"])
    # 48 h after the fever it no longer counts, read without a recompute.
    later = worklist(store, viewer=SYSTEM, timezone="UTC", now=hot + timedelta(hours=48))
    row = later.set_index("patient_id").loc["U4"]
    assert pd.notna(row["febrile_neutropenia"]) and not row["febrile_neutropenia"]
    assert "febrile_unjudged" not in row["flags"]
    assert len(row["flags"]) == len(row["explanations"]) and "cannot be judged" not in row["priority_reason"]
    # A count in the window settles it: here febrile neutropenia.
    _import(
        upgraded,
        tmp_path,
        "cbc.csv",
        [f"U4,{_at(now - timedelta(hours=1))},anc,0.35,10^9/L,1.5,7.7,CITY,U4B,final"],
    )
    settled = _patients(upgraded)["U4"]
    assert settled["febrile_neutropenia"] is True and "febrile_unjudged" not in settled["flags"]
