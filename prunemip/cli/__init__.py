"""The ``prunemip`` command line: demo, encode, attack, info, data.

A user mistake prints one ``prunemip: error: ...`` line on stderr and exits with status
2; nothing is half-written (every output file is written to a temporary sibling and
renamed into place).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console

from prunemip import __version__
from prunemip.cli.train import add_prune_parser, add_train_parser
from prunemip.errors import PrunemipError
from prunemip.regions import BALL_NORMS

#: ``--bounds``: the methods of ``prunemip.solvers.obbt.compute_bounds`` (not imported here: it is slow).
BOUNDS_CHOICES: tuple[str, ...] = ("auto", "ia", "linear", "alpha", "lp", "mip")

if TYPE_CHECKING:
    from prunemip.cli.instances import Instance
    from prunemip.engine.attack import AttackResult
    from prunemip.regions import InputRegion

USER_ERROR = 2
INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"prunemip: error: {message} (see {self.prog} --help)\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _number(convert: Callable[[str], Any], *, positive: bool) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, refused at or below 0 (``positive``) or below 0;
    named after ``convert`` in argparse's errors ("invalid float value")."""

    def parse(text: str) -> Any:
        value = convert(text)
        if not (value > 0 if positive else value >= 0):
            raise argparse.ArgumentTypeError(f"must be {'>' if positive else '>='} 0, got {text}")
        return value

    parse.__name__ = convert.__name__
    return parse


_positive_float = _number(float, positive=True)
_nonnegative_float = _number(float, positive=False)
_nonnegative_int = _number(int, positive=False)


def _add_instance_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", help="network file: .pt (state_dict or TorchScript), .onnx, or prunemip .npz"
    )
    point = parser.add_argument_group("input point")
    point.add_argument(
        "--dataset", help="take the point from this dataset (digits, mnist, fashion-mnist, ...)"
    )
    point.add_argument("--index", type=int, default=0, help="image index in the split (default 0)")
    point.add_argument(
        "--split", default="test", choices=("train", "test", "val"), help="dataset split (test)"
    )
    point.add_argument("--data-dir", help="folder with the dataset's IDX/NPZ files")
    point.add_argument("--data-seed", type=int, default=0, help="seed of the dataset's split (default 0)")
    point.add_argument("--input", dest="input_path", help="take the point from a .npy file instead")
    point.add_argument(
        "--label", type=int, help="true label (default: the dataset's, or the prediction at --input)"
    )
    point.add_argument(
        "--input-range", nargs=2, type=float, metavar=("LO", "HI"),
        help="valid input values (default: the model's metadata, else [0, 1] with --dataset)",
    )  # fmt: skip
    region = parser.add_argument_group("perturbation")
    region.add_argument("--norm", choices=BALL_NORMS, default="linf", help="ball norm (default linf)")
    region.add_argument("--eps", type=float, default=0.05, help="ball radius ε (L∞) or δ (L1) (default 0.05)")
    encoding = parser.add_argument_group("encoding")
    encoding.add_argument(
        "--formulation", choices=("substituted", "variable"), default=None,
        help="ẑ substituted into the big-M rows, or a column with one equality row (default: measured best)",
    )  # fmt: skip
    encoding.add_argument(
        "--bounds", choices=BOUNDS_CHOICES, default="auto",
        help="neuron bounds: interval, + linear relaxation, alpha: linear + optimised ReLU slopes "
        "(α-CROWN), lp: linear + LP tightening, mip: lp + MIP tightening of the last hidden layer; "
        "auto (default): linear, then LP only when enough neurons stay unstable",
    )  # fmt: skip
    encoding.add_argument(
        "--bounds-budget", type=_positive_float, default=None,
        help="seconds for LP/MIP bound tightening (default: auto: 10%% of --time-limit, at most 30)",
    )  # fmt: skip
    encoding.add_argument(
        "--lp-cuts", type=_nonnegative_int, default=0, metavar="ROUNDS",
        help="LP tightening: rounds of ideal-formulation cuts per LP (Anderson et al. 2020; "
        "tighter, slower; default 0)",
    )  # fmt: skip
    encoding.add_argument(
        "--trust-pickle", action="store_true",
        help="allow loading a pickled whole module (runs code from the file: only for files you trust)",
    )  # fmt: skip


