"""The GPU launcher's host-side logic (python/attn/gpu.py) that needs no GPU:
the split heuristic of the paged decode kernels and the bundle lookup."""

import itertools
import json
import math
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import gpu  # noqa: E402


@pytest.mark.parametrize("batch,kv_heads,row_tiles,max_len,sms,resident", [
    (b, h, r, l, s, res)
    for b, h, r, l, s, res in itertools.product(
        (1, 3, 8, 32, 256), (1, 8), (1, 2, 8), (1, 255, 4096, 65536, 1 << 20), (132, 78), (1, 2))
])
def test_num_splits(batch, kv_heads, row_tiles, max_len, sms, resident):
    s = gpu.num_splits(batch, kv_heads, row_tiles, max_len, sms, resident)
    blocks = batch * kv_heads * row_tiles
    assert 1 <= s <= 128
    # Never more blocks than one wave of resident slots (unless one split
    # alone already exceeds it).
    assert s == 1 or blocks * s <= resident * sms
    # No split under 256 keys of the longest sequence (unless unsplit).
    assert s == 1 or math.ceil(max_len / s) >= 256 or s <= math.ceil(max_len / 256)
    # And it does split when the grid is small and the sequences long.
    if blocks * 2 <= resident * sms and max_len >= 512:
        assert s >= 2


def test_num_splits_examples():
    # Llama-3.1-8B decode on 132 SMs, two resident blocks each: batch 8
    # (64 blocks) takes 4 splits (256 blocks, one wave), batch 32 none.
    assert gpu.num_splits(8, 8, 1, 65536, 132, 2) == 4
    assert gpu.num_splits(32, 8, 1, 65536, 132, 2) == 1
    # Short sequences are not split below 256 keys.
    assert gpu.num_splits(1, 1, 1, 300, 132, 2) == 2


def test_resident_blocks():
    assert gpu._resident_blocks({"dynamic_shared_memory": 102400}) == 2
    assert gpu._resident_blocks({"dynamic_shared_memory": 198656}) == 1
    assert gpu._resident_blocks({"dynamic_shared_memory": 8192}) == 2


def test_find_prefers_tensor_cores_and_matches_exactly():
    with tempfile.TemporaryDirectory() as d:
        variant = {"dtype": "bf16", "head_dim": 128, "value_head_dim": 128, "layout": "bhsd",
                   "mask": "causal", "scale": 1 / math.sqrt(128), "softcap": None,
                   "bias": False, "sinks": False, "lse": False}
        for name, kind in (("a", "baseline"), ("b", "mma.sync"), ("c", "wgmma")):
            with open(os.path.join(d, name + ".json"), "w") as f:
                json.dump({"entry": name, "kernel": kind, "ptx": name + ".ptx",
                           "variant": variant}, f)
        paged = dict(variant, op="paged_attention")
        with open(os.path.join(d, "p.json"), "w") as f:
            json.dump({"entry": "p", "kernel": "paged.mma.sync", "ptx": "p.ptx", "variant": paged}, f)
        kernels = gpu.load_bundles(d)
        assert gpu._find(kernels, variant).manifest["entry"] == "c"
        assert gpu._find(kernels, {"op": "paged_attention", "dtype": "bf16"}).manifest["entry"] == "p"
        with pytest.raises(LookupError, match="no kernel bundle"):
            gpu._find(kernels, dict(variant, mask="none"))


def test_find_paged_split_latent_rows():
    """A latent cache takes the latent kernel with the fewest rows per block
    that holds a KV head's query rows (the most if none does); a separate
    value cache, or no latent bundle, the general kernel."""
    with tempfile.TemporaryDirectory() as d:
        base = {"op": "paged_attention", "dtype": "bf16", "head_dim": 576,
                "value_head_dim": 512}
        for name, values, rows in (("g", "separate", 16), ("r16", "key_prefix", 16),
                                   ("r64", "key_prefix", 64)):
            with open(os.path.join(d, name + ".json"), "w") as f:
                json.dump({"entry": name, "kernel": "paged", "ptx": name + ".ptx",
                           "rows_per_block": rows, "variant": dict(base, values=values)}, f)
        kernels = gpu.load_bundles(d)
        pick = lambda prefix, rows: gpu._find_paged_split(kernels, base, prefix, rows).manifest["entry"]
        assert [pick(True, r) for r in (1, 16, 17, 64, 128)] == ["r16", "r16", "r64", "r64", "r64"]
        assert pick(False, 16) == "g" and pick(False, 128) == "g"
        general = [k for k in kernels if k.variant["values"] == "separate"]
        assert gpu._find_paged_split(general, base, True, 128).manifest["entry"] == "g"


class _Strided:
    """What gpu._row_stride reads of a torch tensor: shape, strides, dims."""

    def __init__(self, shape, stride):
        self.shape, self._stride = tuple(shape), tuple(stride)

    def stride(self):
        return self._stride

    def dim(self):
        return len(self.shape)


def _contiguous(shape):
    stride, acc = [], 1
    for n in reversed(shape):
        stride.insert(0, acc)
        acc *= n
    return stride


def _transposed(shape, stride, i, j):
    shape, stride = list(shape), list(stride)
    shape[i], shape[j] = shape[j], shape[i]
    stride[i], stride[j] = stride[j], stride[i]
    return _Strided(shape, stride)


@pytest.mark.parametrize("pages,page,hkv,d", [
    (40, 1, 4, 256), (40, 16, 8, 128), (7, 1, 1, 64), (5, 3, 1, 576), (1, 1, 1, 8)])
def test_row_stride(pages, page, hkv, d):
    """The kernels index cache row r at r · stride: contiguous caches give D,
    whatever torch put in the strides of size-1 dimensions (an NHD cache
    transposed to HND -- contiguous for page size 1 or one KV head, with
    torch's strides left as they were), the first Dv columns of a key cache
    give the key row's length, and a layout whose rows are not in order
    gives None."""
    nhd = (pages, page, hkv, d)
    assert gpu._row_stride(_Strided(nhd, _contiguous(nhd))) == d
    hnd = _transposed(nhd, _contiguous(nhd), 1, 2)
    in_order = page == 1 or hkv == 1
    assert gpu._row_stride(hnd) == (d if in_order else None)
    # The first 8 columns of each row (MLA's values inside the key rows).
    prefix = _Strided(nhd[:3] + (8,), _contiguous(nhd))
    assert gpu._row_stride(prefix) == d
    if pages > 1 and page > 1:  # the page order swapped with the slot order
        assert gpu._row_stride(_transposed(nhd, _contiguous(nhd), 0, 1)) is None
    # A column stride other than 1 is never a dense row.
    assert gpu._row_stride(_Strided(nhd, [s * 2 for s in _contiguous(nhd)])) is \
        (None if d > 1 else 2 * hkv * page * d)
