"""The status reads its results through its own faster reader: the same frames as the general one."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import select

from db.frames import read_frame_in
from db.models import Panel, Patient, Result
from db.status import USABLE, _read_results, _result_rows

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_the_status_reader_gives_the_frames_read_frame_in_gives(demo_copy) -> None:
    """Every result column (times, numbers missing or not, text never filled) with the same values and
    dtypes, for the lineages, the temperatures and every analyte with its raw value; and with no rows."""
    store = demo_copy(NOW)
    with store() as session:
        keys = [int(key) for key in session.scalars(select(Patient.id).order_by(Patient.id))]
        for analytes, extra in ((("wbc", "anc", "alc"), ()), (("temp",), ()), (None, (Result.value_raw,))):

            def build(part, analytes=analytes, extra=extra):
                statement = _result_rows().add_columns(*extra).where(Panel.patient_id.in_(part), *USABLE)
                return statement.where(Result.analyte.in_(analytes)) if analytes else statement

            expected = read_frame_in(session, build, keys)
            assert len(expected) > 0
            pd.testing.assert_frame_equal(_read_results(session, build, keys), expected)
            none = read_frame_in(session, build, [])
            pd.testing.assert_frame_equal(_read_results(session, build, []), none)
            nobody = read_frame_in(session, build, [-1])
            pd.testing.assert_frame_equal(_read_results(session, build, [-1]), nobody)
