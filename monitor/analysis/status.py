"""Where each patient stands now: the per-patient summary the lists read (materialised by db/)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.analysis.changes import GRADED, flag_lineage

# Results that no longer count (HL7 v2 OBX-11 W, D, X; FHIR entered-in-error, cancelled): kept in history,
# never summarised (docs/clinical-basis.md, Result status).
EXCLUDED_STATUSES = ("cancelled", "entered-in-error")


def usable_results(results: pd.DataFrame) -> pd.DataFrame:
    """Results that count: not cancelled or entered in error, and with a value."""
    return results[~results["status"].isin(EXCLUDED_STATUSES) & results["value"].notna()]


# What the status keeps of each graded analyte's latest usable result, in this order: the value with its
# comparator (a censored "<0.1") and collection time, the lower limit that applies with whose limit it is
# (a patient's own range, the one reported, the lab's, a population default), the CTCAE grade, the
# result's status (preliminary, final, corrected: docs/clinical-basis.md, Preliminary results), the upper
# limit that applies (from the same source as the lower), the CTCAE grade of a high count (Leukocytosis,
# Lymphocyte count increased: docs/clinical-basis.md, High counts) and the lab's own abnormal flag (HL7 v2
# OBX-8, FHIR Observation.interpretation: "HH"; docs/clinical-basis.md, The lab's abnormal flags).
LATEST_FIELDS = (
    "",
    "comparator",
    "at",
    "lln",
    "range_source",
    "grade",
    "status",
    "uln",
    "high_grade",
    "lab_flag",
)
# The latest haemoglobin (g/dL) and platelets (10^9/L) with their CTCAE v5.0 grades (Anemia, Platelet count
# decreased), and whether the latest result of any analyte the status reads carries a critical flag of the
# lab's, with its words.
OTHER_LATEST = ("hgb", "plt")
STATUS_EXTRA_COLUMNS = (
    "latest_hgb",
    "latest_hgb_grade",
    "latest_plt",
    "latest_plt_grade",
    "lab_critical",
    "lab_critical_detail",
)
# The lab's flags that mark a critical result (HL7 v2.5.1 table 0078; FHIR R4 v3-ObservationInterpretation)
# and their words: the panic (critical) limits, and a count off the analyser's scale.
CRITICAL_FLAGS = {
    "LL": "critical low",
    "HH": "critical high",
    "AA": "critical abnormal",
    "<": "below the instrument's scale",
    ">": "above the instrument's scale",
}
# The analytes whose latest result's flag makes a patient critical, in the order the words name them.
CRITICAL_ANALYTES = ("wbc", "anc", "alc", "hgb", "plt")
_SPOKEN = {"wbc": "WBC", "anc": "ANC", "alc": "ALC", "hgb": "Haemoglobin", "plt": "Platelets"}
_UNITS = {"hgb": "g/dL"}


def latest_column(analyte: str, field: str = "") -> str:
    """The status column holding ``field`` of the latest ``analyte``: ``latest_wbc``, ``latest_wbc_grade``."""
    return f"latest_{analyte}_{field}" if field else f"latest_{analyte}"


# Every such column, analyte by analyte: the one list the store, its reads and the command line share.
LATEST_COLUMNS = tuple(latest_column(analyte, field) for analyte in GRADED for field in LATEST_FIELDS)


def latest_values(results: pd.DataFrame) -> pd.DataFrame:
    """Per patient, the latest usable WBC, ANC and ALC with their comparators and collection times.

    >>> ts = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-02-01"], utc=True)
    >>> results = pd.DataFrame({"patient_key": [1, 1, 1], "panel_id": [10, 11, 11],
    ...     "collected_at": ts, "analyte": ["wbc", "wbc", "anc"], "value": [5.0, 3.1, 1.2],
    ...     "status": ["final"] * 3})
    >>> latest_values(results)[["latest_wbc", "latest_wbc_at", "latest_anc"]].to_dict("records")
    [{'latest_wbc': 3.1, 'latest_wbc_at': Timestamp('2026-02-01 00:00:00+0000', tz='UTC'), 'latest_anc': 1.2}]
    """
    usable = usable_results(results).sort_values(["patient_key", "collected_at", "panel_id"], kind="stable")
    latest = pd.DataFrame(index=pd.Index(usable["patient_key"].unique(), name="patient_key"))
    for analyte in GRADED:
        # tail(1), not last(): last() would fill a missing comparator from an older result.
        mine = usable[usable["analyte"] == analyte]
        last = mine.groupby("patient_key").tail(1).set_index("patient_key")
        latest[latest_column(analyte)] = last["value"]
        latest[latest_column(analyte, "comparator")] = last["comparator"] if "comparator" in last else None
        latest[latest_column(analyte, "at")] = last["collected_at"]
        latest[latest_column(analyte, "status")] = last["status"]
        flag = last["abnormal_flag"] if "abnormal_flag" in last else pd.Series(None, index=last.index)
        latest[latest_column(analyte, "lab_flag")] = flag.astype(object).where(flag.notna(), None)
    return latest


def critical_flags(flags: pd.Series) -> pd.Series:
    """The critical code among each result's lab flags ("HH", "LL", "AA", "<", ">"), or NA.

    A flag field may hold several codes ("HH~A", as HL7 v2 repeats OBX-8); the first critical one counts.

    >>> critical_flags(pd.Series(["HH", "H", "N~LL", None, ">"])).tolist()
    ['HH', <NA>, 'LL', <NA>, '>']
    """
    codes = flags.astype("string").str.strip().str.upper().str.split("~")
    found = codes.map(
        lambda listed: (
            next((c.strip() for c in listed if c.strip() in CRITICAL_FLAGS), pd.NA)
            if isinstance(listed, list)
            else pd.NA
        )
    )
    return found.astype("string")


def lab_critical(latest: pd.DataFrame) -> pd.DataFrame:
    """Per patient, whether the latest result of any of ``CRITICAL_ANALYTES`` carries a critical flag of the
    lab's (``CRITICAL_FLAGS``), and its words.

    ``latest``: one row per patient and analyte, the latest usable result (``patient_key``, ``analyte``,
    ``value``, ``comparator``, ``abnormal_flag``). Every patient in it gets a row: ``lab_critical`` False and
    ``lab_critical_detail`` "" when none is critical.

    >>> latest = pd.DataFrame({"patient_key": [1, 1, 2], "analyte": ["wbc", "anc", "wbc"],
    ...     "value": [105.6, 58.0, 5.0], "comparator": None, "abnormal_flag": ["HH", "HH", "N"]})
    >>> lab_critical(latest)["lab_critical_detail"].tolist()[0].split("; ")
    ['WBC 105.6 x10^9/L flagged HH (critical high) by the lab',
     'ANC 58.0 x10^9/L flagged HH (critical high) by the lab']
    >>> lab_critical(latest)["lab_critical"].tolist()
    [True, False]
    """
    patients = pd.Index(latest["patient_key"].unique(), name="patient_key")
    if "abnormal_flag" not in latest:
        return pd.DataFrame({"lab_critical": False, "lab_critical_detail": ""}, index=patients)
    rows = latest[latest["analyte"].isin(CRITICAL_ANALYTES).to_numpy(dtype=bool)]
    code = critical_flags(rows["abnormal_flag"])
    rows = rows.assign(code=code)[code.notna().to_numpy(dtype=bool)]
    order = {analyte: n for n, analyte in enumerate(CRITICAL_ANALYTES)}
    rows = rows.assign(order=rows["analyte"].map(order)).sort_values(["patient_key", "order"], kind="stable")
    comparator = rows["comparator"] if "comparator" in rows else pd.Series(None, index=rows.index)
    value = comparator.astype("string").fillna("") + rows["value"].map(_printed).astype("string")
    unit = rows["analyte"].map(lambda a: _UNITS.get(a, "x10^9/L"))
    words = rows["code"].map(CRITICAL_FLAGS)
    said = (
        rows["analyte"].map(_SPOKEN) + " " + value + " " + unit + " flagged " + rows["code"] + " (" + words
        + ") by the lab"
    )  # fmt: skip
    detail = said.groupby(rows["patient_key"]).agg("; ".join).reindex(patients)
    return pd.DataFrame(
        {"lab_critical": detail.notna().to_numpy(dtype=bool), "lab_critical_detail": detail.fillna("")},
        index=patients,
    )


def _printed(value: float) -> str:
    """A count with at least one decimal, as labs print them ("58.0", "105.6")."""
    text = f"{value:g}"
    return text if "." in text or "e" in text else f"{value:.1f}"


# What a sentence resting on a preliminary result ends with (docs/clinical-basis.md, Preliminary results).
PRELIMINARY_NOTE = " (preliminary result; final awaited)"


def preliminary_analytes(status: pd.DataFrame) -> pd.Series:
    """Per status row, the graded analytes whose latest result is preliminary, as a list (WBC, ANC, ALC
    order): what the grades and flags resting on them are marked with.

    >>> status = pd.DataFrame({"latest_wbc_status": ["preliminary", "final"],
    ...     "latest_anc_status": ["preliminary", None], "latest_alc_status": [None, None]})
    >>> preliminary_analytes(status).tolist()
    [['wbc', 'anc'], []]
    """
    marked = pd.DataFrame(
        {
            analyte: status[latest_column(analyte, "status")].eq("preliminary").fillna(False).to_numpy(bool)
            for analyte in GRADED
        },
        index=status.index,
    )
    names = np.array(GRADED, dtype=object)
    return pd.Series([list(names[row]) for row in marked.to_numpy()], index=status.index, dtype=object)


def mark_preliminary(flagged: pd.DataFrame, preliminary: pd.Series) -> pd.DataFrame:
    """``flagged`` (``flags`` and ``explanations`` as lists, indexed by patient) with each sentence of a
    flag that rests on a preliminary result ending in ``PRELIMINARY_NOTE``.

    A flag rests on the latest result of its lineage (``flag_lineage``): that result decides whether it
    holds now. ``preliminary``: per patient (same index), the lineages whose latest result is preliminary.

    >>> flagged = pd.DataFrame({"flags": [["leukopenia", "neutropenia"]],
    ...     "explanations": [["WBC 2.1 below 4.0", "ANC 1.2 below 1.5"]]}, index=[7])
    >>> mark_preliminary(flagged, pd.Series([["wbc"]], index=[7]))["explanations"].tolist()
    [['WBC 2.1 below 4.0 (preliminary result; final awaited)', 'ANC 1.2 below 1.5']]
    """
    rows = flagged[["flags", "explanations"]].explode(["flags", "explanations"])
    rows = rows[rows["flags"].notna().to_numpy()]
    if rows.empty:
        return flagged.copy()
    pairs = pd.DataFrame({"key": rows.index, "lineage": rows["flags"].map(flag_lineage).to_numpy()}).merge(
        preliminary.rename("lineage").explode().dropna().rename_axis("key").reset_index().assign(mark=True),
        on=["key", "lineage"],
        how="left",
    )
    marked = pairs["mark"].eq(True).to_numpy(dtype=bool)
    sentences = rows["explanations"].astype(str).to_numpy(dtype=object)
    sentences[marked] = sentences[marked] + PRELIMINARY_NOTE
    out = flagged.copy()
    out["explanations"] = pd.Series(sentences, index=rows.index).groupby(level=0, sort=False).agg(list)
    out["explanations"] = [value if isinstance(value, list) else [] for value in out["explanations"]]
    return out
