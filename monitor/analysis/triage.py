"""Triage of the worklist: which patients need attention first, and the filters and counts over the list.

The one ranking of patients by clinical risk, used by the worklist, ``patients`` and ``alerts``
(docs/clinical-basis.md, Worklist priority). Each patient falls in the first tier that applies, by the most
dangerous finding in their current status; the neutrophil count comes first because it is what predicts
infection (Bodey et al. 1966; the febrile-neutropenia guidelines of IDSA 2010 and ASCO/IDSA 2018 act on it):

1. ANC grade 4, or febrile neutropenia, or a recent fever that cannot be judged for want of an ANC
   (``febrile_unjudged``) with the latest ANC below 1.0 (grade 3 or 4, measured or bounded by the WBC), or
   a latest result the lab flagged critical (``lab_critical``: HH, LL, AA, or off the instrument's scale);
2. ANC grade 3, or a WBC above 100 x10^9/L (CTCAE v5.0 Leukocytosis grade 3, hyperleukocytosis: the next
   grade is leukostasis), or platelets grade 4 (below 25 x10^9/L, CTCAE v5.0 Platelet count decreased),
   with or without a flag of the lab's;
3. new or worsening neutropenia (``anc_worsening``; ``anc_new_onset`` when the ANC is grade 2 or worse
   or fell beyond the reference change value, ``anc_significant_drop``);
4. WBC, ALC, haemoglobin or platelets grade 3 or 4 (a lymphocyte grade 3 is not ranked with a neutrophil
   grade 3; Hb below 8.0 g/dL is Anemia grade 3), or an ALC above 20 x10^9/L (Lymphocyte count increased
   grade 3);
5. new or worsening leukopenia or lymphopenia (the bare ``new_onset``/``worsening`` are WBC's;
   ``alc_new_onset``, ``alc_worsening``), and a new grade-1 neutropenia without such a fall;
6. persistent findings (``persistent``, ``chronic``, ``anc_persistent``, ``alc_persistent``);
7. any other flag, or a CBC due (``cbc_due``: a nadir window about to open or missed without a count, or
   a grade 3-4 finding without a recent count; ``analysis.due``); 8. no flag.

The ANC grade ranked is the measured one, or the bound the WBC sets when the latest panel has no ANC
(or the latest ANC is older than the latest WBC): the ANC cannot exceed the WBC, so a WBC below 1.0 is
an ANC of grade 3 at least, below 0.5 of grade 4.

Within a tier, by the most severe finding: febrile neutropenia first (an emergency, whatever its ANC
grade), then a fever that cannot be judged (``febrile_unjudged``; its sentence is appended to the reason
in whichever tier), then the higher ANC grade, then the highest other grade (WBC and ALC, low or high,
haemoglobin, platelets), then a critical flag of the lab's (so one on a count without a grade comes after
the graded ones; its words are appended to the reason in whichever tier, dated, marked preliminary and,
for a count within its range, told so), then the WBC's grade, then the most recent CBC first. A count
above its upper limit without those grades (neutrophilia, lymphocytosis grade 2, a WBC above its limit up
to 100) ranks with the other flags (tier 7). The platelet and haemoglobin tiers, tiers 3 to 8 and the
order within a tier are a product default pending clinical sign-off.

Pure functions of the patient list (one row per patient with ``latest_{wbc,anc,alc}_grade``, optionally
``latest_{wbc,anc,alc}`` and their ``_comparator`` for the reason's counts, ``flags`` as lists,
``acknowledged``, ``days_since_cbc``, ``teams``, ``patient_id``, ``name``, ``last_collected_at``, and
optionally ``febrile_neutropenia`` (a patient-level boolean, NA or absent when unknown) with
``febrile_detail`` (its words), ``latest_{wbc,anc,alc}_at`` (when each latest count was drawn),
``latest_{wbc,anc,alc}_status`` (a preliminary count is said so in the reason) and
``latest_{wbc,anc,alc}_age_days`` with ``latest_{wbc,anc,alc}_day`` (calendar days since the count and its
day in the site's zone: a count older than ``STALE_DAYS`` is dated in the reason),
``latest_{wbc,alc}_high_grade`` (CTCAE Leukocytosis, Lymphocyte count increased), ``latest_{hgb,plt}``
with ``latest_{hgb,plt}_grade`` (g/dL and x10^9/L; CTCAE Anemia, Platelet count decreased) and
``lab_critical`` with ``lab_critical_detail`` (a critical flag of the lab's on a latest result, and its
words).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitor.analysis.changes import FEBRILE_UNJUDGED, FEBRILE_UNJUDGED_WORDS, GRADED
from monitor.analysis.flags import DEFAULT_FLAG_RULES
from monitor.analysis.support_flags import SUPPORT_FLAGS

__all__ = [
    "TIERS",
    "WORSENING",
    "WORSENING_LABEL",
    "filtered",
    "headline",
    "in_priority_order",
    "max_grade",
    "no_cbc_label",
    "prioritised",
    "priority",
    "priority_reason",
]

TIERS = {
    1: "ANC grade 4, febrile neutropenia, or a result the lab flagged critical",
    2: "ANC grade 3, WBC above 100 x10^9/L (leukocytosis grade 3), or platelets grade 4 (below 25 x10^9/L)",
    3: "new neutropenia at grade 2-4 or with a significant fall, or worsening neutropenia",
    4: "WBC, ALC, Hb or platelets grade 3-4, or ALC above 20 x10^9/L (lymphocytosis grade 3)",
    5: "new or worsening leukopenia or lymphopenia, new grade-1 neutropenia",
    6: "persistent",
    7: "other flags, or a CBC due",
    8: "no flag",
}
# A patient-level febrile-neutropenia finding, when the status carries one (True ranks in tier 1).
FEBRILE_NEUTROPENIA = "febrile_neutropenia"
NEW_NEUTROPENIA = ("anc_new_onset", "anc_worsening")
# A count older than this many days is dated in the reason ("ANC grade 4 (0.3 x10^9/L on 2026-05-01)").
STALE_DAYS = 7
# The ANC cannot exceed the WBC: a WBC below these (x10^9/L) bounds the ANC's CTCAE grade (v5.0: grade 3
# below 1.0, grade 4 below 0.5) when no ANC of the same panel or later was measured.
_WBC_BOUNDS_ANC = ((0.5, 4), (1.0, 3))
NEW_WBC_OR_ALC = ("new_onset", "worsening", "alc_new_onset", "alc_worsening")
PERSISTENT = ("persistent", "chronic", "anc_persistent", "alc_persistent")
# A count getting worse, in any lineage (the worklist's "Worsening" filter and count): worsening (below the
# limit with a fall beyond the reference change value, two grades, a step into grade 3-4 or a falling
# trend) and a significant drop (a fall beyond the reference change value) of the WBC, the ANC or the ALC
# (docs/clinical-basis.md, Worklist filters).
WORSENING = (
    "worsening",
    "anc_worsening",
    "alc_worsening",
    "significant_drop",
    "anc_significant_drop",
    "alc_significant_drop",
)
WORSENING_LABEL = "Any worsening"
# Haemoglobin and platelets: ranked by their CTCAE grades (Anemia, Platelet count decreased) when carried.
_OTHER = ("hgb", "plt")
_NAMES = {"wbc": "WBC", "anc": "ANC", "alc": "ALC", "hgb": "Hb", "plt": "platelets"}
_UNITS = {"hgb": "g/dL"}
# The product's own flags of a count below or above its reference range (analysis.flags): a count the lab
# flagged critical without either is within its range, and the reason says so.
_RANGE_FLAGS = {
    "wbc": ("leukopenia", "leukocytosis"),
    "anc": ("neutropenia", "neutrophilia"),
    "alc": ("lymphopenia", "lymphocytosis"),
}
# How ``lab_critical_detail`` names each analyte (analysis.status.lab_critical), to find a piece's count.
_CRITICAL_SPOKEN = {"WBC": "wbc", "ANC": "anc", "ALC": "alc"}
# Words for the reason of tiers 5 to 7; a flag not named here is spelt with spaces.
_WORDS = {
    "anc_new_onset": "new neutropenia",
    "new_onset": "new leukopenia",
    "worsening": "worsening leukopenia",
    "alc_new_onset": "new lymphopenia",
    "alc_worsening": "worsening lymphopenia",
    "anc_persistent": "persistent neutropenia",
    "persistent": "persistent leukopenia",
    "alc_persistent": "persistent lymphopenia",
    "chronic": "chronic leukopenia",
    "significant_drop": "WBC significant drop",
    "anc_significant_drop": "ANC significant drop",
    "alc_significant_drop": "ALC significant drop",
    "recovering": "WBC recovering",
    FEBRILE_UNJUDGED: FEBRILE_UNJUDGED_WORDS,
    # The cycle decision support (G-CSF prophylaxis, dose modification): tier 7, other flags.
    **SUPPORT_FLAGS,
}


def max_grade(patients: pd.DataFrame) -> pd.Series:
    """The highest current CTCAE grade of WBC, ANC and ALC, low or high, and of haemoglobin and platelets (NA
    when none is graded): a WBC of 105.6 is "Leukocytosis" grade 3, not grade 0, and platelets of 9 are
    grade 4 (``latest_{wbc,alc}_high_grade`` and ``latest_{hgb,plt}_grade`` when the list carries them).

    >>> patients = pd.DataFrame({"latest_wbc_grade": [1, None, 0], "latest_anc_grade": [3, None, 0],
    ...     "latest_alc_grade": [None, None, 0], "latest_wbc_high_grade": [0, None, 3]})
    >>> max_grade(patients).tolist()
    [3, <NA>, 3]
    """
    columns = [f"latest_{a}_grade" for a in GRADED]
    columns += [f"latest_{a}_high_grade" for a in GRADED if f"latest_{a}_high_grade" in patients]
    columns += [f"latest_{a}_grade" for a in _OTHER if f"latest_{a}_grade" in patients]
    grades = patients[columns].astype("Float64")
    return grades.max(axis=1).astype("Int64")


def _has(patients: pd.DataFrame, *names: str) -> pd.Series:
    """Whether each patient's flags include any of ``names`` (booleans, also for empty lists)."""
    exploded = pd.Series(patients["flags"].to_numpy(), dtype=object).explode()
    hit = np.zeros(len(patients), dtype=bool)
    hit[exploded.index.to_numpy()[exploded.isin(names).to_numpy(dtype=bool)]] = True
    return pd.Series(hit, index=patients.index)


