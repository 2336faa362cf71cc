"""Resumable sweeps: every (configuration, seed) of one protocol once, across interruptions.

A finished run is a record in a JSON-lines file and is skipped when the sweep is run again; an
unfinished one resumes from the state it saved after its last complete epoch. A run's state is
removed only once its record is written, so an interruption at any moment loses at most the epoch
in progress. `keras-introspect benchmark` and `benchmarks/formulation_sweep.py` both run here.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time

from keras_introspect import recipes
from keras_introspect.benchmark import report, runner
from keras_introspect.errors import InputError
from keras_introspect.paths import write_json


def run_key(config, seed, train_size, protocol):
    """What makes two runs the same run: the configuration, the seed and the recipe's shape.

    The dataset's location is not part of it (a folder moves between machines); one results file
    holds one protocol's runs on one dataset (`finished_runs` checks).
    """
    return (config, seed, train_size, protocol.epochs, protocol.augment, protocol.arch)


def record_key(record):
    """`run_key` of a finished run's record."""
    return (record["config"], record["seed"], record["train_size"], record["epochs"], record["augment"],
            record["arch"])


def dataset_name(dataset):
    """A dataset's name: the TFDS name, or the folder's name for an image folder wherever it lies."""
    return os.path.basename(os.path.normpath(str(dataset)))


def finished_runs(path, protocol):
    """Keys of the runs `path` already holds (an empty set when it does not exist yet).

    Raises:
        InputError: the file holds another protocol's or another dataset's runs; a sweep appending
            to it would mix two recipes in one table.
    """
    if not os.path.exists(path):
        return set()
    records = report.load(path)
    mine = {"protocol": protocol.name, "dataset": dataset_name(protocol.dataset)}
    for record in records:
        theirs = {"protocol": record.get("protocol"),
                  "dataset": record.get("dataset") and dataset_name(record["dataset"])}
        # the earliest records of a sweep predate these two fields
        other = [f"{field} {record[field]!r}" for field in mine if theirs[field] not in (None, mine[field])]
        if other:
            raise InputError(f"{path} holds runs of {' and '.join(other)}, not {protocol.name!r} on "
                             f"{dataset_name(protocol.dataset)!r}; give this sweep another results file")
    return {record_key(r) for r in records}


def backup_dir(root, protocol, name, seed=None):
    """Where an unfinished run keeps its per-epoch state: stable across restarts, distinct per run.

    The digest covers the whole recipe, so a run with other settings never resumes this one's state.

    Args:
        root: the directory of all backups.
        protocol: the run's `Protocol`.
        name: the configuration (or "teacher").
        seed: the run's seed (None for the teacher, which has one).
    """
    recipe = json.dumps(dataclasses.asdict(protocol), sort_keys=True, default=str)
    digest = hashlib.sha1(recipe.encode()).hexdigest()[:10]
    run = name if seed is None else f"{name}-seed{seed}"
    return os.path.join(root, f"{protocol.name}-{run}-{digest}")


def ensure_teacher(arrays, protocol, path, backup_root, verbose=2):
    """Train the protocol's teacher into `path` unless it exists; its history goes to `teacher.json` beside it.

    Returns:
        `path`.
    """
    if os.path.exists(path):
        return path
    backup = backup_dir(backup_root, protocol, "teacher")
    print(f"=== teacher ({protocol.name}) → {path}{resuming(backup)}", flush=True)
    info = runner.train_teacher(arrays, protocol, path, verbose=verbose, backup_dir=backup)
    write_json(os.path.join(os.path.dirname(os.path.abspath(path)), "teacher.json"), info | runner.provenance(), indent=2)
    shutil.rmtree(backup)
    return path


def run_sweep(arrays, protocol, configs, seeds, out, backup_root, teacher=None, train_teacher=False, save_models=None,
              verbose=2):
    """Run every configuration on every seed, appending one record per finished run to `out`.

    Args:
        arrays: the dataset (`data.load_arrays`).
        protocol: the `Protocol` every run follows.
        configs: `{name: (method, options)}`, in the order to run them.
        seeds: the seeds; all configurations of a seed run before the next seed.
        out: the JSON-lines results file (appended; finished runs in it are skipped).
        backup_root: where unfinished runs keep their state.
        teacher: the teacher's `.keras` file, for the teacher methods.
        train_teacher: when `teacher` does not exist and a configuration needs
            it, train the protocol's teacher into it first (resumable too).
        save_models: a directory to save each finished run's model in, as
            `<protocol>-<config>-seed<seed>.keras`.
        verbose: Keras's `fit` verbosity.

    Returns:
        The records this call appended.

    Raises:
        InputError: `out` holds another protocol's or dataset's runs, or the
            teacher file does not exist (and is not to be trained) — before
            any training.

    Example:
    >>> ki.benchmark.run_sweep(arrays, ki.benchmark.get("quick"), {"standard": ("standard", {})}, [0, 1],
    ...                        "results.jsonl", "backups")
    """
    done = finished_runs(out, protocol)
    needs_teacher = any(method in runner.TEACHER_METHODS for method, _ in configs.values())
    if needs_teacher and teacher is not None and not os.path.exists(teacher):
        if not train_teacher:
            raise InputError(f"teacher file {teacher!r} does not exist")
        ensure_teacher(arrays, protocol, teacher, backup_root, verbose=verbose)
    train_size = protocol.train_examples(len(recipes.fit_source(arrays, protocol).y_train))
    appended = []
    for seed in seeds:
        for config, (method, options) in configs.items():
            if run_key(config, seed, train_size, protocol) in done:
                print(f"skip {config} seed {seed}: already in {out}", flush=True)
                continue
            backup = backup_dir(backup_root, protocol, config, seed)
            print(f"=== {config} seed {seed} ({protocol.name}){resuming(backup)}", flush=True)
            save_to = None
            if save_models:
                save_to = os.path.join(save_models, f"{protocol.name}-{config}-seed{seed}.keras")
                if os.path.exists(save_to):
                    # saved by a run that stopped before its record was written: kept, under another name
                    os.replace(save_to, f"{save_to}.unrecorded-{int(time.time())}")
            record = runner.run_one(arrays, protocol, method, options, seed, config=config, teacher=teacher,
                                    verbose=verbose, backup_dir=backup, save_to=save_to)
            report.append(out, record)
            shutil.rmtree(backup)  # only once its record is safe
            appended.append(record)
            print(f"=== {config} seed {seed}: {summary(record)}", flush=True)
    return appended


def summary(record):
    """A finished run's scores in one line."""
    if "val_accuracy" in record:
        return (f"validation {record['val_accuracy']:.4f} (ECE {record['val_ece']:.4f}), test "
                f"{record['test_accuracy']:.4f} (ECE {record['test_ece']:.4f}, {record['test_ece_scaled']:.4f} "
                f"at T {record['temperature']:.2f})")
    return f"final {record['final_accuracy']:.4f} ECE {record['ece']:.4f}"


def resuming(backup):
    return " (resuming)" if os.path.isdir(backup) else ""
