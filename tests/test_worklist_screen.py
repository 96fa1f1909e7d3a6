"""The worklist as a clinician reads it on screen: a cell per lineage (its CTCAE grade and count, coloured
by severity), the pattern, the last CBC and the cycle day; the "any worsening" and "no CBC for N days"
filters, N being the site's setting; the CSV with every column."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from db.accounts import Viewer
from db.store import open_store
from monitor.analysis.rules import SiteRules, setting_rows
from monitor.analysis.triage import filtered, headline, prioritised

# The page tests' fixtures, one definition: Streamlit's caches cleared around each test (autouse); the store
# holding canonical-good.csv that the dashboard opens is conftest's imported_store.
from tests.test_dashboard import _app, _clear_caches  # noqa: F401
from tests.test_triage import make_patients
from ui.worklist import (
    GRADE_CSS,
    HIGH_CSS,
    LOW_OTHERS,
    SCREEN_ONLY,
    TIER_CSS,
    worklist_colours,
    worklist_table,
)

ADMIN = Viewer("admin", "admin", None)


def _listed(**columns: list) -> pd.DataFrame:
    """A prioritised worklist of ``len(patient_id)`` patients with every column the table reads."""
    count = len(columns["patient_id"])
    empty = [None] * count
    defaults = {
        "wbc_recent": [[] for _ in range(count)],
        "cycle": empty,
        "cycle_day": empty,
        "cycle_start": [pd.NaT] * count,
        "next_dose_day": empty,
        "readiness_from_day": empty,
        "ready_now": empty,
        "age": empty,
        "sex": empty,
        **{f"latest_{a}{f}": empty for a in ("wbc", "anc", "alc") for f in ("", "_comparator")},
    }
    return prioritised(make_patients(**{**defaults, **columns}))


def test_each_lineage_has_its_own_cell_with_grade_and_count_and_hb_and_platelets_only_when_low() -> None:
    # The status as it will carry haemoglobin, platelets and the lab's own flags (read where present).
    shown = _listed(
        patient_id=["LOW", "HIGH", "PLT"],
        flags=[["leukopenia", "neutropenia"], ["leukocytosis"], []],
        latest_wbc=[1.9, 105.6, 5.2],
        latest_wbc_grade=[3, 0, 0],
        latest_anc=[0.32, 9.1, 3.0],
        latest_anc_grade=[4, 0, 0],
        latest_anc_lab_flag=[None, "H", None],
        latest_alc=[1.1, 2.0, 0.45],
        latest_alc_grade=[0, 0, 3],
        latest_hgb=[9.1, 15.0, 13.0],
        latest_hgb_grade=[2, 0, 0],
        latest_plt=[40.0, 300.0, 20.0],
        latest_plt_grade=[3, 0, 4],
        cycle=[2, None, None],
        cycle_day=[9, None, None],
        days_since_cbc=[0, 3, 41],
    )
    table = worklist_table(shown, "UTC").set_index("Patient ID")
    low, high, plt = table.loc["LOW"], table.loc["HIGH"], table.loc["PLT"]
    assert (low["WBC"], low["ANC"], low["ALC"]) == ("G3 1.9", "G4 0.32", "1.1")
    assert (high["WBC"], high["ANC"], high["ALC"]) == (
        "↑ 105.6",
        "9.1 H",
        "2",
    )  # the lab's H beside it, no ↑ of its own
    assert (plt["ALC"], plt["Hb"], plt["Plt"]) == ("G3 0.45", "", "Plt G4 20")
    # Hb and platelets share one cell on screen, the higher grade first; each has its own CSV column.
    assert (low[LOW_OTHERS], high[LOW_OTHERS], plt[LOW_OTHERS]) == ("Plt G3 40 · Hb G2 9.1", "", "Plt G4 20")
    assert (low["Cycle day"], high["Cycle day"], low["Days since CBC"]) == ("C2D10", "", 0)
    # The colours follow the grades (pale to strong red), a count above its upper limit has its own; the
    # Priority cell is coloured by the tier.
    css = worklist_colours(shown, worklist_table(shown, "UTC")).set_axis(table.index)
    assert (css.loc["LOW", "ANC"], css.loc["LOW", "WBC"], css.loc["LOW", "ALC"]) == (
        GRADE_CSS[4],
        GRADE_CSS[3],
        "",
    )
    assert (css.loc["HIGH", "WBC"], css.loc["HIGH", "ANC"]) == (HIGH_CSS, "")
    assert css.loc["PLT", LOW_OTHERS] == GRADE_CSS[4] and css.loc["LOW", LOW_OTHERS] == GRADE_CSS[3]
    assert css.loc["LOW", "Priority"] == TIER_CSS[1]


def test_the_table_reads_a_status_without_haemoglobin_platelets_or_lab_flags() -> None:
    shown = _listed(patient_id=["A"], latest_wbc=[3.1], latest_wbc_grade=[1], flags=[["leukopenia"]])
    row = worklist_table(shown, "UTC").iloc[0]
    assert (row["WBC"], row["ANC"], row["Hb"], row["Plt"], row[LOW_OTHERS], row["Pattern"]) == (
        "G1 3.1",
        "",
        "",
        "",
        "",
        "",
    )


def test_worsening_in_any_lineage_and_no_recent_cbc_filter_and_count_with_the_days_given() -> None:
    shown = _listed(
        patient_id=["WBC", "ANC", "ALC", "DROP", "STABLE", "NEVER"],
        flags=[
            ["leukopenia", "worsening"],
            ["neutropenia", "anc_worsening"],
            ["lymphopenia", "alc_worsening"],
            ["alc_significant_drop"],
            ["leukopenia", "persistent"],
            [],
        ],
        days_since_cbc=[1, 10, 20, 45, 60, None],
    )
    worse = filtered(shown, worsening_only=True)["patient_id"].tolist()
    assert sorted(worse) == ["ALC", "ANC", "DROP", "WBC"]
    assert sorted(filtered(shown, no_cbc_days=30)["patient_id"]) == ["DROP", "STABLE"]
    assert sorted(filtered(shown, no_cbc_days=14)["patient_id"]) == ["ALC", "DROP", "STABLE"]
    assert filtered(shown, worsening_only=True, no_cbc_days=30)["patient_id"].tolist() == ["DROP"]
    counts = headline(shown, no_cbc_days=14)
    assert (counts["Any worsening"], counts["No CBC for 14 days"]) == (4, 3)
    assert "No CBC for 30 days" in headline(shown)  # the site's default


def test_the_days_without_a_cbc_are_a_site_setting_with_its_source() -> None:
    row = next(r for r in setting_rows(SiteRules()) if r["key"] == "flags.no_cbc_days")
    assert (row["value"], row["default"]) == (30, 30)
    assert row["source"].startswith("no source: site decision") and row["source"].endswith("Worklist filters")
    assert SiteRules.from_mapping({"flags": {"no_cbc_days": 14}}).flags.no_cbc_days == 14
    with pytest.raises(ValueError, match="no_cbc_days"):
        SiteRules.from_mapping({"flags": {"no_cbc_days": 0}})


def _cell_styles(at) -> dict[tuple[int, int], str]:
    """The CSS of each styled cell of the page's first table, by (row, column) of its data."""
    css = at.dataframe[0].proto.arrow_data.styler.styles
    styles: dict[tuple[int, int], str] = {}
    for selectors, block in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        for row, column in re.findall(r"_row(\d+)_col(\d+)", selectors):
            styles[(int(row), int(column))] = block.strip()
    return styles


