"""The CBC analytes the product knows, their canonical units, LOINC codes and plausibility limits.

LOINC meanings (Regenstrief Institute, https://loinc.org) were checked in VSAC, CIBMTR, mCODE, US Core
and NIST publications of LOINC content: docs/clinical-basis.md, LOINC codes. Codes are matched exactly;
display text is never used to identify a result (LOINC renamed "/100 leukocytes" to "/Leukocytes" in long
names).
"""

from __future__ import annotations

from dataclasses import dataclass

COUNT_UNIT = "10^9/L"  # CTCAE v5.0 prints counts as "x 10e9 /L"
HGB_UNIT = "g/dL"
PERCENT_UNIT = "%"
TEMPERATURE_UNIT = "Cel"  # UCUM's degree Celsius


@dataclass(frozen=True, slots=True)
class Analyte:
    """One measurand of the CBC as the product stores it."""

    code: str  # canonical name used in the store and in files
    label: str  # what a clinician reads on screen
    unit: str  # canonical unit every value is converted to at ingest
    kind: str  # "count", "hgb", "percent" or "temperature": which unit table applies
    plausible_max: float  # above this, after conversion, a value is a unit error, not biology
    plausible_min: float = 0.0


# Plausibility limits are product defaults: wide enough for hyperleukocytosis and CLL lymphocytosis,
# narrow enough to catch a count sent in cells/uL but labelled 10^3/uL (a factor of 1,000; public FHIR
# examples carry such errors: docs/clinical-basis.md, Plausibility limits).
ANALYTES: dict[str, Analyte] = {
    a.code: a
    for a in (
        Analyte("wbc", "WBC", COUNT_UNIT, "count", 1000.0),
        # A differential count cannot exceed the WBC, and a CML's neutrophils exceed 100 x10^9/L: the
        # neutrophils' limit is the WBC's (docs/clinical-basis.md, Plausibility limits).
        Analyte("anc", "Neutrophils (ANC)", COUNT_UNIT, "count", 1000.0),
        Analyte("alc", "Lymphocytes (ALC)", COUNT_UNIT, "count", 1000.0),
        Analyte("amc", "Monocytes (AMC)", COUNT_UNIT, "count", 100.0),
        Analyte("aec", "Eosinophils (AEC)", COUNT_UNIT, "count", 100.0),
        Analyte("abc", "Basophils (ABC)", COUNT_UNIT, "count", 50.0),
        Analyte("bands", "Band neutrophils", COUNT_UNIT, "count", 100.0),
        Analyte("segs", "Segmented neutrophils", COUNT_UNIT, "count", 1000.0),
        Analyte("hgb", "Haemoglobin", HGB_UNIT, "hgb", 30.0, plausible_min=0.5),
        Analyte("plt", "Platelets", COUNT_UNIT, "count", 5000.0),
        Analyte("neut_pct", "Neutrophils %", PERCENT_UNIT, "percent", 100.0),
        Analyte("lymph_pct", "Lymphocytes %", PERCENT_UNIT, "percent", 100.0),
        Analyte("mono_pct", "Monocytes %", PERCENT_UNIT, "percent", 100.0),
        Analyte("eos_pct", "Eosinophils %", PERCENT_UNIT, "percent", 100.0),
        Analyte("baso_pct", "Basophils %", PERCENT_UNIT, "percent", 100.0),
        Analyte("bands_pct", "Band neutrophils %", PERCENT_UNIT, "percent", 100.0),
        Analyte("segs_pct", "Segmented neutrophils %", PERCENT_UNIT, "percent", 100.0),
        # Body temperature: not part of the CBC, but what makes a low neutrophil count an emergency
        # (febrile neutropenia). Outside 25-45 °C a reading is a unit or typing error, not a patient
        # (docs/clinical-basis.md, Temperatures).
        Analyte("temp", "Temperature", TEMPERATURE_UNIT, "temperature", 45.0, plausible_min=25.0),
    )
}

# The complete blood count's analytes: everything but the vital signs that travel with them.
CBC_ANALYTES: tuple[str, ...] = tuple(code for code, a in ANALYTES.items() if a.kind != "temperature")

# The absolute counts, in the order a differential is read.
DIFFERENTIAL = ("anc", "alc", "amc", "aec", "abc")

# LOINC code -> canonical analyte (docs/clinical-basis.md, LOINC codes). Automated, method-less and manual
# codes map to the same analyte: the dashboard follows the measurand, and keeps the code it came with.
LOINC: dict[str, str] = {
    # Leukocytes [#/volume]
    "6690-2": "wbc",
    "26464-8": "wbc",
    "33256-9": "wbc",
    "12227-5": "wbc",
    "804-5": "wbc",
    "49498-9": "wbc",
    # Absolute differential
    "751-8": "anc",
    "26499-4": "anc",
    "30229-9": "bands",
    "26507-4": "bands",
    "763-3": "bands",
    "30451-9": "segs",
    "731-0": "alc",
    "26474-7": "alc",
    "742-7": "amc",
    "26484-6": "amc",
    "711-2": "aec",
    "26449-9": "aec",
    "704-7": "abc",
    "26444-0": "abc",
    # Differential percentages
    "770-8": "neut_pct",
    "26511-6": "neut_pct",
    "23761-0": "neut_pct",
    "35332-6": "bands_pct",
    "26508-2": "bands_pct",
    "764-1": "bands_pct",
    "26505-8": "segs_pct",
    "769-0": "segs_pct",
    "736-9": "lymph_pct",
    "26478-8": "lymph_pct",
    "5905-5": "mono_pct",
    "26485-3": "mono_pct",
    "713-8": "eos_pct",
    "26450-7": "eos_pct",
    "706-2": "baso_pct",
    "30180-4": "baso_pct",
    # Haemoglobin and platelets
    "718-7": "hgb",
    "777-3": "plt",
    "26515-7": "plt",
    # Body temperature, any site or by site (LOINC component "Body temperature", property Temp, timing Pt):
    # the site is kept with the code. Timed maxima ("Body temperature 1 hour maximum", 8311-3) are not
    # single readings and are not taken.
    "8310-5": "temp",  # Body temperature
    "8331-1": "temp",  # Oral temperature
    "8328-7": "temp",  # Axillary temperature
    "8333-7": "temp",  # Tympanic membrane temperature
    "8332-9": "temp",  # Rectal temperature
    "8329-5": "temp",  # Body temperature - Core
}

