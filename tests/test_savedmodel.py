"""prodml.savedmodel: an export's versions, loading a signature, calling it on rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodml import savedmodel
from support import INSTANCE, export_toy_model, toy_weight


def layout(base: Path, folders: dict[str, bool]) -> Path:
    """Folders under ``base``; True: with a (placeholder) saved_model.pb."""
    for name, with_pb in folders.items():
        (base / name).mkdir(parents=True)
        if with_pb:
            (base / name / "saved_model.pb").write_bytes(b"")
    return base


def test_versions_are_numbered_savedmodel_folders_in_numeric_order(tmp_path):
    base = layout(
        tmp_path / "export",
        {"10": True, "9": True, "3": True, "5": False, "tmp": True, "temp-1700000000": True},
    )
    found = savedmodel.versions(base)
    assert found == {3: base / "3", 9: base / "9", 10: base / "10"}
    assert list(found) == [3, 9, 10]
    assert savedmodel.latest(base) == base / "10"
    assert savedmodel.next_version(base) == 11
    assert savedmodel.next_version(base, at_least=1_700_000_000) == 1_700_000_000
    assert savedmodel.resolve(base) == base / "10"
    assert savedmodel.resolve(base / "3") == base / "3"


def test_versions_through_a_url_answer_strings(tmp_path):
    base = layout(tmp_path / "export", {"2": True, "7": True})
    url = f"file://{base}"
    assert savedmodel.versions(url) == {2: f"{url}/2", 7: f"{url}/7"}
    assert savedmodel.latest(url) == f"{url}/7"


def test_an_empty_or_missing_folder_has_no_versions_and_latest_names_it(tmp_path):
    empty = layout(tmp_path / "empty", {"4": False})
    missing = tmp_path / "missing"
    assert savedmodel.versions(empty) == {} and savedmodel.versions(missing) == {}
    assert savedmodel.next_version(missing) == 1
    with pytest.raises(FileNotFoundError, match=r"empty'.*no numbered version folder"):
        savedmodel.latest(empty)
    with pytest.raises(FileNotFoundError, match=r"missing'.*does not exist"):
        savedmodel.latest(missing)


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy") / "export"
    export_toy_model(base, version=1, scale=1.0)  # weight [None]
    export_toy_model(base, version=2, scale=2.0, column=True)  # [None, 1], the course's shape
    return base


def test_load_signature_takes_the_newest_version_and_predict_rows_answers_per_row(toy_base):
    serve = savedmodel.load_signature(toy_base)
    assert serve.path == toy_base / "2" and serve.name == "serving_default"
    assert sorted(serve.inputs) == ["gestation_weeks", "is_male", "mother_age", "plurality"]
    rows = [INSTANCE, {**INSTANCE, "is_male": False, "plurality": "Twins(2)"}]
    out = savedmodel.predict_rows(serve, rows)
    assert [sorted(o) for o in out] == [["weight"], ["weight"]]
    for row, answer in zip(rows, out, strict=True):  # a one-element list per row
        expected = toy_weight({**row, "is_male": str(row["is_male"])}, scale=2.0)
        assert answer["weight"] == [pytest.approx(expected, rel=1e-6)]
    columns = savedmodel.predict_columns(serve, rows)
    assert columns["weight"].shape == (2, 1)
    assert savedmodel.predict_rows(serve, []) == []


def test_keyed_signature_passes_strings_back_decoded(toy_base):
    keyed = savedmodel.load_signature(toy_base / "1", "keyed")
    out = savedmodel.predict_rows(keyed, [{**INSTANCE, "key": "b1"}, {**INSTANCE, "key": "b2"}])
    assert [o["key"] for o in out] == ["b1", "b2"]
    assert out[0]["weight"] == pytest.approx(toy_weight(INSTANCE), rel=1e-6)


def test_bad_signature_name_and_missing_input_are_named(toy_base):
    with pytest.raises(KeyError, match=r"no signature 'nope'.*'keyed', 'serving_default'"):
        savedmodel.load_signature(toy_base, "nope")
    serve = savedmodel.load_signature(toy_base)
    partial = {k: v for k, v in INSTANCE.items() if k != "plurality"}
    with pytest.raises(KeyError, match=r"row 1 has no 'plurality'"):
        savedmodel.predict_rows(serve, [INSTANCE, partial])
