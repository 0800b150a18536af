# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The native fast path (python/attn/_fastpath.c) without torch or a GPU: the
module is built with this machine's C compiler (attn.native), torch is
fake_torch.py and libcuda is fake_cuda.c, which records every launch's
function, grid, block, shared memory, stream and parameter bytes.

What is checked: the fast path launches exactly what the Python path
launches (the same parameter bytes, including f32 scalars and descriptors
by value; the same grids, as grid_dims gives them); plans are keyed by what
picks a kernel (another dtype, mask, head dim, device or bundle directory
misses, other batch and sequence sizes hit); every bad input falls back to
the Python path (which raises) without a crash; driver errors raise
CudaError; nothing leaks over 100k calls. Tests skip where there is no C
compiler or no Python.h."""

import contextlib
import ctypes
import gc
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from attn import gpu, native  # noqa: E402
import fake_torch as torch  # noqa: E402

bf16, f16, f32 = torch.bfloat16, torch.float16, torch.float32
i32, i64 = torch.int32, torch.int64
MEMREF = ["allocated_ptr", "aligned_ptr", "offset", "size", "stride"]


# --------------------------------------------------------------------------
# Fixtures: the module, the fake driver, the fake torch


@pytest.fixture(scope="session")
def library(tmp_path_factory):
    """The fast path's library, built here (or a skip saying why not)."""
    try:
        return native.build(str(tmp_path_factory.mktemp("fastpath")))
    except LookupError as e:
        pytest.skip(f"the fast path cannot be built here: {e}")


class Driver:
    """fake_cuda.c, loaded, with readers of its launch log."""

    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)
        u32, ptr = ctypes.c_uint, ctypes.c_void_p
        lib.cuLaunchKernel.argtypes = [ptr, u32, u32, u32, u32, u32, u32, u32, ptr, ptr, ptr]
        lib.fake_set_param_sizes.argtypes = [ctypes.c_uint64, ctypes.c_int,
                                             ctypes.POINTER(ctypes.c_int)]
        lib.fake_set_capturing.argtypes = [ctypes.c_uint64]
        lib.fake_launch.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64),
                                    ctypes.c_char_p]

    def describe(self, function, manifest):
        """Tells the fake how many bytes each parameter of `function` has."""
        sizes = []
        for p in manifest["params"]:
            if p["kind"] == "memref":
                sizes += [8] * 5
            elif p["kind"] == "scalar":
                sizes.append(4 if p.get("dtype") == "f32" else 8)
            else:
                sizes.append(128 if p.get("passing") == "param" else 8)
        assert self.lib.fake_set_param_sizes(function, len(sizes),
                                             (ctypes.c_int * len(sizes))(*sizes)) == 0

    def launches(self):
        """[(function, grid, block, shared, stream, bytes)] since the reset."""
        out = []
        for i in range(self.lib.fake_launches()):
            info = (ctypes.c_uint64 * 10)()
            raw = ctypes.create_string_buffer(8192)
            assert self.lib.fake_launch(i, info, raw) == 0
            out.append((info[0], tuple(info[1:4]), tuple(info[4:7]), info[7], info[8],
                        raw.raw[:info[9]]))
        return out


@pytest.fixture(scope="session")
def driver(tmp_path_factory, library):
    out = tmp_path_factory.mktemp("fakecuda") / "libfakecuda.so"
    cc = native.find_compiler()
    subprocess.run(cc + ["-O1", "-fPIC", "-shared", "-o", str(out),
                         os.path.join(HERE, "fake_cuda.c")], check=True)
    return Driver(str(out))


@pytest.fixture
def fast(monkeypatch, library, driver):
    """attn.gpu on the fake torch and driver with the fast path configured;
    returns the module."""
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setenv("ATTN_FASTPATH_SO", library)
    monkeypatch.delenv("ATTN_FASTPATH", raising=False)
    monkeypatch.delenv("ATTN_BUNDLES", raising=False)
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(gpu, "_cuda", driver.lib)
    for name, value in (("_fast", None), ("_fast_module", None), ("_fast_why", None),
                        ("_fast_on", True)):
        monkeypatch.setattr(gpu, name, value)
    for cache in (gpu._resolved, gpu._cache, gpu._matches, gpu._tensor_maps, gpu._sm_counts,
                  gpu._jit_kernels, gpu._device_tensor_maps):
        cache.clear()
    torch.cuda.current, torch.cuda.streams = 0, {}
    torch.reset()
    driver.lib.fake_reset()
    module = gpu._fastpath()
    assert module is not None, gpu._fast_why
    module.clear()
    yield module
    for cache in (gpu._resolved, gpu._cache, gpu._matches):
        cache.clear()


# --------------------------------------------------------------------------
# Bundles: manifests shaped like attn-compile's, empty PTX


def _memref(name, role="tensor"):
    return {"kind": "memref", "name": name, "role": role, "expands_to": MEMREF}


def _scalar(name, dtype="i64"):
    return {"kind": "scalar", "name": name, "dtype": dtype, "role": "size"}


def _tma(tensor, box=(64, 128)):
    return {"kind": "tensormap", "name": tensor + "_tma", "tensor": tensor, "box": list(box),
            "passing": "param"}


def runtime_params(variant):
    """The value parameters the compiler gives a kernel of `variant`
    (KernelSignature::runtimeValues): the scale, the softcap where it has
    one, the window's extents where it is a window."""
    params = [_scalar("scale", "f32")]
    if variant.get("softcap") is not None:
        params.append(_scalar("softcap", "f32"))
    if variant.get("mask") == "window":
        params += [_scalar("window_left"), _scalar("window_right")]
    return params


def dense_variant(dtype="bf16", d=64, dv=None, layout="bhsd", causal=False, window=None,
                  scale=None, softcap=None, bias=None, sinks=None, lse=False):
    """What attn.gpu.attention looks a kernel up by."""
    v = {"dtype": dtype, "head_dim": d, "value_head_dim": dv or d, "layout": layout,
         "mask": "window" if window else ("causal" if causal else "none"),
         "scale": gpu._f32(scale if scale is not None else 1 / math.sqrt(d)),
         "softcap": softcap, "bias": bias is not None, "sinks": sinks is not None, "lse": lse}
    if window:
        v["window_left"], v["window_right"] = window
    if bias is not None:
        v["bias_broadcast"], v["bias_dtype"] = list(bias[0]), bias[1]
    if sinks is not None:
        v["sinks_dtype"] = sinks
    return v


def dense_manifest(name, variant, wgmma=True, global_maps=False, runtime=True):
    params = [_memref(n) for n in ("q", "k", "v", "o")]
    if variant["lse"]:
        params.append(_memref("lse"))
    if variant["bias"]:
        params.append(_memref("bias"))
    if variant["sinks"]:
        params.append(_memref("sinks"))
    if wgmma:
        maps = [_tma("q"), _tma("k", (64, 64)), _tma("v", (64, 64))]
        if global_maps:
            for m in maps:
                m["passing"] = "global"
        params += maps
    params += [_scalar(n) for n in ("B", "Hq", "Hkv", "Sq", "Sk")]
    if runtime:
        params += runtime_params(variant)
    return {"entry": name, "ptx": name + ".ptx", "kernel": "wgmma" if wgmma else "mma.sync",
            "variant": variant, "params": params,
            "grid": [{"ceil_div": ["Sq", 128 if wgmma else 64]}, "Hq", "B"],
            "block": [384 if wgmma else 128, 1, 1],
            "dynamic_shared_memory": 200704 if wgmma else 40960}


def paged_variants(dtype="bf16", d=128, dv=None, page=16, layout="nhd", table="i32",
                   causal=False, window=None, scale=None, softcap=None, sinks=None, lse=False,
                   values="separate"):
    dv = dv or d
    want = {"op": "paged_attention", "dtype": dtype, "head_dim": d, "value_head_dim": dv,
            "page_size": page, "cache_layout": layout, "table_dtype": table,
            "lens_dtype": table,
            "mask": "window" if window else ("causal" if causal else "none"),
            "scale": gpu._f32(scale if scale is not None else 1 / math.sqrt(d)),
            "softcap": softcap, "values": values}
    if window:
        want["window_left"], want["window_right"] = window
    combine = {"op": "paged_combine", "dtype": dtype, "value_head_dim": dv,
               "sinks": sinks is not None, "lse": lse}
    if sinks is not None:
        combine["sinks_dtype"] = sinks
    return want, combine


def paged_manifests(want, combine, rows=16, chunks=2):
    split_grid = [{"mul": [{"ceil_div": [{"mul": [{"div": ["Hq", "Hkv"]}, "Sq"]}, rows]},
                           "Splits"]}, {"mul": ["Hkv", chunks]}, "B"]
    split = {"entry": "split", "ptx": "split.ptx", "kernel": "paged.mma.sync", "variant": want,
             "rows_per_block": rows, "value_chunks": chunks,
             "params": [_memref(n) for n in ("q", "k_cache")] + [_memref("v_cache", "value_cache")]
             + [_memref(n) for n in ("block_table", "seq_lens", "o_part", "lse_part")]
             + [_scalar(n) for n in ("B", "Hq", "Hkv", "Sq", "MaxPages", "Splits", "VStride")]
             + runtime_params(want),
             "grid": split_grid, "block": [128, 1, 1], "dynamic_shared_memory": 102400}
    params = [_memref(n) for n in ("o_part", "lse_part", "o")]
    if combine["lse"]:
        params.append(_memref("lse"))
    if combine["sinks"]:
        params.append(_memref("sinks"))
    comb = {"entry": "combine", "ptx": "combine.ptx", "kernel": "paged.combine",
            "variant": combine,
            "params": params + [_scalar(n) for n in ("B", "Sq", "Hq", "Splits")],
            "grid": [{"mul": ["B", "Sq", "Hq"]}, 1, 1], "block": [128, 1, 1],
            "dynamic_shared_memory": 0}
    return [split, comb]


_dirs = itertools.count()


def bundle_dir(tmp_path, driver, manifests):
    """A bundle directory of `manifests` whose kernels the fake driver knows
    (their functions on devices 0 and 1 loaded and described)."""
    d = tmp_path / f"bundles{next(_dirs)}"
    d.mkdir()
    for m in manifests:
        (d / (m["entry"] + ".json")).write_text(json.dumps(m))
        (d / (m["entry"] + ".ptx")).write_text("")
    for kernel in gpu.load_bundles(str(d)):
        for device in (0, 1):
            with torch.cuda.device(device):
                driver.describe(kernel.function(device).value, kernel.manifest)
    return str(d)


# --------------------------------------------------------------------------
# Calls: the Python path, the first call with the fast path on (the Python
# path, registering), the second (the fast path)


def run(driver, fn):
    """fn()'s result and launches, from a rewound allocator."""
    torch.reset()
    driver.lib.fake_reset()
    result = fn()
    return result, driver.launches()


def _ptrs(result):
    return [t.data_ptr() for t in (result if isinstance(result, tuple) else (result,))]


