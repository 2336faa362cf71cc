"""`keras-introspect` command line.

    keras-introspect train                       # IL on digits, about 20 s on 2 CPU cores
    keras-introspect train --dataset cifar10 --arch resnet20 --epochs 30
    keras-introspect train --dataset path/to/imagefolder --method standard

The methods and their options come from `keras_introspect.methods.registry`;
training goes through `keras_introspect.recipes.train_method`, the path the
benchmarks use too.
"""

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time

import keras
import numpy as np

import keras_introspect as ki
from keras_introspect import explainers, plots, recipes, soft_targets
from keras_introspect.benchmark import held_out_labels, test_probabilities
from keras_introspect.cli.run_directory import CliError, RunDirectory
from keras_introspect.data import image_size_arg
from keras_introspect.distribute import STRATEGIES
from keras_introspect.errors import InputError
from keras_introspect.export.serving import check_model_name
from keras_introspect.methods.registry import METHODS
from keras_introspect.options import OptionError
from keras_introspect.paths import write_json

DEFAULTS = {
    # Per dataset: the architecture and recipe the default experiment uses.
    "digits": dict(arch="digits_cnn", epochs=30, batch_size=64, lr=0.05),
    "other": dict(arch="resnet20", epochs=30, batch_size=128, lr=0.1),
}
ARTEFACTS = ("history.csv", "history.json", "metrics.json", "curves.png", "reliability.png", "explanations.png",
             "model.keras", "serving")


class _Parser(argparse.ArgumentParser):
    """Reports a bad command line as one `CliError` line (exit 2) instead of the whole usage text."""

    def error(self, message):
        raise CliError(f"{message} (see {self.prog} --help)")


def _number(kind, name, low=None, low_inclusive=True, high=None, high_inclusive=False):
    """An argparse type: a finite number of `kind` in the given range, or a clear usage error."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value < low or (value == low and not low_inclusive)):
            raise argparse.ArgumentTypeError(f"must be {'>=' if low_inclusive else '>'} {low}, got {text}")
        if high is not None and (value > high or (value == high and not high_inclusive)):
            raise argparse.ArgumentTypeError(f"must be {'<=' if high_inclusive else '<'} {high}, got {text}")
        return value

    return parse


def _model_name(text):
    try:
        return check_model_name(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _image_size(text):
    try:
        return image_size_arg(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _option_type(name, option):
    """An argparse type that converts one option's text to its kind.

    Only the kind: methods share option names with other ranges and choices (`--alpha` is in
    [0, 1] for IL, ≥ 0 for FRSKD), so the value is checked against the chosen method's own
    declaration in `method_options`.
    """

    def parse(text):
        try:
            return option.parse(name, text)
        except OptionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _add_method_options(parser):
    """One flag per option name in the registry; its help lists each method's default."""
    seen = {}
    for spec in METHODS.values():
        for name, option in spec.options.items():
            seen.setdefault(name, (option, []))[1].append(f"{spec.name}: {option.default}")
    group = parser.add_argument_group("method options (defaults per method; see docs/method.md, docs/comparators.md)")
    for name, (option, defaults) in seen.items():
        flag = "--" + name.replace("_", "-")
        text = f"{option.help} ({'; '.join(defaults)})"
        if option.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            choices = {c for other in METHODS.values() if name in other.options
                       for c in (other.options[name].choices or ())}
            group.add_argument(flag, type=_option_type(name, option), default=None, help=text,
                               metavar="{" + ",".join(sorted(choices)) + "}" if choices else name.upper())