def test_the_worklist_page_shows_a_graded_cell_per_lineage_coloured_by_severity(imported_store) -> None:
    at = _app().run()
    assert not at.exception
    table = at.dataframe[0].value
    mrn1001 = int(table.index[table["Patient ID"] == "MRN1001"][0])
    row = table.iloc[mrn1001]
    # MRN1001: WBC 3.1 (grade 1), ANC 0.9 (grade 3); no ALC measured.
    assert (row["WBC"], row["ANC"], row["ALC"], row["Pattern"]) == ("G1 3.1", "G3 0.9", "", "ANC only")
    # On screen: the lineages, the pattern, the last CBC and the cycle day; not the one "Grade".
    shown = list(at.dataframe[0].proto.column_order)
    assert shown[:7] == ["Priority", "Why", "Patient ID", "Name", "WBC", "ANC", "ALC"]
    assert {"Pattern", "Days since CBC", "Cycle day"} <= set(shown) and "Grade" not in shown
    labels = {name: config.get("label") for name, config in json.loads(at.dataframe[0].proto.columns).items()}
    assert (labels["Days since CBC"], labels["Cycle day"]) == ("Last CBC", "Cycle")
    styles = _cell_styles(at)
    column = list(table.columns).index
    assert styles[(mrn1001, column("ANC"))] == GRADE_CSS[3]
    assert styles[(mrn1001, column("WBC"))] == GRADE_CSS[1]
    assert (mrn1001, column("ALC")) not in styles
    assert styles[(mrn1001, column("Priority"))] == TIER_CSS[2]


def test_the_page_shows_haemoglobin_and_platelets_when_the_status_carries_them(
    imported_store, monkeypatch
) -> None:
    import services.worklist

    real = services.worklist.worklist

    def with_blood_counts(*args, **kwargs):
        # The status as the haemoglobin and platelet columns give it: MRN1001's platelets low (grade 3).
        listed = real(*args, **kwargs)
        first = (listed["patient_id"] == "MRN1001").to_numpy()
        return listed.assign(
            latest_hgb=[13.2 if f else None for f in first],
            latest_hgb_grade=[0 if f else None for f in first],
            latest_plt=[40.0 if f else None for f in first],
            latest_plt_grade=[3 if f else None for f in first],
        )

    monkeypatch.setattr(services.worklist, "worklist", with_blood_counts)
    at = _app().run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("Patient ID")
    assert (table.loc["MRN1001", LOW_OTHERS], table.loc["MRN2002", LOW_OTHERS]) == ("Plt G3 40", "")


