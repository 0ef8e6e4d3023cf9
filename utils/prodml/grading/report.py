"""Grading step: the report. A :class:`Report` of :class:`Check` s, and its forms: a table for
the terminal, JSON, JUnit XML and GitHub Classroom's runner results."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["STATUSES", "Check", "GradeError", "Report", "classroom", "junit", "table"]

STATUSES = ("passed", "failed", "error", "blocked", "not run")


class GradeError(ValueError):
    """Grading cannot start (no solution, no checks, an unreadable notebook)."""


@dataclass
class Check:
    """One graded check (a ``test`` cell): its points and, once graded, status and reason."""

    id: str
    points_possible: float
    points: float = 0.0
    status: str = "not run"  # one of STATUSES
    reason: str = ""

    def passed(self) -> None:
        """Mark it passed, with full points."""
        self.status, self.points, self.reason = "passed", self.points_possible, ""


@dataclass
class Report:
    """A graded notebook: its checks, the root causes (each once, with its first error), why
    execution stopped early (if it did) and how long grading took."""

    notebook: str
    solution: str
    checks: list[Check]
    root_causes: list[str] = field(default_factory=list)
    stopped: str = ""
    seconds: float = 0.0

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def points_possible(self) -> float:
        return sum(c.points_possible for c in self.checks)

    @property
    def full_marks(self) -> bool:
        return all(c.status == "passed" for c in self.checks)

    def not_reached(self, reason: str) -> None:
        """Every check not graded yet scores 0 with ``reason`` (or "not reached: <why>")."""
        for check in self.checks:
            if check.status == "not run" and not check.reason:
                check.reason = reason or (
                    f"not reached: {self.stopped}" if self.stopped else "not run"
                )

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook,
            "solution": self.solution,
            "points": self.points,
            "points_possible": self.points_possible,
            "full_marks": self.full_marks,
            "stopped": self.stopped or None,
            "seconds": round(self.seconds, 2),
            "checks": [asdict(c) for c in self.checks],
            "root_causes": self.root_causes,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        checks = [Check(**c) for c in data["checks"]]
        return cls(
            data["notebook"],
            data["solution"],
            checks,
            data.get("root_causes", []),
            data.get("stopped") or "",
            data.get("seconds", 0.0),
        )


def table(report: Report) -> str:
    """The report as a plain-text table, with the total, why it stopped and the root causes."""
    rows = [("check", "points", "status", "reason")]
    for c in report.checks:
        rows.append((c.id, f"{c.points:g}/{c.points_possible:g}", c.status, c.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    lines.append(f"total: {report.points:g}/{report.points_possible:g} points")
    if report.stopped:
        lines.append(f"stopped early: {report.stopped}")
    lines.extend(f"root cause: {cause}" for cause in report.root_causes)
    return "\n".join(lines)


def junit(report: Report) -> str:
    """The report as JUnit XML: one test case per check, points as properties."""
    failures = sum(c.status == "failed" for c in report.checks)
    errors = len(report.checks) - failures - sum(c.status == "passed" for c in report.checks)
    name = Path(report.notebook).stem
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(report.checks)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{report.seconds:.2f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="points", value=f"{report.points:g}")
    ET.SubElement(props, "property", name="points_possible", value=f"{report.points_possible:g}")
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=name, name=c.id)
        ET.SubElement(case, "properties").append(
            ET.Element("property", name="points", value=f"{c.points:g}/{c.points_possible:g}")
        )
        if c.status == "failed":
            ET.SubElement(case, "failure", message=c.reason).text = c.reason
        elif c.status != "passed":
            ET.SubElement(case, "error", message=f"{c.status}: {c.reason}").text = c.reason
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def classroom(report: Report) -> dict:
    """The report in GitHub Classroom's runner-results shape (what its grading reporter reads,
    base64-encoded, from ``<RUNNER>_RESULTS``): overall status, max score, one test per check."""

    def status(check: Check) -> str:
        return {"passed": "pass", "failed": "fail"}.get(check.status, "error")

    return {
        "version": 1,
        "status": "pass" if report.full_marks else "fail",
        "max_score": report.points_possible,
        "tests": [
            {
                "name": c.id,
                "status": status(c),
                "score": c.points,
                "message": c.reason or None,
                "test_code": f"check {c.id} of {Path(report.solution).name}",
                "filename": Path(report.notebook).name,
                "line_no": 0,
                "execution_time": "",
            }
            for c in report.checks
        ],
    }