def _shapes(result):
    return [(t.shape, t.dtype) for t in (result if isinstance(result, tuple) else (result,))]


def three_ways(fast, driver, fn):
    """fn() on the Python path, then twice with the fast path on: the
    launches and results agree, and the third call was a fast one. The
    paged workspaces the fast path keeps are released before each call, so
    that its call allocates as the Python path's does
    (test_paged_workspace_kept_per_stream covers keeping them)."""
    gpu.set_fastpath(False)
    fast.release_workspaces()
    slow, slow_launches = run(driver, fn)
    gpu.set_fastpath(True)
    fast.release_workspaces()
    first, first_launches = run(driver, fn)
    hits = fast.stats()["hits"]
    fast.release_workspaces()
    second, second_launches = run(driver, fn)
    assert fast.stats()["hits"] == hits + 1, fast.stats()
    assert slow_launches, "nothing was launched"
    assert first_launches == slow_launches
    assert second_launches == slow_launches
    assert _shapes(first) == _shapes(slow) == _shapes(second)
    assert _ptrs(first) == _ptrs(slow) == _ptrs(second)
    return second, second_launches


def qkv(b=2, hq=8, hkv=2, sq=100, sk=300, d=64, dv=None, layout="bhsd", dtype=bf16, device=0):
    shape = (lambda h, s, e: (b, h, s, e)) if layout == "bhsd" else (lambda h, s, e: (b, s, h, e))
    return (torch.Tensor(shape(hq, sq, d), dtype, device),
            torch.Tensor(shape(hkv, sk, d), dtype, device),
            torch.Tensor(shape(hkv, sk, dv or d), dtype, device))


# --------------------------------------------------------------------------
# The build


def test_status_and_source_hash(fast, library):
    assert fast.SOURCE_HASH == native.source_hash()
    assert fast.API == gpu._FASTPATH_API
    assert fast.LIMITED_API == native.LIMITED_API
    assert library.endswith("_fastpath.abi3.so")
    assert gpu.fastpath_status().startswith(f"on: {library} (limited API)")
    gpu.set_fastpath(False)
    assert gpu.fastpath_status().startswith("off")
    assert gpu._fastpath() is None
    gpu.set_fastpath(True)
    assert gpu._fastpath() is fast


def test_build_into_cache_then_reuse(tmp_path, monkeypatch, library):
    """The cache entry is built once (lock, rename) and then only loaded."""
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ATTN_FASTPATH_SO", raising=False)
    path = native.build()
    assert path.startswith(str(tmp_path)) and os.path.isfile(path)
    stamp = os.stat(path).st_mtime_ns
    monkeypatch.setenv("CC", "/nonexistent/cc")  # a rebuild would fail
    with pytest.raises(LookupError, match="no C compiler"):
        native.build(str(tmp_path / "elsewhere"))
    monkeypatch.delenv("CC")
    assert native.build() == path and os.stat(path).st_mtime_ns == stamp
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]


def test_unavailable_reasons(tmp_path, monkeypatch, library):
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ATTN_FASTPATH_SO", raising=False)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    module, why = native._load()
    assert module is None and "no C compiler" in why
    monkeypatch.setenv("ATTN_FASTPATH", "0")
    assert native._load() == (None, "off (ATTN_FASTPATH=0)")
    monkeypatch.delenv("ATTN_FASTPATH")
    monkeypatch.delenv("CC")
    monkeypatch.setattr(native, "python_include", lambda: None)
    module, why = native._load()
    assert module is None and "no Python.h" in why and "ATTN_FASTPATH_SO" in why
    # A compiler that fails: its output is the reason.
    bad = tmp_path / "badcc"
    bad.write_text("#!/bin/sh\necho 'cc: it broke' >&2\nexit 3\n")
    bad.chmod(0o755)
    monkeypatch.setattr(native, "python_include", lambda: "/usr/include")
    monkeypatch.setenv("CC", str(bad))
    module, why = native._load()
    assert module is None and "it broke" in why and "exit 3" in why


def test_prebuilt_library_of_another_source_is_refused(tmp_path, monkeypatch, library):
    cc, include = native.find_compiler(), native.python_include()
    other = tmp_path / "_fastpath.abi3.so"
    flags = [f for f in native._flags(True, "0123456789abcdef")]
    subprocess.run(cc + flags + [f"-I{include}", "-o", str(other), native.SOURCE], check=True)
    monkeypatch.setenv("ATTN_FASTPATH_SO", str(other))
    module, why = native._load()
    assert module is None and "built from another _fastpath.c" in why
    monkeypatch.setenv("ATTN_FASTPATH_SO", library)
    module, why = native._load()
    assert module is not None and why == f"{library} (limited API)"


# --------------------------------------------------------------------------
# Launchers: the bytes of _ParamBuffer


def _kernel(tmp_path, driver, manifest):
    d = tmp_path / f"k{next(_dirs)}"
    d.mkdir()
    (d / "k.json").write_text(json.dumps(dict(manifest, entry="k", ptx="k.ptx")))
    (d / "k.ptx").write_text("")
    (kernel,) = gpu.load_bundles(str(d))
    driver.describe(kernel.function(0).value, kernel.manifest)
    return kernel


@pytest.mark.parametrize("shared,opted", [(0, 0), (40960, 0), (47 * 1024, 0),
                                           (48 * 1024, 48 * 1024), (200704, 200704)])
def test_shared_memory_opt_in(fast, driver, tmp_path, shared, opted):
    """A kernel is opted into its dynamic shared memory past the function's
    own limit (the fake's: 48 KB less 1 KB of static, as the attn kernels'),
    not past 48 KB: 48 KB exactly failed to launch on the H200 before."""
    driver.lib.fake_shared_opt_in.argtypes = [ctypes.c_void_p]
    manifest = {"kernel": "wgmma", "variant": {}, "params": [_memref("a")], "grid": [1, 1, 1],
                "block": [256, 1, 1], "dynamic_shared_memory": shared}
    kernel = _kernel(tmp_path, driver, manifest)
    assert driver.lib.fake_shared_opt_in(kernel.function(0).value) == opted


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("shape", [(2, 8, 100, 64), (1, 3, 1, 128), (3, 1, 257, 256)])
def test_launcher_bytes_are_the_param_buffers(fast, driver, tmp_path, layout, shape):
    """A Launcher fills what _ParamBuffer fills: memrefs, i64 sizes, f32
    scalars (per call and constant), descriptors by value."""
    manifest = {"kernel": "wgmma", "variant": {"layout": layout},
                "params": [_memref("a"), _tma("a", (64, 128)), _scalar("N"), _scalar("scale", "f32"),
                           _memref("b"), _scalar("M", "f32"), _tma("b", (32, 16)),
                           _scalar("window_left"), _scalar("softcap", "f32")],
                "grid": [{"ceil_div": ["N", 7]}, {"mul": ["M", 2, "N"]}, {"div": ["N", 3]}],
                "block": [256, 1, 2], "dynamic_shared_memory": 123456}
    kernel = _kernel(tmp_path, driver, manifest)
    a = torch.Tensor(shape, bf16)
    b = torch.Tensor(shape, f16)
    sizes = {"N": 1000, "M": 3}
    consts = {"scale": 0.125 / 3, "softcap": 30.0, "window_left": -7}
    launcher = gpu._native_launcher(fast, kernel, 0, ("a", "b"), ("N", "M"), consts)
    assert launcher is not None
    stream = 0x1234
    driver.lib.fake_reset()
    assert launcher.launch((a, b), (1000, 3), stream) is True
    assert kernel.launch({"a": a, "b": b}, dict(sizes, **consts), stream, 0) is None
    native_launch, python_launch = driver.launches()
    assert native_launch == python_launch
    assert native_launch[1] == gpu.grid_dims(kernel._grid, dict(sizes, **consts))
    assert native_launch[2:5] == ((256, 1, 2), 123456, stream)
    # The f32 constant is the f32 of the value, at its place.
    raw = native_launch[5]
    assert raw[40 + 128 + 8:40 + 128 + 12] == np.float32(0.125 / 3).tobytes()
    # Descriptors are cached: the same tensors again encode nothing.
    encodes = driver.lib.fake_encodes()
    assert launcher.launch((a, b), (1000, 3), stream) is True
    assert driver.lib.fake_encodes() == encodes
    # An empty grid launches nothing; a missing tensor is refused.
    assert launcher.launch((a, b), (0, 3), stream) is False
    assert launcher.launch((a, None), (1000, 3), stream) is None
    assert driver.lib.fake_launches() == 3


def test_launch_set(fast, driver, tmp_path):
    """launch_set launches its Launchers in order with the bytes of their
    own launches; a refusal by any launches none; only the slots some
    launcher reads are looked at; every grid empty is False."""
    base = {"kernel": "mma.sync", "variant": {}, "block": [128, 1, 1],
            "dynamic_shared_memory": 0}
    one = _kernel(tmp_path, driver, dict(base, params=[_memref("a"), _scalar("N")],
                                         grid=["N", 1, 1]))
    two = _kernel(tmp_path, driver, dict(base, params=[_memref("b"), _memref("a")],
                                         grid=[{"ceil_div": ["M", 2]}, 1, 1]))
    first = gpu._native_launcher(fast, one, 0, ("a", "b", "c"), ("N", "M"), {})
    second = gpu._native_launcher(fast, two, 0, ("a", "b", "c"), ("N", "M"), {})
    a, b = torch.Tensor((4, 8), f32), torch.Tensor((3,), bf16)
    driver.lib.fake_reset()
    assert first.launch((a, b, None), (5, 7), 0x77) is True
    assert second.launch((a, b, None), (5, 7), 0x77) is True
    separate = driver.launches()
    driver.lib.fake_reset()
    # Slot c is read by neither: whatever it holds is not looked at.
    assert fast.launch_set((first, second), (a, b, "not a tensor"), (5, 7), 0x77) is True
    assert driver.launches() == separate
    # The second refuses (no tensor for b): the first does not launch either.
    driver.lib.fake_reset()
    assert fast.launch_set((first, second), (a, None, None), (5, 7), 0x77) is None
    assert driver.lib.fake_launches() == 0
    # A read slot that is not a CUDA tensor refuses.
    assert fast.launch_set((first, second), (a, "x", None), (5, 7), 0x77) is None
    # An empty grid launches nothing; all empty is False.
    assert fast.launch_set((first, second), (a, b, None), (0, 7), 0x77) is True
    assert driver.lib.fake_launches() == 1
    assert fast.launch_set((first, second), (a, b, None), (0, 0), 0x77) is False
    with pytest.raises(TypeError, match="not a Launcher"):
        fast.launch_set((first, "x"), (a, b, None), (5, 7), 0x77)
    with pytest.raises(ValueError, match="1 to 8"):
        fast.launch_set((), (a, b, None), (5, 7), 0x77)
    with pytest.raises(TypeError):
        fast.launch_set([first], (a, b, None), (5, 7), 0x77)


