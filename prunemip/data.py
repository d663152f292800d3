"""Datasets: scikit-learn's 8×8 digits, MNIST, Fashion-MNIST and any local IDX/NPZ folder.

Every :class:`Dataset` holds float64 images scaled to [0, 1] (digits: ``/16``; 8-bit
pixels: ``/255``), int64 labels and a JSON-able ``provenance`` record that a trained
model's metadata copies, so every split can be rebuilt from it.

Where the files are
    ``digits`` ships with scikit-learn. Any other name is read from a folder holding
    the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``), or
    an ``.npz`` with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (Keras'
    ``mnist.npz``; ``<name>.npz`` is preferred when several are there). A folder F is
    searched as ``F/<name>`` then ``F``. With ``data_dir`` only that folder is searched
    (then the name can be anything); otherwise ``$PRUNEMIP_DATA_DIR``,
    ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` package) and the
    cache ``$XDG_CACHE_HOME/prunemip/<name>`` (default ``~/.cache/prunemip/<name>``), in
    that order. The first folder holding both official splits wins; failing that, the
    first folder holding one of them.

Splits (all stratified and deterministic in ``seed``)
    * Official splits: ``"train"`` is the train file and ``"test"`` the t10k file; the
      seed only matters for the validation carve-out.
    * Re-split: ``digits`` (no official split), and a folder holding only one official
      split (e.g. just MNIST's 10,000 ``t10k`` images), are split 80 % train / 20 %
      test. Per class, the test count is ``fraction * class size`` rounded by largest
      remainder so that the total is exactly ``round(0.2 * N)`` (digits: 1438 / 359;
      MNIST t10k: 8000 / 2000); which images are taken is a permutation of each class
      drawn from ``numpy.random.default_rng([seed, 0])``. This happens automatically and
      is recorded as ``provenance["resplit"] = {"source": "t10k", "seed": ..., "train":
      8000, "test": 2000, "test_fraction": 0.2}``.
    * Validation: ``val_fraction`` > 0 carves that fraction of the training part out the
      same way with ``default_rng([seed, 1])``; ``"val"`` returns it and ``"train"`` the
      rest. The test split never depends on ``val_fraction``.
    Rows keep the order of their source file; ``Dataset.indices`` gives each row's
    position in it.

Download (opt-in, ``download_dataset`` or ``load_dataset(..., download=True)``) fetches
the four ``.gz`` IDX files of ``mnist`` or ``fashion-mnist``, checks their published MD5
sums and writes each atomically.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prunemip.atomic import atomic_write_bytes
from prunemip.errors import PrunemipError
from prunemip.idx import read_idx, read_npz_array
from prunemip.network import InputSpec

SPLITS: tuple[str, ...] = ("train", "test", "val")
RESPLIT_TEST_FRACTION = 0.2
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
DIGIT_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FOLDER_DATASETS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": FASHION_MNIST_CLASSES,
    "mnist": DIGIT_CLASSES,
}
_IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_NPZ_KEYS: dict[str, tuple[str, str]] = {
    "train": ("x_train", "y_train"),
    "test": ("x_test", "y_test"),
}
_RESPLIT_SOURCE = {"train": "train", "test": "t10k"}
# Base URL and the published MD5 sum of each file.
_DOWNLOADS: dict[str, tuple[str, dict[str, str]]] = {
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83fd310",
        },
    ),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a dataset: images in [0, 1], integer labels and where they came from.

    ``indices`` holds each row's position in its source (the official split file, or the
    pool that was re-split); ``None`` for a dataset built by hand.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    image_shape: tuple[int, ...]
    classes: tuple[str, ...]
    split: str
    provenance: dict[str, Any]
    indices: np.ndarray | None = None

    def input_spec(self) -> InputSpec:
        """The network input this data feeds: ``image_shape`` with values in [0, 1]."""
        return InputSpec.create(self.image_shape, 0.0, 1.0, dataset=self.name)

    def flat(self) -> np.ndarray:
        """Images as rows, shape ``(N, prod(image_shape))``."""
        return self.images.reshape(len(self), -1)

    def __len__(self) -> int:
        return len(self.labels)


def available_datasets() -> list[str]:
    """Names :func:`load_dataset` knows without a ``data_dir``."""
    return sorted(["digits", *_FOLDER_DATASETS])


@dataclass(frozen=True)
class _Split:
    """Where one official split lives: two IDX files, or two arrays of one ``.npz``."""

    images_file: Path
    labels_file: Path
    npz_keys: tuple[str, str] | None = None

    def read_images(self) -> np.ndarray:
        if self.npz_keys is None:
            return read_idx(self.images_file)
        return read_npz_array(self.images_file, self.npz_keys[0])

    def read_labels(self) -> np.ndarray:
        if self.npz_keys is None:
            return read_idx(self.labels_file)
        return read_npz_array(self.labels_file, self.npz_keys[1])

    def record(self) -> dict[str, Any]:
        """Provenance: the files read (and the arrays, for an ``.npz``)."""
        if self.npz_keys is None:
            return {"format": "idx", "files": [str(self.images_file), str(self.labels_file)]}
        return {"format": "npz", "files": [str(self.images_file)], "arrays": list(self.npz_keys)}


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _scan_folder(folder: Path, name: str) -> dict[str, _Split]:
    """The complete official splits in ``folder``: IDX files first, else one ``.npz``."""
    splits: dict[str, _Split] = {}
    for split, (image_stem, label_stem) in _IDX_FILES.items():
        images, labels = _find_idx(folder, image_stem), _find_idx(folder, label_stem)
        if (images is None) != (labels is None):
            have, missing = (images, label_stem) if labels is None else (labels, image_stem)
            raise PrunemipError(
                f"{folder} has {have.name} but not {missing}[.gz]; add the missing file or remove it"
            )
        if images is not None and labels is not None:
            splits[split] = _Split(images, labels)
    if splits:
        return splits
    archives = sorted(folder.glob("*.npz"), key=lambda p: (p.stem != name, p.name))
    for archive in archives:
        if not zipfile.is_zipfile(archive):
            raise PrunemipError(f"{archive} is not an .npz archive (the zip of arrays numpy.savez writes)")
        try:
            with np.load(archive, allow_pickle=False) as contents:
                keys = set(contents.files)
        except (OSError, ValueError) as error:
            raise PrunemipError(f"cannot read {archive}: {error}") from None
        found = {
            split: _Split(archive, archive, pair) for split, pair in _NPZ_KEYS.items() if set(pair) <= keys
        }
        if found:
            return found
    return {}


#: The environment variables the search path of :func:`load_dataset` reads.
DATA_LOCATION_VARIABLES: tuple[str, ...] = ("PRUNEMIP_DATA_DIR", "XDG_CACHE_HOME")


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "prunemip"


def _search_folders(name: str, data_dir: str | Path | None) -> list[Path]:
    if data_dir is not None:
        roots = [Path(data_dir).expanduser()]
    else:
        env = os.environ.get("PRUNEMIP_DATA_DIR")
        roots = [Path(env).expanduser()] if env else []
    folders = [folder for root in roots for folder in (root / name, root)]
    if data_dir is None:
        folders += [SYSTEM_DATA_DIR / name, _cache_root() / name]
    return list(dict.fromkeys(folders))


def _locate(name: str, data_dir: str | Path | None, download: bool) -> tuple[Path, dict[str, _Split]]:
    """The folder to read and its splits: see the module docstring for the order."""
    given = Path(data_dir).expanduser() if data_dir is not None else None
    if given is not None and (given.exists() or not download) and not given.is_dir():
        state = "is a file, not a folder" if given.exists() else "does not exist"
        raise PrunemipError(f"no {name} data found: data folder {given} {state}")
    folders = _search_folders(name, data_dir)
    partial: tuple[Path, dict[str, _Split]] | None = None
    for folder in folders:
        splits = _scan_folder(folder, name) if folder.is_dir() else {}
        if len(splits) == len(_IDX_FILES):
            return folder, splits
        if splits and partial is None:
            partial = (folder, splits)
    if download and name in _DOWNLOADS:
        folder = download_dataset(name, data_dir)
        return folder, _scan_folder(folder, name)
    if partial is not None:
        return partial
    wanted = ", ".join(f"{stem}[.gz]" for pair in _IDX_FILES.values() for stem in pair)
    hints = []
    if name == "fashion-mnist" and data_dir is None:
        hints.append("`apt-get install dataset-fashion-mnist`")
    if name in _DOWNLOADS:
        hints.append(f"`prunemip data download {name}` (in Python, download=True)")
    hints.append("name a folder holding them with --data-dir (in Python, data_dir=)")
    raise PrunemipError(
        f"no {name} data found: looked for {wanted} or an .npz with "
        f"{'/'.join(k for pair in _NPZ_KEYS.values() for k in pair)} in "
        f"{', '.join(str(f) for f in folders)}; get them with {' or '.join(hints)}"
    )


# ----------------------------------------------------------------------- splitting
def _stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(kept, carved)``, both sorted; ``carved`` holds ``round(fraction * N)``.

    Each class gives ``fraction`` of its members (largest-remainder rounding, ties to the
    smaller class label), chosen by a permutation of that class drawn from ``rng``.
    """
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * fraction
    take = np.floor(quota).astype(np.int64)
    extra = round(fraction * len(labels)) - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
    members = (np.flatnonzero(labels == c) for c in classes)
    carved = np.sort(np.concatenate([rng.permutation(m)[:k] for m, k in zip(members, take, strict=True)]))
    return np.setdiff1d(np.arange(len(labels)), carved), carved


