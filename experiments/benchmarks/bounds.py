"""Neuron bounds (interval, linear relaxation, LP, MIP) and what they do to the HiGHS solve.

Networks: digits and Fashion-MNIST MLPs 2x100, 2x200, 3x100, dense and 90 % sparse
(``bench_nets.py``: trained once, cached in ``runs/benchmark-nets``). Regions: L∞
ε ∈ {0.02, 0.05} and L1 δ = 5 around the first correctly classified test images.

Two parts (``--part``):

* ``quality`` (cheap: no MIP): per bounds method, #unstable ReLUs, Σ(u − l) over them and
  the bound time; ``alpha`` (α-CROWN) always runs from the ``linear`` bounds, beside the
  chain of ``--quality-method``. Goal: the linear relaxation leaves ≤ 70 % of the unstable
  neurons that interval arithmetic leaves on the dense 2x200 nets (judged for plain CROWN
  and for α-CROWN). Beside them, ``proved``: the neurons that inputs of the region show to
  take both signs (``prunemip.encoders.bounds.witnesses``), a floor no sound bounds, exact
  ones included, can go below; Σw there is Σ(highest − lowest) seen. Torch runs
  single-threaded here, as HiGHS does.
* ``solve``: the untargeted decide-mode attack (``find_adversarial_example``) per
  pipeline — ``ia`` (interval bounds alone, no gradient attack: the old pipeline),
  ``linear``, ``lp`` (without the gradient attack, to isolate the bounds), ``pgd+linear``
  (the default without its LP stage) and ``default`` (gradient attack + ``bounds="auto"``)
  — with status, bound time, solve time, nodes and total time. Goals: the default's
  shifted geometric mean total time (shift 1 s, undecided instances at the limit) is
  ≥ 2× lower than ``ia``'s on the dense nets; no instance of the
  sparse nets gets more than 20 % slower (reported strictly, and with a 0.05 s allowance
  for timer noise on instances that take a few hundredths of a second).

Every table line carries the 1-minute load average at its start (the machine is shared).

Run::

    python experiments/benchmarks/bounds.py --part quality --images 10
    python experiments/benchmarks/bounds.py --part solve --images 10 --time-limit 120 \\
        --datasets fashion-mnist --archs 2x100 2x200
    python experiments/benchmarks/bounds.py --quick        # a minute: digits 2x100, 2 images
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_nets import ARCHS, DATASETS, build_pair

from prunemip.data import load_dataset
from prunemip.encoders.bounds.witnesses import witnessed_unstable
from prunemip.engine.attack import AttackOptions, find_adversarial_example
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import ObbtOptions, compute_bounds, continue_bounds
from prunemip.solvers.highs import HighsOptions
from prunemip.study.report import SOLVED
from prunemip.study.report import shifted_geometric_mean as sgm

REGIONS = ("linf:0.02", "linf:0.05", "l1:5")
RELAXED = ("linear", "alpha")  #: the linear-relaxation stages that goal 1 judges
PIPELINES = ("ia", "linear", "lp", "pgd+linear", "pgd+lp", "default")
PROVEN = "not solved: linear relaxation bound"


def load_avg() -> float:
    return os.getloadavg()[0]


def parse_region(text: str) -> tuple[str, float]:
    norm, radius = text.split(":")
    return norm, float(radius)


def _selected(args: argparse.Namespace) -> set[tuple] | None:
    """Instances (dataset, arch, kind, region, image) of ``--only-from``: those that needed a MIP."""
    if not args.only_from:
        return None
    rows = json.loads(Path(args.only_from).read_text())["solve"]
    return {(r["dataset"], r["arch"], r["kind"], r["region"], r["image"]) for r in rows if r["mips"] > 0}


def instances(args: argparse.Namespace):
    """(dataset, arch, kind, network, region name, image index, x0, label) in a fixed order."""
    selected = _selected(args)
    for dataset in args.datasets:
        test = load_dataset(dataset, "test", seed=0)
        flat = test.flat()
        for arch in args.archs:
            nets = build_pair(dataset, arch)
            for kind in args.kinds:
                network = nets[kind]
                correct = np.flatnonzero(network.predict(flat) == test.labels)[: args.images]
                for region_name in args.regions:
                    norm, radius = parse_region(region_name)
                    for index in correct:
                        if (
                            selected is not None
                            and (dataset, arch, kind, region_name, int(index)) not in selected
                        ):
                            continue
                        yield (
                            dataset,
                            arch,
                            kind,
                            network,
                            region_name,
                            norm,
                            radius,
                            int(index),
                            flat[index],
                            int(test.labels[index]),
                        )


def run_quality(args: argparse.Namespace) -> list[dict]:
    rows = []
    torch.set_num_threads(1)  # single-threaded, as HiGHS here (and the machine may be shared)
    options = ObbtOptions(
        budget=args.lp_budget,
        time_per_lp=args.time_per_lp,
        cut_rounds=args.cut_rounds,
        time_per_mip=args.time_per_mip,
        mip_stability_only=args.mip_stability_only,
    )
    for dataset, arch, kind, network, region_name, norm, radius, index, x0, _ in instances(args):
        region = InputRegion.ball(norm, x0, radius, network.input_spec.lower, network.input_spec.upper)
        load = load_avg()
        linear = compute_bounds(network, region, "linear")
        alpha = continue_bounds(network, region, linear, "alpha")
        stages = [*linear.stages, alpha.stages[-1]]
        tightest = alpha
        if args.quality_method != "linear":
            tightest = continue_bounds(network, region, linear, args.quality_method, options=options)
            stages += tightest.stages[2:]
        started = time.perf_counter()
        witnessed = witnessed_unstable(network, region, tightest)
        seconds = time.perf_counter() - started
        gaps = zip(witnessed.highest, witnessed.lowest, witnessed.proved, strict=True)
        width = float(sum(np.sum((high - low)[mask]) for high, low, mask in gaps))
        proved = {"method": "proved", "unstable": witnessed.n_proved, "seconds": seconds, "width": width}
        where = {"dataset": dataset, "arch": arch, "kind": kind, "region": region_name, "image": index}
        for stage in stages:
            size = {"unstable": stage.unstable, "width": stage.total_width, "seconds": stage.seconds}
            rows.append({**where, "method": stage.method, **size, "load": load, **dict(stage.details)})
        rows.append({**where, **proved, "load": load})
        print(
            f"  {dataset} {arch} {kind} {region_name} image {index}: "
            + ", ".join(f"{s.method} {s.unstable} ({s.seconds:.2f} s)" for s in stages)
            + f", proved {proved['unstable']} ({proved['seconds']:.2f} s)  [load {load:.2f}]",
            flush=True,
        )
    print_quality(rows)
    return rows


def print_quality(rows: list[dict]) -> None:
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row["dataset"], row["arch"], row["kind"], row["region"])][row["method"]].append(row)
    methods = [
        m for m in ("ia", "linear", "alpha", "lp", "mip", "proved") if any(m in g for g in groups.values())
    ]
    print(
        "\nBound quality: mean #unstable / mean Σ(u − l) / mean seconds per image (load: mean 1-min average)"
    )
    header = f"{'dataset':>13} {'arch':>5} {'kind':>6} {'region':>9} " + " ".join(
        f"{m + ' unst':>9} {m + ' Σw':>10} {m + ' s':>7}" for m in methods
    )
    print(header + f" {'lin/ia':>7} {'α/ia':>7} {'load':>5}")
    for key, by_method in groups.items():
        cells = []
        for m in methods:
            rs = by_method.get(m, [])
            if rs:
                cells.append(
                    f"{np.mean([r['unstable'] for r in rs]):>9.1f} "
                    f"{np.mean([r['width'] for r in rs]):>10.1f} "
                    f"{np.mean([r['seconds'] for r in rs]):>7.3f}"
                )
            else:
                cells.append(f"{'':>9} {'':>10} {'':>7}")
        ia = sum(r["unstable"] for r in by_method.get("ia", []))
        ratios = [sum(r["unstable"] for r in by_method.get(m, [])) / ia if ia else math.nan for m in RELAXED]
        load = np.mean([r["load"] for rs in by_method.values() for r in rs])
        print(
            f"{key[0]:>13} {key[1]:>5} {key[2]:>6} {key[3]:>9} "
            + " ".join(cells)
            + "".join(f" {ratio:>7.2f}" for ratio in ratios)
            + f" {load:>5.2f}"
        )
    dense = [r for r in rows if r["arch"] == "2x200" and r["kind"] == "dense"]
    ia = sum(r["unstable"] for r in dense if r["method"] == "ia")
    if not ia:
        return
    print()
    cuts = any(r.get("cuts") for r in dense if r["method"] == "lp")
    lp_name = "LP + ideal cuts" if cuts else "LP (triangle relaxation)"
    for method, name in zip((*RELAXED, "lp"), ("linear (CROWN)", "α-CROWN", lp_name), strict=True):
        if not any(r["method"] == method for r in dense):
            continue
        count = sum(r["unstable"] for r in dense if r["method"] == method)
        seconds = sum(r["seconds"] for r in dense if r["method"] == method)
        print(
            f"Goal 1 (dense 2x200: linear relaxation leaves ≤ 70 % of the unstable neurons IA leaves), "
            f"{name}: {count}/{ia} = {count / ia:.1%} → {'PASS' if count <= 0.7 * ia else 'FAIL'} "
            f"({seconds:.2f} s in all)"
        )
    mip = [r for r in dense if r["method"] == "mip"]
    if mip:
        count = sum(r["unstable"] for r in mip)
        undecided = sum(r.get("mips_undecided", 0) for r in mip)
        print(
            f"MIP stability decisions (bounds 'mip': exact up to HiGHS's tolerances, not a linear "
            f"relaxation): {count}/{ia} = {count / ia:.1%} ({sum(r['seconds'] for r in mip):.0f} s in all; "
            f"{undecided} MIPs stopped undecided by --time-per-mip)"
        )
    floor = sum(r["unstable"] for r in dense if r["method"] == "proved")
    print(
        f"Proved unstable by inputs of the regions (no sound bounds leave fewer): {floor}/{ia} = "
        f"{floor / ia:.1%} of IA's count"
    )


def _highs_extra(pairs: list[str]) -> dict[str, object]:
    extra: dict[str, object] = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        for kind in (int, float):
            try:
                extra[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            extra[key] = {"true": True, "false": False}.get(value.lower(), value)
    return extra


def attack(
    network, x0, label, region, pipeline: str, time_limit: float, seed: int, extra=None, formulation=None
):
    options = HighsOptions(time_limit=time_limit, random_seed=seed, threads=1, extra=extra or {})
    if formulation is not None:
        return _attack(network, x0, label, region, pipeline, options, time_limit, formulation=formulation)
    return _attack(network, x0, label, region, pipeline, options, time_limit)


def _attack(network, x0, label, region, pipeline, options, time_limit, **more):
    if pipeline == "default":
        settings = AttackOptions(highs=options, **more)
    elif pipeline == "pgd+linear":  # the default without its LP stage
        settings = AttackOptions(highs=options, bounds="linear", **more)
    elif pipeline == "pgd+lp":  # the default with its LP stage always on (budget: a quarter of the limit)
        budget = ObbtOptions(budget=min(30.0, 0.25 * time_limit))
        settings = AttackOptions(highs=options, bounds="lp", bounds_options=budget, **more)
    else:
        budget = ObbtOptions(budget=0.5 * time_limit) if pipeline in ("lp", "mip") else None
        settings = AttackOptions(highs=options, bounds=pipeline, pgd=False, bounds_options=budget, **more)
    return find_adversarial_example(network, x0, label, region, options=settings)


def _encoding_size(encoding) -> dict[str, object]:
    """The MIP's unstable neurons, binaries and big-M width; None each when no MIP was built."""
    if encoding is None:
        return {"unstable": None, "binaries": None, "width": None}
    unstable, width = encoding.unstable_neurons, encoding.total_bigm_width
    return {"unstable": unstable, "binaries": encoding.binaries, "width": width}


