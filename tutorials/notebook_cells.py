"""The tutorials' cells, as Python data: `make_notebooks.py` writes and runs them.

Keeping the notebooks' source here (reviewable as code) and generating the
.ipynb files means the committed notebooks always carry the outputs of a
real run of this source.
"""

REPO = "https://github.com/keras-introspect/keras-introspect"

SETUP = f'''# Colab: install keras-introspect from the repository (elsewhere: `pip install -e .` in a clone).
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{REPO}"], check=True)

import keras, numpy as np, tensorflow as tf
import matplotlib.pyplot as plt
import keras_introspect as ki

QUICK = os.environ.get("KERAS_INTROSPECT_QUICK") == "1"   # tiny budgets (CI)
DATA = os.environ.get("KERAS_INTROSPECT_DATA")            # a local ImageFolder copy of CIFAR-10
print("TensorFlow", tf.__version__, "| Keras", keras.__version__, "| keras-introspect", ki.__version__)
print("Accelerators:", tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU") or "none (CPU)")
print("Quick mode:", QUICK)'''

LOAD = '''# CIFAR-10 through tensorflow-datasets (downloads on Colab), or a local ImageFolder copy.
arrays = ki.data.load_arrays(DATA) if DATA else ki.data.load_arrays("cifar10", download=True)
TRAIN_SIZE, EPOCHS = (1024, 2) if QUICK else (None, 30)
splits = ki.data.make_pipelines(arrays, batch_size=128, train_size=TRAIN_SIZE, seed=0)
print(splits.num_train, "training and", splits.num_test, "test images of", splits.class_names)'''


def badge(name):
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({REPO.replace('https://github.com', 'https://colab.research.google.com/github')}/blob/main/tutorials/{name})")


NOTEBOOKS = {}

NOTEBOOKS["01_quickstart.ipynb"] = [
    ("md", f"""# Introspective learning in five minutes

{badge("01_quickstart.ipynb")}

A classifier normally learns from one signal: the labels. *Introspective learning* (Gu, Wu & Tresp,
ACCV 2020) adds a second one, produced by the model itself. At every training step the model
**explains** its prediction for every class, **compares** the explanation of the true class with the
explanations of the other classes, and turns those similarities into a **soft label**: classes whose
evidence looks like the true class's get a little probability mass. The model then distils that soft
label into itself, the way a student distils a teacher — except that there is no teacher.

In this notebook we train a ResNet-20 on CIFAR-10 with `ki.IntrospectiveModel` and with standard
training side by side, compare them, and save and reload the model. Everything is plain Keras:
`compile`, `fit`, `evaluate`, `save`."""),
    ("code", SETUP),
    ("md", """## Data

`ki.data` loads CIFAR-10 through tensorflow-datasets (or from a local folder of images), normalizes
it and applies the standard CIFAR augmentation (pad by 4, random crop, horizontal flip) in `tf.data`.
In quick mode we use 1,024 training images and 2 epochs so that the notebook runs in a minute on a CPU;
on a Colab GPU use the full data and 30 epochs."""),
    ("code", LOAD),
    ("md", """## Two models, one recipe

`IntrospectiveModel` wraps any Functional or Sequential classifier (here `ki.architectures.resnet20`,
which outputs logits). Its defaults are documented with their reasons in `docs/method.md`: class
activation maps (CAM) at the last convolutional layer as the explanation — free to compute —, cosine
similarity of the centered maps, and a *mass-controlled* soft label that keeps 90% on the true class
and spreads 10% over the others in proportion to how similar their explanations are. Distillation
starts after a warm-up — 5 epochs of plain cross-entropy, then a 5-epoch ramp — because the
explanations of an untrained network are noise (the `alpha` column of the logs shows it). In quick
mode (2 epochs) the warm-up therefore covers the whole run; with 30 epochs IL distils for 25.

The comparison is only fair if both models get the same budget: same architecture, optimizer,
schedule, epochs and data order. `ki.recipes.sgd` is the shared optimizer."""),
    ("code", '''def train(model):
    steps = -(-splits.num_train // 128)
    model.compile(optimizer=ki.recipes.sgd(0.05, EPOCHS, steps), metrics=["accuracy"])
    return model.fit(splits.train, validation_data=splits.test, epochs=EPOCHS, verbose=2).history

keras.utils.set_random_seed(0)
il_model = ki.IntrospectiveModel(ki.architectures.resnet20(num_classes=10))
il_history = train(il_model)

keras.utils.set_random_seed(0)
standard_model = ki.StandardModel(ki.architectures.resnet20(num_classes=10))
standard_history = train(standard_model)'''),
    ("md", """Besides the loss and accuracy, the introspective model logs its two loss terms
(`cross_entropy`, `distillation`) and two diagnostics of the soft labels it teaches itself:
`target_true_mass` (the mass on the true class, 0.9 by construction of the default) and
`target_entropy` (how spread out the rest is)."""),
    ("code", '''fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, history in [("introspective", il_history), ("standard", standard_history)]:
    axes[0].plot(history["loss"], label=f"{name} (train)")
    axes[1].plot(history["val_accuracy"], label=name)
axes[0].set_title("training loss"); axes[1].set_title("test accuracy")
for ax in axes: ax.set_xlabel("epoch"); ax.legend(); ax.grid(alpha=0.3)
plt.show()
print(f"final test accuracy: introspective {il_history['val_accuracy'][-1]:.3f}, "
      f"standard {standard_history['val_accuracy'][-1]:.3f}")'''),
    ("md", """One run per model says little: differences of a point or two are within seed noise.
`keras-introspect benchmark` (notebook 05) runs several seeds and reports mean ± std; the
measured comparison and its honest status are in `docs/method.md`.

## What the model teaches itself

`soft_targets(x, y)` returns the soft labels for a batch, `explain(x)` the self-explanations."""),
    ("code", '''x, y = splits.x_test[:4], splits.y_test[:4]
q = il_model.soft_targets(x, y).numpy()
for label, row in zip(y, q):
    top = np.argsort(-row)[:3]
    print(f"{splits.class_names[label]:>10}: " + ", ".join(f"{splits.class_names[c]} {row[c]:.3f}" for c in top))'''),
    ("md", """## Save, reload, continue

The model is a registered Keras class: `.keras` files keep the backbone, the introspection settings
and the optimizer state, so a reloaded model predicts identically and can continue training."""),
    ("code", '''il_model.save("il.keras")
reloaded = keras.saving.load_model("il.keras")
print(type(reloaded).__name__, "identical predictions:",
      np.array_equal(reloaded.predict(x, verbose=0), il_model.predict(x, verbose=0)))
reloaded.fit(splits.train, epochs=1, verbose=2)'''),
]