def _train_or_val(
    positions: np.ndarray,
    labels: np.ndarray,
    split: str,
    seed: int,
    val_fraction: float,
    provenance: dict[str, Any],
) -> np.ndarray:
    """Restrict the training positions to the training or the validation part."""
    if val_fraction == 0:
        return positions
    rng = np.random.default_rng([seed, 1])
    kept, carved = _stratified_split(labels[positions], val_fraction, rng)
    provenance["val"] = {
        "fraction": val_fraction,
        "seed": seed,
        "train": len(kept),
        "val": len(carved),
    }
    return positions[carved if split == "val" else kept]


def _resplit(
    labels: np.ndarray,
    source: str,
    split: str,
    seed: int,
    val_fraction: float,
    provenance: dict[str, Any],
) -> np.ndarray:
    """Positions of ``split`` in a pool that has no official train/test split."""
    train, test = _stratified_split(labels, RESPLIT_TEST_FRACTION, np.random.default_rng([seed, 0]))
    provenance["resplit"] = {
        "source": source,
        "seed": seed,
        "train": len(train),
        "test": len(test),
        "test_fraction": RESPLIT_TEST_FRACTION,
    }
    if split == "test":
        return test
    return _train_or_val(train, labels, split, seed, val_fraction, provenance)


def _to_unit(raw: np.ndarray, where: str) -> np.ndarray:
    """8-bit integer pixels divided by 255; floats must already lie in [0, 1]."""
    if np.issubdtype(raw.dtype, np.integer):
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            raise PrunemipError(f"{where}: integer pixels must lie in 0..255, found {raw.min()}..{raw.max()}")
        return raw.astype(np.float64) / 255.0
    images = raw.astype(np.float64)
    in_range = np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    if images.size and not in_range:
        raise PrunemipError(f"{where}: float pixels must lie in [0, 1]; scale them or store uint8")
    return images


