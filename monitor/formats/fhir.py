"""FHIR R4 JSON: Bundles, single resources and NDJSON bulk exports, read into raw CBC records.

Fields read: Observation.status, code (the ``http://loinc.org`` coding), valueQuantity (``code`` when
UCUM, else ``unit``), referenceRange[0], interpretation[0], effective[x], issued, subject, identifier,
performer and meta.source; Patient.identifier (type MR preferred), name, birthDate, gender;
DiagnosticReport.identifier, performer and result, which give their Observations an accession and a lab
(HL7 FHIR R4, 2019; docs/clinical-basis.md, FHIR R4 fields read).

Like the other parsers this one only reads: it never converts units or judges values. A resource that
cannot be read becomes a refusal naming the field; only a file that is not JSON at all is unusable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from monitor.analytes import LOINC
from monitor.formats.fhir_json import (
    REFERENCE,
    Index,
    Item,
    as_dict,
    as_list,
    as_text,
    compact,
    first_object,
    is_resource,
    load_items,
    objects,
    try_loads,
)
from monitor.formats.parsed import (
    OTHER_COLUMNS,
    PATIENT_COLUMNS,
    RAW_COLUMNS,
    RAW_TEXT_LIMIT,
    REJECT_COLUMNS,
    Parsed,
    empty,
)
from monitor.timestamps import OUTSIDE_YEARS, localise_iso, year_outside

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
SEX = {"female": "F", "male": "M", "other": "O", "unknown": "U"}
# A withdrawn Observation need carry no value (monitor.formats.records.WITHDRAWN).
WITHDRAWN = ("cancelled", "entered-in-error")
# FHIR dateTime also allows "2005" and "2005-07"; a collection day that is not known is not guessed.
_FULL_DATE = r"^\d{4}-\d{2}-\d{2}"
# localise_iso raises on naive times in year 9999 (localising past the datetime range): refused here.
_UNSUPPORTED_YEAR = r"^9999"


class _Refused(Exception):
    """One resource cannot be read; the message is the reason."""


@dataclass(frozen=True, slots=True)
class _Panel:
    """What a DiagnosticReport gives the Observations it lists."""

    report: dict[str, Any]
    accession: str
    lab: str


@dataclass(slots=True)
class _Collected:
    records: list[dict[str, str]] = field(default_factory=list)
    others: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    patients: list[dict[str, str]] = field(default_factory=list)
    pending: int = 0


def looks_like_fhir(text: str) -> bool:
    """True for a JSON object with ``resourceType``, or NDJSON whose first non-blank line is one.

    A file that starts like a FHIR resource but is not valid JSON also counts, so that the reader can say
    where the JSON breaks.

    >>> looks_like_fhir('{"resourceType": "Bundle"}'), looks_like_fhir('{"a": 1}'), looks_like_fhir("MSH|")
    (True, False, False)
    """
    body = text.lstrip("\ufeff").lstrip()
    if not body.startswith("{"):
        return False
    document, wrong = try_loads(body)
    if wrong:
        document, wrong = try_loads(body.split("\n", 1)[0])
    if wrong:
        return '"resourceType"' in body[:10_000]
    return is_resource(document)


def _resource_name(reference: Any, index: Index, container: dict[str, Any]) -> str:
    """A Reference's display, else the name of the resource it points to in the file."""
    reference = as_dict(reference)
    if as_text(reference.get("display")):
        return as_text(reference.get("display"))
    found = index.find(as_text(reference.get("reference")), container) if reference.get("reference") else None
    name = found.get("name") if found else None
    return name.strip() if isinstance(name, str) else ""


