"""G-CSF prophylaxis, dose modification and cycle delays as decision support, through the importer (a
canonical CSV of counts and an events file of doses and G-CSF), the status, the cycles view and the pages.

Every case: a dose on Monday 2 March 2026 at 10:00 UTC (D1), counts drawn at 08:00 on their day.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from db.accounts import SYSTEM
from tests.test_dashboard import _app, _clear_caches  # noqa: F401  (fixtures; imported_store is conftest's)
from tests.test_import import BY_TEST

START = pd.Timestamp("2026-03-02 10:00", tz="UTC")
HEADER = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status,birth_date\n"
EVENTS_HEADER = "patient_id,kind,start,end,label,details\n"
REGIMENS = {
    "ac every 21 days": {"fn_risk": "high", "fn_risk_source": "NCCN, dose-dense AC"},
    "docetaxel every 21 days": {"fn_risk": "intermediate", "fn_risk_source": "NCCN, docetaxel"},
    "paclitaxel every 21 days": {"fn_risk": "low"},
}


def _at(day: float, hour: int = 8) -> str:
    """Cycle 1's calendar day ``day`` (0 = D1) at ``hour`` UTC, ISO 8601."""
    moment = START.normalize() + pd.Timedelta(days=day, hours=hour)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _counts(anc: dict[float, float], plt: dict[float, float] | None = None, born: str = "1970-01-01") -> str:
    rows = [f"P1,{_at(d)},anc,{v},10^9/L,1.8,7.7,CITY,A{d}anc,final,{born}" for d, v in anc.items()]
    rows += [f"P1,{_at(d)},plt,{v},10^9/L,150,450,CITY,A{d}plt,final,{born}" for d, v in (plt or {}).items()]
    return HEADER + "\n".join(rows) + "\n"


def _events(regimen: str, doses: tuple[float, ...] = (0,), extra: tuple[str, ...] = ()) -> str:
    rows = [f'P1,chemotherapy,{_at(d, 10)},,"Chemotherapy",{regimen}' for d in doses]
    return EVENTS_HEADER + "\n".join([*rows, *extra]) + "\n"


def _load(store, tmp_path: Path, counts: str, events: str) -> int:
    from db.queries import find_patient
    from db.settings import save_site_rules
    from services.imports import import_path

    with store.begin() as session:
        save_site_rules(session, {"cycles": {"regimens": REGIMENS}}, by="test", now=datetime.now(UTC))
    for name, content in (("counts.csv", counts), ("events.csv", events)):
        (tmp_path / name).write_text(content)
        import_path(store, tmp_path / name, options=BY_TEST)
    with store() as session:
        return find_patient(session, "P1", viewer=SYSTEM).id


def _flags(store, key: int, day: float) -> dict[str, str]:
    """The patient's flags and sentences as the worklist has them, status computed on cycle day ``day``."""
    from db.queries import patient_list
    from db.status import refresh_patient_status

    now = (START + pd.Timedelta(days=day)).to_pydatetime()
    with store.begin() as session:
        refresh_patient_status(session, [key], now=now, timezone="UTC")
    with store() as session:
        row = patient_list(session, viewer=SYSTEM, timezone="UTC", today=now.date()).iloc[0]
    return dict(zip(row["flags"], row["explanations"], strict=True))


def _cycles(store, key: int) -> pd.DataFrame:
    from services.patients import patient_cycles

    found = patient_cycles(store, viewer=SYSTEM, patient_key=key, timezone="UTC", now=datetime.now(UTC))
    return found.cycles


