"""Model safeness: may this candidate face live traffic without crashing or answering nonsense?

A quality gate asks whether a candidate predicts *better*; a safeness gate asks whether it is
safe to serve at all. The candidate is loaded in a **fresh process**, the way the prediction
service loads it (``prodml serve`` on 127.0.0.1, nothing of the trainer's memory in it), and
sent probe requests over HTTP:

- ``valid``: the course's instance, each number at the ends of its plausible range, every
  category value in one batch; each must be answered with finite numbers;
- ``extreme``: numbers far outside the range (0, negative, 1e6, float32's largest, infinity);
- ``missing``: empty strings, ``NaN`` (what ``json.dumps`` writes for a missing pandas number),
  ``null``, a feature left out;
- ``malformed``: numbers as strings, strings as numbers, booleans, lists, an extra feature, an
  unknown category, an empty batch.

An ``extreme``, ``missing`` or ``malformed`` probe may be refused with a 4xx (a clean error that
names the problem) or answered with finite numbers. The candidate is **blocked** when the
process dies or answers 5xx or hangs (``crash``), when an answer holds NaN or infinity
(``non-finite``) or not one prediction per instance (``wrong number of answers``), when a valid
input is refused (``refused a valid input``), or when its
signatures differ from the deployed version's (or, with nothing deployed, from the contract's):
clients written against the deployed signature would break. Answers outside the label's
plausible range are reported (``plausible``), not blocked: a finite but absurd answer to an
absurd input is what the input checks at the boundary are for.

    report = safeness.check(candidate_export, reference=deployed_export)
    report.passed, report.reasons, report.probes  # a DataFrame, one row per probe
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from prodml.babyweight import COURSE_INSTANCE, GENDERS, PLURALITIES, RANGES
from prodml.babyweight.contract import NUMERIC_FEATURES, STRING_FEATURES

KINDS = ("valid", "extreme", "missing", "malformed")
#: outcomes that block the candidate
UNSAFE = ("crash", "non-finite", "wrong number of answers", "refused a valid input")
#: birth weights a model may answer for a valid input without raising an eyebrow (lb)
PLAUSIBLE_WEIGHT = (0.5, 20.0)
#: the signature the contract implies, used when nothing is deployed yet to compare against
CONTRACT_SIGNATURE = {
    "serving_default": {
        "inputs": {
            **{f: ("DT_STRING", (-1,)) for f in STRING_FEATURES},
            **{f: ("DT_FLOAT", (-1,)) for f in NUMERIC_FEATURES},
        },
        "outputs": {"weight": ("DT_FLOAT", (-1, 1))},
    }
}


@dataclass(frozen=True)
class Probe:
    """One probe request: a name, its kind (one of :data:`KINDS`) and its instances."""

    name: str
    kind: str
    instances: list = field(default_factory=list)


_LEFT_OUT = object()
#: a value outside each string feature's vocabulary
_UNKNOWN = {"is_male": "Maybe", "plurality": "Sextuplets(6)"}


def _with(**changes) -> dict:
    """The course's instance with some features changed (``_LEFT_OUT``: the feature left out)."""
    instance = {**COURSE_INSTANCE, **changes}
    return {k: v for k, v in instance.items() if v is not _LEFT_OUT}