def build_parser():

    parser = _Parser(prog="keras-introspect", description="Introspective learning for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a classifier and write its artefacts")
    train.add_argument("--method", default="il", choices=tuple(METHODS),
                       help="; ".join(f"{name}: {spec.summary}" for name, spec in METHODS.items()))
    train.add_argument("--dataset", default="digits",
                       help="digits, cifar10, cifar100, another TFDS name, or an image folder (streamed)")
    train.add_argument("--image-size", type=_image_size, default=None,
                       help="H or H,W: resize images to this size (image folders: default the first image's)")
    train.add_argument("--preprocessing", default=None,
                       help="what the backbone expects: standardize (default: the dataset's statistics), raw (0-255 "
                            "pixels, for bases with their preprocessing inside) or a keras.applications family "
                            "(e.g. resnet_v2); served requests are raw pixels either way")
    train.add_argument("--validation-split", type=_number(float, "--validation-split", 0.0, False, 1.0), default=None,
                       help="hold out this fraction of a folder of class folders (no train/ and test/)")
    train.add_argument("--skip-bad-files", action="store_true",
                       help="leave out files that do not decode as images (default: stop, naming them)")
    train.add_argument("--data-dir", default=None, help="TFDS data directory (cifar10/cifar100)")
    train.add_argument("--download", action="store_true", help="let TFDS download a missing dataset")
    train.add_argument("--arch", default=None, help=", ".join(ki.architectures.ARCHITECTURES) + ", or keras:<Family> "
                       "(a Keras Applications base, e.g. keras:MobileNetV3Small; its own preprocessing by default)")
    train.add_argument("--weights", default=None, choices=ki.architectures.applications.WEIGHTS,
                       help="for keras:<Family>: random initialisation (none, default) or ImageNet weights "
                            "(downloaded by Keras on first use)")
    train.add_argument("--epochs", type=_number(int, "--epochs", 1), default=None)
    train.add_argument("--batch-size", type=_number(int, "--batch-size", 1), default=None)
    train.add_argument("--lr", type=_number(float, "--lr", 0.0, False), default=None,
                       help="peak SGD learning rate (cosine schedule)")
    train.add_argument("--weight-decay", type=_number(float, "--weight-decay", 0.0), default=5e-4)
    train.add_argument("--train-size", type=_number(int, "--train-size", 1), default=None,
                       help="a fixed stratified training subset (the same for every seed)")
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--seed", type=_number(int, "--seed", 0, True, 2**32 - 1, True), default=0)
    train.add_argument("--output", default="runs/latest", help="output directory (must be new or empty)")
    train.add_argument("--export-name", type=_model_name,
                       help="the model's name in TF Serving (default: the method); the export is "
                            "serving/<name>/1/ in --output")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in a non-empty --output (only once the new run has finished)")
    train.add_argument("--strategy", default="auto", choices=STRATEGIES,
                       help="tf.distribute strategy (multiworker reads TF_CONFIG; see docs/distributed.md)")
    train.add_argument("--sync-bn", action="store_true", help="synchronize BatchNorm statistics across replicas")
    train.add_argument("--bn-momentum", type=_number(float, "--bn-momentum", 0.0, True, 1.0), default=None,
                       help="BatchNorm moving-statistics momentum (default Keras' 0.99; 0.9 suits short runs)")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress display")
    train.add_argument("--teacher", help="teacher .keras file for kd, tfkd_self and isl (e.g. a run's model.keras)")
    _add_method_options(train)
    bench = commands.add_parser("benchmark", help="run methods x seeds on one protocol and report")
    bench.add_argument("--protocol", default="quick", choices=tuple(ki.benchmark.PROTOCOLS))
    bench.add_argument("--methods", nargs="+", default=list(METHODS), choices=tuple(METHODS))
    bench.add_argument("--seeds", nargs="+", type=_number(int, "--seeds", 0), default=[0])
    bench.add_argument("--dataset", help="override the protocol's dataset (name or ImageFolder path)")
    bench.add_argument("--data-dir", default=None, help="TFDS data directory")
    bench.add_argument("--download", action="store_true", help="let TFDS download a missing dataset")
    bench.add_argument("--epochs", type=_number(int, "--epochs", 1), help="override the protocol's epochs")
    bench.add_argument("--train-size", type=_number(int, "--train-size", 1), help="override the protocol's subset")
    bench.add_argument("--teacher", help="teacher .keras for kd/tfkd_self/isl (default: trained once into --output)")
    bench.add_argument("--output", default="runs/benchmark", help="output directory (results are appended)")
    bench.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return parser


