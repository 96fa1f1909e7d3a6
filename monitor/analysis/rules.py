"""The site's rules in one configuration: grading, flags and treatment cycles, with defaults and sources.

A site changes a rule without code: the store keeps only what differs from the defaults (a JSON mapping,
``{"grading": {...}, "flags": {...}, "cycles": {...}, "febrile": {...}}``), ``SiteRules.from_mapping``
validates it, and ``setting_rows`` lists every setting with its value, default and source for the Settings
page and the ``settings`` command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from monitor.analysis.cycles import DEFAULT_CYCLE_RULES, CycleRules, Readiness
from monitor.analysis.cycles.rules import Regimen
from monitor.analysis.febrile import DEFAULT_FEBRILE_RULES, FebrileRules
from monitor.analysis.flags import DEFAULT_FLAG_RULES, FlagRules
from monitor.analysis.grading import DEFAULT_RULES, GradingRules

__all__ = ["DEFAULT_SITE_RULES", "SECTIONS", "SiteRules", "set_value", "setting_rows"]

SECTIONS = ("grading", "flags", "cycles", "febrile")


def _cited(source: str, section: str) -> str:
    """A setting's source as clinicians read it: the source, then where docs/clinical-basis.md gives it."""
    return f"{source}; see docs/clinical-basis.md, {section}"


_PRODUCT_DEFAULT = "product default, pending clinical sign-off"
# Where each default comes from (the dataclasses' docstrings say the same at more length).
_SOURCES = {
    "grading.ctcae_version": _cited(
        "NCI CTCAE v5.0 (2017); v6.0 is an unverified transcription", "CTCAE v5.0 grading"
    ),
    "grading.rcv_z": _cited(
        "one-sided 95 % for a significant fall, log-normal reference change value (Fokkema et al., "
        "Clin Chem 2006)",
        "Reference change values",
    ),
    "flags.persistent_min_results": _cited(_PRODUCT_DEFAULT, "Flag defaults"),
    "flags.persistent_min_days": _cited(_PRODUCT_DEFAULT + ", in calendar days", "Calendar days"),
    "flags.chronic_min_days": _cited(
        "chronic neutropenia lasts at least 3 months (Dale & Bolyard, Curr Opin Hematol 2017)",
        "Chronic neutropenia",
    ),
    "flags.slope_window_days": _cited(
        "no source: site decision (180 days, long enough to see a slow marrow failure; results in "
        "chemotherapy cycles left out)",
        "Trend",
    ),
    "flags.slope_min_results": _cited("no source: site decision", "Trend"),
    "flags.no_cbc_days": _cited(
        "no source: site decision (the worklist's filter and count of patients without a recent CBC)",
        "Worklist filters",
    ),
    "cycles.default_cycle_days": _cited(_PRODUCT_DEFAULT, "Cycle days"),
    "cycles.recovery_anc": _cited(
        "adult neutropenia bound (Dale & Bolyard 2017) and readiness ANC (paclitaxel and docetaxel "
        "prescribing information)",
        "Recovery and cross-cycle trend",
    ),
    "cycles.readiness_window_days": _cited(
        "no source: site decision (when the pre-cycle count is drawn)", "Readiness for the planned next dose"
    ),
    "cycles.overdue_cycle_lengths": _cited("no source: site decision", "Readiness for the planned next dose"),
    "cycles.readiness.anc_min": _cited(
        "paclitaxel and docetaxel prescribing information", "Readiness thresholds"
    ),
    "cycles.readiness.plt_min": _cited("paclitaxel prescribing information", "Readiness thresholds"),
    "cycles.readiness.inclusive": _cited(
        "the labels differ: paclitaxel writes >, docetaxel >=", "Readiness thresholds"
    ),
    "cycles.nadir_window_days": _cited(
        "nadir usually 7 to 14 days after chemotherapy (teaching texts; no primary source)", "Nadir timing"
    ),
    "cycles.trend_min_cycles": _cited(_PRODUCT_DEFAULT, "Recovery and cross-cycle trend"),
    "cycles.recovery_delay_days": _cited(_PRODUCT_DEFAULT, "Recovery and cross-cycle trend"),
    "cycles.due_lead_hours": _cited("no source: site decision", "CBCs due"),
    "cycles.due_severe_days": _cited("no source: site decision", "CBCs due"),
    "cycles.forecast_grade4_threshold": _cited(
        "no source: site decision (the probability of a grade 4 nadir the worklist marks)", "Nadir forecast"
    ),
    "febrile.anc_before_hours": _cited("no source: site default", "Febrile neutropenia"),
    "febrile.anc_after_hours": _cited("no source: site default", "Febrile neutropenia"),
    "febrile.sustained_minutes": _cited(
        "IDSA 2010 (Freifeld et al., Clin Infect Dis 2011) 'over a 1-h period', CTCAE v5.0 'for more than "
        "one hour'",
        "Febrile neutropenia",
    ),
    "febrile.falling_hours": _cited(
        "IDSA 2010 (Freifeld et al., Clin Infect Dis 2011): ANC expected to fall below 0.5 during the "
        "next 48 h",
        "Febrile neutropenia",
    ),
    "febrile.falling_lookback_hours": _cited("no source: site decision", "Febrile neutropenia"),
    "febrile.end_anc": _cited("no source: site decision", "Febrile neutropenia"),
    "febrile.afebrile_hours": _cited("no source: site decision", "Febrile neutropenia"),
    "febrile.free_text_window_hours": _cited("no source: site decision", "Febrile neutropenia"),
    "febrile.unjudged_hours": _cited("no source: site decision", "Febrile neutropenia"),
    "cycles.gcsf_prophylaxis_days": _cited(
        "pegfilgrastim 24-72 hours after chemotherapy (ASCO 2015, Smith et al.; common practice); D1 = the "
        "dose day",
        "G-CSF prophylaxis",
    ),
    "cycles.gcsf_risk_age": _cited(
        "age 65 or more, a patient risk factor for febrile neutropenia (ASCO 2015; EORTC 2010, Aapro et al.)",
        "G-CSF prophylaxis",
    ),
    "cycles.dose_limiting_days": _cited(
        "ANC < 0.5 for 7 days or more (paclitaxel prescribing information; docetaxel: more than one week)",
        "Dose modification",
    ),
}


