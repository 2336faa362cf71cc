"""The tutorials' cells, as Python data: `make_notebooks.py` writes and runs them.

Keeping the notebooks' source here (reviewable as code) and generating the
.ipynb files means the committed notebooks always carry the outputs of a
real run of this source. `{results:NAME}` in a Markdown cell is replaced by the
committed benchmark table of that name (see `make_notebooks.TABLES`), and
`{run_times}` by the measured run times of the notebook's modes.
"""

REPO = "https://github.com/keras-introspect/keras-introspect"


def setup(budgets):
    """The first code cell: the mode switch, the install, the hardware, the budgets of this notebook."""
    return f'''# @title Setup {{ display-mode: "form" }}
# quick: a smoke test of every cell (what CI runs) · showcase: the committed outputs, minutes on a CPU ·
# full: the real budget, for a GPU.
MODE = "showcase"  # @param ["quick", "showcase", "full"]
REPO = "{REPO}"   # the only place the repository's address appears
import json, os, pathlib, subprocess, sys
# Before TensorFlow loads: its C++ start-up lines and warnings (not errors) stay out of the outputs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MODE = os.environ.get("KERAS_INTROSPECT_MODE", MODE)  # make_notebooks.py and CI choose the mode this way
IN_COLAB = "google.colab" in sys.modules
if IN_COLAB and not pathlib.Path("keras-introspect").exists():
    # Colab: clone (the notebooks use the committed models and results) and install with the tutorial extras.
    subprocess.run(["git", "clone", "--depth", "1", REPO, "keras-introspect"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "keras-introspect[tutorials]"], check=True)
    sys.path.insert(0, "keras-introspect")
# Elsewhere, in a clone: pip install -e ".[cpu,tutorials]"   (or ".[tf,tutorials]" with a GPU)

import keras, numpy as np, tensorflow as tf
import matplotlib.pyplot as plt
tf.get_logger().setLevel("ERROR")  # TensorFlow's Python INFO lines (one per all-reduce under a strategy)
import keras_introspect as ki

ROOT = pathlib.Path(ki.__file__).resolve().parents[1]   # the repository: saved_models/, benchmarks/
if MODE not in ("quick", "showcase", "full"):
    raise ValueError(f"MODE must be quick, showcase or full, not {{MODE!r}}")
BUDGET = {budgets!r}[MODE]
ACCELERATORS = tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU")
print("TensorFlow", tf.__version__, "| Keras", keras.__version__, "| keras-introspect", ki.__version__)
print("Accelerators:", ACCELERATORS or "none: CPU only")
print("Mode:", MODE, "| budget:", BUDGET)
if MODE == "full" and not ACCELERATORS:
    print("Full mode on a CPU takes hours; on Colab choose Runtime > Change runtime type > GPU.")'''


CIFAR = '''# CIFAR-10: tensorflow-datasets on Colab (downloads once), or a local folder of images
# (KERAS_INTROSPECT_CIFAR10: `train/<class>/*.jpg`, `test/<class>/*.jpg`).
CIFAR10 = os.environ.get("KERAS_INTROSPECT_CIFAR10")
arrays = ki.data.load_arrays(CIFAR10) if CIFAR10 else ki.data.load_arrays("cifar10", download=True)'''


def backup(name):
    """A `BackupAndRestore` so that a run interrupted by a disconnect resumes at its last epoch."""
    return (f'keras.callbacks.BackupAndRestore(os.path.join(os.environ.get("KERAS_INTROSPECT_BACKUPS", "backups"), '
            f'f"{name}-{{MODE}}"))')


def badge(name):
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({REPO.replace('https://github.com', 'https://colab.research.google.com/github')}/blob/main/tutorials/{name})")


MODES = """**Modes.** The first cell has a mode switch (a form field on Colab). *quick* runs every cell on a
tiny budget (a smoke test); *showcase* produced the outputs you see; *full* is the real budget.
{run_times}"""

LEARNED = "## What you learned\n\n"

NOTEBOOKS = {}

