# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The GPU launcher's host-side logic (python/attn/gpu.py) that needs no GPU:
the split heuristic of the paged decode kernels, the bundle lookup, manifest
validation and the launch grid's expressions (docs/kernel-spec.md)."""

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
         "grid": [{"ceil_div": ["Sq", 128]}, "Hq", "B"], "block": [256, 1, 1],
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
        assert kernel._grid == [("ceil_div", "Sq", 128), "Hq", "B"]
        assert kernel.prefer is None and kernel.prefers({})
        _write_bundle(d, "k", write_ptx=False, ptx="ptx/k.ptx",
                      prefer={"Sq": [0, 64], "Sk": [8192, None]})
        gpu._cache.clear()
        (kernel,) = gpu.load_bundles(d)
        assert kernel.prefer == (("Sk", 8192, None), ("Sq", 0, 64))
        assert kernel.prefers({"Sq": 63, "Sk": 8192})
        assert not kernel.prefers({"Sq": 64, "Sk": 9000})
        assert not kernel.prefers({"Sq": 1, "Sk": 8191})
        assert not kernel.prefers({"Sk": 9000})  # a size the call does not have


def test_manifests_attn_compile_wrote():
    """Every bundle of the build's directory (when one was compiled) passes."""
    directory = os.path.join(os.path.dirname(__file__), "..", "..", "build", "bundles")
    if not glob.glob(os.path.join(directory, "*.json")):
        pytest.skip("no bundles in build/bundles")
    try:
        assert gpu.load_bundles(directory)
    except ValueError as e:
        if "predates structured grids" in str(e):  # a stale build, not a bad manifest
            pytest.skip(f"build/bundles predates structured grids; rebuild it: {e}")
        raise


def _missing(key):
    m = _manifest("k")
    del m[key]
    return m


_MEMREF = ["allocated_ptr", "aligned_ptr", "offset", "size", "stride"]


def _nested(depth):
    g = "B"
    for _ in range(depth):
        g = {"mul": [g, 1]}
    return g