def _add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    solver = parser.add_argument_group("HiGHS")
    solver.add_argument(
        "--time-limit", type=_positive_float, default=600.0, help="seconds for the whole attack (600)"
    )
    solver.add_argument("--threads", type=int, help="HiGHS threads (default: HiGHS's choice)")
    solver.add_argument("--solver-seed", type=int, default=0, help="HiGHS random seed (default 0)")
    solver.add_argument("--gap", type=float, default=1e-4, help="relative MIP gap in optimize mode (1e-4)")
    solver.add_argument("--log", action="store_true", help="show the HiGHS log")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prunemip",
        formatter_class=_formatter,
        description="Prune ReLU networks and solve small, tightly bounded big-M MIPs over them with HiGHS.",
        epilog="Start with `prunemip demo`; every command has its own --help with an example.",
    )
    parser.add_argument("--version", action="version", version=f"prunemip {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser(
        "demo", formatter_class=_formatter, help="dense vs 90%%-sparse digits MLP, attacked with HiGHS",
        description=(
            "Train a small MLP on scikit-learn's 8x8 digits, prune a copy to 90% sparsity by global\n"
            "magnitude and fine-tune it, attack the same test images on both, compare."
        ),
        epilog="examples:\n  prunemip demo\n  prunemip demo --images 20 --eps 0.1 --save-dir runs/demo",
    )  # fmt: skip
    demo.add_argument("--hidden", type=int, nargs="+", default=[100, 100], help="hidden widths (100 100)")
    demo.add_argument("--epochs", type=int, default=40, help="dense training epochs (40)")
    demo.add_argument("--finetune-epochs", type=int, default=20, help="fine-tuning epochs after pruning (20)")
    demo.add_argument(
        "--sparsity", type=float, default=0.9, help="fraction of hidden-layer weights pruned (0.9)"
    )
    demo.add_argument("--images", type=int, default=10, help="test images to attack (10)")
    demo.add_argument("--norm", choices=BALL_NORMS, default="linf", help="ball norm (linf)")
    demo.add_argument("--eps", type=float, default=0.05, help="ball radius (0.05)")
    demo.add_argument("--mode", choices=("decide", "optimize"), default="decide", help="MIP mode (decide)")
    demo.add_argument("--time-limit", type=_positive_float, default=10.0, help="seconds per attack (10)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data split, training and HiGHS (0)")
    demo.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training device (cpu)")
    demo.add_argument(
        "--bounds", choices=BOUNDS_CHOICES, default="ia",
        help="neuron bounds of the attacked MIPs (ia: the demo measures the MIP itself)",
    )  # fmt: skip
    demo.add_argument(
        "--gradient-attack", action="store_true", help="run the quick gradient attack before each MIP"
    )
    demo.add_argument("--save-dir", help="also save both networks (.npz) and the table (.json) here")

    encode = commands.add_parser(
        "encode", formatter_class=_formatter, help="write the adversarial MIP of a network as MPS/LP",
        description=(
            "Encode the network over a ball around the input point as a big-M MIP maximising the\n"
            "margin logit[target] - logit[label], print its size, and optionally write it."
        ),
        epilog=(
            "examples:\n"
            "  prunemip encode model.pt --dataset digits --index 7 --norm linf --eps 0.05 -o out.mps\n"
            "  prunemip encode model.onnx --input x.npy --input-range 0 1 --norm l1 --eps 5 -o out.lp"
        ),
    )  # fmt: skip
    _add_instance_arguments(encode)
    encode.add_argument(
        "--target", type=int, help="target class of the margin objective (default: runner-up)"
    )
    encode.add_argument("-o", "--output", help="write the MIP here (.mps or .lp)")

    attack = commands.add_parser(
        "attack", formatter_class=_formatter, help="find (or rule out) an adversarial example with HiGHS",
        description=(
            "Solve the adversarial MIP: targeted with --target, else untargeted (runner-up class first).\n"
            "decide mode stops at the first adversarial example or once none can exist; optimize mode\n"
            "proves the largest margin. Every example is re-checked by a float64 forward pass."
        ),
        epilog=(
            "examples:\n"
            "  prunemip attack model.pt --dataset digits --index 7 --eps 0.05 --json adv.json --png adv.png\n"
            "  prunemip attack model.npz --dataset mnist --index 3 --norm l1 --eps 5 --mode optimize \\\n"
            "      --time-limit 180"
        ),
    )  # fmt: skip
    _add_instance_arguments(attack)
    attack.add_argument("--target", type=int, help="target class (default: untargeted)")
    attack.add_argument("--mode", choices=("decide", "optimize"), default="decide", help="MIP mode (decide)")
    attack.add_argument(
        "--no-pgd", action="store_true", help="skip the quick gradient attack that runs before the MIP"
    )
    _add_solver_arguments(attack)
    attack.add_argument("--json", default="attack.json", help="result file (default attack.json; '' to skip)")
    attack.add_argument(
        "--png", default="attack.png", help="picture of the example (default attack.png; '' to skip)"
    )

    info = commands.add_parser(
        "info", formatter_class=_formatter, help="show a network's layers, sparsity and input range",
        epilog="example:\n  prunemip info model.onnx",
    )  # fmt: skip
    info.add_argument("model", help="network file (.pt, .onnx, .npz)")
    info.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled whole module")

    data = commands.add_parser(
        "data", formatter_class=_formatter, help="download a dataset into the local cache",
        epilog="example:\n  prunemip data download fashion-mnist",
    )  # fmt: skip
    data.add_argument("action", choices=("download",), help="what to do")
    data.add_argument("name", choices=("mnist", "fashion-mnist"), help="dataset")
    data.add_argument("--dest", help="folder to download into (default: the user cache)")

    verify = commands.add_parser(
        "verify", formatter_class=_formatter, help="decide a VNN-LIB property: sat, unsat, timeout, unknown",
        description=(
            "Decide an ONNX network and a VNN-LIB property as VNN-COMP does. The last line printed is\n"
            "the verdict: sat (with a counterexample re-checked by a forward pass), unsat (every\n"
            "disjunct proved by bounds or the MIP), timeout or unknown. Exit status 0 for every verdict."
        ),
        epilog=(
            "examples:\n"
            "  prunemip verify net.onnx prop.vnnlib --timeout 120 --counterexample cex.txt\n"
            "  prunemip verify net.onnx prop.vnnlib --surrogate-sparsity 0.8\n"
            "  prunemip verify --instances instances.csv --results results.csv"
        ),
    )  # fmt: skip
    verify.add_argument("network", nargs="?", help="the network (.onnx, or any model prunemip reads)")
    verify.add_argument("property", nargs="?", help="the property (.vnnlib)")
    verify.add_argument("--timeout", type=_positive_float, default=120.0, help="seconds per instance (120)")
    verify.add_argument("--counterexample", help="write the verdict, and for sat the witness, to this file")
    verify.add_argument(
        "--surrogate-sparsity",
        type=float,
        help="first search a magnitude-pruned copy (e.g. 0.8); never used for unsat",
    )
    verify.add_argument("--instances", help="VNN-COMP instances CSV (onnx,vnnlib,timeout per line)")
    verify.add_argument("--results", help="batch mode: also write one CSV line per instance here")
    verify.add_argument("--seed", type=int, default=0, help="seed of the random falsification and HiGHS (0)")
    verify.add_argument(
        "--bounds", choices=BOUNDS_CHOICES, default="auto",
        help="neuron bounds over each input box, as for attack (default auto: linear, then LP where it pays)",
    )  # fmt: skip
    verify.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled whole module")

    experiment = commands.add_parser(
        "experiment", formatter_class=_formatter, help="run a study grid on Dask and report it",
        description=(
            "Train every model of a study config (TOML) and attack every (model, image) pair on a Dask\n"
            "cluster; results are appended to RUN_DIR/results.jsonl and a re-run skips finished jobs."
        ),
        epilog=(
            "examples:\n"
            "  prunemip experiment validate experiments/cacciola_fashion.toml\n"
            "  prunemip experiment run experiments/cacciola_fashion.toml --workers 2 --out runs/cacciola\n"
            "  prunemip experiment run experiments/cacciola_fashion.toml --scheduler tcp://10.0.0.5:8786\n"
            "  prunemip experiment report runs/cacciola/results.jsonl"
        ),
    )  # fmt: skip
    steps = experiment.add_subparsers(dest="step", required=True, metavar="STEP", parser_class=_Parser)
    validate = steps.add_parser("validate", help="check a config and count its jobs")
    validate.add_argument("config", help="study config (.toml)")
    run = steps.add_parser("run", help="run (or resume) a study")
    run.add_argument("config", help="study config (.toml)")
    run.add_argument("--out", help="run folder (default runs/<study name>)")
    run.add_argument("--workers", type=int, default=2, help="local Dask worker processes (2)")
    run.add_argument("--scheduler", help="address of an existing Dask scheduler instead of a local cluster")
    report = steps.add_parser("report", help="tables (Markdown, CSV) and figures from a results file")
    report.add_argument("results", help="results.jsonl of a run")
    report.add_argument("-o", "--out", help="output folder (default: report/ beside the results)")
    report.add_argument(
        "--accuracy-budget",
        type=_nonnegative_float,
        default=1.5,
        metavar="POINTS",
        help="accuracy a pruned setting may lose against dense to count as best (1.5 points)",
    )

    add_train_parser(commands, _formatter)
    add_prune_parser(commands, _formatter)
    return parser


