"""Read a legacy (non-zip) `torch.save` state dict into NumPy arrays, without torch and without
running code from the file.

The legacy format is five pickles and the raw storages, back to back:
  magic number, protocol version, system info (byte order, C type sizes), the main object (here
  an OrderedDict of tensors whose storages are persistent ids), the list of storage keys; then,
  for each key in that order, an int64 element count followed by the storage's bytes.

Every pickle goes through RestrictedUnpickler, whose `find_class` resolves only OrderedDict, the
tensor-rebuild function and the storage types, each mapped to a local stand-in that records data
and calls nothing. A pickle naming anything else (`os.system`, `builtins.eval`, ...) is refused
before the name is even looked up. The zip format of torch >= 1.6 is not read: it is refused with
a message.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct

import jax.numpy as jnp
import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


class TorchFileError(ValueError):
    """The file is not a readable legacy torch.save state dict (wrong file, truncated, zip)."""


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing from it was executed."""


@dataclasses.dataclass(frozen=True)
class StorageType:
    """Stand-in for torch.FloatStorage and friends: only the element type."""
    name: str
    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclasses.dataclass(frozen=True)
class TensorRef:
    """What torch._utils._rebuild_tensor_v2 would build: a strided view of a storage."""
    storage: StorageRef
    offset: int
    shape: tuple
    stride: tuple


STORAGE_TYPES = {name: StorageType(name, np.dtype(dtype)) for name, dtype in {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": jnp.bfloat16, "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?"}.items()}


def _rebuild_tensor(storage, offset, shape, stride, requires_grad=False, hooks=None,
                    metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2: checks the arguments, records the view."""
    del requires_grad, hooks, metadata  # training-time details with no bearing on the values
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError(f"tensor over a {type(storage).__name__}, not a storage")
    ints = (offset, *shape, *stride)
    if not all(isinstance(v, int) and v >= 0 for v in ints) or len(shape) != len(stride):
        raise pickle.UnpicklingError(f"bad tensor layout: offset {offset}, shape {shape}, "
                                     f"stride {stride}")
    return TensorRef(storage, offset, tuple(shape), tuple(stride))


ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
           ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
           **{("torch", name): t for name, t in STORAGE_TYPES.items()}}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in `allowed`; storages come as persistent ids."""

    def __init__(self, file, *, source: str, allowed: dict):
        super().__init__(file)
        self.source = source
        self.allowed = allowed

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"refused to load {module}.{name} from {self.source}: this reader admits only "
                "OrderedDict, tensors and storages. The file is either not a state dict or was "
                f"tampered with (torch.load would call {module}.{name}).") from None

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0 and pid[5] is None):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return StorageRef(pid[2], pid[1].dtype, pid[4])


def _unpickle(stream, source: str, allowed: dict):
    return RestrictedUnpickler(stream, source=source, allowed=allowed).load()


def _view(ref: TensorRef, storage: np.ndarray) -> np.ndarray:
    extent = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride)) + 1
    if 0 not in ref.shape and extent > storage.size:
        raise pickle.UnpicklingError(f"tensor runs past its storage {ref.storage.key}")
    items = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], ref.shape,
                                           [s * items for s in ref.stride], writeable=False)
    return np.array(view)  # a contiguous copy that owns its memory


def _read_storages(stream, keys, refs: dict, source: str) -> dict:
    storages = {}
    for key in keys:
        head = stream.read(8)
        if len(head) < 8:
            raise TorchFileError(f"{source} is truncated: storage {key} is missing")
        (numel,) = struct.unpack("<q", head)
        ref = refs.get(key)
        if ref is None or numel != ref.numel:
            raise TorchFileError(f"{source}: storage {key} does not match the tensors' records")
        data = stream.read(numel * ref.dtype.itemsize)
        if len(data) < numel * ref.dtype.itemsize:
            raise TorchFileError(f"{source} is truncated inside storage {key}")
        storages[key] = np.frombuffer(data, ref.dtype)
    return storages


def loads(data: bytes, *, source: str = "<bytes>") -> dict[str, np.ndarray]:
    """The state dict in `data` as {name: array}, in the file's order."""
    if data[:4] == b"PK\x03\x04":
        raise TorchFileError(
            f"{source} is a zip-format torch.save file (torch >= 1.6); this reader handles the "
            "legacy format only (torch.save(..., _use_new_zipfile_serialization=False)).")
    stream = io.BytesIO(data)
    try:
        magic = _unpickle(stream, source, {})
        if magic != MAGIC_NUMBER:
            raise TorchFileError(f"{source} is not a legacy torch.save file (no magic number)")
        protocol = _unpickle(stream, source, {})
        info = _unpickle(stream, source, {})
        if protocol != PROTOCOL_VERSION or not (isinstance(info, dict)
                                                and info.get("little_endian")):
            raise TorchFileError(f"{source}: unsupported torch.save protocol {protocol!r} or "
                                 f"byte order ({info!r})")
        state = _unpickle(stream, source, ALLOWED)
        keys = _unpickle(stream, source, {})
    except (RefusedGlobal, TorchFileError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error) as e:
        raise TorchFileError(f"{source} is not a readable legacy torch.save file "
                             f"({type(e).__name__}: {e})") from e
    if not (isinstance(state, dict) and state
            and all(isinstance(k, str) and isinstance(v, TensorRef) for k, v in state.items())):
        raise TorchFileError(f"{source} does not hold a state dict (a mapping of names to tensors)")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise TorchFileError(f"{source}: the storage key list is malformed")
    refs = {t.storage.key: t.storage for t in state.values()}
    storages = _read_storages(stream, keys, refs, source)
    try:
        return {name: _view(t, storages[t.storage.key]) for name, t in state.items()}
    except (KeyError, pickle.UnpicklingError, ValueError) as e:
        raise TorchFileError(f"{source}: a tensor does not fit its storage ({e})") from e


def load(path: str) -> dict[str, np.ndarray]:
    """The state dict saved at `path` (legacy torch.save) as {name: array}; errors name the file."""
    with open(path, "rb") as f:
        return loads(f.read(), source=path)
