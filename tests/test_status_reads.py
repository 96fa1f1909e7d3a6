"""The status reads its results through its own faster reader: the same frames as the general one."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import select

from db.frames import read_frame_in
from db.models import Panel, Patient, Result
from db.status import USABLE, _read_results, _result_rows

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# A raw value of two lines (a lab's comment kept with it), long enough that the demo's results with it
# fill more than one of the blocks pyarrow reads CSV in (1 MB).
LONG = "4,1\n" + "(repeated) " * 8


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


def test_awkward_values_read_back_as_stored(demo_copy) -> None:
    """Text holding the CSV's own separators, quotes, a line break, an empty text beside a NULL, words a
    reader might take for missing ("NA", "NULL"), a time to the microsecond and a number that only 17
    digits write exactly: the same frame through the status reader (PostgreSQL's COPY) and the rows."""
    from sqlalchemy import update

    store = demo_copy(NOW)
    with store.begin() as session:
        first, second, third, fourth = session.scalars(
            select(Result.id).where(Result.analyte == "wbc").order_by(Result.id).limit(4)
        ).all()
        panel = session.scalar(select(Result.panel_id).where(Result.id == first))
        session.execute(
            update(Panel)
            .where(Panel.id == panel)
            .values(collected_at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))
        )
        awkward = {
            first: {"value_raw": 'a,"b"\nc', "unit_raw": "NA", "abnormal_flag": "", "value": 0.1 + 0.2},
            second: {"value_raw": "NULL", "unit_raw": "", "abnormal_flag": None, "value": 1e-300},
            third: {"value_raw": "", "unit_raw": "10^9/L", "abnormal_flag": "L", "value": None},
        }
        # Line breaks all through a read of more than a megabyte (pyarrow reads CSV in blocks of one),
        # and a "%" in a stored text and in a bound value.
        session.execute(update(Result).values(value_raw=LONG))
        for key, values in awkward.items():
            session.execute(update(Result).where(Result.id == key).values(**values))
        session.execute(update(Result).where(Result.id == fourth).values(unit_raw="50%"))
        keys = [int(key) for key in session.scalars(select(Patient.id).order_by(Patient.id))]

        def build(part):
            return (
                _result_rows()
                .add_columns(Result.value_raw)
                .where(Panel.patient_id.in_(part), Result.unit_raw.not_in(["100%"]), *USABLE)
            )

        expected = read_frame_in(session, build, keys)
        assert expected["value_raw"].eq(LONG).sum() > 9_000  # over a megabyte of them
        assert expected["unit_raw"].eq("50%").sum() == 1
        read = _read_results(session, build, keys)
        pd.testing.assert_frame_equal(read, expected)
        row = read.set_index("value_raw").loc['a,"b"\nc']
        assert row["unit_raw"] == "NA" and row["abnormal_flag"] == "" and row["value"] == 0.1 + 0.2
        assert row["collected_at"] == pd.Timestamp("2026-01-02 03:04:05.123456", tz="UTC")
        assert pd.isna(read.set_index("value_raw").loc["NULL", "abnormal_flag"])