def probes() -> list[Probe]:
    """The probe set, built from the feature contract (features, ranges, category values)."""
    found = [Probe("the course's instance", "valid", [dict(COURSE_INSTANCE)])]
    for name in NUMERIC_FEATURES:
        low, high = RANGES[name]
        found.append(Probe(f"{name} = {low} and {high}", "valid", [_with(**{name: float(v)}) for v in (low, high)]))  # fmt: skip
    every = [_with(is_male=g, plurality=p) for g in GENDERS for p in PLURALITIES]
    found.append(Probe("every category value, one batch", "valid", every))
    for name in NUMERIC_FEATURES:
        for value in (0.0, -1.0, 1e6, 3.4e38, math.inf):
            found.append(Probe(f"{name} = {value:g}", "extreme", [_with(**{name: value})]))
        found.append(Probe(f"{name} = NaN", "missing", [_with(**{name: math.nan})]))
        found.append(Probe(f"{name} = null", "missing", [_with(**{name: None})]))
        found.append(Probe(f"{name} left out", "missing", [_with(**{name: _LEFT_OUT})]))
        found.append(Probe(f"{name} as a string", "malformed", [_with(**{name: "twenty"})]))
    for name in STRING_FEATURES:
        found.append(Probe(f"{name} = ''", "missing", [_with(**{name: ""})]))
        found.append(
            Probe(f"{name} unknown", "malformed", [_with(**{name: _UNKNOWN.get(name, "?")})])
        )
        found.append(Probe(f"{name} as a number", "malformed", [_with(**{name: 1})]))
        found.append(Probe(f"{name} as a boolean", "malformed", [_with(**{name: True})]))
    found += [
        Probe("a list for a number", "malformed", [_with(mother_age=[26.0, 27.0])]),
        Probe("an extra feature", "malformed", [_with(race="x")]),
        Probe("an empty batch", "malformed", []),
    ]
    return found


def _values(payload) -> list[float]:
    """Every number in a predictions payload."""
    if isinstance(payload, dict):
        return [v for x in payload.values() for v in _values(x)]
    if isinstance(payload, list):
        return [v for x in payload for v in _values(x)]
    return [float(payload)] if isinstance(payload, int | float) else []


def classify(probe: Probe, status: int | None, body: str) -> tuple[str, str, list[float]]:
    """(outcome, detail, numbers answered) of one probe's answer; ``status`` None: no answer."""
    if status is None or status >= 500:
        return "crash", body[:200], []
    if status >= 400:
        message = body[:200]
        return ("refused a valid input" if probe.kind == "valid" else "refused"), message, []
    predictions = json.loads(body).get("predictions")
    numbers = _values(predictions)
    if not isinstance(predictions, list) or len(predictions) != len(probe.instances):
        count = len(predictions) if isinstance(predictions, list) else 0
        return "wrong number of answers", f"{count} for {len(probe.instances)} instances", numbers
    if not all(math.isfinite(v) for v in numbers):
        return "non-finite", f"answered {numbers[:6]}", numbers
    return "answered", "", numbers


def _signature(metadata: dict) -> dict:
    """TF Serving's metadata JSON -> {signature: {inputs|outputs: {name: (dtype, shape)}}}."""
    defs = metadata["metadata"]["signature_def"]["signature_def"]

    def spec(t):
        return t["dtype"], tuple(int(d["size"]) for d in t["tensor_shape"]["dim"])

    return {
        name: {side: {k: spec(t) for k, t in d[side].items()} for side in ("inputs", "outputs")}
        for name, d in defs.items()
    }


def compare_signatures(candidate: dict, reference: dict) -> list[str]:
    """What a client of ``reference`` would find broken in ``candidate`` (both as
    ``{signature: {"inputs"|"outputs": {name: (dtype, shape)}}}``): a signature, input or
    output gone or changed, or an input the clients do not send. A new output breaks nobody."""
    problems = []
    for name, ref in reference.items():
        if name not in candidate:
            problems.append(f"signature {name!r} is gone")
            continue
        for side in ("inputs", "outputs"):
            want, got = ref[side], candidate[name][side]
            one = side[:-1]
            problems += [f"{name}: {one} {k!r} is gone" for k in sorted(want.keys() - got.keys())]
            if side == "inputs":
                new = sorted(got.keys() - want.keys())
                problems += [f"{name}: new input {k!r}, which clients do not send" for k in new]
            for k in sorted(want.keys() & got.keys()):
                if want[k] != got[k]:
                    problems.append(f"{name}: {one} {k!r} was {want[k]}, now {got[k]}")
    return problems


