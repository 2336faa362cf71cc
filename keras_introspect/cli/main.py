"""`keras-introspect` command line.

    keras-introspect train                       # IL on digits, about 2 minutes on 2 CPU cores
    keras-introspect train --dataset cifar10 --arch resnet20 --epochs 30
    keras-introspect train --dataset path/to/imagefolder --method standard
"""

import argparse
import csv
import json
import os
import sys
import time

DEFAULTS = {
    # Per dataset: the architecture and recipe the default experiment uses.
    "digits": dict(arch="digits_cnn", epochs=30, batch_size=64, lr=0.05),
    "other": dict(arch="resnet20", epochs=30, batch_size=128, lr=0.1),
}


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def build_parser():
    from keras_introspect import recipes

    parser = argparse.ArgumentParser(prog="keras-introspect", description="Introspective learning for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a classifier and write its artefacts")
    train.add_argument("--method", default="il", choices=recipes.METHODS)
    train.add_argument("--dataset", default="digits", help="digits, cifar10, cifar100 or an ImageFolder path")
    train.add_argument("--data-dir", default=None, help="TFDS data directory (cifar10/cifar100)")
    train.add_argument("--download", action="store_true", help="let TFDS download a missing dataset")
    train.add_argument("--arch", default=None, help="digits_cnn, resnet20/32/56/110, resnet18, wrn16_2, wrn40_2")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--lr", type=float, default=None, help="peak SGD learning rate (cosine schedule)")
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--train-size", type=int, default=None, help="fixed stratified training subset")
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--output", default="runs/latest", help="output directory")
    train.add_argument("--strategy", default="auto", choices=("auto", "one", "mirrored", "multiworker", "tpu"),
                       help="tf.distribute strategy (multiworker reads TF_CONFIG; see docs/distributed.md)")
    train.add_argument("--sync-bn", action="store_true", help="synchronize BatchNorm statistics across replicas")
    train.add_argument("--bn-momentum", type=float, default=None,
                       help="BatchNorm moving-statistics momentum (default Keras' 0.99; 0.9 suits short runs)")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress display")
    il = train.add_argument_group("introspective learning (--method il)")
    il.add_argument("--explainer", choices=("cam", "grad_cam", "vanilla_gradients", "gradient_input"))
    il.add_argument("--layer", help="layer explained by grad_cam (default: last spatial layer)")
    il.add_argument("--relu", action=argparse.BooleanOptionalAction, default=None, help="ReLU on CAM/Grad-CAM maps")
    il.add_argument("--form", choices=("mass", "softmax", "nontarget"), help="soft-target form")
    il.add_argument("--similarity", choices=("cosine", "dot", "euclidean"))
    il.add_argument("--center", action=argparse.BooleanOptionalAction, default=None, help="center maps before comparing")
    il.add_argument("--target-temperature", type=float, help="softmax temperature over similarities")
    il.add_argument("--epsilon", type=float, help="non-true-class mass (form=mass)")
    il.add_argument("--alpha", type=float, help="weight of the distillation term (il, kd)")
    il.add_argument("--temperature", type=float, help="distillation temperature T (il, kd)")
    il.add_argument("--explained-classes", default=None, help="'all' or k (true class + top-k others)")
    il.add_argument("--warmup-epochs", type=int, help="epochs of plain cross-entropy before distilling (default 5)")
    il.add_argument("--ramp-epochs", type=int, help="epochs over which alpha then rises to its value (default 5)")
    kd = train.add_argument_group("teacher distillation (--method kd) and mutual learning (--method dml)")
    kd.add_argument("--teacher", help="teacher .keras file (e.g. the model.keras of a previous run)")
    kd.add_argument("--teacher-targets", choices=("teacher", "shuffled", "uniform"), default=None)
    kd.add_argument("--num-peers", type=int, default=2)
    reg = train.add_argument_group("regularizers")
    reg.add_argument("--label-smoothing", type=float, default=0.1)
    reg.add_argument("--confidence-penalty", type=float, default=0.1)
    bench = commands.add_parser("benchmark", help="run methods x seeds on one protocol and report")
    bench.add_argument("--protocol", default="quick", choices=("quick", "cpu", "paper"))
    bench.add_argument("--methods", nargs="+", default=list(recipes.METHODS), choices=recipes.METHODS)
    bench.add_argument("--seeds", nargs="+", type=int, default=[0])
    bench.add_argument("--dataset", help="override the protocol's dataset (name or ImageFolder path)")
    bench.add_argument("--data-dir", default=None, help="TFDS data directory")
    bench.add_argument("--epochs", type=int, help="override the protocol's epochs")
    bench.add_argument("--train-size", type=int, help="override the protocol's training subset")
    bench.add_argument("--teacher", help="teacher .keras for kd/tfkd_self/isl (default: trained once into --output)")
    bench.add_argument("--output", default="runs/benchmark", help="output directory (results are appended)")
    bench.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return parser


