"""Wide lab exports: one row per panel, one column per analyte with its unit in the header.

    patient_id,collected_at,lab,accession,WBC (10^9/L),ANC (10^9/L),Hgb (g/dL),PLT [K/uL]

An analyte column's name is a canonical name, a LOINC code or a local alias (``monitor.analytes``), followed
by its unit in parentheses or brackets. Each non-empty cell becomes one raw record, located by line and
column. Other exports are read by renaming their columns first (``rename_columns``).
"""

from __future__ import annotations

import re

from monitor.analytes import resolve_analyte
from monitor.formats.csv_long import UnusableFile, read_rows
from monitor.formats.parsed import RAW_COLUMNS, Parsed
from monitor.timestamps import localise_iso

PANEL_COLUMNS = ("patient_id", "assigning_authority", "collected_at", "lab", "accession", "status")
_HEADER = re.compile(r"^\s*(?P<analyte>[^(\[]+?)\s*[(\[]\s*(?P<unit>[^)\]]*?)\s*[)\]]\s*$")


def analyte_columns(names: list[str]) -> dict[str, tuple[str, str]]:
    """Columns naming an analyte and a unit: ``{column: (analyte, unit)}``.

    >>> analyte_columns(["patient_id", "WBC (10^9/L)", "NEUT# [K/uL]", "Comment (free)"])
    {'WBC (10^9/L)': ('wbc', '10^9/L'), 'NEUT# [K/uL]': ('anc', 'K/uL')}
    """
    found = {}
    for name in names:
        match = _HEADER.match(name)
        analyte = resolve_analyte(match["analyte"]) if match else None
        if match and analyte:
            found[name] = (analyte, match["unit"])
    return found


def looks_like_wide_csv(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    names = [name.strip() for name in first.split(",")]
    lowered = {name.lower() for name in names}
    return {"patient_id", "collected_at"} <= lowered and bool(analyte_columns(names))


def parse_wide_csv(text: str, *, timezone: str | None = None, lines_before: int = 0) -> Parsed:
    """Melt a wide export into raw records (one per non-empty analyte cell)."""
    frame, broken = read_rows(text, lines_before=lines_before)
    names = list(frame.columns)
    lowered = {name: name.strip().lower() for name in names if name.strip().lower() in PANEL_COLUMNS}
    missing = [c for c in ("patient_id", "collected_at") if c not in lowered.values()]
    columns = analyte_columns([n for n in names if n not in lowered])
    if missing or not columns:
        raise UnusableFile(
            "a wide CSV needs patient_id, collected_at and analyte columns such as 'WBC (10^9/L)'"
        )
    frame = frame.rename(columns=lowered)
    if timezone:
        given = frame["collected_at"].str.strip()
        localised = localise_iso(given, timezone)
        frame["collected_at"] = localised.where(localised != "", given)  # unreadable: refused downstream
    melted = frame.melt(
        id_vars=[c for c in [*PANEL_COLUMNS, "line", "raw_text"] if c in frame],
        value_vars=list(columns),
        var_name="column",
        value_name="value",
    )
    melted = melted[melted["value"].str.strip() != ""]
    melted["analyte"] = melted["column"].map({name: pair[0] for name, pair in columns.items()})
    melted["unit"] = melted["column"].map({name: pair[1] for name, pair in columns.items()})
    melted["location"] = "line " + melted["line"].astype(str) + ", column " + melted["column"]
    records = melted.reindex(columns=list(RAW_COLUMNS), fill_value="").fillna("").astype(str)
    order = melted["line"].astype(int).to_numpy().argsort(kind="stable")
    return Parsed(records=records.iloc[order].reset_index(drop=True), rejected=broken)


def parse_piece(text: str, zone: str, before: int) -> Parsed:
    """A piece of a wide CSV (``before``: its data lines before it); ``zone`` '' refuses times without an
    offset."""
    return parse_wide_csv(text, timezone=zone or None, lines_before=before)


def rename_columns(text: str, mapping: dict[str, str]) -> str:
    """The file with its header's columns renamed (``{"MRN": "patient_id", ...}``); rows untouched."""
    if not mapping:
        return text
    head, newline, rest = text.partition("\n")
    names = [name.strip() for name in head.rstrip("\r").lstrip("\ufeff").split(",")]
    unknown = [source for source in mapping if source not in names]
    if unknown:
        raise UnusableFile(f"--map names columns the header does not have: {', '.join(unknown)}")
    renamed = ",".join(mapping.get(name, name) for name in names)
    return renamed + ("\r" if head.endswith("\r") else "") + newline + rest