def test_launcher_refuses_what_it_cannot_launch(fast, driver, tmp_path):
    base = {"kernel": "mma.sync", "variant": {}, "block": [128, 1, 1],
            "dynamic_shared_memory": 0, "grid": ["N", 1, 1]}
    ok = _kernel(tmp_path, driver, dict(base, params=[_memref("a"), _scalar("N")]))
    assert gpu._native_launcher(fast, ok, 0, ("a",), ("N",), {}) is not None
    # A parameter nothing fills, a descriptor in global memory, a grid
    # reading an unknown size or a float: the Python path keeps them.
    for params, grid in (([_memref("zz")], ["N", 1, 1]),
                         ([_scalar("nope")], ["N", 1, 1]),
                         ([_memref("a"), dict(_tma("a"), passing="global")], ["N", 1, 1]),
                         ([_memref("a")], ["X", 1, 1]),
                         ([_memref("a")], ["scale", 1, 1])):
        kernel = _kernel(tmp_path, driver, dict(base, params=params, grid=grid))
        assert gpu._native_launcher(fast, kernel, 0, ("a",), ("N",), {"scale": 0.5}) is None
    # Specs the module checks itself.
    for spec, grid in (([(9, 0)], [[0, 1]] * 3), ([(0, 99)], [[0, 1]] * 3),
                       ([(3, 0, 0, 64)], [[0, 1]] * 3), ([(1, 16, 0)], [[0, 1]] * 3),
                       ([], [[0, 1, 2, 2]] * 3), ([], [[1, 99]] * 3), ([], [[0, 1, 0, 2]] * 3),
                       ([], [[0, 1]] * 2), ([(0, 0)] * 65, [[0, 1]] * 3),
                       ([], [[0, -1]] * 3), ([], [[0, 1] * 64 + [2, 64]] * 3)):
        with pytest.raises(ValueError, match="Launcher"):
            fast.Launcher(spec, grid, [1, 1, 1], 0, 0x100, 0)
    # Function 0: a kernel not loaded yet, which a launch refuses.
    unloaded = fast.Launcher([(0, 0)], [[0, 1]] * 3, [1, 1, 1], 0, 0, 0)
    assert unloaded.launch([torch.Tensor((4,), bf16)], [], 0) is None
    # A plan's launchers read only the entry point's slots and sizes.
    q, k, v = qkv()
    args = (q, k, v, True, None, None, None, None, None, "bhsd", False, None, None)
    for spec, grid in (([(0, len(fast.DENSE_SLOTS))], [[0, 1]] * 3),
                       ([], [[1, len(fast.DENSE_SIZES)]] * 3)):
        wide = fast.Launcher(spec, grid, [1, 1, 1], 0, 0x100, 0)
        with pytest.raises(TypeError, match="DENSE_SLOTS"):
            fast.register_attention(*args, wide)
    assert fast.register_attention(*args, fast.Launcher([(0, 6)], [[1, 4]] * 3, [1, 1, 1], 0,
                                                        0x100, 0)) is True
    wide = fast.Launcher([(0, len(fast.PAGED_SLOTS))], [[0, 1]] * 3, [1, 1, 1], 0, 0x100, 0)
    with pytest.raises(TypeError, match="PAGED_SLOTS"):
        fast.register_paged_attention(*[None] * 15, wide, wide, 1, 1, 1)


def test_grid_programs_evaluate_as_grid_dims(fast, driver, tmp_path):
    """Grids as attn-compile writes them and nested ones, against
    grid_dims; values past CUDA's limits or int64 are refused."""
    grids = [[{"mul": [{"ceil_div": [{"mul": [{"div": ["Hq", "Hkv"]}, "Sq"]}, 16]}, "Splits"]},
              {"mul": ["Hkv", 2]}, "B"],
             [{"mul": ["B", "Sq", "Hq"]}, 1, 1],
             [{"ceil_div": ["Sq", {"mul": [2, {"div": ["Hq", 3]}]}]}, {"div": [0, "B"]}, 5],
             [{"min": [{"mul": [{"ceil_div": ["Sq", 128]}, "Hq", "B"]}, "Splits"]}, 1,
              {"min": ["Hkv", 7, {"div": ["Sq", "Hq"]}]}]]
    names = ("B", "Hq", "Hkv", "Sq", "Splits")
    rng = np.random.default_rng(0)
    for grid in grids:
        kernel = _kernel(tmp_path, driver, {"kernel": "x", "variant": {}, "params": [],
                                            "grid": grid, "block": [32, 1, 1],
                                            "dynamic_shared_memory": 0})
        launcher = gpu._native_launcher(fast, kernel, 0, (), names, {})
        for _ in range(200):
            sizes = dict(zip(names, map(int, rng.integers(1, 400, size=5))))
            driver.lib.fake_reset()
            try:
                want = gpu.grid_dims(kernel._grid, sizes)
            except ValueError:
                want = None
            got = launcher.launch((), tuple(sizes[n] for n in names), 1)
            if want is None:
                assert got is None
            elif 0 in want:
                assert got is False
            else:
                assert got is True and driver.launches()[0][1] == want
    kernel = _kernel(tmp_path, driver, {"kernel": "x", "variant": {}, "params": [],
                                        "grid": [{"mul": ["B", "B", "B"]}, 1, 1],
                                        "block": [32, 1, 1], "dynamic_shared_memory": 0})
    launcher = gpu._native_launcher(fast, kernel, 0, (), ("B",), {})
    assert launcher.launch((), (1290,), 1) is True  # 1290^3 < 2^31
    assert launcher.launch((), (1291,), 1) is None  # over CUDA's limit
    assert launcher.launch((), (2**22,), 1) is None  # past int64


def test_num_splits_and_row_stride_match_python(fast):
    for b, h, r, length, sms, res in itertools.product(
            (1, 3, 8, 32, 256, 65535), (1, 8, 16), (1, 2, 8), (0, 1, 255, 4096, 65536, 1 << 40),
            (132, 78), (1, 2)):
        assert fast.num_splits(b, h, r, length, res * sms) == \
            gpu.num_splits(b, h, r, length, sms, res), (b, h, r, length, sms, res)
    rng = np.random.default_rng(1)
    for _ in range(3000):
        shape = tuple(int(x) for x in rng.integers(0, 4, size=4))
        stride = tuple(int(x) for x in rng.integers(0, 40, size=4))
        t = torch.Tensor(shape, bf16, stride=stride, ptr=0)
        try:
            want = gpu._row_stride(t)
        except ZeroDivisionError:
            want = None
        assert fast.row_stride(shape, stride) == want, (shape, stride)


# --------------------------------------------------------------------------
# attention: the Python path's launches, key by key


DENSE_CASES = {
    "causal_gqa": dict(causal=True),
    "window_bshd_lse": dict(layout="bshd", window=(32, 0), lse=True),
    "none_scale_softcap": dict(scale=0.1, softcap=30.0),
    "mla_dv": dict(d=192, dv=128, wgmma=False, causal=True),
    "f16_mha": dict(dtype="f16", hq=4, hkv=4),
    "f32": dict(dtype="f32", wgmma=False),
    "sinks_lse": dict(sinks="f32", lse=True, causal=True),
    "bias": dict(bias=((True, False, True, False), "bf16")),
    "no_runtime_params": dict(runtime=False, causal=True),
}
_TORCH_DTYPE = {"bf16": bf16, "f16": f16, "f32": f32}


def _dense_call(tmp_path, driver, case, **call_changes):
    """(bundle directory, fn calling gpu.attention) for a DENSE_CASES entry."""
    c = dict(dict(dtype="bf16", d=64, dv=None, layout="bhsd", causal=False, window=None,
                  scale=None, softcap=None, bias=None, sinks=None, lse=False, wgmma=True,
                  hq=8, hkv=2, runtime=True), **case)
    variant = dense_variant(c["dtype"], c["d"], c["dv"], c["layout"], c["causal"], c["window"],
                            c["scale"], c["softcap"], c["bias"], c["sinks"], c["lse"])
    bundles = bundle_dir(tmp_path, driver,
                         [dense_manifest("k", variant, c["wgmma"], runtime=c["runtime"])])
    q, k, v = qkv(hq=c["hq"], hkv=c["hkv"], d=c["d"], dv=c["dv"], layout=c["layout"],
                  dtype=_TORCH_DTYPE[c["dtype"]])
    kwargs = dict(causal=c["causal"], window=c["window"], scale=c["scale"], softcap=c["softcap"],
                  layout=c["layout"], return_lse=c["lse"], bundles=bundles)
    if c["bias"] is not None:
        full = (2, c["hq"], 100, 300)
        kwargs["bias"] = torch.Tensor([1 if one else n for one, n in zip(c["bias"][0], full)],
                                      _TORCH_DTYPE[c["bias"][1]])
    if c["sinks"] is not None:
        kwargs["sinks"] = torch.Tensor((c["hq"],), _TORCH_DTYPE[c["sinks"]])
    kwargs.update(call_changes)
    return bundles, (q, k, v), kwargs


@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_fast_equals_python(fast, driver, tmp_path, case):
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES[case])
    result, launches = three_ways(fast, driver, lambda: gpu.attention(q, k, v, **kwargs))
    if kwargs["return_lse"]:
        out, lse = result
        assert lse.dtype is f32 and lse.shape == (2, 8, 100)
    else:
        out = result
    assert out.dtype is q.dtype and out.shape[-1] == v.shape[-1]
    (launch,) = launches
    assert launch[4] == 0x5000  # torch's current stream on device 0


def test_dense_out_given_and_window_list(fast, driver, tmp_path):
    """out= is written and returned; window as a list (as the custom op
    passes it) takes the same plan as a tuple."""
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["window_bshd_lse"])
    out = torch.Tensor((2, 100, 8, 64), bf16)
    result, _ = three_ways(fast, driver, lambda: gpu.attention(q, k, v, out=out, **kwargs))
    assert result[0] is out
    kwargs["window"] = [32, 0]
    hits = fast.stats()["hits"]
    gpu.attention(q, k, v, **kwargs)
    assert fast.stats()["hits"] == hits + 1


def test_dense_second_device(fast, driver, tmp_path):
    """Tensors on device 1 while device 0 is current: the Python path (it
    switches devices) on every call; with device 1 current, its own plan
    and its own CUfunction."""
    _, _, kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    q, k, v = qkv(device=1)
    for _ in range(2):
        _, launches = run(driver, lambda: gpu.attention(q, k, v, **kwargs))
        assert launches[0][4] == 0x5001  # device 1's stream
    assert fast.stats()["hits"] == 0 and fast.stats()["rejected"] >= 1
    with torch.cuda.device(1):
        _, fast_launches = three_ways(fast, driver, lambda: gpu.attention(q, k, v, **kwargs))
    q0, k0, v0 = qkv(device=0)
    _, launches0 = run(driver, lambda: gpu.attention(q0, k0, v0, **kwargs))
    assert launches0[0][0] != fast_launches[0][0]  # device 0's function


