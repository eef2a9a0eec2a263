"""The datasets nnlab trains on: torchvision's image classification sets by name, the
bundled sample, an image folder (`folder:PATH`) or a user's arrays (`npz:PATH`).

`describe` says what a dataset is (image shape, classes, how many images) cheaply, from
static facts, file headers and label arrays, so a run's config is fitted to its data and
a set too big for memory is refused before anything is loaded or written. `load_raw`
reads the images themselves as uint8 arrays (N, C, H, W).
"""

from __future__ import annotations

import difflib
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from nnlab.data import fileformats as ff
from nnlab.helpers.errors import NnlabError, did_you_mean

DIGITS = tuple(str(i) for i in range(10))
CIFAR100 = tuple(
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach "
    "couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster "
    "house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree "
    "motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear "
    "pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket "
    "rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar "
    "sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip "
    "turtle wardrobe whale willow_tree wolf woman worm".split()
)
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEBIAN_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
DOWNLOAD_TIMEOUT_S = 15
SAMPLE_TEST_SHARE = 0.2  # mnist-sample: 400 train + 100 test images of each digit
# What a dataset's classes may be: pictures draw a legend entry and metrics a row per
# class, and every run keeps the names.
MAX_CLASSES = 10_000
MAX_CLASS_NAME = 256  # characters (a folder's name may have 255)
SPLIT_SEED = 5000  # fixed: a dataset's train/test split never depends on a run's seed
TEST_SHARE = 0.2  # of a folder or npz without a test split of its own
# A dataset lives in memory twice while it is loaded (uint8 arrays, float32 tensors):
# refuse one that would take more than this share of the machine's memory.
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Known:
    """A dataset nnlab knows by name: its format, torchvision class, shape and classes."""

    title: str
    kind: str  # a key of RELEASES (idx, emnist, cifar10, cifar100, svhn), or sample
    torchvision: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    sizes: tuple[int, int]  # train and test images


