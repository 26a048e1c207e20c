"""Load pickled NumPy data without running code from the file.

`pickle.load` calls whatever callable a pickle names, so a downloaded pickle can run arbitrary
code. `load` admits only the globals that a container of plain NumPy arrays needs (NumPy's array
and dtype reconstruction, as written by NumPy 1.x and 2.x with any pickle protocol); a pickle that
names anything else (`os.system`, `builtins.open`, `subprocess.Popen`, ...) is refused before the
callable is ever looked up, let alone called. Containers (dict, list, tuple), strings, bytes and
numbers need no globals and load as usual.
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

try:  # NumPy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text, encoding="latin1"):
    # Python 3 writes bytes as `_codecs.encode(str, 'latin1')` under pickle protocols 0-2.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _allowed() -> dict:
    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
             ("_codecs", "encode"): _latin1_encode}
    for package in ("numpy.core", "numpy._core"):  # NumPy 1.x and 2.x spellings
        table[(f"{package}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        table[(f"{package}.multiarray", "scalar")] = _multiarray.scalar
        table[(f"{package}.numeric", "_frombuffer")] = _numeric._frombuffer
    return table


ALLOWED = _allowed()


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing from it was executed."""


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` resolves only the globals in ALLOWED."""

    def __init__(self, file, *, source: str = "<bytes>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"refused to load {module}.{name} from {self.source}: this loader admits only "
                "NumPy arrays, dtypes and plain containers. The file is either not the expected "
                "data or was tampered with (loading it with pickle.load would call "
                f"{module}.{name}).") from None


def loads(data: bytes, *, source: str = "<bytes>"):
    return RestrictedUnpickler(io.BytesIO(data), source=source).load()


def load(path: str):
    """Unpickle the file at `path` with RestrictedUnpickler; errors name the file."""
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, source=path).load()
        except RefusedGlobal:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError) as e:
            raise pickle.UnpicklingError(f"cannot unpickle {path}: {type(e).__name__}: {e}") from e