def benchmark(args):

    protocol = ki.benchmark.get(args.protocol, dataset=args.dataset, epochs=args.epochs, train_size=args.train_size)
    arrays = ki.data.load_arrays(protocol.dataset, data_dir=args.data_dir, download=args.download)
    os.makedirs(args.output, exist_ok=True)
    results = os.path.join(args.output, "results.jsonl")
    # Each run saves its state after every epoch under backups/ and resumes from it when the command is run again.
    backups = os.path.join(args.output, "backups")
    # Without --teacher, the protocol's teacher is trained into the output directory (once).
    teacher = args.teacher or os.path.join(args.output, "teacher.keras")
    ki.benchmark.run_sweep(arrays, protocol, {method: (method, {}) for method in args.methods}, args.seeds, results,
                           backups, teacher=teacher, train_teacher=args.teacher is None, verbose=args.verbose)
    print(ki.benchmark.write_report(results, args.output))
    return results


def method_options(args):
    """The options given on the command line for `args.method`; an option of another method is an error."""
    spec = METHODS[args.method]
    given = {}
    for other in METHODS.values():
        for name in other.options:
            value = getattr(args, name, None)
            if value is None:
                continue
            if name not in spec.options:
                raise CliError(f"--{name.replace('_', '-')} is not an option of --method {args.method} "
                               f"(its options: {', '.join('--' + n.replace('_', '-') for n in spec.options) or 'none'})")
            given[name] = value
    spec.resolve(**given)  # each value against this method's own declaration (OptionError: exit 2)
    if spec.teacher:
        if not args.teacher:
            raise CliError(f"--method {args.method} needs --teacher PATH (a .keras model, e.g. runs/teacher/model.keras)")
        if not os.path.exists(args.teacher):
            raise CliError(f"teacher file {args.teacher!r} does not exist")
    elif args.teacher:
        raise CliError(f"--teacher is not an option of --method {args.method}")
    return given


def train(args):

    defaults = DEFAULTS["digits" if args.dataset == "digits" else "other"]
    options = method_options(args)
    protocol = ki.benchmark.Protocol(
        "cli", args.dataset, args.arch or defaults["arch"],
        epochs=args.epochs if args.epochs is not None else defaults["epochs"],
        batch_size=args.batch_size or defaults["batch_size"],
        lr=args.lr if args.lr is not None else defaults["lr"],
        weight_decay=args.weight_decay, train_size=args.train_size, augment=not args.no_augment,
        bn_momentum=args.bn_momentum, sync_bn=args.sync_bn, weights=args.weights,
        # a Keras Applications base gets its family's own preprocessing unless told otherwise
        preprocessing=args.preprocessing or (ki.architectures.applications.family_preprocessing(args.arch[6:])
                                             if (args.arch or "").startswith("keras:") else None),
    )
    # one spelling per folder, so that `runs/x/` resumes what `runs/x` began
    args.output = os.path.normpath(os.path.expanduser(args.output))
    if os.path.isdir(os.path.expanduser(args.dataset)):
        args.dataset = os.path.normpath(os.path.expanduser(args.dataset))
    settings = json.loads(json.dumps({k: v for k, v in vars(args).items() if k not in ("verbose", "overwrite", "command")}))
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = ki.distribute.get_strategy(args.strategy)
    source = ki.data.open_source(args.dataset, image_size=args.image_size, validation_split=args.validation_split,
                                 skip_bad_files=args.skip_bad_files, data_dir=args.data_dir, download=args.download)
    # An unknown architecture or preprocessing fails before any file is written.
    ki.architectures.get(protocol.arch, source.num_classes, source.input_shape, weights=protocol.weights)
    if protocol.preprocessing not in (None, *ki.data.preprocessing.OWN):
        ki.data.preprocessing.statistics(protocol.preprocessing, channels=source.input_shape[-1])
    chief = ki.distribute.is_chief(strategy)
    run = RunDirectory(args.output, args.overwrite, settings, dataset=args.dataset, lock=chief,
                       command=" ".join(["keras-introspect", *sys.argv[1:]]))
    try:
        return train_in(args, run, protocol, strategy, source, options, chief)
    except (CliError, InputError):
        run.abandon()
        raise
    finally:
        run.release()


