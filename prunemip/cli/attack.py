"""``prunemip encode`` and ``prunemip attack``: one problem, a network, a point and a ball around it.

``encode`` writes the adversarial big-M MIP (MPS/LP) and prints its size; ``attack`` solves
it with HiGHS and re-checks every example by a float64 forward pass. Both build their
:class:`Instance` (network with a bounded input range, point, label) here.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from prunemip.cli.arguments import (
    add_device_argument,
    add_instance_arguments,
    add_solver_arguments,
    examples,
    output_file,
)
from prunemip.errors import PrunemipError
from prunemip.network import Network

if TYPE_CHECKING:
    from prunemip.engine.attack import AttackResult
    from prunemip.regions import InputRegion
    from prunemip.solvers.bounds import ObbtOptions


def add_encode_parser(commands: Any, formatter: Any) -> None:
    """Register ``encode`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    encode = commands.add_parser(
        "encode",
        formatter_class=formatter,
        help="write the adversarial MIP of a network as MPS/LP",
        description=(
            "Encode the network over a ball around the input point as a big-M MIP maximising the\n"
            "margin logit[target] - logit[label], print its size, and optionally write it."
        ),
        epilog=examples(
            "prunemip encode model.pt --dataset digits --index 7 --norm linf --eps 0.05 -o out.mps",
            "prunemip encode model.onnx --input x.npy --input-range 0 1 --norm l1 --eps 5 -o out.lp",
        ),
    )
    add_instance_arguments(encode)
    encode.add_argument(
        "--target", type=int, help="target class of the margin objective (default: runner-up)"
    )
    encode.add_argument("-o", "--output", help="write the MIP here (.mps or .lp)")


def add_attack_parser(commands: Any, formatter: Any) -> None:
    """Register ``attack`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    attack = commands.add_parser(
        "attack",
        formatter_class=formatter,
        help="find (or rule out) an adversarial example with HiGHS",
        description=(
            "Solve the adversarial MIP: targeted with --target, else untargeted (runner-up class first).\n"
            "decide mode stops at the first adversarial example or once none can exist; optimize mode\n"
            "proves the largest margin. Every example is re-checked by a float64 forward pass.\n\n"
            "On a terminal a live line per target shows the stage, elapsed time, best margin found and\n"
            "best proven bound. Ctrl-C stops the search: the best result so far is printed and written\n"
            '(JSON "interrupted": true, the picture if an example was found), exit status 130; a second\n'
            "Ctrl-C aborts at once."
        ),
        epilog=examples(
            "prunemip attack model.pt --dataset digits --index 7 --eps 0.05 --json adv.json --png adv.png",
            "prunemip attack model.npz --dataset mnist --index 3 --norm l1 --eps 5 --mode optimize \\",
            "    --time-limit 180",
        ),
    )
    add_instance_arguments(attack)
    attack.add_argument("--target", type=int, help="target class (default: untargeted)")
    attack.add_argument("--mode", choices=("decide", "optimize"), default="decide", help="MIP mode (decide)")
    attack.add_argument(
        "--no-pgd", action="store_true", help="skip the quick gradient attack that runs before the MIP"
    )
    add_device_argument(attack)
    add_solver_arguments(attack)
    attack.add_argument("--json", default="attack.json", help="result file (default attack.json; '' to skip)")
    attack.add_argument(
        "--png", default="attack.png", help="picture of the example (default attack.png; '' to skip)"
    )


# ----------------------------------------------------------------------- running
def run_encode(args: argparse.Namespace, console: Console) -> None:
    """Encode the instance's margin MIP, print the bounds and size tables, write it if asked.

    Args:
        args: the parsed command line.
        console: where the tables go.
    """
    from prunemip.cli.tables import bounds_table, encoding_table
    from prunemip.encoders.bigm import encode
    from prunemip.encoders.writers import write_model
    from prunemip.engine.attack import target_order
    from prunemip.solvers.bounds import compute_bounds

    instance = _instance(args)
    region = _region(instance, args)
    output = output_file(args.output, "-o", (".mps", ".lp"))
    logits = instance.network.forward(instance.x0)
    target = args.target if args.target is not None else target_order(logits, instance.label)[0]
    if not 0 <= target < instance.network.n_outputs or target == instance.label:
        raise PrunemipError(f"--target {target} must be a class other than the label {instance.label}")
    bounds = compute_bounds(instance.network, region, args.bounds, options=_bounds_options(args))
    model = encode(instance.network, region, bounds, formulation=_formulation(args))
    model = model.with_margin_objective(target, instance.label)
    console.print(
        f"{instance.source}: label {instance.label}, objective logit[{target}] − logit[{instance.label}]"
    )
    console.print(bounds_table(model.stats.bounds_stages))
    console.print(encoding_table(model))
    if output is not None:
        write_model(model, output)
        console.print(f"wrote {output}")