# Where each temperature code says the reading was taken.
TEMPERATURE_SITES: dict[str, str] = {
    "8310-5": "",
    "8331-1": "oral",
    "8328-7": "axillary",
    "8333-7": "tympanic",
    "8332-9": "rectal",
    "8329-5": "core",
}

# The LOINC code written for each analyte when the product itself produces a result (demo cohort,
# derived counts): the automated-count code where one exists.
PREFERRED_LOINC: dict[str, str] = {
    "wbc": "6690-2",
    "anc": "751-8",
    "alc": "731-0",
    "amc": "742-7",
    "aec": "711-2",
    "abc": "704-7",
    "bands": "30229-9",
    "segs": "30451-9",
    "hgb": "718-7",
    "plt": "777-3",
    "neut_pct": "770-8",
    "lymph_pct": "736-9",
    "mono_pct": "5905-5",
    "eos_pct": "713-8",
    "baso_pct": "706-2",
    "bands_pct": "35332-6",
    "segs_pct": "26505-8",
    "temp": "8310-5",
}


# Local codes and names seen in laboratory feeds (HL7 OBX-3 local codes, CSV column headers), matched
# case-insensitively when no LOINC code is given. Ambiguous names ("Neutrophils" without # or %) are left
# out on purpose: such a result is kept as a non-CBC observation rather than guessed.
LOCAL_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        [
            "wbc",
            "white blood cell count",
            "white blood cells",
            "white cell count",
            "leukocyte count",
            "leukocytes #",
            "wbc count",
        ],
        "wbc",
    ),
    **dict.fromkeys(
        [
            "neut#",
            "neut abs",
            "anc",
            "absolute neutrophil count",
            "neutrophils #",
            "neutrophils absolute",
            "abs neutrophils",
        ],
        "anc",
    ),
    **dict.fromkeys(["neut%", "neutrophils %", "neutrophil %"], "neut_pct"),
    **dict.fromkeys(
        ["lymph#", "lymph abs", "alc", "lymphocytes #", "lymphocytes absolute", "abs lymphocytes"], "alc"
    ),
    **dict.fromkeys(["lymph%", "lymphocytes %", "lymphocyte %"], "lymph_pct"),
    **dict.fromkeys(["mono#", "monocytes #", "monocytes absolute", "abs monocytes"], "amc"),
    **dict.fromkeys(["mono%", "monocytes %", "monocyte %"], "mono_pct"),
    **dict.fromkeys(["eo#", "eos#", "eosinophils #", "eosinophils absolute", "abs eosinophils"], "aec"),
    **dict.fromkeys(["eo%", "eos%", "eosinophils %", "eosinophil %"], "eos_pct"),
    **dict.fromkeys(["baso#", "basophils #", "basophils absolute", "abs basophils"], "abc"),
    **dict.fromkeys(["baso%", "basophils %", "basophil %"], "baso_pct"),
    **dict.fromkeys(["band#", "bands #"], "bands"),
    **dict.fromkeys(["band%", "bands %", "bands"], "bands_pct"),
    **dict.fromkeys(["seg%", "segs %", "segs", "segmented neutrophils %"], "segs_pct"),
    **dict.fromkeys(["hgb", "hb", "hemoglobin", "haemoglobin"], "hgb"),
    **dict.fromkeys(["plt", "platelets", "platelet count", "plt count"], "plt"),
    **dict.fromkeys(
        [
            "temp",
            "temperature",
            "body temperature",
            "body temp",
            "oral temperature",
            "axillary temperature",
            "tympanic temperature",
            "rectal temperature",
            "core temperature",
            # Further spellings seen in ward and monitor interfaces (a site adds its own the same way).
            "tmp",
            "ear temperature",
            "tympanic membrane temperature",
            "temperature oral",
            "temperature axillary",
            "temperature tympanic",
            "temperature rectal",
        ],
        "temp",
    ),
}


def resolve_analyte(text: str) -> str | None:
    """The canonical analyte for a canonical name, a LOINC code or a local alias; None when none.

    >>> resolve_analyte("WBC"), resolve_analyte("751-8"), resolve_analyte("NEUT#"), resolve_analyte("11156-7")
    ('wbc', 'anc', 'anc', None)
    """
    key = text.strip()
    if key.lower() in ANALYTES:
        return key.lower()
    return LOINC.get(key) or LOCAL_ALIASES.get(key.lower())
