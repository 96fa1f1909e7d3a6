"""Site-configurable cycle rules: readiness before the next cycle, cycle length, recovery and trend."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from monitor.analysis.grading import DEFAULT_RULES, GradingRules
from monitor.analysis.setting_values import a_boolean, a_number, a_whole_number


@dataclass(frozen=True, slots=True)
class Readiness:
    """Counts needed before the next cycle (x10^9/L); ``inclusive`` means "at or above".

    Default ANC >= 1.5 and platelets >= 100, from the paclitaxel and docetaxel prescribing information (the
    paclitaxel label writes ">", docetaxel's ">=", hence ``inclusive``; docs/clinical-basis.md, Readiness
    thresholds).
    """

    anc_min: float = 1.5
    plt_min: float = 100.0
    inclusive: bool = True

    def __post_init__(self) -> None:
        for name in ("anc_min", "plt_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"readiness {name} must be a positive number, not {value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Readiness:
        """A rule from site configuration; unset keys keep their defaults, unknown keys are errors."""
        unknown = set(mapping) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown readiness settings: {sorted(unknown)}")
        numbers = {k: a_number(f"readiness {k}", v) for k, v in mapping.items() if k != "inclusive"}
        default = cls()
        return cls(
            anc_min=numbers.get("anc_min", default.anc_min),
            plt_min=numbers.get("plt_min", default.plt_min),
            inclusive=(
                a_boolean("readiness inclusive", mapping["inclusive"])
                if "inclusive" in mapping
                else default.inclusive
            ),
        )

    def describe(self) -> str:
        sign = ">=" if self.inclusive else ">"
        return f"ANC {sign} {self.anc_min:g} and platelets {sign} {self.plt_min:g}"


FN_RISKS = ("high", "intermediate", "low")


@dataclass(frozen=True, slots=True)
class Regimen(Readiness):
    """What a site sets for one regimen: its readiness rule, and optionally its nadir window and its risk
    of febrile neutropenia.

    * ``nadir_window_days``: the days after the dose when this regimen's nadir falls (the site default,
      ``CycleRules.nadir_window_days``, when unset).
    * ``fn_risk``: the regimen's febrile-neutropenia risk category, "high" (20 % or more), "intermediate"
      (10-20 %) or "low" (under 10 %), as ASCO 2015, EORTC and NCCN group regimens for G-CSF prophylaxis
      (docs/clinical-basis.md, G-CSF); ``fn_risk_source`` names where the site took it from.
    """

    nadir_window_days: tuple[int, int] | None = None
    fn_risk: str | None = None
    fn_risk_source: str = ""

    def __post_init__(self) -> None:
        Readiness.__post_init__(self)
        if self.nadir_window_days is not None:
            first, last = self.nadir_window_days
            if not 0 <= first <= last:
                raise ValueError(
                    "a regimen's nadir_window_days must be two days, first <= last, "
                    f"not {self.nadir_window_days}"
                )
        if self.fn_risk is not None and self.fn_risk not in FN_RISKS:
            raise ValueError(f"fn_risk must be one of {', '.join(FN_RISKS)}, not {self.fn_risk!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Regimen:
        """A regimen from site configuration; unset keys keep their defaults, unknown keys are errors.

        >>> r = Regimen.from_mapping({"anc_min": 1.0, "fn_risk": "High", "nadir_window_days": [10, 14]})
        >>> r.describe(), r.fn_risk, r.nadir_window_days
        ('ANC >= 1 and platelets >= 100', 'high', (10, 14))
        """
        own = {"nadir_window_days", "fn_risk", "fn_risk_source"}
        unknown = set(mapping) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown regimen settings: {sorted(unknown)}")
        readiness = Readiness.from_mapping({k: v for k, v in mapping.items() if k not in own})
        window = mapping.get("nadir_window_days")
        risk = mapping.get("fn_risk")
        return cls(
            anc_min=readiness.anc_min,
            plt_min=readiness.plt_min,
            inclusive=readiness.inclusive,
            nadir_window_days=None if window is None else _two_days("nadir_window_days", window),
            fn_risk=None if risk is None else str(risk).strip().lower(),
            fn_risk_source=str(mapping.get("fn_risk_source") or ""),
        )


def _two_days(name: str, window: Any) -> tuple[int, int]:
    if not isinstance(window, list | tuple) or len(window) != 2:
        raise ValueError(f"{name} is two days, e.g. [7, 14], not {window!r}")
    first, last = (a_whole_number(name, day) for day in window)
    return first, last


@dataclass(frozen=True, slots=True)
class CycleRules:
    """Site-configurable cycle rules; the defaults and their sources.

    * ``default_cycle_days`` = 28: the next dose is expected 28 days after a start when neither the
      regimen nor previous cycles give a length, and a cycle with no following chemotherapy ends 28 days
      after its start for the WBC trend (``analysis.flags``; the cycles' own views keep it open for its
      overdue period) (product default, pending clinical sign-off; docs/clinical-basis.md, Cycle days).
    * ``recovery_anc`` = 1.5: recovery is the first ANC at or above 1.5 x10^9/L after the nadir (the adult
      neutropenia bound, Dale & Bolyard 2017, and the readiness ANC of the labels).
    * ``readiness_window_days`` = 3: readiness is judged on the last ANC and platelets in the 3 days before
      the next start, and shown for the current cycle only from 3 days before the expected next dose
      (no source: site decision; docs/clinical-basis.md, Readiness for the planned next dose).
    * ``overdue_cycle_lengths`` = 2: a last cycle whose next dose has not been given stays current (and
      its counts stay in it) for 2 planned cycle lengths past the expected day, readiness applying now;
      after that the patient is no longer shown as in a cycle (no source: site decision;
      docs/clinical-basis.md, Readiness for the planned next dose).
    * ``readiness`` and ``regimens``: the default readiness rule (paclitaxel and docetaxel prescribing
      information; docs/clinical-basis.md, Readiness thresholds) and rules per regimen, keyed by a regimen
      name the chemotherapy event's details contain as whole words (case-insensitive; ``regimen_key``).
    * ``nadir_window_days`` = (7, 14): a cycle's nadir is taken as sampled when an ANC was measured on days
      7 to 14, after the dose (the nadir usually falls 7 to 14 days after cytotoxic chemotherapy; teaching
      texts, no primary source: docs/clinical-basis.md, Nadir timing; set it per site for regimens with other
      timing). Only such cycles enter the cross-cycle trend.
    * ``trend_min_cycles`` = 2 and ``recovery_delay_days`` = 3: the nadir ANC is "deepening" when, over
      the cycles whose nadir was sampled, the last nadir is below the first by more than the ANC reference
      change value and the median change per cycle is a fall; recovery is "slower" when the last observed
      recovery comes at least 3 days later in its cycle than the first observed one (product defaults,
      pending clinical sign-off; docs/clinical-basis.md, Recovery and cross-cycle trend).
    * ``due_lead_hours`` = 48: a cycle's nadir window with no CBC in it yet raises a monitoring-gap alert
      this many hours before it opens (no source: site decision; docs/clinical-basis.md, CBCs due).
    * ``due_severe_days`` = 7: outside chemotherapy, a patient whose latest WBC, ANC or ALC is CTCAE grade
      3 or 4 is due a CBC when none was drawn for more than this many calendar days (no source: site
      decision; docs/clinical-basis.md, CBCs due).
    * ``gcsf_prophylaxis_days`` = (1, 5), ``gcsf_risk_age`` = 65 and ``dose_limiting_days`` = 7: G-CSF
      given on D1 to D5 of a cycle (D notation: D1 is the dose day; pegfilgrastim is given 24-72 hours
      after chemotherapy) counts as primary or secondary prophylaxis for it; age 65 or more at the dose is
      a patient risk factor for febrile neutropenia; ANC < 0.5 for 7 days or more, as sampled, is a
      dose-limiting neutropenia (ASCO 2015, EORTC 2010, NCCN; the paclitaxel label; docs/clinical-basis.md,
      G-CSF prophylaxis and Dose modification). ``analysis.cycles.support``.
    * ``forecast_grade4_threshold`` = 0.5: the worklist shows a "forecast grade 4" chip when the nadir
      forecast's probability of a grade 4 nadir (ANC < 0.5) is at least this (``analysis.forecast``; no
      source: site decision; docs/clinical-basis.md, Nadir forecast).
    """

    default_cycle_days: int = 28
    recovery_anc: float = 1.5
    readiness_window_days: int = 3
    overdue_cycle_lengths: int = 2
    readiness: Readiness = Readiness()
    regimens: Mapping[str, Regimen] = field(default_factory=dict)
    nadir_window_days: tuple[int, int] = (7, 14)
    trend_min_cycles: int = 2
    recovery_delay_days: int = 3
    due_lead_hours: int = 48
    due_severe_days: int = 7
    grading: GradingRules = DEFAULT_RULES
    gcsf_prophylaxis_days: tuple[int, int] = (1, 5)
    gcsf_risk_age: int = 65
    dose_limiting_days: int = 7
    forecast_grade4_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "default_cycle_days",
            "readiness_window_days",
            "overdue_cycle_lengths",
            "trend_min_cycles",
            "recovery_delay_days",
            "due_lead_hours",
            "due_severe_days",
            "gcsf_risk_age",
            "dose_limiting_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        if not self.recovery_anc > 0:
            raise ValueError(f"recovery_anc must be positive, not {self.recovery_anc!r}")
        threshold = self.forecast_grade4_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
            raise ValueError(
                f"forecast_grade4_threshold must be a probability above 0 and at most 1, not {threshold!r}"
            )
        first, last = self.nadir_window_days
        if not 0 <= first <= last:
            raise ValueError(
                f"nadir_window_days must be two days, first <= last, not {self.nadir_window_days}"
            )
        first, last = self.gcsf_prophylaxis_days
        if not 1 <= first <= last:
            raise ValueError(
                "gcsf_prophylaxis_days must be two D days (D1 = the dose day), 1 <= first <= last, "
                f"not {self.gcsf_prophylaxis_days}"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> CycleRules:
        """Rules from site configuration; unset keys keep their defaults, unknown keys are errors.

        >>> rules = CycleRules.from_mapping({"regimens": {"AC-T": {"anc_min": 1.0, "plt_min": 75}}})
        >>> rules.regimens["ac-t"].describe(), rules.readiness.describe()
        ('ANC >= 1 and platelets >= 75', 'ANC >= 1.5 and platelets >= 100')
        """
        known = {f.name for f in fields(cls)}
        unknown = set(mapping) - known
        if unknown:
            raise ValueError(f"unknown cycle settings: {sorted(unknown)}")
        settings: dict[str, Any] = {}
        for name in (
            "default_cycle_days",
            "readiness_window_days",
            "overdue_cycle_lengths",
            "trend_min_cycles",
            "recovery_delay_days",
            "due_lead_hours",
            "due_severe_days",
            "gcsf_risk_age",
            "dose_limiting_days",
        ):
            if name in mapping:
                settings[name] = a_whole_number(name, mapping[name])
        if "recovery_anc" in mapping:
            settings["recovery_anc"] = a_number("recovery_anc", mapping["recovery_anc"])
        if "forecast_grade4_threshold" in mapping:
            settings["forecast_grade4_threshold"] = a_number(
                "forecast_grade4_threshold", mapping["forecast_grade4_threshold"]
            )
        if "nadir_window_days" in mapping:
            settings["nadir_window_days"] = _two_days("nadir_window_days", mapping["nadir_window_days"])
        if "gcsf_prophylaxis_days" in mapping:
            days = mapping["gcsf_prophylaxis_days"]
            settings["gcsf_prophylaxis_days"] = _two_days("gcsf_prophylaxis_days", days)
        if "readiness" in mapping:
            settings["readiness"] = Readiness.from_mapping(mapping["readiness"] or {})
        if "regimens" in mapping:
            settings["regimens"] = {
                str(name).strip().lower(): Regimen.from_mapping(rule or {})
                for name, rule in (mapping["regimens"] or {}).items()
            }
        if "grading" in mapping:
            settings["grading"] = GradingRules.from_mapping(mapping["grading"] or {})
        return cls(**settings)

    def regimen(self, name: str | None) -> Regimen | None:
        """The site's rule for the regimen named in a chemotherapy event's details (``regimen_key``).

        >>> rules = CycleRules(regimens={"tac": Regimen(fn_risk="high")})
        >>> rules.regimen("regimen TAC q21d").fn_risk, rules.regimen("tacrolimus 1 mg") is None
        ('high', True)
        """
        key = regimen_key(name, self.regimens)
        return None if key is None else self.regimens[key]

    def nadir_window(self, regimen: str | None) -> tuple[int, int]:
        """The nadir window of a regimen: its own when the site set one, else the site default."""
        rule = self.regimen(regimen)
        if rule is not None and rule.nadir_window_days is not None:
            return rule.nadir_window_days
        return self.nadir_window_days


def regimen_key(text: str | None, keys: Iterable[str]) -> str | None:
    """The configured regimen key a chemotherapy event's details ``text`` names, or None.

    A key matches when it equals the text or appears in it as whole words, case-insensitive (spaces
    and other runs of white space count as one): "tac" matches "regimen TAC q21d" and "TAC, cycle 2"
    but not "tacrolimus" nor "ATAC" (a hyphen separates words: "tac" matches "TAC-T" unless a key "tac-t"
    is set). When several keys match, the longest wins
    ("ac-t" over "ac" in "AC-T q14d"); between keys of the same length, the one first in alphabetical
    order, so the choice never depends on the order the settings were written in.

    >>> regimen_key("AC-T dose-dense q14d", ["ac", "ac-t", "t"])
    'ac-t'
    >>> regimen_key("Tacrolimus", ["tac"]) is None
    True
    """
    words = " ".join(str(text or "").lower().split())
    if not words:
        return None
    found = []
    for key in keys:
        wanted = " ".join(str(key).lower().split())
        if wanted and (wanted == words or re.search(rf"(?<!\w){re.escape(wanted)}(?!\w)", words) is not None):
            found.append(str(key))
    if not found:
        return None
    return min(found, key=lambda k: (-len(" ".join(k.lower().split())), k))


DEFAULT_CYCLE_RULES = CycleRules()
