"""Export a trained IL model into saved_models/<name>/ and write its README from a real evaluation.

    # the ResNet-20 on CIFAR-10, trained by the CLI (TRAINING["il_resnet20_cifar10"]):
    python saved_models/make_saved_model.py il_resnet20_cifar10 --data CIFAR10_DIR \\
        --run-dir RUN_DIR --log RUN.log
    # the ResNet-18/2 on Imagenette, trained by the long protocol's sweep with --save-models:
    python saved_models/make_saved_model.py il_resnet18w32_imagenette --data IMAGENETTE_DIR \\
        --record benchmarks/results/long_protocol.jsonl --config il_cam_mass_warmup --seed 0 \\
        --model MODELS/long-il_cam_mass_warmup-seed0.keras --log benchmarks/results/long_protocol.log

Writes, under saved_models/<name>/: `1/` (the SavedModel, TF Serving's version folder, with the
training normalization inside: requests carry raw 0-255 pixels), `model.keras` (the trained model
without optimizer state, for notebooks), `training.log`, `history.json`, `request.json` and
`response.json` (a REST example made from the first test image and answered by the SavedModel),
`metadata.json` and `README.md`. Every number comes from this evaluation or the training record.
A name that already exists is refused: delete the folder deliberately to regenerate it.
"""

import argparse
import json
import os
import pathlib
import re
import shutil

import keras
import numpy as np
import tensorflow as tf

import keras_introspect as ki
from keras_introspect.benchmark import provenance, report

HERE = pathlib.Path(__file__).parent

TRAINING = {
    "il_resnet20_cifar10": dict(
        title="IL-trained ResNet-20 on CIFAR-10", dataset="CIFAR-10", test_split="the 10,000 CIFAR-10 test images",
        command="keras-introspect train --dataset CIFAR10_DIR --arch resnet20 --epochs 10 --lr 0.1 "
                "--batch-size 128 --seed 0 --output RUN_DIR --verbose 2",
    ),
    "il_resnet18w32_imagenette": dict(
        title="IL-trained ResNet-18 (half width) on Imagenette, 128 px", dataset="Imagenette (10 ImageNet classes)",
        test_split="the 3,925 Imagenette test (val) photos",
        command="bash benchmarks/run_long_protocol.sh IMAGENETTE_DIR 3   # its il_cam_mass_warmup run, seed 0",
    ),
}


def training_record(args):
    """(normalization, history, facts about the training run) from a CLI run or a sweep record."""
    if args.run_dir:
        run = json.loads(pathlib.Path(args.run_dir, "metrics.json").read_text())
        history = json.loads(pathlib.Path(args.run_dir, "history.json").read_text())
        facts = {"epochs": run["epochs"], "train_seconds": run["train_seconds"], "train_images": run["train_size"],
                 "options": run["options"]}
        return run["normalization"], history, facts
    records = [r for r in report.load(args.record) if r["config"] == args.config and r["seed"] == args.seed]
    if len(records) != 1:
        raise SystemExit(f"{args.record}: expected one record of {args.config} seed {args.seed}, found {len(records)}")
    r = records[0]
    times = r["history"].get("epoch_seconds")
    facts = {"epochs": r["epochs"], "train_seconds": sum(times) if times else r["wall_seconds"],
             "train_images": r["train_size"],
             "options": r["options"], "protocol": r["protocol"], "train_commit": r["commit"],
             "train_date": r["date"], "train_machine": r["machine"], "recorded_test_accuracy": r["final_accuracy"]}
    return r["normalization"], r["history"], facts