NOTEBOOKS["02_self_explanations.ipynb"] = [
    ("md", f"""# What the model sees: self-explanations and the soft labels they make

{badge("02_self_explanations.ipynb")}

Introspective learning stands or falls with its explanations. This notebook looks at them: the
library's explainers next to tf-explain's, how similarities between class explanations turn into a
soft label, the class-similarity structure a model learns this way compared with a teacher's
confusions, and tf-explain callbacks writing explanations to TensorBoard during training."""),
    ("code", SETUP),
    ("code", LOAD),
    ("code", '''keras.utils.set_random_seed(0)
model = ki.IntrospectiveModel(ki.architectures.resnet20(10))
model.compile(optimizer=ki.recipes.sgd(0.05, EPOCHS, -(-splits.num_train // 128)), metrics=["accuracy"])
model.fit(splits.train, validation_data=splits.test, epochs=EPOCHS, verbose=2)'''),
    ("md", """## Explainers, ours and tf-explain's

Every explainer in `ki.explainers` computes the maps of **all classes in one call**, inside the
TensorFlow graph, so that the training step can use them. For the methods tf-explain also has, the
test suite checks that the maps are identical to tf-explain's on the same model and inputs; here we
just look at them side by side for the predicted class. (tf-explain post-processes its maps into
normalized grayscale images; we show the raw maps.)"""),
    ("code", '''from tf_explain.core.grad_cam import GradCAM as TfxGradCAM
from tf_explain.core.vanilla_gradients import VanillaGradients as TfxVanillaGradients

x = splits.x_test[:3]
predicted = np.argmax(model.predict(x, verbose=0), -1)
ours = {
    "CAM (closed form)": ki.explainers.CAM(relu=False)(model, x, predicted)[:, 0],
    "Grad-CAM": ki.explainers.GradCAM(relu=False)(model, x, predicted)[:, 0],
    "vanilla gradients": ki.explainers.spatial_reduce(ki.explainers.VanillaGradients()(model, x, predicted)[:, 0]),
    "SmoothGrad": ki.explainers.spatial_reduce(ki.explainers.SmoothGrad(num_samples=8, noise=0.2, seed=0)(model, x, predicted)[:, 0]),
}
theirs = {
    "tf-explain Grad-CAM": np.stack([TfxGradCAM.generate_ponderated_output(*TfxGradCAM.get_gradients_and_filters(
        model.backbone, x[i:i + 1], "features", int(predicted[i]), False))[0].numpy() for i in range(3)]),
    "tf-explain vanilla": np.stack([np.abs(TfxVanillaGradients.compute_gradients(x[i:i + 1], model.backbone, int(predicted[i])).numpy()[0]).max(-1) for i in range(3)]),
}
panels = {**ours, **theirs}
fig, axes = plt.subplots(3, len(panels) + 1, figsize=(2 * (len(panels) + 1), 6))
for i in range(3):
    axes[i, 0].imshow(splits.denormalize(x[i])); axes[i, 0].set_title(splits.class_names[predicted[i]], fontsize=8)
    for j, (name, maps) in enumerate(panels.items(), start=1):
        axes[i, j].imshow(np.asarray(maps[i]), cmap="RdBu_r" if "CAM" in name else "magma")
        axes[i, j].set_title(name, fontsize=7)
for ax in axes.ravel(): ax.axis("off")
plt.tight_layout(); plt.show()
print("max |ours - tf-explain| for Grad-CAM:", float(np.abs(np.asarray(ours["Grad-CAM"]) - theirs["tf-explain Grad-CAM"]).max()))'''),
    ("md", """## From explanation similarity to a soft label

For one image we take the CAM maps of all ten classes, center each (removing the shared
"object is here" component), and compute the cosine similarity of every class's map with the true
class's. The default *mass-controlled* soft label keeps 1 − ε on the true class and spreads ε over
the others in proportion to exp(similarity / τ). Without centering, all maps look alike and the soft
label degenerates towards uniform smoothing — the failure mode documented in `docs/method.md`."""),
    ("code", '''i = 0
maps = ki.explainers.CAM(relu=False)(model, x[i:i + 1])            # (1, 10, 8, 8)
label = np.array([splits.y_test[i]])
builder = model.target_builder
sims_centered = builder.similarities(maps, label).numpy()[0]
sims_raw = ki.ExplanationSoftTargets(center=False).similarities(maps, label).numpy()[0]
q = builder(maps, label).numpy()[0]

fig, axes = plt.subplots(1, 3, figsize=(13, 3))
names = [c[:5] for c in splits.class_names]
axes[0].bar(names, sims_raw); axes[0].set_title("cosine similarity, raw maps")
axes[1].bar(names, sims_centered); axes[1].set_title("cosine similarity, centered maps")
axes[2].bar(names, q); axes[2].set_yscale("log"); axes[2].set_title(f"soft label (true: {splits.class_names[label[0]]})")
for ax in axes: ax.tick_params(axis="x", rotation=90)
plt.tight_layout(); plt.show()'''),
    ("md", """## Class similarity: introspection vs a teacher's confusions

Averaging the soft labels over the test set, class by class, gives the class-similarity matrix the
model teaches itself. A teacher's dark knowledge has the same shape: the average of its softmax
outputs per true class. We compare the IL model's self-taught matrix with a standard model's averaged
predictions (acting as the teacher here). On the full budget the two share their strongest pairs
(cat–dog, automobile–truck); in quick mode the models are barely trained."""),
    ("code", '''def per_class_mean(rows, labels):
    return np.stack([rows[labels == c].mean(0) for c in range(10)])

n = 500 if QUICK else 5000
xs, ys = splits.x_test[:n], splits.y_test[:n]
targets = np.concatenate([model.soft_targets(xs[s:s + 250], ys[s:s + 250]).numpy() for s in range(0, n, 250)])
il_matrix = per_class_mean(targets, ys)

keras.utils.set_random_seed(1)
teacher = ki.StandardModel(ki.architectures.resnet20(10))
teacher.compile(optimizer=ki.recipes.sgd(0.05, EPOCHS, -(-splits.num_train // 128)), metrics=["accuracy"])
teacher.fit(splits.train, epochs=EPOCHS, verbose=0)
teacher_matrix = per_class_mean(keras.ops.softmax(teacher.predict(xs, verbose=0)).numpy(), ys)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, matrix, title in [(axes[0], il_matrix, "IL soft labels (off-diagonal)"), (axes[1], teacher_matrix, "teacher predictions (off-diagonal)")]:
    shown = matrix.copy(); np.fill_diagonal(shown, np.nan)
    im = ax.imshow(shown, cmap="viridis"); ax.set_title(title)
    ax.set_xticks(range(10)); ax.set_xticklabels(names, rotation=90); ax.set_yticks(range(10)); ax.set_yticklabels(names)
    plt.colorbar(im, ax=ax, fraction=0.046)
plt.tight_layout(); plt.show()
off = ~np.eye(10, dtype=bool)
print("correlation of the off-diagonal structures:", np.corrcoef(il_matrix[off], teacher_matrix[off])[0, 1].round(3))'''),
    ("md", """## tf-explain callbacks: explanations in TensorBoard during training

tf-explain's callbacks write explanation images to TensorBoard at the end of every epoch. They need a
Functional model; our callback subclass hands them the wrapped backbone while it explains, and
is attached to the introspective model's `fit` like any Keras callback. Open the log
directory with `%tensorboard --logdir logs/explanations` on Colab."""),
    ("code", '''from tf_explain.callbacks.grad_cam import GradCAMCallback

class BackboneGradCAM(GradCAMCallback):
    """tf-explain's Grad-CAM callback, explaining the wrapped Functional backbone."""
    def on_epoch_end(self, epoch, logs=None):
        wrapper = self.model
        self.set_model(wrapper.backbone)
        try:
            super().on_epoch_end(epoch, logs)
        finally:
            self.set_model(wrapper)

callback = BackboneGradCAM(validation_data=(splits.x_test[:8], None), class_index=3,
                           layer_name="features", output_dir="logs/explanations")
model.fit(splits.train, epochs=1, callbacks=[callback], verbose=2)
print(sorted(os.listdir("logs/explanations")))'''),
]