def train_in(args, run, protocol, strategy, source, options, chief):
    """`train` once its run directory is held."""
    print(f"Training {args.method} / {protocol.arch} on {args.dataset} for {protocol.epochs} epochs with "
          f"{strategy.num_replicas_in_sync} replica(s) → {args.output}"
          f"{' (resuming an interrupted run)' if run.resuming else ''}", flush=True)
    start = time.time()
    model, splits, history = recipes.train_method(
        source, protocol, args.method, options, seed=args.seed, teacher=args.teacher, strategy=strategy,
        verbose=args.verbose, backup_dir=run.path("backup"), checkpoint_dir=run.path("checkpoints"),
    )
    if not chief:
        return None  # the chief evaluates, plots and exports
    seconds = recipes.train_seconds(history, start)
    if recipes.is_multiworker(strategy):
        # Evaluate and export a plain copy: evaluate/predict share fit's multi-worker trouble.
        model.save(run.path("model.keras"))
        model = keras.saving.load_model(run.path("model.keras"))
    final = model.evaluate(splits.test, verbose=0, return_dict=True)
    # Soft targets change confidence as much as accuracy: how far, and which way, is part of the result.
    reliability = ki.metrics.reliability(held_out_labels(splits), test_probabilities(model, splits.test))

    write_history(history, run.work)
    metrics = {
        "method": args.method, "dataset": args.dataset, "arch": protocol.arch, "epochs": protocol.epochs,
        "batch_size": protocol.batch_size, "lr": protocol.lr, "seed": args.seed, "train_size": splits.num_train,
        "test_accuracy": final["accuracy"], "test_loss": final["loss"],
        "test_ece": ki.metrics.calibration_error(reliability), "train_seconds": seconds,
        "normalization": splits.normalization, "options": options,
        "config": model.get_config() | {"backbone": protocol.arch},
    }
    write_json(run.path("metrics.json"), metrics, indent=2, default=str)
    title = f"{args.method} · {protocol.arch} · {args.dataset}"
    plots.plot_history(history, run.path("curves.png"), title=title)
    plots.plot_reliability({args.method: reliability}, run.path("reliability.png"), title=f"{title}, test split")
    write_explanations(model, splits, run.path("explanations.png"))
    model.save(run.path("model.keras"))
    if os.path.exists(run.path("serving")):
        shutil.rmtree(run.path("serving"))  # a partial export of this same, interrupted run
    # TF Serving's <name>/<version>/ layout; the signatures take raw pixels and normalize them as in training.
    serving = ki.export.export_for_serving(model, run.path("serving"), args.export_name or args.method, version=1,
                                 normalization=splits.normalization)
    run.commit()
    serving = os.path.relpath(serving, run.work)
    print(f"Test accuracy {final['accuracy']:.4f}, ECE {metrics['test_ece']:.4f} after {seconds:.0f} s. "
          f"Wrote {', '.join(ARTEFACTS[:-1])} and {serving}/ to {args.output} (TF Serving: --model_base_path="
          f"{os.path.join(args.output, os.path.dirname(serving))})")
    return metrics


def write_history(history, directory):
    keys = list(history)
    write_json(os.path.join(directory, "history.json"), history, indent=2)
    with open(os.path.join(directory, "history.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *keys])
        for epoch in range(len(history[keys[0]])):
            writer.writerow([epoch + 1, *(history[k][epoch] for k in keys)])


def write_explanations(model, splits, path, count=6):
    """Test images with the model's self-explanations and the soft targets they give."""
    # One image per class, as far as the first held-out images allow.
    x, y = splits.preview(count * 20)
    first = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)][:count]
    chosen = np.array((first + [i for i in range(len(y)) if i not in first])[:count])
    x, y = x[chosen], y[chosen]
    predictions = np.argmax(model.predict(x, verbose=0), axis=-1)
    if hasattr(model, "soft_targets"):
        own = np.asarray(model.explain(x, classes=y))
        q = np.asarray(model.soft_targets(x, y))
    else:  # other methods: explain with CAM, targets with the default builder
        maps = explainers.CAM()(model, x)
        own = np.asarray(maps)[np.arange(len(y)), y]
        q = np.asarray(soft_targets.ExplanationSoftTargets()(maps, y))
    if own.ndim == 4:  # input-space maps: collapse the channels for display
        own = np.asarray(explainers.spatial_reduce(own))
    plots.plot_explanations(splits.denormalize(x), own, q, y, splits.class_names, path, predictions)


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            train(args)
        elif args.command == "benchmark":
            benchmark(args)
    except (CliError, InputError) as error:
        # Bad input only: any other exception is a bug and keeps its traceback.
        print(f"keras-introspect: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
