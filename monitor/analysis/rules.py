"""The site's rules in one configuration: grading, flags and treatment cycles, with defaults and sources.

A site changes a rule without code: the store keeps only what differs from the defaults (a JSON mapping,
``{"grading": {...}, "flags": {...}, "cycles": {...}, "febrile": {...}}``), ``SiteRules.from_mapping``
validates it, and ``setting_rows`` lists every setting with its value, default and source, and in words
(``setting_descriptions``: the rule, its unit, the primary source of its default), for the Settings page
and the ``settings`` command.
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
from monitor.analysis.setting_descriptions import cited, describe, in_words

__all__ = ["DEFAULT_SITE_RULES", "SECTIONS", "SiteRules", "set_value", "setting_rows"]

SECTIONS = ("grading", "flags", "cycles", "febrile")


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


def setting_rows(rules: SiteRules) -> list[dict[str, Any]]:
    """Every scalar setting: ``key``, ``value``, ``default``, ``changed`` and ``source`` (the basis of the
    default and the section of docs/clinical-basis.md), then as a reader meets it: ``group``, ``setting``
    (the rule in words at its value), ``unit``, ``citation`` (the default's primary sources, author, title,
    year and link, or a plain "no source" statement) and ``section``."""
    defaults = _flatten(_as_mapping(DEFAULT_SITE_RULES))
    cv_sources = {i.analyte: i.source for i in rules.grading.rcv_inputs}
    rows = []
    for key, value in _flatten(_as_mapping(rules)).items():
        default = defaults.get(key)
        description = describe(key)
        source = cited(description)
        if key.startswith("grading.rcv_inputs."):
            source = cv_sources.get(key.split(".")[2], "")
        rows.append(
            {
                "key": key,
                "value": value,
                "default": default,
                "changed": value != default,
                "source": source,
                "group": description.group,
                "setting": in_words(key, value),
                "unit": description.unit,
                "citation": description.citation,
                "section": description.section,
            }
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
