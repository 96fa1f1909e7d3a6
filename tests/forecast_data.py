"""A small treated cohort for the nadir forecast tests, placed relative to today (UTC), imported through the
real importer: FC-1 on D6 of cycle 2 of a 21-day regimen with counts in both cycles, FC-2 dosed 3 days ago
with only its pre-dose count, OK-1 never treated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.imports import ImportOptions, import_path

TODAY = datetime.now(UTC).date()
HEADER = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
EVENTS = "patient_id,kind,start,end,label,details\n"
# FC-1: cycle 1 given 26 days ago, cycle 2 5 days ago (its nadir still ahead); ANC (day, value).
CYCLE_1, CYCLE_2 = -26, -5
FC1_COUNTS = (
    (CYCLE_1 - 2, 4.2),
    (CYCLE_1 + 5, 2.1),
    (CYCLE_1 + 8, 0.9),
    (CYCLE_1 + 12, 0.7),
    (CYCLE_1 + 16, 1.9),
    (CYCLE_2, 3.9),
    (CYCLE_2 + 4, 2.6),
)


def day(offset: int, clock: str = "08:00") -> str:
    return f"{TODAY + timedelta(days=offset)}T{clock}:00Z"


def results(extra: tuple[tuple[str, int, float], ...] = ()) -> str:
    rows = [("FC-1", offset, value) for offset, value in FC1_COUNTS]
    rows += [("FC-2", -4, 4.5), ("OK-1", -1, 3.5), *extra]
    return HEADER + "".join(
        f"{patient},{day(offset)},anc,{value},10^9/L,1.8,7.7,CITY,{patient}-{offset},final\n"
        f"{patient},{day(offset)},wbc,{value * 1.6 + 1:.1f},10^9/L,4.0,11.0,CITY,{patient}-{offset},final\n"
        for patient, offset, value in rows
    )


def events(gcsf: bool = False) -> str:
    """The doses; ``gcsf``: and filgrastim on D3-D10 of FC-1's cycle 2."""
    doses = [("FC-1", CYCLE_1, 1), ("FC-1", CYCLE_2, 2), ("FC-2", -3, 1)]
    support = f'FC-1,gcsf,{day(CYCLE_2 + 2)},{day(CYCLE_2 + 9)},"Filgrastim, cycle 2",prophylaxis\n'
    return (
        EVENTS
        + "".join(
            f'{patient},chemotherapy,{day(offset, "10:00")},,"Docetaxel, cycle {n}",docetaxel q21d\n'
            for patient, offset, n in doses
        )
        + (support if gcsf else "")
    )


def import_cohort(
    store, folder: Path, extra: tuple[tuple[str, int, float], ...] = (), *, gcsf: bool = False
) -> None:
    """Import the results, then the doses (and G-CSF), as the site would (site zone UTC)."""
    options = ImportOptions(imported_by="test", site_timezone="UTC")
    for name, text in (("results.csv", results(extra)), ("events.csv", events(gcsf))):
        (folder / name).write_text(text)
        import_path(store, folder / name, options=options)
