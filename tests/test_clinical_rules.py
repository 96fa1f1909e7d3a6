"""docs/clinical-basis.md, the product's account of its clinical rules, and the citations of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.analysis.rules import SiteRules, set_value, setting_rows

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