# ------------------------------------------------------------------------------------------------
NOTEBOOKS["01_quickstart.ipynb"] = [
    ("md", f"""# Introspective learning: a first model

{badge("01_quickstart.ipynb")}

A classifier normally learns from one signal: the labels. *Introspective learning* (IL; Gu, Wu &
Tresp, ACCV 2020) adds a second one, produced by the model itself. At every training step the model
**explains** its prediction for every class, **compares** the explanation of the true class with the
explanations of the other classes, and turns those similarities into a **soft label**: classes whose
evidence looks like the true class's get a little probability mass. The model distils that soft label
into itself, the way a student distils a teacher — except that there is no teacher.

We train a ResNet-20 on CIFAR-10 with `ki.IntrospectiveModel`, watch the distillation switch on after
its warm-up, look at the soft labels it teaches itself, and save and reload it. Everything is plain
Keras: `compile`, `fit`, `evaluate`, `save`.

{MODES}"""),
    ("code", setup({"quick": dict(train_size=512, epochs=3, warmup=1, ramp=1),
                    "showcase": dict(train_size=10000, epochs=15, warmup=5, ramp=5),
                    "full": dict(train_size=None, epochs=30, warmup=5, ramp=5)})),
    ("md", """## Data

`ki.data` normalizes the images with the training set's statistics and applies the standard CIFAR
augmentation (pad, random crop, horizontal flip) in `tf.data`. The showcase trains on a fixed,
class-balanced subset of 10,000 of the 50,000 training images and tests on all 10,000 test images."""),
    ("code", CIFAR + '''
splits = ki.data.make_pipelines(arrays, batch_size=128, train_size=BUDGET["train_size"], seed=0)
print(splits.num_train, "training and", splits.num_test, "test images of", splits.class_names)'''),
    ("md", """## Train with introspection

`IntrospectiveModel` wraps any Functional classifier (here `ki.architectures.resnet20`, which outputs
logits). Its defaults are documented with their reasons in `docs/method.md`: class activation maps
(CAM) at the last convolutional layer as the explanations — nearly free to compute —, cosine
similarity of the centred maps, and a soft label that keeps 90% on the true class and spreads 10%
over the others in proportion to how similar their explanations are.

The explanations of an untrained network are noise, so distillation waits: `warmup_epochs` of plain
cross-entropy, then its weight `alpha` rises linearly over `ramp_epochs` to 0.5 (the library's
defaults are 5 and 5; quick mode shortens them to fit its 3 epochs). `BackupAndRestore` saves the run
after every epoch, so a Colab disconnect costs at most one epoch: run the cell again."""),
    ("code", f'''keras.utils.set_random_seed(0)
model = ki.IntrospectiveModel(ki.architectures.resnet20(num_classes=10),
                              warmup_epochs=BUDGET["warmup"], ramp_epochs=BUDGET["ramp"])
steps = -(-splits.num_train // 128)
model.compile(optimizer=ki.recipes.sgd(0.05, BUDGET["epochs"], steps), metrics=["accuracy"])
history = model.fit(splits.train, validation_data=splits.test, epochs=BUDGET["epochs"], verbose=2,
                    callbacks=[{backup("quickstart")}]).history
print(f"test accuracy after {{BUDGET['epochs']}} epochs: {{history['val_accuracy'][-1]:.3f}} (10 classes: chance is 0.100)")'''),
    ("md", """**Why epoch 1's test accuracy sits at chance.** After the first epoch the test accuracy is near
chance (0.100) and the test cross-entropy far above ln 10 ≈ 2.3, while the training accuracy is
already above chance.
BatchNormalization trains with each batch's own statistics but evaluates with moving averages of
them, and at Keras's momentum of 0.99 those averages still hold 0.99⁷⁹ ≈ 45% of their initial values
(mean 0, variance 1) after the 79 steps of one epoch. The model is learning; its evaluation statistics
catch up over the next epochs.

Besides loss and accuracy the model logs its two loss terms (`cross_entropy`, `distillation`),
the weight `alpha` of the second, and two diagnostics of the soft labels: `target_true_mass` (the mass
on the true class, 0.9 by construction) and `target_entropy` (how spread out the rest is). The
distillation term is computed from the first step — it is only weighted by zero during the warm-up."""),
    ("code", '''epochs = np.arange(1, len(history["loss"]) + 1)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
axes[0].plot(epochs, history["alpha"], "o-"); axes[0].set_title("alpha: weight of self-distillation")
axes[1].plot(epochs, history["cross_entropy"], label="cross-entropy (labels)")
axes[1].plot(epochs, history["distillation"], label="distillation (soft labels)"); axes[1].legend()
axes[1].set_title("the two training terms")
axes[2].plot(epochs, history["accuracy"], label="train"); axes[2].plot(epochs, history["val_accuracy"], label="test")
axes[2].set_title("accuracy"); axes[2].legend()
for ax in axes: ax.set_xlabel("epoch"); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()'''),
    ("md", """## What the model teaches itself

`model.soft_targets(x, y)` returns the soft labels the model would distil for a batch, and
`model.explain(x, classes)` the explanations they come from. Here are four test images with the CAM
of their true class overlaid (red: evidence for the class, blue: against it, centred on zero) and the
three largest entries of their soft label."""),
    ("code", '''x, y = splits.x_test[:4], splits.y_test[:4]
predicted = np.argmax(model.predict(x, verbose=0), -1)
q = model.soft_targets(x, y).numpy()
maps = model.explain(x, classes=y).numpy()
fig = ki.plots.plot_explanations(splits.denormalize(x), maps, q, y, splits.class_names, predictions=predicted)
display(fig)
for label, row in zip(y, q):
    top = np.argsort(-row)[:3]
    print(f"{splits.class_names[label]:>10}: " + ", ".join(f"{splits.class_names[c]} {row[c]:.3f}" for c in top))'''),
    ("md", """## Does it beat standard training?

{results:answer}

That paragraph is generated from the committed benchmark records by `benchmarks/answer.py`, so it
stays true as records land: several seeds per method, one recipe for all, and differences paired by
seed, and one rule for calling a difference: a paired t-test at p < 0.05, over five seeds on the fair
test and three on the earlier protocols. One run like the one above says
nothing about a difference of a point — seeds alone move CIFAR-10 subsets by about a point. Notebook 05
shows the tables behind the answer and how to run such a comparison; `docs/method.md` reads them."""),
    ("md", """## Save, reload, continue

`IntrospectiveModel` is a registered Keras class: the `.keras` file keeps the backbone, the
introspection settings and the optimizer state, so the reloaded model predicts identically and can
continue training."""),
    ("code", '''model.save("il.keras")
reloaded = keras.saving.load_model("il.keras")
print(type(reloaded).__name__, "| identical predictions:",
      np.array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0)))
print(reloaded.evaluate(splits.test, verbose=0, return_dict=True))'''),
    ("md", LEARNED + """* `ki.IntrospectiveModel(backbone)` trains any Keras classifier with self-explanation
  distillation through the ordinary `compile` / `fit` / `save` API.
* Distillation starts after a warm-up (`alpha` stays 0, then ramps up), because an untrained
  network's explanations are noise.
* `soft_targets` and `explain` show what the model teaches itself.
* Whether it helps is a question for multi-seed benchmarks, not for one run: see the tables above."""),
]