def run_attack(args: argparse.Namespace, console: Console) -> None:
    """Search the ball for an adversarial example; print the outcome, write the JSON and picture.

    Args:
        args: the parsed command line.
        console: where the tables and the outcome go.
    """
    from prunemip.cli.live import raise_if_interrupted, searching
    from prunemip.cli.outputs import write_json
    from prunemip.cli.plotting import save_adversarial_png
    from prunemip.cli.tables import attack_table, bounds_table
    from prunemip.engine.attack import AttackOptions, find_adversarial_example
    from prunemip.solvers.highs import HighsOptions

    instance = _instance(args)
    region = _region(instance, args)
    json_path = output_file(args.json, "--json", (".json",))
    png_path = output_file(args.png, "--png", (".png",))
    highs = HighsOptions(
        time_limit=args.time_limit,
        threads=args.threads,
        random_seed=args.solver_seed,
        mip_rel_gap=args.gap,
        log=args.log,
    )
    options = AttackOptions(
        mode=args.mode,
        bounds=args.bounds,
        bounds_options=_bounds_options(args),
        formulation=_formulation(args),
        highs=highs,
        pgd=not args.no_pgd,
        device=args.device,
    )
    with searching(console) as progress:
        result = find_adversarial_example(
            instance.network,
            instance.x0,
            instance.label,
            region,
            target=args.target,
            options=replace(options, progress=progress),
        )
    console.print(f"{instance.source}: label {instance.label}, clean prediction {result.clean_prediction}")
    if result.pgd_seconds:
        margin = "—" if result.pgd_margin is None else f"{result.pgd_margin:.6g}"
        console.print(f"gradient attack: best margin {margin} in {result.pgd_seconds:.3f} s")
    if result.encoding is not None:
        console.print(bounds_table(result.encoding.bounds_stages))
    if result.targets:
        console.print(attack_table(result))
    _print_outcome(result, console)
    if json_path is not None:
        write_json(json_path, {"model": str(args.model), "input": instance.source, **result.to_dict()})
        console.print(f"wrote {json_path}")
    if png_path is not None and result.found and result.witness is not None:
        title = f"label {instance.label} → {result.witness.predicted} ({region.describe()})"
        save_adversarial_png(
            png_path, region.project(instance.x0), result.witness.x, instance.image_shape, title
        )
        console.print(f"wrote {png_path}")
    elif png_path is not None:
        console.print(
            f"no picture written to {png_path}: {result.status}, so there is no adversarial example"
        )
    raise_if_interrupted(result.interrupted, console)


_OUTCOMES = {
    "adversarial": "adversarial example found",
    "robust": "no adversarial example exists in the region (proved)",
    "timeout": "time limit reached before the question was settled",
    "misclassified": "the clean input is already misclassified",
    "unknown": "the solver stopped without a verified answer",
}


def _print_outcome(result: AttackResult, console: Console) -> None:
    """The attack's status in words and, for an example found, its forward-pass check."""
    words = _OUTCOMES[result.status]
    if result.interrupted and result.status in ("timeout", "unknown"):
        words = "interrupted (Ctrl-C) before the question was settled"
    console.print(f"[bold]{result.status}[/bold]: {words} ({result.total_seconds:.2f} s)")
    witness = result.witness
    if witness is not None and result.found:
        console.print(
            f"  class {witness.predicted} with margin {witness.margin:.6g} (forward pass, float64), "
            f"L∞ distance {witness.distance['linf']:.4g}, L1 distance {witness.distance['l1']:.4g}, "
            f"check {'passed' if witness.is_adversarial else 'FAILED'}"
        )


