"""Clinical events CSV: what happened to the patient that explains the counts.

    patient_id,kind,start,end,label,details

``kind`` is one of the event vocabulary (chemotherapy cycle start, G-CSF, medication start/stop, ...);
``start`` and ``end`` are ISO 8601 dates or date-times (``end`` optional); a date or time without an offset
is read in the site time zone. ``details`` and ``assigning_authority`` are optional columns.
"""

from __future__ import annotations

import pandas as pd

from monitor.formats.csv_long import UnusableFile, read_rows
from monitor.formats.parsed import EVENT_COLUMNS, RAW_COLUMNS, REJECT_COLUMNS, Parsed, empty
from monitor.timestamps import PLAUSIBLE_YEARS, localise_iso

EVENT_KINDS = (
    "chemotherapy",
    "gcsf",
    "medication",
    "infection",
    "fever",
    "supplement",
    "transfusion",
    "note",
)
REQUIRED = ("patient_id", "kind", "start", "label")
OPTIONAL = ("end", "details", "assigning_authority")
LABEL_LIMIT = 200


def looks_like_events_csv(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    return set(REQUIRED) <= {name.strip().lower() for name in first.split(",")}


def parse_piece(text: str, zone: str, before: int) -> Parsed:
    """An events file, read whole (``before`` is always 0): its events and refusals, no results."""
    events, rejected = parse_events(text, timezone=zone)
    return Parsed(records=empty(RAW_COLUMNS), rejected=rejected, events=events)


# Times outside these years are refused as unreadable (monitor.timestamps.PLAUSIBLE_YEARS).
_YEARS = f" in the years {PLAUSIBLE_YEARS[0]}-{PLAUSIBLE_YEARS[1]}"


def parse_events(text: str, *, timezone: str = "UTC") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events (``patient_id``, ``assigning_authority``, ``kind``, ``start``, ``end`` as UTC timestamps,
    ``label``, ``details``, ``location``) and refused rows with reasons."""
    frame, broken = read_rows(text)
    frame = frame.rename(columns={n: n.lower() for n in frame.columns if n.lower() in (*REQUIRED, *OPTIONAL)})
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise UnusableFile(f"the events header lacks {', '.join(missing)}")
    frame = frame.reindex(columns=[*REQUIRED, *OPTIONAL, "line", "raw_text"], fill_value="")
    text_of = {c: frame[c].fillna("").astype(str).str.strip() for c in (*REQUIRED, *OPTIONAL)}
    start = pd.to_datetime(localise_iso(text_of["start"], timezone).replace("", None), utc=True)
    end = pd.to_datetime(localise_iso(text_of["end"], timezone).replace("", None), utc=True)
    # Names hospitals send for these kinds (G-CSF as a drug name in a medication's label is read by
    # analysis.cycles.support.gcsf_events).
    kind = (
        text_of["kind"]
        .str.lower()
        .replace(
            {
                "g-csf": "gcsf",
                "g_csf": "gcsf",
                "growth_factor": "gcsf",
                "growth factor": "gcsf",
                "chemo": "chemotherapy",
            }
        )
    )
    checks = [
        (text_of["patient_id"] == "", "patient_id is empty"),
        (~kind.isin(EVENT_KINDS), "kind '" + text_of["kind"] + "' is not one of " + ", ".join(EVENT_KINDS)),
        (start.isna(), "start '" + text_of["start"] + f"' is not an ISO 8601 date or date-time{_YEARS}"),
        (
            (text_of["end"] != "") & end.isna(),
            "end '" + text_of["end"] + f"' is not an ISO 8601 date or date-time{_YEARS}",
        ),
        (end < start, "end " + text_of["end"] + " is before start " + text_of["start"]),
        (text_of["label"] == "", "label is empty"),
    ]
    reason = pd.Series(pd.NA, index=frame.index, dtype="object")
    for mask, message in reversed(checks):
        reason = reason.mask(mask.fillna(False).astype(bool), message)
    location = "line " + frame["line"].astype(str)
    refused = pd.DataFrame({"location": location, "raw_text": frame["raw_text"], "reason": reason})
    events = pd.DataFrame(
        {
            "patient_id": text_of["patient_id"],
            "assigning_authority": text_of["assigning_authority"],
            "kind": kind,
            "start_at": start.astype("datetime64[us, UTC]"),
            "end_at": end.astype("datetime64[us, UTC]"),
            "label": text_of["label"].str.slice(0, LABEL_LIMIT),
            "details": text_of["details"],
            "location": location,
            "raw_text": frame["raw_text"],
        },
        columns=list(EVENT_COLUMNS),
    )
    ok = reason.isna()
    rejected = pd.concat([broken, refused[~ok]], ignore_index=True)[list(REJECT_COLUMNS)]
    return events[ok].reset_index(drop=True), rejected
