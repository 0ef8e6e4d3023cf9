"""Parse a DAG file the way Airflow's scheduler does (a ``DagBag``) and print its task graph.

    python parse_composer_dag.py DAG_FILE DAG_ID

Prints one JSON object: the import errors (file -> last line of the error) and, per task, its
id, operator class and downstream task ids. It runs in a process of its own because importing
the DAG imports its operators (the Google provider takes a while), which the notebook's kernel
does not need; the notebook starts it early and reads its answer when it needs it.
"""

from __future__ import annotations

import json
import sys


def main(path: str, dag_id: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)
    dag = bag.dags.get(dag_id)
    tasks = [] if dag is None else dag.tasks
    print(
        json.dumps(
            {
                "errors": {k: v.splitlines()[-1] for k, v in bag.import_errors.items()},
                "tasks": [
                    {
                        "task_id": t.task_id,
                        "operator": type(t).__name__,
                        "downstream": sorted(t.downstream_task_ids),
                    }
                    for t in tasks
                ],
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