def _region(instance: Instance, args: argparse.Namespace) -> InputRegion:
    """The ``--norm`` ball of radius ``--eps`` around the point, within the network's input range."""
    from prunemip.regions import InputRegion

    spec = instance.network.input_spec
    return InputRegion.ball(args.norm, instance.x0, args.eps, spec.lower, spec.upper)


def _formulation(args: argparse.Namespace) -> str:
    """``--formulation``, else the encoder's measured default."""
    from prunemip.encoders.bigm import DEFAULT_FORMULATION

    return args.formulation or DEFAULT_FORMULATION


def _bounds_options(args: argparse.Namespace) -> ObbtOptions | None:
    """LP/MIP tightening options from ``--bounds-budget`` and ``--lp-cuts``; ``None`` for the defaults."""
    from prunemip.solvers.bounds import ObbtOptions

    if args.bounds_budget is None and not args.lp_cuts:
        return None
    budget = {} if args.bounds_budget is None else {"budget": args.bounds_budget}
    return ObbtOptions(cut_rounds=args.lp_cuts, **budget)


# ----------------------------------------------------------------------- the instance
@dataclass(frozen=True, eq=False)
class Instance:
    """A network, a point of its input space, the point's label, and where they came from."""

    network: Network
    x0: np.ndarray
    label: int
    source: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one input (an image's for image models)."""
        return self.network.input_spec.shape


def _instance(args: argparse.Namespace) -> Instance:
    """The instance the input-point flags name (see :func:`build_instance`)."""
    return build_instance(
        args.model,
        dataset=args.dataset,
        index=args.index,
        split=args.split,
        data_dir=args.data_dir,
        seed=args.data_seed,
        input_path=args.input_path,
        label=args.label,
        input_range=tuple(args.input_range) if args.input_range else None,
        trust_pickle=args.trust_pickle,
    )


def build_instance(
    model: str | Path,
    *,
    dataset: str | None = None,
    index: int = 0,
    split: str = "test",
    data_dir: str | None = None,
    seed: int = 0,
    input_path: str | Path | None = None,
    label: int | None = None,
    input_range: tuple[float, float] | None = None,
    trust_pickle: bool = False,
) -> Instance:
    """Load the model and pick the point: ``input_path`` if given, else a dataset image.

    Args:
        model: the network file.
        dataset: the dataset the point comes from (when no ``input_path``).
        index: the image's index in the split.
        split: the dataset split.
        data_dir: folder with the dataset's files.
        seed: seed of the dataset's split.
        input_path: a ``.npy`` file holding the point instead.
        label: the true label; without it a ``.npy`` point is labelled by the network's own
            prediction, a dataset image by the dataset.
        input_range: valid input values ``(lo, hi)`` replacing the model's own.
        trust_pickle: allow unpickling a whole module.

    Returns:
        The network (with a bounded input range), the point, its label and a description of its source.
    """
    from prunemip.model_io import load_network

    network = load_network(model, trust_pickle=trust_pickle)
    network = with_input_range(network, input_range, dataset)
    if not network.input_spec.is_bounded:
        raise PrunemipError(
            f"the valid input range of {Path(model).name} is unknown (the file carries no metadata): "
            "give --input-range LO HI, or --dataset to use its [0, 1] range"
        )
    if input_path is not None:
        point = load_point(input_path, network)
        source = str(input_path)
        true_label = int(network.predict(point)) if label is None else label
    elif dataset is not None:
        point, true_label = dataset_point(network, dataset, index, split, data_dir, seed)
        source = f"{dataset}:{split}[{index}]"
        if label is not None:
            true_label = label
    else:
        raise PrunemipError("choose the input point: --dataset NAME --index I, or --input FILE.npy")
    if not 0 <= true_label < network.n_outputs:
        raise PrunemipError(
            f"label {true_label} is not a class of a network with {network.n_outputs} outputs"
        )
    return Instance(network, point, true_label, source)


def with_input_range(
    network: Network, input_range: tuple[float, float] | None, dataset: str | None
) -> Network:
    """The network with the input range to use: ``--input-range``, else its own, else the dataset's [0, 1].

    Args:
        network: the loaded network.
        input_range: ``(lo, hi)`` from ``--input-range``, or ``None``.
        dataset: the dataset the point comes from, or ``None``.

    Returns:
        The network, its input range replaced when one applies (it stays unbounded otherwise).
    """
    spec = network.input_spec
    if input_range is not None:
        low, high = input_range
        if not (np.isfinite(low) and np.isfinite(high)) or low > high:
            raise PrunemipError(f"--input-range needs finite LO <= HI, got {low} {high}")
        return network.with_input_spec(spec.with_range(low, high))
    if spec.is_bounded:
        return network
    if dataset is not None:  # every prunemip dataset is scaled to [0, 1]
        return network.with_input_spec(spec.with_range(0.0, 1.0))
    return network


def load_point(path: str | Path, network: Network) -> np.ndarray:
    """An input point from a ``.npy`` file, checked against the network's input size.

    The header is read first, so a file that is no ``.npy`` array, holds no real numbers or
    holds the wrong number of values is refused before its data is read.

    Args:
        path: the ``.npy`` file.
        network: the network the point is for.

    Returns:
        The point, flat, float64.

    Raises:
        PrunemipError: for a missing file, a file that is not a ``.npy`` array of real numbers,
            a size other than the network's input size, or NaN/Inf values.
    """
    target = Path(path)
    shape, dtype = _npy_header(target)
    if dtype.kind not in _REAL_KINDS:
        what = _NOT_REAL.get(dtype.kind, f"{dtype} values")
        raise PrunemipError(f"input {target.name} holds {what}, not real numbers")
    size = math.prod(shape)
    if size != network.n_inputs:
        raise PrunemipError(
            f"input {target.name} has {size} value{'' if size == 1 else 's'} (shape {shape}) but the "
            f"network takes {network.n_inputs}"
        )
    try:
        point = np.load(target, allow_pickle=False)
    except (ValueError, EOFError, OSError):
        raise PrunemipError(f"input {target.name} is truncated: its header promises shape {shape}") from None
    point = np.asarray(point, dtype=np.float64)
    if not np.all(np.isfinite(point)):
        raise PrunemipError(f"input {target.name} contains NaN or Inf")
    return point.reshape(-1)


#: NumPy dtype kinds a point may hold (bool, signed and unsigned integers, floats), and names for the others.
_REAL_KINDS = "biuf"
_NOT_REAL = {"O": "Python objects", "U": "text", "S": "bytes", "c": "complex numbers"}


def _npy_header(target: Path) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` file's header declares, read without the data."""
    if not target.exists():
        raise PrunemipError(f"input file {target} does not exist")
    if not target.is_file():
        raise PrunemipError(f"input {target} is a folder, not a .npy file")
    if target.stat().st_size == 0:
        raise PrunemipError(f"input file {target} is empty")
    formats = np.lib.format
    try:
        with target.open("rb") as handle:
            version = formats.read_magic(handle)
            read = formats.read_array_header_1_0 if version == (1, 0) else formats.read_array_header_2_0
            shape, _, dtype = read(handle)
    except OSError as error:
        raise PrunemipError(f"cannot read {target}: {error.strerror or error}") from None
    except ValueError:
        raise PrunemipError(
            f"input {target.name} is not a .npy file (write the point with numpy.save)"
        ) from None
    return shape, dtype


def dataset_point(
    network: Network, dataset: str, index: int, split: str, data_dir: str | None, seed: int
) -> tuple[np.ndarray, int]:
    """Image ``index`` of a dataset split and its label, checked against the network's input size.

    Args:
        network: the network the point is for.
        dataset: the dataset's name.
        index: the image's index in the split.
        split: the dataset split.
        data_dir: folder with the dataset's files.
        seed: seed of the dataset's split.

    Returns:
        The image, flat, and its label.
    """
    from prunemip.data import load_dataset

    data = load_dataset(dataset, split, data_dir=data_dir, seed=seed)
    if not 0 <= index < len(data):
        raise PrunemipError(
            f"--index {index} is out of range: the {dataset} {split} split has {len(data)} images"
        )
    point = data.flat()[index]
    if point.size != network.n_inputs:
        raise PrunemipError(
            f"{dataset} images have {point.size} pixels but the network takes {network.n_inputs} inputs"
        )
    return point, int(data.labels[index])
