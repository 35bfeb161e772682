"""The tensors of a PyTorch checkpoint in torch's legacy (non-zip) format, read with pickle and numpy alone.

``make encoder`` reads the pretrained speaker encoder shipped in the Resemblyzer wheel this way, so
neither the project nor its users ever need torch. The file is five pickles in a row, then the raw
storages (``torch/serialization.py``, ``_legacy_load``): a magic number, a protocol version, system
information, the object (whose tensors name their storages by persistent id), the list of storage
keys; then, for each key in that order, an int64 element count and the little-endian elements.

A pickle can run any code it names, so the unpickler here names only what a state dict needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the storage classes) and
refuses everything else with :class:`BadCheckpointError` before calling it: a hostile ``.pt`` runs no
code.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np

from .errors import AcousticsError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
#: torch's storage classes and the numpy types of their elements (little-endian).
STORAGE_TYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}
#: A checkpoint's storages may hold at most this many bytes in all (the GE2E file holds 17 MB).
MAX_BYTES = 1 << 30


class BadCheckpointError(AcousticsError):
    """A file is not a legacy PyTorch checkpoint this reader accepts (damaged, foreign, or naming code)."""


class _Storage:
    """A storage named by the pickled object; its elements are read after the pickles."""

    def __init__(self, dtype: np.dtype, size: int) -> None:
        self.dtype, self.size, self.data = dtype, int(size), None


class _Tensor:
    """A tensor as the pickle describes it; :func:`_materialise` turns it into a numpy array."""

    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, int(offset), tuple(shape), tuple(stride)


def _rebuild_tensor(storage, offset, shape, stride, *unused):
    if not isinstance(storage, _Storage):
        raise BadCheckpointError("a tensor refers to something that is not a storage")
    return _Tensor(storage, offset, shape, stride)


class _StorageType:
    """A storage class the pickle names (``torch.FloatStorage``): only the type of its elements matters."""

    def __init__(self, name: str) -> None:
        self.dtype = STORAGE_TYPES[name]


class _Unpickler(pickle.Unpickler):
    """An unpickler that knows a state dict's few classes and nothing else."""

    def __init__(self, stream, storages: dict) -> None:
        super().__init__(stream)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_TYPES:
            return _StorageType(name)
        raise BadCheckpointError(f"it names {module}.{name}, which a checkpoint of weights does not need")

    def persistent_load(self, persistent_id):
        # ('storage', type, key, location, size, view): views of other storages are not supported
        if (not isinstance(persistent_id, tuple) or len(persistent_id) not in (5, 6) or persistent_id[0] != "storage"
                or not isinstance(persistent_id[1], _StorageType) or persistent_id[5:] not in ((), (None,))
                or not isinstance(persistent_id[4], int) or persistent_id[4] < 0):
            raise BadCheckpointError("a storage reference of an unknown form")
        _, storage_type, key, _location, size = persistent_id[:5]
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, size)
        return self.storages[key]


def read_checkpoint(path) -> object:
    """The object saved in the legacy PyTorch checkpoint ``path``, with every tensor as a numpy array.

    Raises :class:`BadCheckpointError` naming the file for anything else: a zip checkpoint, a damaged
    or cut-short file, or a pickle that names any class outside the allow-list.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadCheckpointError(f"{path}: cannot be read ({error.strerror or error}).") from None
    stream = io.BytesIO(data)
    storages: dict = {}
    try:
        header = [_Unpickler(stream, storages).load() for _ in range(3)]
        if header[0] != MAGIC_NUMBER or header[1] != PROTOCOL_VERSION:
            raise BadCheckpointError("it does not begin with the magic number and protocol of a legacy checkpoint")
        if not isinstance(header[2], dict) or not header[2].get("little_endian", False):
            raise BadCheckpointError("it was saved on a big-endian machine or without system information")
        result = _Unpickler(stream, storages).load()
        keys = _Unpickler(stream, storages).load()
        if not isinstance(keys, list) or set(keys) != set(storages):
            raise BadCheckpointError("its list of storages does not match the tensors")
        total = 0
        for key in keys:
            storage = storages[key]
            count = int(np.frombuffer(stream.read(8), dtype="<i8")[0])
            total += count * storage.dtype.itemsize
            if count != storage.size or total > MAX_BYTES:
                raise BadCheckpointError("a storage's size is not the one its tensors name")
            raw = stream.read(count * storage.dtype.itemsize)
            if len(raw) != count * storage.dtype.itemsize:
                raise BadCheckpointError("it is cut short")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
        return _materialise(result)
    except BadCheckpointError as error:
        raise BadCheckpointError(f"{path}: not a PyTorch checkpoint of weights this project reads: {error}.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
        raise BadCheckpointError(f"{path}: not a PyTorch checkpoint of weights this project reads, or damaged ({error}).") from None


def _materialise(value):
    """``value`` with every :class:`_Tensor` in it replaced by a numpy array (a copy, in C order)."""
    if isinstance(value, _Tensor):
        storage = value.storage
        itemsize = storage.dtype.itemsize
        if value.offset < 0 or any(size < 0 for size in value.shape) or any(step < 0 for step in value.stride):
            raise BadCheckpointError("a tensor with a negative size, offset or stride")
        last = value.offset + sum((size - 1) * step for size, step in zip(value.shape, value.stride)) if all(value.shape) else value.offset - 1
        if last >= storage.size:
            raise BadCheckpointError("a tensor reaches past the end of its storage")
        view = np.lib.stride_tricks.as_strided(storage.data[value.offset:], shape=value.shape,
                                               strides=tuple(step * itemsize for step in value.stride), writeable=False)
        return np.array(view)
    if isinstance(value, dict):
        return type(value)((key, _materialise(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(item) for item in value)
    return value
