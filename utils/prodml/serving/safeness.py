"""Model safeness: may this candidate face live traffic without crashing or answering nonsense?

A quality gate asks whether a candidate predicts *better*; a safeness gate asks whether it is
safe to serve at all. :func:`check` loads the candidate in a **fresh process**, the way the
prediction service loads it (``prodml serve`` on 127.0.0.1, nothing of the trainer's memory in
it), and sends it probe requests over HTTP. The gate names no model: the probes, the signature
clients rely on and the plausible answers come from the model's contract
(:mod:`prodml.babyweight.probes` for babyweight). Each probe has a kind:

- ``valid``: inputs the contract accepts; each must be answered with finite numbers;
- ``extreme``: numbers far outside the plausible range;
- ``missing``: a value left empty, NaN, null or out;
- ``malformed``: a value of the wrong type, an unknown category, an extra feature, no instances.

An ``extreme``, ``missing`` or ``malformed`` probe may be refused with a 4xx (a clean error that
names the problem) or answered with finite numbers. The candidate is **blocked** when the
process dies or answers 5xx or hangs (``crash``), when an answer holds NaN or infinity
(``non-finite``) or not one prediction per instance (``wrong number of answers``), when a valid
input is refused (``refused a valid input``), or when its signatures differ from the deployed
version's (or, with nothing deployed, from the contract's): clients written against the deployed
signature would break. Answers outside the plausible range are reported (``plausible``), not
blocked: a finite but absurd answer to an absurd input is what the input checks at the boundary
are for.

    report = safeness.check(candidate_export, probes.probe_set(), reference=deployed_export,
                            signature=probes.SIGNATURE, plausible=probes.PLAUSIBLE_WEIGHT)
    report.passed, report.reasons, report.probes  # a DataFrame, one row per probe
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import NamedTuple

from prodml import serving

KINDS = ("valid", "extreme", "missing", "malformed")
#: outcomes that block the candidate
UNSAFE = ("crash", "non-finite", "wrong number of answers", "refused a valid input")


class Probe(NamedTuple):
    """One probe request: a name, its kind (one of :data:`KINDS`) and its instances. A plain
    ``(name, kind, instances)`` triple is one too (a model's contract builds those)."""

    name: str
    kind: str
    instances: list


def _probes(given) -> list[Probe]:
    found = [Probe(*p) for p in given]
    if not found:
        raise ValueError("no probes given: a gate that sends nothing passes everything")
    bad = sorted({p.kind for p in found} - set(KINDS))
    if bad:
        raise ValueError(f"probe kind(s) {bad} unknown: each probe's kind is one of {KINDS}")
    if not any(p.kind == "valid" for p in found):
        raise ValueError("no valid probe: the gate must see the candidate answer a valid input")
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


def signature_of(metadata: dict) -> dict:
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


def _plausible(outcome: str, numbers: list[float], plausible) -> bool | None:
    if plausible is None or outcome != "answered" or not numbers:
        return None
    low, high = plausible
    return all(low <= v <= high for v in numbers)


def _send_all(server, probes: list[Probe], plausible, timeout: float) -> list[list]:
    """Each probe to the candidate, one row per probe; a dead server is reported, not raised."""
    rows = []
    for probe in probes:
        if server.process.poll() is not None:
            status, body = None, f"the server had died (exit {server.process.returncode})"
        else:
            status, body = _post(f"{server.url}/v1/models/candidate:predict", probe, timeout)
            if status is None and server.process.poll() is not None:
                body = f"the server died (exit {server.process.returncode})"
        outcome, detail, numbers = classify(probe, status, body)
        row = [probe.name, probe.kind, len(probe.instances), status, outcome, detail]
        rows.append(
            [*row, numbers[0] if numbers else None, _plausible(outcome, numbers, plausible)]
        )
    return rows


def check(
    candidate: str | os.PathLike,
    probes,
    *,
    reference: str | os.PathLike | None = None,
    signature: dict | None = None,
    plausible: tuple[float, float] | None = None,
    timeout: float = 30.0,
) -> Report:
    """Load ``candidate`` (an export folder) in a fresh ``prodml serve`` process, send it every
    probe (:class:`Probe` s or ``(name, kind, instances)`` triples), and compare its signatures
    with ``reference``'s (the deployed export) or, with nothing deployed, with ``signature``
    (the one the contract implies, as :func:`signature_of` returns). ``plausible``: the
    ``(low, high)`` of answers reported as plausible. ``timeout``: seconds per probe."""
    import time

    import pandas as pd
    import requests

    probes = _probes(probes)
    if reference is None and signature is None:
        raise ValueError("give the deployed export (reference=) or, with nothing deployed, "
                         "the signature clients are written against (signature=)")  # fmt: skip
    started = time.perf_counter()
    columns = ["probe", "kind", "instances", "status", "outcome", "detail", "answer", "plausible"]
    models = {"candidate": candidate, **({"reference": reference} if reference else {})}
    try:
        server = serving.start(models, port=0)
    except (RuntimeError, TimeoutError) as exc:
        why = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        return Report(pd.DataFrame(columns=columns), [], why, time.perf_counter() - started)
    with server:
        meta = {m: requests.get(f"{server.url}/v1/models/{m}/metadata", timeout=timeout).json() for m in models}  # fmt: skip
        want = signature_of(meta["reference"]) if reference else signature
        problems = compare_signatures(signature_of(meta["candidate"]), want)
        rows = _send_all(server, probes, plausible, timeout)
    return Report(
        pd.DataFrame(rows, columns=columns), problems, None, time.perf_counter() - started
    )


__all__ = [
    "KINDS",
    "UNSAFE",
    "Probe",
    "Report",
    "check",
    "classify",
    "compare_signatures",
    "signature_of",
]
