"""The Settings page as a new administrator reads it: every rule in words with its unit and a source a
reader can check, raw keys and JSON only in the Advanced expander, a number changed in words saved and
applied."""

from __future__ import annotations

import json
import re

from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from db.store import open_store
from monitor.analysis.rules import SiteRules, setting_rows

# The page tests' fixtures, one definition: Streamlit's caches cleared around each test (autouse); the store
# holding canonical-good.csv that the dashboard opens is conftest's imported_store.
from tests.test_dashboard import _app, _clear_caches  # noqa: F401


def _stored(url: str) -> dict:
    with open_store(url, timezone="UTC")() as session:
        stored = session.execute(text("SELECT value FROM setting WHERE key = 'rules'")).scalar_one_or_none()
    return json.loads(stored or "{}")


SAVE = "FormSubmitter:settings_words-Save changes and recompute"
KEYS = [row["key"] for row in setting_rows(SiteRules())]


def _settings_page() -> AppTest:
    at = _app().run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception
    return at


def _advanced(at: AppTest):
    return next(e for e in at.expander if e.label.startswith("Advanced"))


def _shown_text(node) -> list[str]:
    """Every text a reader sees under ``node``: markdown, captions, headings, labels and help of inputs,
    tab and expander labels, and the cells of tables."""
    found: list[str] = []
    for child in getattr(node, "children", {}).values():
        found += _shown_text(child)
    for name in ("value", "label", "help", "body"):
        item = getattr(node, name, None) if name != "value" or node.type in _TEXTS else None
        if isinstance(item, str):
            found.append(item)
    if node.type == "dataframe":
        found += node.value.astype(str).stack().tolist() + [str(c) for c in node.value.columns]
    return found


_TEXTS = {"markdown", "caption", "title", "header", "subheader", "text", "alert", "error", "info", "warning"}


def _outside(at: AppTest, skip) -> list[str]:
    def walk(node) -> list[str]:
        if node is skip:
            return []
        found: list[str] = []
        for child in getattr(node, "children", {}).values():
            found += walk(child)
        if not getattr(node, "children", None):
            found += _shown_text(node)
        elif node.type in ("tab", "expander"):
            found.append(node.label)
        return found

    return walk(at._tree)