def _grade(patients: pd.DataFrame, analyte: str) -> pd.Series:
    """The latest CTCAE grade of ``analyte``, 0 when unknown or not carried (for comparisons)."""
    column = f"latest_{analyte}_grade"
    if column not in patients:
        return pd.Series(0.0, index=patients.index, dtype="Float64")
    return patients[column].astype("Float64").fillna(0)


def _anc_unmeasured(patients: pd.DataFrame) -> pd.Series:
    """Whether the latest WBC has no ANC beside it: none measured, or the latest ANC is older."""
    wbc_at, anc_at = patients.get("latest_wbc_at"), patients.get("latest_anc_at")
    if wbc_at is None or anc_at is None:
        # Without the times, only a patient with no ANC at all is known to lack one.
        count = patients.get("latest_anc", patients["latest_anc_grade"])
        return pd.Series(count.isna().to_numpy(dtype=bool), index=patients.index)
    wbc_at, anc_at = pd.to_datetime(wbc_at, utc=True), pd.to_datetime(anc_at, utc=True)
    return (wbc_at.notna() & (anc_at.isna() | (anc_at < wbc_at))).fillna(False).astype(bool)


def _anc_bound_grade(patients: pd.DataFrame) -> pd.Series:
    """The ANC grade the WBC implies where no ANC was measured beside it (0 where none is implied)."""
    bound = pd.Series(0.0, index=patients.index, dtype="Float64")
    if "latest_wbc" not in patients:
        return bound
    value = patients["latest_wbc"].astype("float64").round(2)
    comparator = patients.get("latest_wbc_comparator", pd.Series(pd.NA, index=patients.index))
    comparator = comparator.astype("string")
    unmeasured = _anc_unmeasured(patients)
    for limit, grade in reversed(_WBC_BOUNDS_ANC):
        below = (value < limit) | (comparator.isin(["<", "<="]).fillna(False) & (value <= limit))
        below &= ~comparator.isin([">", ">="]).fillna(False)
        bound = bound.mask((below.fillna(False) & unmeasured).to_numpy(dtype=bool), float(grade))
    return bound