def test_length_alternatives_pick_by_size(fast, driver, tmp_path):
    """A variant's length alternatives (manifests with "prefer"): each call
    launches the first whose ranges hold its sizes, else the kernel without
    ranges; the fast path picks as the Python path does, from one plan."""
    variant = dense_variant()
    wide = dict(dense_manifest("wide", variant), prefer={"Sk": [256, None]})
    mid = dict(dense_manifest("mid", variant), prefer={"Sk": [128, 256], "Sq": [0, 64]})
    bundles = bundle_dir(tmp_path, driver, [dense_manifest("plain", variant), wide, mid])
    functions = {k.manifest["entry"]: k.function(0).value for k in gpu.load_bundles(bundles)}
    chosen = gpu._find(gpu.load_bundles(bundles), {"dtype": "bf16", "head_dim": 64})
    assert isinstance(chosen, gpu.KernelChoice)
    assert [k.manifest["entry"] for k in chosen.kernels] == ["mid", "wide", "plain"]
    for sq, sk, entry in ((100, 300, "wide"), (100, 256, "wide"), (100, 255, "plain"),
                          (32, 200, "mid"), (64, 200, "plain"), (32, 100, "plain"),
                          (32, 128, "mid"), (1, 4096, "wide")):
        q, _, _ = qkv(sq=sq)
        _, k, v = qkv(sk=sk)
        _, launches = three_ways(fast, driver,
                                 lambda: gpu.attention(q, k, v, bundles=bundles))
        assert [launch[0] for launch in launches] == [functions[entry]], (sq, sk)
    # One plan served every size.
    assert fast.stats()["plans"] == 1, fast.stats()


def test_length_alternatives_load_on_first_use(fast, driver, tmp_path, monkeypatch):
    """A call loads only the kernel it runs: the fast path's plan holds
    the others without a function until a call needs one, which the Python
    path then loads (registering the plan again); from then on it is fast."""
    variant = dense_variant()
    bundles = bundle_dir(tmp_path, driver, [
        dense_manifest("plain", variant),
        dict(dense_manifest("wide", variant), prefer={"Sk": [256, None]})])
    for kernel in gpu.load_bundles(bundles):
        kernel._functions.clear()
    loads = []
    function = gpu.Kernel.function

    def load(self, device=None):
        if device not in self._functions:
            loads.append(self.manifest["entry"])
            driver.describe(function(self, device).value, self.manifest)
        return function(self, device)

    monkeypatch.setattr(gpu.Kernel, "function", load)
    q, _, _ = qkv()
    short, long_ = qkv(sk=100)[1:], qkv(sk=300)[1:]
    stats = fast.stats
    for (k, v), entry, hits, rejected in ((short, "plain", 0, 0), (short, "plain", 1, 0),
                                          (long_, "wide", 1, 1), (long_, "wide", 2, 1),
                                          (short, "plain", 3, 1)):
        _, launches = run(driver, lambda: gpu.attention(q, k, v, bundles=bundles))
        entries = {k.function(0).value: k.manifest["entry"]
                   for k in gpu.load_bundles(bundles) if 0 in k._functions}
        assert [entries[launch[0]] for launch in launches] == [entry]
        assert (stats()["hits"], stats()["rejected"]) == (hits, rejected), stats()
    assert loads == ["plain", "wide"]


def test_length_alternatives_alone_or_apart(fast, driver, tmp_path):
    """Where only an alternative matches, it serves every size (the fast
    path registers it without its ranges); an alternative of another
    variant or body is not one of this kernel's."""
    variant = dense_variant()
    only = bundle_dir(tmp_path, driver,
                      [dict(dense_manifest("only", variant), prefer={"Sk": [256, None]})])
    function = gpu.load_bundles(only)[0].function(0).value
    for sk in (100, 300):
        q, k, v = qkv(sk=sk)
        _, launches = three_ways(fast, driver, lambda: gpu.attention(q, k, v, bundles=only))
        assert [launch[0] for launch in launches] == [function]
    other = dict(dense_manifest("lse", dense_variant(lse=True)), prefer={"Sk": [0, None]})
    mma = dict(dense_manifest("mma", variant, wgmma=False), prefer={"Sk": [0, None]})
    apart = bundle_dir(tmp_path, driver, [dense_manifest("plain", variant), other, mma])
    assert gpu._find(gpu.load_bundles(apart), {"head_dim": 64, "lse": False}).manifest[
        "entry"] == "plain"
    # A kernel without "prefer" is the default even where an alternative
    # ranks higher (a faster body, values compiled in): here the mma.sync
    # kernel, and the wgmma kernel is not one of its alternatives (another
    # body).
    fixed = dict(dense_manifest("fixed", variant, runtime=False), prefer={"Sk": [256, None]})
    slow = bundle_dir(tmp_path, driver, [dense_manifest("slow", variant, wgmma=False), fixed])
    found = gpu._find(gpu.load_bundles(slow), {"head_dim": 64, "scale": variant["scale"]})
    assert found.manifest["entry"] == "slow" and not isinstance(found, gpu.KernelChoice)


def test_register_attention_checks_alternatives(fast):
    """register_attention takes a Launcher or a tuple: alternatives with
    ranges first, then one without; prefer ranges are checked."""
    q, k, v = qkv()
    args = (q, k, v, True, None, None, None, None, None, "bhsd", False, None, None)

    def launcher(prefer=()):
        return fast.Launcher([(0, 0)], [[1, 4]] * 3, [1, 1, 1], 0, 0x100, 0, prefer)

    ranged, plain = launcher([(4, 8192, -1)]), launcher()
    assert fast.register_attention(*args, (ranged, launcher([(4, 0, 8), (3, 1, 2)]), plain))
    for bad in ((ranged,), (plain, plain), (plain, ranged), (), (ranged,) * 8 + (plain,),
                (ranged, "x")):
        with pytest.raises(TypeError, match="tuple"):
            fast.register_attention(*args, bad)
    for prefer in ([(4, 5, 5)], [(4, -1, -1)], [(16, 0, -1)], [(4, 0)], [4],
                   [(0, 0, -1)] * 3):
        with pytest.raises(ValueError, match="Launcher"):
            launcher(prefer)


def _grad_manifest(name, kind, step, variant, workspaces):
    """An attention_grad kernel of `variant` at `step` that takes the
    workspaces `workspaces` ([(name, dtype, shape)])."""
    params = [_memref(n) for n in ("q", "k", "v", "o", "do", "lse")]
    params += [dict(_memref(n, "workspace"), dtype=t, shape=shape)
               for n, t, shape in workspaces]
    params += [_memref(n) for n in ("dq", "dk", "dv")]
    params += [_scalar(n) for n in ("B", "Hq", "Hkv", "Sq", "Sk")] + runtime_params(variant)
    return {"entry": name, "ptx": name + ".ptx", "kernel": kind, "step": step,
            "variant": variant, "params": params, "grid": [{"ceil_div": ["Sq", 64]}, "Hq", "B"],
            "block": [128, 1, 1], "dynamic_shared_memory": 0}


def _grad_bundles(tmp_path, driver, manifests):
    """The bundle directory of the backward kernels `manifests`, their
    functions by entry, and a call's (do, q, k, v, out, lse): B 2, Hq 8,
    Hkv 2, Sq 100, Sk 300, head dim 64, bf16."""
    bundles = bundle_dir(tmp_path, driver, manifests)
    kernels = {kern.manifest["entry"]: kern.function(0).value
               for kern in gpu.load_bundles(bundles)}
    q, k, v = qkv(b=2, hq=8, hkv=2, sq=100, sk=300, d=64)
    o, do = torch.empty(q.shape, dtype=bf16, device=0), torch.empty(q.shape, dtype=bf16, device=0)
    lse = torch.empty((2, 8, 100), dtype=f32, device=0)
    return bundles, kernels, (do, q, k, v, o, lse)


def test_attention_backward_runs_the_manifests_steps(fast, driver, tmp_path, monkeypatch):
    """attention_backward runs a kernel set's steps in order, however many
    (here a prep pass, dK/dV and a convert pass, as the fused dQ of
    docs/design-backward.md will be), and allocates each workspace once, as
    its manifest shapes it: Delta [B, Hq, Sq] and an f32 dQ accumulator
    [B, Hq, Sq, D]. A set with a gap in its steps is no match."""
    variant = dict(dense_variant(d=64), op="attention_grad")
    del variant["lse"]
    delta = ("delta", "f32", ["B", "Hq", "Sq"])
    accum = ("dq_accum", "f32", ["B", "Hq", "Sq", 64])
    manifests = [_grad_manifest("convert", "attention_grad.convert", 2, variant, [accum]),
                 _grad_manifest("prep", "attention_grad.prep", 0, variant, [delta, accum]),
                 _grad_manifest("dkdv", "attention_grad.dkdv", 1, variant, [delta, accum])]
    bundles = bundle_dir(tmp_path, driver, manifests)
    q, k, v = qkv(b=2, hq=8, hkv=2, sq=100, sk=300, d=64)
    o, do = torch.empty(q.shape, dtype=bf16, device=0), torch.empty(q.shape, dtype=bf16, device=0)
    lse = torch.empty((2, 8, 100), dtype=f32, device=0)
    gpu.set_fastpath(False)
    grads, launches = run(driver, lambda: gpu.attention_backward(do, q, k, v, o, lse,
                                                                 bundles=bundles,
                                                                 deterministic=True))
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape]
    kernels = {kern.manifest["entry"]: kern.function(0).value
               for kern in gpu.load_bundles(bundles)}
    assert [launch[0] for launch in launches] == [kernels[n] for n in ("prep", "dkdv", "convert")]

    def memref(raw, index):  # (aligned pointer, size) of memref parameter `index`
        fields = [int.from_bytes(raw[8 * f:8 * f + 8], "little") for f in range(5 * index,
                                                                                5 * index + 5)]
        return fields[1], fields[3]
    prep, dkdv, convert = (launch[5] for launch in launches)
    # prep: q k v o do lse | delta dq_accum; dkdv likewise; convert: ... | dq_accum.
    assert memref(prep, 6)[1] == 2 * 8 * 100 and memref(prep, 7)[1] == 2 * 8 * 100 * 64
    assert memref(dkdv, 6) == memref(prep, 6) and memref(dkdv, 7) == memref(prep, 7)
    assert memref(convert, 6) == memref(prep, 7)
    assert memref(prep, 6)[0] != memref(prep, 7)[0]

    # Steps 0 and 2 only: no match in the bundles, so the variant goes to
    # the JIT (stubbed here).
    from attn import jit

    def no_jit(variant, chip):
        raise RuntimeError(f"jit asked for {variant['op']}")
    monkeypatch.setattr(jit, "compile_variant", no_jit)
    gap = bundle_dir(tmp_path, driver, [manifests[0], manifests[1]])
    with pytest.raises(RuntimeError, match="jit asked for attention_grad"):
        gpu.attention_backward(do, q, k, v, o, lse, bundles=gap)


