"""Loading a collection's ``.npy`` arrays without trusting their headers.

A ``.npy`` header declares a dtype and a shape; ``numpy.load`` allocates what it declares before
reading a byte, so a header edited to declare ``(10**11,)`` raises ``MemoryError`` (or exhausts
the machine), and one declaring an object dtype asks for pickle. :func:`load_npy` reads the
header alone first (``numpy.lib.format.read_magic`` / ``read_array_header_1_0`` / ``_2_0``) and
refuses, with :class:`~rag_retrievers.errors.CorruptCollectionError` naming the file, a dtype
other than the expected ones (object dtypes always), a shape other than the expected one, and a
shape whose byte count is not exactly what follows the header; only then is anything read or
memory-mapped, never with pickle.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import DTypeLike

from rag_retrievers.errors import CorruptCollectionError

#: header versions written by ``numpy.save`` for plain numeric dtypes
_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def load_npy(
    path: str | os.PathLike[str],
    *,
    dtypes: DTypeLike | Sequence[DTypeLike],
    shape: tuple[int | None, ...],
    mmap_mode: Literal["r"] | None = None,
) -> np.ndarray:
    """The array in ``path``, checked against what the caller expects before anything is
    allocated.

    ``dtypes``: the accepted dtype or dtypes (byte order included: ``np.float32`` means native
    order). ``shape``: the expected shape, ``None`` for a dimension of any length; its length is
    the required ``ndim``. ``mmap_mode="r"`` maps the data read-only instead of reading it (an
    empty array is returned as a plain array: there is nothing to map). Raises
    :class:`~rag_retrievers.errors.CorruptCollectionError` naming the file when it is missing,
    unreadable or not what was expected.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.save(Path(tmp) / "x.npy", np.arange(3, dtype=np.int64))
    ...     load_npy(Path(tmp) / "x.npy", dtypes=np.int64, shape=(None,))
    array([0, 1, 2])
    """
    file = Path(path)
    accepted = _dtypes(dtypes)
    try:
        with file.open("rb") as f:
            version = npy_format.read_magic(f)
            reader = _READERS.get(version)
            if reader is None:
                raise CorruptCollectionError(
                    f"{file}: unsupported .npy format version {version[0]}.{version[1]}"
                )
            found, fortran_order, dtype = reader(f)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
            _check_header(file, found, dtype, accepted, shape, size - offset)
            if mmap_mode is not None and math.prod(found) > 0:
                return np.memmap(
                    file,
                    dtype=dtype,
                    mode=mmap_mode,
                    offset=offset,
                    shape=found,
                    order="F" if fortran_order else "C",
                )
            count = math.prod(found)
            data = np.fromfile(f, dtype=dtype, count=count)
    except CorruptCollectionError:
        raise
    except FileNotFoundError:
        raise CorruptCollectionError(f"{file} is missing") from None
    except (OSError, ValueError, TypeError, OverflowError, SyntaxError, RecursionError) as exc:
        # a header numpy cannot parse, a truncated file, a descr that is no dtype
        raise CorruptCollectionError(f"{file} is not a readable .npy file: {exc}") from None
    if len(data) != count:
        raise CorruptCollectionError(f"{file}: holds {len(data)} values, its header {count}")
    return data.reshape(found, order="F" if fortran_order else "C")


def _dtypes(dtypes: DTypeLike | Sequence[DTypeLike]) -> tuple[np.dtype, ...]:
    if isinstance(dtypes, list | tuple):
        return tuple(np.dtype(d) for d in dtypes)
    return (np.dtype(cast(DTypeLike, dtypes)),)


def _check_header(
    file: Path,
    found: tuple[int, ...],
    dtype: np.dtype,
    accepted: tuple[np.dtype, ...],
    shape: tuple[int | None, ...],
    data_bytes: int,
) -> None:
    if dtype.hasobject or dtype not in accepted:
        names = " or ".join(str(d) for d in accepted)
        raise CorruptCollectionError(f"{file} holds {dtype} values; expected {names}")
    if not all(type(n) is int and n >= 0 for n in found):
        raise CorruptCollectionError(f"{file}: its header declares the shape {found!r}")
    if len(found) != len(shape) or any(
        want is not None and n != want for n, want in zip(found, shape, strict=False)
    ):
        dims = ["n" if w is None else str(w) for w in shape]
        wanted = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        raise CorruptCollectionError(f"{file} holds an array of shape {found}; expected {wanted}")
    declared = math.prod(found) * dtype.itemsize
    if declared != data_bytes:
        raise CorruptCollectionError(
            f"{file}: its header declares {found} {dtype} ({declared} bytes); the file holds "
            f"{data_bytes} bytes of data"
        )
