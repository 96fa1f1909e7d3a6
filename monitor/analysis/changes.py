"""What changed in a patient's status between two computations: flags that appeared or cleared, grades
that rose, flags the lab took back by correcting or withdrawing a result ("withdrawn"), and preliminary
results the lab made final ("final"). The materialised status keeps only "now"; these changes are what
``alerts`` reports (docs/clinical-basis.md, Preliminary results and Corrections that clear a flag)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.support_flags import SUPPORT_FLAGS

__all__ = [
    "CHANGE_COLUMNS",
    "FEBRILE_UNJUDGED",
    "FEBRILE_UNJUDGED_WORDS",
    "GRADED",
    "LAB_CRITICAL",
    "REVISION_COLUMNS",
    "critical_changes",
    "flag_lineage",
    "spoken_flag",
    "status_changes",
]

# The analytes whose latest value, limit and grade the status keeps (and whose grade rises are changes).
GRADED = ("wbc", "anc", "alc")
# Febrile neutropenia rests on temperatures and the ANC (``analysis.febrile``); its lineage is the ANC's.
FEBRILE = "febrile_neutropenia"
# A recent fever with no ANC to judge it by (febrile neutropenia unknown): its flag and words.
FEBRILE_UNJUDGED = "febrile_unjudged"
FEBRILE_UNJUDGED_WORDS = "fever not judged (no ANC)"
CHANGE_COLUMNS = ("patient_key", "change", "flag", "analyte", "grade_before", "grade_after", "explanation")
# The flag of the change recorded for a new critical result from the lab (docs/clinical-basis.md, The
# lab's abnormal flags).
LAB_CRITICAL = "lab_critical"
_NAMES = {"wbc": "WBC", "anc": "ANC", "alc": "ALC"}
# A result revised since the status was last computed: its new version (status, value, when it arrived)
# and the version it replaced (``*_before``), of the same panel and analyte.
REVISION_COLUMNS = (
    "patient_key",
    "analyte",
    "collected_at",
    "revised_at",
    "status",
    "value",
    "comparator",
    "status_before",
    "value_before",
    "comparator_before",
)
# Statuses by which the lab takes a result back: a correction replaces its value, the others withdraw it.
TAKEN_BACK = {"corrected": "corrected to", "cancelled": "cancelled", "entered-in-error": "entered in error"}


def flag_lineage(flag: str) -> str:
    """The lineage whose results decide ``flag``: ANC for ``neutropenia``, ``neutrophilia``,
    ``febrile_neutropenia``, ``febrile_unjudged`` and ``anc_*`` flags, ALC for ``lymphopenia``,
    ``lymphocytosis`` and ``alc_*``, WBC for the others (``leukocytosis``; the bare run and trend flags
    refer to WBC).

    >>> [flag_lineage(f) for f in ("leukopenia", "neutropenia", "anc_persistent", "alc_new_onset", "chronic")]
    ['wbc', 'anc', 'anc', 'alc', 'wbc']
    >>> [flag_lineage(f) for f in ("leukocytosis", "neutrophilia", "lymphocytosis")]
    ['wbc', 'anc', 'alc']
    """
    if flag in ("neutropenia", "neutrophilia", FEBRILE, FEBRILE_UNJUDGED) or flag.startswith("anc_"):
        return "anc"
    if flag in ("lymphopenia", "lymphocytosis") or flag.startswith("alc_"):
        return "alc"
    return "wbc"


# The flags named by their own word: the counts below and above their limits.
_BELOW = ("leukopenia", "neutropenia", "lymphopenia", "leukocytosis", "neutrophilia", "lymphocytosis")


def spoken_flag(flags: pd.Series) -> pd.Series:
    """Flags named in a sentence, with the count they judge (the bare change flags are the WBC's), as
    ``analysis.flags.flag_label`` names them on the pages.

    >>> spoken_flag(pd.Series(["new_onset", "anc_new_onset", "neutropenia", "significant_drop"])).tolist()
    ['WBC new onset', 'ANC new onset', 'neutropenia', 'WBC significant drop']
    """
    words = {}
    for flag in flags.dropna().unique():  # a handful of distinct names
        lineage, _, rest = str(flag).partition("_")
        if flag in _BELOW:
            words[flag] = flag
        elif flag == FEBRILE:
            words[flag] = "febrile neutropenia"
        elif flag == FEBRILE_UNJUDGED:
            words[flag] = FEBRILE_UNJUDGED_WORDS
        elif flag in SUPPORT_FLAGS:  # the cycle decision support, as the pages name it
            words[flag] = SUPPORT_FLAGS[flag]
        elif lineage in GRADED and rest:
            words[flag] = f"{lineage.upper()} {rest.replace('_', ' ')}"
        else:
            words[flag] = "WBC " + str(flag).replace("_", " ")
    return flags.map(words)


def critical_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """A change "appeared" of flag ``LAB_CRITICAL`` per patient whose ``lab_critical_detail`` in ``after``
    names a critical result from the lab that ``before`` did not (a patient missing from ``before`` is new),
    worded "critical result from the lab: <the new results>" (``CHANGE_COLUMNS``).

    >>> before = pd.DataFrame({"patient_key": [1, 2], "lab_critical_detail": ["", "WBC 6.0 flagged AA"]})
    >>> after = pd.DataFrame({"patient_key": [1, 2, 3],
    ...     "lab_critical_detail": ["ANC 0.2 flagged LL", "WBC 6.0 flagged AA", "Platelets 8.0 flagged LL"]})
    >>> critical_changes(before, after)[["patient_key", "explanation"]].values.tolist()
    [[1, 'critical result from the lab: ANC 0.2 flagged LL'],
     [3, 'critical result from the lab: Platelets 8.0 flagged LL']]
    """
    known = dict(zip(before["patient_key"], before["lab_critical_detail"].fillna(""), strict=True))
    rows = []
    for key, detail in zip(after["patient_key"], after["lab_critical_detail"].fillna(""), strict=True):
        old = set(str(known.get(key, "") or "").split("; "))
        new = [piece for piece in str(detail).split("; ") if piece and piece not in old]
        if new:
            rows.append(
                (
                    key,
                    "appeared",
                    LAB_CRITICAL,
                    None,
                    None,
                    None,
                    "critical result from the lab: " + "; ".join(new),
                )
            )
    out = pd.DataFrame(rows, columns=list(CHANGE_COLUMNS))
    return out.astype({"grade_before": "Int64", "grade_after": "Int64"})


def status_changes(
    before: pd.DataFrame,
    after: pd.DataFrame,
    revisions: pd.DataFrame | None = None,
    *,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """Changes from ``before`` to ``after`` (a row per patient each; one missing from ``before`` is new).

    Both frames have ``patient_key``, ``flags`` and ``explanations`` (aligned sequences) and
    ``wbc_grade``/``anc_grade``/``alc_grade`` (nullable); with ``revisions``, also ``wbc_at``/``anc_at``/
    ``alc_at`` (when the latest result was collected). A grade rise counts from a known grade, or from
    none to grade 1 or worse.

    ``revisions`` (``REVISION_COLUMNS``): results the lab revised since ``before`` was computed. A flag
    that cleared is "withdrawn", not "cleared", when the lab corrected or withdrew a result of its lineage
    (``flag_lineage``) and no newer result of that lineage arrived: "leukopenia withdrawn: WBC 2.5
    corrected to 5.0 by the lab on 2026-03-02". A preliminary result made final (or corrected) is a
    "final" change: "WBC 2.1 preliminary -> 2.0 final on 2026-03-02; grade unchanged". Dates are the day
    the revision arrived, in ``timezone``.

    >>> before = pd.DataFrame({"patient_key": [1], "flags": [("leukopenia",)], "explanations": [("a",)],
    ...     "wbc_grade": [1], "anc_grade": [0], "alc_grade": [None]})
    >>> after = pd.DataFrame({"patient_key": [1], "flags": [("leukopenia", "worsening")],
    ...     "explanations": [("b", "WBC worsening: grade 1 -> 2")], "wbc_grade": [2], "anc_grade": [0],
    ...     "alc_grade": [None]})
    >>> changes = status_changes(before, after)
    >>> changes[["change", "flag", "analyte", "grade_before", "grade_after"]].values.tolist()
    [['appeared', 'worsening', None, <NA>, <NA>], ['worsened', 'grade', 'wbc', 1, 2]]
    """
    old, new = _flags(before), _flags(after)
    pair = old.merge(new, on=["patient_key", "flag"], how="outer", suffixes=("_old", "_new"), indicator=True)
    appeared = pair[pair["_merge"].eq("right_only").to_numpy()].assign(change="appeared")
    # Febrile neutropenia, an emergency, is told first among a patient's new flags (as in the flags' order).
    appeared = appeared.iloc[np.argsort(appeared["flag"].ne(FEBRILE).to_numpy(), kind="stable")]
    appeared["explanation"] = appeared["explanation_new"]
    # Only patients still present can clear a flag; a patient dropped from ``after`` is not judged.
    cleared = pair[pair["_merge"].eq("left_only").to_numpy() & pair["patient_key"].isin(after["patient_key"])]
    cleared = cleared.assign(change="cleared", explanation="no longer: " + cleared["explanation_old"])
    # The end of a febrile-neutropenia episode is a recovery (docs/clinical-basis.md, Febrile neutropenia).
    recovered = cleared["flag"].eq(FEBRILE).to_numpy(dtype=bool)
    cleared.loc[recovered, "explanation"] = (
        "recovered from febrile neutropenia (was: "
        + cleared.loc[recovered, "explanation_old"].astype(str)
        + ")"
    )
    if revisions is not None and not revisions.empty and not cleared.empty:
        cleared = _withdrawn(cleared, before, after, revisions, timezone)
    flags = pd.concat([appeared, cleared], ignore_index=True).assign(analyte=None)
    flags = flags.assign(grade_before=None, grade_after=None)
    parts = [flags.reindex(columns=list(CHANGE_COLUMNS)), _grades(before, after)]
    if revisions is not None and not revisions.empty:
        parts.append(_finals(before, after, revisions, timezone))
    out = pd.concat([part for part in parts if not part.empty] or parts[:1], ignore_index=True)
    out = out.reindex(columns=list(CHANGE_COLUMNS))
    out["grade_before"] = out["grade_before"].astype("Int64")
    out["grade_after"] = out["grade_after"].astype("Int64")
    out["explanation"] = out["explanation"].fillna("").astype(str)
    return out.sort_values(["patient_key", "change"], kind="stable").reset_index(drop=True)


def _flags(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[["patient_key", "flags", "explanations"]].explode(["flags", "explanations"])
    rows = rows[rows["flags"].notna().to_numpy()]
    return rows.rename(columns={"flags": "flag", "explanations": "explanation"})


def _grades(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    columns = [f"{a}_grade" for a in GRADED]
    both = after[["patient_key", *columns]].merge(
        before[["patient_key", *columns]], on="patient_key", how="left", suffixes=("", "_old")
    )
    parts = []
    for analyte in GRADED:
        now = both[f"{analyte}_grade"].astype("Float64")
        was = both[f"{analyte}_grade_old"].astype("Float64")
        rose = ((now > was.fillna(0)) & (now >= 1)).fillna(False).to_numpy(dtype=bool)
        # A patient seen for the first time has no earlier grade: say so, not "none -> 2".
        text: pd.Series[str] = (
            _NAMES[analyte] + " CTCAE grade "
            + (was[rose].astype("Int64").astype("string") + " -> ").fillna("")
            + now[rose].astype("Int64").astype("string")
            + np.where(was[rose].isna(), " (first assessment)", "")
        )  # fmt: skip
        parts.append(
            pd.DataFrame(
                {
                    "patient_key": both.loc[rose, "patient_key"].to_numpy(),
                    "change": "worsened",
                    "flag": "grade",
                    "analyte": analyte,
                    "grade_before": was[rose].astype("Int64").to_numpy(),
                    "grade_after": now[rose].astype("Int64").to_numpy(),
                    "explanation": text.to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _value(values: pd.Series, comparators: pd.Series) -> pd.Series:
    """Values as the lab printed them, with a censored result's comparator ("<0.1")."""
    return comparators.fillna("").astype(str) + values.map(_printed, na_action="ignore").fillna("?")


def _printed(value: float) -> str:
    """A count with at least one decimal, as labs print them ("5.0", "2.05"), never "5"."""
    text = f"{value:g}"
    return text if "." in text or "e" in text else f"{value:.1f}"


def _day(times: pd.Series, timezone: str) -> pd.Series:
    return pd.to_datetime(times, utc=True).dt.tz_convert(timezone).dt.strftime("%Y-%m-%d")


def _withdrawn(
    cleared: pd.DataFrame,
    before: pd.DataFrame,
    after: pd.DataFrame,
    revisions: pd.DataFrame,
    timezone: str,
) -> pd.DataFrame:
    """``cleared`` with the flags the lab took back (see ``status_changes``) as "withdrawn"."""
    taken = revisions[revisions["status"].isin(tuple(TAKEN_BACK)).to_numpy(dtype=bool)]
    taken = taken.sort_values(["patient_key", "analyte", "collected_at", "revised_at"], kind="stable")
    # The latest result taken back per patient and lineage is the one the sentence names.
    taken = taken.groupby(["patient_key", "analyte"]).tail(1)
    if taken.empty:
        return cleared
    words = taken["status"].map(TAKEN_BACK)
    value = _value(taken["value"], taken["comparator"])
    taken = taken.assign(
        said=_named(taken["analyte"]) + " " + _value(taken["value_before"], taken["comparator_before"])
        + " " + words + np.where(taken["status"].eq("corrected"), " " + value, "")
        + " by the lab on " + _day(taken["revised_at"], timezone)
    )  # fmt: skip
    rows = cleared.assign(analyte=cleared["flag"].map(flag_lineage)).reset_index(drop=True)
    rows = rows.merge(taken[["patient_key", "analyte", "said"]], on=["patient_key", "analyte"], how="left")
    # A newer result of the lineage than the status had seen: the flag may have cleared on it instead.
    at = [f"{a}_at" for a in GRADED]
    if all(column in before and column in after for column in at):
        was = before.set_index("patient_key")[at].reindex(rows["patient_key"])
        now = after.set_index("patient_key")[at].reindex(rows["patient_key"])
        pick = rows["analyte"].map({a: i for i, a in enumerate(GRADED)}).to_numpy(dtype=int)
        seen = pd.to_datetime(pd.Series(was.to_numpy()[np.arange(len(rows)), pick]), utc=True)
        latest = pd.to_datetime(pd.Series(now.to_numpy()[np.arange(len(rows)), pick]), utc=True)
        newer = (latest > seen).fillna(False).to_numpy(dtype=bool)
    else:
        newer = np.zeros(len(rows), dtype=bool)
    took_back = rows["said"].notna().to_numpy(dtype=bool) & ~newer
    rows.loc[took_back, "change"] = "withdrawn"
    rows.loc[took_back, "explanation"] = spoken_flag(rows["flag"]) + " withdrawn: " + rows["said"]
    return rows.drop(columns=["said", "analyte"])


def _named(analytes: pd.Series) -> pd.Series:
    return analytes.map(_NAMES).fillna(analytes.str.upper())


def _finals(
    before: pd.DataFrame, after: pd.DataFrame, revisions: pd.DataFrame, timezone: str
) -> pd.DataFrame:
    """A "final" change per preliminary result the lab made final or corrected, with the grade it now has
    when it is still the latest of its analyte."""
    done = revisions[
        revisions["status_before"].eq("preliminary").to_numpy(dtype=bool)
        & revisions["status"].isin(("final", "corrected")).to_numpy(dtype=bool)
        & revisions["analyte"].isin(GRADED).to_numpy(dtype=bool)
    ].reset_index(drop=True)
    if done.empty:
        return pd.DataFrame(columns=list(CHANGE_COLUMNS))
    keys = done["patient_key"]
    grade_before = pd.Series(pd.NA, index=done.index, dtype="Float64")
    grade_after = pd.Series(pd.NA, index=done.index, dtype="Float64")
    shown = np.ones(len(done), dtype=bool)
    for analyte in GRADED:
        mine = done["analyte"].eq(analyte).to_numpy(dtype=bool)
        for frame, target in ((before, grade_before), (after, grade_after)):
            indexed = frame.set_index("patient_key")
            if f"{analyte}_at" not in indexed:
                continue
            row = indexed.reindex(keys)
            # The grade is this result's only while it is the latest of its analyte.
            same = (
                pd.to_datetime(row[f"{analyte}_at"], utc=True).to_numpy() == done["collected_at"].to_numpy()
            )
            grade = row[f"{analyte}_grade"].astype("Float64").to_numpy()
            target[mine & same] = grade[mine & same]
            if frame is before and f"{analyte}_status" in indexed:
                # Only a result the status showed as preliminary (the latest of its analyte) is news: a
                # preliminary and its final in one import, or a preliminary behind a newer count, is not.
                was_shown = same & row[f"{analyte}_status"].eq("preliminary").fillna(False).to_numpy(bool)
                shown[mine] = was_shown[mine]
    done, grade_before, grade_after = done[shown], grade_before[shown], grade_after[shown]
    keys = done["patient_key"]
    if done.empty:
        return pd.DataFrame(columns=list(CHANGE_COLUMNS))
    known = grade_before.notna() & grade_after.notna()
    verdict = np.where(
        grade_before.eq(grade_after).fillna(False),
        "; grade unchanged",
        "; grade changed " + grade_before.astype("Int64").astype("string") + " -> "
        + grade_after.astype("Int64").astype("string"),
    )  # fmt: skip
    text = (
        _named(done["analyte"]) + " " + _value(done["value_before"], done["comparator_before"])
        + " preliminary -> " + _value(done["value"], done["comparator"]) + " " + done["status"]
        + " on " + _day(done["revised_at"], timezone)
        + pd.Series(np.where(known.to_numpy(dtype=bool), verdict, ""), index=done.index)
    )  # fmt: skip
    return pd.DataFrame(
        {
            "patient_key": keys.to_numpy(),
            "change": "final",
            "flag": "result",
            "analyte": done["analyte"].to_numpy(),
            "grade_before": grade_before.astype("Int64").to_numpy(),
            "grade_after": grade_after.astype("Int64").to_numpy(),
            "explanation": text.to_numpy(),
        }
    )
