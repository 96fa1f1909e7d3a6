"""The nadir forecast the patient status keeps: each treated patient's, fitted only when its inputs changed.

``status_forecasts`` runs within a status refresh (``db.status``): for each patient in a chemotherapy cycle
now it forecasts the cycle's nadir (``monitor.analysis.forecast``), or copies the stored forecast when the
fingerprint of what it was fitted to (``forecast_key``) is unchanged, so that a recompute of a cohort whose
counts did not change does not refit everyone (one fit takes about a second).
"""

from __future__ import annotations

import hashlib
import warnings
from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.frames import read_frame_in
from db.models import PatientStatus
from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.forecast import MODEL, forecast_patient

__all__ = ["FORECAST_STATUS", "status_forecasts"]

# The forecast's columns in the patient status (the figures of a ``Forecast`` but its start, the count used
# and the reason, which is nullable text there), and the fingerprint of its inputs.
FORECAST_STATUS = [
    "forecast_cycle",
    "nadir_anc",
    "nadir_anc_low",
    "nadir_anc_high",
    "nadir_day",
    "nadir_window_first",
    "nadir_window_last",
    "recovery_day",
    "p_grade4",
    "forecast_reason",
    "nadir_window_ends_at",
    "observed_nadir_anc",
]
# What a forecast is fitted to, besides the ANC results: the doses and the G-CSF (analysis.forecast).
_FORECAST_EVENTS = ("chemotherapy", "gcsf")


def status_forecasts(
    session: Session,
    cycle: pd.Series,
    history: pd.DataFrame,
    events: pd.DataFrame,
    *,
    rules: CycleRules,
    now: datetime,
    timezone: str,
) -> pd.DataFrame:
    """The nadir forecast (``FORECAST_STATUS`` and ``forecast_key``) of each patient in a chemotherapy cycle
    now (``cycle``: the status's cycle now, indexed by patient key; ``history``: their usable WBC, ANC and
    ALC results; ``events``: their clinical events), as of ``now`` (``analysis.forecast.forecast_patient``);
    none for the others.

    A fit takes up to a second or so: a patient whose inputs (``_forecast_keys``) are those of their stored
    forecast keeps it, copied, and only the others are fitted (new counts, doses or G-CSF, another model or
    other rules)."""
    columns = [*FORECAST_STATUS, "forecast_key"]
    treated = [int(key) for key in cycle.index[cycle.notna().to_numpy(dtype=bool)]]
    if not treated:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="patient_key"))
    as_of = pd.Timestamp(now)
    used = events[
        events["patient_key"].isin(treated).to_numpy(dtype=bool)
        & events["kind"].isin(_FORECAST_EVENTS).to_numpy(dtype=bool)
        & (pd.to_datetime(events["start_at"], utc=True) <= as_of).to_numpy(dtype=bool)
    ]
    anc = history[
        history["analyte"].eq("anc").to_numpy(dtype=bool)
        & history["patient_key"].isin(treated).to_numpy(dtype=bool)
        & (pd.to_datetime(history["collected_at"], utc=True) < as_of).to_numpy(dtype=bool)
    ][["patient_key", "collected_at", "value"]]
    # The rules a forecast depends on (its cycles and their planned length: analysis.cycles.align and
    # schedule), not the others, so that changing a threshold does not refit everyone.
    shaping = (rules.default_cycle_days, rules.overdue_cycle_lengths, rules.readiness_window_days)
    keys = _forecast_keys(treated, anc, used, rules_text=f"{shaping!r}|{dict(rules.regimens)!r}|{timezone}")
    stored = read_frame_in(
        session,
        lambda part: select(
            PatientStatus.patient_id, *(PatientStatus.__table__.c[name] for name in columns)
        ).where(PatientStatus.patient_id.in_(part)),
        treated,
    ).set_index("patient_id")
    kept = stored[stored["forecast_key"].eq(keys.reindex(stored.index)).to_numpy(dtype=bool)]
    fresh = [key for key in treated if key not in kept.index]
    fitted = _fitted(anc, used, fresh, as_of=as_of, rules=rules, timezone=timezone)
    fitted = fitted.assign(forecast_key=keys.reindex(fresh).to_numpy())
    parts = [part[columns] for part in (kept, fitted) if not part.empty]
    out = pd.concat(parts) if parts else pd.DataFrame(columns=columns)
    return out.rename_axis("patient_key")


