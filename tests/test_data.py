"""Datasets: digits re-split, IDX reader, local MNIST/Fashion-MNIST, NPZ folders, download."""

from __future__ import annotations

import gzip
import hashlib
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from prunemip import data
from prunemip.data import (
    FASHION_MNIST_CLASSES,
    available_datasets,
    download_dataset,
    load_dataset,
    read_idx,
)
from prunemip.errors import PrunemipError

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as an IDX file (big-endian header and data)."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[big.dtype], array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def assert_one_line_error(error: pytest.ExceptionInfo[PrunemipError], *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep the user's cache and PRUNEMIP_DATA_DIR out of every test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("PRUNEMIP_DATA_DIR", raising=False)


# ----------------------------------------------------------------------- digits
def test_digits_splits_shapes_and_range():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1438, 359)
    for ds in (train, test):
        assert ds.images.shape == (len(ds), 8, 8) and ds.images.dtype == np.float64
        assert ds.labels.dtype == np.int64 and ds.image_shape == (8, 8)
        assert ds.images.min() >= 0.0 and ds.images.max() == 1.0
        assert ds.classes == tuple(str(i) for i in range(10))
        assert set(np.unique(ds.labels)) == set(range(10))
        assert ds.flat().shape == (len(ds), 64)
        spec = ds.input_spec()
        assert spec.shape == (8, 8) and spec.dataset == "digits"
        assert np.all(spec.lower == 0.0) and np.all(spec.upper == 1.0)
    assert test.provenance["resplit"] == {
        "source": "load_digits",
        "seed": 0,
        "train": 1438,
        "test": 359,
        "test_fraction": 0.2,
    }


def test_digits_is_a_disjoint_stratified_partition_with_true_indices():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    train, test = load_dataset("digits", "train", seed=3), load_dataset("digits", "test", seed=3)
    assert np.intersect1d(train.indices, test.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, test.indices), np.arange(1797))
    for ds in (train, test):
        assert np.array_equal(ds.images, bunch.images[ds.indices] / 16.0)
        assert np.array_equal(ds.labels, bunch.target[ds.indices])
    per_class = np.bincount(bunch.target)
    assert np.all(np.abs(np.bincount(test.labels) - 0.2 * per_class) < 1.0)


def test_digits_deterministic_per_seed():
    a, b = load_dataset("digits", "test", seed=7), load_dataset("digits", "test", seed=7)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    other = load_dataset("digits", "test", seed=8)
    assert not np.array_equal(a.indices, other.indices)


def test_val_is_carved_from_train_and_leaves_test_unchanged():
    full_train = load_dataset("digits", "train", seed=1)
    test_plain = load_dataset("digits", "test", seed=1)
    test_val = load_dataset("digits", "test", seed=1, val_fraction=0.25)
    assert np.array_equal(test_plain.indices, test_val.indices)
    train = load_dataset("digits", "train", seed=1, val_fraction=0.25)
    val = load_dataset("digits", "val", seed=1, val_fraction=0.25)
    assert len(val) == round(0.25 * len(full_train)) and len(train) + len(val) == len(full_train)
    assert np.intersect1d(train.indices, val.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, val.indices), full_train.indices)
    assert np.all(np.abs(np.bincount(val.labels) - 0.25 * np.bincount(full_train.labels)) < 1.0)
    record = {"fraction": 0.25, "seed": 1, "train": len(train), "val": len(val)}
    assert val.provenance["val"] == record


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"split": "valid"}, "unknown split"),
        ({"split": "val"}, "val_fraction > 0"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"seed": -1}, "seed"),
        ({"data_dir": "/nowhere"}, "scikit-learn"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(PrunemipError) as error:
        load_dataset("digits", **kwargs)
    assert_one_line_error(error, fragment)


def test_unknown_name_lists_available():
    assert available_datasets() == ["digits", "fashion-mnist", "mnist"]
    with pytest.raises(PrunemipError) as error:
        load_dataset("cifar")
    assert_one_line_error(error, "cifar", "digits, fashion-mnist, mnist")


# ----------------------------------------------------------------------- IDX reader
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([0, 9, 3, 3], dtype=np.uint8),
        np.array([-7, 3, 300], dtype=np.int16),
        np.arange(6, dtype=np.int32).reshape(3, 2) - 2**20,
        np.array([[0.5, -1.25]], dtype=np.float32),
        np.array([np.pi, 1e-300]),
    ],
    ids=["u1-3d", "u1-1d", "i2", "i4", "f4", "f8"],
)
def test_idx_round_trip(tmp_path, array, suffix):
    back = read_idx(write_idx(tmp_path / f"a-idx{suffix}", array))
    assert back.dtype == array.dtype and back.dtype.isnative
    assert np.array_equal(back, array)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x08\x03\x00\x00\x00\x01", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated inside its IDX header"),
        (idx_bytes(np.zeros((4, 2, 2), np.uint8))[:-3], "truncated"),
        (idx_bytes(np.zeros(3, np.uint8)) + b"\x00", "too long"),
        (gzip.compress(idx_bytes(np.zeros(50, np.uint8)))[:-10], "cannot read"),
        (b"", "not an IDX file"),
    ],
    ids=["magic", "type-code", "header", "data", "trailing", "gzip", "empty"],
)
def test_idx_corrupt_files_raise_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(PrunemipError) as error:
        read_idx(path)
    assert_one_line_error(error, str(path), fragment)