# ------------------------------------------------------------------------------------------------
NOTEBOOKS["02_self_explanations.ipynb"] = [
    ("md", f"""# What the model sees: self-explanations on natural photos

{badge("02_self_explanations.ipynb")}

Introspective learning stands or falls with its explanations. This notebook inspects the committed
IL model trained on Imagenette (10 ImageNet classes, photos at 128 px; `saved_models/`), without
training anything: its explanations overlaid on the photos, the library's explainers side by side,
how the similarity of class explanations becomes a soft label, and the class structure those soft
labels carry.

{MODES}"""),
    ("code", setup({"quick": dict(images=40, faithfulness=8), "showcase": dict(images=1000, faithfulness=200),
                    "full": dict(images=None, faithfulness=1000)})),
    ("md", """## The model and the photos

The model is `saved_models/il_resnet18w32_imagenette/model.keras` (its README has the training
command, log and test accuracy). The photos are Imagenette's test split: from a local folder
(`KERAS_INTROSPECT_IMAGENETTE`, `train/<class>/*.jpg` and `test/<class>/*.jpg`) or else TFDS
`imagenette/160px-v2`, downloaded once (on Colab or any machine with network access), centre-cropped
and resized to 128 px like the training images."""),
    ("code", '''MODEL_DIR = ROOT / "saved_models" / "il_resnet18w32_imagenette"
model = keras.saving.load_model(MODEL_DIR / "model.keras")
metadata = json.loads((MODEL_DIR / "metadata.json").read_text())
IMAGENETTE = os.environ.get("KERAS_INTROSPECT_IMAGENETTE") or "imagenette/160px-v2"
source = ki.data.open_source(IMAGENETTE, image_size=128, download=True)   # a local folder is read, never downloaded
splits = source.splits(batch_size=50, augment=False)
names = metadata["class_names"]
x, y = splits.preview(BUDGET["images"] or splits.num_test)
y = ki.data.label_map(source.class_names, names)[y]   # TFDS names the classes by WordNet id, folders by name
# The model normalizes as in its training: the recorded statistics, not this source's.
raw = splits.denormalize(x) * 255.0
x = ki.data.normalize(raw, metadata["normalization"])
probabilities = keras.ops.softmax(model.predict(x, batch_size=50, verbose=0)).numpy()
predicted = probabilities.argmax(-1)
print(f"test accuracy on these {len(y)} photos: {np.mean(predicted == y):.3f} (on the full test split: "
      f"{metadata['test_accuracy']:.3f}, see the model's README)")'''),
    ("md", """## Explanations overlaid on the photos

For each photo: the class activation map (CAM) of the **predicted** class, upsampled from the
network's last feature grid (4×4 cells for a 128 px photo) to the photo and overlaid on it. CAM is signed — red regions raise the
class's logit, blue ones lower it — so the colour scale is centred on zero."""),
    ("code", '''show = np.arange(8)
maps = model.explain(x[show], classes=predicted[show]).numpy()
fig, axes = plt.subplots(2, 8, figsize=(18, 5))
for k, i in enumerate(show):
    axes[0, k].imshow(raw[i] / 255.0); axes[0, k].axis("off")
    axes[0, k].set_title(f"true: {names[y[i]]}\\npredicted: {names[predicted[i]]}", fontsize=8,
                         color="black" if y[i] == predicted[i] else "red")
    shown = ki.plots.show_explanation(axes[1, k], raw[i] / 255.0, maps[k], title=f"CAM of '{names[predicted[i]]}'")
    fig.colorbar(shown, ax=axes[1, k], fraction=0.046, ticks=[], label="against ← 0 → for")
plt.tight_layout(); plt.show()'''),
    ("md", """Some maps peak beside the object — at a frame's corner, on the ground below a building. Each
cell of the 4×4 grid covers 32×32 pixels, so a map cannot be sharper than that, and a network may also
use context around the object. Pictures alone cannot tell these apart; the deletion and insertion
numbers below test whether the maps point at what the model actually uses.

## The same photo through four explainers

Every explainer in `ki.explainers` computes the maps of all classes in one call inside the TensorFlow
graph, so that a training step can use them; they hold no model, so one explainer serves any number
of models. Grad-CAM at the network's last layer *is* CAM here, by construction: behind a global
average pooling and a Dense head, the gradient of a class's logit with respect to the last feature
map is that class's Dense weights divided by the grid size, the same at every cell, so Grad-CAM's
channel weights are CAM's and the two maps coincide (the test suite checks it). The Grad-CAM panel
below therefore explains an earlier layer, `stage3_block2_out` (an 8×8 grid): a finer map.
Gradient-based maps are pixel-sharp and shown as magnitudes; SmoothGrad averages the vanilla
gradients of noisy copies, so on a well-trained model the two look alike, SmoothGrad less speckled.
The test suite checks Grad-CAM and vanilla gradients against tf-explain on the same model."""),
    ("code", '''explainers = {
    "CAM": ki.explainers.CAM(),
    "Grad-CAM (8×8)": ki.explainers.GradCAM(layer="stage3_block2_out"),
    "vanilla gradients": ki.explainers.VanillaGradients(),
    "SmoothGrad": ki.explainers.SmoothGrad(num_samples=16, noise=0.15, seed=0),
}
rows = show[:3]
fig, axes = plt.subplots(len(rows), 1 + len(explainers), figsize=(13, 3.1 * len(rows)))
for r, i in enumerate(rows):
    axes[r, 0].imshow(raw[i] / 255.0); axes[r, 0].axis("off")
    axes[r, 0].set_title(f"true: {names[y[i]]}\\npredicted: {names[predicted[i]]}", fontsize=8)
    for c, (name, explainer) in enumerate(explainers.items(), start=1):
        m = explainer(model, x[i:i + 1], predicted[i:i + 1]).numpy()[0, 0]
        if m.ndim == 3:  # pixel maps: the gradient's magnitude over channels
            m = np.abs(m).max(-1)
        ki.plots.show_explanation(axes[r, c], raw[i] / 255.0, m, title=name)
plt.tight_layout(); plt.show()'''),
    ("md", """## From explanation similarity to a soft label

For one photo: the CAM maps of all ten classes, each centred (removing the shared "the object is
here" component), and the cosine similarity of every class's map with the true class's. The soft
label keeps 90% on the true class and spreads 10% over the others in proportion to
exp(similarity / τ)."""),
    ("code", '''i = int(show[0])
all_maps = model.explain(x[i:i + 1], classes="all").numpy()   # (1, 10, h, w): one map per class
label = y[i:i + 1]
similarity = model.target_builder.similarities(all_maps, label).numpy()[0]
q = model.soft_targets(x[i:i + 1], label).numpy()[0]
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
axes[0].imshow(raw[i] / 255.0); axes[0].axis("off"); axes[0].set_title(f"true: {names[y[i]]}", fontsize=9)
axes[1].bar(names, similarity); axes[1].set_title("similarity of each class's map to the true class's")
axes[2].bar(names, q); axes[2].set_yscale("log"); axes[2].set_title("soft label (log scale)")
for ax in axes[1:]: ax.tick_params(axis="x", rotation=90)
plt.tight_layout(); plt.show()
print("non-true mass, largest first:", ", ".join(f"{names[c]} {q[c]:.4f}" for c in np.argsort(-q)[1:4]))'''),
    ("md", """## Do the maps point at what the model uses? Deletion and insertion

Pictures can mislead; a number can be checked. `ki.faithfulness` takes a map at its word: delete the
pixels it ranks highest first (set them to the mean pixel, 0 after normalization) and watch the
probability of the explained class fall — a faithful map makes it fall fast, a *low* area under the
curve; or insert them into a blank image first — a faithful map makes it rise fast, a *high* area
(Petsiuk et al., 2018). Each is read against random maps, which know nothing."""),
    ("code", '''count = min(len(y), BUDGET["faithfulness"])
subset, labels = x[:count], predicted[:count]   # explain what the model predicted
candidates = {
    "CAM (4×4)": model.explain(subset, classes=labels).numpy(),
    "Grad-CAM, stage3_block2_out (8×8)": ki.explainers.GradCAM(layer="stage3_block2_out")(
        model, subset, labels[:, None]).numpy()[:, 0],
    "random maps": ki.faithfulness.random_maps((count, 4, 4), seed=0),
}
areas = {}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for name, maps in candidates.items():
    for ax, mode in zip(axes, ki.faithfulness.MODES):
        fractions, scores = ki.faithfulness.perturbation_curve(model, subset, maps, labels, mode=mode, steps=16)
        areas[name, mode] = ki.faithfulness.area_under_curve(fractions, scores)
        ax.plot(fractions, scores.mean(0), label=f"{name}: area {areas[name, mode].mean():.3f}")
for ax, mode, better in zip(axes, ki.faithfulness.MODES, ("lower", "higher")):
    ax.set_title(f"{mode} ({better} area = more faithful), {count} photos", fontsize=9)
    ax.set_xlabel("fraction of pixels changed"); ax.set_ylabel("probability of the explained class")
    ax.legend(fontsize=8)
plt.tight_layout(); plt.show()
for mode, sign in (("deletion", -1), ("insertion", 1)):
    gain = sign * (areas["CAM (4×4)", mode] - areas["random maps", mode])
    se = gain.std(ddof=1) / np.sqrt(len(gain))
    print(f"{mode}: CAM's area is better than random maps' by {gain.mean():.3f} ± {se:.3f} (mean ± standard "
          f"error over {len(gain)} photos); better on {np.mean(gain > 0):.0%} of the photos")'''),
    ("md", """## Does learning from its own explanations make the maps more faithful?

The closest model trained *without* IL that the repository holds is the `long` protocol's teacher:
the same ResNet-18 (half width), the same Imagenette photos and augmentation, standard training —
but 60 epochs instead of the IL model's 30 (`benchmarks/teachers/imagenette_resnet18w32_60ep/`).
Each model explains its own prediction with CAM on the same photos. A model that resists deletion
anyway would score well whatever its maps, so each model's CAM is read against random maps *on that
model*, and the two gains are compared photo by photo (paired t-test). The epochs differ, so read the
result as a measurement of these two models, not a controlled test of IL."""),
    ("code", '''from scipy import stats

TEACHER_DIR = ROOT / "benchmarks" / "teachers" / "imagenette_resnet18w32_60ep"
standard = keras.saving.load_model(TEACHER_DIR / "model.keras")
norm = json.loads((TEACHER_DIR / "teacher.json").read_text())["normalization"]
x_standard = ki.data.normalize(raw[:count], norm)
standard_predicted = standard.predict(x_standard, batch_size=50, verbose=0).argmax(-1)
standard_maps = ki.explainers.CAM()(standard, x_standard, standard_predicted[:, None]).numpy()[:, 0]
print(f"accuracy on these {count} photos: IL (30 epochs) {np.mean(labels == y[:count]):.3f}, "
      f"standard training (60 epochs) {np.mean(standard_predicted == y[:count]):.3f}")
verdicts = []
for mode, sign in (("deletion", -1), ("insertion", 1)):
    standard_area = {}
    for name, maps in (("CAM", standard_maps), ("random", candidates["random maps"])):
        fractions, scores = ki.faithfulness.perturbation_curve(standard, x_standard, maps, standard_predicted,
                                                               mode=mode, steps=16)
        standard_area[name] = ki.faithfulness.area_under_curve(fractions, scores)
    il_gain = sign * (areas["CAM (4×4)", mode] - areas["random maps", mode])   # > 0: better than random
    standard_gain = sign * (standard_area["CAM"] - standard_area["random"])
    difference = il_gain - standard_gain
    test = stats.ttest_rel(il_gain, standard_gain)
    print(f"{mode}: CAM's gain over random maps, IL {il_gain.mean():.3f}, standard training "
          f"{standard_gain.mean():.3f}; IL minus standard {difference.mean():+.3f} ± "
          f"{difference.std(ddof=1) / np.sqrt(count):.3f} (mean ± standard error over {count} photos, "
          f"paired t = {test.statistic:.2f}, p = {test.pvalue:.3g})")
    verdicts.append("no difference" if test.pvalue >= 0.05 else "IL more" if difference.mean() > 0 else "IL less")
answer = ("IL's maps are more faithful than standard training's" if set(verdicts) == {"IL more"} else
          "IL's maps are less faithful than standard training's" if set(verdicts) == {"IL less"} else
          "neither model's maps are shown more faithful")
print(f"Answer on these {count} photos: {answer} (deletion: {verdicts[0]}, insertion: {verdicts[1]}; "
      "a difference counted at p < 0.05; the standard model trained twice as long)")'''),
    ("md", """## The class structure in the soft labels

Averaging the soft labels over the test photos, class by class, gives the class-similarity matrix the
model teaches itself. We set it beside the model's own confusions (its mean predicted probabilities
per true class) and print, for each, the class pairs with the most off-diagonal mass, how many pairs
the two lists share, and the correlation of the two matrices' off-diagonal entries: the higher, the
more the soft labels carry the structure the model's own errors show."""),
    ("code", '''def per_class_mean(rows, labels):
    return np.stack([rows[labels == c].mean(0) for c in range(10)])

soft = np.concatenate([model.soft_targets(x[s:s + 50], y[s:s + 50]).numpy() for s in range(0, len(y), 50)])
matrices = {"IL soft labels": per_class_mean(soft, y), "predicted probabilities": per_class_mean(probabilities, y)}
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
off = ~np.eye(10, dtype=bool)
for ax, (title, matrix) in zip(axes, matrices.items()):
    shown = np.where(off, matrix, np.nan)
    image = ax.imshow(shown, cmap="viridis"); ax.set_title(f"{title} (off-diagonal)")
    ax.set_xticks(range(10)); ax.set_xticklabels(names, rotation=90); ax.set_yticks(range(10)); ax.set_yticklabels(names)
    plt.colorbar(image, ax=ax, fraction=0.046)
plt.tight_layout(); plt.show()

def top_pairs(matrix, k=5):
    sym = (matrix + matrix.T) / 2
    pairs = sorted(((sym[a, b], a, b) for a in range(10) for b in range(a + 1, 10)), reverse=True)[:k]
    return [f"{names[a]}–{names[b]}" for _, a, b in pairs]

for title, matrix in matrices.items():
    print(f"{title:>24}: {', '.join(top_pairs(matrix))}")
shared = set(top_pairs(matrices["IL soft labels"])) & set(top_pairs(matrices["predicted probabilities"]))
print(f"pairs in both top-5 lists: {len(shared)}", sorted(shared))
print("correlation of the off-diagonal entries:",
      round(float(np.corrcoef(matrices["IL soft labels"][off], matrices["predicted probabilities"][off])[0, 1]), 3))'''),
    ("md", LEARNED + """* `model.explain(x, classes)` gives a model's self-explanations; `ki.plots.show_explanation`
  overlays a signed map on its photo with a colour scale centred on zero.
* Explainers are stateless objects: one `ki.explainers.CAM()` explains any model.
* The soft label of IL is the similarity of each class's centred explanation to the true class's,
  turned into probabilities — what it contains for a trained model is printed above.
* `ki.faithfulness` puts a number on a map: deletion and insertion areas against random maps, here
  also set against a standard-trained model of the same architecture (trained twice as long): the
  printed comparison says which model's maps beat random maps by more on these photos."""),
]