def _fitted(
    anc: pd.DataFrame,
    events: pd.DataFrame,
    patient_keys: list[int],
    *,
    as_of: pd.Timestamp,
    rules: CycleRules,
    timezone: str,
) -> pd.DataFrame:
    """``FORECAST_STATUS`` of each of ``patient_keys`` from its own ANC results and events, fitted
    (``analysis.forecast.forecast_patient``; one fit per patient). Each patient gets all of their events:
    G-CSF with the doses (G-CSF stops a forecast, and the counts it raised are left out)."""
    by_anc = dict(tuple(anc.groupby("patient_key", sort=False))) if not anc.empty else {}
    by_events = dict(tuple(events.groupby("patient_key", sort=False))) if not events.empty else {}
    rows = {}
    with warnings.catch_warnings():
        # The solver overflows on some of the optimiser's trial parameters; the fit handles it (a reason).
        warnings.simplefilter("ignore", RuntimeWarning)
        for key in patient_keys:
            found = forecast_patient(
                by_anc.get(key, anc.iloc[0:0]),
                by_events.get(key, events.iloc[0:0]),
                as_of=as_of,
                rules=rules,
                timezone=timezone,
            )
            window = found.nadir_window or (None, None)
            rows[key] = (
                found.cycle,
                found.nadir_anc,
                found.nadir_anc_low,
                found.nadir_anc_high,
                found.nadir_day,
                window[0],
                window[1],
                found.recovery_day,
                found.p_grade4,
                found.reason,
                found.nadir_window_ends_at,
                found.observed_nadir_anc,
            )
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=FORECAST_STATUS)
    return frame.reindex(patient_keys).rename_axis("patient_key")


def _forecast_keys(
    patient_keys: list[int], anc: pd.DataFrame, events: pd.DataFrame, *, rules_text: str
) -> pd.Series:
    """Per patient, a SHA-256 of what the forecast is fitted to: the model, the rules and zone
    (``rules_text``), each dose's and G-CSF's kind, start, end and details (the cycle start and regimen),
    and each ANC's time and value."""
    counts = (_stamp(anc["collected_at"]) + "=" + _text(anc["value"].astype(float).map(repr))).groupby(
        anc["patient_key"].to_numpy()
    )
    ends = events["end_at"] if "end_at" in events else pd.Series(pd.NaT, index=events.index)
    given = (
        _text(events["kind"])
        + "@"
        + _stamp(events["start_at"])
        + "-"
        + _stamp(ends)
        + ":"
        + _text(events["details"])
    ).groupby(events["patient_key"].to_numpy())
    anc_text = counts.agg(lambda texts: ";".join(sorted(texts)))
    event_text = given.agg(lambda texts: ";".join(sorted(texts)))
    return pd.Series(
        {
            key: hashlib.sha256(
                "\n".join((MODEL, rules_text, event_text.get(key, ""), anc_text.get(key, ""))).encode()
            ).hexdigest()
            for key in patient_keys
        },
        dtype=object,
    )


_EPOCH = pd.Timestamp(0, tz="UTC")


def _stamp(times: pd.Series) -> pd.Series:
    """Each time as microseconds since 1970 (UTC), as text; "" where there is none."""
    micros = (pd.to_datetime(times, utc=True) - _EPOCH) / pd.Timedelta(microseconds=1)
    return _text(micros.round().astype("Int64"))


def _text(values: pd.Series) -> pd.Series:
    """``values`` as text, "" where missing (whatever their dtype, empty or all missing included)."""
    return values.astype(object).where(values.notna(), "").astype(str).astype("string")
