"""Write legacy torch.save files without torch, for the reader's tests.

The pickles name torch's globals (torch._utils._rebuild_tensor_v2, torch.FloatStorage) by
writing GLOBAL opcodes directly; the layout follows torch.save(..., _use_new_zipfile_serialization
=False): magic number, protocol, system info, the state dict, the storage keys, the storages.
"""
import collections
import io
import pickle
import struct

import numpy as np

from sbirjax.nets import torch_pickle

STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage",
                 np.dtype("float16"): "HalfStorage"}
SYS_INFO = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}


class Global:
    """A name written as a GLOBAL opcode. Callable only because pickle insists that a reduce
    function is; it is never called."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise AssertionError("never called")


class Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def __reduce__(self):
        return (Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, self.shape, self.stride, False,
                 collections.OrderedDict()))


class _Writer(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_named_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[Global] = save_named_global

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            kind = Global("torch", STORAGE_NAMES[obj.array.dtype])
            return ("storage", kind, obj.key, "cpu", obj.array.size, None)
        return None


def dumps_main(obj) -> bytes:
    f = io.BytesIO()
    _Writer(f, protocol=2).dump(obj)
    return f.getvalue()


def contiguous(arrays: dict) -> collections.OrderedDict:
    """A state dict of Tensors, each array in its own storage."""
    arrays = {name: np.array(a, order="C") for name, a in arrays.items()}  # 0-d stays 0-d
    return collections.OrderedDict(
        (name, Tensor(Storage(str(i), a.reshape(-1)), 0, a.shape,
                      tuple(st // a.itemsize for st in a.strides)))
        for i, (name, a) in enumerate(arrays.items()))


def legacy_bytes(state, *, main: bytes | None = None) -> bytes:
    """A legacy torch.save file of `state` (an OrderedDict of Tensors, or of arrays); `main`
    replaces the state-dict pickle (for tampered files)."""
    if not all(isinstance(t, Tensor) for t in state.values()):
        state = contiguous(state)
    storages = {t.storage.key: t.storage for t in state.values()}
    out = [pickle.dumps(torch_pickle.MAGIC_NUMBER, protocol=2),
           pickle.dumps(torch_pickle.PROTOCOL_VERSION, protocol=2),
           pickle.dumps(SYS_INFO, protocol=2), main if main is not None else dumps_main(state),
           pickle.dumps(list(storages), protocol=2)]
    for s in storages.values():
        out += [struct.pack("<q", s.array.size),
                s.array.astype(s.array.dtype.newbyteorder("<")).tobytes()]
    return b"".join(out)