def _panels(items: list[Item], index: Index) -> dict[int, _Panel]:
    """For each Observation a DiagnosticReport lists (by object id), that report's accession and lab."""
    panels: dict[int, _Panel] = {}
    for item in items:
        report = item.resource
        if report is None or report["resourceType"] != "DiagnosticReport":
            continue
        accession = as_text(first_object(report.get("identifier")).get("value")) or as_text(report.get("id"))
        panel = _Panel(
            report, accession, _resource_name(first_object(report.get("performer")), index, report)
        )
        for reference in as_list(report.get("result")):
            target = as_text(as_dict(reference).get("reference"))
            found = index.find(target, report) if target else None
            if found is not None and found["resourceType"] == "Observation":
                panels.setdefault(id(found), panel)
    return panels


def _patient(patient: dict[str, Any]) -> dict[str, str]:
    """A Patient resource as a patient row: identifier of type MR preferred, else the first, else its id."""
    identifiers = [i for i in objects(patient.get("identifier")) if as_text(i.get("value"))]
    medical_record = [i for i in identifiers if "MR" in _codes(as_dict(i.get("type")))]
    chosen = (medical_record or identifiers or [{}])[0]
    names = objects(patient.get("name"))
    name = ([n for n in names if n.get("use") == "official"] or names or [{}])[0]
    given = " ".join(as_text(g) for g in as_list(name.get("given")) if as_text(g))
    full = ", ".join(p for p in (as_text(name.get("family")), given) if p) or as_text(name.get("text"))
    authority = as_text(chosen.get("system")) or as_text(as_dict(chosen.get("assigner")).get("display"))
    return {
        "patient_id": as_text(chosen.get("value")) or as_text(patient.get("id")),
        "assigning_authority": authority,
        "name": full,
        "birth_date": as_text(patient.get("birthDate")),
        "sex": SEX.get(as_text(patient.get("gender")).lower(), ""),
    }


def _codes(concept: dict[str, Any]) -> list[str]:
    return [as_text(coding.get("code")) for coding in objects(concept.get("coding"))]


def _subject(observation: dict[str, Any], index: Index, panel: _Panel | None) -> dict[str, str]:
    """patient_id and assigning_authority of the Observation's subject (the report's when it has none)."""
    subject = observation.get("subject") or (panel.report.get("subject") if panel else None)
    if not isinstance(subject, dict):
        raise _Refused("no subject: the patient is unknown")
    reference = as_text(subject.get("reference"))
    if reference:
        found = index.find(reference, observation)
        if found is not None and found["resourceType"] != "Patient":
            raise _Refused(f"subject '{reference}' is a {found['resourceType']}, not a Patient")
        if found is not None:
            patient = index.patients.get(id(found))
            if patient is None:  # read once per Patient, not once per Observation
                patient = index.patients[id(found)] = _patient(found)
            return {key: patient[key] for key in ("patient_id", "assigning_authority")}
        match = REFERENCE.search(reference)
        if match and match["type"] != "Patient":
            raise _Refused(f"subject '{reference}' is a {match['type']}, not a Patient")
        identity = match["id"] if match else re.split(r"[/:#]", reference)[-1]
        if identity:
            return {"patient_id": identity, "assigning_authority": ""}
    identifier = as_dict(subject.get("identifier"))
    if as_text(identifier.get("value")):
        return {
            "patient_id": as_text(identifier["value"]),
            "assigning_authority": as_text(identifier.get("system")),
        }
    raise _Refused("subject has no usable reference or identifier: the patient is unknown")


def _effective(resource: dict[str, Any]) -> tuple[str, str]:
    """(field name, time text) of effectiveDateTime, else effectivePeriod.start, else effectiveInstant."""
    for name, value in (
        ("effectiveDateTime", resource.get("effectiveDateTime")),
        ("effectivePeriod.start", as_dict(resource.get("effectivePeriod")).get("start")),
        ("effectiveInstant", resource.get("effectiveInstant")),
    ):
        if as_text(value):
            return name, as_text(value)
    return "", ""