# ------------------------------------------------------------------------------------------------
NOTEBOOKS["03_distributed_training.ipynb"] = [
    ("md", f"""# Distributed training: two replicas in step

{badge("03_distributed_training.ipynb")}

The training step of every method in keras-introspect reduces its loss the way Keras's own losses do
under `tf.distribute`, so the same code trains on one device, on all GPUs of a machine
(`MirroredStrategy`) and across machines (`MultiWorkerMirroredStrategy`, through
`ki.distribute.fit_distributed`; `docs/distributed.md`). This notebook trains an IL model under
`MirroredStrategy` with **two replicas** and then checks that two replicas compute what one device
computes.

With two or more GPUs the replicas are the GPUs. Without them (Colab's CPU runtime, and the machine
that made these outputs) we split the CPU into two *logical* devices: the same code path — the batch
split between replicas, gradients and BatchNorm statistics all-reduced — at CPU speed.

{MODES}"""),
    ("code", setup({"quick": dict(train_size=256, epochs=1, warmup=0, ramp=1),
                    "showcase": dict(train_size=5000, epochs=10, warmup=3, ramp=3),
                    "full": dict(train_size=None, epochs=30, warmup=5, ramp=5)})),
    ("md", """## Two replicas

`MirroredStrategy(devices)` keeps one copy of the model on each device. The logical-device split must
happen before TensorFlow first runs an operation, so this cell comes before the data are loaded (after
a restart, run the notebook from the top). In full mode with one GPU the notebook trains on that GPU
alone: one replica, the same code."""),
    ("code", '''gpus = tf.config.list_physical_devices("GPU")
if len(gpus) > 1:
    devices = [device.name for device in tf.config.list_logical_devices("GPU")]
elif gpus and MODE == "full":
    devices = [tf.config.list_logical_devices("GPU")[0].name]
else:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
strategy = tf.distribute.MirroredStrategy(devices)
replicas = strategy.num_replicas_in_sync
print(type(strategy).__name__, "over", devices, "->", replicas, "replicas")'''),
    ("code", CIFAR),
    ("md", """## Batch size and learning rate

Keep the per-replica batch and multiply the global batch by the number of replicas; scale the
learning rate linearly with the global batch (Goyal et al., 2017). The loss is a mean over the global
batch, so nothing else changes — IL's α, T, ε and τ are per-example quantities. Here two replicas of
64 make the global batch of 128 that notebook 01 trains with on one device."""),
    ("code", '''PER_REPLICA = 128 // replicas if replicas <= 2 else 128
GLOBAL_BATCH = PER_REPLICA * replicas
LR = 0.05 * GLOBAL_BATCH / 128
splits = ki.data.make_pipelines(arrays, batch_size=GLOBAL_BATCH, train_size=BUDGET["train_size"], seed=0)
print(f"{splits.num_train} training images | {replicas} replicas x {PER_REPLICA} images per replica "
      f"= global batch {GLOBAL_BATCH} | learning rate {LR}")'''),
    ("md", """## Synchronized BatchNorm and mixed precision

Each replica normally normalizes with the statistics of its own share of the batch (64 images here),
so two replicas do not compute what one device does with 128. `ki.distribute.synchronize_batchnorm`
returns a copy of the backbone whose BatchNorm layers all-reduce their statistics over the global
batch (`--sync-bn` on the command line); the check at the end measures the difference.

Mixed precision is a global Keras policy: `mixed_float16` on GPUs (Keras wraps the optimizer in a
`LossScaleOptimizer` and the training step scales the loss), `mixed_bfloat16` on TPUs. On this CPU we
stay in float32: bfloat16 pays on CPUs with AMX units, which this one lacks. Logits, explanations, soft
labels and losses are computed in float32 whatever the policy.

Build and compile **inside** `strategy.scope()`. The showcase's warm-up and ramp are shortened to 3 + 3
epochs so that α reaches its full 0.5 by epoch 6 of 10 (the defaults are 5 + 5)."""),
    ("code", f'''policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
keras.mixed_precision.set_global_policy(policy)
keras.utils.set_random_seed(0)
with strategy.scope():
    backbone = ki.distribute.synchronize_batchnorm(ki.architectures.resnet20(10))
    model = ki.IntrospectiveModel(backbone, warmup_epochs=BUDGET["warmup"], ramp_epochs=BUDGET["ramp"])
    model.compile(optimizer=ki.recipes.sgd(LR, BUDGET["epochs"], -(-splits.num_train // GLOBAL_BATCH)),
                  metrics=["accuracy"])
print("policy", policy, "| compute dtype", backbone.layers[1].compute_dtype, "| optimizer",
      type(model.optimizer).__name__, "|", sum(getattr(l, "synchronized", False) for l in backbone.layers),
      "synchronized BatchNorm layers")
history = model.fit(splits.train, validation_data=splits.test, epochs=BUDGET["epochs"], verbose=2,
                    callbacks=[{backup("distributed")}]).history
keras.mixed_precision.set_global_policy("float32")
print(f"alpha in the last epoch {{history['alpha'][-1]:.2f}} | "
      f"test accuracy {{history['val_accuracy'][-1]:.3f}} (chance 0.100)")'''),
    ("md", """## Do two replicas compute what one device computes?

Train the same model from the same initial weights on the same global batch for two steps, once on one
device and once on the two replicas, with distillation on from the first step, and compare the weights.
With per-replica BatchNorm the replicas normalize with half-batch statistics, so their weights move
differently; synchronized BatchNorm normalizes with the global batch's statistics, as one device does,
and brings the two-replica weights closer to one device's. What remains comes from computing the same
sums in another order (an all-reduce, a one-pass variance). On a network without BatchNorm the test
suite finds every method's two-replica weights within 1e-4 of one device's
(`tests/test_distribution.py`)."""),
    ("code", '''images, labels = next(iter(splits.train))          # one fixed global batch
one_batch = tf.data.Dataset.from_tensors((images, labels))

def two_steps(strategy, synchronized):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        net = ki.architectures.resnet20(10)
        net = ki.distribute.synchronize_batchnorm(net) if synchronized else net
        m = ki.IntrospectiveModel(net, warmup_epochs=0, ramp_epochs=0)
        m.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    initial = [w.numpy() for w in net.trainable_weights]
    m.fit(one_batch, epochs=2, verbose=0)
    return initial, [w.numpy() for w in net.trainable_weights]

def largest(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))

initial, reference = two_steps(tf.distribute.OneDeviceStrategy(devices[0]), False)
print(f"one device: two steps moved the weights by up to {largest(reference, initial):.1e}")
for synchronized in (False, True):
    _, weights = two_steps(strategy, synchronized)
    print(f"{replicas} replicas, {'synchronized' if synchronized else 'per-replica'} BatchNorm: "
          f"largest weight difference from one device {largest(weights, reference):.1e}")'''),
    ("md", """## TPUs and several machines

Not run here (no TPU on this machine, and the TPU path is untested): on a Colab TPU runtime,
`strategy = ki.distribute.get_strategy("tpu")` connects to the TPU; use `mixed_bfloat16`, and give
the datasets `drop_remainder=True`, since a TPU needs every batch of the same size.

Across machines, one process per machine with `TF_CONFIG` set on each (`docs/distributed.md`):

```bash
keras-introspect train --dataset cifar10 --strategy mirrored --batch-size 512 --lr 0.2 --sync-bn
keras-introspect train --dataset cifar10 --strategy multiworker --batch-size 512 --lr 0.2
```

""" + LEARNED + """* Build and compile inside `strategy.scope()`; the training step needs nothing else.
* Scale the global batch with the replicas and the learning rate with the global batch.
* Synchronized BatchNorm makes the replicas compute what one device computes; without it small
  per-replica batches change the statistics.
* Mixed precision is a global Keras policy; the library keeps its losses in float32.
* `BackupAndRestore` makes a long run survive an interruption."""),
]

