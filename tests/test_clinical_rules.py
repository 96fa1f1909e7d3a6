"""docs/clinical-basis.md, the product's account of its clinical rules, and the citations of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.analysis.rules import SiteRules, set_value, setting_rows
from monitor.analysis.setting_descriptions import PRIMARY_SOURCES

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docs" / "clinical-basis.md"
CITATION = "docs/clinical-basis.md, "
# Where the product speaks: its code, its pages and its documents.
PRODUCT = ("app_pages", "benchmarks", "cli", "db", "docs", "monitor", "services", "ui")


def _headings() -> list[str]:
    return re.findall(r"^#{2,3} (.+?)\s*$", RULES.read_text(encoding="utf-8"), flags=re.MULTILINE)


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _product_files() -> list[Path]:
    files = [ROOT / "dashboard.py"]
    for folder in PRODUCT:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.suffix in (".py", ".md")]
    return files


def _cited_sections(text: str) -> list[str]:
    """The text after each citation, with line breaks (and a comment's "#") folded into spaces."""
    flat = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)
    return [flat[match.end() : match.end() + 80] for match in re.finditer(re.escape(CITATION), flat)]


def _names_a_section(cited: str, headings: list[str]) -> bool:
    return any(cited.startswith(heading) for heading in headings)


def test_sections_have_distinct_stable_anchors() -> None:
    headings = _headings()
    anchors = [_anchor(h) for h in headings]
    assert len(set(anchors)) == len(anchors), "a repeated heading would get a numbered anchor"
    assert "ctcae-v50-grading" in anchors and "readiness-thresholds" in anchors


def test_links_within_the_account_reach_a_section() -> None:
    anchors = {_anchor(h) for h in _headings()}
    links = set(re.findall(r"\]\(#([^)]+)\)", RULES.read_text(encoding="utf-8")))
    assert links and links <= anchors, sorted(links - anchors)


def test_every_citation_in_the_product_names_a_section() -> None:
    headings = _headings()
    wrong = [
        f"{path.relative_to(ROOT)}: {cited[:60]!r}"
        for path in _product_files()
        for cited in _cited_sections(path.read_text(encoding="utf-8"))
        if not cited.startswith("{") and not _names_a_section(cited, headings)  # "{" a template's field
    ]
    assert not wrong


@pytest.mark.parametrize(
    "rules", [SiteRules(), SiteRules.from_mapping(set_value({}, "cycles.regimens.ac-t", {}))]
)
def test_every_setting_cites_its_source_and_section(rules: SiteRules) -> None:
    headings = _headings()
    for row in setting_rows(rules):
        source = row["source"]
        cited_source, _, section = source.partition("; see " + CITATION)
        assert section, f"{row['key']} does not cite docs/clinical-basis.md: {source!r}"
        assert cited_source.strip(), f"{row['key']} names no source"
        assert _names_a_section(section, headings), f"{row['key']}: no section {section!r}"


def test_the_product_cites_its_own_account_only() -> None:
    """No section signs pointing into notes users never see, no tracker numbers in product text."""
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()[:80]}"
        for path in _product_files()
        for line in path.read_text(encoding="utf-8").splitlines()
        if "§" in line or "clinical-reference" in line or re.search(r"\bissue[ -]\d", line, re.IGNORECASE)
    ]
    assert not found