# Grid entries that are not one (parse_grid_size) and what the error says.
_BAD_GRIDS = [
    # The string grids of bundles before structured grids: rebuild them.
    ("ceil(Sq / 128)", "predates structured grids"),
    ("ceil(Sq / 128)", "python -m attn.bundles"),
    ("ceil( Sq/0 )", "predates structured grids"),
    # Strings are size names only.
    ("__import__('os').getpid()", "is not a size name"),
    ("Sq * 2", "is not a size name"),
    ("2", "is not a size name"),
    ("", "is not a size name"),
    ("B ", "is not a size name"),
    # Literals: non-negative integers, not bools or floats.
    (-1, "grid size -1 is negative"),
    (True, "is not a non-negative integer"),
    (1.0, "is not a non-negative integer"),
    (None, "is not a non-negative integer"),
    (["B"], "is not a non-negative integer"),
    # Operations: known, one per object, operands an array of the right length.
    ({"pow": ["Sq", 2]}, "unknown operation 'pow'"),
    ({"ceil": ["Sq", 2]}, "unknown operation 'ceil'"),
    ({}, "must be an object of one key"),
    ({"mul": ["B", 2], "div": ["B", 2]}, "must be an object of one key"),
    ({"mul": "B"}, "must give mul's operands as an array"),
    ({"ceil_div": {"a": "Sq"}}, "must give ceil_div's operands as an array"),
    ({"ceil_div": ["Sq"]}, "gives ceil_div 1 operand; it takes two"),
    ({"div": ["Sq", 2, 3]}, "gives div 3 operands; it takes two"),
    ({"mul": ["B"]}, "gives mul 1 operand; it takes two or more"),
    ({"mul": []}, "gives mul 0 operands; it takes two or more"),
    ({"min": ["B"]}, "gives min 1 operand; it takes two or more"),
    ({"min": "B"}, "must give min's operands as an array"),
    ({"ceil_div": ["Sq", {"min": ["B", 0]}]}, 'divides by {"min": ["B", 0]}, which is 0 whatever'),
    # Operands are checked alike, and the message names the whole entry.
    ({"ceil_div": ["Sq", -1]}, 'grid size -1 is negative (in grid size {"ceil_div": ["Sq", -1]})'),
    ({"ceil_div": ["Sq", 2.5]}, "grid size 2.5 is not a non-negative integer"),
    ({"ceil_div": ["Sq", True]}, "grid size true is not a non-negative integer"),
    ({"mul": ["B", {"ceil_div": ["Sq", "2x"]}]}, 'grid size "2x" is not a size name'),
    ({"mul": ["B", "ceil(Sq / 2)"]}, "predates structured grids"),
    ({"mul": [{"pow": [1, 2]}, "B"]}, "unknown operation 'pow'"),
    # Divisors that are 0 whatever the sizes.
    ({"ceil_div": ["Sq", 0]}, 'grid size {"ceil_div": ["Sq", 0]} divides by 0'),
    ({"div": ["Sq", 0]}, "divides by 0"),
    ({"div": ["Sq", {"mul": ["B", 0]}]}, 'divides by {"mul": ["B", 0]}, which is 0 whatever'),
    ({"ceil_div": ["Sq", {"div": [0, "B"]}]}, "which is 0 whatever the sizes"),
    # Nesting is bounded.
    (_nested(17), "nests operations deeper than 16 levels"),
]


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
    # Grid sizes: data, parsed and checked, never evaluated as Python.
    *[(_manifest("k", grid=[g, 1, 1]), problem) for g, problem in _BAD_GRIDS],
    (_manifest("k", grid=["B", 1]), "grid must have 3 sizes"),
    (_manifest("k", grid=[1, 65536, 1]), "over CUDA's limit of 65535"),
    (_manifest("k", grid=[2**31, 1, 1]), "over CUDA's limit of 2147483647"),
    # Sizes of literals only are checked against the limits when loaded.
    (_manifest("k", grid=[{"mul": [65536, 32768]}, 1, 1]),
     "grid size 0 (mul(65536, 32768)) is 2147483648, over CUDA's limit of 2147483647"),
    (_manifest("k", grid=[1, 1, {"ceil_div": [131071, 2]}]), "over CUDA's limit of 65535"),
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
    # A length alternative's ranges.
    *[(_manifest("k", prefer=p), "prefer must map sizes to [lo, hi] or [lo, null]")
      for p in ({}, [8192, None], {"Sk": [8192]}, {"Sk": [-1, None]}, {"Sk": [64, 64]},
                {"Sk": [64, 32]}, {"Sk": [True, None]}, {"Sk": [0, 1.5]}, {"Sk": None})],
    # Parameters: the ABI Kernel.launch passes.
    (_manifest("k", params=[1]), "params[0] must be a JSON object"),
    (_manifest("k", params=[{"kind": "scalar", "dtype": "i64"}]), "params[0] has no name"),
    (_manifest("k", params=[{"kind": "scalar", "name": "B", "dtype": "i64"}] * 2),
     "a second parameter named 'B'"),
    (_manifest("k", params=[{"kind": "pointer", "name": "q"}]), "unknown kind 'pointer'"),
    (_manifest("k", params=[{"kind": "scalar", "name": "B", "dtype": "i32"}]),
     "scalar dtype must be 'i64'"),
    (_manifest("k", params=[{"kind": "scalar", "name": "scale", "dtype": "f64"}]),
     "scalar dtype must be 'i64' or 'f32', got 'f64'"),
    (_manifest("k", params=[{"kind": "memref", "name": "q", "expands_to": _MEMREF[:3]}]),
     "memref must expand to"),
    (_manifest("k", params=[{"kind": "memref", "name": "q", "expands_to": _MEMREF},
                            {"kind": "tensormap", "name": "t", "tensor": "q", "box": [64, 0]}]),
     "tensormap box must be 2 integers"),
    (_manifest("k", params=[{"kind": "memref", "name": "q", "expands_to": _MEMREF},
                            {"kind": "tensormap", "name": "t", "tensor": "k", "box": [64, 64]}]),
     "tensormap of 'k', which is not a memref parameter"),
    (_manifest("k", params=[{"kind": "memref", "name": "q", "expands_to": _MEMREF},
                            {"kind": "tensormap", "name": "t", "tensor": "q", "box": [64, 64],
                             "passing": "shared"}]),
     "tensormap passing must be 'param' or 'global'"),
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


def _ceil_div(a, b):
    return {"ceil_div": [a, b]}


# The paged decode kernels' grids as attn-compile writes them (rows per
# block 16, 2 value chunks): the split kernel's (row tiles x splits, KV heads
# x chunks, sequences) and the combine kernel's (one block per output row).
_PAGED_SPLIT_GRID = (
    {"mul": [_ceil_div({"mul": [{"div": ["Hq", "Hkv"]}, "Sq"]}, 16), "Splits"]},
    {"mul": ["Hkv", 2]}, "B")
_PAGED_COMBINE_GRID = ({"mul": ["B", "Sq", "Hq"]}, 1, 1)


