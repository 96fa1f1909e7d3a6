"""Site settings in the store: the analysis rules (``monitor.analysis.rules``) and the labs' reference ranges.

Read and written here; the audit row and the patient status recomputed under the new settings are the
caller's part of the same transaction (``services.rules``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.frames import read_frame
from db.models import ClinicalEvent, Lab, LabRange, Setting
from monitor.analysis.rules import SiteRules
from monitor.analytes import ANALYTES

RULES_KEY = "rules"
LAB_RANGE_COLUMNS = ["lab", "lab_name", "analyte", "low", "high", "sex", "min_months", "max_months", "source"]


def site_rules(session: Session) -> SiteRules:
    """The rules in force: the defaults with the site's stored overrides applied."""
    stored = session.get(Setting, RULES_KEY)
    return SiteRules.from_mapping(json.loads(stored.value) if stored else {})


def save_site_rules(session: Session, overrides: Mapping[str, Any], *, by: str, now: datetime) -> SiteRules:
    """Validate and store the site's overrides; return the rules now in force."""
    # Raises ValueError, naming the setting, before anything is written.
    rules = SiteRules.from_mapping(overrides)
    stored = session.get(Setting, RULES_KEY)
    if stored is None:
        session.add(Setting(key=RULES_KEY, value=rules.to_json(), updated_by=by, updated_at=now))
    else:
        stored.value, stored.updated_by, stored.updated_at = rules.to_json(), by, now
    session.flush()
    return rules


def chemotherapy_regimens(session: Session) -> list[str]:
    """The distinct details texts of the stored chemotherapy events (the regimens per-regimen settings
    match against)."""
    query = select(ClinicalEvent.details).where(ClinicalEvent.kind == "chemotherapy").distinct()
    return [str(text) for text in session.scalars(query) if text]


def lab_ranges(session: Session) -> pd.DataFrame:
    """Configured lab ranges in the shape ``resolve_lower_limit`` takes (``lab`` is the lab's key)."""
    return read_frame(
        session,
        select(
            LabRange.lab_id.label("lab"),
            LabRange.analyte,
            LabRange.low,
            LabRange.high,
            LabRange.sex,
            LabRange.min_months,
            LabRange.max_months,
        ).order_by(LabRange.lab_id, LabRange.analyte, LabRange.id),
    )


def lab_range_list(session: Session) -> pd.DataFrame:
    """Configured lab ranges for people: the lab's code and name, the range, the band and the source."""
    return read_frame(
        session,
        select(
            Lab.code.label("lab"),
            Lab.name.label("lab_name"),
            LabRange.analyte,
            LabRange.low,
            LabRange.high,
            LabRange.sex,
            LabRange.min_months,
            LabRange.max_months,
            LabRange.source,
        )
        .join(Lab, Lab.id == LabRange.lab_id)
        .order_by(Lab.code, LabRange.analyte, LabRange.id),
    )[LAB_RANGE_COLUMNS]


def set_lab_range(
    session: Session,
    *,
    lab: str,
    analyte: str,
    low: float | None,
    high: float | None = None,
    sex: str | None = None,
    min_months: float | None = None,
    max_months: float | None = None,
    source: str,
    by: str,
    now: datetime,
) -> None:
    """Set (or, with ``low`` None, remove) a lab's range for an analyte, sex and age band.

    Values are in the analyte's canonical unit (counts 10^9/L, haemoglobin g/dL).
    """
    found = session.scalar(select(Lab).where(Lab.code == lab))
    if found is None:
        known = session.scalars(select(Lab.code).order_by(Lab.code).limit(20)).all()
        raise ValueError(
            f"no lab with code {lab!r}: a lab is added by the first import of its results "
            f"(known: {', '.join(known) or 'none yet'})"
        )
    if analyte not in ANALYTES:
        raise ValueError(f"unknown analyte {analyte!r} (known: {', '.join(sorted(ANALYTES))})")
    if sex not in (None, "F", "M"):
        raise ValueError(f"sex is F, M or not given, not {sex!r}")
    if low is not None and (not low >= 0 or (high is not None and high < low)):
        raise ValueError(f"a range needs 0 <= low <= high, not {low} - {high}")
    if min_months is not None and max_months is not None and max_months <= min_months:
        raise ValueError(f"the age band needs min_months < max_months, not {min_months} - {max_months}")
    same = (
        (LabRange.lab_id == found.id)
        & (LabRange.analyte == analyte)
        & (LabRange.sex.is_(None) if sex is None else LabRange.sex == sex)
        & (LabRange.min_months.is_(None) if min_months is None else LabRange.min_months == min_months)
        & (LabRange.max_months.is_(None) if max_months is None else LabRange.max_months == max_months)
    )
    session.execute(delete(LabRange).where(same))
    if low is not None:
        session.add(
            LabRange(
                lab_id=found.id,
                analyte=analyte,
                low=low,
                high=high,
                sex=sex,
                min_months=min_months,
                max_months=max_months,
                source=source,
                updated_by=by,
                updated_at=now,
            )
        )
    session.flush()
