"""The IDX reader on small hand-made files, good and broken."""

import gzip
import os

import numpy as np
import pytest

from components import idx
from tests.conftest import write_idx_pair


def test_round_trip_compressed_and_plain(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    labels = [7, 0, 9]
    for compress in (True, False):
        folder = tmp_path / str(compress)
        images_path, labels_path = write_idx_pair(
            folder, "train", images, labels, compress
        )
        read_images, read_labels = idx.read_arrays(images_path, labels_path)
        np.testing.assert_array_equal(read_images, images)
        np.testing.assert_array_equal(read_labels, labels)


def test_known_bytes_decode_to_known_values(tmp_path):
    # Magic 0x00000801 (ubyte, 1 dimension), 3 items, then the values 5, 0, 255.
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes.fromhex("00000801000000030500ff"))
    header = idx.check_file(str(path), idx.LABELS_NDIM)
    assert header.dims == (3,)
    images_path = tmp_path / "images-idx3-ubyte"
    images_path.write_bytes(
        bytes.fromhex("00000803000000030000000100000001") + b"\x01\x02\x03"
    )
    records = list(idx.iter_records(str(images_path), str(path)))
    assert [(pixels.tolist(), label) for pixels, label in records] == [
        ([1], 5),
        ([2], 0),
        ([3], 255),
    ]


def test_truncated_file_names_the_file(tmp_path):
    images_path, _ = write_idx_pair(
        tmp_path, "train", np.zeros((4, 28, 28)), [1] * 4, False
    )
    with open(images_path, "rb") as stream:
        data = stream.read()
    with open(images_path, "wb") as stream:
        stream.write(data[:-100])
    with pytest.raises(idx.IdxFormatError, match="truncated") as error:
        idx.check_file(images_path, idx.IMAGES_NDIM)
    assert images_path in str(error.value)


def test_truncated_gzip_stream_names_the_file(tmp_path):
    images_path, _ = write_idx_pair(tmp_path, "train", np.ones((50, 28, 28)), [1] * 50)
    with open(images_path, "rb") as stream:
        data = stream.read()
    with open(images_path, "wb") as stream:
        stream.write(data[: len(data) // 2])
    with pytest.raises(idx.IdxFormatError) as error:
        idx.check_file(images_path, idx.IMAGES_NDIM)
    assert images_path in str(error.value)


def test_longer_than_declared_is_refused(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes.fromhex("0000080100000002") + b"\x01\x02\x03")
    with pytest.raises(idx.IdxFormatError, match="longer than its header says"):
        idx.check_file(str(path), idx.LABELS_NDIM)


@pytest.mark.parametrize(
    "magic",
    ["00000d03", "08030000", "00000900", "504b0304"],
    ids=["float", "swapped", "zero-dims", "zip"],
)
def test_wrong_magic_names_the_file(tmp_path, magic):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes.fromhex(magic) + b"\x00" * 64)
    with pytest.raises(idx.IdxFormatError, match="magic number") as error:
        idx.read_header(str(path))
    assert str(path) in str(error.value)


def test_gzip_of_wrong_content_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"<html>not an idx file</html>"))
    with pytest.raises(idx.IdxFormatError, match="magic number") as error:
        idx.read_header(str(path))
    assert str(path) in str(error.value)


def test_count_mismatch_names_both_files(tmp_path):
    images_path, labels_path = write_idx_pair(
        tmp_path, "t10k", np.zeros((5, 28, 28)), [1] * 4
    )
    with pytest.raises(idx.IdxFormatError) as error:
        idx.check_pair(images_path, labels_path)
    assert images_path in str(error.value) and labels_path in str(error.value)


def test_find_pair_tells_images_from_labels_by_header(tmp_path):
    images_path, labels_path = write_idx_pair(
        tmp_path, "train", np.zeros((2, 28, 28)), [1, 2]
    )
    # Names that say nothing: the headers decide.
    os.rename(images_path, tmp_path / "train-a.gz")
    os.rename(labels_path, tmp_path / "train-b.gz")
    found = idx.find_pair(str(tmp_path / "train-*"))
    assert found == (str(tmp_path / "train-a.gz"), str(tmp_path / "train-b.gz"))


def test_find_pair_refuses_ambiguous_or_missing_files(tmp_path):
    write_idx_pair(tmp_path, "train", np.zeros((2, 28, 28)), [1, 2])
    write_idx_pair(tmp_path, "train", np.zeros((2, 28, 28)), [1, 2], compress=False)
    with pytest.raises(idx.IdxFormatError, match="exactly one images file"):
        idx.find_pair(str(tmp_path / "train-*"))
    with pytest.raises(idx.IdxFormatError, match="no IDX files match"):
        idx.find_pair(str(tmp_path / "t10k-*"))


def test_iter_records_honours_the_limit(tmp_path):
    images = np.arange(6 * 28 * 28).reshape(6, 28, 28) % 256
    images_path, labels_path = write_idx_pair(
        tmp_path, "train", images, [0, 1, 2, 3, 4, 5]
    )
    records = list(idx.iter_records(images_path, labels_path, limit=4))
    assert [label for _, label in records] == [0, 1, 2, 3]
    np.testing.assert_array_equal(records[3][0], images[3].ravel())


def test_corrupt_gzip_data_names_the_file(tmp_path):
    images_path, _ = write_idx_pair(
        tmp_path, "train", np.arange(50 * 784).reshape(50, 28, 28) % 251, [1] * 50
    )
    with open(images_path, "rb") as stream:
        data = bytearray(stream.read())
    for offset in range(len(data) // 3, len(data) // 3 + 40):
        data[offset] ^= 0xFF
    with open(images_path, "wb") as stream:
        stream.write(bytes(data))
    with pytest.raises(idx.IdxFormatError) as error:
        idx.check_file(images_path, idx.IMAGES_NDIM)
    assert images_path in str(error.value)
    with pytest.raises(idx.IdxFormatError):
        idx.read_array(images_path, idx.IMAGES_NDIM)


def test_read_array_refuses_extra_bytes_and_wrong_rank(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes.fromhex("0000080100000002") + b"\x01\x02\x03")
    with pytest.raises(idx.IdxFormatError, match="longer than its header says"):
        idx.read_array(str(path), idx.LABELS_NDIM)
    with pytest.raises(idx.IdxFormatError, match="expected a 3-dimensional"):
        idx.read_array(str(path), idx.IMAGES_NDIM)