def _anc_grade(patients: pd.DataFrame) -> pd.Series:
    """The ANC grade ranked: the measured one, or the WBC's bound when that is higher (0 when unknown)."""
    return pd.concat([_grade(patients, "anc"), _anc_bound_grade(patients)], axis=1).max(axis=1)


def _febrile_neutropenia(patients: pd.DataFrame) -> pd.Series:
    """True where the status says febrile neutropenia; False when unknown (NA) or not carried at all."""
    if FEBRILE_NEUTROPENIA not in patients:
        return pd.Series(False, index=patients.index)
    return patients[FEBRILE_NEUTROPENIA].astype("boolean").fillna(False).astype(bool)


def _febrile_unjudged(patients: pd.DataFrame) -> pd.Series:
    """True where a recent fever cannot be judged for want of an ANC (the ``febrile_unjudged`` flag)."""
    return _has(patients, FEBRILE_UNJUDGED)


def _lab_critical(patients: pd.DataFrame) -> pd.Series:
    """True where a latest result carries a critical flag of the lab's (``lab_critical``); False when
    unknown or not carried."""
    if "lab_critical" not in patients:
        return pd.Series(False, index=patients.index)
    return patients["lab_critical"].astype("boolean").fillna(False).astype(bool)


def _high_grade(patients: pd.DataFrame, analyte: str) -> pd.Series:
    """The CTCAE grade of the latest count above its limit ("increased" terms), 0 when unknown."""
    column = f"latest_{analyte}_high_grade"
    if column not in patients:
        return pd.Series(0.0, index=patients.index, dtype="Float64")
    return patients[column].astype("Float64").fillna(0)