@pytest.mark.parametrize("grid,problem", _BAD_GRIDS)
def test_parse_grid_size_invalid(grid, problem):
    with pytest.raises(ValueError) as e:
        gpu.parse_grid_size(grid)
    assert problem in str(e.value), str(e.value)


def test_parse_grid_size():
    """Entries parse to what grid_dims evaluates; the kernels' grids as
    attn-compile writes them among them."""
    assert _grid(0, 7, "B") == [0, 7, "B"]
    assert gpu.parse_grid_size(_ceil_div("Sq", 128)) == ("ceil_div", "Sq", 128)
    assert gpu.parse_grid_size({"div": ["Hq", "Hkv"]}) == ("div", "Hq", "Hkv")
    assert gpu.parse_grid_size({"mul": ["B", "Sq", "Hq"]}) == ("mul", "B", "Sq", "Hq")
    split = _grid(*_PAGED_SPLIT_GRID)
    assert split[0] == ("mul", ("ceil_div", ("mul", ("div", "Hq", "Hkv"), "Sq"), 16), "Splits")
    assert [gpu.format_grid_size(g) for g in split] == [
        "mul(ceil_div(mul(div(Hq, Hkv), Sq), 16), Splits)", "mul(Hkv, 2)", "B"]
    # A divisor that may be 0 is checked at launch, not here; 0 as a
    # dividend is a grid with nothing to launch.
    assert gpu.parse_grid_size({"div": ["Sq", "Hkv"]}) == ("div", "Sq", "Hkv")
    assert gpu.parse_grid_size({"div": [0, 4]}) == ("div", 0, 4)
    # The deepest nesting allowed.
    assert gpu.grid_dims(_grid(_nested(16), 1, 1), {"B": 3}) == (3, 1, 1)


def test_grid_dims():
    sizes = {"B": 3, "Hq": 32, "Sq": 1000, "Zero": 0}
    assert gpu.grid_dims(_grid(_ceil_div("Sq", 128), "Hq", "B"), sizes) == (8, 32, 3)
    assert gpu.grid_dims(_grid(_ceil_div("Sq", 8), 1, 1), sizes) == (125, 1, 1)
    assert gpu.grid_dims(_grid(_ceil_div("Sq", 1000), 1, 1), sizes) == (1, 1, 1)
    assert gpu.grid_dims(_grid(_ceil_div("Sq", 1001), 1, 1), sizes) == (1, 1, 1)
    # Floor division and products.
    assert gpu.grid_dims(_grid({"div": ["Sq", 128]}, {"div": ["Hq", "B"]}, 1), sizes) == (7, 10, 1)
    assert gpu.grid_dims(_grid({"mul": ["B", "Hq", 2]}, {"mul": [1, 1]}, 1), sizes) == (192, 1, 1)
    # Sizes as divisors, nested operations.
    assert gpu.grid_dims(_grid(_ceil_div("Sq", "Hq"), _ceil_div({"mul": ["Sq", "B"]}, "Hq"), 1),
                         sizes) == (32, 94, 1)
    # A zero size is a grid with nothing to launch, not an error.
    assert gpu.grid_dims(_grid(_ceil_div("Zero", 128), "Hq", "B"), sizes) == (0, 32, 3)
    assert gpu.grid_dims(_grid({"mul": ["Zero", "Hq"]}, "Hq", "B"), sizes) == (0, 32, 3)
    assert gpu.grid_dims(_grid(0, 1, 1), sizes) == (0, 1, 1)
    # NumPy's integers are integers.
    assert gpu.grid_dims(_grid("B", 1, 1), {"B": np.int64(5)}) == (5, 1, 1)
    assert gpu.grid_dims(_grid(_ceil_div("B", "H"), 1, 1),
                         {"B": np.int32(9), "H": np.uint8(2)}) == (5, 1, 1)
    # CUDA's limits are reachable, not exceeded.
    big = {"X": 2**31 - 1, "Y": 65535}
    assert gpu.grid_dims(_grid("X", "Y", "Y"), big) == (2**31 - 1, 65535, 65535)
    # Intermediate values may exceed the limits; the dimension is what counts.
    assert gpu.grid_dims(_grid({"div": [{"mul": ["X", "X"]}, "X"]}, 1, 1), big) == (2**31 - 1, 1, 1)
    assert gpu.grid_dims(_grid({"min": [{"mul": ["X", "X"]}, "Y"]}, 1, 1), big) == (65535, 1, 1)
    # Minima: the persistent kernels' grid, min(tiles, SMs) (two blocks an SM
    # at head dim 64); "SMs" is a size like any other here.
    persistent = {"min": [{"mul": [_ceil_div("Sq", 128), "Hq", "B"]}, "SMs"]}
    assert gpu.format_grid_size(gpu.parse_grid_size(persistent)) == \
        "min(mul(ceil_div(Sq, 128), Hq, B), SMs)"
    assert gpu.grid_dims(_grid(persistent, 1, 1), dict(sizes, SMs=132)) == (132, 1, 1)
    assert gpu.grid_dims(_grid(persistent, 1, 1), dict(sizes, B=1, Hq=2, SMs=132)) == (16, 1, 1)
    assert gpu.grid_dims(_grid(persistent, 1, 1), dict(sizes, Sq=0, SMs=132)) == (0, 1, 1)
    assert gpu.grid_dims(_grid({"min": ["B", "Hq", {"mul": ["SMs", 2]}]}, 1, 1),
                         dict(sizes, SMs=1)) == (2, 1, 1)
    with pytest.raises(ValueError, match="reads size 'SMs', which was not given"):
        gpu.grid_dims(_grid(persistent, 1, 1), sizes)