def _times(observation: dict[str, Any], panel: _Panel | None) -> dict[str, str]:
    """Collection time as written (localised later, all rows at once), and the report time."""
    name, when = _effective(observation)
    if not when and panel is not None:
        name, when = _effective(panel.report)
        name = f"DiagnosticReport.{name}" if name else ""
    if not when:
        raise _Refused(
            "no effectiveDateTime, effectivePeriod.start or effectiveInstant: collection time unknown"
        )
    if not re.match(_FULL_DATE, when):
        raise _Refused(f"{name} '{when}' is not a full date (YYYY-MM-DD): the collection day is unknown")
    issued = as_text(observation.get("issued")) or (as_text(panel.report.get("issued")) if panel else "")
    return {"collected_at": when, "reported_at": issued, "_when": name}


def _provenance(observation: dict[str, Any], index: Index, panel: _Panel | None) -> dict[str, str]:
    accession = (
        panel.accession if panel else as_text(first_object(observation.get("identifier")).get("value"))
    )
    lab = (
        (panel.lab if panel else "")
        or _resource_name(_performer(observation, index), index, observation)
        or as_text(as_dict(observation.get("meta")).get("source"))
    )
    return {"accession": accession, "lab": lab}


def _performer(observation: dict[str, Any], index: Index) -> dict[str, Any]:
    """The first performer that is an Organization (the lab, not the person), else the first."""
    performers = objects(observation.get("performer"))
    for performer in performers:
        reference = as_text(performer.get("reference"))
        found = index.find(reference, observation) if reference else None
        kind = found["resourceType"] if found else (REFERENCE.search(reference) or {"type": ""})["type"]
        if kind == "Organization":
            return performer
    return performers[0] if performers else {}


def _value_key(observation: dict[str, Any]) -> str:
    """The value[x] element present ("valueQuantity", "valueString", ...), '' when none."""
    return next((k for k, v in observation.items() if _VALUE_KEY.match(k) and v is not None), "")


_VALUE_KEY = re.compile(r"^value[A-Z]")


def _unit(quantity: dict[str, Any]) -> str:
    """The UCUM code when there is one, else the human-readable unit."""
    code = as_text(quantity.get("code"))
    if code and as_text(quantity.get("system")) in ("", UCUM_SYSTEM):
        return code
    return as_text(quantity.get("unit")) or code


def _number(value: Any, where: str) -> str:
    """A JSON number as written; a string passes (the normaliser judges it); anything else is refused."""
    if isinstance(value, (str, Decimal, float)) or value is None:
        return as_text(value)
    raise _Refused(f"{where} is not a number ({compact(value)[:80]})")


def _reference_range(observation: dict[str, Any], value: dict[str, Any] | None) -> dict[str, str]:
    """referenceRange[0] limits as text; refused when a limit's unit is not the value's (if ``value``)."""
    first = first_object(observation.get("referenceRange"))
    limits = {}
    for side in ("low", "high"):
        limit = as_dict(first.get(side))
        if value is not None:
            mine = {as_text(limit.get("code")), as_text(limit.get("unit"))} - {""}
            theirs = {as_text(value.get("code")), as_text(value.get("unit"))} - {""}
            if mine and theirs and not mine & theirs:
                raise _Refused(
                    f"referenceRange[0].{side} is in '{_unit(limit)}' but the value is in '{_unit(value)}'"
                )
        limits[side] = _number(limit.get("value"), f"referenceRange[0].{side}.value")
    low, high = limits["low"], limits["high"]
    spelled = f"{low}-{high}" if low and high else f">={low}" if low else f"<={high}" if high else ""
    return {"ref_low": low, "ref_high": high, "ref_raw": as_text(first.get("text")) or spelled}


def _cbc_value(observation: dict[str, Any], value_key: str, status: str) -> dict[str, str]:
    """value, unit and reference range of a CBC Observation: a plain Quantity or nothing."""
    if not value_key:
        if status.lower() in WITHDRAWN:
            return {"value": "", "unit": "", **_reference_range(observation, None)}
        raise _Refused("no value (valueQuantity) and no dataAbsentReason")
    if value_key != "valueQuantity":
        raise _Refused(f"value is not a Quantity ({value_key})")
    quantity = observation["valueQuantity"]
    if not isinstance(quantity, dict):
        raise _Refused("valueQuantity is not a JSON object")
    # A censored value ("<0.1") keeps its comparator; the normaliser stores both.
    comparator = as_text(quantity.get("comparator"))
    value = _number(quantity.get("value"), "valueQuantity.value")
    if not value:
        raise _Refused("valueQuantity has no value")
    return {"value": comparator + value, "unit": _unit(quantity), **_reference_range(observation, quantity)}


