"""Benchmarks: methods × seeds on one protocol, with reports."""

from keras_introspect.benchmark.protocols import PROTOCOLS, Protocol, get
from keras_introspect.benchmark.report import markdown_table, update_doc, write_report
from keras_introspect.benchmark.runner import StepTimer, provenance, run_one, train_teacher

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "StepTimer",
    "get",
    "markdown_table",
    "provenance",
    "run_one",
    "train_teacher",
    "update_doc",
    "write_report",
]