def test_attention_backward_deterministic_picks_its_set(fast, driver, tmp_path):
    """A bundle directory with both backward sets of a variant: the
    deterministic one (dq, dkdv) for deterministic=True, the fused one
    (prep, dkdv_dq, convert, variant "deterministic": false) for
    deterministic=False, and its "dq_reduce": "atomic" twin only for
    dq_reduce="atomic"; the sets never mix, although they share steps. By
    default, as torch.are_deterministic_algorithms_enabled() says."""
    variant = dict(dense_variant(d=64), op="attention_grad")
    del variant["lse"]
    nd = dict(variant, deterministic=False)
    delta = ("delta", "f32", ["B", "Hq", "Sq"])
    accum = ("dq_accum", "f32", ["B", "Hq", {"ceil_div": ["Sq", 64]}, 64 * 64])
    manifests = [_grad_manifest("dq", "attention_grad.dq", 0, variant, [delta]),
                 _grad_manifest("dkdv", "attention_grad.dkdv", 1, variant, [delta]),
                 _grad_manifest("prep", "attention_grad.prep", 0, nd, [delta, accum]),
                 _grad_manifest("dkdv_dq", "attention_grad.dkdv_dq", 1, nd, [delta, accum]),
                 _grad_manifest("convert", "attention_grad.dq_convert", 2, nd, [accum])]
    atomic = dict(nd, dq_reduce="atomic")
    manifests += [_grad_manifest("a_" + m["entry"], m["kernel"], m["step"], atomic,
                                 [delta, accum])
                  for m in manifests[2:]]
    bundles, kernels, (do, q, k, v, o, lse) = _grad_bundles(tmp_path, driver, manifests)
    gpu.set_fastpath(False)
    for deterministic, reduce, names in (
            (True, None, ("dq", "dkdv")), (False, None, ("prep", "dkdv_dq", "convert")),
            (False, "bulk", ("prep", "dkdv_dq", "convert")),
            (False, "atomic", ("a_prep", "a_dkdv_dq", "a_convert"))):
        _, launches = run(driver, lambda: gpu.attention_backward(
            do, q, k, v, o, lse, bundles=bundles, deterministic=deterministic,
            dq_reduce=reduce))
        assert [launch[0] for launch in launches] == [kernels[n] for n in names]
    before = torch.are_deterministic_algorithms_enabled()
    try:
        for mode, names in ((False, ("prep", "dkdv_dq", "convert")), (True, ("dq", "dkdv"))):
            torch.use_deterministic_algorithms(mode)
            _, launches = run(driver, lambda: gpu.attention_backward(
                do, q, k, v, o, lse, bundles=bundles))
            assert [launch[0] for launch in launches] == [kernels[n] for n in names]
    finally:
        torch.use_deterministic_algorithms(before)
    with pytest.raises(ValueError, match="dq_reduce"):
        gpu.attention_backward(do, q, k, v, o, lse, bundles=bundles, dq_reduce="tree")
    # The fused set's dq_accum: ceil(100 / 64) = 2 tiles of 64 x 64 f32 a
    # (batch, head).
    _, launches = run(driver, lambda: gpu.attention_backward(
        do, q, k, v, o, lse, bundles=bundles, deterministic=False))
    raw = launches[0][5]
    size = int.from_bytes(raw[8 * (5 * 7 + 3):8 * (5 * 7 + 4)], "little")
    assert size == 2 * 8 * 2 * 64 * 64


def _grad_call(tmp_path, driver):
    """(kernel functions by entry, args, kwargs) of an attention_backward
    call whose bundles hold both backward sets and the sink gradient: the
    deterministic set's kernels take descriptors by value, `row_stats`, a
    window's run-time extents and a bias."""
    variant = dict(dense_variant(d=64, window=(16, 0), sinks="f32",
                                 bias=((True, False, False, False), "bf16")),
                   op="attention_grad")
    del variant["lse"]
    nd = dict(variant, deterministic=False)
    delta = ("delta", "f32", ["B", "Hq", "Sq"])
    stats = ("row_stats", "f32", ["B", "Hq", {"ceil_div": ["Sq", 64]}, 128])
    accum = ("dq_accum", "f32", ["B", "Hq", {"ceil_div": ["Sq", 64]}, 64 * 64])
    manifests = [_grad_manifest("dq", "attention_grad.dq", 0, variant, [delta, stats]),
                 _grad_manifest("dkdv", "attention_grad.dkdv", 1, variant, [delta, stats]),
                 _grad_manifest("prep", "attention_grad.prep", 0, nd, [delta, stats, accum]),
                 _grad_manifest("dkdv_dq", "attention_grad.dkdv_dq", 1, nd,
                                [delta, stats, accum]),
                 _grad_manifest("convert", "attention_grad.dq_convert", 2, nd, [accum])]
    for m in manifests[:4]:
        m["params"][3:3] = [_memref("bias")]
        m["params"] += [_tma("q", (64, 128)), _tma("k"), _tma("v"), _tma("do", (64, 128))]
    sinks = {"entry": "dsinks", "ptx": "dsinks.ptx", "kernel": "attention_grad.dsinks",
             "params": [_memref("sinks"), _memref("lse"),
                        dict(_memref("delta", "workspace"), dtype="f32",
                             shape=["B", "Hq", "Sq"]),
                        _memref("dsinks")] + [_scalar(n) for n in ("B", "Hq", "Sq")],
             "grid": [{"ceil_div": ["Hq", 128]}, 1, 1], "block": [128, 1, 1],
             "dynamic_shared_memory": 0}
    manifests += [dict(sinks, variant=variant, step=2),
                  dict(sinks, entry="nd_dsinks", ptx="nd_dsinks.ptx", variant=nd, step=3)]
    bundles, kernels, (do, q, k, v, o, lse) = _grad_bundles(tmp_path, driver, manifests)
    kwargs = dict(window=(16, 0), bundles=bundles,
                  bias=torch.Tensor((1, 8, 100, 300), bf16), sinks=torch.Tensor((8,), f32))
    return kernels, (do, q, k, v, o, lse), kwargs


def test_attention_backward_native_launches_equal_python(fast, driver, tmp_path, monkeypatch):
    """With the fast path on, attention_backward's first call launches the
    set through launch_set and registers a plan; later calls are the
    module's own (a hit: gradients and workspaces allocated and every
    kernel launched in C). Either way Kernel.launch is never called, and
    the launches (bytes, grids, stream) and the gradients' storage are the
    Python path's: the deterministic set (descriptors by value,
    `row_stats`, a window's run-time extents, a bias), the fused set (prep,
    dkdv_dq, convert, with `dq_accum`), and the sink gradient."""
    assert fast.GRAD_SLOTS == gpu._GRAD_SLOTS
    assert fast.DENSE_SIZES == gpu._GRAD_SIZES
    kernels, args, kwargs = _grad_call(tmp_path, driver)
    python_launches = []
    original = gpu.Kernel.launch

    def counted(self, *a, **kw):
        python_launches.append(self.manifest["entry"])
        return original(self, *a, **kw)
    monkeypatch.setattr(gpu.Kernel, "launch", counted)
    for deterministic, names in ((True, ("dq", "dkdv", "dsinks")),
                                 (False, ("prep", "dkdv_dq", "convert", "nd_dsinks"))):
        def call():
            return gpu.attention_backward(*args, deterministic=deterministic, **kwargs)
        gpu.set_fastpath(False)
        slow, slow_launches = run(driver, call)
        assert python_launches == list(names)
        assert len(slow) == 4  # dq, dk, dv, dsinks
        gpu.set_fastpath(True)
        for attempt in range(3):
            python_launches.clear()
            hits = fast.stats()["hits"]
            grads, launches = run(driver, call)
            assert fast.stats()["hits"] == hits + (attempt > 0)
            assert python_launches == []
            assert launches == slow_launches
            assert [launch[0] for launch in launches] == [kernels[n] for n in names]
            assert _ptrs(grads) == _ptrs(slow) and _shapes(grads) == _shapes(slow)
        python_launches.clear()
    # torch's deterministic switch picks the set when deterministic=None.
    before = torch.are_deterministic_algorithms_enabled()
    try:
        for mode, names in ((True, ("dq", "dkdv", "dsinks")),
                            (False, ("prep", "dkdv_dq", "convert", "nd_dsinks"))):
            torch.use_deterministic_algorithms(mode)
            hits = fast.stats()["hits"]
            _, launches = run(driver, lambda: gpu.attention_backward(*args, **kwargs))
            assert fast.stats()["hits"] == hits + 1
            assert [launch[0] for launch in launches] == [kernels[n] for n in names]
    finally:
        torch.use_deterministic_algorithms(before)


def test_register_attention_backward_checks_its_plan(fast, driver, tmp_path):
    """A backward plan's launchers and workspaces are checked when it is
    registered: Launchers within GRAD_SLOTS and the dense sizes, 1 to 8 of
    them, workspaces (slot, dims) with a workspace's slot and 1 to 4 dims of
    valid programs over the dense sizes."""
    _, args, kwargs = _grad_call(tmp_path, driver)
    call = list(args) + [False, None, None, None, None, None, "bhsd", kwargs["bundles"], None,
                         False, None]
    ok = fast.Launcher([(0, 0)], [[0, 1]] * 3, [1, 1, 1], 0, 0x100, 0)
    delta = (7, ((1, 0), (1, 1), (1, 3)))
    assert fast.register_attention_backward(*call, (ok,), (delta,)) is True
    for launchers, workspaces, error in (
            ((), (delta,), TypeError),
            ((ok,) * 9, (delta,), TypeError),
            ((fast.Launcher([(0, len(fast.GRAD_SLOTS))], [[0, 1]] * 3, [1, 1, 1], 0, 0x100,
                            0),), (delta,), TypeError),
            ((ok,), (delta,) * 5, TypeError),
            ((ok,), ((0, ((0, 1),)),), ValueError),  # q is not a workspace
            ((ok,), ((8, ()),), ValueError),
            ((ok,), ((8, ((0, 1),) * 5),), ValueError),
            ((ok,), ((8, ((1, 7),)),), ValueError),  # a size past the dense sizes
            ((ok,), ((8, ((0, 1, 2, 2),)),), ValueError),
            ((ok,), ((8,),), ValueError),
            ((ok,), ((8, ((0, 1),)), (8, ((0, 2),))), ValueError)):  # a slot twice
        with pytest.raises(error):
            fast.register_attention_backward(*call, launchers, workspaces)
    with pytest.raises(TypeError):
        fast.register_attention_backward(*call, [ok], (delta,))
    # A call the module does not take registers nothing.
    assert fast.register_attention_backward(*call[:12], "bxyz", *call[13:], (ok,),
                                            (delta,)) is False