@pytest.mark.parametrize(
    ("gcsf", "flagged"),
    [
        ("P1,gcsf,{D2},,Pegfilgrastim 6 mg,", False),
        ('P1,medication,{D2},,"Neulasta 6 mg sc",', False),  # a medication naming a G-CSF
        ("P1,growth_factor,{D5},,Filgrastim,", False),  # D5: the last day of the window
        ("P1,gcsf,{D6},,Pegfilgrastim 6 mg,", True),
        ("", True),
    ],
)
def test_a_high_risk_regimen_without_g_csf_on_d1_to_d5_gets_primary_prophylaxis_support(
    store, tmp_path, gcsf: str, flagged: bool
) -> None:
    extra = (gcsf.format(D2=_at(1, 12), D5=_at(4, 12), D6=_at(5, 12)),) if gcsf else ()
    key = _load(store, tmp_path, _counts({0: 4.0, 9: 1.2}), _events("AC every 21 days", extra=extra))
    flags = _flags(store, key, 9)
    cycle = _cycles(store, key).iloc[0]
    assert ("gcsf_primary_prophylaxis" in flags) is flagged
    assert (cycle["support_flags"] == "gcsf_primary_prophylaxis") is flagged
    if flagged:
        given = "G-CSF recorded on D6, outside D1-D5" if gcsf else "no G-CSF recorded on D1-D5 of C1"
        assert flags["gcsf_primary_prophylaxis"] == (
            "primary G-CSF prophylaxis is recommended at FN risk >= 20 % (ASCO 2015, EORTC, NCCN): AC every "
            "21 days is a high-risk regimen (site setting; NCCN, dose-dense AC); " + given
        )
        assert cycle["support"] == flags["gcsf_primary_prophylaxis"]
    else:
        assert cycle["gcsf_days"] in ("D2", "D5") and cycle["support"] == ""


@pytest.mark.parametrize(("born", "flagged"), [("1961-03-03", False), ("1961-03-02", True)])
def test_an_intermediate_risk_regimen_is_considered_from_age_65_at_the_dose(
    store, tmp_path, born: str, flagged: bool
) -> None:
    """Born 3 March 1961: 64 on 2 March 2026, the dose day; born 2 March 1961: 65 that day."""
    key = _load(store, tmp_path, _counts({0: 4.0}, born=born), _events("docetaxel every 21 days"))
    flags = _flags(store, key, 3)
    assert ("gcsf_consider" in flags) is flagged
    if flagged:
        assert flags["gcsf_consider"].startswith(
            "consider primary G-CSF prophylaxis: FN risk 10-20 % and age 65 at the dose (ASCO 2015, EORTC, "
            "NCCN: patient risk factors; docetaxel every 21 days is an intermediate-risk regimen, site "
            "setting; NCCN, docetaxel); no G-CSF recorded yet; window D1-D5, until 2026-03-06"
        )


def test_febrile_neutropenia_in_an_earlier_cycle_is_a_risk_factor_and_calls_for_secondary_prophylaxis(
    store, tmp_path
) -> None:
    """FN in C1 (ANC 0.4 with 38.9 °C on D9), no G-CSF: C2 of an intermediate-risk regimen gets both
    "consider" (prior FN) and secondary prophylaxis, here with the docetaxel label's rule (it names FN)."""
    fever = f"P1,fever,{_at(8, 14)},,Fever 38.9 C,"
    counts = _counts({0: 4.0, 8: 0.4, 20: 2.0, 21 + 3: 3.0}, plt={20: 200})
    key = _load(store, tmp_path, counts, _events("docetaxel every 21 days", (0, 21), (fever,)))
    cycles = _cycles(store, key)
    assert cycles["febrile_neutropenia"].tolist() == [True, False]
    assert cycles.loc[1, "support_flags"] == "gcsf_consider, secondary_prophylaxis"
    flags = _flags(store, key, 24)
    assert "febrile neutropenia in C1" in flags["gcsf_consider"]
    assert flags["secondary_prophylaxis"] == (
        "secondary prophylaxis or dose reduction: the label of DOCETAXEL says reduce the dose after febrile "
        'neutropenia or "neutrophils <500 cells/mm3 for more than one week" (TAXOTERE (docetaxel) US '
        "prescribing information, https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview."
        "process&ApplNo=020449); C2 follows febrile neutropenia in C1 without G-CSF"
    )