def _cbc_due(patients: pd.DataFrame) -> pd.Series:
    """True where the list says a CBC is due now (``cbc_due``); False when unknown or not carried."""
    if "cbc_due" not in patients:
        return pd.Series(False, index=patients.index)
    return patients["cbc_due"].astype("boolean").fillna(False).astype(bool)


def priority(patients: pd.DataFrame) -> pd.Series:
    """The tier of each patient (1 = first), a key of ``TIERS``.

    >>> patients = pd.DataFrame({"latest_wbc_grade": [1, 1, 3, 0], "latest_anc_grade": [None, 0, 0, 2],
    ...     "latest_alc_grade": [None] * 4,
    ...     "flags": [["leukopenia"], ["leukopenia", "persistent"], ["leukopenia"],
    ...               ["neutropenia", "anc_new_onset"]]})
    >>> priority(patients).tolist()
    [7, 6, 4, 3]
    """
    anc, wbc, alc = _anc_grade(patients), _grade(patients, "wbc"), _grade(patients, "alc")
    leukocytosis, lymphocytosis = _high_grade(patients, "wbc"), _high_grade(patients, "alc")
    hgb, plt = _grade(patients, "hgb"), _grade(patients, "plt")
    new_anc = _has(patients, "anc_new_onset") & ((anc >= 2) | _has(patients, "anc_significant_drop"))
    conditions = [
        (anc >= 4)
        | _febrile_neutropenia(patients)
        | (_febrile_unjudged(patients) & (anc >= 3))
        | _lab_critical(patients),
        (anc >= 3) | (leukocytosis >= 3) | (plt >= 4),
        new_anc | _has(patients, "anc_worsening"),
        (wbc >= 3) | (alc >= 3) | (lymphocytosis >= 3) | (hgb >= 3) | (plt >= 3),
        _has(patients, *NEW_WBC_OR_ALC, "anc_new_onset"),
        _has(patients, *PERSISTENT),
        (patients["flags"].map(len).astype("int64") > 0) | _cbc_due(patients),
    ]
    tiers = np.select([c.to_numpy(dtype=bool) for c in conditions], list(TIERS)[:-1], default=8)
    return pd.Series(tiers, index=patients.index, dtype="int64")