@pytest.mark.parametrize("b,hq,hkv,sq,splits,rows,chunks", [
    (b, hq, hkv, sq, s, r, c)
    for b, (hq, hkv), sq, s, r, c in itertools.product(
        (1, 7, 65535), ((32, 8), (8, 8), (128, 1), (16, 4)), (1, 3, 64), (1, 4, 128), (16, 64),
        (1, 2))
])
def test_paged_grids(b, hq, hkv, sq, splits, rows, chunks):
    """The paged kernels' grids from the sizes paged_attention passes are
    the ones it computed itself before grids were expressions (GridX = row
    tiles x splits, GridY = KV heads x value chunks, Rows = B x Sq x Hq)."""
    sizes = {"B": b, "Hq": hq, "Hkv": hkv, "Sq": sq, "MaxPages": 9, "Splits": splits,
             "VStride": 128}
    split = ({"mul": [_ceil_div({"mul": [{"div": ["Hq", "Hkv"]}, "Sq"]}, rows), "Splits"]},
             {"mul": ["Hkv", chunks]}, "B")
    row_tiles = -(-(hq // hkv) * sq // rows)
    assert gpu.grid_dims(_grid(*split), sizes) == (row_tiles * splits, hkv * chunks, b)
    assert gpu.grid_dims(_grid(*_PAGED_COMBINE_GRID), sizes) == (b * sq * hq, 1, 1)


@pytest.mark.parametrize("grid,sizes,problem", [
    (("B", 1, 1), {"B": -1}, "reads B = -1, not a non-negative integer"),
    ((_ceil_div("Sq", 128), 1, 1), {"Sq": -5}, "reads Sq = -5"),  # would round to 0
    (("B", 1, 1), {"B": 2.0}, "reads B = 2.0"),
    (("B", 1, 1), {"B": True}, "reads B = True"),
    (("B", 1, 1), {"B": "4"}, "reads B = '4'"),
    (("B", 1, 1), {"B": np.float32(4)}, "reads B = "),
    (("B", 1, 1), {}, "reads size 'B', which was not given"),
    (("X", 1, 1), {"X": 2**31}, "grid size 0 (X) is 2147483648, over CUDA's limit of 2147483647"),
    ((_ceil_div("X", 2), 1, 1), {"X": 2**32}, "over CUDA's limit of 2147483647"),
    (({"mul": [_ceil_div("X", 2), 2]}, 1, 1), {"X": 2**31 - 1},
     "grid size 0 (mul(ceil_div(X, 2), 2)) is 2147483648, over CUDA's limit"),
    ((1, "Y", 1), {"Y": 65536}, "grid size 1 (Y) is 65536, over CUDA's limit of 65535"),
    ((1, 1, "Z"), {"Z": 65536}, "grid size 2 (Z) is 65536, over CUDA's limit of 65535"),
    ((1, {"mul": ["Y", "Y"]}, 1), {"Y": 256}, "grid size 1 (mul(Y, Y)) is 65536"),
    # A negative dimension is an error even where another is 0, and a bad
    # operand even where another operand is 0.
    (("Z", "B", 1), {"Z": 0, "B": -1}, "reads B = -1"),
    (({"mul": ["Z", "B"]}, 1, 1), {"Z": 0, "B": -1}, "reads B = -1"),
    (({"mul": ["Z", "B"]}, 1, 1), {"Z": 0}, "reads size 'B', which was not given"),
    # Sizes read inside operations: named when missing.
    ((1, {"mul": ["Hkv", 2]}, 1), {"Hq": 8}, "grid size 1 reads size 'Hkv', which was not given"),
    # Division by a size that is 0: an error, even of 0.
    (({"div": ["Hq", "Hkv"]}, 1, 1), {"Hq": 8, "Hkv": 0}, "grid size 0 divides by Hkv = 0"),
    ((_ceil_div("Zero", "Hkv"), 1, 1), {"Zero": 0, "Hkv": 0}, "divides by Hkv = 0"),
    ((1, 1, _ceil_div("Sq", {"div": ["Hq", "Hkv"]})), {"Sq": 4, "Hq": 2, "Hkv": 4},
     "grid size 2 divides by div(Hq, Hkv) = 0"),
])
def test_grid_dims_invalid(grid, sizes, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        gpu.grid_dims(_grid(*grid), sizes)


def test_f32_scalars():
    """Scalars may be f32 (runtime scale and softcap): the manifest loads,
    and the parameter buffer holds each as a 4-byte float beside the i64
    sizes."""
    import ctypes

    params = [{"kind": "scalar", "name": "B", "dtype": "i64"},
              {"kind": "scalar", "name": "scale", "dtype": "f32"},
              {"kind": "scalar", "name": "softcap", "dtype": "f32"}]
    with tempfile.TemporaryDirectory() as d:
        _write_bundle(d, "k", params=params)
        (kernel,) = gpu.load_bundles(d)
    buffer = gpu._ParamBuffer(kernel.manifest["params"])
    args = buffer.fill({}, {"B": 3, "scale": 0.1, "softcap": 30}, None, 0)
    assert ctypes.cast(args[0], ctypes.POINTER(ctypes.c_int64)).contents.value == 3
    raw = [ctypes.string_at(args[i], 4) for i in (1, 2)]
    assert raw == [np.float32(0.1).tobytes(), np.float32(30).tobytes()]


def test_score_values():
    """What the entry points pass for the kernels' run-time value parameters
    (docs/kernel-spec.md): the scale (1/sqrt(D) by default) and, where the
    call has them, the softcap and the window's extents, checked."""
    assert gpu._score_values(64, None, None, None) == {"scale": gpu._f32(0.125)}
    assert gpu._score_values(64, 0.1, 30, [16, 2]) == {
        "scale": gpu._f32(0.1), "softcap": 30.0, "window_left": 16, "window_right": 2}
    assert gpu._score_values(64, None, None, (np.int64(3), 0))["window_left"] == 3
    for bad in (dict(scale=float("nan")), dict(scale="0.1"), dict(scale=True),
                dict(softcap=0.0), dict(softcap=-1.0), dict(softcap=float("inf")),
                dict(window=(-1, 0)), dict(window=(1,)), dict(window=(1.5, 0)),
                dict(window=(True, 0)), dict(window=3)):
        args = {"scale": None, "softcap": None, "window": None}
        args.update(bad)
        with pytest.raises(ValueError):
            gpu._score_values(64, args["scale"], args["softcap"], args["window"])
    # A negative scale asks for a kernel with it compiled in.
    assert gpu._value_want(gpu._score_values(64, -0.5, None, None), None)["specialize"]
    assert "specialize" not in gpu._value_want(gpu._score_values(64, 0.5, None, None), None)


def test_runtime_variants_match_any_value():
    """A kernel whose variant says "runtime" serves every value; one with the
    value compiled in is preferred where both exist, and only it serves a
    request to specialize."""
    class K:
        prefer = None  # not a length alternative

        def __init__(self, variant, kernel="wgmma"):
            self.variant, self.manifest = variant, {"kernel": kernel}
    runtime = K({"scale": "runtime", "softcap": "runtime", "mask": "causal"})
    fixed = K({"scale": 0.125, "softcap": 30.0, "mask": "causal"})
    nocap = K({"scale": "runtime", "softcap": None, "mask": "causal"})
    kernels = [runtime, fixed, nocap]
    want = {"scale": 0.125, "softcap": 30.0, "mask": "causal"}
    assert gpu._find(kernels, want) is fixed
    assert gpu._find(kernels, dict(want, scale=0.5)) is runtime
    assert gpu._find(kernels, dict(want, softcap=None)) is nocap
    with pytest.raises(LookupError):
        gpu._find([runtime], dict(want, specialize=True))
    assert gpu._find(kernels, dict(want, specialize=True)) is fixed