@pytest.mark.parametrize(("last_low", "days", "flagged"), [(13, 7, True), (12, 6, False)])
def test_anc_below_0_5_for_7_days_as_sampled_calls_for_secondary_prophylaxis_with_the_paclitaxel_label(
    store, tmp_path, last_low: int, days: int, flagged: bool
) -> None:
    """ANC < 0.5 on D8 and D14: 7 days as sampled (paclitaxel: "seven days or more"); D8 and D13: 6."""
    counts = _counts({0: 4.0, 6: 1.1, 7: 0.4, last_low: 0.3, last_low + 1: 1.2})
    key = _load(store, tmp_path, counts, _events("paclitaxel every 21 days"))
    cycle = _cycles(store, key).iloc[0]
    assert cycle["days_anc_below_0_5_min"] == days
    # Support for the next cycle, not yet given: on the last cycle's row, and on the patient now.
    flags = _flags(store, key, 16)
    assert ("secondary_prophylaxis" in flags) is flagged
    if flagged:
        label = (
            'secondary prophylaxis or dose reduction: the label of PACLITAXEL says "in the case of severe '
            "neutropenia (<500 cells/mm3 for seven days or more) ... a 20% reduction in dose for subsequent "
            'courses" (TAXOL (paclitaxel) US prescribing information, https://www.accessdata.fda.gov/scripts/'
            "cder/daf/index.cfm?event=overview.process&ApplNo=020262); C2 follows ANC < 0.5 for 7 days as "
            "sampled in C1 without G-CSF"
        )
        assert flags["secondary_prophylaxis"] == label
        assert cycle["support"] == "before C2: " + label
    else:
        assert cycle["support"] == ""


@pytest.mark.parametrize(
    ("last_low", "said"),
    [
        (
            13,
            "secondary G-CSF prophylaxis or dose reduction (ASCO 2015); the DOCETAXEL label's rule is for "
            "ANC < 0.5 for more than one week; C2 follows ANC < 0.5 for 7 days as sampled in C1 without "
            "G-CSF",
        ),
        (
            14,
            "secondary prophylaxis or dose reduction: the label of DOCETAXEL says reduce the dose after "
            'febrile neutropenia or "neutrophils <500 cells/mm3 for more than one week" (TAXOTERE '
            "(docetaxel) US prescribing information, https://www.accessdata.fda.gov/scripts/cder/daf/index."
            "cfm?event=overview.process&ApplNo=020449); C2 follows ANC < 0.5 for 8 days as sampled in C1 "
            "without G-CSF",
        ),
    ],
)
def test_seven_days_below_0_5_on_docetaxel_is_not_more_than_one_week_and_the_sentence_says_so(
    store, tmp_path, last_low: int, said: str
) -> None:
    """D8 to D14 is 7 days: the general rule (7 days or more) applies, the docetaxel label's "more than one
    week" does not; D8 to D15 (8 days) meets it."""
    counts = _counts({0: 4.0, 6: 1.1, 7: 0.4, last_low: 0.3, last_low + 1: 1.2})
    key = _load(store, tmp_path, counts, _events("docetaxel every 21 days"))
    assert _flags(store, key, 17)["secondary_prophylaxis"] == said


def test_g_csf_in_the_next_cycle_answers_the_secondary_support(store, tmp_path) -> None:
    counts = _counts({0: 4.0, 6: 1.1, 7: 0.4, 13: 0.3, 14: 1.2})
    peg = f"P1,gcsf,{_at(22, 12)},,Pegfilgrastim 6 mg,"
    key = _load(store, tmp_path, counts, _events("paclitaxel every 21 days", (0, 21), (peg,)))
    cycles = _cycles(store, key)
    assert cycles["support"].tolist() == ["", ""] and cycles["gcsf_days"].tolist() == ["", "D2"]
    assert "secondary_prophylaxis" not in _flags(store, key, 23)


@pytest.mark.parametrize(("late", "delay"), [(7, 7), (2, 0), (3, 3)])
def test_a_cycle_started_late_is_delayed_by_the_days_past_the_planned_length(
    store, tmp_path, late: int, delay: int
) -> None:
    """Planned D22 (23 March) from "every 21 days"; 2 days late is within the scheduling tolerance."""
    counts = _counts({0: 4.0, 21: 1.1, 21 + late: 1.9}, plt={21: 180, 21 + late: 190})
    key = _load(store, tmp_path, counts, _events("paclitaxel every 21 days", (0, 21 + late)))
    cycles = _cycles(store, key)
    assert pd.isna(cycles.loc[0, "delay_days"]) and cycles.loc[1, "delay_days"] == delay
    if delay == 7:
        assert cycles.loc[1, "delay"] == (
            "C2 delayed 7 days (planned 2026-03-23): ANC 1.1 on the planned day, against ANC >= 1.5 and "
            "platelets >= 100"
        )
    elif delay == 0:
        assert cycles.loc[1, "delay"] == ""


