"""Benchmark protocols: one data set, architecture and recipe for every method.

* `quick` — digits, a small CNN, 3 epochs: a smoke test of every method (CI).
* `cpu` — CIFAR-10, ResNet-20 on a fixed 10,000-image stratified subset,
  15 epochs, SGD 0.05 with cosine decay, crop+flip: one run takes ~5 minutes
  on 2 CPU cores, so methods × 3 seeds fit in a few hours.
* `long` — Imagenette (10 ImageNet classes, 9,469 training photos at 128 px),
  a half-width ResNet-18 with an ImageNet stem, 30 epochs of SGD 0.05 with
  cosine decay, batch 64, crop+flip: long enough to overfit, the regime in
  which regularizers can help (docs/comparators.md); ~40 minutes a run on 2
  CPU cores.
* `fair` — the `cpu` recipe made for model selection: 10% of each class of
  CIFAR-10's training images (5,000) are held out as a validation split, on
  which every choice is made; the 10,000 training images are drawn from the
  other 45,000; 15 epochs, the rest of the `cpu` recipe too (where a teacher's
  soft labels gained about 3 points). The test split is touched only for the
  verdict (`runner.run_one` records validation and test separately). ~5
  minutes a run on the 2-core AMX machine the `cpu` protocol was timed on,
  ~18 on a 2-core AVX2 one.
* `paper` — the standard GPU recipe: full CIFAR, 200 epochs, SGD 0.1 with
  steps at epochs 100 and 150, batch 128, weight decay 5e-4.
"""

import dataclasses
from keras_introspect.errors import InputError


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str
    arch: str
    epochs: int
    batch_size: int
    lr: float
    schedule: str = "cosine"
    weight_decay: float = 5e-4
    train_size: int | None = None
    augment: bool = True
    teacher_arch: str | None = None  # default: the student's architecture
    teacher_epochs_factor: int = 2  # the teacher trains this many times longer
    bn_momentum: float | None = None  # None: Keras's 0.99
    sync_bn: bool = False  # synchronize BatchNorm statistics across replicas
    # Hold out this share of each class's training images as the validation split (drawn with seed 0, the
    # same for every seed and method): fit validates on it, the test split is kept for the verdict.
    validation_fraction: float | None = None
    preprocessing: str | None = None  # data.preprocessing: None (the dataset's statistics), "raw" or a family
    weights: str | None = None  # "imagenet" for keras:<Family> architectures (None: "none")

    def train_examples(self, available):
        """How many of `available` training examples a run uses (`train_size` caps them; None uses all).

        Example:
        >>> get("cpu").train_examples(50_000), get("cpu").train_examples(1_797), get("long").train_examples(9_469)
        (10000, 1797, 9469)
        """
        return available if self.train_size is None else min(self.train_size, available)


PROTOCOLS = {
    "quick": Protocol("quick", "digits", "digits_cnn", epochs=3, batch_size=64, lr=0.05),
    "cpu": Protocol("cpu", "cifar10", "resnet20", epochs=15, batch_size=128, lr=0.05, train_size=10_000),
    "long": Protocol("long", "imagenette", "resnet18_w32", epochs=30, batch_size=64, lr=0.05),
    "fair": Protocol("fair", "cifar10", "resnet20", epochs=15, batch_size=128, lr=0.05, train_size=10_000,
                     validation_fraction=0.1),
    "paper": Protocol("paper", "cifar100", "resnet20", epochs=200, batch_size=128, lr=0.1, schedule="step",
                      teacher_arch="resnet56", teacher_epochs_factor=1),
}


def get(name, **overrides):
    """A protocol by name, with fields overridden (e.g. `dataset=PATH`)."""
    if name not in PROTOCOLS:
        raise InputError(f"Unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PROTOCOLS[name], **overrides)