def _other_value(observation: dict[str, Any], value_key: str) -> dict[str, str]:
    """An observation outside the CBC: its value as text, as received."""
    value = observation.get(value_key) if value_key else None
    kind = value_key.removeprefix("value")
    if kind == "Quantity" and isinstance(value, dict):
        text, unit = as_text(value.get("comparator")) + as_text(value.get("value")), _unit(value)
    elif kind == "CodeableConcept" and isinstance(value, dict):
        coding = first_object(value.get("coding"))
        text, unit = (
            as_text(value.get("text")) or as_text(coding.get("display")) or as_text(coding.get("code")),
            "",
        )
    else:
        text, unit = as_text(value), ""
    return {"value_type": kind, "value": text[:RAW_TEXT_LIMIT], "unit": unit}


def _observation(item: Item, index: Index, panel: _Panel | None) -> tuple[str, dict[str, str]]:
    """("record" | "other" | "pending" | "skip", row) for one Observation; raises _Refused."""
    observation = item.resource or {}
    status = as_text(observation.get("status"))
    value_key = _value_key(observation)
    if status.lower() == "registered":
        return "pending", {}
    if not value_key and status.lower() not in WITHDRAWN:
        if observation.get("hasMember"):
            return "skip", {}  # a panel: its members are the results
        if observation.get("dataAbsentReason") is not None:
            return "pending", {}
    if not status:
        raise _Refused("no status (final, preliminary, amended, corrected, cancelled, entered-in-error)")
    concept = as_dict(observation.get("code"))
    codings = objects(concept.get("coding"))
    loinc = [c for c in codings if as_text(c.get("system")) == LOINC_SYSTEM and as_text(c.get("code"))]
    coding = next((c for c in loinc if as_text(c.get("code")) in LOINC), loinc[0] if loinc else None)
    common = {
        **_subject(observation, index, panel),
        **_times(observation, panel),
        **_provenance(observation, index, panel),
        "status": status,
        "abnormal_flag": as_text(
            first_object(first_object(observation.get("interpretation")).get("coding")).get("code")
        ),
        "location": item.location,
        "raw_text": item.raw_text,
    }
    if coding is None or as_text(coding.get("code")) not in LOINC:
        coding = coding or (codings[0] if codings else {})
        name = as_text(concept.get("text")) or as_text(coding.get("display"))
        return "other", {
            **common,
            **_other_value(observation, value_key),
            "ref_raw": _reference_range_text(observation),
            "code": as_text(coding.get("code")),
            "code_system": as_text(coding.get("system")),
            "name": name,
        }
    code = as_text(coding.get("code"))
    return "record", {**common, **_cbc_value(observation, value_key, status), "analyte": code, "loinc": code}


def _reference_range_text(observation: dict[str, Any]) -> str:
    try:
        return _reference_range(observation, None)["ref_raw"]
    except _Refused:
        return as_text(first_object(observation.get("referenceRange")).get("text"))


def _problem(location: str, raw_text: str, reason: str) -> dict[str, str]:
    return {"location": location, "raw_text": raw_text, "reason": reason}


def _collect(items: list[Item]) -> _Collected:
    index = Index(items)
    panels = _panels(items, index)
    out = _Collected()
    for item in items:
        resource_type = item.resource["resourceType"] if item.resource is not None else ""
        if item.problem:
            out.rejected.append(_problem(item.location, item.raw_text, item.problem))
        elif resource_type == "Patient":
            out.patients.append(_patient(item.resource or {}))
        if resource_type != "Observation":
            continue
        try:
            kind, row = _observation(item, index, panels.get(id(item.resource)))
        except _Refused as refusal:
            out.rejected.append(_problem(item.location, item.raw_text, str(refusal)))
            continue
        out.pending += kind == "pending"
        {"record": out.records, "other": out.others}.get(kind, []).append(row)
    return out


