"""One patient's nadir forecast as of a time: what the ``forecast`` command prints."""

from __future__ import annotations

import warnings
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db import queries
from db.accounts import Viewer
from db.settings import site_rules
from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.forecast import Forecast, forecast_patient
from monitor.analysis.status import EXCLUDED_STATUSES

__all__ = ["NO_CHEMOTHERAPY", "forecast_from", "patient_forecast"]

NO_CHEMOTHERAPY = "no chemotherapy recorded before this time"


def patient_forecast(
    store: sessionmaker[Session], *, viewer: Viewer, patient_key: int, timezone: str, as_of: datetime
) -> Forecast:
    """The forecast of the patient's latest cycle started at or before ``as_of`` from the usable ANC results
    collected before it (``analysis.forecast.forecast_patient``), under the site's cycle rules; without
    chemotherapy by then, a ``Forecast`` with only its reason."""
    with store() as session:
        results = queries.patient_results(session, patient_key, viewer=viewer, analytes=("anc",))
        events = queries.patient_events(session, patient_key, viewer=viewer)
        rules = site_rules(session).cycles
    return forecast_from(
        results, events, patient_key=patient_key, rules=rules, timezone=timezone, as_of=as_of
    )


def forecast_from(
    results: pd.DataFrame,
    events: pd.DataFrame,
    *,
    patient_key: int,
    rules: CycleRules,
    timezone: str,
    as_of: datetime,
) -> Forecast:
    """The forecast from a patient's results (any analytes: the usable ANC ones are used) and events, as
    the ``forecast`` command and the patient pages show it."""
    at = pd.Timestamp(as_of)
    chemotherapy = events["kind"].eq("chemotherapy") & pd.to_datetime(events["start_at"], utc=True).le(at)
    if not chemotherapy.any():
        return Forecast(None, None, reason=NO_CHEMOTHERAPY)
    usable = results["analyte"].eq("anc") & results["value"].notna()
    if "status" in results:
        usable &= ~results["status"].isin(EXCLUDED_STATUSES)
    anc = results[usable.to_numpy(dtype=bool)][["collected_at", "value"]]
    with warnings.catch_warnings():
        # (the model is integrated as logarithms held within bounds; kept quiet for any trial parameters)
        warnings.simplefilter("ignore", RuntimeWarning)
        return forecast_patient(
            anc, events.assign(patient_key=patient_key), as_of=at, rules=rules, timezone=timezone
        )
