"""The ``prodml`` command: the workbook's tooling and the local prediction service.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``main(args) -> int``. Modules are imported only when their subcommand runs, so ``prodml todo``
does not pay for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

COMMANDS = {
    "run": ("prodml.workbook.run", "execute notebooks headlessly with papermill, in course order"),
    "release": (
        "prodml.workbook.release",
        "generate labs/ from solutions/ (--check: fail if stale)",
    ),
    "todo": ("prodml.workbook.todo", "list the TODOs left in a lab"),
    "grade": (
        "prodml.grading.cli",
        "grade a lab notebook against its solution, or a class's submissions (--lab)",
    ),
    "serve": (
        "prodml.serving.server",
        "serve SavedModels behind the TF Serving and Google Cloud prediction REST APIs",
    ),
}

LISTINGS = ("todo", "release")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="prodml", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
            sp.set_defaults(_main=module.main)
    args = parser.parse_args(argv)
    if args.command in LISTINGS and hasattr(signal, "SIGPIPE"):
        # `prodml todo labs | head` ends quietly, like other command-line tools. Never for the
        # server: with the default SIGPIPE a client that hangs up would kill the process.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return int(args._main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