def _input(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


def _caption_of(at: AppTest, start: str) -> str:
    return next(c.value for c in at.caption if c.value.startswith(start))


def test_each_rule_reads_in_words_with_its_unit_and_a_source_a_reader_can_check(imported_store) -> None:
    at = _settings_page()
    rcv = _caption_of(at, "A fall is significant when it exceeds the reference change value at Z = 1.645")
    assert "Fokkema MR" in rcv and "Reference change values for brain natriuretic peptides revisited" in rcv
    assert "Clin Chem 2006" in rcv and "(https://doi.org/10.1373/clinchem.2006.069369)" in rcv
    assert rcv.endswith("docs/clinical-basis.md, Reference change values")
    chronic = _caption_of(at, "A run below the limit is chronic once it has lasted 90 calendar days")
    assert "Dale DC, Bolyard AA" in chronic and "2017" in chronic and "PMC5380401" in chronic
    # Several sources, each its own link.
    recovery = _caption_of(at, "Recovery is the first ANC at or above 1.5 ×10^9/L after the nadir")
    assert "(https://pmc.ncbi.nlm.nih.gov/articles/PMC5380401)" in recovery
    assert "TAXOL (paclitaxel)" in recovery and "approved 1992" in recovery and "ApplNo=020262)" in recovery
    slope = _caption_of(
        at, "The trend line runs through the results outside chemotherapy cycles in the 180 days"
    )
    assert "Source: no source: site decision" in slope
    # Each input names its unit and keeps to sensible bounds; a yes/no rule is a toggle, a window two days.
    chronic_input = _input(at, "Days before a run is chronic (calendar days)")
    assert chronic_input.value == 90 and chronic_input.min == 1
    assert next(n for n in at.number_input if n.label == "Recovery ANC (×10^9/L)").value == 1.5
    assert (
        next(n for n in at.number_input if n.label == "WBC: within-subject variation (CVI) (%)").value == 10.8
    )
    assert [t.label for t in at.toggle] == ["A count exactly at the threshold is ready"]
    assert {n.label for n in at.number_input} >= {
        "Nadir window: from",
        "Nadir window: to",
    }
    assert [h.value for h in at.subheader][:4] == [
        "Grading",
        "Flags",
        "Cycles",
        "Readiness for the next cycle",
    ]
    assert "Febrile neutropenia" in [h.value for h in at.subheader]
    # Every setting has its sentence and a source: a citation with a year and a link, or "no source".
    sources = [c.value for c in at.caption if "\nSource: " in c.value]
    assert len(sources) == len(KEYS)
    for caption in sources:
        cited = caption.split("\nSource: ", 1)[1]
        assert re.search(r"\b(19|20)\d\d\b.*\(https?://", cited) or re.match(
            r"(no source|product default)", cited
        )


def test_no_section_sign_or_tracker_number_is_shown(imported_store) -> None:
    shown = " ".join(_shown_text(_settings_page()._tree))
    assert "§" not in shown
    assert not re.search(r"\bissue\b", shown, flags=re.IGNORECASE)
    assert "reference §" not in shown and "clinical-reference" not in shown


def test_raw_keys_and_json_are_only_in_the_advanced_expander(imported_store) -> None:
    at = _settings_page()
    advanced = _advanced(at)
    inside = " ".join(_shown_text(advanced))
    assert "flags.chronic_min_days" in inside and "grading.rcv_z" in inside
    outside = " ".join(_outside(at, advanced))
    assert "Days before a run is chronic" in outside  # the words are outside
    leaked = [key for key in KEYS if key in outside or key.rsplit(".", 1)[-1] in outside]
    assert not leaked
    assert not re.search(r"[{\[]\s*\d", outside.replace("×10^9/L", "")), "a JSON value outside Advanced"


def test_a_number_changed_in_words_is_saved_audited_and_applied(imported_store) -> None:
    at = _settings_page()
    _input(at, "Days before a run is chronic (calendar days)").set_value(120)
    _input(at, "Nadir window: to").set_value(12)
    at.button(key=SAVE).click().run()
    assert not at.exception and not at.error
    with open_store(imported_store, timezone="UTC")() as session:
        audited = session.execute(text("SELECT username FROM audit_log WHERE action = 'settings'")).all()
    assert _stored(imported_store) == {
        "flags": {"chronic_min_days": 120},
        "cycles": {"nadir_window_days": [7, 12]},
    }
    assert [row[0] for row in audited] == ["admin"]
    # The page reads the saved rule back: its sentence and its input say 120 now, and saving again with no
    # change stores nothing new.
    at.run()
    assert _caption_of(at, "A run below the limit is chronic once it has lasted 120 calendar days")
    assert "changed; the default is 90 calendar days" in _caption_of(at, "A run below the limit is chronic")
    assert _input(at, "Days before a run is chronic (calendar days)").value == 120
    at.button(key=SAVE).click().run()
    assert not at.exception
    assert any(i.value == "Nothing changed." for i in at.info)


def test_setting_a_number_back_to_its_default_removes_the_override(imported_store) -> None:
    at = _settings_page()
    _input(at, "Z of the reference change value").set_value(1.96)
    at.button(key=SAVE).click().run()
    at.run()
    _input(at, "Z of the reference change value").set_value(1.645)
    at.button(key=SAVE).click().run()
    assert not at.exception and not at.error
    assert _stored(imported_store) == {}


def test_a_refused_change_is_named_in_words_and_nothing_is_stored(imported_store) -> None:
    at = _settings_page()
    _input(at, "Nadir window: from").set_value(15)
    at.button(key=SAVE).click().run()
    assert not at.exception
    [error] = at.error
    assert error.value.startswith('Not saved: "Nadir window" must be two days, first')
    assert "nadir_window_days" not in error.value
    assert _stored(imported_store) == {}


def test_a_yes_or_no_rule_is_a_toggle_saved_as_true_or_false(imported_store) -> None:
    at = _settings_page()
    [toggle] = at.toggle
    assert toggle.label == "A count exactly at the threshold is ready" and toggle.value is True
    toggle.set_value(False)
    at.button(key=SAVE).click().run()
    assert not at.exception and not at.error
    assert _stored(imported_store) == {"cycles": {"readiness": {"inclusive": False}}}
    at.run()
    said = _caption_of(at, "A count exactly at the threshold counts as ready: no")
    assert "(changed; the default is yes)" in said