def run_solve(args: argparse.Namespace) -> list[dict]:
    rows = []
    extra = _highs_extra(args.highs)
    for dataset, arch, kind, network, region_name, norm, radius, index, x0, label in instances(args):
        region = InputRegion.ball(norm, x0, radius, network.input_spec.lower, network.input_spec.upper)
        where = {"dataset": dataset, "arch": arch, "kind": kind, "region": region_name, "image": index}
        for seed in args.seeds:
            for pipeline in args.pipelines:
                load = load_avg()
                limit = args.time_limit
                result = attack(network, x0, label, region, pipeline, limit, seed, extra, args.formulation)
                decided = result.status in SOLVED
                total = result.total_seconds if decided else max(result.total_seconds, limit)
                verdict = {"seed": seed, "pipeline": pipeline, "status": result.status, "decided": decided}
                times = {"total": total, "bounds_s": result.bounds_seconds, "pgd_s": result.pgd_seconds}
                mips = sum(o.solve.highs_status != PROVEN for o in result.targets)
                search = {"solve_s": result.solve_seconds, "nodes": result.nodes, "mips": mips}
                size = _encoding_size(result.encoding)
                row = {**where, **verdict, **times, **search, **size, "load": load}
                rows.append(row)
                print(
                    f"  {dataset} {arch} {kind} {region_name} image {index} seed {seed} {pipeline:>10}: "
                    f"{result.status:>11} total {row['total']:7.2f} s (bounds {row['bounds_s']:.2f}, pgd "
                    f"{row['pgd_s']:.2f}, solve {row['solve_s']:.2f}, {row['mips']} MIPs, "
                    f"{row['nodes']} nodes)"
                    f"  [load {load:.2f}]",
                    flush=True,
                )
    print_solve(rows, args.time_limit)
    return rows


