"""``prunemip export``: write a model as ONNX (or any format prunemip saves), its input range recorded."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from prunemip.cli.arguments import add_input_range, add_trust_pickle, examples, output_file
from prunemip.errors import PrunemipError


def add_parser(commands: Any, formatter: Any) -> None:
    """Register ``export`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    export = commands.add_parser(
        "export",
        formatter_class=formatter,
        help="write a model as ONNX (Gemm/Relu) for OMLT, VNN-COMP tools and runtimes",
        description=(
            "Write a model as ONNX: one Gemm (+ Relu) per layer, taking flat rows (batch, inputs). The\n"
            "input range and the input normalisation already folded into the first layer are recorded\n"
            "in the model's metadata, so prunemip info/encode/verify need no --input-range. ONNX has no\n"
            "sparse Gemm: pruned weights are stored as zeros. float64 keeps the weights exactly;\n"
            "--float32 rounds each to the nearest float32 (relative error <= 2^-24), a different\n"
            "function, on which a verdict about the original need not hold. -o .npz or .pt converts\n"
            "to prunemip's own format or a PyTorch state_dict instead."
        ),
        epilog=examples(
            "prunemip export model.pt -o model.onnx",
            "prunemip export model.npz -o model32.onnx --float32",
            "prunemip export torch_state_dict.pt -o net.onnx --input-range 0 1",
        ),
    )
    export.add_argument("model", help="network file (.pt, .onnx, .npz)")
    export.add_argument("-o", "--output", required=True, help="the file to write: .onnx, .npz or .pt")
    export.add_argument(
        "--float32", action="store_true", help="round the weights to float32 (.onnx only; default float64)"
    )
    add_input_range(export, "record this input range (default: the model's own)")
    add_trust_pickle(export)


def run(args: argparse.Namespace, console: Console) -> None:
    """Load the model, set the input range if asked, write it; say what float32 changed.

    Args:
        args: the parsed command line.
        console: where the summary goes.

    Raises:
        PrunemipError: for an unreadable model, a bad ``-o``, ``--float32`` with a format
            other than ONNX, or a bad input range.
    """
    from prunemip.cli.attack import with_input_range
    from prunemip.model_io import SAVE_FORMATS, load_network, save_model
    from prunemip.onnx_export import float32_rounding, input_range_text

    output = output_file(args.output, "-o", tuple(SAVE_FORMATS))
    if output is None:
        raise PrunemipError("-o needs a file name (.onnx, .npz or .pt)")
    if args.float32 and output.suffix.lower() != ".onnx":
        raise PrunemipError(f"--float32 applies to .onnx files only, not {output.name!r}")
    network = load_network(args.model, trust_pickle=args.trust_pickle)
    network = with_input_range(network, tuple(args.input_range) if args.input_range else None, None)
    precision = "float32" if args.float32 else "float64"
    save_model(network, output, onnx_precision=precision)
    spec = network.input_spec
    console.print(
        f"wrote {output}: {network.architecture}, {network.nnz} nonzero weights, {input_range_text(spec)}"
    )
    if args.float32:
        console.print(
            f"warning: weights rounded to float32 (largest change {float32_rounding(network):.2e}): "
            f"{output.name} is a different function from {args.model}, and a verdict on one need not "
            "hold for the other"
        )
    if not spec.is_bounded:
        console.print("note: no input range recorded; give --input-range LO HI so encode/verify need none")
