"""Stands in for a kernel in a throwaway virtual environment (``tests/test_colab.py``).

    python kernel_probe.py WHEELS imported|fresh      pip replaces colabprobe 1.0 with 2.0
    python kernel_probe.py WHEELS separate CHECKOUT   ... in a separate environment in CHECKOUT

Prints one JSON line of what happened; the restart notice, if any, exits with its message.
"""

import json
import sys
from pathlib import Path

from prodml import environments


def main() -> None:
    wheels, mode = sys.argv[1:3]
    find = ["--no-index", "--find-links", wheels, "colabprobe==2.0"]
    if mode == "separate":
        checkout = sys.argv[3]
        python = environments.make_separate(Path(checkout))
        shadows = environments.pip_install(find, python=python)
        print(
            json.dumps(
                {
                    "python": python,
                    "shadows": shadows,
                    "command": environments.command("colabprobe", root=checkout),
                    "python_for": environments.python_for("colabprobe", root=checkout),
                }
            )
        )
        return
    if mode == "imported":
        import colabprobe  # noqa: F401  (the session imported it before the install)
    replaced = environments.pip_install(find)
    try:
        environments.report(replaced, {})  # as the setup cell does, right after pip
    finally:
        import colabprobe  # the same process: the new version, unless the old was imported

        print(json.dumps({"replaced": replaced, "version": colabprobe.__version__}), flush=True)


if __name__ == "__main__":
    main()