def _count(patients: pd.DataFrame, analyte: str) -> pd.Series:
    """The latest count as reported, e.g. "0.4" or "<0.1" ("" when the list does not carry it)."""
    column = f"latest_{analyte}"
    if column not in patients:
        return pd.Series("", index=patients.index, dtype="string")
    value = patients[column].astype("float64").round(2).map("{:g}".format, na_action="ignore")
    comparator = patients.get(f"{column}_comparator", pd.Series(pd.NA, index=patients.index))
    return (comparator.astype("string").fillna("") + value.astype("string")).fillna("")


def _count_note(patients: pd.DataFrame, analyte: str) -> pd.Series:
    """ "0.3 x10^9/L" ("6.5 g/dL" for haemoglobin), with ", preliminary" for a preliminary count and
    " on 2026-05-01" for one older than ``STALE_DAYS`` ("" when the list does not carry the count)."""
    count = _count(patients, analyte)
    index = patients.index
    status = patients.get(f"latest_{analyte}_status", pd.Series(pd.NA, index=index)).astype("string")
    preliminary = status.eq("preliminary").fillna(False)
    age = patients.get(f"latest_{analyte}_age_days", pd.Series(pd.NA, index=index)).astype("Float64")
    day = pd.to_datetime(patients.get(f"latest_{analyte}_day", pd.Series(pd.NaT, index=index)))
    on = (" on " + day.dt.strftime("%Y-%m-%d").astype("string")).fillna("")
    text = count + " " + _UNITS.get(analyte, "x10^9/L") + on.where((age > STALE_DAYS).fillna(False), "")
    text = text.where(~preliminary, text + ", preliminary")
    return text.where(count.ne(""), "")


def _graded(patients: pd.DataFrame, analyte: str) -> pd.Series:
    """ "ANC grade 4 (0.3 x10^9/L)": the analyte's grade and count as reported, marked preliminary and
    dated when old (``_count_note``)."""
    note = _count_note(patients, analyte)
    grade = patients.get(f"latest_{analyte}_grade", pd.Series(pd.NA, index=patients.index, dtype="Int64"))
    grade = grade.astype("Int64").astype("string").fillna("unknown")
    text = _NAMES[analyte] + " grade " + grade
    return text.where(note.eq(""), text + " (" + note + ")")


def _anc_text(patients: pd.DataFrame) -> pd.Series:
    """The ANC's words: its grade and count, or, where the WBC's bound ranks it, "ANC not measured; WBC
    0.8 x10^9/L (ANC at most 0.8)"."""
    bounded = _anc_bound_grade(patients) > _grade(patients, "anc")
    wbc = _count(patients, "wbc")
    unmeasured = "ANC not measured; WBC " + _count_note(patients, "wbc") + " (ANC at most " + wbc + ")"
    return _graded(patients, "anc").where(~bounded.to_numpy(dtype=bool), unmeasured)


def _joined(parts: Sequence[tuple[pd.Series, pd.Series | str]], index: pd.Index) -> pd.Series:
    """Per row, the texts whose mask is true, joined with ", " in the order given."""
    out = pd.Series("", index=index, dtype="string")
    for mask, text in parts:
        piece = text if isinstance(text, pd.Series) else pd.Series(text, index=index, dtype="string")
        with_comma = out.where(out.eq(""), out + ", ") + piece
        out = with_comma.where(mask.to_numpy(dtype=bool), out)
    return out