# ----------------------------------------------------------------------- local MNIST-style data
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"no local MNIST test split at {MNIST_DIR}")
def test_mnist_test_split_is_resplit_deterministically():
    train = load_dataset("mnist", "train", data_dir=MNIST_DIR)
    test = load_dataset("mnist", "test", data_dir=MNIST_DIR)
    assert (len(train), len(test)) == (8000, 2000)
    expected = {"source": "t10k", "seed": 0, "train": 8000, "test": 2000, "test_fraction": 0.2}
    assert train.provenance["resplit"] == expected == test.provenance["resplit"]
    assert all("t10k" in Path(f).name for f in test.provenance["files"])
    assert np.intersect1d(train.indices, test.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, test.indices), np.arange(10_000))
    raw_labels = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert np.array_equal(test.labels, raw_labels[test.indices])
    assert np.all(np.abs(np.bincount(test.labels) - 0.2 * np.bincount(raw_labels)) < 1.0)
    for ds in (train, test):
        assert ds.images.shape == (len(ds), 28, 28) and ds.image_shape == (28, 28)
        assert ds.images.min() == 0.0 and ds.images.max() == 1.0
        assert ds.classes == tuple(str(i) for i in range(10))
    again = load_dataset("mnist", "test", data_dir=MNIST_DIR)
    assert np.array_equal(again.images, test.images)
    other = load_dataset("mnist", "test", data_dir=MNIST_DIR, seed=1)
    assert not np.array_equal(other.indices, test.indices)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"no local MNIST test split at {MNIST_DIR}")
def test_mnist_found_through_environment_variable(monkeypatch):
    monkeypatch.setenv("PRUNEMIP_DATA_DIR", str(MNIST_DIR.parent))
    ds = load_dataset("mnist", "test")
    assert ds.provenance["folder"] == str(MNIST_DIR) and len(ds) == 2000


@pytest.mark.skipif(
    not FASHION_DIR.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)
def test_fashion_mnist_official_splits():
    test = load_dataset("fashion-mnist", "test")
    train = load_dataset("fashion-mnist", "train")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert "resplit" not in train.provenance and train.provenance["folder"] == str(FASHION_DIR)
    assert train.classes == test.classes == FASHION_MNIST_CLASSES
    assert test.classes[0] == "T-shirt/top" and test.classes[9] == "Ankle boot"
    assert np.array_equal(np.bincount(test.labels), np.full(10, 1000))
    assert np.array_equal(np.bincount(train.labels), np.full(10, 6000))
    assert test.images.shape == (10_000, 28, 28)
    assert 0 <= test.images.min() <= test.images.max() <= 1


def make_npz(path: Path, n_train: int, n_test: int, shape=(5, 5), seed=0, **extra) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % 4,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % 4,
        **extra,
    }
    np.savez(path, **arrays)
    return arrays


def test_npz_folder_via_data_dir(tmp_path):
    arrays = make_npz(tmp_path / "whatever.npz", 40, 12)
    test = load_dataset("myset", "test", data_dir=tmp_path)
    assert np.array_equal(test.images, arrays["x_test"] / 255.0) and test.image_shape == (5, 5)
    assert np.array_equal(test.labels, arrays["y_test"]) and test.classes == ("0", "1", "2", "3")
    assert test.provenance["format"] == "npz" and test.provenance["arrays"] == ["x_test", "y_test"]
    val = load_dataset("myset", "val", data_dir=tmp_path, val_fraction=0.25)
    assert len(val) == 10 and np.array_equal(val.images, arrays["x_train"][val.indices] / 255.0)


def test_npz_with_only_test_arrays_is_resplit(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "small.npz", x_test=rng.integers(0, 256, (50, 3), dtype=np.uint8), y_test=np.arange(50) % 5
    )
    train = load_dataset("small", "train", data_dir=tmp_path)
    assert (len(train), train.provenance["resplit"]["source"]) == (40, "t10k")


def test_npz_float_pixels_outside_unit_range_rejected(tmp_path):
    np.savez(tmp_path / "f.npz", x_test=np.full((3, 2), 2.0), y_test=np.zeros(3, np.int64))
    with pytest.raises(PrunemipError) as error:
        load_dataset("f", data_dir=tmp_path)
    assert_one_line_error(error, "f.npz", "[0, 1]")