def test_the_any_worsening_and_no_recent_cbc_toggles_narrow_the_list_with_the_sites_days(
    imported_store, offered_downloads
) -> None:
    from services.rules import set_setting

    # MRN2002's last CBC was drawn on 5 March 2026, MRN1001's on 16 March: a site that counts from
    # MRN2002's age lists it alone.
    days = (datetime.now(UTC).date() - date(2026, 3, 5)).days
    store = open_store(imported_store, timezone="UTC")
    set_setting(store, "flags.no_cbc_days", days, viewer=ADMIN, now=datetime.now(UTC), timezone="UTC")
    at = _app().run()
    assert not at.exception
    label = f"No CBC for {days} days"
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics[label], metrics["Any worsening"]) == ("1", "1")
    at.toggle(key="worklist_no_cbc").set_value(True).run()
    assert at.toggle(key="worklist_no_cbc").label == label
    assert at.dataframe[0].value["Patient ID"].tolist() == ["MRN2002"]
    at.toggle(key="worklist_no_cbc").set_value(False).run()
    # MRN1001's WBC and ANC fell beyond their reference change values; MRN2002 has one panel only.
    at.toggle(key="worklist_worsening").set_value(True).run()
    assert at.dataframe[0].value["Patient ID"].tolist() == ["MRN1001"]
    # The CSV keeps every column, those not on screen among them, but not the screen's own summaries.
    made = offered_downloads["Download this list (CSV)"]()
    exported = pd.read_csv(io.BytesIO(made if isinstance(made, bytes) else made.encode()))
    assert {"Flags", "Grade", "Last CBC", "Cycle", "Teams", "Hb", "Plt", "ANC"} <= set(exported.columns)
    assert not set(SCREEN_ONLY) & set(exported.columns)
    assert exported["Patient ID"].tolist() == ["MRN1001"]


def test_a_graded_high_count_shows_its_ctcae_grade_and_the_forecast_and_due_chips_show_on_screen() -> None:
    # The Flags column is in the CSV only: what changes no tier must still be seen beside the reason.
    shown = _listed(
        patient_id=["HYPER", "FORECAST", "DUE"],
        flags=[["leukocytosis", "lymphocytosis"], [], []],
        latest_wbc=[105.6, 5.0, 5.0],
        latest_wbc_grade=[0, 0, 0],
        latest_wbc_high_grade=[3, None, None],
        latest_alc=[41.2, 2.0, 2.0],
        latest_alc_grade=[0, 0, 0],
        latest_alc_high_grade=[3, None, None],
        forecast_grade4=[False, True, False],
        p_grade4=[None, 0.62, None],
        cbc_due=[False, False, True],
        days_since_cbc=[0, 0, 0],
    )
    table = worklist_table(shown, "UTC").set_index("Patient ID")
    assert (table.loc["HYPER", "WBC"], table.loc["HYPER", "ALC"]) == ("↑G3 105.6", "↑G3 41.2")
    css = worklist_colours(shown, worklist_table(shown, "UTC")).set_index(table.index)
    assert css.loc["HYPER", "WBC"] == GRADE_CSS[3]
    assert "forecast grade 4: 62 %" in table.loc["FORECAST", "Why"]
    assert "CBC due" in table.loc["DUE", "Why"]
    assert "forecast" not in table.loc["DUE", "Why"]


def test_a_count_from_an_earlier_panel_is_greyed_and_the_labs_high_flag_alone_sets_no_arrow() -> None:
    last = pd.Timestamp("2026-12-01 08:00", tz="UTC")
    shown = _listed(
        patient_id=["OLD-ANC", "LAB-H"],
        flags=[[], []],
        latest_wbc=[150.0, 10.5],
        latest_wbc_grade=[0, 0],
        latest_wbc_at=[last, last],
        latest_wbc_lab_flag=["HH", "H"],
        latest_anc=[62.0, 7.0],
        latest_anc_grade=[0, 0],
        latest_anc_at=[last - pd.Timedelta(days=30), last],
        last_collected_at=[last, last],
        days_since_cbc=[2, 2],
    )
    table = worklist_table(shown, "UTC")
    css = worklist_colours(shown, table)
    rows = table.set_index("Patient ID")
    # The product's limits say 10.5 is not high: the lab's H is shown, no arrow of the product's own.
    assert rows.loc["LAB-H", "WBC"] == "10.5 H"
    assert "italic" in css.loc[0, "ANC"] and "italic" not in css.loc[0, "WBC"]
    assert "italic" not in css.loc[1, "ANC"]
