# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The GPU launcher's host-side logic (python/attn/gpu.py) that needs no GPU:
the split heuristic of the paged decode kernels, the bundle lookup, manifest
validation and the launch grid's evaluation."""

import glob
import itertools
import json
import math
import os
import re
import sys
import tempfile

import numpy as np
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


def _manifest(name, **fields):
    """A manifest shaped like attn-compile's (a dense attention kernel's,
    abridged), with `fields` replacing or adding keys."""
    memref = ["allocated_ptr", "aligned_ptr", "offset", "size", "stride"]
    m = {"entry": name, "ptx": name + ".ptx", "kernel": "mma.sync", "chip": "sm_90a",
         "grid": ["ceil(Sq / 128)", "Hq", "B"], "block": [256, 1, 1],
         "dynamic_shared_memory": 65536,
         "params": [{"kind": "memref", "name": "q", "role": "query", "dtype": "bf16",
                     "shape": ["B", "Hq", "Sq", 128], "expands_to": memref},
                    {"kind": "scalar", "name": "B", "role": "size", "dtype": "i64"},
                    {"kind": "tensormap", "name": "q_tma", "tensor": "q", "box": [64, 128],
                     "role": "tma_descriptor"}],
         "variant": {"dtype": "bf16", "head_dim": 128}}
    m.update(fields)
    return m


def _write_bundle(directory, name, write_ptx=True, **fields):
    """Writes <name>.json (and an empty <name>.ptx unless write_ptx is False);
    returns the manifest's path."""
    path = os.path.join(directory, name + ".json")
    with open(path, "w") as f:
        json.dump(_manifest(name, **fields), f)
    if write_ptx:
        open(os.path.join(directory, name + ".ptx"), "w").close()
    return path


def test_find_prefers_tensor_cores_and_matches_exactly():
    with tempfile.TemporaryDirectory() as d:
        variant = {"dtype": "bf16", "head_dim": 128, "value_head_dim": 128, "layout": "bhsd",
                   "mask": "causal", "scale": 1 / math.sqrt(128), "softcap": None,
                   "bias": False, "sinks": False, "lse": False}
        for name, kind in (("a", "baseline"), ("b", "mma.sync"), ("c", "wgmma")):
            _write_bundle(d, name, kernel=kind, variant=variant)
        _write_bundle(d, "p", kernel="paged.mma.sync", variant=dict(variant, op="paged_attention"))
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
            _write_bundle(d, name, kernel="paged", rows_per_block=rows,
                          variant=dict(base, values=values))
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


def test_manifest_valid():
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "ptx"))
        open(os.path.join(d, "ptx", "k.ptx"), "w").close()
        _write_bundle(d, "k", write_ptx=False, ptx="ptx/../ptx/./k.ptx")
        (kernel,) = gpu.load_bundles(d)
        assert kernel.ptx_path == os.path.realpath(os.path.join(d, "ptx", "k.ptx"))
        assert kernel._grid == [("Sq", 128), ("Hq", 1), ("B", 1)]


def test_manifests_attn_compile_wrote():
    """Every bundle of the build's directory (when one was compiled) passes."""
    directory = os.path.join(os.path.dirname(__file__), "..", "..", "build", "bundles")
    if not glob.glob(os.path.join(directory, "*.json")):
        pytest.skip("no bundles in build/bundles")
    assert gpu.load_bundles(directory)


def _missing(key):
    m = _manifest("k")
    del m[key]
    return m


_MEMREF = ["allocated_ptr", "aligned_ptr", "offset", "size", "stride"]