def test_attention_backward_plan_for_default_bundles(fast, driver, tmp_path, monkeypatch):
    """bundles=None (autograd's default) is a key of its own: the plan made
    by the Python path serves the later calls while $ATTN_BUNDLES is the
    same, and not after it changes."""
    _, args, kwargs = _grad_call(tmp_path, driver)
    monkeypatch.setenv("ATTN_BUNDLES", kwargs.pop("bundles"))
    gpu.set_fastpath(True)
    gpu.attention_backward(*args, deterministic=False, **kwargs)
    hits = fast.stats()["hits"]
    for _ in range(2):
        gpu.attention_backward(*args, deterministic=False, **kwargs)
    assert fast.stats()["hits"] == hits + 2
    monkeypatch.setenv("ATTN_BUNDLES", str(tmp_path / "elsewhere"))
    from attn import jit

    def no_jit(variant, chip):
        raise RuntimeError(f"jit asked for {variant['op']}")
    monkeypatch.setattr(jit, "compile_variant", no_jit)
    misses = fast.stats()["misses"]
    with pytest.raises(RuntimeError, match="jit asked for attention_grad"):
        gpu.attention_backward(*args, deterministic=False, **kwargs)
    assert fast.stats()["misses"] == misses + 1


def test_attention_backward_past_max_set_keeps_the_python_path(fast, driver, tmp_path):
    """A kernel set of more steps than a plan holds (MAX_SET) runs on the
    Python path, every step, and registers no plan."""
    variant = dict(dense_variant(d=64), op="attention_grad")
    del variant["lse"]
    delta = ("delta", "f32", ["B", "Hq", "Sq"])
    n = fast.MAX_SET + 1
    manifests = [_grad_manifest(f"s{i}", f"attention_grad.s{i}", i, variant, [delta])
                 for i in range(n)]
    bundles, kernels, args = _grad_bundles(tmp_path, driver, manifests)
    gpu.set_fastpath(True)
    plans = fast.stats()["plans"]
    for _ in range(2):
        _, launches = run(driver, lambda: gpu.attention_backward(*args, bundles=bundles,
                                                                 deterministic=True))
        assert [launch[0] for launch in launches] == [kernels[f"s{i}"] for i in range(n)]
    assert fast.stats()["plans"] == plans


def test_attention_backward_falls_back_on_bad_input(fast, driver, tmp_path):
    """Calls the module does not take go to the Python path, which raises
    its errors; nothing is launched for them."""
    _, args, kwargs = _grad_call(tmp_path, driver)
    do, q, k, v, o, lse = args
    gpu.set_fastpath(True)
    gpu.attention_backward(*args, deterministic=False, **kwargs)  # the plan
    bad = [
        (dict(kernel="tree"), "kernel must be"),
        (dict(dq_reduce="tree"), "dq_reduce must be"),
        (dict(causal=True), "either causal=True or window"),
        (dict(scale=float("nan")), "scale must be a finite number"),
        (dict(sinks=torch.Tensor((7,), f32)), "sinks must be a CUDA tensor"),
        (dict(bias=torch.Tensor((1, 8, 100, 299), bf16)), "bias must be"),
    ]
    for change, message in bad:
        driver.lib.fake_reset()
        with pytest.raises(ValueError, match=message):
            gpu.attention_backward(*args, deterministic=False, **dict(kwargs, **change))
        assert driver.lib.fake_launches() == 0
    for position, replacement, message in (
            (5, torch.empty((2, 8, 100), dtype=bf16, device=0), "lse must be"),
            (4, torch.empty((2, 8, 99, 64), dtype=bf16, device=0), "out and do must"),
            (0, torch.empty(q.shape, dtype=f16, device=0), "must have q's dtype")):
        changed = list(args)
        changed[position] = replacement
        driver.lib.fake_reset()
        rejected = fast.stats()["rejected"]
        with pytest.raises(ValueError, match=message):
            gpu.attention_backward(*changed, deterministic=False, **kwargs)
        assert fast.stats()["rejected"] == rejected + 1
        assert driver.lib.fake_launches() == 0


def test_dense_persistent_grid(fast, driver, tmp_path):
    """A persistent kernel's grid, min(tiles, SMs), reads the device's SM
    count (the fake torch's 132): the same launches on both paths, at sizes
    of fewer tiles than SMs and of more."""
    variant = dense_variant("bf16", 64, None, "bhsd", True, None, None, None, None, None, False)
    manifest = dense_manifest("k", variant)
    manifest["grid"] = [{"min": [{"mul": [{"ceil_div": ["Sq", 128]}, "Hq", "B"]},
                                 {"mul": ["SMs", 2]}]}, 1, 1]
    bundles = bundle_dir(tmp_path, driver, [manifest])
    for b, sq, want in ((2, 100, 16), (2, 129, 32), (4, 1000, 256), (4, 2000, 264)):
        q, k, v = qkv(b=b, sq=sq, sk=sq)
        _, launches = three_ways(fast, driver,
                                 lambda: gpu.attention(q, k, v, causal=True, bundles=bundles))
        assert [launch[1] for launch in launches] == [(want, 1, 1)], (b, sq)


def test_dense_empty_grid(fast, driver, tmp_path):
    """No query rows: nothing launched either way; outputs still made."""
    _, _, kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    q, k, v = qkv(sq=0)
    for enabled in (False, True, True):
        gpu.set_fastpath(enabled)
        out, launches = run(driver, lambda: gpu.attention(q, k, v, **kwargs))
        assert launches == [] and out.shape == (2, 8, 0, 64)
    assert fast.stats()["hits"] == 1


def test_dense_keys(fast, driver, tmp_path, monkeypatch):
    """Another dtype, head dim, mask, layout, scale, LSE, sinks, bias
    broadcast, device or bundle directory misses; other sizes hit."""
    bundles, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    gpu.attention(q, k, v, **kwargs)  # registers

    def hit(*tensors, **changes):
        before = dict(fast.stats())
        result = fast.attention(*tensors, *[dict(kwargs, **changes).get(n) for n in (
            "causal", "window", "softcap", "scale", "bias", "sinks", "layout", "return_lse",
            "bundles", "out")])
        after = fast.stats()
        assert (result is not None) == (after["hits"] == before["hits"] + 1)
        return result is not None

    assert hit(q, k, v)
    assert hit(*qkv(b=5, hq=16, hkv=4, sq=1, sk=4000))  # sizes are not in the key
    assert not hit(q, k, v, causal=False)
    assert not hit(*qkv(dtype=f16))
    assert not hit(*qkv(d=128))
    assert not hit(*qkv(dv=32))
    assert not hit(*qkv(layout="bshd"), layout="bshd")
    assert not hit(q, k, v, scale=0.125)
    assert not hit(q, k, v, softcap=50.0)
    assert not hit(q, k, v, return_lse=True)
    assert not hit(q, k, v, sinks=torch.Tensor((8,), f32))
    assert not hit(q, k, v, bias=torch.Tensor((1, 8, 100, 300), bf16))
    assert not hit(q, k, v, bundles=bundles + "/")
    assert not hit(q, k, v, bundles=None)
    with torch.cuda.device(1):
        assert not hit(*qkv(device=1))
    assert fast.stats()["misses"] == 14  # and the first call's
    # bundles=None: the plan holds for the $ATTN_BUNDLES it was made with.
    monkeypatch.setenv("ATTN_BUNDLES", bundles)
    gpu.attention(q, k, v, **dict(kwargs, bundles=None))
    assert hit(q, k, v, bundles=None)
    monkeypatch.setenv("ATTN_BUNDLES", bundles + "/.")
    assert not hit(q, k, v, bundles=None)
    monkeypatch.delenv("ATTN_BUNDLES")
    assert not hit(q, k, v, bundles=None)


class _Odd(torch.Tensor):
    """A tensor subclass: taken only by the Python path."""


