"""Fuzzed imports: sample files mutated with hostile values are imported or refused, never an internal error,
and the store stays consistent, on every store alike.

Each format gets a store of its own, into which a few hundred mutations of its sample files are imported one
after the other: long values, NUL characters (raw, and escaped as JSON ``\\u0000`` or HL7 ``\\X00\\``), line
breaks, other Unicode, columns named twice, segments cut or repeated. Every import must end in a summary
(records accepted or refused with a reason, or the file refused as a whole); none may raise. After each,
the store must hold what a PostgreSQL store could (no text longer than its column, no NUL), the refusals the
summary reported, and one current version per result.

``MONITOR_FUZZ_EXAMPLES`` sets the inputs per format and store (default 100, derandomized so that CI runs
the same ones); a long run, e.g. ``MONITOR_FUZZ_EXAMPLES=2000``, tries other inputs too (docs/deployment.md,
Hostile input). ``MONITOR_FUZZ_REPORT`` names a file each test appends its figures to (a JSON line).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from db.models import Base, ImportBatch, RejectedRecord
from services.imports import ImportOptions, import_content, import_path
from tests.conftest import DATA

EXAMPLES = int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "100"))
# Long runs try fresh inputs as well as CI's (derandomized: the same every run).
DERANDOMIZE = "MONITOR_FUZZ_EXAMPLES" not in os.environ

SAMPLES: dict[str, tuple[Path, ...]] = {
    "csv": (DATA / "canonical-good.csv", DATA / "csv" / "wide.csv"),
    "hl7": (DATA / "hl7" / "local-codes-percentages.hl7", DATA / "hl7" / "correction-and-deletion.hl7"),
    "fhir": (DATA / "fhir" / "bundle-cbc-searchset.json", DATA / "fhir" / "bundle-transaction-urn-uuid.json"),
    "ndjson": (DATA / "fhir" / "bulk-export-observations.ndjson",),
    "events": (DATA / "csv" / "events.csv",),
}
# Where a value begins and ends in each kind of file: the mutations replace what lies between.
DELIMITERS = {
    "csv": r"([,\n])",
    "events": r"([,\n])",
    "hl7": r"([|^~&\r\n])",
    "fhir": r'([,:{}\[\]"])',
    "ndjson": r'([,:{}\[\]"\n])',
}

LONG = (
    st.integers(1, 5)
    .map(lambda n: n * 60)
    .flatmap(lambda n: st.sampled_from(["A" * n, "0" * n + "4", "é" * n, ("x," * n)[: n + 1]]))
)
SPECIAL = st.sampled_from(
    [
        "\x00",
        "\\u0000",
        "\\X00\\",
        "\r",
        "\n",
        "\r\n",
        '"',
        ",",
        "|",
        "^",
        "~",
        "\\",
        "{}",
        "[",
        "",
        " ",
        "\ufeff",
        "\u2028",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+14:00",
        "1e400",
        "-inf",
        "nan",
        "<0.1",
        "99999999999999999999999",
        "10^9/L",
        "MSH|^~\\&|",
        "OBX|1|NM|6690-2^WBC^LN||4.2|10*9/L",
    ]
)
UNICODE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
HOSTILE = st.one_of(LONG, SPECIAL, UNICODE, st.tuples(SPECIAL, LONG).map("".join))


@st.composite
def _replace_value(draw: st.DrawFn, content: str, fmt: str) -> str:
    tokens = re.split(DELIMITERS[fmt], content)
    at = draw(st.integers(0, max(len(tokens) - 1, 0)))
    tokens[at] = draw(HOSTILE)
    return "".join(tokens)


@st.composite
def _insert(draw: st.DrawFn, content: str, fmt: str) -> str:
    at = draw(st.integers(0, len(content)))
    return content[:at] + draw(HOSTILE) + content[at:]


@st.composite
def _cut(draw: st.DrawFn, content: str, fmt: str) -> str:
    start = draw(st.integers(0, len(content)))
    return content[:start] + content[start + draw(st.integers(1, 200)) :]


@st.composite
def _repeat_line(draw: st.DrawFn, content: str, fmt: str) -> str:
    lines = re.split(r"(?<=[\r\n])", content)
    at = draw(st.integers(0, len(lines) - 1))
    return "".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])


@st.composite
def _repeat_column(draw: st.DrawFn, content: str, fmt: str) -> str:
    """A column named twice (CSV), or a field repeated within a segment or line."""
    header, newline, rest = content.partition("\n")
    names = header.split(",")
    name = draw(st.sampled_from(names))
    if draw(st.booleans()):
        name = name.upper()
    rows = [line + "," + draw(HOSTILE) if line else line for line in rest.split("\n")]
    return ",".join([*names, name]) + newline + "\n".join(rows)


@st.composite
def _json_leaf(draw: st.DrawFn, content: str, fmt: str) -> str:
    """A string or number somewhere in a JSON document (one line of NDJSON) replaced by a hostile string."""
    lines = content.split("\n") if fmt == "ndjson" else [content]
    at = draw(st.integers(0, len(lines) - 1))
    try:
        document = json.loads(lines[at])
    except ValueError:
        return content
    leaves: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in pairs:
            if isinstance(value, (dict, list)):
                walk(value)
            else:
                leaves.append((node, key))

    walk(document)
    if not leaves:
        return content
    node, key = draw(st.sampled_from(leaves))
    node[key] = draw(HOSTILE)
    lines[at] = json.dumps(document)
    return "\n".join(lines)


MUTATIONS = {
    "csv": (_replace_value, _replace_value, _replace_value, _insert, _cut, _repeat_line, _repeat_column),
    "events": (_replace_value, _replace_value, _replace_value, _insert, _cut, _repeat_line, _repeat_column),
    "hl7": (_replace_value, _replace_value, _insert, _cut, _repeat_line),
    "fhir": (_json_leaf, _json_leaf, _json_leaf, _replace_value, _insert, _cut),
    "ndjson": (_json_leaf, _json_leaf, _replace_value, _insert, _cut, _repeat_line),
}


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> tuple[str, bytes]:
    """A file name and the content of a sample of ``fmt`` with one to four mutations."""
    content = draw(st.sampled_from(SAMPLES[fmt])).read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        content = draw(draw(st.sampled_from(MUTATIONS[fmt]))(content, fmt))
    name = draw(st.one_of(st.just(f"fuzz.{fmt}"), HOSTILE))
    return name, content.encode("utf-8", errors="surrogatepass")


def _unkeepable_query() -> str:
    """One query naming the text columns that hold what a PostgreSQL store could not: a value longer than
    the column, or a NUL (SQLite keeps both, PostgreSQL refuses both: a difference between the stores)."""
    checks = []
    for table in Base.metadata.sorted_tables:
        conditions = []
        for column in table.columns:
            if isinstance(column.type, String):
                conditions.append(f"instr(CAST({column.name} AS BLOB), X'00') > 0")
                if column.type.length is not None:
                    conditions.append(f"length({column.name}) > {column.type.length}")
        if conditions:
            checks.append(f"SELECT '{table.name}' FROM {table.name} WHERE {' OR '.join(conditions)}")
    return " UNION ".join(checks)


UNKEEPABLE = _unkeepable_query()


def _check_store(store: sessionmaker[Session], summary: Any, kind: str) -> None:
    with store() as session:
        if kind == "sqlite":
            assert session.execute(text(UNKEEPABLE)).scalars().all() == []
        twice = session.execute(
            text(
                "SELECT panel_id, analyte FROM result WHERE is_current GROUP BY panel_id, analyte "
                "HAVING count(*) > 1"
            )
        ).all()
        assert twice == [], "a result with two current versions"
        if summary.batch_id is not None and summary.identical_to is None:
            kept = session.scalar(
                select(func.count())
                .select_from(RejectedRecord)
                .where(RejectedRecord.batch_id == summary.batch_id)
            )
            batch = session.get_one(ImportBatch, summary.batch_id)
            assert kept == batch.rejected == len(summary.rejected)


@pytest.mark.parametrize("fmt", list(SAMPLES))
def test_fuzzed_files_are_imported_or_refused_never_an_internal_error(
    store: sessionmaker[Session], db_kind: str, fmt: str
) -> None:
    options = ImportOptions(imported_by="fuzz", site_timezone="UTC", timezone="Europe/Paris")
    if fmt == "events":  # events name patients already stored
        import_path(store, DATA / "canonical-good.csv", options=options)
    figures: Counter[str] = Counter()
    crashes: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(file=mutated(fmt))
    def import_one(file: tuple[str, bytes]) -> None:
        name, content = file
        figures["inputs"] += 1
        try:
            summary = import_content(store, name, content, options=options)
        except Exception as error:
            # CI (derandomized) fails at once, and Hypothesis shrinks the input; a long run counts them all.
            if DERANDOMIZE:
                raise
            crashes.append(f"{type(error).__name__}: {str(error)[:300]} on {content[:300]!r}")
            return
        figures["files refused"] += summary.error is not None
        figures["records refused"] += len(summary.rejected)
        figures["records accepted"] += summary.accepted + summary.events
        _check_store(store, summary, db_kind)

    import_one()
    report = {
        "store": db_kind,
        "format": fmt,
        **figures,
        "crashes": len(crashes),
        "first crashes": crashes[:5],
    }
    print(json.dumps(report))
    if os.environ.get("MONITOR_FUZZ_REPORT"):
        with Path(os.environ["MONITOR_FUZZ_REPORT"]).open("a", encoding="utf-8") as out:
            out.write(json.dumps(report) + "\n")
    assert crashes == []