def benchmark(args):
    from keras_introspect import benchmark as bench
    from keras_introspect import data

    protocol = bench.get(args.protocol, dataset=args.dataset, epochs=args.epochs, train_size=args.train_size)
    if protocol.epochs < 1:
        raise CliError(f"--epochs must be >= 1, got {protocol.epochs}")
    arrays = data.load_arrays(protocol.dataset, data_dir=args.data_dir)
    os.makedirs(args.output, exist_ok=True)
    results = os.path.join(args.output, "results.jsonl")
    done = {(r["config"], r["seed"], r["protocol"]) for r in bench.report.load(results)} if os.path.exists(results) else set()
    teacher = args.teacher
    if teacher is None and set(args.methods) & set(bench.runner.TEACHER_METHODS):
        teacher = os.path.join(args.output, "teacher.keras")
        if not os.path.exists(teacher):
            print(f"Training the {protocol.name} teacher → {teacher}", flush=True)
            info = bench.train_teacher(arrays, protocol, teacher, verbose=args.verbose)
            with open(os.path.join(args.output, "teacher.json"), "w") as f:
                json.dump(info | bench.provenance(), f, indent=2)
    elif teacher is not None and not os.path.exists(teacher):
        raise CliError(f"teacher file {teacher!r} does not exist")
    for seed in args.seeds:
        for method in args.methods:
            if (method, seed, protocol.name) in done:
                print(f"skip {method} seed {seed}: already in {results}", flush=True)
                continue
            print(f"=== {method} seed {seed} ({protocol.name})", flush=True)
            record = bench.run_one(arrays, protocol, method, {}, seed, teacher=teacher, verbose=args.verbose)
            bench.report.append(results, record)
            print(f"=== {method} seed {seed}: final accuracy {record['final_accuracy']:.4f}", flush=True)
    print(bench.write_report(results, args.output))
    return results


def method_options(args):
    from keras_introspect import recipes

    if args.method == "il":
        names = [k for k in recipes.IL_DEFAULTS if hasattr(args, k)]
        options = {k: getattr(args, k) for k in names}
        if options.get("explained_classes") not in (None, "all"):
            try:
                options["explained_classes"] = int(options["explained_classes"])
            except ValueError:
                raise CliError(f"--explained-classes must be 'all' or an integer, got {options['explained_classes']!r}") from None
        return options
    if args.method in ("kd", "tfkd_self", "isl"):
        if not args.teacher:
            raise CliError(f"--method {args.method} needs --teacher PATH (a .keras model, e.g. runs/teacher/model.keras)")
        if not os.path.exists(args.teacher):
            raise CliError(f"teacher file {args.teacher!r} does not exist")
        return {"teacher": args.teacher, "alpha": args.alpha, "temperature": args.temperature,
                "teacher_targets": args.teacher_targets}
    if args.method == "dml":
        return {"num_peers": args.num_peers}
    if args.method == "label_smoothing":
        return {"label_smoothing": args.label_smoothing}
    if args.method == "confidence_penalty":
        return {"confidence_penalty": args.confidence_penalty}
    return {}


