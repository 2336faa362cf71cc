"""Figures: training curves, reliability diagrams, and images overlaid with their self-explanations.

Figures are built with matplotlib's object-oriented API (`Figure`), not with
`pyplot`: no backend is chosen at import, no global figure list grows, and the
returned figure displays in a notebook like any other.
"""

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

SIGNED_CMAP = "RdBu_r"  # red: evidence for the class, blue: against; white at zero


def line_style(index):
    """The colour and marker of the `index`-th configuration in a plot: the ten default colours, then
    the same colours with another marker, so that a regime with more than ten configurations keeps
    every line distinguishable in the legend."""
    return f"C{index % 10}", ".sx^D"[index // 10 % 5]


def plot_history(history, path=None, title=None):
    """Loss and accuracy curves (train and validation) from a Keras history dict.

    Args:
        history: a `History` or its `.history` dict.
        path: save the figure there (PNG) when given.
        title: the figure's title.

    Returns:
        The matplotlib `Figure`.
    """
    history = getattr(history, "history", history)
    panels = [k for k in ("loss", "accuracy", "alpha", "distillation", "target_true_mass") if k in history]
    fig = Figure(figsize=(4 * len(panels), 3.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
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


def plot_reliability(tables, path=None, title=None):
    """Reliability diagram: accuracy against confidence per bin, and how confidences are spread.

    Args:
        tables: `{name: metrics.reliability(labels, probabilities)}`, one
            line per model.
        path: save the figure there (PNG) when given.
        title: the figure's title.

    Returns:
        The matplotlib `Figure`. Points below the diagonal are over-confident
        bins (confidence above accuracy).

    Example:
    >>> table = ki.metrics.reliability(labels, model.predict(x))
    >>> ki.plots.plot_reliability({"il": table}, "reliability.png")
    """
    fig = Figure(figsize=(12, 4.2))
    diagram, spread = fig.subplots(1, 2)
    diagram.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
    for index, (name, table) in enumerate(tables.items()):
        color, marker = line_style(index)
        filled = np.asarray(table["count"]) > 0
        diagram.plot(np.asarray(table["confidence"])[filled], np.asarray(table["accuracy"])[filled], color=color,
                     marker=marker, markersize=4, linewidth=1)
        width = 1.0 / len(table["count"])
        # An empty bin has no point on a log axis: NaN breaks the line there instead of drawing it to the edge.
        share = np.where(filled, np.asarray(table["count"]) / np.sum(table["count"]), np.nan)
        spread.plot(np.asarray(table["upper"]) - width / 2, share,
                    color=color, marker=marker, markersize=4, linewidth=1, label=name)
    diagram.set(xlabel="mean confidence in the bin", ylabel="accuracy in the bin", xlim=(0, 1), ylim=(0, 1),
                title="reliability (below the dashed diagonal: over-confident)")
    spread.set(xlabel="confidence", ylabel="share of the test examples", yscale="log",
               title="confidence of the predictions")
    diagram.grid(alpha=0.3)
    spread.grid(alpha=0.3)
    spread.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the plots, covering no line
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110, bbox_inches="tight")  # the legend stands outside the axes
    return fig


def upsample(maps, size):
    """Bilinear upsampling of `(n, h, w)` maps to `size = (H, W)` (e.g. CAM's 8×8 to the image's 32×32)."""
    import tensorflow as tf

    maps = np.asarray(maps, "float32")
    return tf.image.resize(maps[..., None], size, method="bilinear").numpy()[..., 0]


def show_explanation(ax, image, explanation, alpha=0.6, title=None):
    """Draw `image` in grey with a signed `explanation` upsampled and overlaid, centred on zero.

    Args:
        ax: a matplotlib axis.
        image: `(H, W)` or `(H, W, C)` image in [0, 1].
        explanation: `(h, w)` map of any sign and scale.
        alpha: opacity of the map.
        title: the panel's title.

    Returns:
        The `AxesImage` of the map (for a colorbar).
    """
    image = np.squeeze(np.asarray(image, "float32"))
    grey = image if image.ndim == 2 else image.mean(-1)
    heat = upsample(np.asarray(explanation)[None], grey.shape[:2])[0]
    limit = float(np.abs(heat).max()) or 1.0
    ax.imshow(grey, cmap="gray", vmin=0.0, vmax=1.0)
    shown = ax.imshow(heat, cmap=SIGNED_CMAP, vmin=-limit, vmax=limit, alpha=alpha)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return shown


def plot_explanations(images, maps, soft_targets, labels, class_names, path=None, predictions=None):
    """One row per image: the image, its explanation overlaid on it, its soft target.

    Args:
        images: `(n, h, w, c)` images in [0, 1].
        maps: `(n, h', w')` explanation maps (any sign and scale; upsampled to the image).
        soft_targets: `(n, classes)` soft labels.
        labels: `(n,)` true classes.
        class_names: names of the classes.
        path: save the figure there (PNG) when given.
        predictions: optional `(n,)` predicted classes.

    Returns:
        The matplotlib `Figure`.
    """
    n = len(images)
    # constrained layout keeps the full class names under the bars and the colorbars beside the maps
    fig = Figure(figsize=(8.5, 2.4 * n), layout="constrained")
    # square panels for the image and its map (with its colorbar), a wider one for the class bars
    axes = fig.subplots(n, 3, squeeze=False, gridspec_kw={"width_ratios": [1, 1.25, 2.2]})
    for i in range(n):
        image = np.squeeze(images[i])
        axes[i, 0].imshow(image, cmap="gray" if image.ndim == 2 else None)
        title = f"true: {class_names[labels[i]]}"
        if predictions is not None:
            title += f"\npredicted: {class_names[predictions[i]]}"
        axes[i, 0].set_title(title, fontsize=8)
        axes[i, 0].axis("off")
        shown = show_explanation(axes[i, 1], images[i], maps[i], title=f"explanation of '{class_names[labels[i]]}'")
        fig.colorbar(shown, ax=axes[i, 1], fraction=0.046, ticks=[], label="against ← 0 → for")
        axes[i, 2].bar(range(len(class_names)), soft_targets[i], color="tab:blue")
        axes[i, 2].bar([labels[i]], [soft_targets[i][labels[i]]], color="tab:orange")
        axes[i, 2].set_yscale("log")
        # Decades only: the log axis's minor ticks (8 per decade, laid out at every constrained-layout pass)
        # took half of the figure's drawing time.
        axes[i, 2].yaxis.set_minor_locator(ticker.NullLocator())
        axes[i, 2].set_ylim(1e-4, 1.0)
        axes[i, 2].set_xticks(range(len(class_names)))
        axes[i, 2].set_xticklabels([str(c) for c in class_names], rotation=90, fontsize=7)
        axes[i, 2].set_title("soft target q (orange: true class)", fontsize=8)
    if path:
        fig.savefig(path, dpi=110)
    return fig
