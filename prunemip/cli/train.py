"""The ``prunemip train`` and ``prunemip prune`` commands (parsers and runners).

Kept out of :mod:`prunemip.cli` so that file only wires them in; nothing here imports
torch until a command runs. Option defaults are read from the config dataclasses, so
``--help`` shows the values the library really uses.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from prunemip.devices import DEVICES
from prunemip.errors import PrunemipError
from prunemip.pruning.config import (
    OPTIMIZERS,
    RS_BOUNDS,
    SCHEDULES,
    PruneConfig,
    RunConfig,
    TrainConfig,
    parse_arch,
    parse_layers,
)
from prunemip.pruning.registry import ALLOCATIONS, FREEZERS, METHODS

if TYPE_CHECKING:
    from prunemip.network import Network
    from prunemip.pruning.pipeline import Outcome

_DEFAULTS = {
    f.name: f.default for cls in (TrainConfig, PruneConfig) for f in fields(cls) if f.default is not MISSING
}


def _option(group: Any, flag: str, name: str, help: str, **kwargs: Any) -> None:
    """An option for config field ``name``; ``None`` when not given (the dataclass default applies)."""
    default = _DEFAULTS.get(name)
    shown = "" if default is None else f" ({default})"
    group.add_argument(flag, dest=name, default=None, help=f"{help}{shown}", **kwargs)


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits", help="digits, mnist, fashion-mnist, ... (digits)")
    data.add_argument("--data-dir", help="folder with the dataset's IDX/NPZ files")
    data.add_argument("--data-seed", type=int, default=0, help="seed of the train/test split (0)")


def _add_training_options(parser: argparse.ArgumentParser, epochs: bool = True) -> None:
    group = parser.add_argument_group("training")
    if epochs:
        _option(group, "--epochs", "epochs", "training epochs (IMP: per level)", type=int)
    _option(group, "--batch-size", "batch_size", "mini-batch size", type=int)
    _option(group, "--lr", "lr", "base learning rate", type=float)
    _option(group, "--optimizer", "optimizer", "optimizer", choices=OPTIMIZERS)
    _option(group, "--momentum", "momentum", "SGD momentum", type=float)
    _option(group, "--weight-decay", "weight_decay", "L2 weight decay", type=float)
    _option(group, "--schedule", "schedule", "learning-rate schedule", choices=SCHEDULES)
    _option(group, "--seed", "seed", "seed of initialisation, batch order and random masks", type=int)
    _option(group, "--device", "device", "training device", choices=DEVICES)
    regular = parser.add_argument_group("regularisers (any method)")
    _option(regular, "--l1", "l1", "L1 weight penalty λ", type=float)
    _option(regular, "--rs-weight", "rs_weight", "ReLU-stability loss weight (Xiao et al. 2019)", type=float)
    _option(regular, "--rs-eps", "rs_eps", "L∞ radius of the RS loss's input ball, 0 for none", type=float)
    _option(regular, "--rs-l1", "rs_l1", "L1 radius of a second RS input ball, 0 for none", type=float)
    _option(regular, "--rs-bounds", "rs_bounds", "how the RS loss bounds neurons", choices=RS_BOUNDS)


def _allocation_defaults(names: list[str], trained_model: bool) -> str:
    """The default allocation of each method of ``names`` that has one: for ``train``, e.g.
    ``magnitude layer (trained: global)``; for a trained model (``prune``) the one in force there."""
    shown = []
    for name in names:
        spec = METHODS[name]
        if not spec.default_allocation:
            continue
        if trained_model:
            shown.append(f"{name} {spec.trained_allocation or spec.default_allocation}")
        else:
            trained = f" (trained: {spec.trained_allocation})" if spec.trained_allocation else ""
            shown.append(f"{name} {spec.default_allocation}{trained}")
    return ", ".join(shown)


def _add_method_options(
    parser: argparse.ArgumentParser, default_method: str, names: list[str], trained_model: bool = False
) -> None:
    """``--method`` among ``names`` and its options; ``trained_model`` for ``prune``, which needs
    ``--sparsity`` and applies each method's trained-model allocation."""
    group = parser.add_argument_group("pruning method")
    group.add_argument(
        "--method", default=default_method, help=f"one of {', '.join(names)} ({default_method})"
    )
    sparsity = "fraction of prunable weights removed, in [0, 1)"
    if trained_model:
        group.add_argument("--sparsity", type=float, default=None, help=f"{sparsity} (required)")
    else:
        _option(group, "--sparsity", "sparsity", sparsity, type=float)
    defaults = _allocation_defaults(names, trained_model)
    _option(
        group,
        "--allocation",
        "allocation",
        f"per-layer allocation: {', '.join(ALLOCATIONS)} (default: {defaults})",
    )
    group.add_argument(
        "--prune-output",
        action="store_true",
        dest="prune_output",
        default=None,
        help="also prune the output layer (default: keep it dense)",
    )
    _option(group, "--finetune", "finetune_epochs", "fine-tuning epochs after pruning", type=int)
    _option(group, "--score-per-class", "score_per_class", "SNIP/GraSP images per class", type=int)
    _option(group, "--grasp-temperature", "grasp_temperature", "GraSP logit temperature T", type=float)
    _option(group, "--synflow-iterations", "synflow_iterations", "SynFlow pruning iterations", type=int)


