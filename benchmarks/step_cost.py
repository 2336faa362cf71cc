"""Cost of a training step of every method, relative to standard training.

Time: all configurations are built first, then measured in interleaved
rounds (round-robin, `--steps` steps each), and each configuration's time is
the median over rounds — so a change in machine load affects all of them
alike and the printed ratios come from one run. Memory: the peak of
TensorFlow's CPU allocator during one step of each configuration
(`tf.config.experimental.get_memory_info`, reset before each).

References for all-class input gradients: a persistent tape with one
`gradient` call per class ("loop"), and `batch_jacobian` ("jacobian"), each
added to a standard step. They and the all-class input-gradient explainers
are measured up to `--reference-classes` classes (10 by default, where the
targets are set): their cost grows with one backward pass per class, and at
100 classes tracing and timing them takes longer than the rest of the run
(and `batch_jacobian` alone would hold ~16 GB). Results are written after
each number of classes.

Example:
    python benchmarks/step_cost.py --classes 10 100 --out benchmarks/results/step_cost.json
    # a Keras Applications backbone (issue 29): IL's cost over a nested base
    python benchmarks/step_cost.py --arch keras:MobileNetV3Small --size 96 --classes 10 --batch-size 32 \
        --configs standard "il (CAM, default)" "il grad_cam last layer" --out benchmarks/results/step_cost_mobilenetv3.json
    # Markdown tables of a results file, also written into a document between
    # <!-- results:step_cost:begin --> and <!-- results:step_cost:end -->:
    python benchmarks/step_cost.py --render benchmarks/results/step_cost.json --update-doc docs/comparators.md
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_introspect as ki  # noqa: E402
from keras_introspect import benchmark, recipes  # noqa: E402
from keras_introspect.paths import write_json  # noqa: E402

IL = {
    "il (CAM, default)": {},
    "il grad_cam last layer": {"explainer": "grad_cam"},
    "il grad_cam stage 2": {"explainer": "grad_cam", "layer": "stage2_block3_out"},
    "il vanilla all classes": {"explainer": "vanilla_gradients"},
    "il gradient_input all classes": {"explainer": "gradient_input"},
    "il vanilla top-1 (true + 1)": {"explainer": "vanilla_gradients", "explained_classes": 1},
    "il vanilla top-2 (true + 2)": {"explainer": "vanilla_gradients", "explained_classes": 2},
}
METHODS = ["standard", "label_smoothing", "confidence_penalty", "kd", "tfkd", "dml", "frskd", "isl"]
REFERENCES = ["reference: loop of gradient per class", "reference: batch_jacobian"]
EXPENSIVE = ("all classes", "reference")


def configurations(classes, reference_classes):
    """Every method and explainer; the `EXPENSIVE` ones (one backward pass through
    the network per class) only up to `reference_classes` classes."""
    names = METHODS + list(IL) + REFERENCES
    if classes <= reference_classes:
        return names
    return [name for name in names if not any(e in name for e in EXPENSIVE)]


class ReferenceStep:
    """A standard step plus all-class input gradients computed by a reference method."""

    def __init__(self, backbone, mode):
        self.backbone, self.mode = backbone, mode
        self.optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
        self.optimizer.build(backbone.trainable_variables)
        self.step = tf.function(self._step)

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            with tf.GradientTape(persistent=self.mode == "loop") as inner:
                inner.watch(x)
                z = self.backbone(x, training=True)
                columns = [z[:, c] for c in range(z.shape[-1])]
            with tape.stop_recording():
                if self.mode == "loop":
                    maps = tf.stack([inner.gradient(c, x) for c in columns], axis=1)
                else:
                    maps = inner.batch_jacobian(z, x)
            # The maps must be used, or the graph prunes them.
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, z))
            loss = loss + 0.0 * tf.reduce_sum(tf.stop_gradient(maps))
        grads = tape.gradient(loss, self.backbone.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.backbone.trainable_variables))
        return loss

    def __call__(self, x, y):
        return self.step(x, y)


def build(config, classes, teacher, arch="resnet20", size=32):
    keras.utils.set_random_seed(0)
    backbone = ki.architectures.get(arch, classes, (size, size, 3))
    if config.startswith("reference"):
        return ReferenceStep(backbone, "loop" if "loop" in config else "jacobian")
    if config in IL:
        model = recipes.build_method("il", backbone, **IL[config])
    else:
        model = recipes.build_method(config, backbone, **({"teacher": teacher} if config in ("kd", "isl") else {}))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    return lambda x, y: model.train_on_batch(x, y)


def batch(classes, size, pixels=32):
    rng = np.random.default_rng(0)
    return (tf.constant(rng.normal(size=(size, pixels, pixels, 3)).astype("float32")),
            tf.constant(rng.integers(0, classes, size).astype("int32")))


def teacher_path(classes, directory, arch="resnet20", size=32):
    name = f"teacher_{classes}.keras" if arch == "resnet20" else f"teacher_{arch.replace(':', '_')}_{size}_{classes}.keras"
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        ki.StandardModel(ki.architectures.get(arch, classes, (size, size, 3))).save(path)
    return path


def peak_memory_mib(step, x, y):
    """Peak bytes held by TensorFlow's CPU allocator during one step, in MiB; `None` where this TensorFlow
    build's CPU allocator keeps no statistics (it refuses to reset them)."""
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError:
        return None
    step(x, y)
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20