@dataclass(frozen=True, slots=True)
class SiteRules:
    """Every configurable rule of the analysis; ``flags`` and ``cycles`` carry ``grading`` within them."""

    grading: GradingRules = DEFAULT_RULES
    flags: FlagRules = DEFAULT_FLAG_RULES
    cycles: CycleRules = DEFAULT_CYCLE_RULES
    febrile: FebrileRules = DEFAULT_FEBRILE_RULES
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> SiteRules:
        """The rules a site's overrides give (unknown sections or keys are errors, as are bad values).

        >>> rules = SiteRules.from_mapping({"grading": {"rcv_z": 1.96}, "flags": {"chronic_min_days": 120}})
        >>> rules.flags.chronic_min_days, rules.flags.grading.rcv_z, rules.cycles.grading.rcv_z
        (120, 1.96, 1.96)
        """
        mapping = dict(mapping or {})
        unknown = set(mapping) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown settings sections: {sorted(unknown)} (known: {', '.join(SECTIONS)})")
        grading = GradingRules.from_mapping(mapping.get("grading") or {})
        flags = replace(FlagRules.from_mapping(_without_grading(mapping.get("flags"))), grading=grading)
        cycles = replace(CycleRules.from_mapping(_without_grading(mapping.get("cycles"))), grading=grading)
        febrile = FebrileRules.from_mapping(mapping.get("febrile") or {})
        return cls(grading=grading, flags=flags, cycles=cycles, febrile=febrile, overrides=mapping)

    def to_json(self) -> str:
        return json.dumps(self.overrides, sort_keys=True)


DEFAULT_SITE_RULES = SiteRules()


