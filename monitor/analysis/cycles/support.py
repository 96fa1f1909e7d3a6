"""Decision support per chemotherapy cycle: G-CSF prophylaxis, dose modification, cycle delays.

Every sentence is support for the care team, never an order: it names its rule and its source
(docs/clinical-basis.md, G-CSF prophylaxis, Dose modification and Cycle delays).

* Primary prophylaxis: a cycle of a regimen the site rates at high febrile-neutropenia (FN) risk
  (``Regimen.fn_risk`` "high", 20 % or more) with no G-CSF recorded on D1 to D5
  (``CycleRules.gcsf_prophylaxis_days``; D1 = the dose day) is ``gcsf_primary_prophylaxis``: ASCO 2015
  (Smith TJ et al., J Clin Oncol 2015;33(28):3199-3212), EORTC 2010 (Aapro MS et al., Eur J Cancer
  2011;47(1):8-32) and the NCCN Hematopoietic Growth Factors guideline recommend primary prophylaxis at
  FN risk >= 20 %. An intermediate-risk regimen (10-20 %) with a patient risk factor the store knows (age
  ``gcsf_risk_age`` or more at the dose, febrile neutropenia in an earlier cycle) is ``gcsf_consider``.
* Secondary prophylaxis or dose reduction: after febrile neutropenia (the cycle table's FN column) or a
  dose-limiting neutropenia (ANC < 0.5 for ``dose_limiting_days`` days or more, as sampled: the cycle's
  ``days_anc_below_0_5_min``) in a cycle without G-CSF, the next cycle is ``secondary_prophylaxis``
  unless it has G-CSF on D1 to D5; with the paclitaxel or docetaxel label's own rule when the regimen
  names the drug and that rule is met (paclitaxel: "<500 cells/mm3 for seven days or more"; docetaxel:
  febrile neutropenia or "<500 cells/mm3 for more than one week", i.e. 8 days or more).
* Dose reduction: after febrile neutropenia or a dose-limiting neutropenia in a cycle WITH G-CSF, the
  next cycle is ``dose_reduction`` (G-CSF did not prevent it, so G-CSF in the next cycle does not answer
  it): the paclitaxel or docetaxel label's dose-reduction sentence when the regimen names the drug and the
  label's rule is met, else "dose reduction or a change of treatment to consider" (ASCO 2015).
* Delays: a cycle started later than the previous one's planned length (``schedule.planned_lengths``:
  the regimen's, else the patient's median, else the site default) by more than the scheduling tolerance
  (``schedule.IN_CYCLE_TOLERANCE_DAYS``, 2 days) is delayed by the difference, with the counts on the
  planned day (or the last in the readiness window before it) that explain it, or "reason not in the
  store".

G-CSF is an event of kind ``gcsf`` (files may write "G-CSF", "growth_factor" or "growth factor"), or a
``medication`` event whose label or details name a G-CSF (``GCSF_NAMES``: filgrastim and its biosimilars,
pegfilgrastim, lipegfilgrastim, lenograstim, eflapegrastim, efbemalenograstim, and their brand names).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.cycles.align import as_utc, calendar_days
from monitor.analysis.cycles.display import count_text
from monitor.analysis.cycles.readiness import _meets
from monitor.analysis.cycles.rules import CycleRules
from monitor.analysis.cycles.schedule import IN_CYCLE_TOLERANCE_DAYS, planned_lengths
from monitor.analysis.support_flags import SUPPORT_FLAGS
from monitor.timestamps import DAY, local_days

__all__ = [
    "GCSF_NAMES",
    "SUPPORT_COLUMNS",
    "SUPPORT_FLAGS",
    "current_support",
    "cycle_support",
    "gcsf_events",
    "support_now",
    "with_support",
]

# Columns ``with_support`` adds to the cycle table.
SUPPORT_COLUMNS = ("gcsf_days", "delay_days", "delay", "support_flags", "support")
# G-CSF (and pegylated G-CSF) by international non-proprietary and brand names a hospital may send.
GCSF_NAMES = (
    r"\b(?:(?:tbo-?|peg|lipeg)?filgrastim|lenograstim|eflapegrastim|efbemalenograstim|g-?csf"
    r"|neupogen|neulasta|zarxio|zarzio|nivestim|nivestym|releuko|granix|tevagrastim|ratiograstim"
    r"|accofil|grastofil|filgrastim-\w+|granocyte|lonquex|rolvedon|ryzneuta|udenyca|fulphila|ziextenzo"
    r"|nyvepria|fylnetra|stimufend|pelgraz|pelmeg|grasustek)\b"
)
_SOURCES = "ASCO 2015, EORTC, NCCN"
# The labels' own rules, quoted as the product information gives them (docs/clinical-basis.md, Dose
# modification). Days as sampled: paclitaxel "seven days or more", docetaxel "more than one week".
_LABELS = {
    "paclitaxel": (
        7,
        '"in the case of severe neutropenia (<500 cells/mm3 for seven days or more) ... a 20% reduction in '
        'dose for subsequent courses"',
        "TAXOL (paclitaxel) US prescribing information, "
        "https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview.process&ApplNo=020262",
        "seven days or more",
    ),
    "docetaxel": (
        8,
        'reduce the dose after febrile neutropenia or "neutrophils <500 cells/mm3 for more than one week"',
        "TAXOTERE (docetaxel) US prescribing information, "
        "https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview.process&ApplNo=020449",
        "more than one week",
    ),
}
_DRUGS = {
    # nab-paclitaxel (Abraxane) has a label of its own: not read as paclitaxel.
    "paclitaxel": r"(?<!nab-)(?<!nab )\b(?:paclitaxel|taxol)\b",
    "docetaxel": r"\b(?:docetaxel|taxotere)\b",
}


def gcsf_events(events: pd.DataFrame) -> pd.DataFrame:
    """The G-CSF events among ``events`` (``start_at`` as UTC): kind ``gcsf``, or a ``medication`` whose
    label or details name a G-CSF (``GCSF_NAMES``).

    >>> events = pd.DataFrame({"patient_key": 1, "kind": ["gcsf", "medication", "medication"],
    ...     "label": ["G-CSF", "Pegfilgrastim 6 mg", "Ondansetron"], "start_at": pd.Timestamp("2026-03-03")})
    >>> gcsf_events(events)["label"].tolist()
    ['G-CSF', 'Pegfilgrastim 6 mg']
    """
    kind = events["kind"].astype("string").str.lower()
    text = pd.Series("", index=events.index, dtype="string")
    for column in ("label", "details"):
        if column in events:
            text = text + " " + events[column].astype("string").fillna("")
    named = text.str.lower().str.contains(GCSF_NAMES, regex=True).fillna(False)
    keep = kind.eq("gcsf").fillna(False) | (kind.eq("medication").fillna(False) & named)
    chosen = events[keep.to_numpy(dtype=bool)]
    return chosen.assign(start_at=as_utc(chosen["start_at"]))


def _gcsf_days(events: pd.DataFrame, cycles: pd.DataFrame, timezone: str) -> pd.Series:
    """Per (patient_key, cycle): the sorted cycle days (day 0 = D1) on which a G-CSF event started."""
    given = gcsf_events(events)[["patient_key", "start_at"]]
    keys = ["patient_key", "cycle"]
    if given.empty or cycles.empty:
        return pd.Series(dtype=object, index=pd.MultiIndex.from_tuples([], names=keys))
    spans = given.merge(cycles[[*keys, "start", "day_start", "end"]], on="patient_key")
    inside = (spans["start_at"] >= as_utc(spans["day_start"])) & (spans["start_at"] < as_utc(spans["end"]))
    spans = spans[inside.to_numpy(dtype=bool)]
    day = calendar_days(as_utc(spans["start"]), spans["start_at"], timezone).astype("int64")
    return spans.assign(day=day).groupby(keys)["day"].agg(lambda d: tuple(sorted(set(d))))


def with_support(
    table: pd.DataFrame,
    events: pd.DataFrame,
    results: pd.DataFrame,
    *,
    rules: CycleRules,
    timezone: str,
    birth_dates: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """``table`` (one row per cycle, as ``table.treatment_cycles`` builds it) with ``SUPPORT_COLUMNS``.

    ``gcsf_days``: the D days a G-CSF event started ("D2", "" when none); ``delay_days`` (NA for a first
    cycle, 0 within the tolerance) and ``delay`` (the sentence); ``support_flags`` and ``support``: the
    flags and sentences of ``cycle_support`` for the cycle (a secondary prophylaxis for a cycle not yet
    started is on the last cycle's row, "before C3: ..."). ``results``: usable results (ANC and platelets
    for the delays); ``birth_dates``: ``patient_key`` and ``birth_date``, for age as a risk factor;
    ``as_of``: the time the table is for (a G-CSF window not yet passed is worded as a reminder).
    """
    keys = ["patient_key", "cycle"]
    days = _gcsf_days(events, table, timezone).reindex(pd.MultiIndex.from_frame(table[keys]))
    given = pd.Series(days.to_numpy(), index=table.index).map(lambda d: d if isinstance(d, tuple) else ())
    table = table.assign(gcsf_days=given.map(lambda d: ", ".join(f"D{n + 1}" for n in d)))
    table = table.join(_delays(table, results, rules=rules, timezone=timezone))
    support = cycle_support(table.assign(gcsf_day_list=given), rules=rules, timezone=timezone,
                            birth_dates=birth_dates, as_of=as_of)  # fmt: skip
    last = table.groupby("patient_key")["cycle"].max()
    row = support["cycle"].clip(upper=support["patient_key"].map(last))
    ahead = support["cycle"].gt(row)
    said = support["sentence"].where(
        ~ahead, "before C" + support["cycle"].astype(str) + ": " + support["sentence"]
    )
    joined = support.assign(row=row, said=said).groupby(["patient_key", "row"])
    index = pd.MultiIndex.from_frame(table[keys])
    flags = joined["flag"].agg(", ".join).reindex(index).fillna("")
    sentences = joined["said"].agg(" | ".join).reindex(index).fillna("")
    return table.assign(support_flags=flags.to_numpy(), support=sentences.to_numpy())


def cycle_support(
    table: pd.DataFrame,
    *,
    rules: CycleRules,
    timezone: str,
    birth_dates: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The support sentences per cycle: ``patient_key``, ``cycle`` (the cycle it is for: a secondary
    prophylaxis is for the cycle after the one that had the neutropenia, which may not have started
    yet), ``flag`` (a key of ``SUPPORT_FLAGS``) and ``sentence``.

    ``table`` has ``patient_key``, ``cycle``, ``start``, ``regimen``, ``label``, ``gcsf`` (any G-CSF in
    the cycle), ``gcsf_day_list`` (tuples of cycle days, day 0 = D1), ``febrile_neutropenia`` and
    ``days_anc_below_0_5_min``. ``as_of``: the time the support is for; while a cycle's G-CSF window has
    not passed then (in the site zone), its prophylaxis sentence is a reminder ("no G-CSF recorded yet";
    ``_gcsf_missing``); None judges every window as passed.
    """
    columns = ["patient_key", "cycle", "flag", "sentence"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    first, last = rules.gcsf_prophylaxis_days
    window = f"D{first}-D{last}"
    covered = table["gcsf_day_list"].map(lambda d: any(first - 1 <= n <= last - 1 for n in d)).astype(bool)
    text = table["regimen"].fillna("").astype(str)
    text = text.where(text.str.strip().ne(""), table["label"].fillna("").astype(str))
    # One look-up per distinct regimen text (``CycleRules.regimen`` reads the configured names in it).
    regimen = table["regimen"].fillna("").astype(str)
    found = {name: rules.regimen(name) for name in regimen.unique()}
    rule = regimen.map(lambda name: found[name])
    risk = rule.map(lambda r: None if r is None else r.fn_risk)
    source = rule.map(lambda r: "" if r is None or not r.fn_risk_source else f"; {r.fn_risk_source}")
    missing = _gcsf_missing(table, rules, timezone, as_of, window)
    high = risk.eq("high").to_numpy(dtype=bool) & ~covered.to_numpy()
    primary = (
        f"primary G-CSF prophylaxis is recommended at FN risk >= 20 % ({_SOURCES}): " + text
        + " is a high-risk regimen (site setting" + source + ")" + missing
    )  # fmt: skip
    factors = _risk_factors(table, rules, timezone, birth_dates)
    consider = risk.eq("intermediate").to_numpy(dtype=bool) & ~covered.to_numpy() & factors.ne("").to_numpy()
    considered = (
        "consider primary G-CSF prophylaxis: FN risk 10-20 % and " + factors
        + f" ({_SOURCES}: patient risk factors; " + text + " is an intermediate-risk regimen, site setting"
        + source + ")" + missing
    )  # fmt: skip
    parts = [
        table.loc[high, ["patient_key", "cycle"]].assign(
            flag="gcsf_primary_prophylaxis", sentence=primary[high]
        ),
        table.loc[consider, ["patient_key", "cycle"]].assign(
            flag="gcsf_consider", sentence=considered[consider]
        ),
        _secondary(table, covered, text, rules),
        _despite(table, text, rules),
    ]
    out = pd.concat([p for p in parts if not p.empty] or [pd.DataFrame(columns=columns)], ignore_index=True)
    return out[columns].sort_values(["patient_key", "cycle", "flag"], kind="stable").reset_index(drop=True)


def _gcsf_missing(
    table: pd.DataFrame, rules: CycleRules, timezone: str, as_of: pd.Timestamp | None, window: str
) -> pd.Series:
    """What the prophylaxis sentences say of a cycle's G-CSF (``covered`` cycles get none): while the
    window's last day (in the site zone) has not passed at ``as_of``, a reminder "; no G-CSF recorded yet;
    window D1-D5, until 2026-03-06"; after it "; no G-CSF recorded on D1-D5 of C1", or "; G-CSF recorded on
    D6, outside D1-D5" when G-CSF was recorded only outside the window. ``as_of`` None: judged as passed."""
    first, last = rules.gcsf_prophylaxis_days
    cycle = "C" + table["cycle"].astype(str)
    outside = table["gcsf_day_list"].map(lambda d: ", ".join(f"D{n + 1}" for n in d))
    said = pd.Series(
        np.where(
            outside.ne("").to_numpy(dtype=bool),
            ("; G-CSF recorded on " + outside + ", outside " + window).to_numpy(dtype=object),
            ("; no G-CSF recorded on " + window + " of " + cycle).to_numpy(dtype=object),
        ),
        index=table.index,
        dtype=object,
    )
    if as_of is None or table.empty:
        return said.astype(str)
    until = local_days(as_utc(table["start"]), timezone) + pd.Timedelta(days=last - 1)
    today = local_days(pd.Series([pd.Timestamp(as_of)]), timezone).iloc[0]
    ahead = (until >= today).fillna(False).to_numpy(dtype=bool)
    reminder = "; no G-CSF recorded yet; window " + window + ", until " + until.dt.strftime("%Y-%m-%d")
    return said.mask(ahead, reminder).astype(str)


def _risk_factors(
    table: pd.DataFrame, rules: CycleRules, timezone: str, birth_dates: pd.DataFrame | None
) -> pd.Series:
    """The patient risk factors the store knows at each cycle's dose, in words ("" when none)."""
    words = pd.Series("", index=table.index, dtype=object)
    if birth_dates is not None and not birth_dates.empty:
        born = birth_dates.drop_duplicates("patient_key").set_index("patient_key")["birth_date"]
        birth = pd.to_datetime(table["patient_key"].map(born), errors="coerce")
        dose = local_days(as_utc(table["start"]), timezone)
        before_birthday = (dose.dt.month < birth.dt.month) | (
            (dose.dt.month == birth.dt.month) & (dose.dt.day < birth.dt.day)
        )
        age = (dose.dt.year - birth.dt.year - before_birthday.astype("int64")).astype("Float64")
        old = (age >= rules.gcsf_risk_age).fillna(False).to_numpy(dtype=bool)
        words[old] = "age " + age[old].astype("Int64").astype(str) + " at the dose"
    febrile = table["febrile_neutropenia"].astype("boolean").fillna(False).astype(bool)
    earlier = table["cycle"].where(febrile).groupby(table["patient_key"]).ffill()
    earlier = earlier.groupby(table["patient_key"]).shift(1)
    had = earlier.notna().to_numpy(dtype=bool)
    prior = "febrile neutropenia in C" + earlier[had].astype("int64").astype(str)
    words[had] = np.where(words[had].eq(""), prior, words[had] + " and " + prior)
    return words.astype(str)


def _secondary(table: pd.DataFrame, covered: pd.Series, text: pd.Series, rules: CycleRules) -> pd.DataFrame:
    """Secondary prophylaxis or dose reduction for the cycle after one with febrile neutropenia or a
    dose-limiting neutropenia without G-CSF (unless that next cycle has G-CSF in the prophylaxis days)."""
    febrile, limiting, sampled_all, reason_all = _neutropenia(table, rules)
    trigger = (febrile | limiting) & ~table["gcsf"].astype(bool)
    rows = table[trigger.to_numpy(dtype=bool)]
    if rows.empty:
        return pd.DataFrame(columns=["patient_key", "cycle", "flag", "sentence"])
    nxt = rows["cycle"] + 1
    covered_by = pd.Series(
        covered.to_numpy(), index=pd.MultiIndex.from_frame(table[["patient_key", "cycle"]])
    )
    next_covered = covered_by.reindex(pd.MultiIndex.from_arrays([rows["patient_key"], nxt])).fillna(False)
    rows = rows[~next_covered.to_numpy(dtype=bool)]
    if rows.empty:
        return pd.DataFrame(columns=["patient_key", "cycle", "flag", "sentence"])
    fn, sampled, reason = febrile[rows.index], sampled_all[rows.index], reason_all[rows.index]
    after = (
        "; C" + (rows["cycle"] + 1).astype(str) + " follows " + reason + " in C" + rows["cycle"].astype(str)
    )
    after = after + " without G-CSF"
    generic = "secondary G-CSF prophylaxis or dose reduction (ASCO 2015)"
    sentence = pd.Series(generic, index=rows.index, dtype=object)
    lowered = text[rows.index].str.lower()
    for drug, (min_days, said, source, wording) in reversed(_LABELS.items()):
        named = lowered.str.contains(_DRUGS[drug], regex=True).to_numpy(dtype=bool)
        met = (sampled >= min_days).fillna(False).to_numpy(dtype=bool)
        if drug == "docetaxel":
            met |= fn.to_numpy(dtype=bool)
        labelled = (
            f"secondary prophylaxis or dose reduction: the label of {drug.upper()} says {said} ({source})"
        )
        unmet = f"{generic}; the {drug.upper()} label's rule is for ANC < 0.5 for {wording}" + (
            ", not febrile neutropenia alone" if drug == "paclitaxel" else ""
        )
        sentence = sentence.mask(named & met, labelled).mask(named & ~met, unmet)
    return pd.DataFrame(
        {
            "patient_key": rows["patient_key"].to_numpy(),
            "cycle": (rows["cycle"] + 1).to_numpy(),
            "flag": "secondary_prophylaxis",
            "sentence": (sentence + after).to_numpy(),
        }
    )


def _neutropenia(table: pd.DataFrame, rules: CycleRules) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Per cycle: febrile neutropenia, ANC < 0.5 for ``dose_limiting_days`` or more as sampled, the days
    as sampled, and the reason in words ("febrile neutropenia and ANC < 0.5 for 8 days as sampled")."""
    febrile = table["febrile_neutropenia"].astype("boolean").fillna(False).astype(bool)
    days = table["days_anc_below_0_5_min"].astype("Float64")
    limiting = (days >= rules.dose_limiting_days).fillna(False).astype(bool)
    sampled = days.astype("Int64")
    below = "ANC < 0.5 for " + sampled.astype("string").fillna("?") + " days as sampled"
    reason = pd.Series(
        np.select(
            [(febrile & limiting).to_numpy(), febrile.to_numpy()],
            [("febrile neutropenia and " + below).to_numpy(), np.full(len(table), "febrile neutropenia")],
            below.to_numpy(dtype=object),
        ),
        index=table.index,
    ).astype(str)
    return febrile, limiting, sampled, reason


def _despite(table: pd.DataFrame, text: pd.Series, rules: CycleRules) -> pd.DataFrame:
    """Dose reduction for the cycle after one with febrile neutropenia or a dose-limiting neutropenia
    despite G-CSF in it (``dose_reduction``): the paclitaxel or docetaxel label's sentence when the regimen
    names the drug and its rule is met, else ASCO 2015's dose reduction or change of treatment. G-CSF in
    the next cycle does not answer it (G-CSF did not prevent it)."""
    columns = ["patient_key", "cycle", "flag", "sentence"]
    febrile, limiting, sampled, reason = _neutropenia(table, rules)
    trigger = (febrile | limiting) & table["gcsf"].astype(bool)
    rows = table[trigger.to_numpy(dtype=bool)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    fn, days, why = febrile[rows.index], sampled[rows.index], reason[rows.index]
    cycle = "C" + rows["cycle"].astype(str)
    sentence = (
        why
        + " despite G-CSF in "
        + cycle
        + ": dose reduction or a change of treatment to consider (ASCO 2015)"
    ).astype(object)
    lowered = text[rows.index].str.lower()
    for drug, (min_days, said, source, _) in reversed(_LABELS.items()):
        named = lowered.str.contains(_DRUGS[drug], regex=True).to_numpy(dtype=bool)
        met = (days >= min_days).fillna(False).to_numpy(dtype=bool)
        if drug == "docetaxel":
            met |= fn.to_numpy(dtype=bool)
        labelled = f"dose reduction: the label of {drug.upper()} says {said} ({source}); " + why + " in "
        labelled = labelled + cycle + " despite G-CSF"
        sentence = sentence.mask(named & met, labelled)
    return pd.DataFrame(
        {
            "patient_key": rows["patient_key"].to_numpy(),
            "cycle": (rows["cycle"] + 1).to_numpy(),
            "flag": "dose_reduction",
            "sentence": sentence.to_numpy(),
        }
    )


def _delays(table: pd.DataFrame, results: pd.DataFrame, *, rules: CycleRules, timezone: str) -> pd.DataFrame:
    """``delay_days`` and ``delay`` per cycle (see ``with_support``), index as ``table``."""
    plan = planned_lengths(table, rules, timezone)
    length = calendar_days(as_utc(table["start"]), as_utc(table["next_start"]), timezone)
    patient = table["patient_key"]
    late = (length - plan["planned_days"]).groupby(patient).shift(1)
    planned = plan["planned_days"].groupby(patient).shift(1)
    basis = plan["planned_basis"].groupby(patient).shift(1)
    prev_start = table["start"].groupby(patient).shift(1)
    delayed = (late > IN_CYCLE_TOLERANCE_DAYS).fillna(False).to_numpy(dtype=bool)
    days = late.where(~late.notna() | delayed, 0).astype("Float64").round().astype("Int64")
    sentence = pd.Series("", index=table.index, dtype=object)
    if delayed.any():
        rows = table[delayed].assign(
            late=late[delayed], planned=planned[delayed], basis=basis[delayed], prev_start=prev_start[delayed]
        )
        sentence[delayed] = _delay_sentences(rows, results, rules, timezone).to_numpy()
    return pd.DataFrame({"delay_days": days, "delay": sentence.astype(str)}, index=table.index)


def _delay_sentences(
    rows: pd.DataFrame, results: pd.DataFrame, rules: CycleRules, timezone: str
) -> pd.Series:
    """ "C3 delayed 7 days: ANC 1.1 on the planned day (2026-03-23), against ANC >= 1.5 and platelets >=
    100", from the last ANC and platelets in the readiness window up to the planned day."""
    planned_day = local_days(as_utc(rows["prev_start"]), timezone) + pd.to_timedelta(
        rows["planned"], unit="D"
    )
    on = planned_day.dt.strftime("%Y-%m-%d")
    rule = rows["regimen"].map(lambda r: rules.regimen(r) or rules.readiness)
    counts = results[results["analyte"].isin(["anc", "plt"]).to_numpy(dtype=bool)]
    counts = counts[["patient_key", "analyte", "collected_at", "value", "comparator"]]
    near = counts.merge(
        pd.DataFrame({"patient_key": rows["patient_key"], "row": rows.index, "planned_day": planned_day}),
        on="patient_key",
    )
    before = ((near["planned_day"] - local_days(as_utc(near["collected_at"]), timezone)) / DAY).astype(
        "float64"
    )
    near = near.assign(before=before)[before.between(0, rules.readiness_window_days).to_numpy(dtype=bool)]
    last = near.sort_values("collected_at", kind="stable").groupby(["row", "analyte"]).tail(1)
    said = pd.Series("", index=rows.index, dtype=object)
    for analyte, name, minimum in (("anc", "ANC", "anc_min"), ("plt", "platelets", "plt_min")):
        mine = last[last["analyte"].eq(analyte).to_numpy(dtype=bool)].set_index("row").reindex(rows.index)
        low = (
            _meets(
                mine["value"].astype("float64"),
                mine["comparator"].astype("string"),
                rule.map(lambda r, m=minimum: getattr(r, m)),
                rule.map(lambda r: r.inclusive).astype(bool),
            )
            .eq(False)
            .fillna(False)
            .to_numpy(dtype=bool)
        )
        # (as NumPy text: the frame's columns may be of any text dtype, or none when nothing was found)
        days = mine["before"].astype("Float64")
        earlier = np.asarray([f" {d:.0f} days before it" if pd.notna(d) else "" for d in days], dtype=str)
        when = np.where(days.eq(0).fillna(False).to_numpy(dtype=bool), " on the planned day", earlier)
        comparator = np.asarray(
            mine["comparator"].astype(object).where(mine["comparator"].notna(), ""), dtype=str
        )
        value = np.asarray([count_text(v) for v in mine["value"].astype("float64")], dtype=str)
        text = pd.Series(
            np.char.add(np.char.add(f"{name} ", np.char.add(comparator, value)), when), index=rows.index
        )
        said = pd.Series(
            [
                (f"{was} and {t}" if was else t) if short else was
                for was, t, short in zip(said, text, low, strict=True)
            ],
            index=rows.index,
            dtype=object,
        )
    notes = {
        "site default": "; planned on the site default length",
        "previous cycles": "; planned on the previous cycles' median length",
    }
    head = [
        f"C{c} delayed {late:.0f} days (planned {day}{notes.get(basis, '')})"
        for c, late, day, basis in zip(rows["cycle"], rows["late"], on, rows["basis"], strict=True)
    ]
    against = [rule_.describe() for rule_ in rule]
    return pd.Series(
        [
            f"{h}: {why}, against {a}" if why else f"{h}: reason not in the store"
            for h, why, a in zip(head, said, against, strict=True)
        ],
        index=rows.index,
        dtype=object,
    )


def current_support(support: pd.DataFrame, cycles: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """The support that applies at ``as_of``: for each patient's current cycle (started, not yet ended:
    ``end``), its own sentences and a secondary prophylaxis or dose reduction for the cycle after it. Columns
    ``patient_key``, ``flag``, ``sentence``, one row per flag (the first when two cycles give one)."""
    columns = ["patient_key", "flag", "sentence"]
    if support.empty or cycles.empty:
        return pd.DataFrame(columns=columns)
    at = pd.Timestamp(as_of).tz_convert("UTC")
    started = as_utc(cycles["start"]) <= at
    current = cycles[(started & (as_utc(cycles["end"]) > at)).to_numpy(dtype=bool)]
    current = current.sort_values("cycle").groupby("patient_key").tail(1)[["patient_key", "cycle"]]
    found = support.merge(current.rename(columns={"cycle": "now"}), on="patient_key")
    own = found["cycle"].eq(found["now"])
    upcoming = found["cycle"].eq(found["now"] + 1) & found["flag"].isin(
        ["secondary_prophylaxis", "dose_reduction"]
    )
    found = found[(own | upcoming).to_numpy(dtype=bool)].sort_values(["patient_key", "cycle"], kind="stable")
    return found.drop_duplicates(["patient_key", "flag"])[columns].reset_index(drop=True)


def support_now(
    cycles: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    rules: CycleRules,
    timezone: str,
    birth_dates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The support that applies at ``as_of`` (``current_support``) from a cycle table
    (``table.treatment_cycles``, whose ``gcsf_days`` gives the G-CSF days): ``patient_key``, ``flag``,
    ``sentence``.

    >>> start = pd.Timestamp("2026-03-02 10:00", tz="UTC")
    >>> events = pd.DataFrame({"patient_key": 1, "kind": "chemotherapy", "start_at": [start],
    ...     "details": "AC every 21 days"})
    >>> from monitor.analysis.cycles.rules import Regimen
    >>> from monitor.analysis.cycles.table import treatment_cycles
    >>> rules = CycleRules(regimens={"ac every 21 days": Regimen(fn_risk="high")})
    >>> cycles = treatment_cycles(events.iloc[0:0].assign(analyte="anc", value=1.0, collected_at=start),
    ...     events, rules=rules)
    >>> support_now(cycles, as_of=start, rules=rules, timezone="UTC")["flag"].tolist()
    ['gcsf_primary_prophylaxis']
    """
    if cycles.empty:
        return pd.DataFrame(columns=["patient_key", "flag", "sentence"])
    days = cycles["gcsf_days"].fillna("").astype(str).str.findall(r"D(\d+)")
    listed = cycles.assign(gcsf_day_list=days.map(lambda found: tuple(int(d) - 1 for d in found)))
    support = cycle_support(listed, rules=rules, timezone=timezone, birth_dates=birth_dates, as_of=as_of)
    return current_support(support, cycles, as_of=as_of)