def markdown(results):
    """One table per number of classes, and the provenance of the run."""
    lines = []
    for classes, rows in results["classes"].items():
        arch = {"resnet20": "ResNet-20"}.get(results.get("arch", "resnet20"), results.get("arch"))
        size = f" at {results['size']} px" if results.get("size", 32) != 32 else ""
        lines += [f"**{arch}{size}, {classes} classes, batch {results['batch_size']}**", "",
                  "| configuration | ms / step | time × standard | peak MiB | memory × standard |",
                  "|---|---|---|---|---|"]
        for name, row in rows.items():
            memory = (f"{row['peak_mib']:.0f} | {row['memory_ratio']:.2f}×" if "peak_mib" in row else "— | —")
            lines.append(f"| {name} | {1000 * row['seconds']:.0f} | {row['ratio']:.2f}× | {memory} |")
        lines.append("")
    p = results["provenance"]
    lines.append(f"Provenance: `{p['command']}`; commit {p['commit']}; machine: {p['machine']}; "
                 f"TensorFlow {p['tensorflow']}, Keras {p['keras']}; {p['date']}.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=None)
    parser.add_argument("--reference-classes", type=int, default=10,
                        help="measure all-class input gradients and the references only up to this many classes")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--render", metavar="JSON", help="only print the Markdown tables of a results file")
    parser.add_argument("--update-doc", metavar="FILE", help="with --render: write the tables into FILE")
    parser.add_argument("--tmp", default="/tmp/keras-introspect-step-cost")
    parser.add_argument("--arch", default="resnet20",
                        help="the backbone, e.g. keras:MobileNetV3Small (a Keras Applications base; give --configs "
                             "without ResNet layer names)")
    parser.add_argument("--size", type=int, default=32, help="image size in pixels")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            table = markdown(json.load(f))
        print(table)
        if args.update_doc:
            benchmark.update_doc(args.update_doc, os.path.splitext(os.path.basename(args.render))[0], table)
        return
    os.makedirs(args.tmp, exist_ok=True)
    results = {"provenance": benchmark.provenance(), "batch_size": args.batch_size, "arch": args.arch, "classes": {}}
    if args.size != 32:
        results["size"] = args.size
    for classes in args.classes:
        names = args.configs or configurations(classes, args.reference_classes)
        teacher = teacher_path(classes, args.tmp, args.arch, args.size)
        steps = {name: build(name, classes, teacher, args.arch, args.size) for name in names}
        x, y = batch(classes, args.batch_size, args.size)
        for step in steps.values():  # trace and warm up
            step(x, y)
            step(x, y)
        times = {name: [] for name in names}
        for _ in range(args.rounds):
            for name, step in steps.items():
                count = 1 if classes > 10 and any(e in name for e in EXPENSIVE) else args.steps
                start = time.perf_counter()
                for _ in range(count):
                    loss = step(x, y)
                np.asarray(loss["loss"] if isinstance(loss, dict) else loss)
                times[name].append((time.perf_counter() - start) / count)
        base = float(np.median(times["standard"]))
        rows = {}
        for name in names:
            seconds = float(np.median(times[name]))
            rows[name] = {"seconds": seconds, "ratio": seconds / base}
            peak = None if args.no_memory else peak_memory_mib(steps[name], x, y)
            if peak is not None:
                rows[name]["peak_mib"] = peak
        if "peak_mib" in rows["standard"]:
            for row in rows.values():
                row["memory_ratio"] = row["peak_mib"] / rows["standard"]["peak_mib"]
        results["classes"][str(classes)] = rows
        print(f"\n{args.arch}, {classes} classes, batch {args.batch_size}: time per step relative to standard")
        for name, row in rows.items():
            memory = f"   peak memory {row['peak_mib']:.0f} MiB ({row['memory_ratio']:.2f}×)" if "peak_mib" in row else ""
            print(f"  {name:40s} {row['ratio']:6.2f}×  ({1000 * row['seconds']:.0f} ms){memory}", flush=True)
        if args.out:
            write_json(args.out, results, indent=2)


if __name__ == "__main__":
    main()