# ----------------------------------------------------------------------- commands
def _run_demo(args: argparse.Namespace, console: Console) -> None:
    from prunemip.cli.tables import demo_table
    from prunemip.model_io import save_network
    from prunemip.study.demo import DemoConfig, run_demo

    config = DemoConfig(
        hidden=tuple(args.hidden), epochs=args.epochs, finetune_epochs=args.finetune_epochs,
        sparsity=args.sparsity, images=args.images, norm=args.norm, radius=args.eps, mode=args.mode,
        time_limit=args.time_limit, seed=args.seed, device=args.device, bounds=args.bounds,
        gradient_attack=args.gradient_attack,
    )  # fmt: skip
    save_dir = _existing_dir(args.save_dir)
    reports = run_demo(config, log=console.print)
    rows = [report.row() for report in reports]
    console.print(demo_table(rows))
    dense, sparse = rows
    if sparse["solve_s"] > 0 and dense["solve_s"] > 0:
        console.print(f"MIP solve time dense / pruned: {dense['solve_s'] / sparse['solve_s']:.1f}x")
    if save_dir is not None:
        for report, stem in zip(reports, ("dense", "sparse"), strict=True):
            save_network(report.network, save_dir / f"{stem}.npz")
        _write_json(save_dir / "demo.json", {"config": vars(args), "rows": rows})
        console.print(f"saved dense.npz, sparse.npz and demo.json in {save_dir}")


