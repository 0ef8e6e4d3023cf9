"""Schema and drift checks for tabular data, in TensorFlow Data Validation's terms.

TFDV itself does not install beside this stack (its wheels need glibc >= 2.39), so this package
answers the same questions plainly with pandas, numpy and scipy, and keeps TFDV's workflow and
names. TFDV's call, then ours:

===============================================  ==================================================
``tfdv.generate_statistics_from_dataframe(df)``  :func:`statistics` ``(df)``
``tfdv.infer_schema(stats)``                     :func:`infer_schema` ``(df)``
``tfdv.display_schema(schema)``                  ``schema.to_frame()`` (or just ``schema``)
``tfdv.get_feature(schema, "f")``                ``schema["f"]``
``...presence.min_fraction = 0.9``               ``schema["f"].min_fraction = 0.9``
``...type = ...`` (a type edit)                  ``schema["f"].type = "float"``
``tfdv.get_domain(schema, "f").value.append(v)``  ``schema["f"].domain.append(v)``
``tfdv.set_domain(schema, "f", FloatDomain(..))``  ``schema["f"].min, schema["f"].max = lo, hi``
``...distribution_constraints.min_domain_mass``  ``schema["f"].min_domain_mass = 0.9``
``schema.default_environment.append("SERVING")``  ``schema.environments.append("SERVING")``
``...not_in_environment.append("SERVING")``      ``schema["f"].not_in_environment.append("SERVING")``
``...skew_comparator.infinity_norm.threshold``   ``schema["f"].skew_threshold = 0.01``
``...drift_comparator.jensen_shannon_divergence``  ``schema["f"].drift_threshold = 0.01``
``tfdv.write_schema_text(schema, path)``         ``schema.freeze(path)``
``tfdv.load_schema_text(path)``                  ``Schema.load(path)``
``tfdv.validate_statistics(stats, schema,        :func:`validate` ``(df, schema, environment=...,
environment, previous_statistics,                previous=..., serving=...)``
serving_statistics)``
``tfdv.display_anomalies(anomalies)``            ``anomalies`` (a table)
``tfdv.visualize_statistics(lhs, rhs)``          :func:`visualize_statistics` ``(lhs, rhs)``
===============================================  ==================================================

The checks answer the course's questions:

==========================================  ===============================================
question                                    anomaly
==========================================  ===============================================
are all expected features present?          ``missing feature`` (in the given environment)
any unexpected features?                    ``unexpected feature``
the expected types?                         ``wrong type``
the expected fraction holding each feature  ``presence below expected``
the expected number of values?              ``wrong number of values``
values inside the domain / range?           ``unexpected values`` / ``out of range``
is the new distribution close enough?       ``distribution skew (L-infinity)`` /
                                            ``distribution skew (Jensen-Shannon)``
training and serving alike? (comparator)    ``skew (L-infinity)`` / ``skew (Jensen-Shannon)``
this span like the previous? (comparator)   ``drift (L-infinity)`` / ``drift (Jensen-Shannon)``
==========================================  ===============================================

Distances follow TFDV's definitions (:mod:`prodml.validation.distances`): L-infinity for
categorical features, Jensen-Shannon divergence (base 2) for numeric ones, both with scipy. The
baseline histogram has :data:`HISTOGRAM_BUCKETS` equal-width buckets between its min and max
(TFDV's default is 10); new values are counted in those buckets plus one below and one above
the baseline's range. :func:`jensen_shannon` compares two arbitrary histograms the way TFDV
aligns them: on the union of their boundaries, counts spread uniformly inside a bucket.
Thresholds are per feature with defaults in :data:`DEFAULT_THRESHOLDS`; like TFDV's
comparators, a distance strictly above its threshold is an anomaly.
"""

from prodml.validation.checks import DEFAULT_THRESHOLDS, Anomalies, distance, validate
from prodml.validation.distances import HISTOGRAM_BUCKETS, jensen_shannon, l_infinity
from prodml.validation.schema import SERVING, TRAINING, Feature, Schema, infer_schema
from prodml.validation.stats import statistics
from prodml.validation.visualize import visualize_statistics

__all__ = [
    "DEFAULT_THRESHOLDS",
    "HISTOGRAM_BUCKETS",
    "SERVING",
    "TRAINING",
    "Anomalies",
    "Feature",
    "Schema",
    "distance",
    "infer_schema",
    "jensen_shannon",
    "l_infinity",
    "statistics",
    "validate",
    "visualize_statistics",
]