def priority_reason(patients: pd.DataFrame, tiers: pd.Series | None = None) -> pd.Series:
    """Words naming the finding that put each patient in their tier.

    ``tiers``: ``priority(patients)`` when already computed.

    >>> patients = pd.DataFrame({"latest_wbc_grade": [0, 1], "latest_anc_grade": [4, 2],
    ...     "latest_alc_grade": [None] * 2, "latest_anc": [0.3, 1.2], "latest_anc_comparator": [None] * 2,
    ...     "flags": [["neutropenia"], ["leukopenia", "neutropenia", "anc_new_onset"]]})
    >>> priority_reason(patients).tolist()
    ['ANC grade 4 (0.3 x10^9/L)', 'new neutropenia: ANC grade 2 (1.2 x10^9/L)']
    """
    index = patients.index
    tiers = priority(patients) if tiers is None else tiers
    wbc, alc = _grade(patients, "wbc"), _grade(patients, "alc")
    anc_text = _anc_text(patients)
    new = _has(patients, "anc_new_onset")
    neutropenia = pd.Series("worsening neutropenia: ", index=index, dtype="string").where(
        ~new, "new neutropenia: "
    )
    detail = patients.get("febrile_detail", pd.Series(pd.NA, index=index)).astype("string")
    detail = detail.mask(detail.eq("").fillna(False).to_numpy(dtype=bool))
    febrile = ("febrile neutropenia (" + detail + ")").fillna(
        ("febrile neutropenia, " + anc_text).where(
            patients["latest_anc_grade"].notna().to_numpy(dtype=bool), "febrile neutropenia"
        )
    )
    chronic = _has(patients, "chronic")
    persistent = [
        (_has(patients, "anc_persistent"), _WORDS["anc_persistent"]),
        (chronic, _WORDS["chronic"]),
        (_has(patients, "persistent") & ~chronic, _WORDS["persistent"]),
        (_has(patients, "alc_persistent"), _WORDS["alc_persistent"]),
    ]
    flag_words = patients["flags"].map(
        lambda listed: ", ".join(_WORDS.get(flag, flag.replace("_", " ")) for flag in listed)
    )
    critical = _lab_critical(patients)
    critical_text = "critical result from the lab: " + _critical_detail(patients)
    # Tier 1 by the lab's critical flag alone: its words are the reason (appended below otherwise).
    by_anc = (_anc_grade(patients) >= 3) | _febrile_neutropenia(patients)
    only_critical = (critical & ~by_anc & tiers.eq(1)).to_numpy(dtype=bool)
    leukocytosis, lymphocytosis = _high_grade(patients, "wbc"), _high_grade(patients, "alc")
    by_tier = {
        1: anc_text.where(~_febrile_neutropenia(patients), febrile).mask(only_critical, critical_text),
        2: _joined(
            [
                (_anc_grade(patients) >= 3, anc_text),
                (leukocytosis >= 3, _high_text(patients, "wbc", "hyperleukocytosis", ", leukostasis risk")),
                (_grade(patients, "plt") >= 4, _graded(patients, "plt")),
            ],
            index,
        ),
        3: neutropenia + anc_text,
        4: _joined(
            [
                (wbc >= 3, _graded(patients, "wbc")),
                (alc >= 3, _graded(patients, "alc")),
                (lymphocytosis >= 3, _high_text(patients, "alc", "lymphocytosis", "")),
                (_grade(patients, "hgb") >= 3, _graded(patients, "hgb")),
                (_grade(patients, "plt") >= 3, _graded(patients, "plt")),
            ],
            index,
        ),
        5: _joined(
            [
                (_has(patients, "anc_new_onset"), "new neutropenia: " + anc_text),
                *((_has(patients, flag), _WORDS[flag]) for flag in NEW_WBC_OR_ALC),
            ],
            index,
        ),
        6: _joined(persistent, index),
        7: _joined(
            [
                (patients["flags"].map(len).astype("int64").gt(0), flag_words.astype("string")),
                (
                    _cbc_due(patients),
                    patients.get("cbc_due_reason", pd.Series("CBC due", index=index)).astype("string"),
                ),
            ],
            index,
        ),
        8: pd.Series(TIERS[8], index=index, dtype="string"),
    }
    reason = pd.Series(pd.NA, index=index, dtype="string")
    for tier, text in by_tier.items():
        reason = reason.mask(tiers.eq(tier).to_numpy(dtype=bool), text)
    # A fever that cannot be judged is told after the reason, in whichever tier: "...; temperature 38.6 °C
    # at 10:00 cannot be judged: ...".
    unjudged = _febrile_unjudged(patients) & detail.notna()
    reason = reason.mask(unjudged.to_numpy(dtype=bool), reason + "; " + detail)
    # A critical flag of the lab's is told after the reason in whichever tier it did not decide.
    told = (critical & ~pd.Series(only_critical, index=index)).to_numpy(dtype=bool)
    return reason.mask(told, reason + "; " + critical_text)