# ------------------------------------------------------------------------------------------------
NOTEBOOKS["04_export_and_serve.ipynb"] = [
    ("md", f"""# Export and serve: predictions *and* explanations

{badge("04_export_and_serve.ipynb")}

A model that explains itself during training can explain itself in production too. An exported
SavedModel has two signatures:

* `serving_default(images) → probabilities`
* `explain(images, class_index) → probabilities, class_index, explanation` (`class_index = -1`
  explains the predicted class).

We export the committed IL ResNet-20 for CIFAR-10 in TensorFlow Serving's `<name>/<version>/` layout
with the training normalization inside (requests carry raw 0–255 pixels), inspect and call it, and
build a REST request. Nothing is trained and nothing is downloaded: the images come from the committed
REST example `saved_models/il_resnet20_cifar10/request.json` (a CIFAR-10 test image, raw pixels).

{MODES}"""),
    ("code", setup({"quick": {}, "showcase": {}, "full": {}})),
    ("code", '''MODEL_DIR = ROOT / "saved_models" / "il_resnet20_cifar10"
model = keras.saving.load_model(MODEL_DIR / "model.keras")
metadata = json.loads((MODEL_DIR / "metadata.json").read_text())
names = metadata["class_names"]
example = np.asarray(json.loads((MODEL_DIR / "request.json").read_text())["inputs"]["images"], "float32")
images = np.concatenate([example, example[:, :, ::-1]])   # the committed image and its mirror image: raw 0-255
print(type(model).__name__, f"| test accuracy recorded for this model: {metadata['test_accuracy']:.4f}",
      "| images", images.shape)'''),
    ("md", """## Export

`ki.export.export_for_serving(model, base, name, normalization=...)` writes the next version
(`base/name/1/`, then `2/`, …; an existing version is never overwritten). `normalization` bakes the
training statistics into the signatures. Keras's own `model.export(path)` writes the same
signatures to one directory (here without normalization: it expects normalized inputs)."""),
    ("code", '''path = ki.export.export_for_serving(model, "serving", "il", normalization=metadata["normalization"])
print("exported to", path, "| versions of 'il':", ki.export.versions("serving/il"))
model.export("keras_export")
keras_way = tf.saved_model.load("keras_export")
x = ki.data.normalize(images, metadata["normalization"])
served = tf.saved_model.load(path)
same = np.allclose(served.signatures["serving_default"](images=tf.constant(images))["probabilities"],
                   keras_way.signatures["serving_default"](images=tf.constant(x))["probabilities"], atol=1e-5)
print("model.export on normalized pixels == export_for_serving on raw pixels:", same)'''),
    ("md", """## Inspect the signatures

`saved_model_cli` ships with TensorFlow. We call it through the running Python
(`python -m tensorflow.python.tools.saved_model_cli`), which works whether or not the environment's
`bin/` is on the `PATH`."""),
    ("code", '''cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
show = subprocess.run([*cli, "show", "--dir", path, "--tag_set", "serve", "--signature_def", "explain"],
                      capture_output=True, text=True, check=True)
print(show.stdout)
np.save("batch.npy", images[:2])
np.save("classes.npy", np.array([-1, 3], dtype="int32"))
run = subprocess.run([*cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "explain",
                      "--inputs", "images=batch.npy;class_index=classes.npy", "--outdir", "cli_out", "--overwrite"],
                     capture_output=True, text=True, check=True)
print("outputs written:", sorted(os.listdir("cli_out")))
print("the inputs the signatures check: images (batch, %s) float32, class_index (batch,) int32"
      % ", ".join(map(str, metadata["image_shape"])))'''),
    ("md", """The inputs show `unknown_rank` on purpose: a loaded signature does not enforce a declared shape,
so the signatures check the shape themselves and answer a wrong one with a message (below) instead of
letting it reach a kernel that would abort the server. The expected shape is in `metadata.json`
(`image_shape`), printed above; the outputs declare theirs."""),
    ("md", """## Call it from Python

The loaded SavedModel needs neither keras-introspect nor the model code — only TensorFlow."""),
    ("code", '''out = served.signatures["explain"](images=tf.constant(images), class_index=tf.constant([-1] * len(images)))
fig, axes = plt.subplots(1, 2 * len(images), figsize=(3.2 * 2 * len(images), 3.3))
for i in range(len(images)):
    chosen = int(out["class_index"][i])
    axes[2 * i].imshow(images[i].astype("uint8")); axes[2 * i].axis("off")
    axes[2 * i].set_title(f"image {i} ({images.shape[1]}x{images.shape[2]} px)", fontsize=9)
    shown = ki.plots.show_explanation(axes[2 * i + 1], images[i] / 255.0, out["explanation"][i].numpy(),
                                      title=f"CAM of the prediction: {names[chosen]} "
                                            f"({float(out['probabilities'][i, chosen]):.2f})")
    fig.colorbar(shown, ax=axes[2 * i + 1], fraction=0.046, ticks=[], label="against <- 0 -> for")
plt.tight_layout(); plt.show()
print("same maps as model.explain:", np.allclose(out["explanation"].numpy(),
      model.explain(x, classes=out["class_index"].numpy()).numpy(), atol=1e-4))'''),
    ("md", """Bad requests fail with a message instead of a wrong answer:"""),
    ("code", '''bad_requests = {
    "a class index out of range": dict(images=tf.constant(images[:2]), class_index=tf.constant([0, 10])),
    "images of the wrong size": dict(images=tf.zeros((2, 16, 16, 3)), class_index=tf.constant([0, 1])),
    "one image without its batch axis": dict(images=tf.constant(images[0]), class_index=tf.constant([0])),
}
for what, request in bad_requests.items():
    try:
        served.signatures["explain"](**request)
    except tf.errors.InvalidArgumentError as error:
        # The line of the failed check: the signature's message and the values it checked.
        reason = next(line for line in error.message.splitlines() if "assertion failed" in line)
        print(f"{what}: rejected\\n    {reason.strip()}")'''),
    ("md", """## TensorFlow Serving

Serve the model directory (it holds the version folders):

```bash
docker run -p 8501:8501 -v "$PWD/serving/il:/models/il" -e MODEL_NAME=il tensorflow/serving
```

A REST request to `explain` carries raw pixels by input name. `ki.export.rest_request` builds the
body from real images; `ki.export.call_like_serving` runs a body against the loaded SavedModel and
returns the body TF Serving answers with (the test suite feeds the committed examples of
`saved_models/` through it)."""),
    ("code", '''body = ki.export.rest_request(images[:1], class_index=[-1])
with open("request.json", "w") as f:
    json.dump(body, f)
print("curl -d @request.json http://localhost:8501/v1/models/il:predict")
print(json.dumps(body)[:160], "...")
response = ki.export.call_like_serving(served, body)["outputs"]
print({k: np.asarray(v).shape for k, v in response.items()},
      "| predicted:", names[response["class_index"][0]], f"({max(response['probabilities'][0]):.2f})")'''),
    ("md", """On Colab you can run the real server: this cell installs `tensorflow-model-server` from
TensorFlow Serving's own package repository, starts it on the exported model and sends the request.
It is off by default (set `SERVE = True`); elsewhere use the Docker command above."""),
    ("code", '''SERVE = False  # @param {type:"boolean"}
if SERVE and IN_COLAB:
    import time, requests
    subprocess.run("echo 'deb [arch=amd64] http://storage.googleapis.com/tensorflow-serving-apt stable "
                   "tensorflow-model-server tensorflow-model-server-universal' > "
                   "/etc/apt/sources.list.d/tensorflow-serving.list && curl -fsSL "
                   "https://storage.googleapis.com/tensorflow-serving-apt/tensorflow-serving.release.pub.gpg | "
                   "apt-key add - && apt-get update -qq && apt-get install -y -qq tensorflow-model-server",
                   shell=True, check=True)
    server = subprocess.Popen(["tensorflow_model_server", "--rest_api_port=8501", "--model_name=il",
                               f"--model_base_path={os.path.abspath('serving/il')}"])
    time.sleep(10)
    served_response = requests.post("http://localhost:8501/v1/models/il:predict", json=body).json()["outputs"]
    print("server and SavedModel agree:", np.allclose(served_response["probabilities"], response["probabilities"], atol=1e-5))
    server.terminate()
else:
    print("skipped (SERVE is False or this is not Colab)")'''),
    ("md", LEARNED + """* `ki.export.export_for_serving` writes TF Serving's `<name>/<version>/` layout with the
  normalization inside, so clients send raw pixels; `model.export` works too.
* Both signatures check their inputs and reject bad requests with a message.
* `saved_model_cli` (through `sys.executable -m`) and `tf.saved_model.load` inspect and call an export;
  `rest_request` and `call_like_serving` build and check REST bodies."""),
]