def test_a_delay_no_count_explains_says_the_reason_is_not_in_the_store(store, tmp_path) -> None:
    counts = _counts({0: 4.0, 21: 2.4}, plt={21: 180})
    key = _load(store, tmp_path, counts, _events("paclitaxel every 21 days", (0, 28)))
    assert (
        _cycles(store, key).loc[1, "delay"]
        == "C2 delayed 7 days (planned 2026-03-23): reason not in the store"
    )


def test_a_support_flag_appears_as_an_alert_and_is_named_on_the_worklist(store, tmp_path) -> None:
    from db.queries import status_changes_since
    from monitor.analysis.triage import priority, priority_reason

    key = _load(store, tmp_path, _counts({0: 4.0}), _events("AC every 21 days"))
    _flags(store, key, 2)
    with store() as session:
        changes = status_changes_since(session, since=datetime(2026, 1, 1, tzinfo=UTC), viewer=SYSTEM)
    appeared = changes[changes["flag"].eq("gcsf_primary_prophylaxis").to_numpy()]
    assert appeared["change"].tolist() == ["appeared"]
    listed = pd.DataFrame(
        {"flags": [["gcsf_primary_prophylaxis"]], **{f"latest_{a}_grade": [0] for a in ("wbc", "anc", "alc")}}
    )
    assert priority(listed).tolist() == [7]
    assert priority_reason(listed).tolist() == ["G-CSF primary prophylaxis recommended"]


def test_the_cycles_page_shows_g_csf_days_delays_and_support(imported_store, tmp_path) -> None:  # noqa: F811
    from db.store import open_store

    store = open_store(imported_store, timezone="UTC")
    counts = _counts({0: 4.0, 21: 1.1, 28: 1.9}, plt={21: 180, 28: 190})
    _load(store, tmp_path, counts, _events("AC every 21 days", (0, 28)))
    at = _app().run()
    at.switch_page("app_pages/cycles.py").run()
    at.selectbox(key="cycles_patient").select_index(
        next(i for i, o in enumerate(at.selectbox(key="cycles_patient").options) if "P1" in o)
    ).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert {"G-CSF on", "delay days", "delay", "support"} <= set(table.columns)
    assert table["delay days"].tolist() == ["", "7"]
    assert table.loc[1, "delay"].startswith(
        "C2 delayed 7 days (planned 2026-03-23): ANC 1.1 on the planned day"
    )
    assert table.loc[0, "support"].startswith("primary G-CSF prophylaxis is recommended")
    said = " ".join(m.value for m in at.markdown)
    assert "C2 delayed 7 days" in said and "primary G-CSF prophylaxis is recommended" in said


def test_the_settings_form_saves_a_regimens_fn_risk_and_the_change_is_audited(
    imported_store,  # noqa: F811
) -> None:
    from db.store import open_store

    at = _app().run()
    at.switch_page("app_pages/settings.py").run()
    at.text_input(key="regimen_name").input("AC every 14 days")
    at.selectbox(key="regimen_fn_risk").select("high")
    at.text_input(key="regimen_fn_risk_source").input("NCCN, dose-dense AC")
    at.button(key="FormSubmitter:regimen_form-Save regimen rule").click().run()
    assert not at.exception
    with open_store(imported_store, timezone="UTC")() as session:
        stored = session.execute(text("SELECT value FROM setting WHERE key = 'rules'")).scalar_one()
        audited = session.execute(
            text("SELECT username, details FROM audit_log WHERE action = 'settings' ORDER BY id")
        ).all()
    rule = json.loads(stored)["cycles"]["regimens"]["ac every 14 days"]
    assert (rule["fn_risk"], rule["fn_risk_source"]) == ("high", "NCCN, dose-dense AC")
    assert audited[-1][0] == "admin" and '"fn_risk": "high"' in audited[-1][1]
    # No chemotherapy event names "AC every 14 days": saved, with a warning that it applies to no cycle yet.
    assert [w.value for w in at.warning] == [
        "Saved; no chemotherapy event in the store names the regimen 'ac every 14 days' in its details (as "
        "whole words, case-insensitive), so this setting applies to no cycle yet."
    ]


