"""Benchmarks: methods × seeds on one protocol, with reports."""

from keras_introspect.benchmark.protocols import PROTOCOLS, Protocol, get
from keras_introspect.benchmark.report import markdown_table, update_doc, write_report
from keras_introspect.benchmark.runner import (StepTimer, held_out_labels, provenance, run_one, test_probabilities,
                                               train_teacher)
from keras_introspect.benchmark.sweep import backup_dir, ensure_teacher, finished_runs, run_sweep

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "StepTimer",
    "backup_dir",
    "ensure_teacher",
    "finished_runs",
    "get",
    "held_out_labels",
    "markdown_table",
    "provenance",
    "run_one",
    "run_sweep",
    "test_probabilities",
    "train_teacher",
    "update_doc",
    "write_report",
]