def _instance(args: argparse.Namespace) -> Instance:
    from prunemip.cli.instances import build_instance

    return build_instance(
        args.model, dataset=args.dataset, index=args.index, split=args.split, data_dir=args.data_dir,
        seed=args.data_seed, input_path=args.input_path, label=args.label,
        input_range=tuple(args.input_range) if args.input_range else None, trust_pickle=args.trust_pickle,
    )  # fmt: skip


def _region(instance: Instance, args: argparse.Namespace) -> InputRegion:
    from prunemip.regions import InputRegion

    spec = instance.network.input_spec
    return InputRegion.ball(args.norm, instance.x0, args.eps, spec.lower, spec.upper)


def _formulation(args: argparse.Namespace) -> str:
    from prunemip.encoders.bigm import DEFAULT_FORMULATION

    return args.formulation or DEFAULT_FORMULATION


def _bounds_options(args: argparse.Namespace) -> Any:
    from prunemip.solvers.obbt import ObbtOptions

    if args.bounds_budget is None and not args.lp_cuts:
        return None
    budget = {} if args.bounds_budget is None else {"budget": args.bounds_budget}
    return ObbtOptions(cut_rounds=args.lp_cuts, **budget)


def _run_encode(args: argparse.Namespace, console: Console) -> None:
    from prunemip.cli.tables import bounds_table, encoding_table
    from prunemip.encoders.bigm import encode
    from prunemip.encoders.writers import write_model
    from prunemip.engine.attack import target_order
    from prunemip.solvers.obbt import compute_bounds

    instance = _instance(args)
    region = _region(instance, args)
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in (".mps", ".lp"):
        raise PrunemipError(f"cannot write {output.name!r}: use a .mps or .lp file name")
    logits = instance.network.forward(instance.x0)
    target = args.target if args.target is not None else target_order(logits, instance.label)[0]
    if not 0 <= target < instance.network.n_outputs or target == instance.label:
        raise PrunemipError(f"--target {target} must be a class other than the label {instance.label}")
    bounds = compute_bounds(instance.network, region, args.bounds, options=_bounds_options(args))
    model = encode(instance.network, region, bounds, formulation=_formulation(args)).with_margin_objective(
        target, instance.label
    )
    console.print(
        f"{instance.source}: label {instance.label}, objective logit[{target}] − logit[{instance.label}]"
    )
    console.print(bounds_table(model.stats.bounds_stages))
    console.print(encoding_table(model))
    if output is not None:
        write_model(model, output)
        console.print(f"wrote {output}")