def _check_labels(labels: np.ndarray, n_images: int, n_classes: int | None, where: str) -> np.ndarray:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise PrunemipError(f"{where}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) != n_images:
        raise PrunemipError(f"{where}: {n_images} images but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or (n_classes is not None and labels.max() >= n_classes)):
        limit = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        raise PrunemipError(f"{where}: labels must be {limit}, found {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


# ----------------------------------------------------------------------- loading
def load_dataset(
    name: str,
    split: str = "test",
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    val_fraction: float = 0.0,
    download: bool = False,
) -> Dataset:
    """Load one split (``"train"``, ``"test"`` or ``"val"``) of a dataset.

    ``name`` is one of :func:`available_datasets`, or any name when ``data_dir`` holds
    its IDX/NPZ files. ``download=True`` fetches MNIST/Fashion-MNIST (into ``data_dir``,
    else the cache) when no folder holds both official splits. Split rules and the
    search order are in the module docstring.

    Args:
        name: the dataset (e.g. ``"mnist"``, ``"fashion-mnist"``, ``"digits"``).
        split: ``"train"``, ``"test"`` or ``"val"`` (the held-out share of the training part).
        data_dir: a folder holding the IDX/NPZ files (default: the search order).
        seed: seed (a non-negative integer) of the stratified re-split and the validation hold-out.
        val_fraction: share of the training part held out as ``"val"``, in [0, 1); 0 holds none.
        download: fetch the official files when no folder has them.

    Returns:
        The split, images scaled to [0, 1], with its provenance.

    Raises:
        PrunemipError: for an unknown dataset or split, a bad ``seed``/``val_fraction``, missing or
            damaged files, or labels that do not fit the images.
    """
    if split not in SPLITS:
        raise PrunemipError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise PrunemipError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    if split == "val" and val_fraction == 0:
        raise PrunemipError("split 'val' needs val_fraction > 0 (the share of the training part to hold out)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PrunemipError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    provenance: dict[str, Any] = {"dataset": name, "split": split, "seed": seed}

    if name == "digits":
        if data_dir is not None:
            raise PrunemipError(
                "digits ships with scikit-learn and reads no folder: drop --data-dir (in Python, data_dir=)"
            )
        import sklearn
        from sklearn.datasets import load_digits

        bunch = load_digits()
        labels = bunch.target.astype(np.int64)
        provenance.update(
            format="sklearn", source="sklearn.datasets.load_digits", sklearn_version=sklearn.__version__
        )
        positions = _resplit(labels, "load_digits", split, seed, val_fraction, provenance)
        images = bunch.images[positions] / 16.0
        return Dataset(
            name, images, labels[positions], images.shape[1:], DIGIT_CLASSES, split, provenance, positions
        )

    if name not in _FOLDER_DATASETS and data_dir is None:
        raise PrunemipError(
            f"unknown dataset {name!r}; available: {', '.join(available_datasets())} "
            "(or give a folder holding its IDX or .npz files: --data-dir; in Python, data_dir=)"
        )
    folder, splits = _locate(name, data_dir, download)
    known_classes = _FOLDER_DATASETS.get(name)
    provenance["folder"] = str(folder)
    which = "test" if split == "test" else "train"
    if which not in splits:
        ((which, _),) = splits.items()
    part = splits[which]
    provenance.update(part.record())
    where = str(part.images_file)
    raw = part.read_images()
    n_classes = len(known_classes) if known_classes else None
    labels = _check_labels(part.read_labels(), len(raw), n_classes, where)
    if known_classes is not None and raw.shape[1:] != (28, 28):
        raise PrunemipError(f"{where}: {name} images are 28×28, found {raw.shape[1:]}")
    if len(splits) == 1:
        positions = _resplit(labels, _RESPLIT_SOURCE[which], split, seed, val_fraction, provenance)
    elif split == "test":
        positions = np.arange(len(labels))
    else:
        positions = _train_or_val(np.arange(len(labels)), labels, split, seed, val_fraction, provenance)
    if known_classes is None:
        top = max(int(s.read_labels().max(initial=0)) for s in splits.values())
        known_classes = tuple(str(i) for i in range(top + 1))
    images = _to_unit(raw[positions], where)
    return Dataset(
        name, images, labels[positions], tuple(raw.shape[1:]), known_classes, split, provenance, positions
    )


# ----------------------------------------------------------------------- download
def _fetch(url: str) -> bytes:
    """The body of ``url``; any network failure becomes a one-line PrunemipError."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except (OSError, http.client.HTTPException) as error:
        reason = str(getattr(error, "reason", error)).replace("\n", " ")
        raise PrunemipError(
            f"could not download {url}: {reason}; check the network or copy the file by hand"
        ) from None


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download_dataset(name: str, dest: str | Path | None = None) -> Path:
    """Fetch the four ``.gz`` IDX files of ``name`` into ``dest`` (default: the cache).

    Files already there with the right MD5 sum are kept; each new file is checked
    against the published sum before it is written.

    Args:
        name: a downloadable dataset (``"mnist"`` or ``"fashion-mnist"``).
        dest: the folder to fill (created if needed); default ``$XDG_CACHE_HOME/prunemip/<name>``.

    Returns:
        The folder.

    Raises:
        PrunemipError: for a dataset that cannot be downloaded, a network failure, a checksum
            mismatch or a folder that cannot be written.
    """
    if name not in _DOWNLOADS:
        raise PrunemipError(f"cannot download {name!r}; downloadable: {', '.join(sorted(_DOWNLOADS))}")
    base, checksums = _DOWNLOADS[name]
    folder = Path(dest).expanduser() if dest is not None else _cache_root() / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for filename, expected in checksums.items():
            target = folder / filename
            if target.is_file() and _md5(target.read_bytes()) == expected:
                continue
            data = _fetch(base + filename)
            if _md5(data) != expected:
                raise PrunemipError(
                    f"checksum mismatch for {base + filename}: MD5 {_md5(data)}, "
                    f"expected {expected}; the file was not written, try again later"
                )
            atomic_write_bytes(target, data)
    except OSError as error:
        reason = error.strerror or error
        raise PrunemipError(f"cannot write {name} into {folder}: {reason}") from None
    return folder
