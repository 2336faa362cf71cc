"""Peak memory of a benchmark protocol's in-memory pipelines (default: `long`, Imagenette at 128 px).

The in-memory pipelines (`ki.data.make_pipelines`) keep the images as loaded —
uint8 for photos — and normalize each example as it is read. This script
measures, in this fresh process, the resident memory after importing the
library, after loading the arrays, after building the protocol's pipelines
and after one training epoch (with example ids, as PS-KD and IL's per-example
targets read it) plus one test pass; the peak must stay under `--limit-gb`
(default 4 GB, a third of a Colab machine, leaving the rest to the model).
Printed, and written to `benchmarks/results/in_memory_footprint.json` with
its provenance.

Memory does not depend on the machine's load, so this can run beside a
training run:

    python benchmarks/in_memory_footprint.py /path/imagenette-128px --protocol long
"""

import argparse
import os
import resource

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "in_memory_footprint.json")


def resident_gb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the protocol's dataset: an ImageFolder path or a dataset name")
    parser.add_argument("--protocol", default="long")
    parser.add_argument("--limit-gb", type=float, default=4.0)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)

    stages = []

    def stage(name):
        stages.append({"stage": name, "resident_gb": resident_gb(), "peak_gb": peak_gb()})
        print(f"{name:>24}: resident {stages[-1]['resident_gb']:.2f} GB, peak so far {stages[-1]['peak_gb']:.2f} GB",
              flush=True)

    import keras_introspect as ki
    from keras_introspect import recipes
    from keras_introspect.paths import write_json

    stage("import")
    protocol = ki.benchmark.get(args.protocol, dataset=args.data)
    arrays = ki.data.load_arrays(args.data)
    stage("arrays loaded")
    splits = recipes.make_splits(arrays, protocol, seed=0)
    stage("pipelines built")
    for _ in splits.train_with_ids:
        pass
    for _ in splits.test:
        pass
    stage("one epoch and test read")
    loaded = arrays.x_train.nbytes + arrays.x_test.nbytes
    peak = max(s["peak_gb"] for s in stages)
    report = {
        "protocol": args.protocol, "dataset": os.path.basename(os.path.normpath(str(args.data))),
        "batch_size": protocol.batch_size, "images": int(len(arrays.y_train) + len(arrays.y_test)),
        "image_dtype": str(arrays.x_train.dtype), "loaded_gb": loaded / 1e9,
        "float32_gb": loaded * 4 / arrays.x_train.itemsize / 1e9, "stages": stages, "peak_gb": peak,
        "limit_gb": args.limit_gb, "within_limit": peak < args.limit_gb, **ki.benchmark.provenance(),
    }
    print(f"{report['images']} images ({report['loaded_gb']:.2f} GB as {report['image_dtype']}, "
          f"{report['float32_gb']:.2f} GB as float32): peak {peak:.2f} GB (limit {args.limit_gb:g} GB)", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, report, indent=2)
    print(f"Wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