def _pure_cycles(
    regimen: str, doses: tuple[int, ...], anc: dict[int, float], extra: list[dict] | None = None
):
    from monitor.analysis.cycles import CycleRules, treatment_cycles
    from monitor.analysis.cycles.rules import Regimen

    events = pd.DataFrame(
        [{"patient_key": 1, "kind": "chemotherapy", "start_at": START + pd.Timedelta(days=d),
          "details": regimen, "label": "Chemotherapy"} for d in doses] + (extra or [])
    )  # fmt: skip
    results = pd.DataFrame(
        {"patient_key": 1, "analyte": "anc", "value": list(anc.values()),
         "collected_at": [START + pd.Timedelta(days=d, hours=-2) for d in anc]}
    )  # fmt: skip
    rules = CycleRules(regimens={"ac every 21 days": Regimen(fn_risk="high")})
    return events, results, rules, treatment_cycles(results, events, rules=rules)


def test_the_support_leaves_its_inputs_unchanged_and_reads_g_csf_by_drug_name() -> None:
    from monitor.analysis.cycles.support import gcsf_events

    peg = {"patient_key": 1, "kind": "medication", "start_at": START + pd.Timedelta(days=1),
           "details": "", "label": "Lipegfilgrastim (Lonquex) 6 mg"}  # fmt: skip
    events, results, _, cycles = _pure_cycles("AC every 21 days", (0,), {0: 4.0}, [peg])
    before = (events.copy(), results.copy())
    assert cycles.loc[0, "gcsf_days"] == "D2" and cycles.loc[0, "support"] == ""
    pd.testing.assert_frame_equal(events, before[0])
    pd.testing.assert_frame_equal(results, before[1])
    names = ["Zarxio 480 mcg", "tbo-filgrastim", "Ondansetron 8 mg", "nab-paclitaxel"]
    medications = pd.DataFrame({"patient_key": 1, "kind": "medication", "label": names, "start_at": START})
    assert gcsf_events(medications)["label"].tolist() == ["Zarxio 480 mcg", "tbo-filgrastim"]


def test_a_cycle_with_no_events_or_counts_has_no_support_and_no_delay() -> None:
    from monitor.analysis.cycles import treatment_cycles

    empty = treatment_cycles(
        pd.DataFrame(columns=["patient_key", "analyte", "value", "collected_at"]),
        pd.DataFrame(columns=["patient_key", "kind", "start_at"]),
    )
    assert empty.empty and {"delay_days", "support"} <= set(empty.columns)
    _, _, _, low = _pure_cycles("FOLFOX", (0, 14), {0: 4.0})
    assert low["support"].tolist() == ["", ""] and low["delay"].tolist() == ["", ""]


def test_a_support_flag_is_acknowledged_like_any_flag_and_a_new_one_asks_again(store, tmp_path) -> None:
    """Acknowledged on D3 with the primary-prophylaxis support shown; ANC < 0.5 on D8 and D14 without G-CSF
    then adds the secondary support: the patient is no longer acknowledged."""
    from db.queries import patient_list
    from services.patient_actions import acknowledge

    counts = _counts({0: 4.0, 6: 1.1, 7: 0.4, 13: 0.3, 14: 1.2})
    key = _load(store, tmp_path, _counts({0: 4.0}), _events("AC every 21 days"))
    assert "gcsf_primary_prophylaxis" in _flags(store, key, 3)
    said = acknowledge(
        store, viewer=SYSTEM, patient_key=key, comment="G-CSF declined", now=(START + pd.Timedelta(days=3))
    )
    assert said == "gcsf_primary_prophylaxis"

    def acknowledged(day: float) -> bool:
        with store() as session:
            today = (START + pd.Timedelta(days=day)).date()
            return bool(
                patient_list(session, viewer=SYSTEM, timezone="UTC", today=today).iloc[0]["acknowledged"]
            )

    _flags(store, key, 3.5)
    assert acknowledged(3.5)
    (tmp_path / "later").mkdir()
    _load(store, tmp_path / "later", counts, _events("AC every 21 days"))
    assert set(_flags(store, key, 16)) >= {"gcsf_primary_prophylaxis", "secondary_prophylaxis"}
    assert not acknowledged(16)


