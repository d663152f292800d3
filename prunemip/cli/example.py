"""``prunemip example DIR``: the files the README's commands use, from a model trained in seconds.

It trains the demo's dense digits MLP and its 90 %-sparse copy through the same pipeline
(:func:`prunemip.study.demo.train_dense_and_pruned`, no attacks) and writes, in ``DIR``:
the pruned network as ``model.pt``, ``model.onnx`` and ``model.npz``, the dense one as
``dense.pt``, a test image both classify correctly (``x.npy``, its label in ``label.txt``),
the L∞ robustness property of that image (``prop.vnnlib``), a VNN-COMP instances file
listing it (``instances.csv``) and a study that runs in seconds (``study.toml``).

A command of its own rather than ``prunemip demo --save``: the demo's point is its attacks
(tens of seconds, a table of solve times), while these files need the training only, and
``demo --save-dir`` already saves the demo's own results.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from prunemip.cli.arguments import examples, nonnegative_float
from prunemip.errors import PrunemipError
from prunemip.network import Network

#: Training and fine-tuning epochs: half the demo's budget, so the files come in seconds.
EPOCHS, FINETUNE_EPOCHS = 20, 10

#: The study ``study.toml`` holds: digits, one small MLP, dense vs 80 % magnitude pruning.
STUDY = """\
# A tiny study written by prunemip example: digits, a 64-16-16-10 MLP, dense vs 80 % global
# magnitude pruning, 3 test images, L∞ ε = 0.05, decide mode; it runs in seconds.
#
#   prunemip experiment run study.toml --workers 1 --out runs/example
#   prunemip experiment report runs/example/results.jsonl
name = "example"
description = "prunemip example: dense vs 80 % magnitude pruning on digits, 3 images"
architectures = ["2x16"]

[data]
dataset = "digits"

[training]
epochs = 5
finetune_epochs = 2
batch_size = 64
lr = 0.005
seeds = [0]

[[methods]]
name = "magnitude"
sparsities = [0.8]

[attack]
images = 3
perturbations = [{ norm = "linf", radius = 0.05 }]
time_limit = 10
"""

#: What to try next, run inside ``DIR`` (the README's commands use the same names).
NEXT = (
    "prunemip info model.onnx",
    "prunemip attack model.npz --input x.npy --eps 0.05",
    "prunemip verify model.onnx prop.vnnlib",
    "prunemip verify --instances instances.csv --results results.csv",
    "prunemip experiment run study.toml --workers 1 --out runs/example",
)


def add_parser(commands: Any, formatter: Any) -> None:
    """Register ``example`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    example = commands.add_parser(
        "example",
        formatter_class=formatter,
        help="write example files (models, an input, a VNN-LIB property, a study) to try the commands on",
        description=(
            "Train the demo's digits MLP and its 90%-sparse copy (seconds, no attacks) and write the\n"
            "files the README's commands use: model.pt, model.onnx, model.npz (the pruned network),\n"
            "dense.pt, x.npy and label.txt (a test image), prop.vnnlib (its L-inf robustness),\n"
            "instances.csv (for verify --instances) and study.toml (a study of a few seconds)."
        ),
        epilog=examples("prunemip example example-files", "prunemip example /tmp/pm --eps 0.1 --seed 1"),
    )
    example.add_argument("folder", help="where the files go (created if missing; files there are replaced)")
    example.add_argument(
        "--eps", type=nonnegative_float, default=0.05, help="L-inf radius of prop.vnnlib (0.05)"
    )
    example.add_argument("--seed", type=int, default=0, help="seed of data split and training (0)")


def run(args: argparse.Namespace, console: Console) -> None:
    """Train, write the example files, list them and the commands to try next.

    Args:
        args: the parsed command line.
        console: where the training log and the listing go.

    Raises:
        PrunemipError: when ``DIR`` is a file or cannot be created.
    """
    from prunemip.study.demo import DemoConfig, attack_images, train_dense_and_pruned

    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise PrunemipError(f"{folder} is a file, not a folder")
    (dense, pruned), test = train_dense_and_pruned(
        DemoConfig(epochs=EPOCHS, finetune_epochs=FINETUNE_EPOCHS, seed=args.seed), log=console.print
    )
    chosen = attack_images(test, [dense.network, pruned.network], 1)
    if not chosen:
        raise PrunemipError(
            f"no digits test image is classified correctly by both networks (seed {args.seed})"
        )
    index = chosen[0]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrunemipError(f"cannot create {folder} ({exc.strerror})") from None
    image, label = test.images[index], int(test.labels[index])
    written = write_files(folder, dense.network, pruned.network, image, label, args.eps)
    console.print(f"\nwrote in {folder}/ (digits test image {index} as x.npy):")
    for name, what in written.items():
        console.print(f"  {name:<14} {what}")
    console.print(f"\ntry next:\n  cd {folder}\n" + "\n".join(f"  {line}" for line in NEXT))


def write_files(
    folder: Path, dense: Network, model: Network, x: np.ndarray, label: int, eps: float
) -> dict[str, str]:
    """Write the example files (each atomically) into ``folder``.

    Args:
        folder: an existing folder.
        dense: the dense network (``dense.pt``).
        model: the pruned network (``model.pt``, ``model.onnx``, ``model.npz``).
        x: the input image (``x.npy``), classified as ``label`` by both networks.
        label: its true class (``label.txt``).
        eps: the L∞ radius of ``prop.vnnlib``.

    Returns:
        Each file name written, with what it holds.
    """
    from prunemip.atomic import atomic_write, atomic_write_lines
    from prunemip.model_io import save_model
    from prunemip.onnx_export import input_range_text
    from prunemip.vnnlib import robustness_vnnlib

    pruned = f"{model.architecture} MLP at {model.sparsity:.0%} sparsity"
    spec = model.input_spec
    inputs = input_range_text(spec)
    files = {
        "model.pt": f"the {pruned}, a PyTorch state_dict (float32)",
        "model.onnx": f"the same, ONNX (float64; {inputs} in its metadata)",
        "model.npz": "the same, prunemip's format (exact weights and mask)",
        "dense.pt": f"the dense {dense.architecture} MLP it was pruned from",
        "x.npy": f"a digits test image ({'x'.join(map(str, x.shape))})",
        "label.txt": f"its label, {label}",
        "prop.vnnlib": f"VNN-LIB: an input within L-inf {eps:g} of x.npy that is not classified {label}?",
        "instances.csv": "model.onnx,prop.vnnlib,60 (for verify --instances)",
        "study.toml": "a tiny study: dense vs pruned on digits, runs in seconds",
    }
    for name in ("model.pt", "model.onnx", "model.npz"):
        save_model(model, folder / name)
    save_model(dense, folder / "dense.pt")
    atomic_write(folder / "x.npy", lambda handle: np.save(handle, x))
    atomic_write_lines(folder / "label.txt", [str(label)])
    comment = (
        f"Written by prunemip example: is the {pruned} (model.onnx) robust around x.npy?\n"
        f"Inputs: the L-inf ball of radius {eps:g} around x.npy, {inputs}. Counterexample\n"
        f"(sat): an input there with some logit Y_j >= Y_{label}, j != {label} (label {label})."
    )
    text = robustness_vnnlib(x, label, eps, model.n_outputs, spec.lower, spec.upper, comment)
    atomic_write_lines(folder / "prop.vnnlib", text.splitlines())
    atomic_write_lines(folder / "instances.csv", ["model.onnx,prop.vnnlib,60"])
    atomic_write_lines(folder / "study.toml", STUDY.splitlines())
    return files
