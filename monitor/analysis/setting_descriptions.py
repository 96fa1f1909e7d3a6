"""Every site setting in words: what it does, its unit, its bounds, and where its default comes from.

The Settings page and the ``settings`` command show a setting as a sentence with its value and unit, the
primary source of its default as a reader can check it (author or body, title, year, link) or a plain "no
source" statement, and the section of docs/clinical-basis.md that gives the rule at length. Raw keys
(``flags.chronic_min_days``) are for the command line and the page's advanced editor only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.analytes import ANALYTES

__all__ = [
    "GROUPS",
    "NO_SOURCE",
    "PRIMARY_SOURCES",
    "PRODUCT_DEFAULT",
    "SettingDescription",
    "describe",
    "in_words",
]

PRODUCT_DEFAULT = "product default, pending clinical sign-off"
NO_SOURCE = "no source: site decision"

# The primary sources the defaults rest on, as docs/clinical-basis.md lists them under "Primary sources".
PRIMARY_SOURCES: dict[str, str] = {
    "ctcae5": (
        "National Cancer Institute. Common Terminology Criteria for Adverse Events (CTCAE) Version 5.0. "
        "2017. https://ctep.cancer.gov/protocoldevelopment/electronic_applications/docs/"
        "CTCAE_v5_Quick_Reference_8.5x11.pdf"
    ),
    "fokkema": (
        "Fokkema MR, Herrmann Z, Muskiet FAJ, Moecks J. Reference change values for brain natriuretic "
        "peptides revisited. Clin Chem 2006;52(8):1602-1603. https://doi.org/10.1373/clinchem.2006.069369"
    ),
    "statland": (
        "Statland BE, Winkel P, Harris SC, Burdsall MJ, Saunders AM. Evaluation of biologic sources of "
        "variation of leukocyte counts and other hematologic quantities using very precise automated "
        "analyzers. Am J Clin Pathol 1978;69(1):48-54. https://pubmed.ncbi.nlm.nih.gov/563672/"
    ),
    "dot": (
        "Dot D, Miró J, Fuentes-Arderiu X. Within-subject biological variation of hematological quantities "
        "and analytical goals. Arch Pathol Lab Med 1992;116(8):825-826. https://pubmed.ncbi.nlm.nih.gov/1497462/"
    ),
    "pighi": (
        "Pighi L, Tosi M, Salvagno GL, Lippi G. Assessing intra- and inter-analyzer imprecision in automated "
        "hematological laboratories. J Med Biochem 2026. https://iris.univr.it/handle/11562/1178367"
    ),
    "dale": (
        "Dale DC, Bolyard AA. An update on the diagnosis and treatment of chronic idiopathic neutropenia. "
        "Curr Opin Hematol 2017;24(1):46-53. https://pmc.ncbi.nlm.nih.gov/articles/PMC5380401"
    ),
    "taxol": (
        "Bristol-Myers Squibb. TAXOL (paclitaxel) injection, US prescribing information (Drugs@FDA NDA "
        "020262, approved 1992). "
        "https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview.process&ApplNo=020262"
    ),
    "taxotere": (
        "Sanofi-aventis. TAXOTERE (docetaxel) injection, US prescribing information (Drugs@FDA NDA 020449, "
        "approved 1996). "
        "https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview.process&ApplNo=020449"
    ),
    "smith": (
        "Smith TJ, Bohlke K, Lyman GH, et al. Recommendations for the use of WBC growth factors: American "
        "Society of Clinical Oncology clinical practice guideline update. J Clin Oncol "
        "2015;33(28):3199-3212. https://doi.org/10.1200/JCO.2015.62.3488"
    ),
    "aapro": (
        "Aapro MS, Bohlius J, Cameron DA, et al. 2010 update of EORTC guidelines for the use of "
        "granulocyte-colony stimulating factor to reduce the incidence of chemotherapy-induced febrile "
        "neutropenia in adult patients with lymphoproliferative disorders and solid tumours. Eur J Cancer "
        "2011;47(1):8-32. https://doi.org/10.1016/j.ejca.2010.10.013"
    ),
    "freifeld": (
        "Freifeld AG, Bow EJ, Sepkowitz KA, et al. Clinical practice guideline for the use of antimicrobial "
        "agents in neutropenic patients with cancer: 2010 update by the Infectious Diseases Society of "
        "America. Clin Infect Dis 2011;52(4):e56-e93. https://doi.org/10.1093/cid/cir073"
    ),
}

# The page's groups, in the order it shows them.
GROUPS = (
    "Grading",
    "Flags",
    "Cycles",
    "Readiness for the next cycle",
    "CBCs due",
    "G-CSF and dose modification",
    "Nadir forecast",
    "Febrile neutropenia",
)


@dataclass(frozen=True, slots=True)
class SettingDescription:
    """One setting as a reader meets it.

    * ``words``: the rule as a sentence, ``{value}`` standing for the value with its unit (``{first}`` and
      ``{last}`` for a pair of days).
    * ``label``: a short name for its input; ``unit``: the unit it is shown and edited in.
    * ``kind``: "number", "whole" (a whole number), "toggle", "days" (two days, first to last) or
      "choice"; ``minimum``, ``maximum``, ``step`` bound the input; ``scale`` multiplies the stored value
      for display (100 for a fraction shown in %).
    * ``basis``: where the default comes from, in brief; ``sources``: keys of ``PRIMARY_SOURCES`` (empty
      when ``basis`` says there is no source); ``section``: the section of docs/clinical-basis.md.
    """

    group: str
    label: str
    words: str
    unit: str
    kind: str
    basis: str
    section: str
    sources: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    scale: float = 1.0
    choices: tuple[str, ...] = ()

    @property
    def citation(self) -> str:
        """The default's primary sources in full (author, title, year, link; several separated by "; "), or
        the plain no-source statement of ``basis`` when it has none."""
        if not self.sources:
            return self.basis
        return "; ".join(PRIMARY_SOURCES[name] for name in self.sources)


def _whole(
    group: str,
    label: str,
    words: str,
    unit: str,
    basis: str,
    section: str,
    sources: tuple[str, ...] = (),
    *,
    minimum: float = 1,
    maximum: float = 3650,
) -> SettingDescription:
    """A whole-number setting, from 1 to 3650 unless said otherwise."""
    return SettingDescription(
        group, label, words, unit, "whole", basis, section, sources, minimum=minimum, maximum=maximum, step=1
    )


_SITE_DEFAULT_FN = "no source: site default"
_DESCRIPTIONS: dict[str, SettingDescription] = {
    "grading.ctcae_version": SettingDescription(
        "Grading",
        "CTCAE version",
        "Counts are graded by NCI CTCAE version {value} (version 6.0 is an unverified transcription)",
        "",
        "choice",
        "NCI CTCAE v5.0 (2017); v6.0 is an unverified transcription",
        "CTCAE v5.0 grading",
        ("ctcae5",),
        choices=("5.0", "6.0"),
    ),
    "grading.rcv_z": SettingDescription(
        "Grading",
        "Z of the reference change value",
        "A fall is significant when it exceeds the reference change value at Z = {value} (1.645 is one-sided "
        "95 %, 1.96 two-sided 95 %)",
        "",
        "number",
        "one-sided 95 % for a significant fall, log-normal reference change value (Fokkema et al., Clin Chem "
        "2006)",
        "Reference change values",
        ("fokkema",),
        minimum=0.5,
        maximum=4.0,
        step=0.005,
    ),
    "flags.persistent_min_results": _whole(
        "Flags",
        "Results in a persistent run",
        "A run below the limit is persistent when it has at least {value}",
        "results",
        PRODUCT_DEFAULT,
        "Flag defaults",
        maximum=20,
    ),
    "flags.persistent_min_days": _whole(
        "Flags",
        "Days a persistent run spans",
        "A run below the limit is persistent when its results span at least {value} (a repeat count two "
        "weeks later)",
        "calendar days",
        PRODUCT_DEFAULT + ", in calendar days",
        "Calendar days",
    ),
    "flags.chronic_min_days": _whole(
        "Flags",
        "Days before a run is chronic",
        "A run below the limit is chronic once it has lasted {value} (chronic neutropenia lasts at least 3 "
        "months)",
        "calendar days",
        "chronic neutropenia lasts at least 3 months (Dale & Bolyard, Curr Opin Hematol 2017)",
        "Chronic neutropenia",
        ("dale",),
    ),
    "flags.slope_window_days": _whole(
        "Flags",
        "Days of results in the trend",
        "The trend line runs through the results outside chemotherapy cycles in the {value} before the "
        "latest result",
        "days",
        NO_SOURCE + " (180 days, long enough to see a slow marrow failure; results in chemotherapy cycles "
        "left out)",
        "Trend",
    ),
    "flags.slope_min_results": _whole(
        "Flags",
        "Results needed for a trend",
        "A trend is judged on at least {value}",
        "results",
        NO_SOURCE,
        "Trend",
        minimum=2,
        maximum=100,
    ),
    "flags.no_cbc_days": _whole(
        "Flags",
        "No recent CBC",
        "The worklist's filter and count of patients without a recent CBC take those whose last CBC was at "
        "least {value} ago",
        "days",
        NO_SOURCE,
        "Worklist filters",
        maximum=3650,
    ),
    "cycles.default_cycle_days": _whole(
        "Cycles",
        "Cycle length when none is known",
        "When neither the regimen nor the previous cycles give a length, the next dose is expected {value} "
        "after a start",
        "days",
        PRODUCT_DEFAULT,
        "Cycle days",
        maximum=365,
    ),
    "cycles.nadir_window_days": SettingDescription(
        "Cycles",
        "Nadir window",
        "A cycle's nadir counts as sampled when an ANC was drawn on days {first} to {last} after the dose",
        "days after the dose",
        "days",
        PRODUCT_DEFAULT + " (no primary source: the nadir usually falls 7 to 14 days after chemotherapy "
        "in teaching texts)",
        "Nadir timing",
        minimum=0,
        maximum=90,
        step=1,
    ),
    "cycles.recovery_anc": SettingDescription(
        "Cycles",
        "Recovery ANC",
        "Recovery is the first ANC at or above {value} after the nadir",
        "×10^9/L",
        "number",
        "adult neutropenia bound (Dale & Bolyard 2017) and readiness ANC (paclitaxel and docetaxel "
        "prescribing information)",
        "Recovery and cross-cycle trend",
        ("dale", "taxol", "taxotere"),
        minimum=0.1,
        maximum=10.0,
        step=0.1,
    ),
    "cycles.trend_min_cycles": _whole(
        "Cycles",
        "Cycles needed for a nadir trend",
        "Deepening nadirs are judged over at least {value} whose nadir was sampled",
        "cycles",
        PRODUCT_DEFAULT,
        "Recovery and cross-cycle trend",
        maximum=50,
    ),
    "cycles.recovery_delay_days": _whole(
        "Cycles",
        "Days later for a slower recovery",
        "Recovery is slower when the last comes at least {value} later in its cycle than the first",
        "days",
        PRODUCT_DEFAULT,
        "Recovery and cross-cycle trend",
        maximum=90,
    ),
    "cycles.readiness.anc_min": SettingDescription(
        "Readiness for the next cycle",
        "ANC needed",
        "A patient is ready for the next cycle when the ANC is at least {value} (regimens without a rule of "
        "their own)",
        "×10^9/L",
        "number",
        "paclitaxel and docetaxel prescribing information",
        "Readiness thresholds",
        ("taxol", "taxotere"),
        minimum=0.1,
        maximum=10.0,
        step=0.1,
    ),
    "cycles.readiness.plt_min": SettingDescription(
        "Readiness for the next cycle",
        "Platelets needed",
        "A patient is ready for the next cycle only when the platelets are at least {value} too",
        "×10^9/L",
        "number",
        "paclitaxel prescribing information",
        "Readiness thresholds",
        ("taxol",),
        minimum=1.0,
        maximum=1000.0,
        step=5.0,
    ),
    "cycles.readiness.inclusive": SettingDescription(
        "Readiness for the next cycle",
        "A count exactly at the threshold is ready",
        "A count exactly at the threshold counts as ready: {value}",
        "",
        "toggle",
        "the labels differ: paclitaxel writes >, docetaxel >=",
        "Readiness thresholds",
        ("taxol", "taxotere"),
    ),
    "cycles.readiness_window_days": _whole(
        "Readiness for the next cycle",
        "Days of counts judged before the next dose",
        "Readiness is judged on the last counts drawn in the {value} before the next dose",
        "days",
        NO_SOURCE + " (when the pre-cycle count is drawn)",
        "Readiness for the planned next dose",
        maximum=30,
    ),
    "cycles.overdue_cycle_lengths": _whole(
        "Readiness for the next cycle",
        "Cycle lengths a late dose stays current",
        "A next dose not given keeps the patient in the last cycle for {value} past the expected day",
        "cycle lengths",
        NO_SOURCE,
        "Readiness for the planned next dose",
        maximum=20,
    ),
    "cycles.due_lead_hours": _whole(
        "CBCs due",
        "Alert lead time before a nadir window",
        "A nadir window with no CBC in it raises a monitoring-gap alert {value} before it opens",
        "hours",
        NO_SOURCE,
        "CBCs due",
        maximum=720,
    ),
    "cycles.due_severe_days": _whole(
        "CBCs due",
        "Days without a CBC at grade 3 or 4",
        "Outside chemotherapy, a patient at CTCAE grade 3 or 4 is due a CBC after more than {value} without "
        "one",
        "calendar days",
        NO_SOURCE,
        "CBCs due",
        maximum=365,
    ),
    "cycles.gcsf_prophylaxis_days": SettingDescription(
        "G-CSF and dose modification",
        "G-CSF prophylaxis window",
        "G-CSF counts as prophylaxis for a cycle when it starts on D{first} to D{last} (D1 is the dose day; "
        "pegfilgrastim is given 24-72 hours after chemotherapy)",
        "D days",
        "days",
        "pegfilgrastim 24-72 hours after chemotherapy (ASCO 2015, Smith et al.; common practice); D1 = the "
        "dose day",
        "G-CSF prophylaxis",
        ("smith",),
        minimum=1,
        maximum=30,
        step=1,
    ),
    "cycles.gcsf_risk_age": _whole(
        "G-CSF and dose modification",
        "Age that is a risk factor",
        "An age of {value} or more at the dose is a patient risk factor for febrile neutropenia",
        "years",
        "age 65 or more, a patient risk factor for febrile neutropenia (ASCO 2015; EORTC 2010, Aapro et al.)",
        "G-CSF prophylaxis",
        ("smith", "aapro"),
        maximum=120,
    ),
    "cycles.dose_limiting_days": _whole(
        "G-CSF and dose modification",
        "Days of ANC < 0.5 that limit the dose",
        "An ANC below 0.5 ×10^9/L for {value} or more, as sampled, is a dose-limiting neutropenia",
        "days",
        "ANC < 0.5 for 7 days or more (paclitaxel prescribing information; docetaxel: more than one week)",
        "Dose modification",
        ("taxol", "taxotere"),
        maximum=60,
    ),
    "cycles.forecast_grade4_threshold": SettingDescription(
        "Nadir forecast",
        "Probability of a grade 4 nadir marked (0 to 1)",
        'The worklist marks "forecast grade 4" when the forecast\'s probability of a grade 4 nadir is at '
        "least {value}",
        "",
        "number",
        NO_SOURCE + " (the probability of a grade 4 nadir the worklist marks)",
        "Nadir forecast",
        minimum=0.01,
        maximum=1.0,
        step=0.05,
    ),
    "febrile.anc_before_hours": _whole(
        "Febrile neutropenia",
        "Hours an ANC before a fever is in force",
        "An ANC drawn up to {value} before a fever can be the one in force for it (the lower of the two "
        "wins)",
        "hours",
        _SITE_DEFAULT_FN,
        "Febrile neutropenia",
        maximum=720,
    ),
    "febrile.anc_after_hours": _whole(
        "Febrile neutropenia",
        "Hours an ANC after a fever is in force",
        "An ANC drawn up to {value} after a fever can be the one in force for it (the lower of the two wins)",
        "hours",
        _SITE_DEFAULT_FN,
        "Febrile neutropenia",
        maximum=720,
    ),
    "febrile.sustained_minutes": _whole(
        "Febrile neutropenia",
        "Minutes a fever is sustained",
        "A temperature of 38.0 °C or more is a sustained fever when it lasts {value} (IDSA 2010: over an "
        "hour; CTCAE v5.0: more than one hour)",
        "minutes",
        "IDSA 2010 (Freifeld et al., Clin Infect Dis 2011) 'over a 1-h period', CTCAE v5.0 'for more than "
        "one hour'",
        "Febrile neutropenia",
        ("freifeld", "ctcae5"),
        maximum=1440,
    ),
    "febrile.falling_hours": _whole(
        "Febrile neutropenia",
        "Hours within which a falling ANC counts",
        "An ANC from 0.5 to 1.0 ×10^9/L counts (IDSA 2010) when it is expected to fall below 0.5 within "
        "{value}",
        "hours",
        "IDSA 2010 (Freifeld et al., Clin Infect Dis 2011): ANC expected to fall below 0.5 during the next "
        "48 h",
        "Febrile neutropenia",
        ("freifeld",),
        maximum=720,
    ),
    "febrile.falling_lookback_hours": _whole(
        "Febrile neutropenia",
        "Hours back for the earlier ANC of a fall",
        "The fall is judged from the ANC drawn up to {value} before the paired one",
        "hours",
        NO_SOURCE,
        "Febrile neutropenia",
        maximum=720,
    ),
    "febrile.end_anc": SettingDescription(
        "Febrile neutropenia",
        "ANC that ends an episode",
        "An episode of febrile neutropenia ends when the ANC in force is at least {value} and no fever was "
        "recorded for the afebrile hours",
        "×10^9/L",
        "number",
        NO_SOURCE,
        "Febrile neutropenia",
        minimum=0.1,
        maximum=10.0,
        step=0.1,
    ),
    "febrile.afebrile_hours": _whole(
        "Febrile neutropenia",
        "Hours without fever that end an episode",
        "An episode of febrile neutropenia ends only when no fever has been recorded for {value} (and the "
        "ANC is back)",
        "hours",
        NO_SOURCE,
        "Febrile neutropenia",
        maximum=720,
    ),
    "febrile.free_text_window_hours": _whole(
        "Febrile neutropenia",
        "Hours a measured temperature replaces a written fever",
        "A fever written in an event is set aside only when a temperature was measured within {value} of it",
        "hours",
        NO_SOURCE,
        "Febrile neutropenia",
        maximum=48,
    ),
    "febrile.unjudged_hours": _whole(
        "Febrile neutropenia",
        "Hours a fever without an ANC stays unjudged",
        "A fever of the last {value} with no ANC to pair makes febrile neutropenia unknown",
        "hours",
        NO_SOURCE,
        "Febrile neutropenia",
        maximum=720,
    ),
}

# Where each default pair of coefficients of variation comes from: (analytical, within-subject).
_CV_SOURCES = {
    "wbc": (("pighi",), ("dot",)),
    "anc": (("pighi",), ("statland",)),
    "alc": ((), ("statland",)),
    "amc": ((), ("statland",)),
}
_CV_ASSUMED = "no source: an assumption (use the laboratory's own QC CV)"


def _cv(analyte: str, which: str) -> SettingDescription:
    label = ANALYTES[analyte].label if analyte in ANALYTES else analyte.upper()
    analytical = which == "cv_analytical"
    sources = _CV_SOURCES.get(analyte, ((), ()))[0 if analytical else 1]
    if analyte not in _CV_SOURCES:
        basis = "no source: site configuration"
    elif sources:
        basis = "see docs/clinical-basis.md"  # the RcvInput's own source text is the one shown
    else:
        basis = _CV_ASSUMED
    name = "an analytical variation (CVA)" if analytical else "a within-subject variation (CVI)"
    return SettingDescription(
        "Grading",
        f"{label}: {name.split(' ', 1)[1]}",
        f"The {label} reference change value uses {name} of {{value}}",
        "%",
        "number",
        basis,
        "Reference change values",
        sources,
        minimum=0.0,
        maximum=99.9,
        step=0.1,
        scale=100.0,
    )


def _regimen(name: str, field: str) -> SettingDescription:
    words = {
        "anc_min": ("ANC needed", "Regimen {name}: ready when the ANC is at least {{value}}", "×10^9/L"),
        "plt_min": (
            "Platelets needed",
            "Regimen {name}: ready when the platelets are at least {{value}}",
            "×10^9/L",
        ),
        "inclusive": (
            "At the threshold is ready",
            "Regimen {name}: a count at the threshold is ready: {{value}}",
            "",
        ),
        "nadir_window_days": (
            "Nadir window",
            "Regimen {name}: the nadir falls on days {{first}} to {{last}}",
            "days",
        ),
        "fn_risk": ("Febrile-neutropenia risk", "Regimen {name}: febrile-neutropenia risk {{value}}", ""),
        "fn_risk_source": ("Source of the risk", "Regimen {name}: the risk is taken from {{value}}", ""),
    }
    label, sentence, unit = words.get(field, (field, "Regimen {name}: " + field + " {{value}}", ""))
    section = {
        "fn_risk": "G-CSF prophylaxis",
        "fn_risk_source": "G-CSF prophylaxis",
        "nadir_window_days": "CBCs due",
    }.get(field, "Readiness thresholds")
    kind = {"inclusive": "toggle", "nadir_window_days": "days", "fn_risk": "choice", "fn_risk_source": "text"}
    return SettingDescription(
        "Readiness for the next cycle",
        label,
        sentence.format(name=name),
        unit,
        kind.get(field, "number"),
        "no source: site configuration, per regimen",
        section,
    )


def describe(key: str) -> SettingDescription:
    """The description of the setting ``key`` (``section.name``, or deeper for CVs and regimens).

    >>> describe("flags.chronic_min_days").unit
    'calendar days'
    >>> describe("cycles.regimens.ac-t.anc_min").section
    'Readiness thresholds'
    """
    if key in _DESCRIPTIONS:
        return _DESCRIPTIONS[key]
    parts = key.split(".")
    if parts[:2] == ["grading", "rcv_inputs"] and len(parts) == 4:
        return _cv(parts[2], parts[3])
    if parts[:2] == ["cycles", "regimens"] and len(parts) >= 4:
        return _regimen(".".join(parts[2:-1]), parts[-1])
    raise KeyError(f"no description of the setting {key!r}")


def _shown(value: Any, description: SettingDescription) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and description.scale != 1:
        value = round(float(value) * description.scale, 6)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    unit = description.unit
    if text == "1" and unit.endswith("s"):
        unit = unit[:-1]  # 1 hour, 1 result
    return f"{text} {unit}".strip() if description.kind not in ("toggle", "choice") else text


def in_words(key: str, value: Any) -> str:
    """The setting ``key`` at ``value`` as a sentence.

    >>> in_words("grading.rcv_z", 1.96)[:80]
    'A fall is significant when it exceeds the reference change value at Z = 1.96 (1.'
    >>> in_words("cycles.nadir_window_days", (7, 14))
    "A cycle's nadir counts as sampled when an ANC was drawn on days 7 to 14 after the dose"
    >>> in_words("grading.rcv_inputs.wbc.cv_within", 0.108)
    'The WBC reference change value uses a within-subject variation (CVI) of 10.8 %'
    """
    description = describe(key)
    if description.kind == "days" and isinstance(value, list | tuple) and len(value) == 2:
        return description.words.format(first=value[0], last=value[1])
    return description.words.format(value=_shown(value, description))


def cited(description: SettingDescription, source: str | None = None) -> str:
    """``source`` (the default's basis when not given) with the section of docs/clinical-basis.md."""
    return f"{source or description.basis}; see docs/clinical-basis.md, {description.section}"
