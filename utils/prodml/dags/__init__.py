"""The workbook's Airflow DAG files (Cloud Composer would run the same files).

Airflow reads this folder as its DAGs folder (``prodml.orchestration.DAGS_FOLDER``); the files
ship with the package so that they are there on Colab too.
"""
