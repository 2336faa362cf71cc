"""Compare IL formulations with standard training and regularizers on one recipe.

Each run trains a fresh backbone with one method configuration and seed and
appends one JSON line (final/best test accuracy, time, provenance) to the
results file, so a sweep can stop and resume across sessions.

Example:
    python benchmarks/formulation_sweep.py --data /path/cifar10-jpeg \
        --train-size 10000 --epochs 15 --seeds 0 1 --configs standard il_cam_mass \
        --out benchmarks/results/formulation_sweep.jsonl
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import keras
import tensorflow as tf

import keras_introspect as ki
from keras_introspect import recipes

CONFIGS = {
    "standard": ("standard", {}),
    "label_smoothing": ("label_smoothing", {"label_smoothing": 0.1}),
    "confidence_penalty": ("confidence_penalty", {"confidence_penalty": 0.1}),
    # mass-controlled targets from centered CAM maps without ReLU (the default)
    "il_cam_mass": ("il", {}),
    "il_cam_mass_eps0.2": ("il", {"epsilon": 0.2}),
    "il_cam_mass_tau0.05": ("il", {"target_temperature": 0.05}),
    "il_cam_relu_mass": ("il", {"relu": True}),
    "il_cam_softmax": ("il", {"form": "softmax", "target_temperature": 0.2}),
    "il_gradcam_stage2_mass": ("il", {"explainer": "grad_cam", "layer": "stage2_block3_out"}),
    "il_cam_mass_T4": ("il", {"temperature": 4.0}),
    "il_cam_mass_alpha0.9": ("il", {"alpha": 0.9}),
    "il_cam_nontarget": ("il", {"form": "nontarget", "alpha": 0.2, "temperature": 4.0}),
    "kd": ("kd", {}),
    "kd_shuffled": ("kd", {"teacher_targets": "shuffled"}),
    "kd_uniform": ("kd", {"teacher_targets": "uniform"}),
    "dml": ("dml", {}),
    "tfkd": ("tfkd", {}),
    "frskd": ("frskd", {}),
    "isl": ("isl", {}),
    "il_vanilla_top2_mass": ("il", {"explainer": "vanilla_gradients", "explained_classes": 2}),
}


def provenance():
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "commit": commit,
        "machine": f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def run(arrays, config, seed, args):
    method, options = CONFIGS[config]
    keras.utils.set_random_seed(seed)
    splits = ki.data.make_pipelines(arrays, batch_size=args.batch_size, augment=not args.no_augment,
                                    train_size=args.train_size, seed=args.subset_seed)
    backbone = ki.architectures.get(args.arch, splits.num_classes, splits.input_shape)
    extra = {"teacher": args.teacher} if method in ("kd", "tfkd_self", "isl") else {}
    model = recipes.build_method(method, backbone, **options, **extra)
    steps = -(-splits.num_train // args.batch_size)
    model.compile(optimizer=recipes.sgd(args.lr, args.epochs, steps, weight_decay=args.weight_decay),
                  metrics=["accuracy"])
    start = time.time()
    history = recipes.train(model, method, splits, args.epochs, verbose=2)
    accuracies = history["val_accuracy"]
    return {
        "config": config, "method": method, "options": options, "seed": seed,
        "final_accuracy": accuracies[-1], "best_accuracy": max(accuracies),
        "wall_seconds": time.time() - start, "history": history,
        "arch": args.arch, "train_size": splits.num_train, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "augment": not args.no_augment,
        **provenance(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset name or ImageFolder path")
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--teacher", help="teacher .keras file for the kd configurations")
    parser.add_argument("--out", required=True, help="JSON-lines results file (appended)")
    args = parser.parse_args(argv)
    arrays = ki.data.load_arrays(args.data)
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            for line in f:
                r = json.loads(line)
                done.add((r["config"], r["seed"], r["train_size"], r["epochs"], r["augment"], r["arch"]))
    for seed in args.seeds:
        for config in args.configs:
            key = (config, seed, args.train_size, args.epochs, not args.no_augment, args.arch)
            if key in done:
                print(f"skip {key}: already in {args.out}", flush=True)
                continue
            print(f"=== {config} seed {seed}", flush=True)
            result = run(arrays, config, seed, args)
            print(f"=== {config} seed {seed}: final {result['final_accuracy']:.4f} best {result['best_accuracy']:.4f}", flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