def _critical_detail(patients: pd.DataFrame) -> pd.Series:
    """The lab's critical results in words (``lab_critical_detail``), each WBC, ANC or ALC piece dated when
    older than ``STALE_DAYS``, marked "(preliminary)" when its result is, and, when the product has no low or
    high flag for that count, told "within its reference range: see the lab's comment": "WBC 6.0 x10^9/L
    flagged AA (critical abnormal) by the lab on 2011-01-03, within its reference range: see the lab's
    comment". A haemoglobin or platelet piece is told as the lab's words alone (the list carries neither
    their dates nor their status)."""
    index = patients.index
    detail = patients.get("lab_critical_detail", pd.Series("", index=index)).astype("string").fillna("")
    notes: dict[str, list[tuple[str, bool, bool]]] = {}
    for analyte in _CRITICAL_SPOKEN.values():
        status = patients.get(f"latest_{analyte}_status", pd.Series(pd.NA, index=index)).astype("string")
        age = patients.get(f"latest_{analyte}_age_days", pd.Series(pd.NA, index=index)).astype("Float64")
        day = pd.to_datetime(patients.get(f"latest_{analyte}_day", pd.Series(pd.NaT, index=index)))
        on = (" on " + day.dt.strftime("%Y-%m-%d").astype("string")).where(
            (age > STALE_DAYS).fillna(False), ""
        )
        # Below or above its range: a flag of the product's, or a low or high CTCAE grade.
        flagged = _has(patients, *_RANGE_FLAGS[analyte])
        flagged |= ((_grade(patients, analyte) > 0) | (_high_grade(patients, analyte) > 0)).to_numpy(
            dtype=bool
        )
        notes[analyte] = list(
            zip(
                on.fillna("").tolist(),
                status.eq("preliminary").fillna(False).tolist(),
                (~flagged).tolist(),
                strict=True,
            )
        )

    def told(row: int, text: str) -> str:
        pieces = []
        for piece in text.split("; ") if text else []:
            analyte = _CRITICAL_SPOKEN.get(piece.split(" ", 1)[0])
            if analyte is not None:
                on, preliminary, in_range = notes[analyte][row]
                piece += on + (" (preliminary)" if preliminary else "")
                piece += ", within its reference range: see the lab's comment" if in_range else ""
            pieces.append(piece)
        return "; ".join(pieces)

    return pd.Series(
        [told(row, text) for row, text in enumerate(detail.tolist())], index=index, dtype="string"
    )


def _high_text(patients: pd.DataFrame, analyte: str, name: str, risk: str) -> pd.Series:
    """ "hyperleukocytosis: WBC 105.6 x10^9/L (CTCAE Leukocytosis grade 3, leukostasis risk)"."""
    grade = _high_grade(patients, analyte).astype("Int64").astype("string")
    term = {"wbc": "Leukocytosis", "alc": "Lymphocyte count increased"}[analyte]
    note = _count_note(patients, analyte)
    count = (" " + note).where(note.ne(""), "")
    return name + ": " + _NAMES[analyte] + count + " (CTCAE " + term + " grade " + grade + risk + ")"


def in_priority_order(frame: pd.DataFrame, *, then: str) -> pd.DataFrame:
    """``frame`` (patients' status columns) sorted by tier, then within it by the most severe finding:
    febrile neutropenia, an unjudged fever, the ANC grade (highest first), the highest other grade (WBC and
    ALC low or high, haemoglobin, platelets), a critical flag of the lab's (so one on a count with no grade
    comes after the graded ones), the WBC's grade (low or high), then ``then`` (a time: the most recent
    first); a new frame, ``tier`` added."""
    # An ungraded count sorts as grade 0, so that a measured normal ANC does not outrank a WBC grade 3.
    others = [_grade(frame, a) for a in ("wbc", "alc", *_OTHER)]
    others += [_high_grade(frame, a) for a in ("wbc", "alc")]
    keys = {
        "_febrile": _febrile_neutropenia(frame),
        "_unjudged": _febrile_unjudged(frame),
        "_anc": _anc_grade(frame),
        "_other": pd.concat(others, axis=1).max(axis=1),
        "_critical": _lab_critical(frame),
        # At the same grade, a WBC's before an ALC's or a platelet count's (the WBC holds the neutrophils).
        "_wbc": pd.concat([_grade(frame, "wbc"), _high_grade(frame, "wbc")], axis=1).max(axis=1),
    }
    out = frame.assign(tier=priority(frame))
    order = (
        out.assign(**keys)
        .reset_index(drop=True)
        .sort_values(
            ["tier", *keys, then],
            ascending=[True, *[False] * len(keys), False],
            na_position="last",
            kind="stable",
        )
    )
    return out.iloc[order.index.to_numpy()]