class _Raising(torch.Tensor):
    def __init__(self, error, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.error = error

    def data_ptr(self):
        raise self.error


class _SymSize(int):
    """Not an exact int, as a symbolic size would not be."""


def _bad_dense(q, k, v):
    """(name, q, k, v, keyword changes) the fast path must not take."""
    bad = [
        ("q on the host", torch.Tensor(q.shape, bf16, is_cuda=False), k, v, {}),
        ("q 3-D", torch.Tensor(q.shape[1:], bf16), k, v, {}),
        ("k strided", q, torch.Tensor(k.shape, bf16, stride=(1, 1, 1, 1)), v, {}),
        ("v f16", q, k, torch.Tensor(v.shape, f16), {}),
        ("all int32", *(torch.Tensor(t.shape, i32) for t in (q, k, v)), {}),
        ("heads 8 over 3", torch.Tensor((2, 8, 100, 64)), torch.Tensor((2, 3, 300, 64)),
         torch.Tensor((2, 3, 300, 64)), {}),
        ("no KV heads", torch.Tensor((2, 8, 100, 64)), torch.Tensor((2, 0, 300, 64)),
         torch.Tensor((2, 0, 300, 64)), {}),
        ("batch", q, torch.Tensor((3, 2, 300, 64)), torch.Tensor((3, 2, 300, 64)), {}),
        ("head dim", q, torch.Tensor((2, 2, 300, 32)), v, {}),
        ("v keys", q, k, torch.Tensor((2, 2, 299, 64)), {}),
        ("unaligned", q.offset(8), k, v, {}),
        ("k on device 1", q, torch.Tensor(k.shape, bf16, device=1), v, {}),
        ("subclass", _Odd(q.shape, bf16), k, v, {}),
        ("symbolic size", torch.Tensor((2, 8, _SymSize(100), 64)), k, v, {}),
        ("q None", None, k, v, {}),
        ("q an int", 7, k, v, {}),
        ("q a string", "q", k, v, {}),
        ("q an array", np.zeros((2, 8, 100, 64)), k, v, {}),
        ("data_ptr raises", _Raising(RuntimeError("no"), q.shape, bf16), k, v, {}),
        ("causal=1", q, k, v, {"causal": 1}),
        ("causal and window", q, k, v, {"window": (4, 0)}),
        ("window of 3", q, k, v, {"causal": False, "window": (1, 2, 3)}),
        ("window of floats", q, k, v, {"causal": False, "window": (1.0, 0.0)}),
        ("window a string", q, k, v, {"causal": False, "window": "ab"}),
        ("window huge", q, k, v, {"causal": False, "window": (2**70, 0)}),
        ("layout", q, k, v, {"layout": "bsdh"}),
        ("layout bytes", q, k, v, {"layout": b"bhsd"}),
        ("scale an int", q, k, v, {"scale": 1}),
        ("scale a string", q, k, v, {"scale": "0.1"}),
        ("softcap numpy", q, k, v, {"softcap": np.float32(3)}),
        ("return_lse=1", q, k, v, {"return_lse": 1}),
        ("bundles a path", q, k, v, {"bundles": __import__("pathlib").Path("/x")}),
        ("out shape", q, k, v, {"out": torch.Tensor((2, 8, 100, 32))}),
        ("out dtype", q, k, v, {"out": torch.Tensor((2, 8, 100, 64), f16)}),
        ("out strided", q, k, v, {"out": torch.Tensor((2, 8, 100, 64), stride=(1, 1, 1, 1))}),
        ("out unaligned", q, k, v, {"out": torch.Tensor((2, 8, 100, 64)).offset(2)}),
        ("sinks shape", q, k, v, {"sinks": torch.Tensor((4,), f32)}),
        ("sinks strided", q, k, v, {"sinks": torch.Tensor((8,), f32, stride=(2,))}),
        ("bias not broadcastable", q, k, v, {"bias": torch.Tensor((2, 8, 7, 300))}),
        ("bias 3-D", q, k, v, {"bias": torch.Tensor((8, 100, 300))}),
        ("bias int", q, k, v, {"bias": torch.Tensor((1, 1, 100, 300), i64)}),
    ]
    return bad


def test_dense_falls_back_on_bad_input(fast, driver, tmp_path):
    """Each bad input: the fast path returns None (the Python path then
    raises ValueError) and launches nothing; no crash."""
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    gpu.attention(q, k, v, **kwargs)  # the plan of the good call
    names = ("causal", "window", "softcap", "scale", "bias", "sinks", "layout", "return_lse",
             "bundles", "out")
    driver.lib.fake_reset()
    for name, bq, bk, bv, changes in _bad_dense(q, k, v):
        call = dict(kwargs, **changes)
        assert fast.attention(bq, bk, bv, *[call.get(n) for n in names]) is None, name
    assert driver.lib.fake_launches() == 0
    # Wrong argument counts.
    assert fast.attention(q, k, v) is None
    assert fast.attention() is None
    # The public function raises the Python path's errors.
    for bq, bk, bv, changes, error in (
            (q, k, torch.Tensor(v.shape, f16), {}, "same dtype"),
            (q.offset(8), k, v, {}, "16-byte aligned"),
            (q, k, v, {"window": (4, 0)}, "either causal"),
            (q, k, v, {"layout": "bsdh"}, "unknown layout")):
        with pytest.raises(ValueError, match=error):
            gpu.attention(bq, bk, bv, **dict(kwargs, **changes))
    # A device other than the current one: the Python path switches.
    with torch.cuda.device(1):
        assert fast.attention(q, k, v, *[kwargs.get(n) for n in names]) is None
    assert fast.attention(q, k, v, *[kwargs.get(n) for n in names]) is not None


def test_exceptions_other_than_errors_propagate(fast, driver, tmp_path):
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    gpu.attention(q, k, v, **kwargs)
    with pytest.raises(KeyboardInterrupt):
        gpu.attention(_Raising(KeyboardInterrupt(), q.shape, bf16), k, v, **kwargs)
    with pytest.raises(MemoryError):
        gpu.attention(_Raising(MemoryError(), q.shape, bf16), k, v, **kwargs)


def test_driver_errors_raise(fast, driver, tmp_path):
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    gpu.attention(q, k, v, **kwargs)
    driver.lib.fake_fail(700, 0)
    with pytest.raises(gpu.CudaError, match="cuLaunchKernel failed: CUDA_ERROR_FAKE_700"):
        gpu.attention(q, k, v, **kwargs)
    q2 = torch.Tensor(q.shape, bf16)  # a new address: a descriptor to encode
    driver.lib.fake_fail(0, 1)
    with pytest.raises(gpu.CudaError, match="cuTensorMapEncodeTiled failed: CUDA_ERROR_FAKE_1"):
        gpu.attention(q2, k, v, **kwargs)
    assert fast.stats()["hits"] == 0
    gpu.attention(q2, k, v, **kwargs)  # the failed descriptor was not kept
    assert fast.stats()["hits"] == 1


def test_global_descriptors_keep_the_python_path(fast, driver, tmp_path):
    variant = dense_variant(causal=True)
    bundles = bundle_dir(tmp_path, driver, [dense_manifest("k", variant, global_maps=True)])
    q, k, v = qkv()
    for _ in range(3):
        _, launches = run(driver, lambda: gpu.attention(q, k, v, causal=True, bundles=bundles))
        assert len(launches) == 1
    assert fast.stats()["hits"] == 0 and fast.stats()["plans"] == 0


def test_tensor_maps_cached_per_address(fast, driver, tmp_path):
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    gpu.attention(q, k, v, **kwargs)  # the Python path's cache
    gpu.attention(q, k, v, **kwargs)  # the Launcher's: 3 descriptors encoded
    driver.lib.fake_reset()
    for _ in range(5):
        gpu.attention(q, k, v, **kwargs)
    assert driver.lib.fake_encodes() == 0
    for _ in range(6):  # new addresses each time: q's descriptor, 4 kept
        gpu.attention(torch.Tensor(q.shape, bf16), k, v, **kwargs)
    assert driver.lib.fake_encodes() == 6
    assert fast.stats()["hits"] == 12


# --------------------------------------------------------------------------
# paged_attention


PAGED_CASES = {
    "decode_single": dict(),
    "append_causal_lse": dict(sq=3, causal=True, lse=True),
    "hnd_window_i64": dict(layout="hnd", window=(64, 0), table="i64", sq=2),
    "sinks_softcap_single_lse": dict(sinks="f32", softcap=20.0, lse=True),
    "mla_prefix": dict(d=576, dv=512, hkv=1, hq=16, prefix=True, scale=0.1352),
    "override_splits": dict(splits=7, lse=True, sq=2),
    "f16_scale": dict(dtype="f16", scale=0.05, causal=True),
}


def _paged_call(tmp_path, driver, case, **call_changes):
    c = dict(dict(dtype="bf16", d=128, dv=None, page=16, layout="nhd", table="i32",
                  causal=False, window=None, scale=None, softcap=None, sinks=None, lse=False,
                  prefix=False, hq=32, hkv=8, b=8, sq=None, pages=64, max_pages=40,
                  splits=None), **case)
    dv = c["dv"] or c["d"]
    want, combine = paged_variants(c["dtype"], c["d"], dv, c["page"], c["layout"], c["table"],
                                   c["causal"], c["window"], c["scale"], c["softcap"],
                                   c["sinks"], c["lse"],
                                   "key_prefix" if c["prefix"] else "separate")
    bundles = bundle_dir(tmp_path, driver, paged_manifests(want, combine))
    dt = _TORCH_DTYPE[c["dtype"]]
    cache = (c["pages"], c["page"], c["hkv"]) if c["layout"] == "nhd" else \
        (c["pages"], c["hkv"], c["page"])
    k_cache = torch.Tensor(cache + (c["d"],), dt)
    v_cache = k_cache.columns(dv) if c["prefix"] else torch.Tensor(cache + (dv,), dt)
    q = torch.Tensor((c["b"], c["hq"], c["d"]) if c["sq"] is None else
                     (c["b"], c["sq"], c["hq"], c["d"]), dt)
    tdt = i32 if c["table"] == "i32" else i64
    table = torch.Tensor((c["b"], c["max_pages"]), tdt)
    lens = torch.Tensor((c["b"],), tdt)
    kwargs = dict(causal=c["causal"], window=c["window"], scale=c["scale"], softcap=c["softcap"],
                  cache_layout=c["layout"], return_lse=c["lse"],
                  num_splits_override=c["splits"], bundles=bundles)
    if c["sinks"] is not None:
        kwargs["sinks"] = torch.Tensor((c["hq"],), _TORCH_DTYPE[c["sinks"]])
    kwargs.update(call_changes)
    return (q, k_cache, v_cache, table, lens), kwargs


@pytest.mark.parametrize("case", PAGED_CASES)
def test_paged_fast_equals_python(fast, driver, tmp_path, case):
    args, kwargs = _paged_call(tmp_path, driver, PAGED_CASES[case])
    result, launches = three_ways(fast, driver, lambda: gpu.paged_attention(*args, **kwargs))
    split, combine = launches
    q = args[0]
    out = result[0] if kwargs["return_lse"] else result
    assert out.shape == q.shape[:-1] + (args[2].shape[-1],)
    if kwargs["return_lse"]:
        lse = result[1]
        assert lse.shape == ((q.shape[0], q.shape[1]) if q.dim() == 3 else
                             (q.shape[0], q.shape[2], q.shape[1]))
    if kwargs["num_splits_override"]:
        assert split[1][0] % kwargs["num_splits_override"] == 0


def test_paged_workspace_is_one_allocation(fast, driver, tmp_path):
    """o_part and lse_part are views of one float32 allocation, lse_part
    from the first 16-byte boundary past o_part, in both paths (three_ways
    compares their launches byte for byte); a call allocates out and the
    workspace only."""
    args, kwargs = _paged_call(tmp_path, driver, PAGED_CASES["decode_single"])
    gpu.paged_attention(*args, **kwargs)
    before = torch.allocations[0]
    three_ways(fast, driver, lambda: gpu.paged_attention(*args, **kwargs))
    assert torch.allocations[0] - before == 3 * 2  # three calls, out + workspace each
    o_part, lse_part = gpu._paged_workspace(args[0], 3, 1, 1, 1, 5)  # 15 values: padded
    assert o_part.shape == (3, 1, 1, 1, 5) and lse_part.shape == (3, 1, 1, 1)
    assert lse_part.data_ptr() - o_part.data_ptr() == 16 * 4
    assert lse_part.dtype is torch.float32 and lse_part.data_ptr() % 16 == 0


def test_paged_workspace_kept_per_stream(fast, driver, tmp_path):
    """A fast paged call keeps its workspace for the later calls on its
    (device, stream): they allocate only their output, and launch what the
    first did. Another stream gets its own; a bigger call grows it; a stream
    being captured into a CUDA graph allocates a fresh one and leaves the kept
    one alone; release_workspaces drops them."""
    args, kwargs = _paged_call(tmp_path, driver, PAGED_CASES["decode_single"])
    call = lambda **changes: gpu.paged_attention(*args, **dict(kwargs, **changes))  # noqa: E731
    call()  # the Python path registers the plan
    fast.release_workspaces()
    hits, allocated = fast.stats()["hits"], torch.allocations[0]
    _, first = run(driver, call)
    assert torch.allocations[0] - allocated == 2  # out, the workspace (kept)
    assert fast.stats()["workspaces"] == 1
    allocated = torch.allocations[0]
    _, second = run(driver, call)  # the rewound allocator gives out the same address
    assert torch.allocations[0] - allocated == 1  # out only
    assert second == first
    assert fast.stats()["hits"] == hits + 2
    # Another stream on the same device: a workspace of its own.
    torch.cuda.streams[0] = 0x6000
    allocated = torch.allocations[0]
    call()
    call()
    assert torch.allocations[0] - allocated == 3 and fast.stats()["workspaces"] == 2
    # A bigger call (more splits) on that stream grows its workspace.
    allocated = torch.allocations[0]
    call(num_splits_override=64)
    call(num_splits_override=64)
    call()
    assert torch.allocations[0] - allocated == 4 and fast.stats()["workspaces"] == 2
    # Capture: a fresh workspace per call; the kept one stays and serves the
    # next eager call.
    driver.lib.fake_set_capturing(0x6000)
    allocated = torch.allocations[0]
    call()
    call()
    assert torch.allocations[0] - allocated == 4
    driver.lib.fake_set_capturing(0)
    allocated = torch.allocations[0]
    call()
    assert torch.allocations[0] - allocated == 1
    gpu.release_workspaces()
    assert fast.stats()["workspaces"] == 0
    allocated = torch.allocations[0]
    call()
    assert torch.allocations[0] - allocated == 2
    torch.cuda.streams.clear()


def test_paged_out_given(fast, driver, tmp_path):
    """A 4-D out for a single token comes back viewed as [B, Hq, Dv]; a 3-D
    one as itself."""
    args, kwargs = _paged_call(tmp_path, driver, PAGED_CASES["decode_single"])
    out4 = torch.Tensor((8, 1, 32, 128), bf16)
    result, _ = three_ways(fast, driver, lambda: gpu.paged_attention(*args, out=out4, **kwargs))
    assert result.shape == (8, 32, 128) and result.data_ptr() == out4.data_ptr()
    out3 = torch.Tensor((8, 32, 128), bf16)
    assert gpu.paged_attention(*args, out=out3, **kwargs) is out3
    with pytest.raises(ValueError, match="out must be"):
        gpu.paged_attention(*args, out=torch.Tensor((), bf16), **kwargs)


def test_paged_splits_follow_the_batch(fast, driver, tmp_path):
    """The splits (grid x of the split kernel) are num_splits' for each
    batch and table width, on both paths."""
    for b, max_pages in ((1, 40), (8, 40), (8, 2), (40, 300), (2, 5000)):
        args, kwargs = _paged_call(tmp_path, driver, dict(b=b, max_pages=max_pages))
        _, launches = three_ways(fast, driver, lambda: gpu.paged_attention(*args, **kwargs))
        splits = gpu.num_splits(b, 8 * 2, 1, max_pages * 16, 132, 2)
        assert launches[0][1] == (splits, 16, b)
        assert launches[1][1] == (b * 32, 1, 1)


def test_paged_falls_back_on_bad_input(fast, driver, tmp_path):
    args, kwargs = _paged_call(tmp_path, driver, PAGED_CASES["decode_single"])
    gpu.paged_attention(*args, **kwargs)
    q, kc, vc, table, lens = args
    names = ("causal", "window", "softcap", "scale", "sinks", "cache_layout", "return_lse",
             "num_splits_override", "bundles", "out")
    bad = [
        ("lens int64", (q, kc, vc, table, torch.Tensor((8,), i64)), {}),
        ("table f32", (q, kc, vc, torch.Tensor((8, 40), f32), lens), {}),
        ("table 1-D", (q, kc, vc, torch.Tensor((320,), i32), lens), {}),
        ("table batch", (q, kc, vc, torch.Tensor((9, 40), i32), lens), {}),
        ("lens batch", (q, kc, vc, table, torch.Tensor((9,), i32)), {}),
        ("q f32", (torch.Tensor(q.shape, f32), kc, vc, table, lens), {}),
        ("cache f16", (q, torch.Tensor(kc.shape, f16), vc, table, lens), {}),
        ("q 2-D", (torch.Tensor((8, 4096)), kc, vc, table, lens), {}),
        ("q 5-D", (torch.Tensor((8, 1, 1, 32, 128)), kc, vc, table, lens), {}),
        ("head dim", (torch.Tensor((8, 32, 64)), kc, vc, table, lens), {}),
        ("GQA", (torch.Tensor((8, 30, 128)), kc, vc, table, lens), {}),
        ("v_cache scrambled", (q, kc, torch.Tensor(vc.shape, bf16, stride=(128, 1, 1, 1)),
                               table, lens), {}),
        ("v_cache pages", (q, kc, torch.Tensor((63, 16, 8, 128)), table, lens), {}),
        ("table strided", (q, kc, vc, torch.Tensor((8, 40), i32, stride=(1, 8)), lens), {}),
        ("k_cache on device 1", (q, torch.Tensor(kc.shape, bf16, device=1), vc, table, lens),
         {}),
        ("unaligned lens", (q, kc, vc, table, lens.offset(4)), {}),
        ("layout", args, {"cache_layout": "nhwc"}),
        ("splits negative", args, {"num_splits_override": -1}),
        ("splits a float", args, {"num_splits_override": 2.0}),
        ("splits overflow", args, {"num_splits_override": 2**62}),
        ("out 0-d", args, {"out": torch.Tensor((), bf16)}),
        ("out 2-D", args, {"out": torch.Tensor((8, 4096), bf16)}),
        ("sinks", args, {"sinks": torch.Tensor((3,), f32)}),
        ("causal=None", args, {"causal": None}),
        ("q None", (None, kc, vc, table, lens), {}),
        ("batch past the grid", (torch.Tensor((70000, 32, 128)), kc, vc,
                                 torch.Tensor((70000, 40), i32), torch.Tensor((70000,), i32)),
         {}),
    ]
    driver.lib.fake_reset()
    for name, a, changes in bad:
        call = dict(kwargs, **changes)
        assert fast.paged_attention(*a, *[call.get(n) for n in names]) is None, name
    assert driver.lib.fake_launches() == 0
    assert fast.paged_attention(*args, *[kwargs.get(n) for n in names]) is not None
    # seq_lens of another integer type: converted by the Python path.
    _, launches = run(driver, lambda: gpu.paged_attention(
        q, kc, vc, table, torch.Tensor((8,), i64), **kwargs))
    assert len(launches) == 2


def test_paged_keys(fast, driver, tmp_path):
    args, kwargs = _paged_call(tmp_path, driver, PAGED_CASES["decode_single"])
    gpu.paged_attention(*args, **kwargs)
    q, kc, vc, table, lens = args
    names = ("causal", "window", "softcap", "scale", "sinks", "cache_layout", "return_lse",
             "num_splits_override", "bundles", "out")

    def hit(*a, **changes):
        call = dict(kwargs, **changes)
        return fast.paged_attention(*a, *[call.get(n) for n in names]) is not None

    assert hit(*args)
    # Batch, table width and pages are not in the key; splits are per call.
    assert hit(torch.Tensor((3, 32, 128)), kc, vc, torch.Tensor((3, 7), i32),
               torch.Tensor((3,), i32))
    assert hit(q, torch.Tensor((5, 16, 8, 128)), torch.Tensor((5, 16, 8, 128)), table, lens)
    assert hit(*args, num_splits_override=3)
    # Query rows per KV head, page size, table type, mask, LSE: other plans.
    assert not hit(torch.Tensor((8, 2, 32, 128)), kc, vc, table, lens)
    assert not hit(q, torch.Tensor((64, 32, 8, 128)), torch.Tensor((64, 32, 8, 128)), table,
                   lens)
    assert not hit(q, kc, vc, torch.Tensor((8, 40), i64), torch.Tensor((8,), i64))
    assert not hit(*args, causal=True)
    assert not hit(*args, return_lse=True)
    assert not hit(*args, cache_layout="hnd")
    assert not hit(q, kc, kc.columns(128), table, lens)  # v is k: a prefix of k


# --------------------------------------------------------------------------
# Leaks, threads, speed


def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_no_leaks_over_100k_calls(fast, driver, tmp_path):
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["sinks_lse"])
    pargs, pkwargs = _paged_call(tmp_path, driver, PAGED_CASES["sinks_softcap_single_lse"])
    dense = lambda: gpu.attention(q, k, v, **kwargs)  # noqa: E731
    paged = lambda: gpu.paged_attention(*pargs, **pkwargs)  # noqa: E731
    names = ("causal", "window", "softcap", "scale", "bias", "sinks", "layout", "return_lse",
             "bundles", "out")
    refused = lambda: fast.attention(q, k, v, *[dict(kwargs, layout="x").get(n)  # noqa: E731
                                                for n in names])
    _, gargs, gkwargs = _grad_call(tmp_path, driver)
    backward = lambda: gpu.attention_backward(*gargs, deterministic=False,  # noqa: E731
                                              **gkwargs)
    watched = (q, k, v, kwargs["sinks"], *pargs, *gargs)
    for fn in (dense, paged, refused, backward):
        for _ in range(2000):
            fn()
        refs = [sys.getrefcount(x) for x in watched]
        gc.collect()
        objects = len(gc.get_objects())
        tracemalloc.start()
        # Traced warm-up calls first: CPython's free lists (2000 tuples of a
        # size) then hold traced blocks, and refill from them, not malloc.
        for _ in range(3000):
            torch.reset()
            fn()
        rss = _rss_kib()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000 if fn is dense else 10_000 if fn is backward else 30_000):
            torch.reset()
            fn()
        grown = tracemalloc.get_traced_memory()[0] - start
        tracemalloc.stop()
        gc.collect()
        assert grown < 64 * 1024, f"{grown} bytes more traced after the calls"
        assert _rss_kib() - rss < 2048
        assert len(gc.get_objects()) - objects < 100
        assert [sys.getrefcount(x) for x in watched] == refs
    assert fast.stats()["plans"] == 3


