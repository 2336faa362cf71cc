"""Is one training run on every core faster than one run per core? Images per second of both, in one run.

A long experiment of many independent runs (the fair protocol's 25 verdict runs) can go one run at a time
with TensorFlow's threads on every core, or as several runs at once, each pinned to one core. Which trains
more images per second depends on how well a step's ops use the cores: small convolutions and per-class
steps (IL) leave cores idle. For each method this script times, in fresh processes on random 32×32 images
(the data do not change a step's cost):

* one process on all the machine's cores;
* `--lanes` processes at once, each pinned to its own core (`os.sched_setaffinity`),

each as the median step time after the first epoch (which traces), and prints the ratio of the lanes' total
images per second to the one process's. It needs an otherwise idle machine: pause background runs first.

Example:
    python benchmarks/core_lanes.py --methods il standard --out benchmarks/results/core_lanes.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def child(method, arch, batch_size, steps, epochs, core):
    """Runs in a fresh process: train `epochs` epochs of `steps` steps; print the median step time."""
    if core is not None:
        os.sched_setaffinity(0, {core})  # before TensorFlow sizes its thread pools
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from keras_introspect import architectures
    from keras_introspect.benchmark.runner import StepTimer
    from keras_introspect.methods.registry import build_method

    keras.utils.set_random_seed(0)
    x = np.random.rand(batch_size * steps, 32, 32, 3).astype("float32")
    y = np.random.randint(0, 10, len(x))
    model = build_method(method, architectures.get(arch, 10, (32, 32, 3)))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    timer = StepTimer()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[timer])
    print(json.dumps({"step_seconds": statistics.median(timer.seconds[steps:]),
                      "threads_on": len(os.sched_getaffinity(0))}))


def start(args, method, core=None):
    command = [sys.executable, __file__, "--child", method, "--arch", args.arch, "--batch-size",
               str(args.batch_size), "--steps", str(args.steps), "--epochs", str(args.epochs)]
    if core is not None:
        command += ["--core", str(core)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def finish(process):
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"a measuring process failed (exit {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def measure(args, method):
    """One method: one process on every core, then `args.lanes` one-core processes at once."""
    whole = finish(start(args, method))
    lanes = [finish(p) for p in [start(args, method, core) for core in range(args.lanes)]]
    one = args.batch_size / whole["step_seconds"]
    together = sum(args.batch_size / lane["step_seconds"] for lane in lanes)
    return {"method": method, "one_process_images_per_second": one, "cores": whole["threads_on"],
            "lane_images_per_second": [args.batch_size / lane["step_seconds"] for lane in lanes],
            "lanes_images_per_second": together, "ratio": together / one}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["il", "standard"])
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=16, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="the first traces and is not timed")
    parser.add_argument("--lanes", type=int, default=len(os.sched_getaffinity(0)),
                        help="one-core processes at once (default: one per available core)")
    parser.add_argument("--out", help="results file (JSON); refused if it exists")
    parser.add_argument("--child")
    parser.add_argument("--core", type=int)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.arch, args.batch_size, args.steps, args.epochs, args.core)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch traces and is not timed")
    available = sorted(os.sched_getaffinity(0))
    if not 1 <= args.lanes <= len(available):
        parser.error(f"--lanes must be between 1 and the {len(available)} available cores")
    if args.out and os.path.exists(args.out):
        parser.error(f"{args.out} exists; refusing to overwrite an earlier run's results")

    from keras_introspect.benchmark import provenance
    from keras_introspect.paths import write_json

    rows = []
    for method in args.methods:
        row = measure(args, method)
        rows.append(row)
        print(f"{method} ({args.arch}, batch {args.batch_size}): one process on {row['cores']} cores "
              f"{row['one_process_images_per_second']:.0f} img/s; {args.lanes} one-core processes at once "
              f"{row['lanes_images_per_second']:.0f} img/s in all; ratio {row['ratio']:.2f}", flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        write_json(args.out, {"rows": rows, "arch": args.arch, "batch_size": args.batch_size, "steps": args.steps,
                              "epochs": args.epochs, "lanes": args.lanes, **provenance()}, indent=2)
        print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
