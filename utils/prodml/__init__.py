"""prodml: the plumbing behind the Production ML Systems workbook.

Notebooks teach the real libraries (BigQuery's client, Keras, Apache Beam, REST calls, Airflow);
this package only decides which backend answers, where files go, makes synthetic stand-ins for
public data sets, starts and stops local servers, and carries the workbook's own tooling.
"""

__version__ = "0.1.0"