def _localise(
    rows: list[dict[str, str]], columns: tuple[str, ...], timezone: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows as a frame with times in UTC ISO 8601, and the rows whose collection time cannot be read."""
    if not rows:
        return empty(columns), empty(REJECT_COLUMNS)
    helpers = ("collected_at", "reported_at", "location", "raw_text", "_when")
    named = list(dict.fromkeys([*columns, *helpers]))
    frame = pd.DataFrame(rows).reindex(columns=named, fill_value="").fillna("")
    written = frame["collected_at"].astype(str)
    for column in ("collected_at", "reported_at"):
        times = frame[column].astype(str)
        frame[column] = localise_iso(times.where(~times.str.contains(_UNSUPPORTED_YEAR), ""), timezone)
    unreadable = frame["collected_at"].eq("")
    source = frame["_when"] + " '" + written + "'"
    if "collected_as" in frame:
        frame["collected_as"] = source
    reason = (source + " is not a readable date-time").where(~year_outside(written), source + OUTSIDE_YEARS)
    refused = pd.DataFrame({"location": frame["location"], "raw_text": frame["raw_text"], "reason": reason})[
        unreadable
    ]
    return frame.loc[~unreadable, list(columns)].astype(str).reset_index(drop=True), refused.astype(str)


def parse_fhir(text: str, *, timezone: str = "UTC") -> Parsed:
    """Read FHIR R4 JSON (Bundle, single resource or NDJSON) into raw CBC records and refusals.

    Parameters
    ----------
    text : str
        The file's content.
    timezone : str
        IANA zone for date-only and offset-less times (a date alone is midnight there).

    Returns
    -------
    Parsed
        CBC records (``RAW_COLUMNS``, analyte = LOINC code), refusals with their location ("entry 3
        (Observation/abc)", "line 7" or "resource"), Patient resources, observations outside the CBC, and
        the count of Observations with no result yet (registered, or a dataAbsentReason).

    Raises
    ------
    UnusableFile
        When the file is empty, or neither JSON nor NDJSON.

    Examples
    --------
    >>> observation = ('{"resourceType": "Observation", "status": "final", "subject": {"reference": '
    ...     '"Patient/p1"}, "effectiveDateTime": "2026-07-01", "code": {"coding": [{"system": '
    ...     '"http://loinc.org", "code": "751-8"}]}, "valueQuantity": {"value": 1.2, "code": "10*3/uL"}}')
    >>> records = parse_fhir(observation, timezone="Europe/Paris").records
    >>> records[["patient_id", "collected_at", "analyte", "value", "unit"]].values.tolist()
    [['p1', '2026-06-30T22:00:00+00:00', '751-8', '1.2', '10*3/uL']]
    """
    collected = _collect(load_items(text))
    records, late = _localise(collected.records, RAW_COLUMNS, timezone)
    others, late_others = _localise(collected.others, OTHER_COLUMNS, timezone)
    rejected = [_frame(collected.rejected, REJECT_COLUMNS), late, late_others]
    patients = _frame(collected.patients, PATIENT_COLUMNS)
    return Parsed(
        records=records,
        rejected=pd.concat(rejected, ignore_index=True).astype(str),
        patients=patients[patients["patient_id"] != ""].drop_duplicates().reset_index(drop=True),
        others=others,
        pending=collected.pending,
    )


def parse_piece(text: str, zone: str, before: int) -> Parsed:
    """A FHIR file, read whole (``before`` is always 0), times without an offset in ``zone``."""
    return parse_fhir(text, timezone=zone)


def _frame(rows: list[dict[str, str]], columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns)).astype(str) if rows else empty(columns)