def add_train_parser(commands: Any, formatter: Any) -> None:
    """Register ``train`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    parser = commands.add_parser(
        "train",
        formatter_class=formatter,
        help="train (and prune) an MLP with any pruning method",
        description=(
            "Train a ReLU MLP with a pruning method, export W ⊙ M (float64) with disconnected\n"
            "neurons folded away, and report sparsity, compression, speed-up and accuracy. Steps are\n"
            "saved under --runs-dir in a folder named by the configuration's hash: a re-run resumes.\n\n"
            "methods:\n"
            + "\n".join(f"  {name:<17}{spec.summary}" for name, spec in METHODS.items())
            + "\n\nfreezing at initialisation (--freeze; with dense or random, magnitude, snip, grasp,\n"
            "synflow): frozen weights keep their initial values, get no gradient and no optimizer\n"
            "state, and are exported as ordinary nonzero weights, so they do not shrink the MIP:\n"
            + "\n".join(f"  {name:<17}{spec.summary}" for name, spec in FREEZERS.items())
        ),
        epilog=(
            "examples:\n"
            "  prunemip train --dataset fashion-mnist --arch 100,100 --method rigl --sparsity 0.9 \\\n"
            "      --epochs 20 --seed 0 -o model.pt\n"
            "  prunemip train --method imp --sparsity 0.8 --imp-rounds 3 --rewind-iteration 100 -o imp.npz\n"
            "  prunemip train --method dense --l1 1e-5 --rs-weight 1e-3 --rs-eps 0.05 -o stable.npz\n"
            "  prunemip train --freeze snip --freeze-fraction 0.9 -o freezenet.npz\n"
            "  prunemip train --method snip --sparsity 0.45 --freeze random --freeze-fraction 0.45 \\\n"
            "      -o pruned-and-frozen.npz\n"
            "  prunemip train --freeze-layers 1 -o first-layer-frozen.npz\n"
            "  prunemip train --dataset fashion-mnist --arch 2x200 --accuracy-budget 1 -o auto.npz"
        ),
    )
    _add_data_options(parser)
    parser.add_argument("--arch", default="100,100", help="hidden widths, comma-separated (100,100)")
    _add_training_options(parser)
    _add_method_options(parser, "dense", list(METHODS))
    method = parser.add_argument_group("method options")
    _option(
        method,
        "--imp-rounds",
        "imp_rounds",
        "IMP rounds (default: as many as --imp-fraction needs)",
        type=int,
    )
    _option(
        method,
        "--imp-fraction",
        "imp_fraction",
        "IMP: fraction of the remaining weights per round",
        type=float,
    )
    _option(method, "--rewind-iteration", "rewind_iteration", "IMP: rewind to this iteration", type=int)
    _option(method, "--drop-fraction", "drop_fraction", "SET/RigL: initial drop fraction α", type=float)
    _option(
        method, "--update-interval", "update_interval", "SET/RigL/GMP: steps between mask updates", type=int
    )
    _option(method, "--dst-end", "dst_end", "SET/RigL: last update, as a fraction of training", type=float)
    _option(method, "--gmp-begin", "gmp_begin", "GMP: start, as a fraction of training", type=float)
    _option(method, "--gmp-end", "gmp_end", "GMP: end of the cubic ramp, fraction of training", type=float)
    _option(
        method, "--group-lasso", "group_lasso", "group-lasso λ (a step shrinks a neuron by lr·λ)", type=float
    )
    freezing = parser.add_argument_group("freezing at initialisation (dimensionality-reduced training)")
    _option(freezing, "--freeze", "freeze", f"freezing method: {', '.join(FREEZERS)}")
    _option(
        freezing,
        "--freeze-fraction",
        "freeze_fraction",
        "fraction of the prunable weights frozen in all (sparsity + it <= 1)",
        type=float,
    )
    freezing.add_argument(
        "--freeze-layers",
        dest="freeze_layers",
        default=None,
        help="linear layers frozen whole (weights and bias), numbered from 1, e.g. 1,2",
    )
    _add_output_options(parser)


def add_prune_parser(commands: Any, formatter: Any) -> None:
    """Register ``prune`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    post = [name for name, spec in METHODS.items() if spec.post_training]
    parser = commands.add_parser(
        "prune",
        formatter_class=formatter,
        help="prune a trained model once and fine-tune it",
        description=(
            "Prune an already-trained ReLU MLP (any model file prunemip reads) with a one-shot\n"
            "method, fine-tune it with the masks fixed, export and report. Zero weights stay pruned."
        ),
        epilog=(
            "examples:\n"
            "  prunemip prune model.pt --dataset digits --method magnitude --sparsity 0.9 --finetune 5 \\\n"
            "      -o pruned.npz\n"
            "  prunemip prune model.npz --dataset fashion-mnist --method neuron-magnitude --sparsity 0.5"
        ),
    )
    parser.add_argument("model", help="trained network file (.pt, .onnx, .npz)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled whole module")
    _add_data_options(parser)
    _add_training_options(parser, epochs=False)
    _add_method_options(parser, "magnitude", post, trained_model=True)
    _add_output_options(parser)


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    search = parser.add_argument_group("automatic search (prunemip.study.auto)")
    search.add_argument(
        "--accuracy-budget",
        type=float,
        metavar="POINTS",
        help="search method, sparsity and RS weight for the network of least MIP cost within POINTS of "
        "dense validation accuracy (--finetune: last round's epochs; --rs-eps/--rs-l1: the balls)",
    )
    parser.set_defaults(default_method=parser.get_default("method"))


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    _add_search_options(parser)
    output = parser.add_argument_group("output")
    output.add_argument(
        "-o",
        "--output",
        help="save the pruned network: .pt (PyTorch), .onnx (float64) or .npz (exact, native)",
    )
    output.add_argument("--runs-dir", default="runs", help="where run directories go (runs/)")
    output.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


# ----------------------------------------------------------------------- running
def _config(args: argparse.Namespace, hidden: tuple[int, ...] | None = None) -> RunConfig:
    """The configuration from the options given (dataclass defaults for the rest)."""

    def given(cls: type) -> dict[str, Any]:
        return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}

    prune = given(PruneConfig)
    if "freeze_layers" in prune:
        prune["freeze_layers"] = parse_layers(prune["freeze_layers"])
    return RunConfig(
        dataset=args.dataset,
        train=TrainConfig(**given(TrainConfig)),
        prune=PruneConfig(**{**prune, "method": args.method}),
        data_dir=args.data_dir,
        data_seed=args.data_seed,
        **({} if hidden is None else {"hidden": hidden}),
    )


def _output(args: argparse.Namespace) -> Path | None:
    """``-o``, checked before training: a suffix ``save_model`` writes, in a folder that exists."""
    from prunemip.cli.arguments import output_file
    from prunemip.model_io import SAVE_FORMATS

    return output_file(args.output, "-o", tuple(SAVE_FORMATS))


def _feedback(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Log lines, per-epoch metrics and a progress bar, unless ``--quiet``."""
    if args.quiet:
        return {}

    def show(step: str, row: dict[str, float]) -> None:
        test = f", test {row['test_accuracy']:.4f}" if "test_accuracy" in row else ""
        console.print(
            f"  {step} epoch {int(row['epoch'])}/{int(row['epochs'])}: loss {row['loss']:.4f}, "
            f"train {row['train_accuracy']:.4f}{test}, lr {row['lr']:.2e}, "
            f"sparsity {row['sparsity']:.3f} ({row['seconds']:.1f} s)"
        )

    return {"log": console.print, "on_epoch": show, "progress": True}


def _report_and_save(outcome: Outcome, output: Path | None, console: Console) -> None:
    from prunemip.model_io import save_model

    console.print(outcome.summary.table())
    for line in outcome.summary.summary_lines():
        console.print(line)
    console.print(f"run directory {outcome.run_dir}")
    if output is not None:
        save_model(outcome.network, output)
        console.print(f"wrote {output}")


def run_train(args: argparse.Namespace, console: Console) -> None:
    """Train with the chosen method, print the pruning summary, save the network if asked.

    Args:
        args: the parsed command line.
        console: where the log, progress and summary go.

    Raises:
        PrunemipError: for a bad ``-o`` name or folder, or an invalid configuration.
    """
    from prunemip.pruning.pipeline import run_training

    output = _output(args)
    config = _config(args, parse_arch(args.arch))
    if args.accuracy_budget is not None:
        _run_search(args, config, output, console)
    else:
        _report_and_save(run_training(config, args.runs_dir, **_feedback(args, console)), output, console)


def run_prune(args: argparse.Namespace, console: Console) -> None:
    """Prune a trained model once, fine-tune it, print the pruning summary, save it if asked.

    Args:
        args: the parsed command line.
        console: where the log, progress and summary go.

    Raises:
        PrunemipError: without ``--sparsity``, for a bad ``-o``, an unreadable model or an
            invalid configuration.
    """
    from prunemip.model_io import load_network
    from prunemip.pruning.pipeline import prune_network

    if args.sparsity is None and args.accuracy_budget is None:
        raise PrunemipError("prune needs --sparsity (the fraction of prunable weights to remove)")
    output = _output(args)
    network = load_network(args.model, trust_pickle=args.trust_pickle)
    if args.accuracy_budget is not None:
        _run_search(args, _config(args), output, console, network)
    else:
        outcome = prune_network(network, _config(args), args.runs_dir, **_feedback(args, console))
        _report_and_save(outcome, output, console)


def _run_search(
    args: argparse.Namespace,
    config: RunConfig,
    output: Path | None,
    console: Console,
    dense: Network | None = None,
) -> None:
    """``--accuracy-budget``: search, print the candidates and the choice, save it and its report."""
    from prunemip.data import load_dataset
    from prunemip.model_io import save_model
    from prunemip.study.auto import search
    from prunemip.study.auto_report import candidates_table, write_candidates
    from prunemip.study.mip_cost import DEFAULT_BALLS
    from prunemip.study.search_space import check_budget

    budget = check_budget(args.accuracy_budget)
    by_hand = {"--method": args.method != args.default_method, "--sparsity": args.sparsity is not None}
    by_hand["--rs-weight"] = args.rs_weight is not None
    if any(by_hand.values()):
        flag = next(flag for flag, given in by_hand.items() if given)
        raise PrunemipError(f"--accuracy-budget chooses the method, sparsity and RS weight; drop {flag}")
    given = [("linf", args.rs_eps), ("l1", args.rs_l1)]
    balls = [(norm, radius) for norm, radius in given if radius] or list(DEFAULT_BALLS)
    feedback = None if args.quiet else console
    result = search(config, budget, args.runs_dir, balls=balls, dense=dense, console=feedback)
    test = load_dataset(config.dataset, "test", data_dir=config.data_dir, seed=config.data_seed)
    score = float((result.network.predict(test.flat()) == test.labels).mean())
    network = result.network.with_metadata(test_accuracy=score)
    console.print(candidates_table(result))
    chosen = result.chosen
    console.print(
        f"chosen: {chosen.candidate.label} after {chosen.epochs} fine-tuning epochs, validation accuracy "
        f"{chosen.accuracy:.4f} (dense {result.dense.accuracy:.4f}), proxy {chosen.proxy:.4g}; test "
        f"accuracy {score:.4f} (not used to choose); {result.seconds:.0f} s"
    )
    if not result.trained_steps:
        console.print("every step was already done in the run directories: nothing was retrained")
    paths = write_candidates(
        result, output.with_name(f"{output.stem}-candidates") if output else result.directory / "candidates"
    )
    console.print(f"candidates: {paths[0]} and {paths[1]}")
    if output is not None:
        save_model(network, output)
        console.print(f"wrote {output}")