def test_threads(fast, driver, tmp_path):
    """Calls from several threads at once (each releases the GIL in the
    fake tensors' Python methods): every call launches once."""
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    gpu.attention(q, k, v, **kwargs)
    sys.setswitchinterval(1e-6)
    errors = []

    def work():
        try:
            for _ in range(2000):
                gpu.attention(torch.Tensor(q.shape, bf16), k, v, **kwargs)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(0.005)
    assert not errors and fast.stats()["hits"] == 8000


def test_speed_report(fast, driver, tmp_path):
    """Microseconds per call with fake tensors (their methods are Python
    functions, so this bounds the C side from above); printed with -s."""
    _, (q, k, v), kwargs = _dense_call(tmp_path, driver, DENSE_CASES["causal_gqa"])
    pargs, pkwargs = _paged_call(tmp_path, driver, PAGED_CASES["decode_single"])
    gpu.attention(q, k, v, **kwargs)
    gpu.paged_attention(*pargs, **pkwargs)
    report = []
    _, gargs, gkwargs = _grad_call(tmp_path, driver)
    for label, fn in (("attention", lambda: gpu.attention(q, k, v, **kwargs)),
                      ("paged_attention", lambda: gpu.paged_attention(*pargs, **pkwargs)),
                      ("attention_backward", lambda: gpu.attention_backward(
                          *gargs, deterministic=False, **gkwargs))):
        for enabled in (True, False):
            gpu.set_fastpath(enabled)
            n = 20000 if enabled else 5000
            start = time.perf_counter()
            for _ in range(n):
                fn()
            us = (time.perf_counter() - start) / n * 1e6
            report.append(f"{label} {'fast' if enabled else 'Python'} path: {us:.2f} us/call")
    gpu.set_fastpath(True)
    print("\n" + "\n".join(report))