# ------------------------------------------------------------------------------------------------
COMPARE_BUDGETS = {
    "quick": dict(train_size=256, epochs=1, methods=["standard", "il"], seeds=[0]),
    "showcase": dict(train_size=5000, epochs=10, methods=["standard", "label_smoothing", "il"], seeds=[0]),
    "full": dict(train_size=None, epochs=None, seeds=[0, 1, 2],
                 methods=["standard", "label_smoothing", "confidence_penalty", "pskd", "ols", "kd", "dml", "il"]),
}
FULL = COMPARE_BUDGETS["full"]

NOTEBOOKS["05_compare_methods.ipynb"] = [
    ("md", f"""# Does introspection help? Comparing IL with its rivals

{badge("05_compare_methods.ipynb")}

Introspective learning is meant to give what a teacher gives — mass on the non-true classes, shaped
by class similarity — without a teacher. keras-introspect ships its rivals as Keras models with the
same interface, all in one registry (`ki.methods.registry.METHODS`) that the Python API, the command
line and the benchmark read:

| method | what the student learns from |
|---|---|
| `standard` | labels |
| `label_smoothing`, `confidence_penalty` | labels, with less confident targets / outputs |
| `kd` | a trained teacher's softened outputs (also with shuffled or uniform non-true classes) |
| `tfkd`, `tfkd_self` | a virtual teacher / a pre-trained copy of itself (teacher-free KD) |
| `pskd`, `ols` | its own last-epoch predictions (PS-KD) / class-wise running soft labels (OLS) |
| `dml` | a peer trained alongside (deep mutual learning) |
| `frskd` | an auxiliary self-teacher refining its features |
| `isl` | a teacher, with training instances fed easy → hard |
| `il` | its own explanations |

We run a small comparison with `ki.benchmark.run_one` — the function behind `keras-introspect
benchmark` — and then read the committed multi-seed results. The showcase runs three methods on one
seed: a demonstration of the tools, not evidence. Full mode runs {len(FULL["methods"])} methods × {len(FULL["seeds"])} seeds
= {len(FULL["methods"]) * len(FULL["seeds"])} trainings on all 50,000 images plus a teacher for `kd`: hours on a GPU.

{MODES}"""),
    ("code", setup(COMPARE_BUDGETS)),
    ("code", CIFAR + '''
overrides = {k: BUDGET[k] for k in ("train_size", "epochs") if BUDGET[k] is not None}
protocol = ki.benchmark.get("cpu", dataset=CIFAR10 or "cifar10", **overrides)
print(protocol)'''),
    ("md", """## Run the methods

Every method gets the same recipe: architecture, optimizer, schedule, epochs, data subset and order.
Teacher-based methods (`kd`, `isl`, `tfkd_self`) need a teacher; full mode trains the protocol's
teacher first (standard training, twice the epochs)."""),
    ("code", f'''needs_teacher = [m for m in BUDGET["methods"] if ki.methods.registry.get(m).teacher]
if needs_teacher:
    ki.benchmark.train_teacher(arrays, protocol, "teacher.keras", verbose=0,
                               backup_dir=os.path.join("backups", f"teacher-{{MODE}}"))
# What each method's step costs, measured apart on an otherwise idle machine (benchmarks/step_cost.py):
# times taken here, with other work running, are not comparable.
cost = json.loads((ROOT / "benchmarks" / "results" / "step_cost.json").read_text())
step_cost = {{name.split(" (")[0]: entry["ratio"] for name, entry in cost["classes"]["10"].items()}}
records = []
for seed in BUDGET["seeds"]:
    for method in BUDGET["methods"]:
        record = ki.benchmark.run_one(arrays, protocol, method, {{}}, seed, verbose=0,
                                      teacher="teacher.keras" if method in needs_teacher else None,
                                      backup_dir=os.path.join("backups", f"{{method}}-{{seed}}-{{MODE}}"))
        records.append(record)
        print(f"{{method:18s}} seed {{seed}}: test accuracy {{record['final_accuracy']:.3f}}, "
              f"ECE {{record['ece']:.3f}} | a step costs {{step_cost.get(method, float('nan')):.2f}}x standard training's")'''),
    ("md", """## The report

The same report `keras-introspect benchmark` writes: a Markdown table with provenance and two plots
(final accuracy, with standard-error bars where a method has several seeds; learning curves). With one
seed per method, as here, a difference of a point or two is within seed-to-seed noise."""),
    ("code", '''with open("results.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\\n" for r in records)
table = ki.benchmark.write_report("results.jsonl", "report", timing=False)  # times: see step_cost above
from IPython.display import Image, Markdown, display
display(Markdown(table))
for name in sorted(os.listdir("report")):
    if name.endswith(".png"):
        display(Image(os.path.join("report", name)))'''),
    ("md", """## Reading results honestly

A single seed of a short run cannot rank methods whose differences are a point or less. The
committed benchmark runs use several seeds and one recipe for all; what they say, generated from
their records by `benchmarks/answer.py`:

{results:answer}

The tables behind it. First the fair test: IL's form chosen on a validation split held out from the
training images (the other settings fixed before the first run), then five fresh seeds scored once on the
test split, with the test calibration error before and after temperature scaling fitted on the validation
split — the fix practitioners apply after training, which any method's calibration has to beat:

{results:fair_protocol}

The earlier protocols, whose settings were picked on the test split. On the `cpu` protocol (ResNet-20,
10,000 CIFAR-10 images, 15 epochs):

{results:formulation_sweep}

On the `long` protocol (Imagenette at 128 px, ResNet-18 at half width, 30 epochs), where label
smoothing — the simplest source of non-true mass — is the first thing to beat:

{results:long_protocol}

ECE (the table's last column) says how far confidence is from accuracy, not which way.
`ki.metrics.reliability(labels, probabilities)` gives the bins of a reliability diagram
(`ki.plots.plot_reliability` draws them), and `benchmarks/calibration.py` reads them from the
`long` protocol's saved models; `docs/method.md` discusses which methods are over- and which
under-confident there. One short showcase seed, like the run above, need not rank them the same way.

`docs/comparators.md` explains the protocols, the dissections of KD (shuffled / uniform non-true
classes) and how to reproduce every row.

""" + LEARNED + """* `ki.benchmark.run_one` trains any registered method on a protocol's recipe and returns a
  record with accuracy, calibration (ECE), timing and provenance; `write_report` tabulates records.
* A claim that one method beats another needs several seeds on one recipe — the committed tables,
  not a single short run."""),
]