def test_idx_folder_under_any_name(tmp_path):
    folder = tmp_path / "letters"
    folder.mkdir()
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 2, 2) * 10
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 0, 1, 2], np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[:3])
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([2, 1, 0], np.uint8))
    test = load_dataset("letters", "test", data_dir=tmp_path)  # found as <data_dir>/<name>
    assert np.array_equal(test.images, images[:3] / 255.0) and test.classes == ("0", "1", "2")
    assert "resplit" not in test.provenance
    assert len(load_dataset("letters", "train", data_dir=folder)) == 6


def test_half_a_split_names_the_missing_file(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(PrunemipError) as error:
        load_dataset("mnist", data_dir=tmp_path)
    assert_one_line_error(error, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte[.gz]")


def test_labels_must_match_images(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 12, 3], np.uint8))
    with pytest.raises(PrunemipError) as error:
        load_dataset("mnist", data_dir=tmp_path)
    assert_one_line_error(error, "3 images but 4 labels")


def test_missing_data_lists_files_folders_and_remedies(tmp_path, monkeypatch):
    with pytest.raises(PrunemipError) as error:
        load_dataset("mnist", data_dir=tmp_path)
    assert_one_line_error(
        error,
        "train-images-idx3-ubyte[.gz]",
        "t10k-labels-idx1-ubyte[.gz]",
        "x_train",
        f"in {tmp_path / 'mnist'}, {tmp_path};",
        "prunemip data download mnist",
        "download=True",
    )
    monkeypatch.setenv("PRUNEMIP_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path / "system")
    with pytest.raises(PrunemipError) as error:
        load_dataset("fashion-mnist", "train")
    assert_one_line_error(
        error,
        str(tmp_path / "env" / "fashion-mnist"),
        str(tmp_path / "system" / "fashion-mnist"),
        str(data._cache_root() / "fashion-mnist"),
        "apt-get install dataset-fashion-mnist",
    )


# ----------------------------------------------------------------------- download (no network)
def fake_mnist_files(n_train: int = 12, n_test: int = 6) -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    parts = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    return {name: gzip.compress(idx_bytes(array)) for name, array in parts.items()}


@pytest.fixture
def fake_server(monkeypatch):
    """Serve generated MNIST files, with their MD5 sums in the table; records fetched URLs."""
    files = fake_mnist_files()
    checksums = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    monkeypatch.setitem(data._DOWNLOADS, "mnist", ("https://mirror.invalid/mnist/", checksums))
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return files[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(data, "_fetch", fetch)
    return files, fetched


def test_download_writes_verified_files_and_skips_good_ones(tmp_path, fake_server):
    files, fetched = fake_server
    folder = download_dataset("mnist", tmp_path / "dest")
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert all((folder / name).read_bytes() == body for name, body in files.items())
    assert len(fetched) == 4
    download_dataset("mnist", tmp_path / "dest")
    assert len(fetched) == 4


def test_download_default_destination_is_the_cache(fake_server):
    assert download_dataset("mnist") == data._cache_root() / "mnist"
    assert len(load_dataset("mnist", "train")) == 12


def test_download_rejects_wrong_checksum(tmp_path, monkeypatch, fake_server):
    files, _ = fake_server

    def fetch(url: str) -> bytes:
        name = url.rsplit("/", 1)[1]
        return files[name] if name.startswith("train-images") else b"corrupted"

    monkeypatch.setattr(data, "_fetch", fetch)
    with pytest.raises(PrunemipError) as error:
        download_dataset("mnist", tmp_path)
    assert_one_line_error(error, "checksum mismatch", "/mnist/train-labels-idx1-ubyte.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["train-images-idx3-ubyte.gz"]


def test_load_with_download_fetches_into_data_dir(tmp_path, fake_server):
    _, fetched = fake_server
    test = load_dataset("mnist", "test", data_dir=tmp_path, download=True)
    assert (len(test), test.provenance["folder"]) == (6, str(tmp_path)) and len(fetched) == 4
    assert "resplit" not in test.provenance


def test_network_failure_is_one_line(monkeypatch, tmp_path):
    def refuse(url, timeout):
        raise urllib.error.URLError("name or service not known\nsecond line")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    with pytest.raises(PrunemipError) as error:
        download_dataset("fashion-mnist", tmp_path)
    assert_one_line_error(error, "could not download", "fashion-mnist", "not known")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PrunemipError) as error:
        download_dataset("digits", tmp_path)
    assert_one_line_error(error, "cannot download 'digits'")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, fake_server):
    def broken_replace(self, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.Path, "replace", broken_replace)
    with pytest.raises(PrunemipError) as error:
        download_dataset("mnist", tmp_path)
    assert_one_line_error(error, "cannot write", "No space left on device")
    assert list(tmp_path.iterdir()) == []
