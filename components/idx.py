"""Reading and writing IDX files, the format Fashion-MNIST and MNIST ship in.

An IDX file is a big-endian header (magic number, then one 32-bit size per
dimension) followed by the raw values. Files may be gzip-compressed. Every
format error names the file it was found in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import struct
import zlib
from collections.abc import Iterator

import numpy as np
from tfx.dsl.io import fileio

from components.errors import InputDataError

# The third byte of the magic number is the value type; 0x08 is unsigned byte.
_UBYTE_TYPE = 0x08
IMAGES_NDIM = 3
LABELS_NDIM = 1
_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK_BYTES = 1 << 20
# What a damaged file can raise while it is read: gzip's BadGzipFile is an
# OSError, a cut stream is an EOFError, flipped bytes are a zlib.error.
_READ_ERRORS = (OSError, EOFError, zlib.error)


class IdxFormatError(InputDataError):
    """An IDX file is malformed, truncated or does not match its partner."""


@dataclasses.dataclass(frozen=True)
class IdxHeader:
    """The parsed header of one IDX file."""

    path: str
    dims: tuple[int, ...]
    header_bytes: int

    @property
    def count(self) -> int:
        return self.dims[0]

    @property
    def record_bytes(self) -> int:
        return int(np.prod(self.dims[1:], dtype=np.int64)) if len(self.dims) > 1 else 1


@contextlib.contextmanager
def _open(path: str):
    """Opens a local or remote file, decompressing it when it is gzip."""
    try:
        raw = fileio.open(path, "rb")
    except _READ_ERRORS as error:
        raise IdxFormatError(f"{path}: cannot open: {error}") from error
    with raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream
        else:
            yield raw


def _read_exactly(stream, size: int, path: str, what: str) -> bytes:
    try:
        data = stream.read(size)
    except _READ_ERRORS as error:
        raise IdxFormatError(f"{path}: cannot read {what}: {error}") from error
    if len(data) != size:
        raise IdxFormatError(
            f"{path}: file is truncated: expected {size} bytes of {what}, "
            f"found {len(data)}"
        )
    return data


def _parse_header(stream, path: str) -> IdxHeader:
    magic = _read_exactly(stream, 4, path, "magic number")
    if magic[0:2] != b"\x00\x00" or magic[2] != _UBYTE_TYPE or magic[3] == 0:
        raise IdxFormatError(
            f"{path}: not an unsigned-byte IDX file: magic number is "
            f"0x{magic.hex()}, expected 0x000008NN (NN = number of dimensions)"
        )
    ndim = magic[3]
    dims = struct.unpack(
        ">" + "I" * ndim, _read_exactly(stream, 4 * ndim, path, "header")
    )
    return IdxHeader(path=path, dims=tuple(dims), header_bytes=4 + 4 * ndim)


def read_header(path: str) -> IdxHeader:
    """Reads and checks the header of an IDX file."""
    with _open(path) as stream:
        return _parse_header(stream, path)


def check_file(path: str, expected_ndim: int) -> IdxHeader:
    """Checks the header and that the file holds exactly the data it declares.

    Reads the whole file once (decompressing it), so a truncated or padded
    file is found before any record is emitted.
    """
    with _open(path) as stream:
        header = _parse_header(stream, path)
        if len(header.dims) != expected_ndim:
            raise IdxFormatError(
                f"{path}: expected a {expected_ndim}-dimensional IDX file, "
                f"found {len(header.dims)} dimensions {header.dims}"
            )
        expected = header.count * header.record_bytes
        found = 0
        try:
            while chunk := stream.read(_READ_CHUNK_BYTES):
                found += len(chunk)
        except _READ_ERRORS as error:
            raise IdxFormatError(f"{path}: cannot read data: {error}") from error
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise IdxFormatError(
            f"{path}: file is {problem}: header declares {header.count} records "
            f"({expected} data bytes), file holds {found} data bytes"
        )
    return header


def check_pair(images_path: str, labels_path: str) -> int:
    """Checks an images file and its labels file; returns the record count."""
    images = check_file(images_path, IMAGES_NDIM)
    labels = check_file(labels_path, LABELS_NDIM)
    if images.count != labels.count:
        raise IdxFormatError(
            f"{images_path} holds {images.count} images but {labels_path} holds "
            f"{labels.count} labels"
        )
    return images.count


def find_pair(pattern: str) -> tuple[str, str]:
    """Finds the images file and the labels file that match a glob pattern.

    The two are told apart by their headers (3 dimensions for images, 1 for
    labels), not by their names.
    """
    paths = sorted(fileio.glob(pattern))
    if not paths:
        raise IdxFormatError(f"no IDX files match {pattern}")
    by_ndim: dict[int, list[str]] = {}
    for path in paths:
        by_ndim.setdefault(len(read_header(path).dims), []).append(path)
    images = by_ndim.get(IMAGES_NDIM, [])
    labels = by_ndim.get(LABELS_NDIM, [])
    if len(images) != 1 or len(labels) != 1 or len(paths) != 2:
        raise IdxFormatError(
            f"{pattern} must match exactly one images file (3 dimensions) and one "
            f"labels file (1 dimension); it matches {paths}"
        )
    return images[0], labels[0]


def iter_records(
    images_path: str, labels_path: str, limit: int | None = None
) -> Iterator[tuple[np.ndarray, int]]:
    """Yields (pixels as a flat uint8 array, label) pairs in file order."""
    with _open(images_path) as images, _open(labels_path) as labels:
        image_header = _parse_header(images, images_path)
        label_header = _parse_header(labels, labels_path)
        count = min(image_header.count, label_header.count)
        if limit is not None:
            count = min(count, limit)
        record_bytes = image_header.record_bytes
        for index in range(count):
            pixels = _read_exactly(images, record_bytes, images_path, f"image {index}")
            label = _read_exactly(labels, 1, labels_path, f"label {index}")
            yield np.frombuffer(pixels, dtype=np.uint8), label[0]


def read_array(path: str, expected_ndim: int) -> np.ndarray:
    """Reads a whole IDX file into an array shaped as its header says."""
    with _open(path) as stream:
        header = _parse_header(stream, path)
        if len(header.dims) != expected_ndim:
            raise IdxFormatError(
                f"{path}: expected a {expected_ndim}-dimensional IDX file, "
                f"found {len(header.dims)} dimensions {header.dims}"
            )
        size = header.count * header.record_bytes
        data = _read_exactly(stream, size, path, f"{header.count} records")
        try:
            trailing = stream.read(1)
        except _READ_ERRORS as error:
            raise IdxFormatError(f"{path}: cannot read data: {error}") from error
    if trailing:
        raise IdxFormatError(f"{path}: file is longer than its header says")
    return np.frombuffer(data, dtype=np.uint8).reshape(header.dims)


def read_arrays(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a whole images/labels pair into arrays [N, H, W] and [N]."""
    images = read_array(images_path, IMAGES_NDIM)
    labels = read_array(labels_path, LABELS_NDIM)
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels"
        )
    return images, labels


def encode(array: np.ndarray) -> bytes:
    """Encodes a uint8 array as IDX bytes (uncompressed)."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX encoding needs uint8 values, got {array.dtype}")
    header = bytes([0, 0, _UBYTE_TYPE, array.ndim])
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.tobytes()


def write(path: str, array: np.ndarray) -> None:
    """Writes a uint8 array as an IDX file, gzip-compressed if path ends in .gz."""
    data = encode(array)
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with fileio.open(path, "wb") as stream:
        stream.write(data)