def prioritised(patients: pd.DataFrame) -> pd.DataFrame:
    """The list in worklist order, with ``tier``, ``priority_reason`` and ``grade`` (the highest grade)
    columns (a new frame)."""
    out = in_priority_order(patients, then="last_collected_at")
    return out.assign(priority_reason=priority_reason(out, out["tier"]), grade=max_grade(out))


def filtered(
    patients: pd.DataFrame,
    *,
    team: str | None = None,
    flags: list[str] | None = None,
    min_grade: int = 0,
    text: str = "",
    unacknowledged_only: bool = False,
    cbc_due_only: bool = False,
    worsening_only: bool = False,
    no_cbc_days: int | None = None,
) -> pd.DataFrame:
    """The rows matching every filter given (flags: any of them; ``cbc_due_only``: a CBC due now, the list's
    ``cbc_due`` column from analysis.due; ``worsening_only``: a count getting worse in any lineage,
    ``WORSENING``; ``no_cbc_days``: no CBC for at least that many calendar days, a patient without any CBC
    not among them).

    >>> patients = pd.DataFrame({"patient_id": ["A", "B", "C"], "name": None, "teams": "",
    ...     "latest_wbc_grade": None, "latest_anc_grade": None, "latest_alc_grade": None,
    ...     "acknowledged": None, "flags": [["alc_worsening"], ["lymphopenia"], []],
    ...     "days_since_cbc": [2, 45, None]})
    >>> filtered(patients, worsening_only=True)["patient_id"].tolist()
    ['A']
    >>> filtered(patients, no_cbc_days=30)["patient_id"].tolist()
    ['B']
    """
    keep = pd.Series(True, index=patients.index)
    if team:
        keep &= patients["teams"].fillna("").map(lambda teams: team in teams.split(", "))
    if flags:
        keep &= _has(patients, *flags)
    if min_grade > 0:
        keep &= max_grade(patients).fillna(0) >= min_grade
    needle = text.strip().lower()
    if needle:
        keep &= patients["patient_id"].str.lower().str.contains(needle, regex=False) | patients[
            "name"
        ].fillna("").str.lower().str.contains(needle, regex=False)
    if unacknowledged_only:
        keep &= patients["acknowledged"].eq(False).fillna(False)
    if cbc_due_only:
        keep &= patients["cbc_due"].astype("boolean").fillna(False)
    if worsening_only:
        keep &= _has(patients, *WORSENING)
    if no_cbc_days is not None:
        keep &= _no_cbc_for(patients, no_cbc_days)
    return patients[keep.to_numpy(dtype=bool)]


def _no_cbc_for(patients: pd.DataFrame, days: int) -> pd.Series:
    """Whether the last CBC is at least ``days`` calendar days old (False without any CBC)."""
    since = pd.to_numeric(patients["days_since_cbc"], errors="coerce")
    return pd.Series((since >= days).fillna(False).to_numpy(dtype=bool), index=patients.index)


def no_cbc_label(days: int) -> str:
    """ "No CBC for 30 days": the words of the filter and the count for a site's ``flags.no_cbc_days``."""
    return f"No CBC for {days} day" + ("" if days == 1 else "s")


def headline(patients: pd.DataFrame, *, no_cbc_days: int = DEFAULT_FLAG_RULES.no_cbc_days) -> dict[str, int]:
    """The counts above the worklist, of a ``prioritised`` list (its ``tier`` is not computed again);
    ``no_cbc_days``: the site's ``flags.no_cbc_days``, as the worklist's filter uses it."""
    return {
        "Patients": len(patients),
        "Urgent (priority 1-2)": int((patients["tier"] <= 2).sum()),
        "New or worsening neutropenia": int(_has(patients, *NEW_NEUTROPENIA).sum()),
        WORSENING_LABEL: int(_has(patients, *WORSENING).sum()),
        "Not acknowledged": int(patients["acknowledged"].eq(False).fillna(False).sum()),
        no_cbc_label(no_cbc_days): int(_no_cbc_for(patients, no_cbc_days).sum()),
    }