def train(args):
    import keras

    import keras_introspect as ki
    from keras_introspect import plots, recipes
    from keras_introspect.export import export_saved_model

    defaults = DEFAULTS["digits" if args.dataset == "digits" else "other"]
    arch = args.arch or defaults["arch"]
    epochs = args.epochs if args.epochs is not None else defaults["epochs"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr if args.lr is not None else defaults["lr"]
    if epochs < 1:
        raise CliError(f"--epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {batch_size}")

    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = ki.distribute.get_strategy(args.strategy)
    keras.utils.set_random_seed(args.seed)
    arrays = ki.data.load_arrays(args.dataset, data_dir=args.data_dir, download=args.download)
    splits = ki.data.make_pipelines(arrays, batch_size=batch_size, augment=not args.no_augment,
                                    train_size=args.train_size, seed=args.seed)
    if args.method in ki.benchmark.runner.TEACHER_METHODS:
        ki.benchmark.runner.check_teacher_normalization(args.teacher, splits)
    steps = splits.num_train // batch_size if args.strategy == "multiworker" else -(-splits.num_train // batch_size)
    with strategy.scope():
        backbone = ki.architectures.get(arch, splits.num_classes, splits.input_shape, bn_momentum=args.bn_momentum)
        if args.sync_bn:
            backbone = ki.distribute.synchronize_batchnorm(backbone)
        model = recipes.build_method(args.method, backbone, **method_options(args))
        model.compile(optimizer=recipes.sgd(lr, epochs, steps, weight_decay=args.weight_decay), metrics=["accuracy"])

    os.makedirs(args.output, exist_ok=True)
    print(f"Training {args.method} / {arch} on {args.dataset} ({splits.num_train} train, "
          f"{splits.num_test} test images) for {epochs} epochs with {strategy.num_replicas_in_sync} "
          f"replica(s) → {args.output}", flush=True)
    start = time.time()
    if args.strategy == "multiworker":
        # Keras's fit does not run under MultiWorkerMirroredStrategy (keras#20585).
        def dataset_fn(context, epoch):
            examples = splits.train_examples.shard(context.num_input_pipelines, context.input_pipeline_id)
            return examples.batch(context.get_per_replica_batch_size(batch_size), drop_remainder=True)

        history = ki.distribute.fit_distributed(
            model, dataset_fn, epochs, steps, strategy, os.path.join(args.output, "checkpoints"), verbose=args.verbose
        )
        if not ki.distribute.is_chief(strategy):
            return None  # the chief evaluates, plots and exports
        # Evaluate and export a plain copy: evaluate/predict share fit's
        # multi-worker trouble.
        model.save(os.path.join(args.output, "model.keras"))
        model = keras.saving.load_model(os.path.join(args.output, "model.keras"))
    else:
        history = recipes.train(model, args.method, splits, epochs, verbose=args.verbose)
    seconds = time.time() - start
    final = model.evaluate(splits.test, verbose=0, return_dict=True)

    write_history(history, args.output)
    metrics = {
        "method": args.method, "dataset": args.dataset, "arch": arch, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "seed": args.seed, "train_size": splits.num_train,
        "test_accuracy": final["accuracy"], "test_loss": final["loss"], "train_seconds": seconds,
        "normalization": splits.normalization,
        "config": model.get_config() | {"backbone": arch},
    }
    with open(os.path.join(args.output, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, default=str)
    plots.plot_history(history, os.path.join(args.output, "curves.png"),
                       title=f"{args.method} · {arch} · {args.dataset}")
    write_explanations(model, splits, os.path.join(args.output, "explanations.png"))
    model.save(os.path.join(args.output, "model.keras"))
    # The exported signatures take raw images and normalize them as in training.
    export_saved_model(model, os.path.join(args.output, "saved_model"), normalization=(splits.mean, splits.std))
    print(f"Test accuracy {final['accuracy']:.4f} after {seconds:.0f} s. Wrote history.csv, history.json, "
          f"metrics.json, curves.png, explanations.png, model.keras and saved_model/ to {args.output}")
    return metrics


def write_history(history, directory):
    keys = list(history)
    with open(os.path.join(directory, "history.json"), "w") as f:
        json.dump(history, f, indent=2)
    with open(os.path.join(directory, "history.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *keys])
        for epoch in range(len(history[keys[0]])):
            writer.writerow([epoch + 1, *(history[k][epoch] for k in keys)])


def write_explanations(model, splits, path, count=6):
    """Test images with the model's self-explanations and the soft targets they give."""
    import numpy as np

    from keras_introspect import explainers, plots, soft_targets

    x, y = splits.x_test[:count], splits.y_test[:count].astype("int32")
    predictions = np.argmax(model.predict(x, verbose=0), axis=-1)
    if hasattr(model, "soft_targets"):
        own = np.asarray(model.explain(x, classes=y))
        q = np.asarray(model.soft_targets(x, y))
    else:  # other methods: explain with CAM, targets with the default builder
        explainer = explainers.CAM(relu=False)
        maps = explainer(model, x)
        own = np.asarray(maps)[np.arange(len(y)), y]
        q = np.asarray(soft_targets.ExplanationSoftTargets()(maps, y))
    if own.ndim == 4:  # input-space maps: collapse the channels for display
        own = np.abs(own).max(axis=-1)
    plots.plot_explanations(splits.denormalize(x), own, q, y, splits.class_names, path, predictions)


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_introspect.backbones import BackboneError
    from keras_introspect.data import DatasetNotFoundError

    try:
        if args.command == "train":
            train(args)
        elif args.command == "benchmark":
            benchmark(args)
    except (CliError, DatasetNotFoundError, BackboneError, ValueError) as error:
        print(f"keras-introspect: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