NOTEBOOKS["03_distributed_training.ipynb"] = [
    ("md", f"""# Distributed training: several GPUs, TPUs, mixed precision

{badge("03_distributed_training.ipynb")}

The training step of every method in keras-introspect reduces its loss the way Keras's own losses do
under `tf.distribute`, so the same code trains on one device, on all GPUs of a machine
(`MirroredStrategy`), on a TPU (`TPUStrategy`) and across machines (`MultiWorkerMirroredStrategy`,
through `ki.distribute.fit_distributed`). This notebook shows the first three; `docs/distributed.md`
covers clusters. On a CPU-only runtime the strategy simply has one replica."""),
    ("code", SETUP),
    ("code", LOAD),
    ("md", """## Pick a strategy

`ki.distribute.get_strategy("auto")` returns `MirroredStrategy` when there are several GPUs and the
default strategy otherwise; `"tpu"` connects to a Colab TPU. Build and compile **inside** the scope."""),
    ("code", '''try:
    strategy = ki.distribute.get_strategy("tpu")
except ValueError:
    strategy = ki.distribute.get_strategy("mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "auto")
replicas = strategy.num_replicas_in_sync
print(type(strategy).__name__, "with", replicas, "replica(s)")'''),
    ("md", """## Batch size and learning rate

Keep the per-replica batch and multiply the global batch by the number of replicas; scale the
learning rate linearly with the global batch (Goyal et al., 2017). The loss is a mean over the global
batch, so nothing else changes — IL's α, T, ε and τ are per-example quantities."""),
    ("code", '''PER_REPLICA = 128
GLOBAL_BATCH = PER_REPLICA * replicas
LR = 0.05 * GLOBAL_BATCH / 128
splits = ki.data.make_pipelines(arrays, batch_size=GLOBAL_BATCH, train_size=TRAIN_SIZE, seed=0)
print("global batch", GLOBAL_BATCH, "learning rate", LR)'''),
    ("md", """## Mixed precision

On GPUs use `mixed_float16` (Keras wraps the optimizer in a `LossScaleOptimizer`, and the training
step applies `optimizer.scale_loss`); on TPUs and recent CPUs `mixed_bfloat16`. Logits,
explanations, soft labels and losses are always computed in float32."""),
    ("code", '''policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
keras.mixed_precision.set_global_policy(policy)
with strategy.scope():
    backbone = ki.architectures.resnet20(10)
    model = ki.IntrospectiveModel(backbone)
    model.compile(optimizer=ki.recipes.sgd(LR, EPOCHS, -(-splits.num_train // GLOBAL_BATCH)), metrics=["accuracy"])
print("compute dtype", backbone.layers[1].compute_dtype, "| optimizer", type(model.optimizer).__name__)
history = model.fit(splits.train, validation_data=splits.test, epochs=EPOCHS, verbose=2)
keras.mixed_precision.set_global_policy("float32")'''),
    ("md", """## Synchronized BatchNorm

Each replica normally normalizes with its own share of the batch. With small per-replica batches,
`ki.distribute.synchronize_batchnorm(backbone)` makes BatchNorm use the statistics of the global
batch instead (`--sync-bn` on the command line)."""),
    ("code", '''synced = ki.distribute.synchronize_batchnorm(ki.architectures.resnet20(10))
print(sum(isinstance(l, keras.layers.BatchNormalization) and l.synchronized for l in synced.layers), "synchronized BatchNorm layers")'''),
    ("md", """## The same from the shell

```bash
keras-introspect train --dataset cifar10 --strategy mirrored --batch-size 512 --lr 0.2 --sync-bn
# one process per machine, TF_CONFIG set on each (docs/distributed.md):
keras-introspect train --dataset cifar10 --strategy multiworker --batch-size 512 --lr 0.2
```"""),
]

