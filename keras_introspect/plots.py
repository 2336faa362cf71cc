"""Figures: training curves and a grid of images with their self-explanations."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_history(history, path=None, title=None):
    """Loss and accuracy curves (train and validation) from a Keras history dict.

    Returns:
        The matplotlib figure (saved to `path` when given).
    """
    history = getattr(history, "history", history)
    panels = [k for k in ("loss", "accuracy", "distillation", "target_true_mass") if k in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, key in zip(axes[0], panels):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="test")
        ax.set_xlabel("epoch")
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def plot_explanations(images, maps, soft_targets, labels, class_names, path=None, predictions=None):
    """One row per image: the image, its explanation, its soft target bar chart.

    Args:
        images: `(n, h, w, c)` images in [0, 1].
        maps: `(n, h', w')` explanation maps (any scale).
        soft_targets: `(n, classes)` soft labels.
        labels: `(n,)` true classes.
        class_names: names of the classes.
        predictions: optional `(n,)` predicted classes.

    Returns:
        The matplotlib figure.
    """
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(9, 2.2 * n), squeeze=False)
    for i in range(n):
        image = np.squeeze(images[i])
        axes[i, 0].imshow(image, cmap="gray" if image.ndim == 2 else None)
        title = f"true: {class_names[labels[i]]}"
        if predictions is not None:
            title += f"\npred: {class_names[predictions[i]]}"
        axes[i, 0].set_title(title, fontsize=8)
        limit = float(np.abs(maps[i]).max()) or 1.0
        axes[i, 1].imshow(maps[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[i, 1].set_title("self-explanation", fontsize=8)
        for ax in axes[i, :2]:
            ax.axis("off")
        axes[i, 2].bar(range(len(class_names)), soft_targets[i], color="tab:blue")
        axes[i, 2].bar([labels[i]], [soft_targets[i][labels[i]]], color="tab:orange")
        axes[i, 2].set_yscale("log")
        axes[i, 2].set_ylim(1e-4, 1.0)
        axes[i, 2].set_xticks(range(len(class_names)))
        axes[i, 2].set_xticklabels([str(c)[:5] for c in class_names], rotation=90, fontsize=6)
        axes[i, 2].set_title("soft target q (orange: true class)", fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig
