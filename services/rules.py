"""The site's rules and the labs' reference ranges: read, and changed by an administrator with the audit
row and every patient's status recomputed under the change, all in one transaction (lists follow the new
rules at once, and a change that cannot be applied leaves nothing behind)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import queries, settings
from db.audit import record
from db.status import refresh_all_status
from monitor.analysis.cycles.rules import regimen_key
from monitor.analysis.rules import SiteRules, set_value
from services.accounts import Viewer, require_administrator


def site_rules(store: sessionmaker[Session]) -> SiteRules:
    """The rules in force: the defaults with the site's stored overrides applied."""
    with store() as session:
        return settings.site_rules(session)


def set_setting(
    store: sessionmaker[Session], key: str, value: Any, *, viewer: Viewer, now: datetime, timezone: str
) -> SiteRules:
    """Set one setting (``section.name``, e.g. ``flags.persistent_min_days``; ``value`` None restores its
    default) over the stored overrides, then recompute every patient's status (``change_settings``)."""
    return change_settings(store, {key: value}, viewer=viewer, now=now, timezone=timezone)


def regimen_setting_warning(store: sessionmaker[Session], key: str) -> str | None:
    """For a per-regimen setting (``cycles.regimens.NAME...``): a warning when NAME matches no stored
    chemotherapy event's regimen (``cycles.rules.regimen_key``: NAME as whole words of the event's
    details), since the setting then changes nothing yet; None when it matches one, or for another key.

    Only a warning: a site may set up a regimen before its first patient is imported.
    """
    parts = key.split(".")
    if len(parts) < 3 or parts[:2] != ["cycles", "regimens"]:
        return None
    name = parts[2]
    with store() as session:
        texts = settings.chemotherapy_regimens(session)
    if any(regimen_key(text, [name]) is not None for text in texts):
        return None
    return (
        f"no chemotherapy event in the store names the regimen {name!r} in its details (as whole words, "
        "case-insensitive), so this setting applies to no cycle yet"
    )


def change_settings(
    store: sessionmaker[Session], changes: Mapping[str, Any], *, viewer: Viewer, now: datetime, timezone: str
) -> SiteRules:
    """Set the settings named in ``changes`` (a value of None restores that default) over the overrides
    stored when the transaction reads them, so a change saved meanwhile elsewhere (another instance, the
    command line) to another setting is kept, not reverted; then recompute every patient's status, its
    cycle days counted in the site's ``timezone``.

    Raises ``ValueError`` or ``TypeError``, naming the setting, before anything is written.
    """
    require_administrator(viewer, "change the site's settings")
    with store.begin() as session:
        overrides = settings.site_rules(session).overrides
        for key, value in changes.items():
            overrides = set_value(overrides, key, value)
        return _save(session, overrides, by=viewer.username, now=now, timezone=timezone)


def _save(
    session: Session, overrides: Mapping[str, Any], *, by: str, now: datetime, timezone: str
) -> SiteRules:
    rules = settings.save_site_rules(session, overrides, by=by, now=now)
    record(session, at=now, username=by, action="settings", details=dict(rules.overrides))
    refresh_all_status(session, now=now, timezone=timezone)
    return rules


def lab_range_list(store: sessionmaker[Session]) -> pd.DataFrame:
    """The configured lab ranges: the lab's code and name, the range, the sex and age band, the source."""
    with store() as session:
        return settings.lab_range_list(session)


def lab_codes(store: sessionmaker[Session]) -> list[str]:
    """The codes of the labs results came from: the labs a range can be set for."""
    with store() as session:
        return queries.lab_codes(session)


def set_lab_range(
    store: sessionmaker[Session],
    *,
    lab: str,
    analyte: str,
    low: float | None,
    high: float | None = None,
    sex: str | None = None,
    min_months: float | None = None,
    max_months: float | None = None,
    source: str,
    viewer: Viewer,
    now: datetime,
    timezone: str,
) -> None:
    """Set (or, with ``low`` None, remove) ``lab``'s range for an analyte, sex and age band, in the analyte's
    canonical unit, then recompute every patient's status (cycle days counted in the site's ``timezone``).

    Raises ``ValueError``, saying what is wrong (an unknown lab or analyte, a range or band the wrong way
    round), before anything is written.
    """
    require_administrator(viewer, "change the site's settings")
    with store.begin() as session:
        settings.set_lab_range(
            session,
            lab=lab,
            analyte=analyte,
            low=low,
            high=high,
            sex=sex,
            min_months=min_months,
            max_months=max_months,
            source=source,
            by=viewer.username,
            now=now,
        )
        details: dict[str, Any] = {"lab": lab, "analyte": analyte, "low": low, "high": high, "sex": sex}
        details["band_months"] = [min_months, max_months]
        record(session, at=now, username=viewer.username, action="lab_range", details=details)
        refresh_all_status(session, now=now, timezone=timezone)
