"""A study's attack instances re-run through this tree's engine, or an older tree's, side by side.

Reads a study run folder (``config.json``, ``results.jsonl``, ``models/*.npz``: what ``prunemip
experiment run`` writes) and runs each of its solve jobs again through
``find_adversarial_example`` with the study's settings (perturbation, target rule, mode,
bounds, time limit, gradient attack, HiGHS seed), on the study's saved model and image. The
same script runs against an older tree (its ``find_adversarial_example`` has the same
signature), so both engines solve the same instances on the same models::

    git worktree add /tmp/prunemip-previous <commit>
    ln -s /tmp/prunemip-previous/encoders /tmp/prunemip-previous/prunemip/encoders
    ln -s /tmp/prunemip-previous/solvers /tmp/prunemip-previous/prunemip/solvers
    PYTHONPATH=/tmp/prunemip-previous python experiments/benchmarks/engine_compare.py runs/study \\
        --methods magnitude --out previous.json
    python experiments/benchmarks/engine_compare.py runs/study --methods magnitude --out new.json \\
        --compare previous.json

Per (method, sparsity, perturbation) it prints the instances decided, the shifted geometric
mean time (shift 1 s, an undecided instance counted at the limit) and the median; with
``--compare``, per instance the time against the other run's, and how many are more than
20 % slower (with a 0.05 s allowance for timer noise).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DECIDED = ("adversarial", "robust")
SHIFT = 1.0  #: seconds added before the geometric mean
SLOWER = 1.2  #: "more than 20 % slower"
NOISE = 0.05  #: seconds of timer noise allowed on top


def _jobs(folder: Path, methods: list[str] | None, images: int | None) -> list[dict]:
    """The study's solve records (one per job, the last record of a key winning)."""
    records: dict[str, dict] = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        wanted = methods is None or record.get("method") in methods
        if record.get("kind") == "solve" and wanted and (images is None or record["image"] < images):
            records[record["key"]] = record
    return sorted(records.values(), key=lambda r: (r["method"], r["sparsity"], r["perturbation"], r["image"]))


def run_job(folder: Path, job: dict, bab: bool) -> dict:
    """One attack of the study, through whichever prunemip is importable."""
    from prunemip.data import load_dataset
    from prunemip.engine.attack import AttackOptions, find_adversarial_example, target_order
    from prunemip.model_io import load_network
    from prunemip.solvers.highs import HighsOptions

    config = json.loads((folder / "config.json").read_text())
    attack = config["attack"]
    test = load_dataset(config["dataset"], "test", data_dir=config["data_dir"], seed=config["split_seed"])
    x0 = test.flat()[job["image"]]
    label = int(test.labels[job["image"]])
    network = load_network(folder / "models" / f"{job['model_key']}.npz")
    target = target_order(network.forward(x0), label)[0] if job["target_rule"] == "runner-up" else None
    extra = {} if bab else {"bab": False}  # an older tree's options may not know the field
    options = AttackOptions(
        mode=job["mode"],
        bounds=attack["bounds"],
        highs=HighsOptions(time_limit=job["time_limit"], threads=1, random_seed=job["solver_seed"]),
        pgd=attack["gradient_attack"],
        **extra,
    )
    result = find_adversarial_example(
        network, x0, label, norm=job["norm"], radius=job["radius"], target=target, options=options
    )
    keys = ("method", "sparsity", "architecture", "perturbation", "image", "time_limit")
    return {
        **{key: job[key] for key in keys},
        "status": result.status,
        "seconds": result.total_seconds,
        "study_status": job["status"],
        "study_seconds": job["seconds"],
    }


def _charged(row: dict) -> float:
    return row["seconds"] if row["status"] in DECIDED else row["time_limit"]


def _summary(rows: list[dict]) -> None:
    print("method            sparsity  perturbation  decided  shifted geo mean s  median s")
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(
            (row["architecture"], row["method"], row["sparsity"], row["perturbation"]), []
        ).append(row)
    for (arch, method, sparsity, perturbation), group in groups.items():
        times = np.array([_charged(r) for r in group])
        geo = float(np.exp(np.mean(np.log(times + SHIFT))) - SHIFT)
        decided = sum(r["status"] in DECIDED for r in group)
        print(
            f"{arch} {method:<12} {sparsity:>6g}  {perturbation:<12} {decided:>3}/{len(group):<3} "
            f"{geo:>18.2f} {float(np.median(times)):>9.2f}"
        )


def _compare(rows: list[dict], other: list[dict]) -> None:
    def key(row: dict) -> tuple:
        return row["architecture"], row["method"], row["sparsity"], row["perturbation"], row["image"]

    before = {key(r): r for r in other}
    slower = 0
    print("\ninstance                                   this: status, s       other: status, s    ratio")
    for row in rows:
        old = before.get(key(row))
        if old is None:
            continue
        ratio = (_charged(row) + 1e-9) / (_charged(old) + 1e-9)
        late = _charged(row) > SLOWER * _charged(old) + NOISE
        slower += late
        name = " ".join(str(part) for part in key(row))
        print(
            f"{name:<42} {row['status']:>11} {_charged(row):>7.2f}   {old['status']:>11} "
            f"{_charged(old):>7.2f}  {ratio:>6.2f}{'  slower' if late else ''}"
        )
    print(f"{slower} of {len(rows)} instances more than {SLOWER - 1:.0%} slower (+{NOISE} s)")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="a study run folder (config.json, results.jsonl, models/)")
    parser.add_argument("--methods", nargs="+", help="only these methods (dense, magnitude, ...)")
    parser.add_argument("--images", type=int, help="only the first N images")
    parser.add_argument("--no-bab", action="store_true", help="the MIP without branch and bound (this tree)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--compare", type=Path, help="rows of another run (--out) to set beside these")
    args = parser.parse_args(argv)
    jobs = _jobs(args.folder, args.methods, args.images)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = [pool.submit(run_job, args.folder, job, not args.no_bab) for job in jobs]
        rows = []
        for future in futures:
            rows.append(future.result())
            print(json.dumps(rows[-1]), flush=True)
    _summary(rows)
    if args.compare is not None:
        _compare(rows, json.loads(args.compare.read_text()))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
