"""Validation of the nadir forecast, out of sample, on simulated patients with known parameters.

    python -m benchmarks.forecast [--patients 240] [--seed 18] [--plot docs/forecast-calibration.png]

Each simulated patient has its own parameters drawn from the forecast's population priors (Circ0, MTT,
gamma, drug slope; ``monitor.analysis.forecast.fit.Priors``), a drug factor per cycle (inter-cycle
variability), and its own residual error; four or five 21-day cycles (a cycle is sometimes postponed a
week). Sampling is sparse as in clinics: one or two counts in the days before treatment, a pre-dose count
on most dosing days, two or three counts on random days 5-15 of each cycle (each missed one time in five),
with measurement error and two decimals. The held-out cycle (the third or a later one) is forecast at day
4 of that cycle, from the counts collected before then only, through the product's own
``forecast_patient``. The truth is the simulated patient's noise-free curve in that cycle.

Reported against the truth: median absolute error of the nadir ANC, nadir day and recovery day; coverage of
the 80 % interval of the nadir; coverage of the 80 % band by the held-out cycle's own (noisy) counts;
grade-4 sensitivity and specificity of ``p_grade4`` at the worklist's threshold and AUC; the same errors for
a naive forecaster (the previous cycle's lowest observed ANC and its day; recovery: the first count back at
1.5 after it); fit time per patient. ``--plot`` writes a calibration figure (PNG, through headless
Chromium) of predicted against observed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.forecast import GRADE4_BELOW, RECOVERED_AT, forecast_patient
from monitor.analysis.forecast.fit import DEFAULT_PRIORS
from monitor.analysis.forecast.model import simulate
from monitor.simulation import friberg

CYCLE_DAYS = 21
FORECAST_DAY = 4
START = pd.Timestamp("2026-01-05 09:00", tz="UTC")
REGIMEN = "docetaxel 75 mg/m2 every 21 days"
THRESHOLD = (
    CycleRules().forecast_grade4_threshold if hasattr(CycleRules(), "forecast_grade4_threshold") else 0.5
)


@dataclass(frozen=True, slots=True)
class Case:
    """One simulated patient: its counts, doses and the truth of its held-out cycle."""

    seed: int
    anc: pd.DataFrame
    events: pd.DataFrame
    as_of: pd.Timestamp
    held_out: int
    true_nadir: float
    true_nadir_day: float
    true_recovery_day: float | None
    later: pd.DataFrame  # the held-out cycle's counts after the forecast (day, value)
    measured_nadir: float | None  # the held-out cycle's lowest count from day 5 (what a lab would report)
    previous: pd.DataFrame  # the previous cycle's counts (day, value)


def _own_model(
    rng: np.random.Generator, cycles: int, trend_sd: float = 0.0
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Dose days and the true curve of a patient of the forecast's own model, drawn from its priors; the
    drug effect's trend across cycles drawn with ``trend_sd`` (0: cycles vary around one level)."""
    p = DEFAULT_PRIORS
    circ0 = p.circ0 * math.exp(rng.normal(0, p.circ0_sd))
    mtt = p.mtt_h * math.exp(rng.normal(0, p.mtt_sd))
    gamma = p.gamma * math.exp(rng.normal(0, p.gamma_sd))
    slope = p.slope * math.exp(rng.normal(0, p.slope_sd))
    gaps = CYCLE_DAYS + 7 * (rng.random(cycles - 1) < 0.15)  # a cycle postponed a week now and then
    dose_day = np.concatenate([[0.0], np.cumsum(gaps)]).astype(float)
    trend = rng.normal(0, trend_sd) if trend_sd > 0 else 0.0  # nadirs deepening (or easing) cycle to cycle
    slopes = slope * np.exp(trend * np.arange(cycles) + rng.normal(0, p.cycle_sd, cycles))

    def curve(hours: np.ndarray) -> np.ndarray:
        args = (np.array([circ0]), np.array([mtt]), np.array([gamma]), slopes[None, :], dose_day * 24.0)
        return simulate(*args, hours, rtol=1e-8)[0]

    return dose_day, curve