def _run_attack(args: argparse.Namespace, console: Console) -> None:
    from prunemip.cli.plotting import save_adversarial_png
    from prunemip.cli.tables import attack_table, bounds_table
    from prunemip.engine.attack import find_adversarial_example
    from prunemip.solvers.highs import HighsOptions

    instance = _instance(args)
    region = _region(instance, args)
    for option, suffix in (("json", ".json"), ("png", ".png")):
        path = getattr(args, option)
        if path and Path(path).suffix.lower() != suffix:
            raise PrunemipError(f"--{option} must name a {suffix} file, got {path!r}")
        if path and not Path(path).resolve().parent.is_dir():
            raise PrunemipError(f"--{option}: folder {Path(path).parent} does not exist")
    options = HighsOptions(
        time_limit=args.time_limit, threads=args.threads, random_seed=args.solver_seed,
        mip_rel_gap=args.gap, log=args.log,
    )  # fmt: skip
    result = find_adversarial_example(
        instance.network, instance.x0, instance.label, region, target=args.target, mode=args.mode,
        formulation=_formulation(args), options=options, bounds=args.bounds,
        bounds_options=_bounds_options(args), pgd=not args.no_pgd,
    )  # fmt: skip
    console.print(f"{instance.source}: label {instance.label}, clean prediction {result.clean_prediction}")
    if result.pgd_seconds:
        margin = "—" if result.pgd_margin is None else f"{result.pgd_margin:.6g}"
        console.print(f"gradient attack: best margin {margin} in {result.pgd_seconds:.3f} s")
    if result.encoding is not None:
        console.print(bounds_table(result.encoding.bounds_stages))
    if result.targets:
        console.print(attack_table(result))
    _print_outcome(result, console)
    if args.json:
        payload = {"model": str(args.model), "input": instance.source, **result.to_dict()}
        _write_json(Path(args.json), payload)
        console.print(f"wrote {args.json}")
    if args.png and result.found and result.witness is not None:
        title = f"label {instance.label} → {result.witness.predicted} ({region.describe()})"
        save_adversarial_png(
            args.png, region.project(instance.x0), result.witness.x, instance.image_shape, title
        )
        console.print(f"wrote {args.png}")


