"""prodml: the helper package of the Production ML Systems workbook, in three tiers.

1. Plumbing the lessons do not need to see: which backend answers (``config``, ``warehouse``,
   ``storage``), servers (``serving``, ``orchestration``), SavedModels on disk
   (``savedmodel``), and the workbook's own tooling (``workbook``, ``grading``, ``cli``).
2. A course library the lessons call and explain: the stand-in data sets (``datasets``), the
   course's model (``babyweight``), record contracts (``contracts``), Beam pipelines for any
   contract (``pipelines``), validation (``validation``), the course's DAGs (``dags``).
3. Never the lesson itself: what a section or a lab teaches is code in its cells.

docs/ARCHITECTURE.md says which module sits where and what each may import.
"""

__version__ = "0.1.0"
