"""GradientStore never trusts damaged bytes: rows are re-hashed against their digests before they count as done,
a file that cannot be mapped drops its checkpoint, and metadata that cannot be read is refused."""

import logging

import numpy as np
import pytest

from curation.errors import StoreMismatchError
from curation.gradients.store import GradientStore, row_digests


def _filled(root, n: int = 6, dim: int = 4) -> tuple[GradientStore, np.ndarray, np.ndarray]:
    grads = np.arange(n * dim, dtype=np.float32).reshape(n, dim)
    values = np.arange(n, dtype=np.float32)
    store = GradientStore(root, {"adapter": "mlp"}, n_rows=n, dim=dim)
    store.write("0", 0, grads[:3], values[:3])
    store.write("0", 3, grads[3:], values[3:])
    return store, grads, values


def _reopen(root, n: int = 6, dim: int = 4) -> GradientStore:
    return GradientStore(root, {"adapter": "mlp"}, n_rows=n, dim=dim)


def test_row_digests_depend_on_every_byte_of_the_row() -> None:
    grads, values = np.ones((2, 3), np.float32), np.zeros(2, np.float32)
    base = row_digests(grads, values)
    assert base[0] == base[1] and base[0] != 0
    grads[1, 2] = np.nextafter(np.float32(1), np.float32(2))
    values[0] = -0.0  # a different bit pattern for the same number
    changed = row_digests(grads, values)
    assert changed[0] != base[0] and changed[1] != base[1]


def test_a_changed_row_is_pending_again(tmp_path, caplog) -> None:
    _filled(tmp_path)
    path = tmp_path / "ckpt=0" / "grads.npy"
    raw = bytearray(path.read_bytes())
    raw[-(6 - 4) * 4 * 4 + 1] ^= 0x01  # one bit of row 4 (2 rows of 4 float32 from the end)
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        store = _reopen(tmp_path)
        assert store.pending("0").tolist() == [4]
    assert "1 rows do not match their digests (first row 4)" in caplog.text
    with pytest.raises(StoreMismatchError, match="1 of 6 rows not computed yet"):
        store.grads("0")


@pytest.mark.parametrize("name", ["grads", "values", "digests", "done"])
def test_a_truncated_file_drops_its_checkpoint(tmp_path, caplog, name) -> None:
    _, grads, values = _filled(tmp_path)
    path = tmp_path / "ckpt=0" / f"{name}.npy"
    path.write_bytes(path.read_bytes()[:-3])
    with caplog.at_level(logging.WARNING):
        store = _reopen(tmp_path)
        assert store.pending("0").tolist() == list(range(6))
    assert f"{name}.npy: unreadable" in caplog.text and "recomputing checkpoint 0" in caplog.text
    store.write("0", 0, grads, values)  # recomputed into fresh files
    np.testing.assert_array_equal(_reopen(tmp_path).grads("0"), grads)


def test_rows_marked_done_without_digests_are_recomputed(tmp_path) -> None:
    """A store written before digests existed (done mask only) is not trusted."""
    _filled(tmp_path)
    (tmp_path / "ckpt=0" / "digests.npy").unlink()
    assert _reopen(tmp_path).pending("0").size == 6


def test_features_without_metadata_are_discarded(tmp_path) -> None:
    _filled(tmp_path)
    (tmp_path / "metadata.json").unlink()
    store = _reopen(tmp_path)
    assert not (tmp_path / "ckpt=0").exists() and store.pending("0").size == 6


def test_unreadable_metadata_is_refused(tmp_path) -> None:
    _filled(tmp_path)
    (tmp_path / "metadata.json").write_text('{"adapter": "ml', encoding="utf-8")
    with pytest.raises(StoreMismatchError, match="metadata.json: unreadable store metadata"):
        _reopen(tmp_path)