@pytest.mark.parametrize("manifest,problem", [
    ([], "must be a JSON object"),
    *[(_missing(key), f"missing key '{key}'")
      for key in ("entry", "params", "grid", "block", "dynamic_shared_memory", "kernel",
                  "variant", "ptx")],
    (_manifest("k", entry=7), "'entry' must be a JSON string"),
    (_manifest("k", entry="k(); x"), "not a PTX identifier"),
    (_manifest("k", variant=[]), "'variant' must be a JSON object"),
    (_manifest("k", params={}), "'params' must be a JSON array"),
    (_manifest("k", grid="B"), "'grid' must be a JSON array"),
    (_manifest("k", ptx=None), "'ptx' must be a JSON string"),
    # The PTX file: inside the bundle directory, or nothing is opened.
    (_manifest("k", ptx="/etc/hostname"), "must be a path relative to the bundle directory"),
    (_manifest("k", ptx="../../x.ptx"), "outside the bundle directory"),
    (_manifest("k", ptx="sub/../../k.ptx"), "outside the bundle directory"),
    (_manifest("k", ptx=""), "must be a path relative"),
    (_manifest("k", ptx="k\0.ptx"), "must be a path relative"),
    (_manifest("k", ptx="missing.ptx"), "is not a file in the bundle directory"),
    (_manifest("k", ptx="."), "is not a file in the bundle directory"),
    # Grid sizes: parsed, never evaluated.
    (_manifest("k", grid=["ceil(Sq / -1)", 1, 1]), "ceil(Sq / -1)"),
    (_manifest("k", grid=["ceil(Sq / 0)", 1, 1]), "ceil(Sq / 0)"),
    (_manifest("k", grid=["__import__('os').getpid()", 1, 1]), "is not a non-negative integer"),
    (_manifest("k", grid=["Sq * 2", 1, 1]), "is not a non-negative integer"),
    (_manifest("k", grid=["ceil(Sq / 2.5)", 1, 1]), "is not a non-negative integer"),
    (_manifest("k", grid=[-1, 1, 1]), "grid size -1 is negative"),
    (_manifest("k", grid=[True, 1, 1]), "is not a non-negative integer"),
    (_manifest("k", grid=[1.0, 1, 1]), "is not a non-negative integer"),
    (_manifest("k", grid=["B", 1]), "grid must have 3 sizes"),
    (_manifest("k", grid=[1, 65536, 1]), "over CUDA's limit of 65535"),
    (_manifest("k", grid=[2**31, 1, 1]), "over CUDA's limit of 2147483647"),
    # Blocks: CUDA's per-dimension and per-block limits.
    *[(_manifest("k", block=b), "block must be 3 positive integers")
      for b in ([0, 1, 1], [-128, 1, 1], [128, 1], [True, 1, 1], [128.0, 1, 1], [1025, 1, 1],
                [1, 1, 65], [64, 32, 1])],
    (_manifest("k", block="128"), "'block' must be a JSON array"),
    (_manifest("k", dynamic_shared_memory=-1), "must be a non-negative byte count"),
    (_manifest("k", dynamic_shared_memory=2**32), "must be a non-negative byte count"),
    (_manifest("k", dynamic_shared_memory=1.5), "must be a JSON integer"),
    (_manifest("k", dynamic_shared_memory=False), "must be a JSON integer"),
    (_manifest("k", rows_per_block=0), "'rows_per_block' must be a positive integer"),
    (_manifest("k", value_chunks="2"), "'value_chunks' must be a positive integer"),
    # Parameters: the ABI Kernel.launch passes.
    (_manifest("k", params=[1]), "params[0] must be a JSON object"),
    (_manifest("k", params=[{"kind": "scalar", "dtype": "i64"}]), "params[0] has no name"),
    (_manifest("k", params=[{"kind": "scalar", "name": "B", "dtype": "i64"}] * 2),
     "a second parameter named 'B'"),
    (_manifest("k", params=[{"kind": "pointer", "name": "q"}]), "unknown kind 'pointer'"),
    (_manifest("k", params=[{"kind": "scalar", "name": "B", "dtype": "i32"}]),
     "scalar dtype must be 'i64'"),
    (_manifest("k", params=[{"kind": "memref", "name": "q", "expands_to": _MEMREF[:3]}]),
     "memref must expand to"),
    (_manifest("k", params=[{"kind": "memref", "name": "q", "expands_to": _MEMREF},
                            {"kind": "tensormap", "name": "t", "tensor": "q", "box": [64, 0]}]),
     "tensormap box must be 2 integers"),
    (_manifest("k", params=[{"kind": "memref", "name": "q", "expands_to": _MEMREF},
                            {"kind": "tensormap", "name": "t", "tensor": "k", "box": [64, 64]}]),
     "tensormap of 'k', which is not a memref parameter"),
])
def test_manifest_invalid(manifest, problem):
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "sub"))
        open(os.path.join(d, "k.ptx"), "w").close()
        path = os.path.join(d, "k.json")
        with open(path, "w") as f:
            json.dump(manifest, f)
        with pytest.raises(ValueError) as e:
            gpu.load_bundles(d)
        assert str(e.value).startswith(path + ": ")
        assert problem in str(e.value), str(e.value)