def _other_model(
    rng: np.random.Generator, cycles: int, trend_sd: float = 0.0
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Dose days and the true curve of a patient of another model: the synthetic cohort's simulator (an
    Emax drug effect on a decaying exposure, nadirs deepening from cycle to cycle with cumulative marrow
    injury, a cycle postponed a week while ANC < 1.5, fixed one-hour steps; monitor.simulation.friberg).
    Its nadirs deepen by its own cumulative injury: ``trend_sd`` is not used."""
    one = lambda value: np.array([value], dtype=float)  # noqa: E731
    deepening = rng.random() < 0.5
    plan = friberg.ChemoPlan(
        circ0=one(DEFAULT_PRIORS.circ0 * math.exp(rng.normal(0, DEFAULT_PRIORS.circ0_sd))),
        mtt_h=one(89.3 * math.exp(rng.normal(0, 0.16))),
        gamma=one(0.163 * math.exp(rng.normal(0, 0.039))),
        emax=one(83.9),
        ec50=one(7.17),
        exposure=one(0.3 * math.exp(rng.normal(0, 0.45))),
        growth=one(rng.uniform(1.05, 1.15) if deepening else 1.0),
        damage=one(rng.uniform(0.02, 0.06) if deepening else 0.0),
        first_dose_h=one(0.0),
        n_cycles=np.array([cycles]),
        gcsf_on_h=one(np.nan),
        gcsf_off_h=one(np.nan),
        gcsf_boost=one(0.0),
        gcsf_mtt_factor=one(1.0),
    )
    run = friberg.simulate(plan, horizon_h=cycles * (CYCLE_DAYS + 21) * 24.0)
    given = run.dose_h[0][~np.isnan(run.dose_h[0])]
    path = run.anc[:, 0]
    hours = np.arange(path.size) * run.dt_h

    def curve(wanted: np.ndarray) -> np.ndarray:
        return np.where(wanted < 0, path[0], np.interp(wanted, hours, path))

    return given / 24.0, curve


TRUTHS = {"model": _own_model, "other": _other_model}


def simulate_case(seed: int, truth: str = "model", trend_sd: float = 0.0) -> Case:
    """A patient drawn from the priors (or from another model), its sparse noisy counts and the truth of
    its held-out cycle."""
    rng = np.random.default_rng(seed)
    p = DEFAULT_PRIORS
    sigma = p.sigma * math.exp(rng.normal(0, 0.25))
    dose_day, true_curve = TRUTHS[truth](rng, int(rng.integers(4, 6)), trend_sd)
    cycles = dose_day.size
    held_out = int(rng.integers(3, cycles + 1))
    dose_h = dose_day * 24.0
    # Sampling: 1-2 counts in the week before treatment, a pre-dose count on most dosing days, 2-3 counts on
    # days 5-15 of each cycle (each missed one time in five); clinic hours.
    times: list[float] = list(
        -24.0 * rng.choice(np.arange(1, 8), size=int(rng.integers(1, 3)), replace=False)
    )
    for c, day in enumerate(dose_day):
        if c > 0 and rng.random() < 0.9:
            times.append(day * 24.0 - rng.uniform(1.0, 4.0))
        for d in rng.choice(np.arange(5, 16), size=int(rng.integers(2, 4)), replace=False):
            if rng.random() >= 0.2:
                times.append((day + d) * 24.0 + rng.uniform(-2.0, 6.0))
    times_h = np.array(sorted(times))
    end_h = (dose_day[held_out - 1] + CYCLE_DAYS) * 24.0
    grid = np.arange(dose_day[held_out - 1] * 24.0, end_h + 0.5, 1.0)
    curve = true_curve(np.concatenate([times_h[times_h <= end_h], grid]))
    observed_true, truth = curve[: (times_h <= end_h).sum()], curve[(times_h <= end_h).sum() :]
    noisy = (observed_true + p.offset) * np.exp(sigma * rng.standard_normal(observed_true.size)) - p.offset
    values = np.round(np.clip(noisy, 0.0, None), 2)
    kept = times_h[times_h <= end_h]
    grid_day = (grid - grid[0]) / 24.0
    after = grid_day > 0
    at = int(np.flatnonzero(after)[np.argmin(truth[after])])
    back = np.flatnonzero(truth[at:] >= RECOVERED_AT)
    recovery = float(grid_day[at + back[0]]) if truth[at] < RECOVERED_AT and back.size else None
    start_h = dose_day[held_out - 1] * 24.0
    as_of_h = start_h + FORECAST_DAY * 24.0
    in_held = (kept >= start_h) & (kept < end_h)
    later = pd.DataFrame({"day": (kept - start_h) / 24.0, "value": values})[in_held & (kept >= as_of_h)]
    from_day_5 = later[later["day"] >= 5.0]
    measured = float(from_day_5["value"].min()) if not from_day_5.empty else None
    if not np.isfinite(curve).all():
        raise ArithmeticError(f"seed {seed}: the simulated truth is not finite")
    prev_start = dose_day[held_out - 2] * 24.0
    in_prev = (kept > prev_start) & (kept < start_h - 12.0)
    previous = pd.DataFrame({"day": (kept - prev_start) / 24.0, "value": values})[in_prev]
    anc = pd.DataFrame(
        {"patient_key": seed, "collected_at": START + pd.to_timedelta(kept, unit="h"), "value": values}
    )
    events = pd.DataFrame(
        {
            "patient_key": seed,
            "kind": "chemotherapy",
            "start_at": START + pd.to_timedelta(dose_h, unit="h"),
            "end_at": pd.NaT,
            "label": "cycle",
            "details": REGIMEN,
        }
    )
    return Case(
        seed,
        anc,
        events,
        START + pd.to_timedelta(as_of_h, unit="h"),
        held_out,
        float(truth[at]),
        float(grid_day[at]),
        recovery,
        later,
        measured,
        previous,
    )


def evaluate(seed: int, truth: str = "model", trend_sd: float = 0.0) -> dict[str, float | int | bool | None]:
    """Forecast one simulated patient's held-out cycle and compare it with the truth."""
    case = simulate_case(seed, truth, trend_sd)
    started = time.perf_counter()
    found = forecast_patient(case.anc, case.events, as_of=case.as_of, rules=CycleRules(), timezone="UTC")
    seconds = time.perf_counter() - started
    row: dict[str, float | int | bool | None] = {
        "seed": seed,
        "seconds": seconds,
        "held_out": case.held_out,
        "true_nadir": case.true_nadir,
        "true_nadir_day": case.true_nadir_day,
        "true_recovery_day": case.true_recovery_day,
        "measured_nadir": case.measured_nadir,
        "forecast": found.reason is None,
        "cycle_ok": found.cycle == case.held_out,
    }
    if found.reason is None:
        curve = found.curve
        band = [
            bool(
                np.interp(day, curve["day"], curve["low"])
                <= value
                <= np.interp(day, curve["day"], curve["high"])
            )
            for day, value in zip(case.later["day"], case.later["value"], strict=True)
        ]
        row |= {
            "nadir": found.nadir_anc,
            "nadir_low": found.nadir_anc_low,
            "nadir_high": found.nadir_anc_high,
            "nadir_day": found.nadir_day,
            "recovery_day": found.recovery_day,
            "p_grade4": found.p_grade4,
            "band_hits": sum(band),
            "band_counts": len(band),
        }
    if not case.previous.empty:
        low = case.previous.loc[case.previous["value"].idxmin()]
        back = case.previous[(case.previous["day"] > low["day"]) & (case.previous["value"] >= RECOVERED_AT)]
        row |= {
            "naive_nadir": float(low["value"]),
            "naive_nadir_day": float(low["day"]),
            "naive_recovery_day": float(back["day"].iloc[0])
            if not back.empty and low["value"] < 1.5
            else None,
        }
    return row


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    pos, neg = scores[positive], scores[~positive]
    if not pos.size or not neg.size:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def summarise(rows: pd.DataFrame, threshold: float, at: float | None = None) -> dict[str, float | int | str]:
    """The validation figures (docs/clinical-basis.md, Validation in simulation) from the per-patient rows;
    ``at``: a threshold chosen on another run, whose sensitivity and specificity this run reports."""
    done = rows[rows["forecast"]]
    g4 = done["true_nadir"].to_numpy() < GRADE4_BELOW
    p = done["p_grade4"].to_numpy(dtype=float)
    flagged = p >= threshold
    # The highest threshold giving sensitivity >= 90 %, and its specificity.
    best: tuple[float, float, float] | None = None
    for t in np.unique(p)[::-1]:
        sens = float((p[g4] >= t).mean()) if g4.any() else float("nan")
        if sens >= 0.9:
            best = (float(t), sens, float((p[~g4] < t).mean()))
            break
    recovery = done.dropna(subset=["true_recovery_day", "recovery_day"])
    naive = rows.dropna(subset=["naive_nadir"])
    naive_recovery = rows.dropna(subset=["true_recovery_day", "naive_recovery_day"])
    covered = (done["nadir_low"] <= done["true_nadir"]) & (done["true_nadir"] <= done["nadir_high"])
    # Like with like: the cycles where the truth, the forecast and the naive one all give a recovery day,
    # and the nadir against the lowest count the held-out cycle measured from day 5 (sparse, as the naive).
    matched = done.dropna(subset=["true_recovery_day", "recovery_day", "naive_recovery_day"])
    measured = done.dropna(subset=["measured_nadir", "naive_nadir"])
    extra: dict[str, float | int | str] = {}
    if at is not None:
        extra = {
            "at_threshold": at,
            "sensitivity_at": float((p[g4] >= at).mean()),
            "specificity_at": float((p[~g4] < at).mean()),
        }
    return extra | {
        "patients": len(rows),
        "forecast": len(done),
        "right_cycle": int(rows["cycle_ok"].sum()),
        "grade4_truth": int(g4.sum()),
        "nadir_anc_mae": float((done["nadir"] - done["true_nadir"]).abs().median()),
        "naive_nadir_anc_mae": float((naive["naive_nadir"] - naive["true_nadir"]).abs().median()),
        "nadir_day_mae": float((done["nadir_day"] - done["true_nadir_day"]).abs().median()),
        "naive_nadir_day_mae": float((naive["naive_nadir_day"] - naive["true_nadir_day"]).abs().median()),
        "recovery_day_mae": float((recovery["recovery_day"] - recovery["true_recovery_day"]).abs().median()),
        "recovery_pairs": len(recovery),
        "naive_recovery_day_mae": float(
            (naive_recovery["naive_recovery_day"] - naive_recovery["true_recovery_day"]).abs().median()
        ),
        "naive_recovery_pairs": len(naive_recovery),
        "matched_recovery_pairs": len(matched),
        "matched_recovery_day_mae": float(
            (matched["recovery_day"] - matched["true_recovery_day"]).abs().median()
        ),
        "matched_naive_recovery_day_mae": float(
            (matched["naive_recovery_day"] - matched["true_recovery_day"]).abs().median()
        ),
        "measured_pairs": len(measured),
        "nadir_vs_measured_mae": float((measured["nadir"] - measured["measured_nadir"]).abs().median()),
        "naive_vs_measured_mae": float((measured["naive_nadir"] - measured["measured_nadir"]).abs().median()),
        "coverage_80": float(covered.mean()),
        "band_coverage_80": float(done["band_hits"].sum() / max(1, done["band_counts"].sum())),
        "threshold": threshold,
        "sensitivity_g4": float(flagged[g4].mean()),
        "specificity_g4": float((~flagged[~g4]).mean()),
        "auc_g4": auc(p, g4),
        "threshold_for_90_sensitivity": best[0] if best else float("nan"),
        "specificity_at_90_sensitivity": best[2] if best else float("nan"),
        "seconds_median": float(done["seconds"].median()),
        "seconds_max": float(rows["seconds"].max()),
    }


