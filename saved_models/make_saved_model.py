"""Export the committed IL ResNet-20 and write its README from a real evaluation.

Usage (after training it with the command recorded in TRAIN_COMMAND):
    python saved_models/make_saved_model.py RUN_DIR CIFAR10_IMAGEFOLDER

Exports RUN_DIR/model.keras to saved_models/il_resnet20_cifar10/1 with the
normalization baked in (the signatures take raw 0-255 pixels), evaluates the
exported SavedModel on the 10,000 test images, and writes metadata.json and
README.md (every number in it comes from this evaluation or the run).
"""

import json
import os
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_introspect as ki
from keras_introspect.benchmark import provenance

HERE = pathlib.Path(__file__).parent
TARGET = HERE / "il_resnet20_cifar10"
TRAIN_COMMAND = ("keras-introspect train --dataset CIFAR10_IMAGEFOLDER --arch resnet20 --epochs 8 --lr 0.1 "
                 "--batch-size 128 --seed 0 --output runs/il_resnet20_cifar10")


def evaluate(path, x_raw, y):
    served = tf.saved_model.load(str(path))
    correct = 0
    for start in range(0, len(y), 500):
        probs = served.signatures["serving_default"](images=tf.constant(x_raw[start:start + 500]))["probabilities"]
        correct += int((np.argmax(probs.numpy(), -1) == y[start:start + 500]).sum())
    return correct / len(y)


def main(run_dir, data_dir):
    arrays = ki.data.load_arrays(data_dir)
    splits = ki.data.make_pipelines(arrays, batch_size=128)  # the training normalization (full train split)
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    version = TARGET / "1"
    ki.export.export_saved_model(model, version, normalization=(splits.mean, splits.std))
    x_raw = arrays.x_test.astype("float32")
    accuracy = evaluate(version, x_raw, arrays.y_test)
    run = json.loads(pathlib.Path(run_dir, "metrics.json").read_text())
    metadata = {
        "test_accuracy": accuracy, "test_images": int(len(arrays.y_test)), "classes": splits.class_names,
        "training_command": TRAIN_COMMAND, "epochs": run["epochs"], "train_seconds": run["train_seconds"],
        "normalization": {"mean": splits.mean.tolist(), "std": splits.std.tolist()},
        "size_bytes": sum(f.stat().st_size for f in version.rglob("*") if f.is_file()),
        **{f"export_{k}": v for k, v in provenance().items()},
    }
    (TARGET / "metadata.json").write_text(json.dumps(metadata, indent=2))
    example = x_raw[:1].round().tolist()
    (TARGET / "README.md").write_text(README.format(
        accuracy=100 * accuracy, epochs=run["epochs"], minutes=run["train_seconds"] / 60,
        command=TRAIN_COMMAND, size=metadata["size_bytes"] / 2**20, classes=", ".join(splits.class_names),
        commit=metadata["export_commit"], date=metadata["export_date"], machine=metadata["export_machine"],
        request=json.dumps({"signature_name": "explain", "inputs": {"images": "[[[[R, G, B], ...]]]",
                                                                    "class_index": [-1]}}),
        pixel=example[0][0][0],
    ))
    print(json.dumps(metadata, indent=2))


README = """# IL-trained ResNet-20 on CIFAR-10 (TF SavedModel)

A ResNet-20 (0.27 M parameters) trained with introspective learning (`ki.IntrospectiveModel`,
default settings) on the 50,000 CIFAR-10 training images for {epochs} epochs.

* **Test accuracy: {accuracy:.2f}%** on the 10,000 CIFAR-10 test images (the JPEG copy in
  `../shared/data`), measured through this SavedModel by `saved_models/make_saved_model.py`;
  `tests/test_saved_models.py` re-checks it. A short CPU budget, not a state-of-the-art model.
* Trained with: `{command}` ({minutes:.0f} minutes on the machine below), then exported with
  `python saved_models/make_saved_model.py runs/il_resnet20_cifar10 CIFAR10_IMAGEFOLDER`.
* Exported at commit {commit} on {date} ({machine}); {size:.1f} MiB.
* Classes (index order): {classes}.

## Signatures

Both take **raw images**: float32 `(batch, 32, 32, 3)`, RGB pixel values 0–255; the training
normalization is applied inside (see `metadata.json`).

| signature | inputs | outputs |
|---|---|---|
| `serving_default` | `images` | `probabilities` (batch, 10) |
| `explain` | `images`, `class_index` int32 (batch,), `-1` = predicted class | `probabilities`, `class_index`, `explanation` (batch, 8, 8): the CAM self-explanation |

Wrong shapes, dtypes or class indices are rejected with an error.

## Serve with TensorFlow Serving

```bash
docker run -p 8501:8501 -v "$PWD/saved_models/il_resnet20_cifar10:/models/il" -e MODEL_NAME=il tensorflow/serving
```

REST request (one image; the first pixel of the first test image is {pixel}):

```bash
curl -X POST http://localhost:8501/v1/models/il:predict -d '{request}'
```

Response:

```json
{{"outputs": {{"probabilities": [[0.01, ...]], "class_index": [3], "explanation": [[[...8 values...], ...]]]}}}}
```

(the shape of the response; values depend on the image). Without `signature_name`, the request goes
to `serving_default` and returns `{{"outputs": [[...10 probabilities...]]}}`.

## Python client

```python
import numpy as np, requests
image = ...  # (32, 32, 3) uint8 RGB
body = {{"signature_name": "explain", "inputs": {{"images": [image.astype("float32").tolist()], "class_index": [-1]}}}}
out = requests.post("http://localhost:8501/v1/models/il:predict", json=body).json()["outputs"]
print(np.argmax(out["probabilities"][0]), np.array(out["explanation"][0]).shape)

# or without a server:
import tensorflow as tf
served = tf.saved_model.load("saved_models/il_resnet20_cifar10/1")
out = served.signatures["explain"](images=tf.constant([image], tf.float32), class_index=tf.constant([-1]))
```
"""

if __name__ == "__main__":
    main(*sys.argv[1:3])