def test_the_cycles_command_gives_the_columns_and_prints_the_sentences_under_its_table(
    store, db_url, tmp_path, monkeypatch
) -> None:
    from tests.test_golden import run_monitor

    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)  # (run_monitor sets it; restored after the test)

    counts = _counts({0: 4.0, 21: 1.1, 28: 1.9}, plt={21: 180, 28: 190})
    _load(store, tmp_path, counts, _events("AC every 21 days", (0, 28)))
    answer = run_monitor("cycles", "P1", "--format", "json", database=db_url)
    rows = json.loads(answer.split("--- stdout\n", 1)[1].split("--- stderr", 1)[0])
    assert [row["delay_days"] for row in rows] == [None, 7]
    assert rows[0]["support_flags"] == "gcsf_primary_prophylaxis" and rows[1]["gcsf_days"] == ""
    table = run_monitor("cycles", "P1", database=db_url)
    assert "\nC2 delayed 7 days (planned 2026-03-23): ANC 1.1 on the planned day, against ANC >= 1.5" in table
    assert "\nprimary G-CSF prophylaxis is recommended at FN risk >= 20 %" in table
    csv = run_monitor("cycles", "P1", "--format", "csv", database=db_url)
    assert "delay_days" in csv.splitlines()[3] and "support" in csv.splitlines()[3]


def _settings_set(db_url: str, key: str, value: str) -> tuple[str, str]:
    """``python -m monitor settings set KEY VALUE``: its standard output and error."""
    from tests.test_golden import run_monitor

    answer = run_monitor("settings", "set", key, value, database=db_url)
    assert "\nexit 0\n" in answer, answer
    out, err = answer.split("--- stdout\n", 1)[1].split("--- stderr\n", 1)
    return out, err


@pytest.mark.parametrize(
    ("key", "flagged"),
    [
        ("TAC", True),  # a whole word of "regimen TAC q21d"
        ("regimen tac q21d", True),  # the whole text, as before
        ("tac q21d", True),
        ("ta", False),  # part of a word
        ("TAC q14d", False),
    ],
)
def test_a_regimen_setting_applies_to_an_event_whose_details_name_it_as_whole_words(
    store, db_url, tmp_path, monkeypatch, key: str, flagged: bool
) -> None:
    """The setting is written with the command line, as a site would: ``settings set
    cycles.regimens.TAC.fn_risk '"high"'`` for events whose details say "regimen TAC q21d"."""
    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    events = EVENTS_HEADER + f"P1,chemotherapy,{_at(0, 10)},,TAC cycle 1,regimen TAC q21d\n"
    key_ = _load(store, tmp_path, _counts({0: 4.0}), events)
    _, warned = _settings_set(db_url, f"cycles.regimens.{key}.fn_risk", '"high"')
    flags = _flags(store, key_, 9)
    assert ("gcsf_primary_prophylaxis" in flags) is flagged
    if flagged:
        assert flags["gcsf_primary_prophylaxis"].startswith(
            "primary G-CSF prophylaxis is recommended at FN risk >= 20 % (ASCO 2015, EORTC, NCCN): "
            "regimen TAC q21d is a high-risk regimen (site setting)"
        )
        assert warned == ""
    else:
        assert warned == (
            f"warning: no chemotherapy event in the store names the regimen {key!r} in its details (as whole "
            "words, case-insensitive), so this setting applies to no cycle yet\n"
        )


def test_a_regimen_key_is_not_found_inside_another_word_and_the_longest_key_wins() -> None:
    from monitor.analysis.cycles.rules import CycleRules, Regimen, regimen_key

    rules = CycleRules.from_mapping(
        {
            "regimens": {
                "TAC": {"fn_risk": "high"},
                "AC": {"fn_risk": "intermediate"},
                "tac q21d": {"anc_min": 1.0},
            }
        }
    )
    assert rules.regimen("tacrolimus 2 mg") is None and rules.regimen("ATAC trial") is None
    assert rules.regimen("Regimen TAC, cycle 2") == Regimen(fn_risk="high")
    assert rules.regimen("regimen  TAC   Q21D") == Regimen(anc_min=1.0)  # longest: "tac q21d"
    assert rules.regimen("AC then TAC") == Regimen(fn_risk="high")  # "tac" (3) over "ac" (2)
    # Same length: the first in alphabetical order, whatever the order of the settings.
    assert regimen_key("AC or EC", ["ec", "ac"]) == regimen_key("AC or EC", ["ac", "ec"]) == "ac"
    assert rules.nadir_window("regimen TAC q21d") == (7, 14)