KNOWN = {
    "mnist": Known("MNIST", "idx", "MNIST", (1, 28, 28), DIGITS, (60000, 10000)),
    "fashion-mnist": Known(
        "Fashion-MNIST",
        "idx",
        "FashionMNIST",
        (1, 28, 28),
        (
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
        ),
        (60000, 10000),
    ),
    "kmnist": Known(
        "Kuzushiji-MNIST",
        "idx",
        "KMNIST",
        (1, 28, 28),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        (60000, 10000),
    ),
    "emnist-balanced": Known(
        "EMNIST Balanced",
        "emnist",
        "EMNIST",
        (1, 28, 28),
        tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"),
        (112800, 18800),
    ),
    "cifar10": Known(
        "CIFAR-10",
        "cifar10",
        "CIFAR10",
        (3, 32, 32),
        (
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        (50000, 10000),
    ),
    "cifar100": Known("CIFAR-100", "cifar100", "CIFAR100", (3, 32, 32), CIFAR100, (50000, 10000)),
    "svhn": Known("SVHN", "svhn", "SVHN", (3, 32, 32), DIGITS, (73257, 26032)),
    "mnist-sample": Known("MNIST sample", "sample", "", (1, 28, 28), DIGITS, (4000, 1000)),
}
NAMES = tuple(KNOWN)


@dataclass
class Description:
    """What a dataset is, known before its images are read."""

    name: str
    shape: tuple[int, int, int]  # channels, height, width (after any resize)
    classes: list[str]
    sizes: tuple[int, int]  # train and test images (test 0: split off the train images)
    # folder: the files and labels found; npz: the labels read (the images are not)
    files: dict = field(default_factory=dict, repr=False)


@dataclass
class RawData:
    """The images and labels of a dataset's two splits, and where they came from."""

    name: str
    train_images: np.ndarray  # (N, C, H, W) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    classes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Channels, height and width of every image."""
        return tuple(int(s) for s in self.train_images.shape[1:])


def is_valid_name(name: str) -> bool:
    """Whether `name` is a dataset nnlab knows or a folder:/npz: path (not yet checked)."""
    return name in KNOWN or any(name.startswith(p) and len(name) > len(p) for p in PREFIXES)


def name_problem(name: str) -> str:
    """Why a --dataset value is not one (for the config's check), with the right names."""
    close = difflib.get_close_matches(name, NAMES, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}choose from: {', '.join(NAMES)}, folder:PATH or npz:PATH"


def class_names(name: str) -> list[str]:
    """The display names of a named dataset's classes (a folder's or npz's come from
    describe(), and are kept with each run's probe)."""
    return list(KNOWN[name].classes) if name in KNOWN else []


def memory_bytes() -> int | None:
    """The machine's physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(d: Description, where: str) -> None:
    """Refuse a dataset whose uint8 images and float32 tensors would take more than
    MEMORY_SHARE of the machine's memory, naming its size."""
    images = d.sizes[0] + d.sizes[1]
    need = images * int(np.prod(d.shape)) * 5  # 1 byte raw + 4 bytes as a tensor
    memory = memory_bytes()
    if memory and need > MEMORY_SHARE * memory:
        c, h, w = d.shape
        raise NnlabError(
            f"{where}: {images:,} images of {c}x{h}x{w} need ~{need / 2**30:,.1f} GiB in memory; "
            f"nnlab keeps a dataset in memory and allows at most {MEMORY_SHARE:.0%} of this "
            f"machine's {memory / 2**30:,.1f} GiB (use fewer or smaller images: --image_size)"
        )


def default_data_dir() -> Path:
    """$NNLAB_DATA, or ~/.cache/nnlab/data."""
    env = os.environ.get("NNLAB_DATA")
    return Path(env) if env else Path.home() / ".cache" / "nnlab" / "data"


def describe(name: str, data_dir: str | Path | None = None, image_size: int = 0) -> Description:
    """The shape, classes and size of dataset `name`, from facts and headers; refuses a
    bad folder or npz and a set too big for memory in one line."""
    own = _own_format(name)
    if own is not None:
        d = own.describe(name, image_size)
        _check_splits(d, name)
    elif name in KNOWN:
        k = KNOWN[name]
        d = Description(name, k.shape, list(k.classes), k.sizes)
    else:
        raise NnlabError(f"unknown dataset '{name}'{did_you_mean(name, NAMES)}")
    if image_size and not (own and own.resizes):
        raise NnlabError(f"--image_size resizes the images of a folder: dataset, not of {name}")
    check_memory(d, name)
    return d


def _check_splits(d: Description, name: str) -> None:
    """Refuse a dataset of the user's with no image to train or to test on (evaluation and
    the probe need test images), before any run exists."""
    train, test = d.sizes
    if train < 1:
        raise NnlabError(f"{name}: no images to train on")
    if test < 1:
        raise NnlabError(
            f"{name}: no test images: give a test split (x_test and y_test, or a test/ "
            "folder), or at least two images of a class (a fifth of each class is held out)"
        )


def load_raw(
    name: str, data_dir: str | Path | None = None, *, image_size: int = 0, warn=None
) -> RawData:
    """The images of dataset `name` (found, or downloaded where torchvision can); mnist
    falls back to the bundled sample with a warning."""
    own = _own_format(name)
    if own is not None:
        return own.load(describe(name, data_dir, image_size), image_size)
    if name not in KNOWN:
        raise NnlabError(f"unknown dataset '{name}'{did_you_mean(name, NAMES)}")
    known = KNOWN[name]
    if known.kind == "sample":
        return load_sample()
    root = Path(data_dir) if data_dir else default_data_dir()
    found = _find(name, root)
    if found is None and _try_download(name, root):
        found = _find(name, root)
    if found is not None:
        raw = _read_found(name, found)
        raw.classes = list(known.classes)
        return raw
    if name == "mnist":
        (warn or _stderr)(
            f"warning: MNIST not found in {root / 'MNIST' / 'raw'} (nor {root / 'mnist'}) and "
            "could not be downloaded; training on the bundled mnist-sample (5,000 digits) "
            f"instead. For full MNIST put the four IDX files in {root / 'MNIST' / 'raw'} or "
            "run once with network access."
        )
        return load_sample()
    raise NnlabError(
        f"dataset '{name}' not found and could not be downloaded: {_where(name, root)}"
    )


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# ------------------------------------------------------------------ the named sets


def load_sample() -> RawData:
    """The bundled 5,000 MNIST digits, split stratified into 4,000 train and 1,000 test."""
    path = resources.files("nnlab") / "assets" / "mnist-5k.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    test = held_out(labels, SAMPLE_TEST_SHARE)
    images = images[:, None]
    return RawData(
        "mnist-sample",
        images[~test],
        labels[~test].astype(np.int64),
        images[test],
        labels[test].astype(np.int64),
        "bundled sample",
        list(DIGITS),
    )


def _idx_names(name: str) -> tuple[str, ...]:
    if KNOWN[name].kind == "emnist":
        split = name.split("-", 1)[1]
        return tuple(
            f"emnist-{split}-{part}-{kind}-ubyte"
            for part in ("train", "test")
            for kind in ("images-idx3", "labels-idx1")
        )
    return IDX_FILES


def _find(name: str, root: Path) -> tuple[str, list[Path]] | None:
    for kind, files in _candidates(name, root):
        if all(f.is_file() for f in files):
            return kind, files
    return None


def _idx_candidates(name: str, root: Path) -> list[tuple[str, list[Path]]]:
    k = KNOWN[name]
    files = _idx_names(name)
    folders = [root / k.torchvision / "raw", root / k.torchvision, root / name]
    if name in DEBIAN_DIRS:
        folders.append(Path(DEBIAN_DIRS[name]))
    out = []
    for folder in folders:
        out.append(("idx", [folder / f for f in files]))
        out.append(("idx", [folder / (f + ".gz") for f in files]))
    return out


def _idx_where(name: str, root: Path) -> str:
    files = ", ".join(_idx_names(name))
    text = f"put {files} (or the .gz files) in {root / KNOWN[name].torchvision / 'raw'}"
    if name in DEBIAN_DIRS:
        text += f" (or apt-get install dataset-{name}, into {DEBIAN_DIRS[name]})"
    return text + " or run once with network access"


def _read_idx(name: str, fmt: str, files: list[Path]) -> RawData:
    k = KNOWN[name]
    most = sum(k.sizes) * int(np.prod(k.shape))  # no file of the set holds more bytes
    arrays = [ff.read_idx(f, most) for f in files]
    train, test = arrays[0][:, None], arrays[2][:, None]
    if KNOWN[name].kind == "emnist":  # EMNIST stores each image transposed
        train, test = train.transpose(0, 1, 3, 2), test.transpose(0, 1, 3, 2)
    return RawData(
        name,
        np.ascontiguousarray(train),
        arrays[1].astype(np.int64),
        np.ascontiguousarray(test),
        arrays[3].astype(np.int64),
        str(files[0].parent),
    )


def _cifar10_candidates(name: str, root: Path) -> list[tuple[str, list[Path]]]:
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return [
        ("cifar-bin", [root / "cifar-10-batches-bin" / f"{b}.bin" for b in batches]),
        ("cifar-py", [root / "cifar-10-batches-py" / b for b in batches]),
    ]


def _cifar100_candidates(name: str, root: Path) -> list[tuple[str, list[Path]]]:
    return [
        ("cifar-bin", [root / "cifar-100-binary" / f for f in ("train.bin", "test.bin")]),
        ("cifar-py", [root / "cifar-100-python" / f for f in ("train", "test")]),
    ]


def _cifar_where(name: str, root: Path) -> str:
    release, binary, python = {
        "cifar10": ("CIFAR-10", "cifar-10-batches-bin", "cifar-10-batches-py"),
        "cifar100": ("CIFAR-100", "cifar-100-binary", "cifar-100-python"),
    }[KNOWN[name].kind]
    archive = "cifar-10-binary.tar.gz" if release == "CIFAR-10" else "cifar-100-binary.tar.gz"
    return (
        f"extract {release}'s binary release ({archive}) into {root}, giving "
        f"{root / binary}, or torchvision's python release "
        f"({root / python}), or run once with network access"
    )


def _read_cifar(name: str, fmt: str, files: list[Path]) -> RawData:
    hundred = KNOWN[name].kind == "cifar100"
    if fmt == "cifar-bin":
        parts = [ff.read_cifar_binary(f, 2 if hundred else 1) for f in files]
    else:
        parts = [ff.read_cifar_python(f, "fine_labels" if hundred else "labels") for f in files]
    n_classes = len(KNOWN[name].classes)
    for path, (_, labels) in zip(files, parts, strict=True):
        bad = labels[(labels < 0) | (labels >= n_classes)]
        if len(bad):
            raise NnlabError(
                f"{path}: label {int(bad[0])} is not one of {name}'s {n_classes} classes "
                f"(0 to {n_classes - 1}); the file is damaged or not {KNOWN[name].title}'s"
            )
    train = parts[:-1]
    return RawData(
        name,
        np.concatenate([p[0] for p in train]),
        np.concatenate([p[1] for p in train]),
        parts[-1][0],
        parts[-1][1],
        str(files[0].parent),
    )


def _svhn_candidates(name: str, root: Path) -> list[tuple[str, list[Path]]]:
    files = ("train_32x32.mat", "test_32x32.mat")
    return [("mat", [folder / f for f in files]) for folder in (root, root / "svhn")]


def _svhn_where(name: str, root: Path) -> str:
    return f"put train_32x32.mat and test_32x32.mat in {root}, or run once with network access"


def _read_svhn(name: str, fmt: str, files: list[Path]) -> RawData:
    k = KNOWN[name]
    most = 2 * sum(k.sizes) * (int(np.prod(k.shape)) + 8) + 2**20  # images, labels, slack
    (tx, ty), (sx, sy) = (ff.read_svhn_mat(f, most) for f in files)
    return RawData(name, tx, ty, sx, sy, str(files[0].parent))


@dataclass(frozen=True)
class Release:
    """How the files of one kind of named set lie on disk and are read: the places to
    look, each a (file format, files) in order of preference; what to tell a user whose
    files are missing; and the reader of what was found."""

    candidates: Callable[[str, Path], list[tuple[str, list[Path]]]]
    where: Callable[[str, Path], str]
    read: Callable[[str, str, list[Path]], RawData]


# Known.kind -> its release: a new kind of named set is one entry here (mnist-sample, the
# bundled sample, is read by load_sample)
RELEASES = {
    "idx": Release(_idx_candidates, _idx_where, _read_idx),
    "emnist": Release(_idx_candidates, _idx_where, _read_idx),
    "cifar10": Release(_cifar10_candidates, _cifar_where, _read_cifar),
    "cifar100": Release(_cifar100_candidates, _cifar_where, _read_cifar),
    "svhn": Release(_svhn_candidates, _svhn_where, _read_svhn),
}


def _candidates(name: str, root: Path) -> list[tuple[str, list[Path]]]:
    """(format, files) for each place the dataset's files may lie, in order of preference."""
    return RELEASES[KNOWN[name].kind].candidates(name, root)


def _where(name: str, root: Path) -> str:
    """Which files to put where, for the error saying a named set is missing."""
    return RELEASES[KNOWN[name].kind].where(name, root)


def _read_found(name: str, found: tuple[str, list[Path]]) -> RawData:
    fmt, files = found
    return RELEASES[KNOWN[name].kind].read(name, fmt, files)


# Where torchvision downloads each dataset from (its first mirror's host; checked against
# torchvision's own URLs by tests/test_catalog.py): reached, or not, before torch loads.
DOWNLOAD_HOSTS = {
    "mnist": "ossci-datasets.s3.amazonaws.com",
    "fashion-mnist": "fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    "kmnist": "codh.rois.ac.jp",
    "emnist-balanced": "biometrics.nist.gov",
    "cifar10": "www.cs.toronto.edu",
    "cifar100": "www.cs.toronto.edu",
    "svhn": "ufldl.stanford.edu",
}
REACH_TIMEOUT_S = 3.0


def reachable(name: str) -> bool:
    """Whether the host a named dataset downloads from answers (a TCP connection within
    REACH_TIMEOUT_S; never with NNLAB_OFFLINE set)."""
    host = DOWNLOAD_HOSTS.get(name)
    if os.environ.get("NNLAB_OFFLINE") or host is None:
        return False
    try:
        socket.create_connection((host, 443), timeout=REACH_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def precheck(name: str, data_dir: str | Path | None = None) -> None:
    """Before anything heavy loads: a named dataset that is neither on disk nor reachable
    for download is refused in one line, as load_raw would refuse it after loading torch
    (mnist still falls back to the bundled sample, with its warning, at load time)."""
    if _own_format(name) is not None or name not in KNOWN or name == "mnist":
        return
    if KNOWN[name].kind == "sample":
        return
    root = Path(data_dir) if data_dir else default_data_dir()
    if _find(name, root) is None and not reachable(name):
        raise NnlabError(
            f"dataset '{name}' not found and could not be downloaded: {_where(name, root)}"
        )


def _try_download(name: str, root: Path) -> bool:
    """Let torchvision fetch the dataset's files, bounded in time; False when it cannot.
    Only the downloaders run: torchvision's CIFAR classes would unpickle the batches."""
    if not reachable(name):  # offline: say so without loading torchvision
        return False
    from torchvision import datasets
    from torchvision.datasets import utils

    k = KNOWN[name]
    cls = getattr(datasets, k.torchvision)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # offline machines must not hang here
    try:
        if k.kind == "idx":
            cls(str(root), train=True, download=True)
        elif k.kind == "emnist":
            cls(str(root), split=name.split("-", 1)[1], train=True, download=True)
        elif k.kind in ("cifar10", "cifar100"):
            utils.download_and_extract_archive(
                cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5
            )
        else:
            for split in ("train", "test"):
                url, filename, md5 = cls.split_list[split]
                utils.download_url(url, str(root), filename, md5)
        return True
    except Exception:
        return False
    finally:
        socket.setdefaulttimeout(old)


# ------------------------------------------------------------------ folder: and npz:


def _path_of(name: str) -> Path:
    return Path(name.split(":", 1)[1]).expanduser()


def held_out(labels: np.ndarray, share: float, seed: int = SPLIT_SEED) -> np.ndarray:
    """A seeded, class-stratified mask of the images held out for testing: `share` of each
    class (at least one of a class with two or more images)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(share * len(members)))
        k = max(k, 1) if len(members) > 1 else 0
        test[rng.choice(members, k, replace=False)] = True
    return test


GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _describe_folder(name: str, image_size: int) -> Description:
    root = _path_of(name)
    where = f"folder:{root}"
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    parts = {"train": root / "train", "test": root / "test"} if has_splits else {"all": root}
    classes = ff.folder_classes(parts.get("train", root), where)
    found = {}
    for part, folder in parts.items():
        if part == "test":
            extra = sorted(set(ff.folder_classes(folder, f"{where}/test")) - set(classes))
            if extra:
                raise NnlabError(f"{where}/test: class folders {extra} are not in train/")
            present = [c for c in classes if (folder / c).is_dir()]
            files, labels = ff.folder_files(folder, present, f"{where}/test")
            labels = np.array([classes.index(present[i]) for i in labels], dtype=np.int64)
        else:
            files, labels = ff.folder_files(folder, classes, where)
        found[part] = (files, labels)
    sizes, modes = {}, set()
    for files, _ in found.values():
        for f in files:
            size, mode = ff.image_header(f)
            sizes.setdefault(size, f)
            modes.add(mode)
    if len(sizes) > 1 and not image_size:
        (a, fa), (b, fb) = list(sizes.items())[:2]
        raise NnlabError(
            f"{where}: images of different sizes ({fa.name} is {a[0]}x{a[1]}, {fb.name} is "
            f"{b[0]}x{b[1]}); give --image_size=N to resize every image to N x N"
        )
    width, height = (image_size, image_size) if image_size else next(iter(sizes))
    channels = 1 if modes <= GREY_MODES else 3
    if has_splits:
        counts = (len(found["train"][0]), len(found["test"][0]))
    else:
        test = held_out(found["all"][1], TEST_SHARE)
        counts = (int((~test).sum()), int(test.sum()))
    return Description(name, (channels, height, width), classes, counts, found)


def _load_folder(d: Description, image_size: int) -> RawData:
    channels = d.shape[0]
    if "all" in d.files:
        files, labels = d.files["all"]
        images = ff.read_images(files, channels, image_size)
        test = held_out(labels, TEST_SHARE)
        parts = (images[~test], labels[~test], images[test], labels[test])
    else:
        (tf, tl), (sf, sl) = d.files["train"], d.files["test"]
        parts = (
            ff.read_images(tf, channels, image_size),
            tl,
            ff.read_images(sf, channels, image_size),
            sl,
        )
    return RawData(d.name, *parts, str(_path_of(d.name)), list(d.classes))


def _describe_npz(name: str) -> Description:
    path = _path_of(name)
    where = f"npz:{path}"
    heads = ff.npz_headers(path)
    for key in ("x", "y"):
        if key not in heads:
            raise NnlabError(f"{where}: no array '{key}' (has: {', '.join(sorted(heads))})")
    if ("x_test" in heads) != ("y_test" in heads):
        raise NnlabError(f"{where}: give both x_test and y_test, or neither")
    for key, (_, dtype) in heads.items():
        if dtype.hasobject:
            raise NnlabError(
                f"{where}: array '{key}' holds Python objects (it would have to be "
                "unpickled); save plain numeric arrays"
            )
    shapes = _npz_shapes(heads, where)
    image_shapes = {(1, *s[1:]) if len(s) == 3 else tuple(s[1:]) for s in shapes}
    if len(image_shapes) > 1:
        shapes_text = sorted(image_shapes)
        raise NnlabError(f"{where}: 'x' and 'x_test' images differ in shape {shapes_text}")
    shape = next(iter(image_shapes))
    # refused on the headers' word, before the labels (as long as the images) are read
    check_memory(Description(name, shape, [], (shapes[0][0], sum(s[0] for s in shapes[1:]))), where)
    labels = {
        k: ff.read_npz_member(path, k).astype(np.int64) for k in ("y", "y_test") if k in heads
    }
    if "classes" in heads:
        _check_class_names(heads["classes"], where)  # from its header, before it is read
        classes = [str(c) for c in ff.read_npz_member(path, "classes").reshape(-1)]
    else:
        top = int(max(v.max(initial=0) for v in labels.values()))
        if top >= MAX_CLASSES:
            raise NnlabError(
                f"{where}: label {top} implies {top + 1:,} classes; nnlab draws at most "
                f"{MAX_CLASSES:,} (number the classes from 0)"
            )
        classes = [str(i) for i in range(top + 1)]
    for key, y in labels.items():
        outside = y[(y < 0) | (y >= len(classes))]
        if len(outside):
            raise NnlabError(
                f"{where}: '{key}' has label {int(outside[0])}, outside the {len(classes)} "
                f"classes (0 to {len(classes) - 1})"
            )
    if len(classes) < 2:
        raise NnlabError(f"{where}: a classifier needs at least two classes, found {len(classes)}")
    n = shapes[0][0]
    if "y_test" in labels:
        sizes = (n, shapes[1][0])
    else:
        test = held_out(labels["y"], TEST_SHARE)
        sizes = (int((~test).sum()), int(test.sum()))
    return Description(name, shape, classes, sizes, labels)


def _check_class_names(head: tuple, where: str) -> None:
    """Refuse, from the npz header alone, a 'classes' array of more than MAX_CLASSES names
    or of names longer than MAX_CLASS_NAME characters (each would be kept in every run)."""
    shape, dtype = head
    count = int(np.prod(shape)) if len(shape) else 1
    if count > MAX_CLASSES:
        raise NnlabError(f"{where}: 'classes' declares {count:,} names; at most {MAX_CLASSES:,}")
    chars = dtype.itemsize // 4 if dtype.kind == "U" else dtype.itemsize
    if dtype.kind not in "US":
        raise NnlabError(f"{where}: 'classes' is {dtype}; give the class names as text")
    if chars > MAX_CLASS_NAME:
        raise NnlabError(
            f"{where}: 'classes' holds names of up to {chars:,} characters; at most "
            f"{MAX_CLASS_NAME} each"
        )


def _npz_shapes(heads: dict, where: str) -> list[tuple]:
    """The shapes of 'x' and 'x_test' (when given) from the npz headers, each checked:
    images of 1 or 3 channels, uint8 or floats, one whole-number label each."""
    shapes = []
    for xk, yk in (("x", "y"), ("x_test", "y_test")):
        if xk not in heads:
            continue
        (xs, xd), (ys, yd) = heads[xk], heads[yk]
        if len(xs) not in (3, 4) or (len(xs) == 4 and xs[1] not in (1, 3)):
            raise NnlabError(
                f"{where}: '{xk}' has shape {xs}; expected N x H x W or N x C x H x W (C 1 or 3)"
            )
        if not (xd == np.uint8 or xd.kind == "f"):
            raise NnlabError(f"{where}: '{xk}' is {xd}; use uint8, or floats in [0, 1]")
        if len(ys) != 1:
            raise NnlabError(
                f"{where}: '{yk}' has shape {ys}; labels are one whole number per image"
            )
        if ys[0] != xs[0]:
            raise NnlabError(
                f"{where}: '{xk}' holds {xs[0]:,} images but '{yk}' {ys[0] if ys else 0:,} labels"
            )
        if yd.kind not in "iu":
            raise NnlabError(f"{where}: '{yk}' is {yd}; labels must be whole numbers")
        shapes.append(xs)
    return shapes


def _as_bytes(x: np.ndarray, where: str, key: str) -> np.ndarray:
    """User images as (N, C, H, W) uint8: floats must lie in [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if len(x) and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise NnlabError(f"{where}: '{key}' holds floats outside [0, 1]; scale them, or use uint8")
    return np.ascontiguousarray((x * 255).round().astype(np.uint8))


def _load_npz(d: Description) -> RawData:
    path = _path_of(d.name)
    where = f"npz:{path}"
    x = _as_bytes(ff.read_npz_member(path, "x"), where, "x")
    y = d.files["y"]
    if "y_test" in d.files:
        sx = _as_bytes(ff.read_npz_member(path, "x_test"), where, "x_test")
        parts = (x, y, sx, d.files["y_test"])
    else:
        test = held_out(y, TEST_SHARE)
        parts = (x[~test], y[~test], x[test], y[test])
    return RawData(d.name, *parts, str(path), list(d.classes))


@dataclass(frozen=True)
class OwnFormat:
    """A dataset of the user's, named by a prefix and a path: its description from its own
    files (refused in one line when they are not usable) and its loading."""

    describe: Callable[[str, int], Description]  # (name, image_size)
    load: Callable[[Description, int], RawData]  # (description, image_size)
    resizes: bool  # whether --image_size applies


# prefix -> format: a new kind of user dataset is one entry here
OWN_FORMATS = {
    "folder:": OwnFormat(_describe_folder, _load_folder, resizes=True),
    "npz:": OwnFormat(lambda name, size: _describe_npz(name), lambda d, size: _load_npz(d), False),
}
PREFIXES = tuple(OWN_FORMATS)


def _own_format(name: str) -> OwnFormat | None:
    """The user format a dataset name starts with, or None."""
    return next((f for p, f in OWN_FORMATS.items() if name.startswith(p)), None)
