"""prodml serve on the real babyweight export (the trainer's --smoke run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prodml import serving
from prodml.babyweight.contract import COURSE_INSTANCE
from support import google_api

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_serves_the_babyweight_smoke_export(babyweight_export):
    # babyweight_export is DIR/export/<version>; its parent is the TF Serving-style base folder
    with serving.start({"babyweight": Path(babyweight_export).parent}) as server:
        meta = requests.get(f"{server.url}/v1/models/babyweight/metadata", timeout=30).json()
        sigs = meta["metadata"]["signature_def"]["signature_def"]
        assert sorted(sigs["serving_default"]["inputs"]) == [
            "gestation_weeks",
            "is_male",
            "mother_age",
            "plurality",
        ]
        assert sigs["keyed"]["outputs"]["key"]["dtype"] == "DT_STRING"

        tfs = requests.post(
            f"{server.url}/v1/models/babyweight:predict",
            json={"instances": [COURSE_INSTANCE]},
            timeout=30,
        ).json()
        # the course model's shape [None, 1]: a one-element list per instance
        assert len(tfs["predictions"]) == 1 and len(tfs["predictions"][0]) == 1
        weight = tfs["predictions"][0][0]
        assert 4.0 < weight < 11.0  # pounds, even after a one-epoch smoke run

        keyed = {"signature_name": "keyed", "instances": [{**COURSE_INSTANCE, "key": "b1"}]}
        out_keyed = requests.post(
            f"{server.url}/v1/models/babyweight:predict", json=keyed, timeout=30
        ).json()
        assert out_keyed["predictions"][0]["key"] == "b1"
        assert out_keyed["predictions"][0]["weight"] == [pytest.approx(weight, rel=1e-5)]

        api = google_api("ml", "v1", server.url)
        prediction = (
            api.projects()
            .predict(
                body={"instances": [COURSE_INSTANCE]},
                name="projects/local-project/models/babyweight",
            )
            .execute()
        )
        # the course's client code, unchanged: response['predictions'][0]['weight'][0]
        assert prediction["predictions"][0]["weight"][0] == pytest.approx(weight, rel=1e-5)