def test_the_sources_of_a_regimens_fn_risk_and_nadir_window_point_to_their_sections() -> None:
    from monitor.analysis.rules import SiteRules, setting_rows

    rules = SiteRules.from_mapping(
        {"cycles": {"regimens": {"tac": {"fn_risk": "high", "nadir_window_days": [8, 12]}}}}
    )
    sources = {row["key"]: row["source"] for row in setting_rows(rules)}
    assert sources["cycles.regimens.tac.fn_risk"].endswith("docs/clinical-basis.md, G-CSF prophylaxis")
    assert sources["cycles.regimens.tac.nadir_window_days"].endswith("docs/clinical-basis.md, CBCs due")
    assert sources["cycles.regimens.tac.anc_min"].endswith("docs/clinical-basis.md, Readiness thresholds")


@pytest.mark.parametrize(
    ("regimen", "said"),
    [
        (
            "docetaxel every 21 days",
            "dose reduction: the label of DOCETAXEL says reduce the dose after febrile neutropenia or "
            '"neutrophils <500 cells/mm3 for more than one week" (TAXOTERE (docetaxel) US prescribing '
            "information, https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview.process&"
            "ApplNo=020449); febrile neutropenia in C1 despite G-CSF",
        ),
        (
            # The paclitaxel label's rule is for ANC < 0.5 for 7 days or more, not febrile neutropenia alone.
            "paclitaxel every 21 days",
            "febrile neutropenia despite G-CSF in C1: dose reduction or a change of treatment to consider "
            "(ASCO 2015)",
        ),
        (
            "AC every 21 days",
            "febrile neutropenia despite G-CSF in C1: dose reduction or a change of treatment to consider "
            "(ASCO 2015)",
        ),
    ],
)
def test_febrile_neutropenia_despite_g_csf_calls_for_dose_reduction_in_the_next_cycle(
    store, tmp_path, regimen: str, said: str
) -> None:
    """Pegfilgrastim on D2 of C1, then ANC 0.4 with 38.9 °C on D9: C2 gets dose reduction, not secondary
    prophylaxis (G-CSF was given), and G-CSF in C2 does not answer it."""
    peg = f"P1,gcsf,{_at(1, 12)},,Pegfilgrastim 6 mg,"
    peg2 = f"P1,gcsf,{_at(22, 12)},,Pegfilgrastim 6 mg,"
    fever = f"P1,fever,{_at(8, 14)},,Fever 38.9 C,"
    counts = _counts({0: 4.0, 8: 0.4, 20: 2.0, 21 + 3: 3.0}, plt={20: 200})
    key = _load(store, tmp_path, counts, _events(regimen, (0, 21), (peg, fever, peg2)))
    cycles = _cycles(store, key)
    assert cycles["febrile_neutropenia"].tolist() == [True, False]
    assert cycles["gcsf_days"].tolist() == ["D2", "D2"]
    assert cycles.loc[1, "support_flags"] == "dose_reduction" and cycles.loc[1, "support"] == said
    # Before C2, on C1's last days, the support is for the cycle ahead.
    before = _flags(store, key, 18)
    assert before["dose_reduction"] == said and "secondary_prophylaxis" not in before
    assert _flags(store, key, 24)["dose_reduction"] == said