def _print_outcome(result: AttackResult, console: Console) -> None:
    witness = result.witness
    summary = {
        "adversarial": "adversarial example found",
        "robust": "no adversarial example exists in the region (proved)",
        "timeout": "time limit reached before the question was settled",
        "misclassified": "the clean input is already misclassified",
        "unknown": "the solver stopped without a verified answer",
    }[result.status]
    console.print(f"[bold]{result.status}[/bold]: {summary} ({result.total_seconds:.2f} s)")
    if witness is not None and result.found:
        console.print(
            f"  class {witness.predicted} with margin {witness.margin:.6g} (forward pass, float64), "
            f"L∞ distance {witness.distance['linf']:.4g}, L1 distance {witness.distance['l1']:.4g}, "
            f"check {'passed' if witness.is_adversarial else 'FAILED'}"
        )


def _run_info(args: argparse.Namespace, console: Console) -> None:
    from prunemip.cli.tables import network_table
    from prunemip.model_io import load_network

    network = load_network(args.model, trust_pickle=args.trust_pickle)
    console.print(network_table(network))
    spec = network.input_spec
    bounded = (
        f"[{spec.lower.min():g}, {spec.upper.max():g}]"
        if spec.is_bounded
        else "unbounded (give --input-range)"
    )
    console.print(f"input shape {spec.shape}, range {bounded}, normalisation folded in: {spec.normalization}")
    if network.metadata:
        console.print(f"metadata keys: {', '.join(sorted(network.metadata))}")


def _run_data(args: argparse.Namespace, console: Console) -> None:
    from prunemip.data import download_dataset

    folder = download_dataset(args.name, args.dest)
    console.print(f"{args.name} is in {folder}")


def _run_experiment(args: argparse.Namespace, console: Console) -> None:
    from prunemip.study.config import load_config
    from prunemip.study.jobs import model_jobs, solve_jobs

    if args.step == "report":
        from prunemip.study.report import write_report

        paths = write_report(args.results, args.out, accuracy_budget=args.accuracy_budget)
        console.print(f"wrote {len(paths)} files in {paths[0].parent}")
        return
    config = load_config(args.config)
    models = model_jobs(config)
    solves = sum(len(solve_jobs(config, model)) for model in models)
    if args.step == "validate":
        console.print(f"{args.config}: study {config.name!r}, {len(models)} models, {solves} attack jobs")
        return
    from prunemip.study.runner import run_study

    if args.workers < 1:
        raise PrunemipError(f"--workers must be >= 1, got {args.workers}")
    out = Path(args.out) if args.out else Path("runs") / config.name
    try:
        summary = run_study(config, out, workers=args.workers, scheduler=args.scheduler, console=console)
    except KeyboardInterrupt:
        console.print(f"interrupted: finished jobs are in {out / 'results.jsonl'}; run again to resume")
        raise
    console.print(
        f"{summary.completed} jobs run ({summary.decided} decided, {summary.timeouts} timed out, "
        f"{summary.failed} failed), {summary.skipped} skipped, {summary.seconds:.0f} s; "
        f"next: prunemip experiment report {out / 'results.jsonl'}"
    )


