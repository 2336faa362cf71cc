"""Does the streaming input pipeline keep up with training, and does its memory stay flat?

Two measurements, each printed and written to `benchmarks/results/pipeline.json`:

1. **Throughput.** For each dataset and image size, the pipeline alone
   (decode, resize, augment, normalize, batch; no model) and a training step
   of the chosen backbone fed from memory, in images per second, measured in
   one run; the target is pipeline / training ≥ 2, so that an accelerator
   that trains several times faster than this CPU still does not wait on data.
2. **Memory.** Training from a folder of large photographs (default 2,000
   JPEGs of 800×800 px: 3.8 GB as uint8, 15 GB as float32) in a fresh
   process, whose peak resident memory must stay under 2.5 GB.

Run it on an otherwise idle machine:

    python benchmarks/pipeline_throughput.py --imagenette /path/imagenette-128px --cifar /path/cifar10-jpeg
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "pipeline.json")


def images_per_second(iterator, batches, batch_size, warmup=3):
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def throughput(source_path, image_size, arch, batch_size, batches, augment="auto"):
    import keras

    import keras_introspect as ki

    source = ki.data.open_source(source_path, image_size=image_size)
    splits = source.splits(batch_size=batch_size, augment=augment)
    pipeline = images_per_second(iter(splits.train.repeat()), batches, batch_size)
    model = ki.StandardModel(ki.architectures.get(arch, source.num_classes, source.input_shape))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    x, y = next(iter(splits.train))
    model.train_on_batch(x, y)  # trace the step

    class Steps:
        def __next__(self):
            return model.train_on_batch(x, y)

    training = images_per_second(Steps(), batches, batch_size, warmup=1)
    return {"dataset": os.path.basename(os.path.normpath(source_path)), "image_size": list(source.image_size),
            "arch": arch, "batch_size": batch_size, "augmentation": ki.data.resolve_augmentation(
                augment, source.image_size), "pipeline_images_per_second": pipeline,
            "training_images_per_second": training, "ratio": pipeline / training}


def make_photos(directory, count, size, seed=0):
    """`count` synthetic JPEG photographs of `size`×`size` px in two class folders (train/ and test/)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    marker = os.path.join(directory, f".complete-{count}-{size}")
    if os.path.exists(marker):
        return directory
    for i in range(count):
        split = "test" if i % 10 < 2 else "train"  # 20% held out, both classes
        folder = os.path.join(directory, split, f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        # Smooth random colour fields: JPEG sizes close to real photographs'.
        small = rng.integers(0, 256, size=(size // 32, size // 32, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.BICUBIC)
        image.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    open(marker, "w").close()
    return directory


def memory_child(folder, image_size, arch, batch_size, steps):
    """Runs in a fresh process: train from the folder; print the peak resident memory."""
    import resource

    import keras

    import keras_introspect as ki

    source = ki.data.open_source(folder, image_size=image_size)
    splits = source.splits(batch_size=batch_size)
    model = ki.StandardModel(ki.architectures.get(arch, source.num_classes, source.input_shape))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(splits.train.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"peak_rss_bytes": peak, "train_images": splits.num_train}))


def memory(folder, count, size, image_size, arch, batch_size, steps):
    make_photos(folder, count, size)
    result = subprocess.run(
        [sys.executable, __file__, "--memory-child", folder, "--child-image-size", str(image_size), "--arch", arch,
         "--batch-size", str(batch_size), "--steps", str(steps)],
        capture_output=True, text=True, check=True)
    child = json.loads(result.stdout.strip().splitlines()[-1])
    decoded = count * size * size * 3
    return {"photos": count, "photo_size": size, "uint8_bytes_if_decoded": decoded,
            "float32_bytes_if_decoded": 4 * decoded, "image_size": image_size, "arch": arch, "steps": steps,
            **child, "peak_rss_gb": child["peak_rss_bytes"] / 1e9, "limit_gb": 2.5,
            "within_limit": child["peak_rss_bytes"] < 2.5e9}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imagenette", help="imagenette-128px folder")
    parser.add_argument("--cifar", help="cifar10-jpeg folder")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--photo-size", type=int, default=800)
    parser.add_argument("--photo-dir", default=os.path.join(
        os.environ.get("KERAS_INTROSPECT_CACHE", os.path.expanduser("~/.cache/keras-introspect")), "photos"))
    parser.add_argument("--steps", type=int, default=100, help="training steps of the memory run")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--memory-child")
    parser.add_argument("--child-image-size", type=int, default=128)
    parser.add_argument("--arch", default="resnet18_w32")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.memory_child:
        return memory_child(args.memory_child, args.child_image_size, args.arch, args.batch_size, args.steps)

    from keras_introspect.benchmark import provenance
    from keras_introspect.paths import write_json

    cases = []
    if args.imagenette:
        cases += [(args.imagenette, 64, "resnet18_w32", 64), (args.imagenette, 128, "resnet18_w32", 64)]
    if args.cifar:
        cases += [(args.cifar, 32, "resnet20", 128)]
    report = {"throughput": [], "memory": None, **provenance()}
    for path, size, arch, batch in cases:
        row = throughput(path, size, arch, batch, args.batches)
        report["throughput"].append(row)
        print(f"{row['dataset']} at {size} px, {arch}: pipeline {row['pipeline_images_per_second']:.0f} img/s, "
              f"training {row['training_images_per_second']:.0f} img/s, ratio {row['ratio']:.2f} "
              f"(target ≥ 2)", flush=True)
    report["memory"] = memory(args.photo_dir, args.photos, args.photo_size, 128, args.arch, args.batch_size,
                              args.steps)
    m = report["memory"]
    print(f"{m['photos']} photos of {m['photo_size']} px ({m['float32_bytes_if_decoded'] / 1e9:.1f} GB as float32): "
          f"peak memory {m['peak_rss_gb']:.2f} GB while training (limit 2.5 GB)", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, report, indent=2)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