def test_dose_limiting_neutropenia_despite_g_csf_on_paclitaxel_quotes_the_label(
    store, db_url, tmp_path, monkeypatch
) -> None:
    """ANC < 0.5 on D8 and D14 (7 days as sampled) with filgrastim on D3: the paclitaxel label's rule, on
    the worklist and in ``python -m monitor cycles``."""
    from monitor.analysis.flags import flag_label
    from tests.test_golden import run_monitor

    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)

    counts = _counts({0: 4.0, 6: 1.1, 7: 0.4, 13: 0.3, 14: 1.2})
    fil = f"P1,gcsf,{_at(2, 12)},,Filgrastim,"
    key = _load(store, tmp_path, counts, _events("paclitaxel every 21 days", extra=(fil,)))
    flags = _flags(store, key, 16)
    assert flags["dose_reduction"].startswith("dose reduction: the label of PACLITAXEL says ")
    assert flags["dose_reduction"].endswith("; ANC < 0.5 for 7 days as sampled in C1 despite G-CSF")
    assert "secondary_prophylaxis" not in flags
    assert flag_label("dose_reduction") == "dose reduction to consider (neutropenia despite G-CSF)"
    answer = run_monitor("cycles", "P1", "--format", "json", database=db_url)
    rows = json.loads(answer.split("--- stdout\n", 1)[1].split("--- stderr", 1)[0])
    assert rows[0]["support_flags"] == "dose_reduction"
    assert rows[0]["support"] == "before C2: " + flags["dose_reduction"]


@pytest.mark.parametrize(
    ("zone", "now", "said"),
    [
        # D5 is Friday 6 March in the site zone: a reminder until its end, then the window has passed.
        ("UTC", "2026-03-02T10:00:00Z", "no G-CSF recorded yet; window D1-D5, until 2026-03-06"),
        ("UTC", "2026-03-06T23:59:00Z", "no G-CSF recorded yet; window D1-D5, until 2026-03-06"),
        ("UTC", "2026-03-07T00:00:00Z", "no G-CSF recorded on D1-D5 of C1"),
        # 23:30 UTC on 6 March is already 7 March in Berlin (UTC+1).
        ("Europe/Berlin", "2026-03-06T22:59:00Z", "no G-CSF recorded yet; window D1-D5, until 2026-03-06"),
        ("Europe/Berlin", "2026-03-06T23:30:00Z", "no G-CSF recorded on D1-D5 of C1"),
    ],
)
def test_primary_prophylaxis_is_a_reminder_until_the_g_csf_window_has_passed_in_the_site_zone(
    store, tmp_path, zone: str, now: str, said: str
) -> None:
    from db.queries import patient_list
    from db.status import refresh_patient_status

    key = _load(store, tmp_path, _counts({0: 4.0}), _events("AC every 21 days"))
    moment = datetime.fromisoformat(now)
    with store.begin() as session:
        refresh_patient_status(session, [key], now=moment, timezone=zone)
    with store() as session:
        row = patient_list(session, viewer=SYSTEM, timezone=zone, today=moment.date()).iloc[0]
    flags = dict(zip(row["flags"], row["explanations"], strict=True))
    assert flags["gcsf_primary_prophylaxis"] == (
        "primary G-CSF prophylaxis is recommended at FN risk >= 20 % (ASCO 2015, EORTC, NCCN): AC every 21 "
        "days is a high-risk regimen (site setting; NCCN, dose-dense AC); " + said
    )


@pytest.mark.parametrize(
    ("now", "said"),
    [
        ("2026-03-03 12:00", "no G-CSF recorded yet; window D1-D5, until 2026-03-06"),
        ("2026-03-09 12:00", "no G-CSF recorded on D1-D5 of C1"),
    ],
)
def test_the_cycles_command_words_the_g_csf_window_as_of_now(
    store, db_url, tmp_path, monkeypatch, now: str, said: str
) -> None:
    import time_machine

    from tests.test_golden import run_monitor

    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    monkeypatch.setenv("MONITOR_TIMEZONE", "UTC")
    _load(store, tmp_path, _counts({0: 4.0}), _events("AC every 21 days"))
    with time_machine.travel(pd.Timestamp(now, tz="UTC").to_pydatetime(), tick=False):
        answer = run_monitor("cycles", "P1", "--format", "json", database=db_url)
    rows = json.loads(answer.split("--- stdout\n", 1)[1].split("--- stderr", 1)[0])
    assert rows[0]["support_flags"] == "gcsf_primary_prophylaxis"
    assert rows[0]["support"].endswith("(site setting; NCCN, dose-dense AC); " + said)
