"""The results layer: what a sweep leaves behind, and the words for it.

    store.py    the Parquet store of one sweep (trials, epochs, runs); ``flatten`` of a config
    ids.py      content addresses: ``trial_id``, ``arm_id`` (the config, seed aside), ``plan_id``
    status.py   ``Status``: completed, failed, diverged, pruned, missing, running, lost
    rows.py     one trial's row: ``Outcome`` + provenance (host, hardware, git commit) -> ``trial_row``
    paper.py    the paper's tables a sweep can be compared with (``PAPER_TABLES``)

Above ``prernn`` (it reads the trial config's schema), below ``launch`` and ``analysis``,
which both read and write through it and never import each other.
"""

from .ids import arm_id, plan_id, trial_id
from .paper import PAPER_TABLES
from .rows import Outcome, git_commit, hardware, trial_row
from .status import BAD, GOOD, Status
from .store import NoStore, Store, flatten, is_store

__all__ = ["BAD", "GOOD", "PAPER_TABLES", "NoStore", "Outcome", "Status", "Store", "arm_id", "flatten", "git_commit",
           "hardware", "is_store", "plan_id", "trial_id", "trial_row"]