@dataclass
class Report:
    """The safeness check's findings: ``probes`` (a DataFrame: probe, kind, instances, status,
    outcome, detail, the first number answered, plausible), the signature problems, and a load error if the candidate
    never came up. ``passed`` and ``reasons`` give the verdict."""

    probes: object  # pandas.DataFrame
    signature_problems: list[str]
    load_error: str | None = None
    seconds: float = 0.0

    @property
    def reasons(self) -> list[str]:
        """Why the candidate is blocked, one line per problem (empty: it may be served)."""
        found = [f"the candidate did not load: {self.load_error}"] if self.load_error else []
        unsafe = self.probes[self.probes["outcome"].isin(UNSAFE)]
        for row in unsafe.itertuples():
            found.append(f"{row.outcome}: {row.probe} ({row.kind}) {row.detail}".rstrip())
        return found + [f"signature: {problem}" for problem in self.signature_problems]

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        """One paragraph: the probes' outcomes counted, the verdict, the reasons."""
        counts = self.probes["outcome"].value_counts().to_dict() if len(self.probes) else {}
        verdict = "safe to serve" if self.passed else "BLOCKED"
        lines = [
            f"safeness: {len(self.probes)} probes {counts} in {self.seconds:.1f} s -> {verdict}"
        ]
        return "\n".join(lines + [f"  {reason}" for reason in self.reasons])


def _post(url: str, probe: Probe, timeout: float) -> tuple[int | None, str]:
    import requests

    body = json.dumps({"instances": probe.instances}, allow_nan=True)
    try:
        answer = requests.post(url, data=body, timeout=timeout, headers={"Content-Type": "application/json"})  # fmt: skip
    except requests.RequestException as exc:
        return None, f"no answer: {type(exc).__name__}"
    return answer.status_code, answer.text


def _plausible(outcome: str, numbers: list[float]) -> bool | None:
    if outcome != "answered" or not numbers:
        return None
    low, high = PLAUSIBLE_WEIGHT
    return all(low <= v <= high for v in numbers)


def check(
    candidate: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    probe_set: list[Probe] | None = None,
    timeout: float = 30.0,
) -> Report:
    """Load ``candidate`` (an export folder) in a fresh ``prodml serve`` process, send it every
    probe (default :func:`probes`), and compare its signatures with ``reference``'s (the deployed
    export) or, without one, with :data:`CONTRACT_SIGNATURE`. ``timeout``: seconds per probe."""
    import time

    import pandas as pd
    import requests

    from prodml import serving

    started = time.perf_counter()
    columns = ["probe", "kind", "instances", "status", "outcome", "detail", "answer", "plausible"]
    models = {"candidate": candidate, **({"reference": reference} if reference else {})}
    try:
        server = serving.start(models, port=0)
    except (RuntimeError, TimeoutError) as exc:
        why = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        return Report(pd.DataFrame(columns=columns), [], why, time.perf_counter() - started)
    rows = []
    with server:
        meta = {m: requests.get(f"{server.url}/v1/models/{m}/metadata", timeout=timeout).json() for m in models}  # fmt: skip
        want = _signature(meta["reference"]) if reference else CONTRACT_SIGNATURE
        problems = compare_signatures(_signature(meta["candidate"]), want)
        for probe in probe_set or probes():
            if server.process.poll() is not None:
                status, body = None, f"the server had died (exit {server.process.returncode})"
            else:
                status, body = _post(f"{server.url}/v1/models/candidate:predict", probe, timeout)
                if status is None and server.process.poll() is not None:
                    body = f"the server died (exit {server.process.returncode})"
            outcome, detail, numbers = classify(probe, status, body)
            row = (probe.name, probe.kind, len(probe.instances), status, outcome, detail)
            rows.append([*row, numbers[0] if numbers else None, _plausible(outcome, numbers)])
    return Report(
        pd.DataFrame(rows, columns=columns), problems, None, time.perf_counter() - started
    )


__all__ = [
    "CONTRACT_SIGNATURE",
    "KINDS",
    "PLAUSIBLE_WEIGHT",
    "UNSAFE",
    "Probe",
    "Report",
    "check",
    "classify",
    "compare_signatures",
    "probes",
]
