"""The legacy torch.save reader: values, layouts, and refusal of anything that would run code."""
import collections
import os
import pickle

import numpy as np
import pytest

from sbirjax.nets import torch_pickle
from tests import torch_legacy


def test_reads_a_state_dict_in_order_with_its_dtypes():
    arrays = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
              "bn.num_batches_tracked": np.array(7, np.int64),
              "half": np.linspace(-1, 1, 5).astype(np.float16)}
    got = torch_pickle.loads(torch_legacy.legacy_bytes(arrays))
    assert list(got) == list(arrays)
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape
        np.testing.assert_array_equal(got[name], a)


def test_views_share_a_storage_with_offsets_and_strides():
    storage = torch_legacy.Storage("0", np.arange(12, dtype=np.float32))
    state = collections.OrderedDict(
        whole=torch_legacy.Tensor(storage, 0, (3, 4), (4, 1)),
        transposed=torch_legacy.Tensor(storage, 2, (2, 3), (1, 2)))
    got = torch_pickle.loads(torch_legacy.legacy_bytes(state))
    np.testing.assert_array_equal(got["whole"], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(got["transposed"], [[2, 4, 6], [3, 5, 7]])
    assert got["transposed"].flags.owndata  # a copy, not a view into the file's bytes


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["state_dict", "magic", "inside_a_tensor_record"])
def test_a_payload_that_calls_os_system_is_refused_unrun(tmp_path, where):
    marker = tmp_path / "ran"
    evil = _RunsCommand(marker)
    arrays = {"w": np.ones(3, np.float32)}
    if where == "state_dict":
        data = torch_legacy.legacy_bytes(arrays, main=pickle.dumps({"w": evil}, protocol=2))
    elif where == "magic":
        data = pickle.dumps(evil, protocol=2) + torch_legacy.legacy_bytes(arrays)
    else:
        state = torch_legacy.contiguous(arrays)
        state["w"].offset = evil  # the payload sits where an integer should be
        data = torch_legacy.legacy_bytes(state)
    with pytest.raises(torch_pickle.RefusedGlobal, match=r"refused to load (posix|os|nt)\.system"):
        torch_pickle.loads(data, source="evil.pth")
    assert not marker.exists()


def test_other_globals_are_refused_by_name():
    # builtins.eval through a hand-written pickle: GLOBAL, a string argument, REDUCE.
    data = b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R."
    with pytest.raises(torch_pickle.RefusedGlobal, match="builtins.eval"):
        torch_pickle.loads(torch_legacy.legacy_bytes({"w": np.ones(1, np.float32)}, main=data))


def test_truncated_wrong_and_zip_files_have_one_clear_message(tmp_path):
    data = torch_legacy.legacy_bytes({"w": np.ones(1000, np.float32)})
    with pytest.raises(torch_pickle.TorchFileError, match="truncated"):
        torch_pickle.loads(data[:-100], source="cut.pth")
    with pytest.raises(torch_pickle.TorchFileError, match="not a readable legacy torch.save"):
        torch_pickle.loads(data[:30], source="cut.pth")
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(torch_pickle.TorchFileError, match=str(png)):
        torch_pickle.load(str(png))
    with pytest.raises(torch_pickle.TorchFileError, match="zip-format"):
        torch_pickle.loads(b"PK\x03\x04" + bytes(64))
    not_a_state_dict = pickle.dumps([1, 2], protocol=2)
    with pytest.raises(torch_pickle.TorchFileError, match="does not hold a state dict"):
        torch_pickle.loads(torch_legacy.legacy_bytes({"w": np.ones(1, np.float32)},
                                                     main=not_a_state_dict))
    # Both are ValueErrors, so callers can catch one type.
    assert issubclass(torch_pickle.TorchFileError, ValueError)


def test_a_tensor_past_its_storage_is_refused():
    storage = torch_legacy.Storage("0", np.arange(4, dtype=np.float32))
    state = collections.OrderedDict(w=torch_legacy.Tensor(storage, 2, (3,), (1,)))
    with pytest.raises(torch_pickle.TorchFileError, match="does not fit its storage"):
        torch_pickle.loads(torch_legacy.legacy_bytes(state))
