"""The benchmark networks of ``bounds.py``: digits and Fashion-MNIST MLPs, dense and 90 % sparse.

Each net is trained once (Adam, cross-entropy), a copy is pruned by global weight
magnitude over the hidden layers' incoming weights (the output layer stays dense, as
``prunemip demo`` does) and fine-tuned under its mask; both are cached as prunemip
``.npz`` files (the CSR pattern is the mask) in ``runs/benchmark-nets`` (git-ignored).
The training loop is deliberately self-contained plain PyTorch, so the cached nets do not
change when ``prunemip.pruning.training`` evolves; the recipe is recorded in each net's metadata.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from prunemip.data import Dataset, load_dataset
from prunemip.model_io import load_network, save_network
from prunemip.network import Network

CACHE = Path(__file__).resolve().parents[2] / "runs" / "benchmark-nets"
ARCHS = {"2x100": (100, 100), "2x200": (200, 200), "3x100": (100, 100, 100)}
DATASETS = ("digits", "fashion-mnist")
#: (dense epochs, fine-tune epochs) per dataset: digits has 1438 training images, Fashion-MNIST 60 000.
EPOCHS = {"digits": (60, 30), "fashion-mnist": (10, 5)}
SPARSITY = 0.9


def _train(model, masks, images, labels, epochs: int, seed: int, lr: float = 1e-3) -> None:
    import torch
    from torch import nn

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for first in range(0, len(labels), 128):
            batch = order[first : first + 128]
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if masks is not None:
                with torch.no_grad():
                    for layer, mask in zip(linears, masks, strict=False):
                        layer.weight.mul_(mask)


def _export(model, masks, data: Dataset, metadata: dict) -> Network:
    from torch import nn

    linears = [m for m in model if isinstance(m, nn.Linear)]
    weights, biases = [], []
    for index, layer in enumerate(linears):
        w = layer.weight.detach().double().numpy()
        if masks is not None and index < len(masks):
            keep = masks[index].numpy().astype(bool)
            rows, cols = np.nonzero(keep)
            weights.append(sp.csr_matrix((w[rows, cols], (rows, cols)), shape=w.shape))
        else:
            weights.append(w)
        biases.append(layer.bias.detach().double().numpy())
    return Network.from_arrays(weights, biases, data.input_spec(), metadata=metadata)


def _accuracy(network: Network, data: Dataset) -> float:
    return float(np.mean(network.predict(data.flat()) == data.labels))


def build_pair(dataset: str, arch: str, seed: int = 0, log=print) -> dict[str, Network]:
    """Train the dense net and its 90 %-sparse copy (or load them from the cache)."""
    paths = {kind: CACHE / f"{dataset}-{arch}-{kind}.npz" for kind in ("dense", "sparse")}
    if all(p.exists() for p in paths.values()):
        return {kind: load_network(path) for kind, path in paths.items()}
    import torch
    from torch import nn

    torch.manual_seed(seed)
    train_data = load_dataset(dataset, "train", seed=seed)
    test_data = load_dataset(dataset, "test", seed=seed)
    images = torch.as_tensor(train_data.flat(), dtype=torch.float32)
    labels = torch.as_tensor(train_data.labels)
    hidden = ARCHS[arch]
    widths = [images.shape[1], *hidden, len(train_data.classes)]
    modules: list = []
    for i in range(len(widths) - 1):
        modules.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            modules.append(nn.ReLU())
    model = nn.Sequential(*modules)
    dense_epochs, finetune_epochs = EPOCHS[dataset]
    start = time.perf_counter()
    _train(model, None, images, labels, dense_epochs, seed)
    recipe = {"optimizer": "adam", "lr": 1e-3, "batch": 128, "epochs": dense_epochs, "seed": seed}
    dense = _export(model, None, train_data, {"benchmark": "bounds", "kind": "dense", "train": recipe})
    # Global magnitude pruning of the hidden layers' incoming weights (output layer dense).
    linears = [m for m in model if isinstance(m, nn.Linear)]
    prunable = linears[:-1]
    scores = torch.cat([layer.weight.detach().abs().flatten() for layer in prunable])
    n_remove = round(SPARSITY * scores.numel())
    threshold_order = torch.argsort(scores, stable=True)
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep[threshold_order[:n_remove]] = False
    masks, offset = [], 0
    for layer in prunable:
        size = layer.weight.numel()
        masks.append(keep[offset : offset + size].reshape(layer.weight.shape).float())
        offset += size
    with torch.no_grad():
        for layer, mask in zip(prunable, masks, strict=True):
            layer.weight.mul_(mask)
    _train(model, masks, images, labels, finetune_epochs, seed + 1)
    sparse_recipe = {**recipe, "epochs": finetune_epochs, "seed": seed + 1, "sparsity": SPARSITY}
    sparse = _export(
        model, masks, train_data, {"benchmark": "bounds", "kind": "sparse", "finetune": sparse_recipe}
    )
    nets = {}
    for kind, network in (("dense", dense), ("sparse", sparse)):
        network = network.with_metadata(test_accuracy=_accuracy(network, test_data))
        CACHE.mkdir(parents=True, exist_ok=True)
        save_network(network, paths[kind])
        nets[kind] = network
    accuracies = {kind: net.metadata["test_accuracy"] for kind, net in nets.items()}
    log(
        f"trained {dataset} {arch} in {time.perf_counter() - start:.0f} s: accuracy dense "
        f"{accuracies['dense']:.3f}, 90 % sparse {accuracies['sparse']:.3f}"
    )
    return nets


if __name__ == "__main__":
    for name in DATASETS:
        for arch_name in ARCHS:
            build_pair(name, arch_name)