def test_manifest_ptx_link_out_of_the_directory():
    """A link resolves before the check: a PTX link to a file outside the
    bundle directory is refused, one to a file inside it accepted."""
    with tempfile.TemporaryDirectory() as outside, tempfile.TemporaryDirectory() as d:
        open(os.path.join(outside, "x.ptx"), "w").close()
        open(os.path.join(d, "real.ptx"), "w").close()
        os.symlink(os.path.join(outside, "x.ptx"), os.path.join(d, "out.ptx"))
        os.symlink("real.ptx", os.path.join(d, "in.ptx"))
        _write_bundle(d, "in", write_ptx=False)
        assert gpu.load_bundles(d)[0].ptx_path == os.path.realpath(os.path.join(d, "real.ptx"))
    with tempfile.TemporaryDirectory() as outside, tempfile.TemporaryDirectory() as d:
        open(os.path.join(outside, "x.ptx"), "w").close()
        os.symlink(os.path.join(outside, "x.ptx"), os.path.join(d, "out.ptx"))
        _write_bundle(d, "out", write_ptx=False)
        with pytest.raises(ValueError, match="outside the bundle directory"):
            gpu.load_bundles(d)


def test_manifest_not_json():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "k.json")
        with open(path, "w") as f:
            f.write('{"entry": ')
        with pytest.raises(ValueError, match=re.escape(path) + ": not JSON"):
            gpu.load_bundles(d)


def _grid(*sizes):
    return [gpu.parse_grid_size(g) for g in sizes]


def test_grid_dims():
    sizes = {"B": 3, "Hq": 32, "Sq": 1000, "Zero": 0}
    assert gpu.grid_dims(_grid("ceil(Sq / 128)", "Hq", "B"), sizes) == (8, 32, 3)
    assert gpu.grid_dims(_grid("ceil(Sq/8)", 1, 1), sizes) == (125, 1, 1)
    assert gpu.grid_dims(_grid("ceil( Sq / 1000 )", 1, 1), sizes) == (1, 1, 1)
    assert gpu.grid_dims(_grid("ceil(Sq / 1001)", 1, 1), sizes) == (1, 1, 1)
    # A zero size is a grid with nothing to launch, not an error.
    assert gpu.grid_dims(_grid("ceil(Zero / 128)", "Hq", "B"), sizes) == (0, 32, 3)
    assert gpu.grid_dims(_grid(0, 1, 1), sizes) == (0, 1, 1)
    # NumPy's integers are integers.
    assert gpu.grid_dims(_grid("B", 1, 1), {"B": np.int64(5)}) == (5, 1, 1)
    # CUDA's limits are reachable, not exceeded.
    big = {"X": 2**31 - 1, "Y": 65535}
    assert gpu.grid_dims(_grid("X", "Y", "Y"), big) == (2**31 - 1, 65535, 65535)


@pytest.mark.parametrize("grid,sizes,problem", [
    (("B", 1, 1), {"B": -1}, "reads B = -1, not a non-negative integer"),
    (("ceil(Sq / 128)", 1, 1), {"Sq": -5}, "reads Sq = -5"),  # would round to 0
    (("B", 1, 1), {"B": 2.0}, "reads B = 2.0"),
    (("B", 1, 1), {"B": True}, "reads B = True"),
    (("B", 1, 1), {"B": "4"}, "reads B = '4'"),
    (("B", 1, 1), {}, "reads size 'B', which was not given"),
    (("X", 1, 1), {"X": 2**31}, "grid size 0 is 2147483648, over CUDA's limit of 2147483647"),
    (("ceil(X / 2)", 1, 1), {"X": 2**32}, "over CUDA's limit of 2147483647"),
    ((1, "Y", 1), {"Y": 65536}, "grid size 1 is 65536, over CUDA's limit of 65535"),
    ((1, 1, "Z"), {"Z": 65536}, "grid size 2 is 65536, over CUDA's limit of 65535"),
    # A negative dimension is an error even where another is 0.
    (("Z", "B", 1), {"Z": 0, "B": -1}, "reads B = -1"),
])
def test_grid_dims_invalid(grid, sizes, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        gpu.grid_dims(_grid(*grid), sizes)
