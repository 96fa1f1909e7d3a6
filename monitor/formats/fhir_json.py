"""FHIR JSON read into resources: one document (a resource, or a Bundle, Bundles within Bundles), or NDJSON
with one resource a line; and references between the resources of a file resolved.

Numbers are kept as written (``Decimal``). A part of the file that is not a resource becomes an ``Item``
with the problem named; only a file that is not JSON at all is unusable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from monitor.formats.csv_long import UnusableFile
from monitor.formats.parsed import cut_raw

READ_TYPES = ("Bundle", "Observation", "DiagnosticReport", "Patient")
MAX_BUNDLE_DEPTH = 5
# "Patient/123", ".../fhir/Patient/123/_history/2": the type and id at the end of a reference.
REFERENCE = re.compile(r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9.\-]{1,64})(?:/_history/[^/]*)?$")


@dataclass(frozen=True, slots=True)
class Item:
    """One resource of the file (or a piece of the file that is not one), with where it stands."""

    location: str
    raw_text: str
    resource: dict[str, Any] | None = None
    full_url: str = ""
    problem: str = ""


def loads(text: str) -> Any:
    """The JSON value of ``text``, its numbers as ``Decimal``: `json.loads` with one decoder for every
    call (an NDJSON file calls it once a line)."""
    if text.startswith("\ufeff"):  # as json.loads refuses it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


# Decimal keeps numbers as written ("6.80" stays "6.80") and has no digit limit, unlike int.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal)


def try_loads(text: str) -> tuple[Any, str]:
    """The JSON value and '', or None and what is wrong with the text."""
    try:
        return loads(text), ""
    except (ValueError, RecursionError, InvalidOperation) as error:
        return None, _describe(error)


def is_resource(document: Any) -> bool:
    """True for a JSON object naming its ``resourceType``."""
    return isinstance(document, dict) and isinstance(document.get("resourceType"), str)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent == 0 else float(value)
    raise TypeError(type(value).__name__)


def compact(value: Any) -> str:
    """The JSON text of a value, compact and cut as a record's text is kept (``cut_raw``)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_plain)
    except (ValueError, TypeError, RecursionError):
        text = "(not shown: cannot be written back as JSON)"
    return cut_raw(text)


def as_text(value: Any) -> str:
    """A JSON scalar as text ('' for null); anything else as its JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return compact(value)


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object as itself, anything else as an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """A JSON array as itself, anything else as an empty one."""
    return value if isinstance(value, list) else []


def objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array (nothing when it is not one)."""
    return [element for element in as_list(value) if isinstance(element, dict)]


def first_object(value: Any) -> dict[str, Any]:
    """The first element of a JSON array when it is an object, else an empty object."""
    return as_dict(value[0]) if isinstance(value, list) and value else {}


def load_items(text: str) -> list[Item]:
    """The file's resources: one JSON document (Bundle or resource), or NDJSON, one resource a line."""
    body = text.lstrip("\ufeff")
    if not body.strip():
        raise UnusableFile("the file is empty")
    try:
        document = loads(body)
    except (ValueError, RecursionError, InvalidOperation) as error:
        return _ndjson(body, error)
    if not isinstance(document, dict):
        kind = "array" if isinstance(document, list) else "scalar"
        problem = f"the file is a JSON {kind}, not a FHIR resource (an object with resourceType)"
        return [Item("resource", compact(document), problem=problem)]
    named = document.get("resourceType")
    if isinstance(named, str) and named and named not in READ_TYPES:
        problem = f"resourceType '{named}' carries no results (expected {', '.join(READ_TYPES)} or NDJSON)"
        return [Item("resource", compact(document), problem=problem)]
    return _items(document, "resource", compact(document), depth=0)


def _ndjson(body: str, error: Exception) -> list[Item]:
    """NDJSON lines as items; UnusableFile unless at least half the non-blank lines are resources."""
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(body.split("\n"), start=1) if line.strip()]
    parsed = [try_loads(line) for _, line in lines]
    if len(lines) < 2 or 2 * sum(is_resource(document) for document, _ in parsed) < len(lines):
        raise UnusableFile(f"not valid JSON: {_describe(error)}") from None
    items: list[Item] = []
    for (number, line), (document, wrong) in zip(lines, parsed, strict=True):
        raw = cut_raw(line)
        if wrong:
            wrong = re.sub(r"^line 1 column", "column", wrong)
            items.append(Item(f"line {number}", raw, problem=f"line {number} is not valid JSON ({wrong})"))
        else:
            items.extend(_items(document, f"line {number}", raw, depth=0))
    return items


def _describe(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"line {error.lineno} column {error.colno}: {error.msg}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, InvalidOperation):
        return "a number too large to read"
    return str(error) or type(error).__name__


def _items(document: Any, location: str, raw: str, *, depth: int, full_url: str = "") -> list[Item]:
    """One resource as an item, or a Bundle's entries (Bundles within Bundles too)."""
    if not isinstance(document, dict):
        return [Item(location, raw, problem="not a JSON object, so not a FHIR resource")]
    if not isinstance(document.get("resourceType"), str) or not document["resourceType"]:
        return [Item(location, raw, problem="no resourceType: not a FHIR resource")]
    if document["resourceType"] != "Bundle":
        return [Item(location, raw, document, full_url)]
    if depth >= MAX_BUNDLE_DEPTH:
        return [Item(location, raw, problem=f"Bundles are nested more than {MAX_BUNDLE_DEPTH} deep")]
    entries = document.get("entry")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        return [Item(location, raw, problem="Bundle.entry is not a list")]
    prefix = "" if location == "resource" else f"{location}, "
    items: list[Item] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{prefix}entry {number}"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:  # request- or response-only entries carry no resource to read
            if not isinstance(entry, dict):
                items.append(Item(where, compact(entry), problem="Bundle entry is not a JSON object"))
            continue
        if is_resource(resource):
            identity = as_text(resource.get("id"))
            where += f" ({resource['resourceType']}{'/' + identity if identity else ''})"
        url = entry.get("fullUrl")
        items.extend(_items(resource, where, compact(resource), depth=depth + 1, full_url=as_text(url)))
    return items


class Index:
    """Resources of the file by ``Type/id`` and by ``fullUrl``, to resolve references."""

    def __init__(self, items: list[Item]) -> None:
        self.by_key: dict[str, dict[str, Any]] = {}
        # Patient rows read from the resources (by object id: the items keep the resources alive).
        self.patients: dict[int, dict[str, str]] = {}
        for item in items:
            if item.resource is None:
                continue
            identity = as_text(item.resource.get("id"))
            if identity:
                self.by_key.setdefault(f"{item.resource['resourceType']}/{identity}", item.resource)
            if item.full_url:
                self.by_key.setdefault(item.full_url, item.resource)

    def find(self, reference: str, container: dict[str, Any]) -> dict[str, Any] | None:
        """The resource a reference names: contained ("#id"), by fullUrl, or by its ``Type/id`` ending."""
        if reference.startswith("#"):
            for resource in objects(container.get("contained")):
                if is_resource(resource) and as_text(resource.get("id")) == reference[1:]:
                    return resource
            return None
        if reference in self.by_key:
            return self.by_key[reference]
        match = REFERENCE.search(reference)
        return self.by_key.get(f"{match['type']}/{match['id']}") if match else None