def print_solve(rows: list[dict], time_limit: float) -> None:
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row["dataset"], row["arch"], row["kind"], row["region"])][row["pipeline"]].append(row)
    pipelines = [p for p in PIPELINES if any(p in g for g in groups.values())]
    print(
        f"\nSolve (decide mode, untargeted, limit {time_limit:g} s): decided/n, sgm total s (shift 1), "
        "mean bounds s, mean solve s, mean nodes, mean binaries"
    )
    print(
        f"{'dataset':>13} {'arch':>5} {'kind':>6} {'region':>9} {'pipeline':>10} {'decided':>7} {'sgm s':>8} "
        f"{'bounds s':>8} {'solve s':>8} {'nodes':>8} {'binaries':>8} {'load':>5}"
    )
    for key, by_pipeline in groups.items():
        for p in pipelines:
            rs = by_pipeline.get(p, [])
            if not rs:
                continue
            binaries = [r["binaries"] for r in rs if r["binaries"] is not None]
            print(
                f"{key[0]:>13} {key[1]:>5} {key[2]:>6} {key[3]:>9} {p:>10} "
                f"{sum(r['decided'] for r in rs):>3}/{len(rs):<3} {sgm([r['total'] for r in rs]):>8.3f} "
                f"{np.mean([r['bounds_s'] for r in rs]):>8.3f} {np.mean([r['solve_s'] for r in rs]):>8.2f} "
                f"{np.mean([r['nodes'] for r in rs]):>8.0f} "
                f"{(np.mean(binaries) if binaries else math.nan):>8.1f} "
                f"{np.mean([r['load'] for r in rs]):>5.2f}"
            )
    if not {"ia", "default"} <= set(pipelines):
        return
    print()
    for kind in ("dense", "sparse"):
        pairs = _pairs(rows, kind)
        if not pairs:
            continue
        ia = sgm([a["total"] for a, _ in pairs])
        default = sgm([b["total"] for _, b in pairs])
        print(
            f"{kind}: sgm total ia {ia:.3f} s, default {default:.3f} s, "
            f"ratio {ia / default:.2f}x over {len(pairs)} instances"
        )
        if kind == "dense":
            print(f"Goal 2 (dense: default ≥ 2x faster by sgm): {'PASS' if ia >= 2 * default else 'FAIL'}")
        else:
            strict = [(a, b) for a, b in pairs if b["total"] > 1.2 * a["total"]]
            noisy = [(a, b) for a, b in pairs if b["total"] > 1.2 * a["total"] + 0.05]
            worst = max(pairs, key=lambda ab: ab[1]["total"] / max(ab[0]["total"], 1e-9))
            print(
                f"Goal 3 (sparse: no instance > 20 % slower): {len(strict)} of {len(pairs)} slower by > 20 % "
                f"→ {'PASS' if not strict else 'FAIL'}; with a 0.05 s timer-noise allowance {len(noisy)} → "
                f"{'PASS' if not noisy else 'FAIL'}; worst ratio "
                f"{worst[1]['total'] / max(worst[0]['total'], 1e-9):.2f} ({worst[0]['total']:.3f} s → "
                f"{worst[1]['total']:.3f} s, {worst[0]['dataset']} {worst[0]['arch']} "
                f"{worst[0]['region']} image {worst[0]['image']})"
            )