def set_value(overrides: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``overrides`` with the dotted ``key`` set (``None`` removes it, restoring the default).

    >>> set_value({}, "cycles.regimens.ac-t.anc_min", 1.0)
    {'cycles': {'regimens': {'ac-t': {'anc_min': 1.0}}}}
    >>> set_value({"flags": {"chronic_min_days": 120}}, "flags.chronic_min_days", None)
    {}
    """
    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS or not all(parts):
        raise ValueError(f"a setting is named section.name with a section of {', '.join(SECTIONS)}: {key!r}")
    out = json.loads(json.dumps(dict(overrides)))
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"{key!r}: {part!r} is a value, not a group")
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return _pruned(out)


# Where docs/clinical-basis.md describes a per-regimen setting other than its readiness rule.
_REGIMEN_SECTIONS = {
    "fn_risk": "G-CSF prophylaxis",
    "fn_risk_source": "G-CSF prophylaxis",
    "nadir_window_days": "CBCs due",
}


def setting_rows(rules: SiteRules) -> list[dict[str, Any]]:
    """Every scalar setting: ``key``, ``value``, ``default``, ``changed`` and ``source``."""
    defaults = _flatten(_as_mapping(DEFAULT_SITE_RULES))
    cv_sources = {i.analyte: i.source for i in rules.grading.rcv_inputs}
    rows = []
    for key, value in _flatten(_as_mapping(rules)).items():
        default = defaults.get(key)
        source = _SOURCES.get(key, "")
        if key.startswith("grading.rcv_inputs."):
            source = cv_sources.get(key.split(".")[2], "")
        if key.startswith("cycles.regimens."):
            section = _REGIMEN_SECTIONS.get(key.split(".")[-1], "Readiness thresholds")
            source = _cited("site configuration, per regimen", section)
        rows.append(
            {"key": key, "value": value, "default": default, "changed": value != default, "source": source}
        )
    return rows


def _as_mapping(rules: SiteRules) -> dict[str, Any]:
    grading = {
        "ctcae_version": rules.grading.ctcae_version,
        "rcv_z": rules.grading.rcv_z,
        "rcv_inputs": {
            i.analyte: {"cv_analytical": i.cv_analytical, "cv_within": i.cv_within}
            for i in rules.grading.rcv_inputs
        },
    }
    flags = {f.name: getattr(rules.flags, f.name) for f in fields(FlagRules) if f.name != "grading"}
    cycles: dict[str, Any] = {}
    for f in fields(CycleRules):
        value = getattr(rules.cycles, f.name)
        if f.name == "grading":
            continue
        if f.name == "readiness":
            value = _readiness(value)
        elif f.name == "regimens":
            value = {name: _regimen(rule) for name, rule in value.items()}
        cycles[f.name] = value
    febrile = {f.name: getattr(rules.febrile, f.name) for f in fields(FebrileRules)}
    return {"grading": grading, "flags": flags, "cycles": cycles, "febrile": febrile}


def _readiness(rule: Readiness) -> dict[str, float | bool]:
    return {"anc_min": rule.anc_min, "plt_min": rule.plt_min, "inclusive": rule.inclusive}


def _regimen(rule: Regimen) -> dict[str, Any]:
    """A regimen's settings: its readiness rule, and what else the site set for it."""
    out: dict[str, Any] = _readiness(rule)
    if rule.nadir_window_days is not None:
        out["nadir_window_days"] = list(rule.nadir_window_days)
    if rule.fn_risk is not None:
        out["fn_risk"] = rule.fn_risk
    if rule.fn_risk_source:
        out["fn_risk_source"] = rule.fn_risk_source
    return out


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _without_grading(section: Mapping[str, Any] | None) -> dict[str, Any]:
    section = dict(section or {})
    if "grading" in section:
        raise ValueError("grading settings belong in the grading section, not inside flags or cycles")
    return section


def _pruned(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` without empty groups."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            value = _pruned(value)
            if not value:
                continue
        out[key] = value
    return out