def _section_text(heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    text = RULES.read_text(encoding="utf-8")
    found = re.search(rf"^(#{{2,3}}) {re.escape(heading)}\s*$", text, flags=re.MULTILINE)
    assert found, heading
    level = len(found.group(1))
    end = re.compile(rf"^#{{2,{level}}} ", flags=re.MULTILINE).search(text, found.end())
    return text[found.end() : end.start() if end else len(text)]


_NO_SOURCE = re.compile(r"^(no source|product default, pending clinical sign-off)")
_YEAR_AND_LINK = re.compile(r"\b(19|20)\d\d\b.*https?://\S+$")
EVERY_KIND_OF_SETTING = SiteRules.from_mapping(
    {
        "cycles": {
            "regimens": {"tac": {"fn_risk": "high", "fn_risk_source": "NCCN", "nadir_window_days": [8, 12]}}
        },
        "grading": {"rcv_inputs": {"plt": {"cv_analytical": 0.02, "cv_within": 0.07}}},
    }
)


@pytest.mark.parametrize("row", setting_rows(EVERY_KIND_OF_SETTING), ids=lambda row: row["key"])
def test_every_setting_has_a_section_and_a_citation_with_year_and_link_or_says_it_has_none(row) -> None:
    assert row["section"] in _headings(), f"{row['key']}: no section {row['section']!r}"
    assert row["setting"] and "{" not in row["setting"], row["key"]
    citation = row["citation"]
    if not _NO_SOURCE.match(citation):
        cited = [text for text in PRIMARY_SOURCES.values() if text in citation]
        rest = citation
        for text in cited:
            rest = rest.replace(text, "")
        assert cited and not rest.replace(";", "").strip(), f"{row['key']}: {citation!r}"
        for text in cited:
            assert _YEAR_AND_LINK.search(text), (
                f"{row['key']}: a citation without a year and a link: {text!r}"
            )


def test_every_primary_source_a_setting_cites_is_listed_with_its_link() -> None:
    listed = _section_text("Primary sources")
    for name, text in PRIMARY_SOURCES.items():
        link = re.search(r"https?://\S+$", text)
        assert link and link.group(0) in listed, f"{name}: {link.group(0) if link else text!r} not listed"
        author = text.split(".", 1)[0].split(",", 1)[0]
        assert author in listed, f"{name}: {author!r} not listed"


@pytest.mark.parametrize("row", setting_rows(SiteRules()), ids=lambda row: row["key"])
def test_each_settings_section_names_it_states_its_default_and_its_source(row) -> None:
    """The section a setting cites gives the setting by name with its default, and a primary source (a year
    and a link) or a plain statement that there is none."""
    body = " ".join(_section_text(row["section"]).split())
    key = row["key"]
    name = "grading.rcv_inputs" if key.startswith("grading.rcv_inputs.") else key
    short = name.rsplit(".", 1)[-1]
    assert f"`{name}`" in body or f"`{short}`" in body, f"{row['section']!r} does not name {name}"
    default = row["default"]
    if isinstance(default, float) and key.startswith("grading.rcv_inputs."):
        shown = [f"{default * 100:.1f} %"]
    elif isinstance(default, bool):
        shown = ["true", "≥"]
    elif isinstance(default, tuple | list):
        shown = [
            f"{default[0]} to {default[1]}",
            f"D{default[0]} to D{default[1]}",
            f"{default[0]}–{default[1]}",
        ]
    else:
        shown = [f"{default:g}" if isinstance(default, float) else str(default)]
    assert any(text in body for text in shown), f"{row['section']!r} does not give {key}'s default {default}"
    unit = {"days after the dose": "days", "D days": "D1", "cycle lengths": "cycle lengths"}.get(
        row["unit"], row["unit"].rsplit(" ", 1)[-1]
    )
    assert unit in body, f"{row['section']!r} does not give {key}'s unit {row['unit']!r}"
    sourced = re.search(r"\b(19|20)\d\d\b", body) and re.search(r"https?://", body)
    said = re.search(r"no source|product default|site decision|no primary source", body, flags=re.IGNORECASE)
    assert sourced or said, f"{row['section']!r} neither cites a source nor says it has none"


def test_no_code_or_test_cites_a_tracker_number() -> None:
    """Code, tests and migrations say what the behaviour is, not which tracker item asked for it."""
    files = [p for folder in (*PRODUCT, "tests", "migrations") for p in sorted((ROOT / folder).rglob("*.py"))]
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()[:80]}"
        for path in files
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.search(r"\bissue[ -]?#?\d|\bissue \d+'s\b", line, re.IGNORECASE)
    ]
    assert not found