def training_log(args):
    """The run's own lines of its log: epoch summaries and the run's messages, without TensorFlow's start-up noise."""
    text = pathlib.Path(args.log).read_text(errors="replace")
    if args.config:  # a sweep log holds many runs: keep the last attempt of this one
        starts = [m.start() for m in re.finditer(rf"^=== {re.escape(args.config)} seed {args.seed}\b.*$", text, re.M)]
        end = re.search(rf"^=== {re.escape(args.config)} seed {args.seed}: final.*$", text, re.M)
        if not starts or not end:
            raise SystemExit(f"{args.log} has no finished {args.config} seed {args.seed}")
        text = text[[s for s in starts if s < end.start()][-1]:end.end()]
    lines = []
    for line in text.splitlines():
        line = line.split("\r")[-1]
        if "\x1b[" in line:  # a progress bar: keep its final state, which ends with the epoch's metrics
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            line = line.split("\u2501")[-1] if "val_" in line else ""
            line = re.sub(r"^.*?(\d+/\d+)", r"\1", line) if line else ""
        if not line or line.startswith(("I0000", "WARNING: All log", "To enable the following")) or "self.data_adapter" in line:
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def evaluate(path, images, labels, batch=250):
    served = tf.saved_model.load(str(path))
    correct = 0
    for start in range(0, len(labels), batch):
        probs = served.signatures["serving_default"](images=tf.constant(images[start:start + batch]))["probabilities"]
        correct += int((np.argmax(probs.numpy(), -1) == labels[start:start + batch]).sum())
    return correct / len(labels), served


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(TRAINING))
    parser.add_argument("--data", required=True, help="the dataset's image folder (train/ and test/)")
    parser.add_argument("--run-dir", help="a finished `keras-introspect train` run")
    parser.add_argument("--record", help="a sweep's results.jsonl (with --config, --seed, --model)")
    parser.add_argument("--config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="the sweep run's saved .keras model")
    parser.add_argument("--log", required=True, help="the training log")
    args = parser.parse_args(argv)
    if bool(args.run_dir) == bool(args.record):
        parser.error("give either --run-dir or --record (with --config and --model)")
    target = HERE / args.name
    if target.exists():
        raise SystemExit(f"{target} exists; delete it deliberately (git keeps the old one) to regenerate it")
    spec = TRAINING[args.name]
    normalization, history, facts = training_record(args)
    model = keras.saving.load_model(args.model or os.path.join(args.run_dir, "model.keras"))
    arrays = ki.data.load_arrays(args.data)  # raw pixels 0-255, center-cropped to the training size
    target.mkdir()
    try:
        version = ki.export.export_for_serving(model, HERE, args.name, version=1, normalization=normalization)
        accuracy, served = evaluate(version, arrays.x_test.astype("float32"), arrays.y_test)
        ki.recipes.plain_copy(model).save(target / "model.keras")
        (target / "training.log").write_text(training_log(args))
        (target / "history.json").write_text(json.dumps(history, indent=1))
        ki.export.write_rest_example(served, arrays.x_test[:1].astype("float32"), target)
    except BaseException:
        shutil.rmtree(target)
        raise
    response = json.loads((target / "response.json").read_text())["outputs"]
    image_shape = list(arrays.x_test.shape[1:])
    map_shape = list(np.asarray(response["explanation"]).shape[1:])
    metadata = {
        "name": args.name, "test_accuracy": accuracy, "test_images": int(len(arrays.y_test)),
        "class_names": list(arrays.class_names), "image_shape": image_shape, "explanation_shape": map_shape,
        "normalization": normalization, "training_command": spec["command"], **facts,
        "size_bytes": sum(f.stat().st_size for f in (target / "1").rglob("*") if f.is_file()),
        "export_command": "python saved_models/make_saved_model.py " + " ".join(
            f"{a}" for a in [args.name] + [f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                           if v is not None and k != "name"]),
        **{f"export_{k}": v for k, v in provenance().items()},
    }
    (target / "metadata.json").write_text(json.dumps(metadata, indent=2))
    predicted = int(response["class_index"][0])
    (target / "README.md").write_text(README.format(
        **spec, name=args.name, accuracy=100 * accuracy, m=metadata, minutes=metadata["train_seconds"] / 60,
        # Histories written since epochs are timed sum every part of a resumed run.
        timing="the sum of its epochs' times" if "epoch_seconds" in history
        else "counting only its last part when it was resumed",
        size=metadata["size_bytes"] / 2**20, classes=", ".join(arrays.class_names),
        shape=", ".join(map(str, image_shape)), map_shape=" × ".join(map(str, map_shape)),
        n_classes=len(arrays.class_names), true=arrays.class_names[int(arrays.y_test[0])],
        predicted=arrays.class_names[predicted], probability=response["probabilities"][0][predicted],
        options=json.dumps(facts["options"]) if facts["options"] else "the defaults",
    ))
    print(json.dumps({k: v for k, v in metadata.items() if k != "class_names"}, indent=2))


README = """# {title} (TF SavedModel)

A `keras_introspect.IntrospectiveModel` ({options}) trained on {m[train_images]} images of
{dataset} for {m[epochs]} epochs.

* **Test accuracy: {accuracy:.2f}%** on {test_split}, measured through this SavedModel by
  `saved_models/make_saved_model.py`; `tests/test_saved_models.py` re-checks it.
* Trained with `{m[training_command]}` (log: `training.log`, curves: `history.json`; the run
  recorded {minutes:.0f} minutes on 2 CPU cores shared with other jobs, {timing}), exported with
  `{m[export_command]}`.
* Exported at commit {m[export_commit]} on {m[export_date]} ({m[export_machine]}); {size:.1f} MiB.
* Classes (index order): {classes}.

## Files

| path | what |
|---|---|
| `1/` | the SavedModel: version 1 of this model in TensorFlow Serving's `<name>/<version>/` layout |
| `model.keras` | the trained Keras model (no optimizer state): `keras.saving.load_model` with `keras_introspect` imported |
| `metadata.json` | accuracy, classes, normalization, commands, provenance |
| `request.json`, `response.json` | a REST request made from the first test image, and the SavedModel's answer to it |

## Signatures

Both take **raw images**: float32 `(batch, {shape})`, RGB pixel values 0–255; the training
normalization (`metadata.json`) is applied inside.

| signature | inputs | outputs |
|---|---|---|
| `serving_default` | `images` | `probabilities` (batch, {n_classes}) |
| `explain` | `images`, `class_index` int32 (batch,), `-1` = the predicted class | `probabilities`, `class_index`, `explanation` (batch, {map_shape}): the CAM self-explanation |

A request of the wrong shape, an empty batch or a class index out of range is answered with an error
message, not a result.

## Serve with TensorFlow Serving

```bash
docker run -p 8501:8501 -v "$PWD/saved_models/{name}:/models/{name}" -e MODEL_NAME={name} tensorflow/serving
curl -X POST http://localhost:8501/v1/models/{name}:predict -d @saved_models/{name}/request.json
```

`request.json` asks the `explain` signature about the first test image (a {true}) with
`class_index` −1; `response.json` is the answer: `{{"outputs": {{"probabilities": [[...{n_classes}...]],
"class_index": [...], "explanation": [[...]]}}}}` — here the predicted class is {predicted}
(probability {probability:.3f}). Without `signature_name` a request goes to `serving_default` and the
answer is `{{"outputs": [[...{n_classes} probabilities...]]}}`.

## Python

```python
import json, numpy as np, requests, tensorflow as tf
body = json.load(open("saved_models/{name}/request.json"))
out = requests.post("http://localhost:8501/v1/models/{name}:predict", json=body).json()["outputs"]

# or without a server, the same answer (keras_introspect.export.call_like_serving does this):
served = tf.saved_model.load("saved_models/{name}/1")
out = served.signatures["explain"](images=tf.constant(body["inputs"]["images"], tf.float32),
                                   class_index=tf.constant(body["inputs"]["class_index"], tf.int32))
```
"""

if __name__ == "__main__":
    main()
