"""Pictures of adversarial examples (matplotlib, off-screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunemip.atomic import atomic_write
from prunemip.errors import PrunemipError


def save_adversarial_png(
    path: str | Path, original: np.ndarray, adversarial: np.ndarray, shape: tuple[int, ...], title: str
) -> Path:
    """Original, adversarial and difference side by side; images when ``shape`` is 2-D or more.

    Written atomically, so a failure leaves nothing behind.

    Args:
        path: the ``.png`` file to write.
        original: the clean input, flat.
        adversarial: the adversarial input, flat.
        shape: the shape of one input (its last two axes are the image's).
        title: the figure's title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(path)
    if target.suffix.lower() != ".png":
        raise PrunemipError(f"the picture must be a .png file, got {target.name!r}")
    difference = adversarial - original
    figure, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    panels = (("original", original), ("adversarial", adversarial))
    limit = float(np.max(np.abs(difference), initial=0.0)) or 1.0
    if len(shape) >= 2:
        image_shape = shape[-2:]
        for axis, (name, values) in zip(axes[:2], panels, strict=True):
            axis.imshow(
                values.reshape(image_shape), cmap="gray", vmin=0.0, vmax=max(1.0, float(values.max()))
            )
            axis.set_title(name)
        shown = axes[2].imshow(difference.reshape(image_shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        figure.colorbar(shown, ax=axes[2], fraction=0.046)
        for axis in axes:
            axis.set_xticks([])
            axis.set_yticks([])
    else:
        for axis, (name, values) in zip(axes[:2], panels, strict=True):
            axis.bar(np.arange(values.size), values)
            axis.set_title(name)
        axes[2].bar(np.arange(difference.size), difference, color="tab:red")
    axes[2].set_title("difference")
    figure.suptitle(title)
    figure.tight_layout()
    try:
        atomic_write(target, lambda handle: figure.savefig(handle, format="png", dpi=120))
    finally:
        plt.close(figure)
    return target
