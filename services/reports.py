"""Printable reports (PDF): one patient's summary, for a tumour board, a referral letter or the record, and
a team's handover list, for a ward round or a change of shift.

The summary is built as HTML and CSS (``services.report_html``) and laid out by WeasyPrint: real text
(selectable, searchable, any script, right-to-left names included, through the system's Pango), A4 or US
Letter, a running footer with the decision-support disclaimer and "page x of y", and the WBC/ANC chart as
vector SVG (``services.report_chart``). Why WeasyPrint: README, "Printing".

Everything printed comes from ``services.patients.patient_view``: the same reads, access check and
computed marks as the patient pages, so a user outside the patient's teams gets the same refusal
(``PatientNotFound``) and nothing else of the store reaches the page. The handover lists the team's patients
from the worklist (``services.worklist.worklist``) read as a viewer of that team alone, so no patient of
another team can appear on it. The caller audits each print (an export) with who, which patients and which
report.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import Viewer, find_team, teams
from db.settings import site_rules
from db.status import latest_others
from services.patients import patient_view
from services.report_handover import FontMissing, handover_pdf
from services.report_html import DISCLAIMER, handover_text, summary_html
from services.worklist import worklist

__all__ = [
    "PAPERS",
    "PrintingUnavailable",
    "Report",
    "TeamNotFound",
    "handover",
    "handover_teams",
    "patient_summary",
    "printing_problem",
]

# The paper sizes offered (``--paper``), as CSS names them.
PAPERS = {"a4": "A4", "letter": "letter"}
# Reports laid out at once in one process: a summary's layout holds 100-300 MB while it runs, and the
# dashboard's server prints for every signed-in user.
_PRINTING = threading.BoundedSemaphore(2)


class TeamNotFound(LookupError):
    """No team with that code among those the viewer may see."""


@dataclass(frozen=True, slots=True)
class Report:
    """A rendered report: the PDF's bytes, its page count and the keys of the patients it shows (for the
    audit)."""

    pdf: bytes
    pages: int
    patient_keys: tuple[int, ...]


def patient_summary(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    patient_key: int,
    timezone: str,
    now: datetime,
    printed_by: str,
    paper: str = "a4",
    since: datetime | None = None,
    site: str = "",
) -> Report:
    """The summary of one patient as of ``now`` (times in the site's ``timezone``): identifiers, latest
    counts with their grades and limits, flags with their sentences and acknowledgement, the WBC/ANC chart,
    cycles, the last panels, events and notes. ``since`` limits the chart, the panels and the events to
    what was collected or started from then (default: the timeline's window, its last 182 days).

    Raises ``PatientNotFound`` for a patient ``viewer`` may not see, ``ValueError`` for an unknown paper.
    """
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(sorted(PAPERS))}, not {paper!r}")
    view = patient_view(store, viewer=viewer, patient_key=patient_key, timezone=timezone, now=now)
    with store() as session:
        version = site_rules(session).grading.ctcae_version
    html = summary_html(
        view,
        now=now,
        printed_by=printed_by,
        paper=PAPERS[paper],
        since=None if since is None else pd.Timestamp(since),
        site=site,
        ctcae_version=version,
    )
    return _render(html, (patient_key,))


def handover(
    store: sessionmaker[Session],
    *,
    viewer: Viewer,
    team: str,
    timezone: str,
    now: datetime,
    printed_by: str,
    paper: str = "a4",
    site: str = "",
) -> Report:
    """The handover list of the team with code ``team`` as of ``now``: its patients in the worklist's
    priority order, one row each (grades per lineage, flags, last CBC, cycle day, CBCs due), landscape.

    Raises ``TeamNotFound`` when there is no such team or ``viewer`` is not in it (an administrator sees
    every team), ``ValueError`` for an unknown paper.
    """
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(sorted(PAPERS))}, not {paper!r}")
    with store() as session:
        found = find_team(session, team)
    if found is None or not (viewer.sees_everyone or found[0] in (viewer.team_ids or ())):
        raise TeamNotFound(f"no team {team!r} among yours")
    key, name = found
    members = dataclasses.replace(viewer, team_ids=(key,))
    listed = worklist(store, viewer=members, timezone=timezone, now=now)
    with store() as session:
        version = site_rules(session).grading.ctcae_version
        # Haemoglobin and platelets with their times and statuses (the list holds their values only).
        others = latest_others(session, [int(key) for key in listed["patient_key"]])
    words = handover_text(
        listed,
        others=others,
        team=name,
        timezone=timezone,
        now=now,
        printed_by=printed_by,
        site=site,
        ctcae_version=version,
    )
    try:
        with _PRINTING:
            pdf, pages = handover_pdf(
                words.rows,
                title=words.title,
                subtitle=words.subtitle,
                legend=words.legend,
                footer=words.footer,
                disclaimer=DISCLAIMER,
                banner=words.banner,
                paper=PAPERS[paper],
            )
    except FontMissing as error:
        raise PrintingUnavailable(str(error)) from error
    return Report(pdf=pdf, pages=pages, patient_keys=tuple(int(k) for k in listed["patient_key"]))


def handover_teams(store: sessionmaker[Session], *, viewer: Viewer) -> list[tuple[str, str]]:
    """The teams whose handover ``viewer`` may print, as (code, name) by name (an administrator: every
    team). Names need not be unique; codes are."""
    with store() as session:
        found = teams(session)
    mine = set(viewer.team_ids or ())
    return [(code, name) for key, code, name in found if viewer.sees_everyone or key in mine]


class PrintingUnavailable(RuntimeError):
    """The system libraries printing needs (Pango) are missing."""


def printing_problem() -> str | None:
    """Why reports cannot print on this machine (a missing system library), or None."""
    try:
        import weasyprint  # noqa: F401
    except OSError:
        return (
            "printing needs Pango: apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core "
            "(or `make printing`)"
        )
    return None


def _render(html: str, patient_keys: tuple[int, ...]) -> Report:
    # Imported here: WeasyPrint loads Pango through cffi, which only printing needs.
    try:
        import weasyprint
    except OSError as error:
        raise PrintingUnavailable(
            "printing needs Pango: apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core "
            "(or `make printing`)"
        ) from error

    # Nothing outside the document is fetched: every value is escaped text, and no file, network address
    # or data URL in a patient's record can reach the layout engine (allowed protocols: none).
    fetcher = weasyprint.URLFetcher(allowed_protocols=(), allow_redirects=False, timeout=1)
    with _PRINTING:
        document = weasyprint.HTML(string=html, url_fetcher=fetcher).render()
        pdf = document.write_pdf()
    return Report(pdf=pdf, pages=len(document.pages), patient_keys=patient_keys)