NOTEBOOKS["06_your_photos_your_backbone.ipynb"] = [
    ("md", f"""# Your photos, your backbone

{badge("06_your_photos_your_backbone.ipynb")}

Most people try a training method on their own photos, with a pretrained Keras Applications model as
the backbone. This notebook does exactly that with introspective learning: a folder of photos, one
folder per class; a `keras.applications` base inside a small classifier; the two-stage fine-tuning
recipe (head first with the base frozen, then the whole model at a lower learning rate); the model's
explanations overlaid on the photos at a layer you choose; and an export that TensorFlow Serving
answers with raw pixels.

Imagenette's training photos stand in for "your photos" here. On Colab the base starts from ImageNet
weights; where nothing can be downloaded (the machine that made the committed outputs), it starts
from random weights — the notebook prints which ran.

{MODES}"""),
    ("code", setup({"quick": dict(photos=80, epochs=(1, 1), size=64, batch=16),
                    "showcase": dict(photos=3000, epochs=(2, 10), size=96, batch=32),
                    "full": dict(photos=None, epochs=(5, 15), size=160, batch=32)})),
    ("md", """## Your photos

Point `PHOTOS` at a folder with one sub-folder of images per class (`photos/cat/*.jpg`,
`photos/dog/*.jpg`, ...). `validation_split` holds out a stratified tenth of each class to measure
the model on photos it never trained on; hidden folders such as `.ipynb_checkpoints/` are ignored.
`preprocessing="mobilenet_v2"` scales the pixels exactly as `keras.applications.mobilenet_v2.preprocess_input`
does (to [-1, 1]), as the pretrained base expects; for bases that carry their preprocessing inside
(EfficientNetV2, MobileNetV3, ConvNeXt) it would be `"raw"`, pixels from 0 to 255."""),
    ("code", '''PHOTOS = os.environ.get("KERAS_INTROSPECT_PHOTOS")
if PHOTOS is None and os.environ.get("KERAS_INTROSPECT_IMAGENETTE"):
    PHOTOS = os.path.join(os.environ["KERAS_INTROSPECT_IMAGENETTE"], "train")   # a folder of class folders
if PHOTOS is None and IN_COLAB:
    PHOTOS = "imagenette/160px-v2"   # TFDS streams it (with its own held-out split) on Colab
if PHOTOS is None:
    raise SystemExit("Set KERAS_INTROSPECT_PHOTOS to a folder of class folders (photos/<class>/*.jpg), or "
                     "KERAS_INTROSPECT_IMAGENETTE to the extracted imagenette-128px folder.")
SIZE = BUDGET["size"]
folder = os.path.isdir(PHOTOS)
splits = ki.data.load(PHOTOS, image_size=SIZE, batch_size=BUDGET["batch"], train_size=BUDGET["photos"] if folder else None,
                      validation_split=0.1 if folder else None, preprocessing="mobilenet_v2", download=IN_COLAB)
names = splits.class_names
print(f"{splits.num_train} training photos, {splits.num_test} held out, {len(names)} classes: {', '.join(names)}")
print("pixels reach the model as:", splits.normalization)'''),
    ("md", """## Your backbone

A Keras Applications base used as a layer, `base(inputs, training=False)`, then global average
pooling and a Dense layer of logits: the structure class activation maps (CAM) read. With ImageNet
weights the base is frozen first (`ki.transfer.freeze`), so only the head learns and the base's
BatchNorm statistics stay as pretrained."""),
    ("code", '''import warnings
try:
    with warnings.catch_warnings():   # Keras warns about input sizes other than 224 px: right for a base without its top
        warnings.simplefilter("ignore")
        base = keras.applications.MobileNetV2(include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3),
                                              alpha=0.35)
    WEIGHTS = "imagenet"
except Exception as error:   # no network: random initialisation
    print(f"ImageNet weights unavailable ({type(error).__name__}); the base starts from random weights.")
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), alpha=0.35)
    # MobileNetV2's BatchNorm averages its statistics over ~1,000 steps (momentum 0.999): fine for
    # pretrained statistics, but from scratch a short run would evaluate with statistics still at their
    # initial values. 0.9 averages over ~10 steps.
    ki.architectures.set_batchnorm_momentum(base, 0.9)
    WEIGHTS = None
print("weights:", WEIGHTS or "random (none)")
inputs = keras.Input((SIZE, SIZE, 3))
features = base(inputs, training=False)
logits = keras.layers.Dense(len(names), name="logits")(keras.layers.GlobalAveragePooling2D()(features))
backbone = keras.Model(inputs, logits, name="photos_classifier")
model = ki.IntrospectiveModel(backbone)   # CAM at the base's output: free to compute in every step
print(f"{base.name}: {base.count_params():,} weights; its last feature map is "
      f"{base.output.shape[1]}x{base.output.shape[2]} for {SIZE}-px photos")'''),
    ("md", """## Two stages of training

Stage 1 trains the head on the frozen base; stage 2 unfreezes the base (`ki.transfer.unfreeze`)
and trains everything at a tenth of the learning rate. BatchNorm layers stay frozen in stage 2: in
Keras 3 the `training=True` of `fit` reaches a base called with `training=False`, so freezing those
layers is what keeps their statistics. Introspective learning warms up with plain cross-entropy,
then distils its own soft labels (`alpha` in the log). From random weights a frozen base gives the
head nothing to learn from, so stage 1 is skipped and the whole model trains from the start — its
BatchNorm layers included, since there are no pretrained statistics to keep (with them frozen at
their initial values the network does not learn at all: a first run of this notebook stayed at
chance)."""),
    ("code", '''first, second = BUDGET["epochs"]
if WEIGHTS:
    ki.transfer.freeze(base)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    model.fit(splits.train, validation_data=splits.test, epochs=first, verbose=2)
ki.transfer.unfreeze(base, batchnorm=WEIGHTS is None)   # pretrained statistics stay; random ones must learn
model.compile(optimizer=keras.optimizers.Adam(1e-4 if WEIGHTS else 1e-3), metrics=["accuracy"])
done = first if WEIGHTS else 0
history = model.fit(splits.train, validation_data=splits.test, initial_epoch=done, epochs=done + second, verbose=2)
final = model.evaluate(splits.test, return_dict=True, verbose=0)
print(f"held-out accuracy {final['accuracy']:.3f} after {done + second} epochs "
      f"({'from ImageNet weights' if WEIGHTS else 'from random weights'}; chance is {1 / len(names):.3f})")'''),
    ("md", """## What the model looked at, at a layer you choose

Left: the photo. Middle: CAM of the predicted class at the base's output — for a 96-px photo a grid
of 3×3 cells stretched over it. Right: Grad-CAM at a layer inside the base, addressed as
`"<base>/<layer>"`, whose grid is four times finer. Red raises the class's logit, blue lowers it;
each map is centred on zero with its own colour bar. A wrong name gets an error that lists the valid
ones (`keras_introspect.backbones.conv_layer_names(backbone)` lists them all)."""),
    ("code", '''from keras_introspect import backbones
inner = [n for n in backbones.conv_layer_names(backbone)
         if n.startswith(base.name + "/") and backbones.get_layer(backbone, n).output.shape[1] == 4 * base.output.shape[1]][-1]
print("Grad-CAM layer:", inner)
x, y = splits.preview(6)
raw = splits.denormalize(x)
predicted = model.predict(x, verbose=0).argmax(-1)
coarse = model.explain(x, classes=predicted).numpy()
fine = ki.explainers.GradCAM(layer=inner)(model, x, predicted).numpy()[:, 0]
fig, axes = plt.subplots(len(x), 3, figsize=(9, 3 * len(x)))
for i in range(len(x)):
    axes[i, 0].imshow(raw[i]); axes[i, 0].axis("off")
    axes[i, 0].set_title(f"true: {names[y[i]]}\\npredicted: {names[predicted[i]]}", fontsize=8)
    for ax, m, title in ((axes[i, 1], coarse[i], f"CAM, {coarse.shape[1]}x{coarse.shape[2]}"),
                         (axes[i, 2], fine[i], f"Grad-CAM at {inner.split('/')[1]}, {fine.shape[1]}x{fine.shape[2]}")):
        plt.colorbar(ki.plots.show_explanation(ax, raw[i], m, title=title), ax=ax, fraction=0.046)
plt.tight_layout(); plt.show()'''),
    ("md", """## Serve it

`export_for_serving` writes TensorFlow Serving's `<name>/<version>/` layout with two signatures,
`serving_default` (probabilities) and `explain` (a map per photo). Requests carry raw 0–255 pixels
whatever preprocessing training used: the export applies the same scaling. The check below sends one
held-out photo to the exported model and compares the answer with the model in memory."""),
    ("code", '''path = ki.export.export_for_serving(model, "serving", "photos", normalization=splits.normalization)
served = tf.saved_model.load(path)
pixels = tf.constant(raw[:1] * 255.0, tf.float32)
answer = served.signatures["serving_default"](images=pixels)["probabilities"].numpy()
in_memory = tf.nn.softmax(model.predict(x[:1], verbose=0)).numpy()
print("exported to", path, "| largest difference from the model in memory:", float(np.abs(answer - in_memory).max()))
explained = served.signatures["explain"](images=pixels, class_index=tf.constant([-1]))
print("explain signature:", {k: tuple(v.shape) for k, v in explained.items()})'''),
    ("md", LEARNED + """* `ki.data.load(folder, image_size=..., validation_split=..., preprocessing=...)` reads your photos
  and scales them as your backbone expects (`"raw"`, a family's name, or the dataset's statistics).
* A Keras Applications base nested in a Functional model trains with `IntrospectiveModel` and every
  other method; `ki.transfer.freeze` / `unfreeze` give the two-stage recipe with BatchNorm kept frozen.
* Explanations can be read at any layer, inside the base too (`"<base>/<layer>"`).
* The export takes raw pixels and answers with probabilities and explanations.
* The command line does the same: `keras-introspect train --dataset photos/ --validation-split 0.1
  --image-size 96 --arch keras:MobileNetV2 --weights imagenet` (its family's preprocessing by default)."""),
]