def _pairs(rows: list[dict], kind: str) -> list[tuple[dict, dict]]:
    by_key: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        if row["kind"] == kind:
            key = (row["dataset"], row["arch"], row["region"], row["image"], row["seed"])
            by_key[key][row["pipeline"]] = row
    return [(v["ia"], v["default"]) for v in by_key.values() if "ia" in v and "default" in v]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("quality", "solve", "all"), default="all")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--kinds", nargs="+", default=["dense", "sparse"], choices=("dense", "sparse"))
    parser.add_argument(
        "--regions", nargs="+", default=list(REGIONS), help="NORM:RADIUS, e.g. linf:0.02 l1:5"
    )
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per attack (600)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="HiGHS seeds of the solve part")
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=PIPELINES)
    parser.add_argument(
        "--quality-method",
        default="lp",
        choices=("linear", "lp", "mip"),
        help="last bounds stage of the quality part (lp)",
    )
    parser.add_argument("--lp-budget", type=float, default=600.0, help="LP budget per image, quality part")
    parser.add_argument("--time-per-lp", type=float, default=2.0)
    parser.add_argument(
        "--cut-rounds",
        type=int,
        default=0,
        help="quality part: rounds of ideal-formulation cuts per LP of the LP stage (0: none)",
    )
    parser.add_argument("--time-per-mip", type=float, default=10.0, help="quality part, mip: seconds per MIP")
    parser.add_argument(
        "--mip-stability-only",
        action="store_true",
        help="quality part, mip: only the MIPs that could make a neuron stable (mip_stability_only)",
    )
    parser.add_argument("--highs", nargs="*", default=[], metavar="KEY=VALUE", help="extra HiGHS options")
    parser.add_argument("--formulation", choices=("substituted", "variable"), help="MIP formulation")
    parser.add_argument("--only-from", help="solve only the instances that needed a MIP in this JSON")
    parser.add_argument("--quick", action="store_true", help="digits 2x100, 2 images, 20 s limit")
    parser.add_argument("--out", type=Path, help="write every row as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.archs, args.images, args.time_limit = ["digits"], ["2x100"], 2, 20.0
    print(f"load average at start: {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    results: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    if args.part in ("quality", "all"):
        results["quality"] = run_quality(args)
    if args.part in ("solve", "all"):
        results["solve"] = run_solve(args)
    results["seconds"] = time.perf_counter() - started
    print(f"\nran {results['seconds']:.0f} s; load average at end: {os.getloadavg()}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