NOTEBOOKS["04_export_and_serve.ipynb"] = [
    ("md", f"""# Export and serve: predictions *and* explanations

{badge("04_export_and_serve.ipynb")}

A model that explains itself during training can explain itself in production too.
`ki.export.export_saved_model` writes a TensorFlow SavedModel with two signatures:

* `serving_default(images) → probabilities`
* `explain(images, class_index) → probabilities, class_index, explanation` (`class_index = -1`
  explains the predicted class).

We export a model, inspect it with `saved_model_cli`, call it from Python, and show the TensorFlow
Serving REST request that serves it."""),
    ("code", SETUP),
    ("code", LOAD),
    ("code", '''keras.utils.set_random_seed(0)
model = ki.IntrospectiveModel(ki.architectures.resnet20(10))
model.compile(optimizer=ki.recipes.sgd(0.05, EPOCHS, -(-splits.num_train // 128)), metrics=["accuracy"])
model.fit(splits.train, epochs=EPOCHS, verbose=2)
path = ki.export.export_saved_model(model, "exported/1")   # TF Serving wants a version directory
print(sorted(os.listdir(path)))'''),
    ("md", """## Inspect the signatures

`saved_model_cli` ships with TensorFlow. It lists the inputs and outputs of each signature and can
run them on `.npy` files."""),
    ("code", '''print(subprocess.run(["saved_model_cli", "show", "--dir", path, "--tag_set", "serve", "--signature_def", "explain"],
                     capture_output=True, text=True).stdout)
np.save("batch.npy", splits.x_test[:2])
np.save("classes.npy", np.array([-1, 3], dtype="int32"))
run = subprocess.run(["saved_model_cli", "run", "--dir", path, "--tag_set", "serve", "--signature_def", "explain",
                      "--inputs", "images=batch.npy;class_index=classes.npy", "--outdir", "cli_out", "--overwrite"],
                     capture_output=True, text=True)
print(run.stdout[-500:] or run.stderr[-500:])
print(sorted(os.listdir("cli_out")))'''),
    ("md", """## Call it from Python

The reloaded SavedModel needs neither keras-introspect nor the model code — only TensorFlow."""),
    ("code", '''served = tf.saved_model.load(path)
out = served.signatures["explain"](images=tf.constant(splits.x_test[:3]), class_index=tf.constant([-1, -1, -1]))
fig, axes = plt.subplots(2, 3, figsize=(7, 4.5))
for i in range(3):
    axes[0, i].imshow(splits.denormalize(splits.x_test[i]))
    axes[0, i].set_title(splits.class_names[int(out["class_index"][i])], fontsize=9)
    axes[1, i].imshow(out["explanation"][i].numpy(), cmap="RdBu_r")
for ax in axes.ravel(): ax.axis("off")
plt.tight_layout(); plt.show()
print("same as model.explain:", np.allclose(out["explanation"].numpy(), model.explain(splits.x_test[:3]).numpy(), atol=1e-5))'''),
    ("md", """Bad requests fail loudly instead of returning a silent wrong answer:"""),
    ("code", '''for bad in [dict(images=tf.constant(splits.x_test[:2]), class_index=tf.constant([0, 10])),
            dict(images=tf.zeros((2, 16, 16, 3)), class_index=tf.constant([0, 1]))]:
    try:
        served.signatures["explain"](**bad)
    except tf.errors.InvalidArgumentError as error:
        print("rejected:", error.message.splitlines()[0][:120])'''),
    ("md", """## TensorFlow Serving

Serve the directory that contains the version folder `1/`:

```bash
docker run -p 8501:8501 -v "$PWD/exported:/models/il" -e MODEL_NAME=il tensorflow/serving
```

A REST request to the `explain` signature (inputs by name, one row per image):"""),
    ("code", '''import json
request = {"signature_name": "explain",
           "inputs": {"images": splits.x_test[:1].tolist(), "class_index": [-1]}}
print("POST http://localhost:8501/v1/models/il:predict")
print(json.dumps(request)[:200], "...")
# With the server running:  requests.post(url, json=request).json()["outputs"] has
# "probabilities", "class_index" and "explanation", exactly the signature's outputs.'''),
]

