"""Turn command-line choices into an attack instance: a network with a bounded input
range, an input point and its label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunemip.errors import PrunemipError
from prunemip.network import Network


@dataclass(frozen=True, eq=False)
class Instance:
    """A network, a point of its input space, the point's label, and where they came from."""

    network: Network
    x0: np.ndarray
    label: int
    source: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.network.input_spec.shape


def with_input_range(
    network: Network, input_range: tuple[float, float] | None, dataset: str | None
) -> Network:
    """The network with the input range to use: ``--input-range``, else its own, else the dataset's [0, 1]."""
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
    """An input point from a ``.npy`` file, checked against the network's input size."""
    target = Path(path)
    if not target.is_file():
        raise PrunemipError(f"input file {target} does not exist")
    try:
        point = np.load(target, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PrunemipError(f"cannot read {target} as a .npy array ({exc})") from None
    point = np.asarray(point, dtype=np.float64)
    if point.size != network.n_inputs:
        raise PrunemipError(
            f"input {target.name} has {point.size} values (shape {point.shape}) but the network takes "
            f"{network.n_inputs}"
        )
    if not np.all(np.isfinite(point)):
        raise PrunemipError(f"input {target.name} contains NaN or Inf")
    return point.reshape(-1)


def dataset_point(
    network: Network, dataset: str, index: int, split: str, data_dir: str | None, seed: int
) -> tuple[np.ndarray, int]:
    """Image ``index`` of a dataset split and its label, checked against the network's input size."""
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

    Without a label, a ``.npy`` point is labelled by the network's own prediction.
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
