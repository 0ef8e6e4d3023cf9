"""prodml.contracts: a record contract for any model, checked one record at a time and, in bulk,
by the pipeline's CSV path with the same results; babyweight's contract as the pipeline uses it."""

from __future__ import annotations

import pickle
import re

import pytest
from prodml.babyweight import CONTRACT
from prodml.contracts import Derived, Field, RecordContract, RecordError, missing
from prodml.pipelines import check_csv_lines


def zone(code, level):
    """The made-up model's zone: a code and a level."""
    if code == "xx":
        raise ValueError(f"unknown zone {code!r}")
    return f"{code}-{level}"


def _sensor() -> RecordContract:
    """A small contract of a made-up model: two numbers, a code, a derived value, an event time."""
    return RecordContract(
        name="sensor",
        fields=(
            Field("temp", range=(-40, 60), codes=((99, "means broken"),)),
            Field("level", kind="integer", range=(1, 3)),
            Field("code", kind="text"),
            Field("t", required=False),
        ),
        derived=(Derived("zone", ("code", "level"), zone),),
        features=("temp", "zone"),
        label="y",
        key="id",
        event_time="t",
        output="out",
        prediction="predicted_y",
        table="sensors.predictions",
    )


def test_a_contract_checks_each_field_and_names_the_first_problem():
    contract = _sensor()
    good = {"id": "a", "temp": "21.5", "level": "2", "code": " ab ", "t": 10, "y": "3"}
    assert contract.check(good) == {"id": "a", "temp": 21.5, "zone": "ab-2", "t": 10.0, "y": 3.0}
    for change, reason in (
        ({"temp": None, "level": ""}, "missing field(s): temp, level"),
        ({"temp": "warm"}, "temp is not a number: 'warm'"),
        ({"temp": True}, "temp is not a number: True"),
        ({"temp": "99"}, "temp '99' is out of range [-40, 60] (99 means broken)"),
        ({"level": "2.5"}, "level is not a whole number: '2.5'"),
        ({"code": "xx"}, "unknown zone 'xx'"),
        ({"y": "heavy"}, "y is not a number: 'heavy'"),
    ):
        with pytest.raises(RecordError, match="^" + re.escape(reason)):
            contract.check({**good, **change})
    assert contract.check({**good, "t": None})["t"] is None  # not required: kept as None
    unkeyed = contract.check({k: v for k, v in good.items() if k != "id"}, raw="the line")
    assert len(unkeyed["id"]) == 16  # a hash of the raw record
    assert contract.columns == ("id", "temp", "zone", "predicted_y", "window", "pane")
    assert contract.required == ("temp", "level", "code")


def test_the_bulk_csv_check_gives_what_the_one_record_check_gives():
    contract = _sensor()
    columns = ["id", "temp", "level", "code", "t", "y"]
    lines = [
        "a,21.5,2,ab,10,3",
        "b,99,2,ab,10,3",
        "c,20,1,xx,11,",
        'd,"20",1,ab,12,1',
        "e,0,3,cd,13,2",
    ]
    bulk = check_csv_lines(lines, columns, contract)
    for line, got in zip(lines, bulk, strict=True):
        record = dict(zip(columns, line.replace('"', "").split(","), strict=True))
        try:
            want = contract.check(record, line)
        except RecordError:
            want = None
        if got is not None:  # lines the bulk path leaves out go the one-record way
            assert got == want, line
    assert [r is not None for r in bulk] == [True, False, False, False, True]
    assert bulk[0] == {"id": "a", "temp": 21.5, "zone": "ab-2", "t": 10.0, "y": 3.0}


def test_a_contract_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="no fields"):
        RecordContract(name="x", fields=())
    with pytest.raises(ValueError, match="listed twice"):
        RecordContract(name="x", fields=(Field("a"), Field("a")))
    with pytest.raises(ValueError, match=r"\['b'\] are neither fields nor derived values"):
        RecordContract(name="x", fields=(Field("a"),), features=("a", "b"))
    with pytest.raises(ValueError, match="derives from unknown"):
        RecordContract(name="x", fields=(Field("a"),), derived=(Derived("d", ("z",), str),))
    with pytest.raises(ValueError, match="kind must be one of"):
        Field("a", kind="date")


def test_the_memo_of_distinct_values_stays_behind_when_pickled():
    contract = _sensor()
    contract.check({"id": "a", "temp": 1, "level": 1, "code": "ab", "t": 1})
    assert contract._memo  # the zone and the code were remembered
    copy = pickle.loads(pickle.dumps(contract))
    assert copy._memo == {} and copy == contract


def test_babyweight_contract_is_the_training_mapping():
    row = {
        "key": "k",
        "is_male": "false",
        "mother_age": "30",
        "plurality": "2",
        "gestation_weeks": "38",
    }
    assert CONTRACT.check(row) == {"key": "k", "is_male": "False", "mother_age": 30.0,
                                   "plurality": "Twins(2)", "gestation_weeks": 38.0}  # fmt: skip
    assert CONTRACT.check({**row, "is_male": ""})["plurality"] == "Multiple(2+)"
    assert missing(float("nan")) and missing("  ") and not missing(0)
    assert (CONTRACT.name, CONTRACT.output, CONTRACT.table) == (
        "babyweight",
        "weight",
        "babyweight.predictions",
    )