def _verify_one(network_path: str, property_path: str, timeout: float, args: argparse.Namespace) -> Any:
    from prunemip.engine.verify import verify
    from prunemip.model_io import load_network
    from prunemip.solvers.highs import HighsOptions
    from prunemip.vnnlib import load_vnnlib

    network = load_network(network_path, trust_pickle=args.trust_pickle)
    prop = load_vnnlib(property_path)
    options = HighsOptions(threads=1, random_seed=args.seed)
    return verify(
        network, prop, timeout, surrogate_sparsity=args.surrogate_sparsity, options=options, seed=args.seed,
        bounds=args.bounds,
    )  # fmt: skip


def _run_verify(args: argparse.Namespace, console: Console) -> None:
    from prunemip.atomic import atomic_write_lines
    from prunemip.vnnlib import counterexample_text

    if args.instances:
        if args.network or args.property:
            raise PrunemipError("give either NETWORK PROPERTY or --instances, not both")
        _run_verify_batch(args, console)
        return
    if not (args.network and args.property):
        raise PrunemipError("give a network and a property file (or --instances CSV)")
    result = _verify_one(args.network, args.property, args.timeout, args)
    console.print(f"{result.stage}: {', '.join(result.disjuncts) or '-'} in {result.seconds:.2f} s")
    if args.counterexample:
        text = (
            counterexample_text(result.x, result.outputs)
            if result.verdict == "sat"
            else result.verdict + "\n"
        )
        atomic_write_lines(Path(args.counterexample), text.rstrip("\n").splitlines())
    print(result.verdict)


def _run_verify_batch(args: argparse.Namespace, console: Console) -> None:
    import csv

    from prunemip.atomic import atomic_write_lines

    listing = Path(args.instances)
    if not listing.is_file():
        raise PrunemipError(f"instances file {listing} does not exist")
    rows = [row for row in csv.reader(listing.read_text().splitlines()) if row and row[0].strip()]
    for number, row in enumerate(rows, start=1):
        if len(row) != 3:
            raise PrunemipError(
                f"{listing.name}:{number}: expected onnx,vnnlib,timeout, got {len(row)} fields"
            )
    lines, counts, total = [], {}, 0.0
    for number, (network, prop, timeout) in enumerate(rows, start=1):
        try:
            seconds_allowed = float(timeout)
        except ValueError:
            raise PrunemipError(f"{listing.name}:{number}: timeout {timeout!r} is not a number") from None
        result = _verify_one(
            str(listing.parent / network.strip()), str(listing.parent / prop.strip()), seconds_allowed, args
        )
        line = f"{network.strip()},{prop.strip()},{result.verdict},{result.seconds:.3f}"
        console.print(line)
        lines.append(line)
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
        total += result.seconds
    summary = ", ".join(f"{verdict} {count}" for verdict, count in sorted(counts.items()))
    console.print(f"{len(rows)} instances: {summary}; {total:.1f} s in all")
    if args.results:
        atomic_write_lines(Path(args.results), ["onnx,vnnlib,verdict,seconds", *lines])


def _run_train(args: argparse.Namespace, console: Console) -> None:
    from prunemip.cli.train import run_train

    run_train(args, console)


def _run_prune(args: argparse.Namespace, console: Console) -> None:
    from prunemip.cli.train import run_prune

    run_prune(args, console)


def _existing_dir(path: str | None) -> Path | None:
    if path is None:
        return None
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    from prunemip.atomic import atomic_write_lines

    atomic_write_lines(path, [json.dumps(payload, indent=2, default=str)])


_COMMANDS = {
    "train": _run_train,
    "prune": _run_prune,
    "verify": _run_verify,
    "experiment": _run_experiment,
    "demo": _run_demo,
    "encode": _run_encode,
    "attack": _run_attack,
    "info": _run_info,
    "data": _run_data,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    try:
        _COMMANDS[args.command](args, console)
    except PrunemipError as error:
        print(f"prunemip: error: {error}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("prunemip: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