def plot(rows: pd.DataFrame, path: Path) -> None:
    """Calibration figure: predicted nadir (with its 80 % interval) against the true one, and the observed
    share of grade 4 per band of predicted probability; rendered to PNG by headless Chromium."""
    import plotly.graph_objects as go
    from playwright.sync_api import sync_playwright
    from plotly.subplots import make_subplots

    done = rows[rows["forecast"]]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "Nadir ANC: forecast (median, 80 % interval) vs truth",
            "Grade 4: predicted vs observed",
        ),
    )
    fig.add_trace(
        go.Scatter(
            x=done["true_nadir"],
            y=done["nadir"],
            mode="markers",
            marker={"size": 5, "color": "#1f77b4"},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": done["nadir_high"] - done["nadir"],
                "arrayminus": done["nadir"] - done["nadir_low"],
                "thickness": 0.6,
                "color": "rgba(31,119,180,0.35)",
            },
            name="patients",
        ),
        row=1,
        col=1,
    )
    top = float(max(done["true_nadir"].max(), done["nadir_high"].max()))
    fig.add_trace(
        go.Scatter(x=[0.005, top], y=[0.005, top], mode="lines", line={"dash": "dot"}, name="identity"), 1, 1
    )
    fig.update_xaxes(type="log", title="true nadir ANC (x10^9/L)", row=1, col=1)
    fig.update_yaxes(type="log", title="forecast nadir ANC (x10^9/L)", row=1, col=1)
    bins = pd.cut(done["p_grade4"], [-0.001, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    grouped = done.assign(g4=done["true_nadir"] < GRADE4_BELOW).groupby(bins, observed=True)
    table = grouped.agg(predicted=("p_grade4", "mean"), observed=("g4", "mean"), n=("g4", "size"))
    fig.add_trace(
        go.Scatter(
            x=table["predicted"],
            y=table["observed"],
            mode="markers+lines+text",
            text=[f"n={n}" for n in table["n"]],
            textposition="top left",
            name="bands of P(grade 4)",
        ),
        row=1,
        col=2,
    )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, showlegend=False), 1, 2)
    fig.update_xaxes(title="predicted probability of grade 4", range=[-0.02, 1.02], row=1, col=2)
    fig.update_yaxes(title="observed share with grade 4", range=[-0.02, 1.02], row=1, col=2)
    fig.update_layout(width=1200, height=520, template="plotly_white", margin={"t": 60})
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1200, "height": 520})
        page.set_content(html, wait_until="load")
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(path))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=240)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plot", type=Path, help="write the calibration figure here (PNG)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--trend-sd",
        type=float,
        default=0.0,
        help="own model only: SD of the drug effect's trend per cycle in the simulated patients (0: none)",
    )
    parser.add_argument("--rows", type=Path, help="write the per-patient rows here (CSV)")
    parser.add_argument("--at", type=float, help="also report sensitivity and specificity at this threshold")
    parser.add_argument(
        "--truth",
        choices=sorted(TRUTHS),
        default="model",
        help="simulate patients of the forecast's own model (default) or of another one (the synthetic "
        "cohort's simulator: Emax drug effect, cumulative marrow injury, postponed cycles)",
    )
    args = parser.parse_args()
    seeds = [args.seed * 100_000 + i for i in range(args.patients)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = pd.DataFrame(
            list(pool.map(partial(evaluate, truth=args.truth, trend_sd=args.trend_sd), seeds, chunksize=4))
        )
    figures = summarise(rows, THRESHOLD, args.at) | {"wall_seconds": time.perf_counter() - started}
    if args.plot:
        plot(rows, args.plot)
    if args.rows:
        rows.to_csv(args.rows, index=False)
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {args.workers} workers")
    print(f"truth: {args.truth}, trend SD {args.trend_sd:g}, {args.patients} patients, seed {args.seed}")
    targets = {
        "coverage_80": "0.75-0.85",
        "sensitivity_g4": ">= 0.90 (at specificity >= 0.70)",
        "specificity_g4": ">= 0.70",
        "nadir_anc_mae": f"<= {0.7 * float(figures['naive_nadir_anc_mae']):.3f} (30 % below naive)",
        "nadir_day_mae": "<= 2 days",
        "seconds_median": "< 1 s",
    }
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:32s} {shown:>10s}  {targets.get(key, '')}")


if __name__ == "__main__":
    main()