NOTEBOOKS["05_compare_methods.ipynb"] = [
    ("md", f"""# Does introspection help? IL against its rivals

{badge("05_compare_methods.ipynb")}

Introspective learning claims to beat standard training and output regularizers, and to compete with
learning from a teacher or from peers without needing either. keras-introspect ships every
comparator as a Keras model with the same interface:

| method | what the student learns from |
|---|---|
| `standard` | labels |
| `label_smoothing`, `confidence_penalty` | labels, with less confident targets / outputs |
| `kd` | a trained teacher's softened outputs (also with shuffled or uniform non-true classes) |
| `tfkd`, `tfkd_self` | a virtual teacher / a pre-trained copy of itself (teacher-free KD) |
| `dml` | a peer trained alongside (deep mutual learning) |
| `frskd` | an auxiliary self-teacher refining its features (FRSKD) |
| `isl` | a teacher, with training instances fed easy → hard (instance-level sequence learning) |
| `il` | its own explanations |

`keras-introspect benchmark` (or `ki.benchmark.run_one` in Python) trains them all on one recipe and
reports mean ± std over seeds. Here we run the `cpu` protocol's recipe with tiny budgets in quick mode;
the committed results of real runs are in `benchmarks/results/`."""),
    ("code", SETUP),
    ("code", '''arrays = ki.data.load_arrays(DATA) if DATA else ki.data.load_arrays("cifar10", download=True)
protocol = ki.benchmark.get("cpu", dataset=DATA or "cifar10", **({"epochs": 2, "train_size": 1024} if QUICK else {}))
METHODS = ["standard", "label_smoothing", "kd", "dml", "tfkd", "frskd", "isl", "il"]
SEEDS = [0] if QUICK else [0, 1, 2]
print(protocol)'''),
    ("md", """## A teacher for the teacher-based methods

`kd` and `isl` need a teacher. The benchmark trains the protocol's teacher once: standard training
of the same architecture for twice as many epochs on the same data."""),
    ("code", '''teacher = ki.benchmark.train_teacher(arrays, protocol, "teacher.keras", verbose=0)
print(teacher)'''),
    ("code", '''records = []
for seed in SEEDS:
    for method in METHODS:
        record = ki.benchmark.run_one(arrays, protocol, method, {}, seed, teacher="teacher.keras", verbose=0)
        records.append(record)
        print(f"{method:18s} seed {seed}: {record['final_accuracy']:.3f}  ({record['step_seconds'] * 1000:.0f} ms/step)")'''),
    ("md", """## The report

The same report `keras-introspect benchmark` writes: a Markdown table with provenance and two plots
(final accuracy with error bars, learning curves)."""),
    ("code", '''import json
with open("results.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\\n" for r in records)
table = ki.benchmark.write_report("results.jsonl", "report")
from IPython.display import Image, Markdown, display
display(Markdown(table))
for name in sorted(os.listdir("report")):
    if name.endswith(".png"):
        display(Image(os.path.join("report", name)))'''),
    ("md", """## Reading the results honestly

With one seed and two epochs (quick mode) the ranking is noise. Even at the `cpu` protocol's budget, a
one-point difference needs several seeds to be believed, and the regime matters: with short
schedules on a data subset, regularizers such as label smoothing tend to *hurt*, and a method can
only show what it is for in a regime where an established method (a teacher, a peer) helps at all.
`docs/method.md` records what we measured, including where IL does not (yet) win."""),
]
