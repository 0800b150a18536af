# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Launch attn kernel bundles on PyTorch CUDA tensors.

Pure Python: the PTX and JSON manifests are written by `attn-compile` (or
`python -m attn.bundles`) on a machine with the compiler; here they are loaded
with the CUDA driver API (libcuda through ctypes, in torch's context and on
torch's current stream) and launched as the manifest says.

    from attn import gpu
    out = gpu.attention(q, k, v, causal=True, bundles="build/bundles")

Inputs the kernels do not support raise ValueError/LookupError that say what
was expected; nothing is launched on a mismatch.

attention and paged_attention first try the native fast path (attn/_fastpath.c,
built on first use by attn.native): a call whose key (dtype, head dims, layout,
mask, scale, ..., device, bundles) was seen before is checked, packed and
launched in C. Any other call runs the Python path below, which raises the
errors, resolves kernels and registers the call's plan for the fast path.
fastpath_status() says whether it is on; ATTN_FASTPATH=0 or set_fastpath(False)
turns it off.
"""

import ctypes
import functools
import glob
import json
import math
import operator
import os
import re
import threading

import numpy as np

# float8_e4m3fn is the kernel specs' "f8e4m3" (docs/kernel-spec.md), which
# no GPU kernel takes yet.
_DTYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float8_e4m3fn": "f8e4m3"}
_TORCH_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}  # "f32" -> "float32"


class CudaError(RuntimeError):
    pass


_cuda = None


def _driver():
    global _cuda
    if _cuda is None:
        cuda = ctypes.CDLL("libcuda.so.1")
        u32, ptr = ctypes.c_uint, ctypes.c_void_p
        # Declared, so that a launch converts its integers without Python
        # building ctypes objects for them.
        cuda.cuLaunchKernel.argtypes = [ptr, u32, u32, u32, u32, u32, u32, u32, ptr, ptr, ptr]
        _cuda = cuda
    return _cuda


def _check(result, what):
    if result != 0:
        name = ctypes.c_char_p()
        _driver().cuGetErrorName(result, ctypes.byref(name))
        raise CudaError(f"{what} failed: {name.value.decode() if name.value else result}")


class Kernel:
    """One bundle: its manifest and, per device, its CUfunction. The
    manifest is validated here (validate_manifest): a bundle directory is
    input, and what it says reaches cuModuleLoadData and cuLaunchKernel.

    A launch fills a parameter buffer prepared once per thread (ctypes
    values and the pointer array cuLaunchKernel reads) instead of building
    one per call. TMA descriptors passed by value (manifest "passing":
    "param") are encoded on the host into that buffer: no device memory and
    no copy, so a CUDA graph captures them with the launch. Descriptors in
    global memory ("global", bundles of older compilers) are copied from
    pinned memory on the launch's stream, once per tensor address."""

    def __init__(self, manifest_path):
        try:
            with open(manifest_path) as f:
                manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{manifest_path}: not JSON: {e}") from None
        self.ptx_path, self._grid = validate_manifest(manifest, manifest_path)
        self.manifest = manifest
        # A persistent kernel's grid reads the device's SM count (_sm_count).
        self._reads_sms = any("SMs" in _grid_names(g) for g in self._grid)
        # A length alternative's ranges: ((size, lo, hi or None), ...).
        self.prefer = (tuple((name, lo, hi) for name, (lo, hi) in sorted(manifest["prefer"].items()))
                       if "prefer" in manifest else None)
        self._functions = {}  # device index -> CUfunction
        self._grids = {}  # the sizes' items -> launch grid
        self._workspaces = {}  # the sizes' items -> workspace_shapes
        self._local = threading.local()  # the parameter buffer of a thread
        self._native = {}  # (device, slots, sizes, constants) -> _fastpath.Launcher

    @property
    def variant(self):
        return self.manifest["variant"]

    def prefers(self, sizes):
        """Whether `sizes` (name -> int) are in every range of the
        manifest's "prefer" (a kernel without one: at every size)."""
        return all(name in sizes and lo <= sizes[name] and (hi is None or sizes[name] < hi)
                   for name, lo, hi in self.prefer or ())

    def function(self, device=None):
        """The kernel's CUfunction in `device`'s context (the current one),
        loaded on first use there."""
        fn = self._functions.get(device)
        if fn is None:
            with open(self.ptx_path, "rb") as f:
                ptx = f.read() + b"\0"
            module = ctypes.c_void_p()
            _check(_driver().cuModuleLoadData(ctypes.byref(module), ptx), "cuModuleLoadData")
            fn = ctypes.c_void_p()
            _check(_driver().cuModuleGetFunction(ctypes.byref(fn), module,
                                                 self.manifest["entry"].encode()),
                   "cuModuleGetFunction")
            shared = self.manifest["dynamic_shared_memory"]
            # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8): what a
            # launch may ask for without opting in is 48 KB less the
            # function's static shared memory, so ask the function (a kernel
            # of exactly 48 KB dynamic and 1 KB static failed to launch with
            # CUDA_ERROR_INVALID_VALUE when this compared against 48 KB).
            limit = ctypes.c_int()
            _check(_driver().cuFuncGetAttribute(ctypes.byref(limit), 8, fn),
                   "cuFuncGetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)")
            if shared > limit.value:
                _check(_driver().cuFuncSetAttribute(fn, 8, ctypes.c_int(shared)),
                       f"cuFuncSetAttribute({shared} bytes of shared memory)")
            self._functions[device] = fn
        return fn

    def _buffer(self):
        buffer = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = _ParamBuffer(self.manifest["params"])
        return buffer

    def workspace_shapes(self, sizes):
        """[(name, shape, torch dtype name)] of the kernel's "workspace"
        parameters for the sizes `sizes`, as the manifest shapes them;
        the same sizes again: one dict lookup."""
        sizes_key = tuple(sizes.items())
        shapes = self._workspaces.get(sizes_key)
        if shapes is None:
            shapes = [(p["name"], _param_shape(p, sizes), _TORCH_DTYPE_NAMES[p["dtype"]])
                      for p in self.manifest["params"] if p.get("role") == "workspace"]
            if len(self._workspaces) >= 1024:
                self._workspaces.clear()
            self._workspaces[sizes_key] = shapes
        return shapes

    def launch(self, tensors, sizes, stream, device=None):
        """tensors: name -> torch tensor; sizes: name -> int; `device`: the
        index of the device whose context is current (the tensors')."""
        # The grid of the same sizes again: one dict lookup, not an
        # evaluation of the manifest's expressions.
        sizes_key = tuple(sizes.items())
        if self._reads_sms:
            sizes_key += (device,)
        grid = self._grids.get(sizes_key)
        if grid is None:
            grid = grid_dims(self._grid, dict(sizes, SMs=_sm_count(device))
                             if self._reads_sms else sizes)
            if len(self._grids) >= 1024:
                self._grids.clear()
            self._grids[sizes_key] = grid
        if 0 in grid:
            return
        args = self._buffer().fill(tensors, sizes, self.variant.get("layout"), stream)
        block = self.manifest["block"]
        _check(_driver().cuLaunchKernel(self.function(device), grid[0], grid[1], grid[2],
                                        block[0], block[1], block[2],
                                        self.manifest["dynamic_shared_memory"],
                                        stream, args, None),
               "cuLaunchKernel")


class KernelChoice:
    """A kernel and its length alternatives (docs/design-length-choice.md):
    kernels that compute the same with other tiling, each preferred where
    its manifest's "prefer" ranges hold the call's sizes. A launch takes the
    first alternative preferred at its sizes, else `default` (which the
    other attributes describe)."""

    def __init__(self, alternatives, default):
        self.alternatives = tuple(alternatives)
        self.default = default
        self.manifest = default.manifest
        self._picked = {}  # the sizes' items -> kernel

    @property
    def variant(self):
        return self.default.variant

    @property
    def kernels(self):
        """The alternatives, then the default: the order a launch tries."""
        return self.alternatives + (self.default,)

    def pick(self, sizes):
        """The kernel a launch with `sizes` runs."""
        sizes_key = tuple(sizes.items())
        kernel = self._picked.get(sizes_key)
        if kernel is None:
            kernel = next((k for k in self.alternatives if k.prefers(sizes)), self.default)
            if len(self._picked) >= 1024:
                self._picked.clear()
            self._picked[sizes_key] = kernel
        return kernel

    def launch(self, tensors, sizes, stream, device=None):
        self.pick(sizes).launch(tensors, sizes, stream, device)


class _ParamBuffer:
    """The kernel parameters of one manifest as ctypes storage, and the
    array of their addresses that cuLaunchKernel takes. Built once; a launch
    only writes the values."""

    def __init__(self, params):
        self._fill = []  # (kind, param, storage)
        self._keep = []  # every ctypes object the addresses point into
        addresses = []
        for p in params:
            if p["kind"] == "memref":
                # allocated, aligned, offset, size, stride of a flat memref
                ptr, size = ctypes.c_uint64(), ctypes.c_int64()
                fields = [ptr, ptr, ctypes.c_int64(0), size, ctypes.c_int64(1)]
                self._fill.append(("memref", p, (ptr, size)))
                self._keep += fields
                addresses += [ctypes.addressof(f) for f in fields]
            elif p["kind"] == "tensormap" and p.get("passing") == "param":
                raw = (ctypes.c_uint8 * (_TENSOR_MAP_BYTES + 64))()
                aligned = (ctypes.addressof(raw) + 63) // 64 * 64
                self._keep.append(raw)
                self._fill.append(("tensormap", p, aligned))
                addresses.append(aligned)
            elif p["kind"] == "tensormap":
                ptr = ctypes.c_uint64()
                self._keep.append(ptr)
                self._fill.append(("tensormap_global", p, ptr))
                addresses.append(ctypes.addressof(ptr))
            else:
                # Sizes and window extents (i64), scale and softcap (f32).
                value = ctypes.c_float() if p.get("dtype") == "f32" else ctypes.c_int64()
                self._keep.append(value)
                self._fill.append(("scalar", p, value))
                addresses.append(ctypes.addressof(value))
        self.args = (ctypes.c_void_p * max(1, len(addresses)))(*addresses)

    def fill(self, tensors, sizes, layout, stream):
        for kind, p, storage in self._fill:
            if kind == "memref":
                t = tensors[p["name"]]
                # Kernels index flat, dense tensors; the value cache alone may
                # be the first columns of the key cache (MLA), which the
                # kernel reads with the key rows' stride.
                if p.get("role") != "value_cache" and not t.is_contiguous():
                    raise ValueError(f"{p['name']} must be contiguous")
                storage[0].value = t.data_ptr()
                storage[1].value = t.numel()
            elif kind == "scalar":
                storage.value = sizes[p["name"]]
            elif kind == "tensormap":
                ctypes.memmove(storage, _tensor_map(tensors[p["tensor"]], layout, p["box"]),
                               _TENSOR_MAP_BYTES)
            else:
                storage.value = _tensor_map_in_memory(tensors[p["tensor"]], layout, p["box"],
                                                      stream)
        return self.args


# CUtensorMapDataType: FP8 tensors are mapped as bytes (UINT8).
_TMA_DTYPES = {"torch.float16": 6, "torch.bfloat16": 9, "torch.float8_e4m3fn": 0}
_TENSOR_MAP_BYTES = 128  # sizeof(CUtensorMap)
_tensor_maps = {}  # (address, shape, dtype, layout, box) -> host descriptor
_device_tensor_maps = {}  # the same key and device -> (pinned, device copy)
_TENSOR_MAP_CACHE = 4096


def _tensor_map(t, layout, box):
    """The address of a host copy of the CUtensorMap (TMA descriptor) of the
    4-D tensor `t` in device memory: dims innermost first, boxes of box[0]
    columns by box[1] rows (one batch, one head), 128-byte swizzle, zero
    fill out of bounds. Cached per tensor address and shape (all the
    descriptor holds); the entry stays valid as long as it is cached, which
    is what a CUDA graph captured with it needs only for the launch itself
    (the driver copies kernel parameters at capture)."""
    key = (t.data_ptr(), tuple(t.shape), t.dtype, layout, box[0], box[1])
    entry = _tensor_maps.get(key)
    if entry is not None:
        return entry[1]
    e = t.element_size()
    if layout == "bhsd":
        b, h, s, d = t.shape
        dims, strides, boxdim = [d, s, h, b], [d * e, s * d * e, h * s * d * e], [box[0], box[1], 1, 1]
    else:
        b, s, h, d = t.shape
        dims, strides, boxdim = [d, h, s, b], [d * e, h * d * e, s * h * d * e], [box[0], 1, box[1], 1]
    raw = (ctypes.c_uint8 * (_TENSOR_MAP_BYTES + 64))()
    aligned = (ctypes.addressof(raw) + 63) // 64 * 64
    _check(_driver().cuTensorMapEncodeTiled(
        ctypes.c_void_p(aligned), ctypes.c_int(_TMA_DTYPES[str(t.dtype)]), ctypes.c_uint32(4),
        ctypes.c_void_p(t.data_ptr()), (ctypes.c_uint64 * 4)(*dims), (ctypes.c_uint64 * 3)(*strides),
        (ctypes.c_uint32 * 4)(*boxdim), (ctypes.c_uint32 * 4)(1, 1, 1, 1),
        ctypes.c_int(0), ctypes.c_int(3), ctypes.c_int(3), ctypes.c_int(0)),
        "cuTensorMapEncodeTiled")
    if len(_tensor_maps) >= _TENSOR_MAP_CACHE:
        _tensor_maps.clear()
    _tensor_maps[key] = (raw, aligned)
    return aligned


def _tensor_map_in_memory(t, layout, box, stream):
    """The device address of `t`'s descriptor for kernels that read it from
    global memory: copied from pinned host memory on `stream` (no
    synchronization; capturable), once per tensor address and shape. The
    pinned copy stays cached while the copy may be pending."""
    import torch

    key = (t.data_ptr(), tuple(t.shape), t.dtype, layout, box[0], box[1], t.device.index)
    entry = _device_tensor_maps.get(key)
    if entry is None:
        host = torch.empty(_TENSOR_MAP_BYTES, dtype=torch.uint8, pin_memory=True)
        ctypes.memmove(host.data_ptr(), _tensor_map(t, layout, box), _TENSOR_MAP_BYTES)
        dev = torch.empty(_TENSOR_MAP_BYTES, dtype=torch.uint8, device=t.device)
        _check(_driver().cuMemcpyHtoDAsync_v2(ctypes.c_uint64(dev.data_ptr()),
                                              ctypes.c_void_p(host.data_ptr()),
                                              ctypes.c_size_t(_TENSOR_MAP_BYTES),
                                              ctypes.c_void_p(stream)),
               "cuMemcpyHtoDAsync")
        if len(_device_tensor_maps) >= _TENSOR_MAP_CACHE:
            _device_tensor_maps.clear()
        entry = _device_tensor_maps[key] = (host, dev)
    return entry[1].data_ptr()


# CUDA's grid limits (x, y, z) and block limits (x, y, z, threads).
MAX_GRID_YZ = 65535
MAX_GRID = (2**31 - 1, MAX_GRID_YZ, MAX_GRID_YZ)
MAX_BLOCK = (1024, 1024, 64)
MAX_BLOCK_THREADS = 1024
# A grid entry (docs/kernel-spec.md, "Manifests") is data: an integer, the
# name of a size the launcher passes ("B"), or {"ceil_div": [a, b]},
# {"div": [a, b]} (floor), {"mul": [a, b, ...]} or {"min": [a, b, ...]} over
# such entries; the size "SMs" is the device's multiprocessor count (the
# persistent kernels' grids), which the launchers supply. Parsed
# and checked when a bundle loads (parse_grid_size), evaluated at each launch
# (grid_dims); never evaluated as Python.
_SIZE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GRID_OPS = ("ceil_div", "div", "mul", "min")
# Ops of two or more operands (the others take two: dividend, divisor).
_GRID_NARY = ("mul", "min")
_GRID_MAX_DEPTH = 16  # nesting of operations; the kernels' grids use 4
# Grids as strings ("ceil(Sq / 128)"): bundles that predate structured grids.
_STRING_GRID = re.compile(r"\s*ceil\s*\(")
# A PTX identifier (PTX ISA, "Identifiers"): what cuModuleGetFunction looks up.
_PTX_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_$]*|[_$%][A-Za-z0-9_$]+")
# The launcher passes each memref as a rank-1 descriptor of five values and
# each scalar as an i64 or f32 (Kernel.launch); a manifest stating another
# ABI is not one it can launch.
_MEMREF_FIELDS = ["allocated_ptr", "aligned_ptr", "offset", "size", "stride"]
_SCALAR_DTYPES = ("i64", "f32")
_JSON_NAMES = {str: "string", dict: "object", list: "array", int: "integer"}


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)  # JSON true is not 1


def parse_grid_size(expr):
    """A manifest's grid entry, checked, in the form grid_dims evaluates: a
    non-negative int, a size name (str), or a tuple (op, operand, ...) with
    op "ceil_div", "div" (two operands: dividend, divisor), "mul" or "min" (two or
    more), each operand again such a form. ValueError, naming the entry, on
    anything else: strings that are not size names (the string grids of
    older bundles among them: those bundles must be rebuilt), unknown
    operations, wrong operand counts, negative, float or boolean literals,
    nesting deeper than _GRID_MAX_DEPTH, and divisors that are 0 whatever
    the sizes (a literal 0, a product with a factor 0, a quotient of 0). A
    divisor that is a size is checked when grid_dims evaluates it."""
    def fail(sub, problem):
        where = "" if sub is expr else f" (in grid size {json.dumps(expr)})"
        return ValueError(f"grid size {json.dumps(sub)} {problem}{where}")

    def parse(e, depth):
        if _is_int(e):
            if e < 0:
                raise fail(e, "is negative")
            return e
        if isinstance(e, str):
            if _SIZE_NAME.fullmatch(e):
                return e
            if _STRING_GRID.match(e):
                raise ValueError(
                    f"grid size {e!r} is a string expression: the bundle predates structured "
                    f"grids ({{\"ceil_div\": [a, b]}}, docs/kernel-spec.md); rebuild it with "
                    f"python -m attn.bundles (or attn-compile)")
            raise fail(e, "is not a size name (letters, digits and _, not starting with a digit)")
        if isinstance(e, dict) and len(e) == 1:
            (op, args), = e.items()
            if op not in _GRID_OPS:
                raise fail(e, f"has the unknown operation {op!r}; expected one of "
                              f"{', '.join(_GRID_OPS)}")
            if not isinstance(args, list):
                raise fail(e, f"must give {op}'s operands as an array")
            if (len(args) < 2) if op in _GRID_NARY else (len(args) != 2):
                raise fail(e, f"gives {op} {len(args)} operand{'s' * (len(args) != 1)}; it takes "
                              f"{'two or more' if op in _GRID_NARY else 'two'}")
            if depth >= _GRID_MAX_DEPTH:
                raise fail(e, f"nests operations deeper than {_GRID_MAX_DEPTH} levels")
            operands = tuple(parse(a, depth + 1) for a in args)
            if op not in _GRID_NARY and _grid_always_zero(operands[1]):
                raise fail(e, "divides by 0" if operands[1] == 0 else
                              f"divides by {json.dumps(args[1])}, which is 0 whatever the sizes")
            return (op,) + operands
        if isinstance(e, dict):
            raise fail(e, f"must be an object of one key (the operation: "
                          f"{', '.join(_GRID_OPS)}), not {len(e)}")
        raise fail(e, "is not a non-negative integer, a size name or an object "
                      "{\"ceil_div\" | \"div\" | \"mul\": [operands]}")

    try:
        return parse(expr, 0)
    except TypeError:  # not JSON: json.dumps of the message failed
        raise ValueError(f"grid size {expr!r} is not JSON data") from None


def format_grid_size(g):
    """A parsed grid size as text, e.g. ceil_div(mul(div(Hq, Hkv), Sq), 16)."""
    if isinstance(g, tuple):
        return f"{g[0]}({', '.join(format_grid_size(a) for a in g[1:])})"
    return str(g)


def _grid_names(g):
    """The size names a parsed grid size reads."""
    if isinstance(g, tuple):
        return {n for a in g[1:] for n in _grid_names(a)}
    return {g} if isinstance(g, str) else set()


def _grid_constant(g):
    """The value of a parsed grid size that reads no size; None if it reads
    one."""
    return None if _grid_names(g) else _grid_value(g, {}, 0)


def _grid_always_zero(g):
    """Whether a parsed grid size is 0 whatever the sizes: 0, a product
    with such a factor, or a quotient of such a dividend."""
    if isinstance(g, tuple):
        if g[0] in _GRID_NARY:  # min of non-negative sizes: 0 with any 0
            return any(map(_grid_always_zero, g[1:]))
        return _grid_always_zero(g[1])
    return g == 0


def _grid_value(g, sizes, axis):
    """Evaluates the parsed grid size `g` of grid axis `axis` (for messages)
    with the sizes `sizes`; every operand is evaluated, so a bad size is an
    error even where another operand is 0."""
    if isinstance(g, str):
        if g not in sizes:
            raise ValueError(f"grid size {axis} reads size {g!r}, which was not given")
        value = sizes[g]
        try:  # Python's, NumPy's or torch's integers; not floats or bools
            value = None if isinstance(value, bool) else operator.index(value)
        except TypeError:
            value = None
        if value is None or value < 0:
            raise ValueError(f"grid size {axis} reads {g} = {sizes[g]!r}, "
                             f"not a non-negative integer")
        return value
    if not isinstance(g, tuple):
        return g
    values = [_grid_value(a, sizes, axis) for a in g[1:]]
    if g[0] == "mul":
        return math.prod(values)
    if g[0] == "min":
        return min(values)
    a, b = values
    if b == 0:
        raise ValueError(f"grid size {axis} divides by {format_grid_size(g[2])} = 0")
    return -(-a // b) if g[0] == "ceil_div" else a // b


def _param_shape(p, sizes):
    """A memref parameter's shape for the sizes `sizes`: its entries are
    ints, size names or grid-style expressions of them."""
    return tuple(_grid_value(parse_grid_size(e), sizes, f"{p['name']}[{i}]")
                 for i, e in enumerate(p["shape"]))


def grid_dims(grid, sizes):
    """The launch grid of parsed grid sizes (parse_grid_size) for the sizes
    `sizes` (name -> int): ValueError unless each size read is a given
    non-negative integer, no divisor is 0 and each dimension is within
    CUDA's limits (a size past them would wrap in the driver's unsigned
    ints). A dimension of 0 is returned as is: nothing to launch."""
    dims = []
    for axis, (g, limit) in enumerate(zip(grid, MAX_GRID)):
        n = _grid_value(g, sizes, axis)
        if n > limit:
            raise ValueError(f"grid size {axis} ({format_grid_size(g)}) is {n}, over CUDA's "
                             f"limit of {limit}")
        dims.append(n)
    return tuple(dims)


def validate_manifest(m, path):
    """Checks the manifest `m` of file `path` against what Kernel loads and
    launches; returns the PTX file's path and the parsed grid. ValueError
    naming the file and the problem otherwise."""
    def bad(problem):
        return ValueError(f"{path}: {problem}")

    if not isinstance(m, dict):
        raise bad("a manifest must be a JSON object")
    for key, kind in (("entry", str), ("ptx", str), ("kernel", str), ("variant", dict),
                      ("params", list), ("grid", list), ("block", list),
                      ("dynamic_shared_memory", int)):
        if key not in m:
            raise bad(f"missing key {key!r}")
        if not isinstance(m[key], kind) or isinstance(m[key], bool):
            raise bad(f"{key!r} must be a JSON {_JSON_NAMES[kind]}, got {m[key]!r}")
    if not _PTX_IDENT.fullmatch(m["entry"]):
        raise bad(f"entry {m['entry']!r} is not a PTX identifier")
    # The PTX file: a relative path that stays inside the bundle directory,
    # links resolved (no "../", absolute paths or links out of it).
    directory = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    ptx = m["ptx"]
    if not ptx or "\0" in ptx or os.path.isabs(ptx):
        raise bad(f"ptx {ptx!r} must be a path relative to the bundle directory")
    ptx_path = os.path.realpath(os.path.join(directory, ptx))
    if os.path.commonpath([directory, ptx_path]) != directory:
        raise bad(f"ptx {ptx!r} resolves to {ptx_path}, outside the bundle directory {directory}")
    if not os.path.isfile(ptx_path):
        raise bad(f"ptx {ptx!r} is not a file in the bundle directory")
    if len(m["grid"]) != 3:
        raise bad(f"grid must have 3 sizes, got {m['grid']!r}")
    try:
        grid = [parse_grid_size(g) for g in m["grid"]]
    except ValueError as e:
        raise bad(e) from None
    for axis, (g, limit) in enumerate(zip(grid, MAX_GRID)):
        n = _grid_constant(g)
        if n is not None and n > limit:
            raise bad(f"grid size {axis} ({format_grid_size(g)}) is {n}, over CUDA's limit "
                      f"of {limit}")
    block = m["block"]
    if (len(block) != 3 or not all(_is_int(b) and 0 < b <= limit
                                   for b, limit in zip(block, MAX_BLOCK))
            or block[0] * block[1] * block[2] > MAX_BLOCK_THREADS):
        raise bad(f"block must be 3 positive integers within CUDA's limits "
                  f"{list(MAX_BLOCK)} and {MAX_BLOCK_THREADS} threads, got {block!r}")
    # Passed to the driver as a C int (cuFuncSetAttribute) and unsigned int.
    if not 0 <= m["dynamic_shared_memory"] < 2**31:
        raise bad(f"dynamic_shared_memory must be a non-negative byte count, "
                  f"got {m['dynamic_shared_memory']}")
    # Sizes the launcher reads: it divides by them and compares against them.
    for key in ("rows_per_block", "value_chunks", "max_key_blocks"):
        if key in m and not (_is_int(m[key]) and m[key] > 0):
            raise bad(f"{key!r} must be a positive integer, got {m[key]!r}")
    # A length alternative's ranges: {size: [lo, hi or null]}, 0 <= lo < hi.
    if "prefer" in m:
        prefer = m["prefer"]
        if not (isinstance(prefer, dict) and prefer and all(
                isinstance(r, list) and len(r) == 2 and _is_int(r[0]) and r[0] >= 0
                and (r[1] is None or (_is_int(r[1]) and r[1] > r[0])) for r in prefer.values())):
            raise bad(f"prefer must map sizes to [lo, hi] or [lo, null] with 0 <= lo < hi, "
                      f"got {prefer!r}")
    names, memrefs = set(), set()
    for i, p in enumerate(m["params"]):
        if not isinstance(p, dict):
            raise bad(f"params[{i}] must be a JSON object")
        name, kind = p.get("name"), p.get("kind")
        if not isinstance(name, str) or not name:
            raise bad(f"params[{i}] has no name")
        if name in names:
            raise bad(f"params[{i}]: a second parameter named {name!r}")
        names.add(name)
        if kind == "memref":
            if p.get("expands_to") != _MEMREF_FIELDS:
                raise bad(f"params[{i}] ({name}): memref must expand to {_MEMREF_FIELDS}, "
                          f"got {p.get('expands_to')!r}")
            memrefs.add(name)
        elif kind == "scalar":
            if p.get("dtype") not in _SCALAR_DTYPES:
                raise bad(f"params[{i}] ({name}): scalar dtype must be 'i64' or 'f32', "
                          f"got {p.get('dtype')!r}")
        elif kind == "tensormap":
            box = p.get("box")
            if not (isinstance(box, list) and len(box) == 2
                    and all(_is_int(b) and 0 < b <= 256 for b in box)):
                raise bad(f"params[{i}] ({name}): tensormap box must be 2 integers "
                          f"in 1..256, got {box!r}")
            if p.get("passing", "global") not in ("param", "global"):
                raise bad(f"params[{i}] ({name}): tensormap passing must be 'param' or "
                          f"'global', got {p.get('passing')!r}")
        else:
            raise bad(f"params[{i}] ({name}): unknown kind {kind!r}; expected "
                      f"'memref', 'scalar' or 'tensormap'")
    for i, p in enumerate(m["params"]):
        if p["kind"] == "tensormap" and p.get("tensor") not in memrefs:
            raise bad(f"params[{i}] ({p['name']}): tensormap of {p.get('tensor')!r}, "
                      f"which is not a memref parameter")
    return ptx_path, grid


_cache = {}


def load_bundles(directory):
    """All kernels of a bundle directory (cached)."""
    directory = os.path.abspath(directory)
    if directory not in _cache:
        _cache[directory] = [Kernel(p) for p in sorted(glob.glob(os.path.join(directory, "*.json")))]
    return _cache[directory]


def _f32(x):
    return float(np.float32(x))


def _score_values(d, scale, softcap, window):
    """The call's scale (1/sqrt(D) by default), softcap and window extents,
    checked, as the kernels take them: launch values by parameter name (a
    kernel that compiled them in ignores them). ValueError for a scale or
    softcap that is not a finite number (softcaps positive) or a window that
    is not two non-negative integers."""
    scale = 1 / math.sqrt(d) if scale is None else scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    values = {"scale": _f32(scale)}
    if softcap is not None:
        if (isinstance(softcap, bool) or not isinstance(softcap, (int, float))
                or not math.isfinite(softcap) or softcap <= 0):
            raise ValueError(f"softcap must be a positive finite number, got {softcap!r}")
        values["softcap"] = _f32(softcap)
    if window is not None:
        try:
            if any(isinstance(x, bool) for x in window):
                raise TypeError
            left, right = (operator.index(x) for x in window)
        except (TypeError, ValueError):
            raise ValueError(f"window must be two integers (left, right), got {window!r}") from None
        if left < 0 or right < 0:
            raise ValueError(f"window extents must be non-negative, got {window!r}")
        values["window_left"], values["window_right"] = left, right
    return values


def _value_want(values, window):
    """The variant fields of `_score_values`' values: what a kernel that
    compiled them in must hold ("runtime" kernels match any). A negative
    scale needs such a kernel (bundles.runtime_values)."""
    want = {"mask": "window" if window is not None else None,
            "scale": values["scale"], "softcap": values.get("softcap")}
    if window is not None:
        want["window_left"], want["window_right"] = values["window_left"], values["window_right"]
    if values["scale"] < 0:
        want["specialize"] = True
    return want


def _device_index(t):
    """The index of the CUDA device of tensor `t`."""
    import torch

    index = t.device.index
    return torch.cuda.current_device() if index is None else index


def _current_stream(index):
    """torch's current stream on device `index`, as a raw cudaStream_t."""
    import torch

    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw(index) if raw is not None else torch.cuda.current_stream(index).cuda_stream


def _on_tensor_device(fn):
    """Runs the GPU entry point `fn` with its first argument's device
    current: kernels are loaded into and launched in the current context."""
    @functools.wraps(fn)
    def wrapper(q, *args, **kwargs):
        import torch

        if isinstance(q, torch.Tensor) and q.is_cuda and \
                q.device.index not in (None, torch.cuda.current_device()):
            with torch.cuda.device(q.device):
                return fn(q, *args, **kwargs)
        return fn(q, *args, **kwargs)
    return wrapper


# --------------------------------------------------------------------------
# The native fast path (attn/_fastpath.c, built and loaded by attn.native).
#
# attention and paged_attention hand their arguments to the module first; it
# returns None for any call it does not take, and the Python path runs. The
# Python path registers each call's plan after launching it: the kernels it
# resolved, each as a _fastpath.Launcher (parameter layout, grid program,
# block, shared memory, CUfunction on the device), under the key the module
# computes from the same arguments -- the key's definition exists once, in C.

_FASTPATH_API = 5
_fast = None  # the configured module while the fast path is on
_fast_module = None  # the configured module, also while it is turned off
_fast_why = None  # why there is no module
_fast_on = os.environ.get("ATTN_FASTPATH", "1") != "0"


def _fastpath():
    """The configured _fastpath module, loaded and configured on the first
    call (by the Python path's first call of an entry point); None while the
    fast path is off or where it is unavailable."""
    global _fast, _fast_module, _fast_why
    if not _fast_on:
        return None
    if _fast_module is None and _fast_why is None:
        try:
            _fast_module, _fast_why = _configure_fastpath()
        except Exception as e:  # noqa: BLE001 -- any failure means no fast path
            _fast_module, _fast_why = None, f"not configured: {type(e).__name__}: {e}"
        _fast = _fast_module
    return _fast


def _configure_fastpath():
    """(module, None) configured with the driver and torch, or (None, why)."""
    from . import native

    module = native.load()
    if module is None:
        return None, native.status()
    if module.API != _FASTPATH_API:
        return None, f"{native.status()}: interface {module.API}, attn.gpu needs {_FASTPATH_API}"
    import torch

    get_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    get_device = getattr(torch._C, "_cuda_getDevice", None)
    if get_stream is None or get_device is None:
        return None, "this torch has no torch._C._cuda_getCurrentRawStream/_cuda_getDevice"
    cuda = _driver()
    address = lambda f: ctypes.cast(f, ctypes.c_void_p).value  # noqa: E731
    module.configure(address(cuda.cuLaunchKernel), address(cuda.cuTensorMapEncodeTiled),
                     _check, get_stream, get_device, (torch.Tensor, torch.nn.Parameter),
                     (torch.float16, torch.bfloat16, torch.float32, torch.int32, torch.int64),
                     torch.float32, address(getattr(cuda, "cuStreamIsCapturing", None)))
    return module, None


def release_workspaces():
    """Frees the split-KV workspaces the fast path keeps, one per (device,
    stream) that made paged calls (each serves every later call on its
    stream: _fastpath.c, paged_workspace), e.g. before
    torch.cuda.empty_cache(). The next paged call allocates again."""
    if _fast_module is not None:
        _fast_module.release_workspaces()


def set_fastpath(enabled):
    """Turns the native fast path on or off for this process (it starts as
    ATTN_FASTPATH says: on unless 0). Returns the previous setting."""
    global _fast, _fast_on
    previous, _fast_on = _fast_on, bool(enabled)
    _fast = _fast_module if _fast_on else None
    return previous


def fastpath_status():
    """Whether calls take the native fast path, and why not: "on: <library>
    (limited API); N plans, N fast calls", "off (...)", "unavailable: ..."
    or "not loaded yet" (it loads with the first call)."""
    from . import native

    if not _fast_on:
        return "off (ATTN_FASTPATH=0 or set_fastpath(False))"
    if _fast_module is not None:
        stats = _fast_module.stats()
        return (f"on: {native.status()}; {stats['plans']} plans, {stats['hits']} fast calls, "
                f"{stats['misses']} misses, {stats['rejected']} calls refused")
    if _fast_why is not None:
        return f"unavailable: {_fast_why}"
    return "not loaded yet"


class _NoFastPath(Exception):
    """A kernel the fast path cannot launch (the Python path keeps it)."""


def _grid_program(g, sizes, constants, fast):
    """A parsed grid size (parse_grid_size) as the module's postfix program
    of (op, argument) pairs, its names read from the call's `sizes` (their
    indices) or the plan's `constants`."""
    if _is_int(g):
        return [fast.GRID_CONST, g]
    if isinstance(g, str):
        if g in sizes:
            return [fast.GRID_SIZE, sizes.index(g)]
        value = constants.get(g)
        if _is_int(value) and value >= 0:
            return [fast.GRID_CONST, value]
        raise _NoFastPath(f"the grid reads {g!r}")
    prog = [x for a in g[1:] for x in _grid_program(a, sizes, constants, fast)]
    if g[0] in _GRID_NARY:
        return prog + [fast.GRID_MUL if g[0] == "mul" else fast.GRID_MIN, len(g) - 1]
    return prog + [fast.GRID_DIV if g[0] == "div" else fast.GRID_CEIL_DIV, 0]


def _native_launcher(fast, kernel, device, slots, sizes, constants, alternative=False,
                     load=True):
    """`kernel`'s _fastpath.Launcher for calls whose tensors come in `slots`
    (names), whose per-call sizes are `sizes` (names) and whose other scalar
    values are `constants` (name -> value); None when it cannot have one
    (descriptors in global memory, a parameter no slot or value fills, a
    manifest past the module's limits). With `alternative`, it carries the
    manifest's "prefer" ranges (a KernelChoice's alternatives). Without
    `load`, a kernel not loaded on `device` gets a Launcher without a
    function, which the fast path refuses to launch (not kept: the Python
    path loads the kernel when a call needs it). Kept per kernel."""
    memo = (device, slots, sizes, tuple(sorted(constants.items())), alternative)
    if memo in kernel._native:
        return kernel._native[memo]
    loaded = load or device in kernel._functions
    if getattr(kernel, "_reads_sms", False) and "SMs" not in constants:  # one plan a device
        constants = dict(constants, SMs=_sm_count(device))
    try:
        prefer = []
        for name, lo, hi in (kernel.prefer or ()) if alternative else ():
            if name not in sizes:
                raise _NoFastPath(f"no size {name!r} for its prefer range")
            prefer.append((sizes.index(name), lo, -1 if hi is None else hi))
        spec = []
        for p in kernel.manifest["params"]:
            kind, name = p["kind"], p["name"]
            if kind == "memref":
                if name not in slots:
                    raise _NoFastPath(f"no tensor for {name!r}")
                spec.append((fast.KIND_MEMREF, slots.index(name)))
            elif kind == "scalar":
                code = fast.KIND_F32 if p.get("dtype") == "f32" else fast.KIND_I64
                if name in sizes:
                    spec.append((code, sizes.index(name), 0))
                elif name in constants:
                    spec.append((code, -1, constants[name]))
                else:
                    raise _NoFastPath(f"no value for {name!r}")
            elif p.get("passing") == "param":
                if p["tensor"] not in slots:
                    raise _NoFastPath(f"no tensor for {p['tensor']!r}")
                spec.append((fast.KIND_TENSORMAP, slots.index(p["tensor"]), *p["box"]))
            else:
                raise _NoFastPath("a descriptor in global memory")
        grid = [_grid_program(g, sizes, constants, fast) for g in kernel._grid]
        launcher = fast.Launcher(spec, grid, kernel.manifest["block"],
                                 kernel.manifest["dynamic_shared_memory"],
                                 kernel.function(device).value if loaded else 0,
                                 0 if kernel.variant.get("layout") == "bhsd" else 1, prefer)
    except (_NoFastPath, ValueError):
        launcher = None
    if loaded:
        kernel._native[memo] = launcher
    return launcher


def _dense_launcher(fast, kernel, device, constants):
    """What the fast path's register_attention takes for `kernel`: its
    Launcher, or for a KernelChoice a tuple of its alternatives' (with their
    ranges) and its default's, those not loaded yet without a function (a
    call loads only the kernel it runs); None where one has no Launcher."""
    choice = isinstance(kernel, KernelChoice)
    kernels = kernel.kernels if choice else (kernel,)
    launchers = tuple(_native_launcher(fast, k, device, fast.DENSE_SLOTS, fast.DENSE_SIZES,
                                       constants, alternative=i < len(kernels) - 1,
                                       load=not choice)
                      for i, k in enumerate(kernels))
    if any(launcher is None for launcher in launchers):
        return None
    return launchers if len(launchers) > 1 else launchers[0]


def attention(q, k, v, *, causal=False, window=None, softcap=None, scale=None,
              bias=None, sinks=None, layout="bhsd", return_lse=False, bundles=None,
              out=None, q_descale=None, k_descale=None, v_descale=None, out_dtype=None):
    """attn's kernels with an SDPA-shaped call.

    q [B, Hq, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv] (layout="bshd":
    [B, S, H, D]); GQA/MQA by the head counts; causal or window=(left, right)
    masks, bottom-right aligned; bias broadcastable to [B, Hq, Sq, Sk]; sinks
    [Hq]. Returns out (and the LSE [B, Hq, Sq] with return_lse).

    Differentiable: where autograd records (grad mode on and q, k, v or
    sinks requiring grad), the call saves the LSE and its backward runs
    attention_backward's kernels; the bias is a constant.

    FP8 (FlashAttention-3's forward): q, k, v of torch.float8_e4m3fn with
    q_descale, k_descale, v_descale (float32, shape [] per tensor or
    [B, Hkv] per batch and KV head) that multiply them back to their
    values; the output is out_dtype (bfloat16 by default, float16
    or float32). sm_90a only (the wgmma kernel), head dims 128 or 256; no
    backward.
    """
    if str(q.dtype) == "torch.float8_e4m3fn" or q_descale is not None:
        return _attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout,
                          return_lse, bundles, out,
                          fp8=((q_descale, k_descale, v_descale), out_dtype))
    if out_dtype is not None or k_descale is not None or v_descale is not None:
        raise ValueError("descales and out_dtype are for FP8 (float8_e4m3fn) inputs")
    if _records_grad(q, k, v, sinks):
        if out is not None:
            raise ValueError("out= cannot be used where autograd records the call")
        return _AttentionFunction.apply(q, k, v, bias, sinks, causal, window, softcap, scale,
                                        layout, return_lse, bundles)
    return _call_attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout,
                           return_lse, bundles, out)


def _call_attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout, return_lse,
                    bundles, out):
    """attention without autograd: the fast path, else the Python path
    (attn.ops' custom op calls this; autograd is the dispatcher's there)."""
    fast = _fast
    if fast is not None:
        result = fast.attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout,
                                return_lse, bundles, out)
        if result is not None:
            return result
    return _attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout, return_lse,
                      bundles, out)


def _dense_sizes(q, k, v, layout):
    """(dtype, B, Hq, Hkv, Sq, Sk, D, Dv) of 4-D q, k, v in `layout`, checked:
    one supported dtype, consistent shapes, Hq a multiple of Hkv."""
    dtype = _DTYPES.get(str(q.dtype).replace("torch.", ""))
    if dtype is None:
        raise ValueError(f"unsupported dtype {q.dtype}; expected float16, bfloat16, float32 "
                         f"or float8_e4m3fn")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError("q, k and v must have the same dtype")
    if layout == "bhsd":
        b, hq, sq, d = q.shape
        _, hkv, sk, _ = k.shape
    elif layout == "bshd":
        b, sq, hq, d = q.shape
        _, sk, hkv, _ = k.shape
    else:
        raise ValueError(f"unknown layout {layout!r}; expected 'bhsd' or 'bshd'")
    dv = v.shape[-1]
    if k.shape[0] != b or v.shape[0] != b or k.shape[-1] != d or tuple(v.shape[:3]) != tuple(k.shape[:3]):
        raise ValueError(f"inconsistent shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if hkv == 0 or hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of key/value heads ({hkv})")
    return dtype, b, hq, hkv, sq, sk, d, dv


_OUT_DTYPES = {"bfloat16": "bf16", "float16": "f16", "float32": "f32"}


def _fp8_descales(descales, out_dtype, dtype, b, hkv):
    """FP8's checked descales (as a dict of kernel tensors), their mode
    ("tensor" or "head") and the output's torch and spec dtypes."""
    import torch

    if dtype != "f8e4m3":
        raise ValueError("q_descale is for FP8 inputs: q, k and v must be float8_e4m3fn")
    if any(d is None for d in descales):
        raise ValueError("FP8 attention needs q_descale, k_descale and v_descale")
    shapes = {tuple(d.shape) for d in descales if isinstance(d, torch.Tensor)}
    if len(shapes) != 1 or shapes.pop() not in ((), (b, hkv)):
        raise ValueError(f"q_descale, k_descale and v_descale must be float32 tensors of one "
                         f"shape, [] or [B, Hkv] = [{b}, {hkv}]")
    for name, d in zip(("q_descale", "k_descale", "v_descale"), descales):
        if d.dtype != torch.float32 or not d.is_cuda or not d.is_contiguous():
            raise ValueError(f"{name} must be a contiguous float32 CUDA tensor")
    out_dtype = torch.bfloat16 if out_dtype is None else out_dtype
    spec_out = _OUT_DTYPES.get(str(out_dtype).replace("torch.", ""))
    if spec_out is None:
        raise ValueError(f"out_dtype must be bfloat16, float16 or float32, not {out_dtype}")
    tensors = dict(zip(("descale_q", "descale_k", "descale_v"), descales))
    return tensors, "tensor" if descales[0].dim() == 0 else "head", out_dtype, spec_out


@_on_tensor_device
def _attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout, return_lse,
               bundles, out, fp8=None):
    """attention's Python path: every check, the kernel lookup, the launch,
    and the plan of the call for the fast path. `fp8`: FP8's (descales,
    out_dtype)."""
    import torch

    call = (q, k, v, causal, window, softcap, scale, bias, sinks, layout, return_lse, bundles,
            out)
    if bundles is None:
        bundles = os.environ.get("ATTN_BUNDLES", "build/bundles")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_cuda:
            raise ValueError(f"{name} must be a CUDA tensor")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D ({layout}), got shape {tuple(t.shape)}")
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous in the {layout} layout")
    dtype, b, hq, hkv, sq, sk, d, dv = _dense_sizes(q, k, v, layout)
    if causal and window is not None:
        raise ValueError("pass either causal=True or window=(left, right)")
    values = _score_values(d, scale, softcap, window)
    tensors = {"q": q, "k": k, "v": v}
    out_dtype, fp8_key = q.dtype, None
    if fp8 is not None or dtype == "f8e4m3":
        descales, descale_mode, out_dtype, spec_out = _fp8_descales(
            *(fp8 or ((None, None, None), None)), dtype, b, hkv)
        tensors.update(descales)
        fp8_key = (descale_mode, spec_out)
    bias_key = sinks_key = None
    if bias is not None:
        if bias.dim() != 4 or not bias.is_contiguous() or not bias.is_cuda:
            raise ValueError("bias must be a contiguous 4-D CUDA tensor broadcastable to [B, Hq, Sq, Sk]")
        full = (b, hq, sq, sk)
        for i, (s, f) in enumerate(zip(bias.shape, full)):
            if s != 1 and s != f:
                raise ValueError(f"bias {tuple(bias.shape)} is not broadcastable to {full} (dim {i})")
        bias_key = (tuple(s == 1 for s in bias.shape), bias.dtype)
        tensors["bias"] = bias
    if sinks is not None:
        if tuple(sinks.shape) != (hq,) or not sinks.is_cuda:
            raise ValueError(f"sinks must be a CUDA tensor of shape ({hq},)")
        sinks_key = sinks.dtype
        tensors["sinks"] = sinks.contiguous()
    device = _device_index(q)
    key = (q.dtype, d, dv, layout, causal, None if window is None else tuple(window), softcap,
           scale, bias_key, sinks_key, return_lse, device, fp8_key)
    kernel = _resolved.get(("attention", bundles, key))
    if kernel is None:
        want = {"dtype": dtype, "head_dim": d, "value_head_dim": dv, "layout": layout,
                **_value_want(values, window),
                "bias": bias is not None, "sinks": sinks is not None, "lse": return_lse}
        if fp8_key is not None:
            want["descale"], want["out_dtype"] = fp8_key
        if window is None:
            want["mask"] = "causal" if causal else "none"
        if bias is not None:
            want["bias_broadcast"] = list(bias_key[0])
            want["bias_dtype"] = _DTYPES.get(str(bias.dtype).replace("torch.", ""))
        if sinks is not None:
            want["sinks_dtype"] = _DTYPES.get(str(sinks.dtype).replace("torch.", ""))
        kernel = _resolve("attention", bundles, key, want, lambda ks: _find(ks, want), device)
    out_shape = (b, hq, sq, dv) if layout == "bhsd" else (b, sq, hq, dv)
    if out is None:
        out = torch.empty(out_shape, dtype=out_dtype, device=q.device)
    elif tuple(out.shape) != out_shape or out.dtype != out_dtype or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {out_dtype} tensor of shape {out_shape}")
    tensors["o"] = out
    if return_lse:
        lse = torch.empty((b, hq, sq), dtype=torch.float32, device=q.device)
        tensors["lse"] = lse
    for name, t in tensors.items():
        # 16-byte copies (cp.async) and paired stores need aligned bases.
        if t.data_ptr() % 16:
            raise ValueError(f"{name} must start at a 16-byte aligned address "
                             f"(its storage offset is not a multiple of 16 bytes)")
    runtime = values
    kernel.launch(tensors, {"B": b, "Hq": hq, "Hkv": hkv, "Sq": sq, "Sk": sk, **runtime},
                  _current_stream(device), device)
    fast = _fastpath() if fp8_key is None else None  # the fast path has no FP8 slots
    if fast is not None:
        launcher = _dense_launcher(fast, kernel, device, runtime)
        if launcher is not None:
            fast.register_attention(*call, launcher)
    return (out, lse) if return_lse else out


def _records_grad(*tensors):
    """Whether autograd records a call on `tensors` (None entries aside);
    no torch call unless one of them requires grad."""
    if not any(t is not None and getattr(t, "requires_grad", False) for t in tensors):
        return False
    import torch

    return torch.is_grad_enabled()


def _make_attention_function():
    import torch

    class AttentionFunction(torch.autograd.Function):
        """attention with attention_backward as its gradient."""

        @staticmethod
        def forward(ctx, q, k, v, bias, sinks, causal, window, softcap, scale, layout,
                    return_lse, bundles):
            # The fast path too: a training step's forward is a call like any
            # other (with its LSE).
            out, lse = _call_attention(q, k, v, causal, window, softcap, scale, bias, sinks,
                                       layout, True, bundles, None)
            ctx.save_for_backward(q, k, v, out, lse, bias, sinks)
            ctx.options = dict(causal=causal, window=window, softcap=softcap, scale=scale,
                               layout=layout, bundles=bundles)
            if not return_lse:
                return out
            ctx.mark_non_differentiable(lse)
            return out, lse

        @staticmethod
        def backward(ctx, do, *unused):
            q, k, v, out, lse, bias, sinks = ctx.saved_tensors
            grads = attention_backward(do.contiguous(), q, k, v, out, lse, bias=bias,
                                       sinks=sinks, **ctx.options)
            dsinks = grads[3] if sinks is not None else None
            return (grads[0], grads[1], grads[2], None, dsinks) + (None,) * 7

    return AttentionFunction


class _LazyFunction:
    """The autograd.Function, made on first use (importing attn.gpu does not
    import torch)."""
    fn = None

    def apply(self, *args):
        if _LazyFunction.fn is None:
            _LazyFunction.fn = _make_attention_function()
        return _LazyFunction.fn.apply(*args)


_AttentionFunction = _LazyFunction()


# The tensors and sizes of the backward's kernels, as their native Launchers
# read them (attention_backward): every parameter a kernel of
# AttentionGradKernels.cpp takes (_fastpath.c's GRAD_SLOTS, DENSE_SIZES).
_GRAD_SLOTS = ("q", "k", "v", "bias", "o", "do", "lse", "delta", "row_stats", "dq_accum",
               "dq", "dk", "dv", "sinks", "dsinks")
_GRAD_SIZES = ("B", "Hq", "Hkv", "Sq", "Sk")
_GRAD_WORKSPACES = ("delta", "row_stats", "dq_accum")  # the slots a plan allocates


def _grad_workspaces(fast, kernels, values):
    """The workspaces of a backward kernel set as the fast path's plan
    allocates them: ((slot, (program, ...)), ...) in the order the Python
    path allocates them (each name once, f32), a grid program a dim; None
    where one is not f32 or not a slot."""
    seen, out = set(), []
    try:
        for kern in kernels:
            for p in kern.manifest["params"]:
                if p.get("role") != "workspace" or p["name"] in seen:
                    continue
                if p["name"] not in _GRAD_WORKSPACES or p.get("dtype") != "f32":
                    return None
                seen.add(p["name"])
                out.append((_GRAD_SLOTS.index(p["name"]),
                            tuple(_grid_program(parse_grid_size(e), _GRAD_SIZES, values, fast)
                                  for e in p["shape"])))
    except (_NoFastPath, ValueError):
        return None
    return tuple(out)


def attention_backward(do, q, k, v, out, lse, *, causal=False, window=None, softcap=None,
                       scale=None, bias=None, sinks=None, layout="bhsd", bundles=None,
                       kernel=None, deterministic=None, dq_reduce=None):
    """The gradients of `attention(q, k, v, ...) = out` for the upstream
    gradient `do` (shaped like out): (dq, dk, dv), and dsinks (like sinks)
    with sinks. `lse` is the forward's (attention(..., return_lse=True)).
    dk and dv are summed over each KV head's query heads (GQA/MQA); the bias
    gets no gradient. Runs attn.attention_grad's kernels.
    `deterministic=True` runs the deterministic set (the dQ kernel, then
    dK/dV, then the sink gradient; no atomics: the same bits every run).
    `deterministic=False` runs the bundles of variants with "deterministic":
    false: for sm_90a, head dims 64 and 128, dQ fused into the dK/dV kernel
    (FlashAttention-3's backward: each tile's share of dQ added into an f32
    workspace by bulk reductions, so dQ's last bits depend on their order),
    between a prep and a convert kernel; elsewhere the deterministic kernels
    under that variant's names. The default (None) follows PyTorch, as
    SDPA's backends do: deterministic exactly where
    torch.are_deterministic_algorithms_enabled().
    `dq_reduce="atomic"` picks the fused set whose consumers add dQ element by
    element (a tuning choice, for measurement); the default adds each tile's
    share by bulk reductions ("bulk").
    By default the kernels without a "kernel" in their variant run (compiled
    for sm_90a, dQ and dK/dV are the wgmma kernels wherever they take the variant).
    `kernel="mma"` or `kernel="wgmma"` pins the dQ and dK/dV kernels: bundles whose
    variant says so (wgmma: f16/bf16, head dims multiples of 64 up to 256,
    sm_90a)."""
    import torch

    if deterministic is None:
        deterministic = torch.are_deterministic_algorithms_enabled()
    fast = _fast
    if fast is not None:
        result = fast.attention_backward(do, q, k, v, out, lse, causal, window, softcap, scale,
                                         bias, sinks, layout, bundles, kernel,
                                         bool(deterministic), dq_reduce)
        if result is not None:
            return result
    return _attention_backward(do, q, k, v, out, lse, causal, window, softcap, scale, bias,
                               sinks, layout, bundles, kernel, bool(deterministic), dq_reduce)


@_on_tensor_device
def _attention_backward(do, q, k, v, out, lse, causal, window, softcap, scale, bias, sinks,
                        layout, bundles, kernel, deterministic, dq_reduce):
    import torch

    # The call's arguments as the fast path keys them (bundles as given:
    # None is the fast path's own key, with $ATTN_BUNDLES in its plan).
    call = (do, q, k, v, out, lse, causal, window, softcap, scale, bias, sinks, layout,
            bundles, kernel, deterministic, dq_reduce)
    if bundles is None:
        bundles = os.environ.get("ATTN_BUNDLES", "build/bundles")
    for name, t in (("do", do), ("q", q), ("k", k), ("v", v), ("out", out)):
        if not isinstance(t, torch.Tensor) or not t.is_cuda or t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D CUDA tensor")
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous in the {layout} layout")
        if t.dtype != q.dtype:
            raise ValueError(f"{name} must have q's dtype {q.dtype}")
    dtype, b, hq, hkv, sq, sk, d, dv = _dense_sizes(q, k, v, layout)
    if dtype == "f8e4m3":
        raise NotImplementedError("no FP8 attention backward (FP8 is forward only)")
    o_shape = (b, hq, sq, dv) if layout == "bhsd" else (b, sq, hq, dv)
    if tuple(out.shape) != o_shape or tuple(do.shape) != o_shape:
        raise ValueError(f"out and do must have shape {o_shape}")
    if (not isinstance(lse, torch.Tensor) or not lse.is_cuda or lse.dtype != torch.float32
            or tuple(lse.shape) != (b, hq, sq) or not lse.is_contiguous()):
        raise ValueError(f"lse must be a contiguous float32 CUDA tensor of shape {(b, hq, sq)}")
    if causal and window is not None:
        raise ValueError("pass either causal=True or window=(left, right)")
    values = _score_values(d, scale, softcap, window)
    want = {"op": "attention_grad", "dtype": dtype, "head_dim": d, "value_head_dim": dv,
            "layout": layout, **_value_want(values, window),
            "bias": bias is not None, "sinks": sinks is not None}
    if window is None:
        want["mask"] = "causal" if causal else "none"
    if kernel not in (None, "auto"):
        if kernel not in ("mma", "wgmma"):
            raise ValueError(f"kernel must be None, 'auto', 'mma' or 'wgmma', not {kernel!r}")
        want["kernel"] = kernel
    if not deterministic:
        want["deterministic"] = False
    if dq_reduce not in (None, "bulk", "atomic"):
        raise ValueError(f"dq_reduce must be None, 'bulk' or 'atomic', not {dq_reduce!r}")
    if dq_reduce == "atomic":
        want["dq_reduce"] = "atomic"
    tensors = {"q": q, "k": k, "v": v, "o": out, "do": do, "lse": lse}
    if bias is not None:
        full = (b, hq, sq, sk)
        if (bias.dim() != 4 or not bias.is_cuda or not bias.is_contiguous()
                or any(s not in (1, f) for s, f in zip(bias.shape, full))):
            raise ValueError(f"bias must be a contiguous 4-D CUDA tensor broadcastable to {full}")
        want["bias_broadcast"] = [s == 1 for s in bias.shape]
        want["bias_dtype"] = _DTYPES.get(str(bias.dtype).replace("torch.", ""))
        tensors["bias"] = bias
    if sinks is not None:
        if tuple(sinks.shape) != (hq,) or not sinks.is_cuda:
            raise ValueError(f"sinks must be a CUDA tensor of shape ({hq},)")
        want["sinks_dtype"] = _DTYPES.get(str(sinks.dtype).replace("torch.", ""))
        tensors["sinks"] = sinks.contiguous()
    device = _device_index(q)
    key = (_want_key(want), device)

    def lookup(ks):
        steps = {}
        for kern in _matching(ks, want):
            kind = kern.manifest.get("kernel", "")
            # A pinned backward (a "kernel" in its variant) only where
            # asked for.
            if "kernel" in kern.variant and "kernel" not in want:
                continue
            # Likewise the non-deterministic backward and its tuning choice,
            # which want holds only where they differ from the default.
            if (kern.variant.get("deterministic", True) != want.get("deterministic", True)
                    or kern.variant.get("dq_reduce", "bulk") != want.get("dq_reduce", "bulk")):
                continue
            if kind.startswith("attention_grad."):
                steps.setdefault(kern.manifest["step"], kern)
        # The manifests' steps 0 .. n - 1, each once (today dQ, dK/dV, and
        # dsinks with sinks; a kernel set with other passes runs the same
        # way), with a dsinks step exactly where there are sinks.
        run = [steps[i] for i in sorted(steps)]
        has_dsinks = any(kern.manifest["kernel"] == "attention_grad.dsinks" for kern in run)
        if (len(run) < 2 or sorted(steps) != list(range(len(run)))
                or has_dsinks != (sinks is not None)):
            raise LookupError(f"no attention backward bundle for {want}")
        return run
    kernels = _resolve("attention_grad", bundles, key, want, lookup, device)
    tensors["dq"] = torch.empty_like(q)
    tensors["dk"] = torch.empty_like(k)
    tensors["dv"] = torch.empty_like(v)
    if sinks is not None:
        tensors["dsinks"] = torch.empty_like(tensors["sinks"])
    sizes = {"B": b, "Hq": hq, "Hkv": hkv, "Sq": sq, "Sk": sk, **values}
    # Workspaces (Delta; whatever else a kernel set passes between its
    # steps) as their manifests shape them, one tensor per name.
    for kern in kernels:
        for name, shape, dtype in kern.workspace_shapes(sizes):
            if name not in tensors:
                tensors[name] = torch.empty(shape, dtype=getattr(torch, dtype),
                                            device=q.device)
    stream = _current_stream(device)
    # The set through its kernels' native Launchers where the fast path is on
    # (the parameters packed in C, each tensor inspected once: half of this
    # function's host time was their Python packing,
    # docs/bench/2026-12-05-h200-fused-dq/host.txt), else, or where one
    # refuses (then none has launched), through Kernel.launch.
    fast = _fastpath()
    launchers = None
    if fast is not None and len(kernels) <= fast.MAX_SET:
        launchers = tuple(_native_launcher(fast, kern, device, _GRAD_SLOTS, _GRAD_SIZES, values)
                          for kern in kernels)
    if (launchers is None or None in launchers
            or fast.launch_set(launchers, [tensors.get(name) for name in _GRAD_SLOTS],
                               (b, hq, hkv, sq, sk), stream) is None):
        for kern in kernels:
            kern.launch(tensors, sizes, stream, device)
    else:
        # Later calls like this one skip the Python path: the module's plan
        # holds the launchers and the workspaces' shapes.
        workspaces = _grad_workspaces(fast, kernels, values)
        if workspaces is not None:
            try:
                fast.register_attention_backward(*call, launchers, workspaces)
            except ValueError:  # a workspace the module cannot hold: no plan
                pass
    grads = (tensors["dq"], tensors["dk"], tensors["dv"])
    return grads + ((tensors["dsinks"],) if sinks is not None else ())


_INT_DTYPES = {"torch.int32": "i32", "torch.int64": "i64"}
_sm_counts = {}  # device index -> multiprocessors


def _sm_count(device):
    """The multiprocessor count of device `device` (an index; None: the
    current one), what the size "SMs" of persistent kernels' grids reads."""
    if device is None:
        import torch

        device = torch.cuda.current_device()
    count = _sm_counts.get(device)
    if count is None:
        import torch

        count = _sm_counts[device] = torch.cuda.get_device_properties(device).multi_processor_count
    return count


def num_splits(batch, kv_heads, row_tiles, max_len, sms, resident=2):
    """How many splits of the keys (flash-decoding) the paged kernel uses.

    A block is (sequence, KV head, 16 packed query rows, split); `resident`
    blocks fit an SM at once (shared memory: 2 up to head dim 128). The
    splits fill the `resident * sms` slots in one wave -- floor, not ceil: a
    second, mostly empty wave costs more than a slightly idle first one --
    without splitting under 256 keys of the longest possible sequence
    (`max_len`), and at most 128. Enough blocks without splitting: 1."""
    blocks = max(1, batch * kv_heads * row_tiles)
    fill = (resident * sms) // blocks
    return max(1, min(fill, -(-max_len // 256), 128))


def _resident_blocks(manifest):
    """Blocks of a kernel that fit one SM by shared memory (227 KB usable on
    sm_90, 1 KB reserved per block), at most 2 (the paged kernel's registers)."""
    smem = manifest["dynamic_shared_memory"]
    return max(1, min(2, (227 * 1024) // (smem + 1024)))


def _row_stride(t):
    """Elements between consecutive rows of the 4-D tensor `t` when its
    first three dimensions enumerate its rows in order, each row dense (the
    layout the paged kernels index: row r at element r · stride); None when
    `t` is not laid out so. The strides of size-1 dimensions do not count,
    as for torch's is_contiguous: a page-size-1 cache transposed from NHD to
    HND is contiguous, yet its page dimension's stride is Hkv · D, not D."""
    size, stride = tuple(t.shape), t.stride()
    if t.dim() != 4 or (size[3] > 1 and stride[3] != 1):
        return None
    row, rows_inside = None, 1  # rows inside one step of dimension i
    for i in (2, 1, 0):
        if size[i] > 1:
            if row is None:
                if stride[i] % rows_inside:
                    return None
                row = stride[i] // rows_inside
            elif stride[i] != row * rows_inside:
                return None
        rows_inside *= size[i]
    return size[3] if row is None else row


def paged_attention(q, k_cache, v_cache, block_table, seq_lens, *, causal=False, window=None,
                    softcap=None, scale=None, sinks=None, cache_layout="nhd", return_lse=False,
                    num_splits_override=None, bundles=None, out=None):
    """Paged decode/append attention with attn's kernels, shaped like vLLM's
    and FlashInfer's paged decode calls.

    q [B, Hq, D] (one new token per sequence) or [B, Sq, Hq, D] (Sq tokens,
    the last Sq positions of each sequence); k_cache/v_cache [pages, P, Hkv, D]
    (cache_layout="nhd") or [pages, Hkv, P, D] ("hnd"), v_cache contiguous or
    the first Dv columns of k_cache (DeepSeek MLA's latent cache: D = 576,
    v_cache = k_cache[..., :512], scale given); block_table [B,
    max_pages] (int32/int64 page indices), seq_lens [B] (keys per sequence,
    the new tokens included; converted to the table's integer type). Masks are bottom-right aligned at each
    sequence's length. Returns out shaped like q (and the LSE [B, Hq, Sq],
    natural log, with return_lse). `num_splits_override` fixes the number of
    key splits instead of the heuristic (num_splits)."""
    fast = _fast
    if fast is not None:
        result = fast.paged_attention(q, k_cache, v_cache, block_table, seq_lens, causal, window,
                                      softcap, scale, sinks, cache_layout, return_lse,
                                      num_splits_override, bundles, out)
        if result is not None:
            return result
    return _paged_attention(q, k_cache, v_cache, block_table, seq_lens, causal, window, softcap,
                            scale, sinks, cache_layout, return_lse, num_splits_override, bundles,
                            out)


@_on_tensor_device
def _paged_attention(q, k_cache, v_cache, block_table, seq_lens, causal, window, softcap, scale,
                     sinks, cache_layout, return_lse, num_splits_override, bundles, out):
    """paged_attention's Python path: every check, the kernel lookup, the
    launches, and the plan of the call for the fast path."""
    import torch

    call = (q, k_cache, v_cache, block_table, seq_lens, causal, window, softcap, scale, sinks,
            cache_layout, return_lse, num_splits_override, bundles, out)
    if bundles is None:
        bundles = os.environ.get("ATTN_BUNDLES", "build/bundles")
    single = q.dim() == 3
    if single:
        q = q.unsqueeze(1)
    for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache),
                    ("block_table", block_table), ("seq_lens", seq_lens)):
        if not isinstance(t, torch.Tensor) or not t.is_cuda:
            raise ValueError(f"{name} must be a CUDA tensor")
        if not t.is_contiguous() and name != "v_cache":
            raise ValueError(f"{name} must be contiguous")
    if q.dim() != 4 or k_cache.dim() != 4 or v_cache.dim() != 4:
        raise ValueError("q must be [B, Hq, D] or [B, Sq, Hq, D] and the caches 4-D")
    dtype = _DTYPES.get(str(q.dtype).replace("torch.", ""))
    if dtype not in ("f16", "bf16"):
        raise ValueError(f"paged attention takes float16 or bfloat16, got {q.dtype}")
    if k_cache.dtype != q.dtype or v_cache.dtype != q.dtype:
        raise ValueError("q and the caches must have the same dtype")
    b, sq, hq, d = q.shape
    if cache_layout == "nhd":
        pages, page, hkv, dk = k_cache.shape
    elif cache_layout == "hnd":
        pages, hkv, page, dk = k_cache.shape
    else:
        raise ValueError(f"unknown cache_layout {cache_layout!r}; expected 'nhd' or 'hnd'")
    dv = v_cache.shape[-1]
    # The values are a contiguous cache, or the first Dv columns of each key
    # row (MLA's latent cache: v_cache = k_cache[..., :Dv]); the kernel reads
    # value row r at r · VStride.
    v_rows = _row_stride(v_cache)
    prefix_of_k = (v_cache.data_ptr() == k_cache.data_ptr() and v_rows == dk and dv <= dk)
    if not (v_rows == dv or prefix_of_k):
        raise ValueError("v_cache must be contiguous or the first Dv columns of k_cache "
                         "(k_cache[..., :Dv])")
    if dk != d or tuple(v_cache.shape[:3]) != tuple(k_cache.shape[:3]):
        raise ValueError(f"inconsistent shapes q {tuple(q.shape)}, k_cache {tuple(k_cache.shape)}, "
                         f"v_cache {tuple(v_cache.shape)}")
    if hkv == 0 or hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of KV heads ({hkv})")
    table_dt = _INT_DTYPES.get(str(block_table.dtype))
    if (table_dt is not None and seq_lens.dtype != block_table.dtype
            and str(seq_lens.dtype) in _INT_DTYPES):
        seq_lens = seq_lens.to(block_table.dtype)  # the kernel reads both alike
    lens_dt = _INT_DTYPES.get(str(seq_lens.dtype))
    if block_table.dim() != 2 or block_table.shape[0] != b or table_dt is None:
        raise ValueError(f"block_table must be an int32/int64 [B={b}, max_pages] tensor")
    if tuple(seq_lens.shape) != (b,) or lens_dt is None:
        raise ValueError(f"seq_lens must be an int32/int64 [B={b}] tensor")
    if causal and window is not None:
        raise ValueError("pass either causal=True or window=(left, right)")
    values = _score_values(d, scale, softcap, window)
    want = {"op": "paged_attention", "dtype": dtype, "head_dim": d, "value_head_dim": dv,
            "page_size": page, "cache_layout": cache_layout, "table_dtype": table_dt,
            "lens_dtype": lens_dt, **_value_want(values, window)}
    if window is None:
        want["mask"] = "causal" if causal else "none"
    if b > MAX_GRID_YZ:
        # The split kernel's grid holds one sequence per block index in z
        # (at most 65535): longer batches (sparse attention's per-token
        # sequences) run in slices of the batch.
        if out is not None and (out.numel() != b * sq * hq * dv or not out.is_contiguous()):
            raise ValueError("out must be a contiguous tensor shaped like the output")
        out4 = out.view(b, sq, hq, dv) if out is not None else \
            torch.empty((b, sq, hq, dv), dtype=q.dtype, device=q.device)
        lses = []
        step = MAX_GRID_YZ // 16 * 16  # slices start 16-byte aligned
        for i in range(0, b, step):
            j = min(b, i + step)
            r = paged_attention(q[i:j], k_cache, v_cache, block_table[i:j], seq_lens[i:j],
                                causal=causal, window=window, softcap=softcap, scale=scale,
                                sinks=sinks, cache_layout=cache_layout, return_lse=return_lse,
                                num_splits_override=num_splits_override, bundles=bundles,
                                out=out4[i:j])
            if return_lse:
                lses.append(r[1])
        result = out4.view(b, hq, dv) if single else out4
        if not return_lse:
            return result
        lse = torch.cat(lses)
        return result, (lse.view(b, hq) if single else lse)
    tensors = {"q": q, "k_cache": k_cache, "v_cache": v_cache, "block_table": block_table,
               "seq_lens": seq_lens}
    if sinks is not None:
        if tuple(sinks.shape) != (hq,) or not sinks.is_cuda:
            raise ValueError(f"sinks must be a CUDA tensor of shape ({hq},)")
        tensors["sinks"] = sinks.contiguous()
    device = _device_index(q)
    group_rows = (hq // hkv) * sq
    key = (_want_key(want), prefix_of_k, group_rows, None if sinks is None else sinks.dtype,
           return_lse, device)
    kernels = _resolved.get(("paged_attention", bundles, key))
    if kernels is None:
        combine_want = {"op": "paged_combine", "dtype": dtype, "value_head_dim": dv,
                        "sinks": sinks is not None, "lse": return_lse}
        # What attn.bundles.spec_of compiles: the split and combine kernels.
        variant = dict(want, values="key_prefix" if prefix_of_k else "separate",
                       sinks=sinks is not None, lse=return_lse)
        if sinks is not None:
            combine_want["sinks_dtype"] = variant["sinks_dtype"] = \
                _DTYPES.get(str(sinks.dtype).replace("torch.", ""))

        def lookup(ks):
            return (_find_paged_split(ks, want, prefix_of_k, group_rows),
                    _find(ks, combine_want))
        kernels = _resolve("paged_attention", bundles, key, variant, lookup, device)
    split_kernel, combine = kernels
    rows = split_kernel.manifest["rows_per_block"]
    row_tiles = -(-(hq // hkv) * sq // rows)
    sms = _sm_count(device)
    # Blocks per split: sequences x KV heads x value-column chunks (wide heads,
    # MLA) x row tiles.
    chunks = split_kernel.manifest.get("value_chunks", 1)
    splits = num_splits_override or num_splits(b, hkv * chunks, row_tiles,
                                               block_table.shape[1] * page,
                                               sms,
                                               _resident_blocks(split_kernel.manifest))
    if out is None:
        out = torch.empty((b, sq, hq, dv), dtype=q.dtype, device=q.device)
    elif tuple(out.shape) not in ((b, sq, hq, dv),) + (((b, hq, dv),) if single else ()) \
            or out.dtype != q.dtype or not out.is_contiguous():
        raise ValueError("out must be a contiguous tensor shaped like the output")
    tensors["o"] = out
    tensors["o_part"], tensors["lse_part"] = _paged_workspace(q, splits, b, sq, hq, dv)
    if return_lse:
        lse = torch.empty((b, hq, sq), dtype=torch.float32, device=q.device)
        tensors["lse"] = lse
    for name, t in tensors.items():
        if t.data_ptr() % 16:
            raise ValueError(f"{name} must start at a 16-byte aligned address")
    stream = _current_stream(device)
    # The kernels' grids are the manifests' expressions of these sizes
    # (row tiles x splits, KV heads x value chunks, sequences; the combine
    # kernel's warp per output row, eight a block).
    runtime = values
    sizes = {"B": b, "Hq": hq, "Hkv": hkv, "Sq": sq, "MaxPages": block_table.shape[1],
             "Splits": splits, "VStride": v_rows, **runtime}
    split_kernel.launch(tensors, sizes, stream, device)
    combine.launch(tensors, sizes, stream, device)
    fast = _fastpath()
    if fast is not None:
        launchers = [_native_launcher(fast, kern, device, fast.PAGED_SLOTS, fast.PAGED_SIZES,
                                      runtime) for kern in (split_kernel, combine)]
        if None not in launchers:
            # The split heuristic's constants of this plan: num_splits in C.
            fast.register_paged_attention(
                *call, *launchers, row_tiles, chunks,
                _resident_blocks(split_kernel.manifest) * sms)
    result = out.view(b, hq, dv) if single else out
    if single and return_lse:
        lse = lse.view(b, hq)
    return (result, lse) if return_lse else result


@_on_tensor_device
def sparse_attention(q, k, v, indices, *, block_size=1, causal=False, scale=None, softcap=None,
                     sinks=None, return_lse=False, bundles=None):
    """attn.sparse_attention on the GPU: q [B, Sq, Hq, D], k [B, Sk, Hkv, D],
    v [B, Sk, Hkv, Dv] (contiguous, or k[..., :Dv]: DeepSeek Sparse
    Attention's latent MLA, D = 576, one KV head), indices [B, Sq, Hkv, N]
    (int32/int64; -1, out-of-range and, with causal, future entries
    skipped). Returns out [B, Sq, Hq, Dv] (and the LSE [B, Hq, Sq] with
    return_lse).

    Each (query row, KV head) becomes a sequence of attn's paged kernels with
    the G = Hq / Hkv query heads of the group as its packed rows: its valid
    selections, compacted in ascending order, are its page table over the
    keys viewed as pages of `block_size` (so the kernel reads only the
    selected rows), its length the selected keys (a causal row's last block
    cut at its position). Rows with nothing valid give zeros. With several
    KV heads (NSA's selection branch) the keys are first copied head-major
    (each head's pages contiguous); with one, k is used in place when Sk is a
    multiple of block_size. Needs paged bundles with page_size = block_size
    and no mask."""
    import torch

    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or indices.dim() != 4:
        raise ValueError("q, k, v and indices must be 4-D")
    b, sq, hq, d = q.shape
    sk, hkv = k.shape[1], k.shape[2]
    n = indices.shape[3]
    if tuple(indices.shape[:3]) != (b, sq, hkv) or tuple(k.shape[:2]) != (b, sk) \
            or tuple(v.shape[:3]) != (b, sk, hkv) or hkv == 0 or hq % hkv:
        raise ValueError(f"inconsistent shapes q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}, indices {tuple(indices.shape)}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if sinks is not None and hkv > 1:
        raise ValueError("sinks with several KV heads are not supported on the GPU")
    group = hq // hkv
    nb = -(-sk // block_size)
    dv = v.shape[3]
    prefix_of_k = (v.data_ptr() == k.data_ptr() and _row_stride(v) == d and dv <= d
                   and k.is_contiguous())
    if not q.is_contiguous() or not k.is_contiguous() or not (v.is_contiguous() or prefix_of_k):
        raise ValueError("q and k must be contiguous, v contiguous or k[..., :Dv]")
    # Valid entries: non-negative, an existing block, and (causal) starting
    # at or before the row's position t + Sk - Sq.
    idx = indices.long()
    pos = torch.arange(sq, device=q.device) + (sk - sq)
    valid = (idx >= 0) & (idx < nb)
    if causal:
        valid &= idx * block_size <= pos[None, :, None, None]
    big = torch.iinfo(torch.int64).max
    ordered, _ = torch.sort(torch.where(valid, idx, torch.full_like(idx, big)), dim=-1)
    count = valid.sum(-1)
    last = torch.gather(ordered, -1, (count - 1).clamp(min=0)[..., None])[..., 0]
    limit = (pos + 1).clamp(max=sk)[None, :, None] if causal \
        else torch.full((1, sq, 1), sk, device=q.device)
    tail = torch.clamp(limit - last * block_size, max=block_size)
    lens = torch.where(count > 0, (count - 1) * block_size + tail, torch.zeros_like(count))
    # The keys as pages of block_size, head-major: page (b·Hkv + h)·nb + j
    # (entries past a row's length are never read).
    if hkv == 1 and sk % block_size == 0:
        k_pages = k.view(b * nb, block_size, 1, d)
        v_pages = k_pages[..., :dv] if prefix_of_k else v.reshape(b * nb, block_size, 1, dv)
    else:
        def head_major(x):
            out = x.new_zeros(b, hkv, nb * block_size, x.shape[3])
            out[:, :, :sk] = x.permute(0, 2, 1, 3)
            return out.view(b * hkv * nb, block_size, 1, x.shape[3])
        k_pages = head_major(k)
        v_pages = k_pages[..., :dv] if prefix_of_k else head_major(v)
    base = (torch.arange(b * hkv, device=q.device) * nb).view(b, 1, hkv, 1)
    table = torch.where(ordered == big, torch.zeros_like(ordered), ordered) + base
    res = paged_attention(q.view(b * sq * hkv, 1, group, d), k_pages, v_pages,
                          table.to(torch.int32).view(b * sq * hkv, n).contiguous(),
                          lens.to(torch.int32).view(b * sq * hkv).contiguous(),
                          softcap=softcap, scale=scale, sinks=sinks, return_lse=return_lse,
                          bundles=bundles)
    if return_lse:
        out, lse = res
        return out.view(b, sq, hq, dv), lse.view(b, sq, hq).permute(0, 2, 1).contiguous()
    return res.view(b, sq, hq, dv)


def _orderable(scores):
    """int64 keys of f32 `scores` [..., S] whose descending order is the
    scores' descending order with ties to the lower index."""
    import torch

    bits = scores.contiguous().view(torch.int32)
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()
    index = torch.arange(scores.shape[-1], device=scores.device)
    return bits * (1 << 32) + ((1 << 32) - 1 - index)


@_on_tensor_device
def lightning_indexer(q, k, weights, top_k, *, causal=False, window=None, return_scores=False,
                      bundles=None):
    """attn.lightning_indexer on the GPU (DeepSeek-V3.2's indexer): q [B, Sq,
    Hi, Di], k [B, Sk, Di], weights [B, Sq, Hi] (float32 or q's dtype).
    Returns the indices [B, Sq, top_k] int32 of the top_k keys by
    score = Σ_h w_h · relu(q_h · k) (ties to the lower key; -1 once the
    admitted keys run out), and with return_scores the scores [B, Sq, Sk]
    float32 (-inf where the mask does not admit a key).

    The scores come from attn's indexer kernel (tensor cores); the selection
    is torch.topk over int64 keys that fold the key index into each score,
    which makes it exact and deterministic."""
    import torch

    if bundles is None:
        bundles = os.environ.get("ATTN_BUNDLES", "build/bundles")
    for name, t in (("q", q), ("k", k), ("weights", weights)):
        if not isinstance(t, torch.Tensor) or not t.is_cuda or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous CUDA tensor")
    if q.dim() != 4 or k.dim() != 3 or weights.dim() != 3:
        raise ValueError("q must be [B, Sq, Hi, Di], k [B, Sk, Di], weights [B, Sq, Hi]")
    b, sq, hi, di = q.shape
    sk = k.shape[1]
    if k.shape[0] != b or k.shape[2] != di or tuple(weights.shape) != (b, sq, hi):
        raise ValueError(f"inconsistent shapes q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"weights {tuple(weights.shape)}")
    if top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    if sq > MAX_GRID_YZ or b > MAX_GRID_YZ:
        raise ValueError(f"at most {MAX_GRID_YZ} query tokens and sequences per call "
                         f"(the kernel's grid); got {sq} and {b}")
    if causal and window is not None:
        raise ValueError("pass either causal=True or window=(left, right)")
    dtype = _DTYPES.get(str(q.dtype).replace("torch.", ""))
    if k.dtype != q.dtype:
        raise ValueError("q and k must have the same dtype")
    want = {"op": "lightning_indexer", "dtype": dtype, "heads": hi, "head_dim": di,
            "weights_dtype": _DTYPES.get(str(weights.dtype).replace("torch.", "")),
            "mask": "window" if window is not None else ("causal" if causal else "none")}
    if window is not None:
        want["window_left"], want["window_right"] = int(window[0]), int(window[1])
    device = _device_index(q)
    kernel = _resolve("lightning_indexer", bundles, (_want_key(want), device), want,
                      lambda ks: _find(ks, want), device)
    scores = torch.empty((b, sq, sk), dtype=torch.float32, device=q.device)
    kernel.launch({"q": q, "k": k, "weights": weights, "scores": scores}, {"B": b, "Sq": sq, "Sk": sk},
                  _current_stream(device), device)
    kk = min(top_k, sk)
    indices = torch.full((b, sq, top_k), -1, dtype=torch.int32, device=q.device)
    if kk > 0:
        best = torch.topk(_orderable(scores), kk, dim=-1).indices
        admitted = torch.gather(scores, -1, best) > float("-inf")
        indices[..., :kk] = torch.where(admitted, best, torch.full_like(best, -1)).to(torch.int32)
    return (indices, scores) if return_scores else indices


@_on_tensor_device
def nsa(q, k, v, k_cmp, v_cmp, gates, *, cmp_block, cmp_stride, sel_block, num_selected, window,
        initial_blocks=1, local_blocks=2, scale=None, page_size=64, return_indices=False,
        bundles=None):
    """attn.nsa (Native Sparse Attention) on the GPU: q [B, T, Hq, D], k
    [B, S, Hkv, D], v [B, S, Hkv, Dv] (T query tokens at the last T of S
    positions), k_cmp [B, Tc, Hkv, D], v_cmp [B, Tc, Hkv, Dv] (compressed
    token c covers keys [c·cmp_stride, c·cmp_stride + cmp_block)), gates [B,
    T, Hq, 3]. Returns out [B, T, Hq, Dv] in q's dtype (and the selected
    blocks [B, T, Hkv, num_selected] with return_indices). D ≠ Dv (the NSA
    paper's 192 / 128) takes Dv up to 128 or a multiple of 128.

    The branches, as attn's kernels: (1) compressed attention with its LSE
    (_nsa_compressed: the dense causal kernel, positions packed by residue;
    the paged kernels over pages of `page_size` compressed tokens when the
    frontend made fewer than all complete ones); (2) attn's NSA
    selection kernel (block scores from the compressed probabilities,
    forced blocks, top-n); (3) the selected blocks through sparse_attention;
    (4) the sliding window through attention (bshd, window (window - 1,
    0)); (5) the gates, in float32."""
    import torch

    if bundles is None:
        bundles = os.environ.get("ATTN_BUNDLES", "build/bundles")
    for name, t in (("q", q), ("k", k), ("v", v), ("k_cmp", k_cmp), ("v_cmp", v_cmp),
                    ("gates", gates)):
        if not isinstance(t, torch.Tensor) or not t.is_cuda or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous CUDA tensor")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or k_cmp.dim() != 4 or gates.dim() != 4:
        raise ValueError("q, k, v, k_cmp, v_cmp and gates must be 4-D")
    b, t, hq, d = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[3]
    tc = k_cmp.shape[1]
    if (tuple(k.shape) != (b, s, hkv, d) or tuple(v.shape) != (b, s, hkv, dv)
            or tuple(k_cmp.shape) != (b, tc, hkv, d) or tuple(v_cmp.shape) != (b, tc, hkv, dv)
            or tuple(gates.shape) != (b, t, hq, 3) or hkv == 0 or hq % hkv or t > s):
        raise ValueError(f"inconsistent shapes q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}, k_cmp {tuple(k_cmp.shape)}, "
                         f"v_cmp {tuple(v_cmp.shape)}, gates {tuple(gates.shape)} "
                         "(the GPU path takes T <= S)")
    if min(cmp_block, cmp_stride, sel_block, num_selected, window) < 1:
        raise ValueError("cmp_block, cmp_stride, sel_block, num_selected and window must be "
                         "positive")
    scale = _f32(scale if scale is not None else 1 / math.sqrt(d))
    want = {"op": "nsa", "dtype": _DTYPES.get(str(q.dtype).replace("torch.", "")),
            "head_dim": d, "value_head_dim": dv, "q_heads": hq, "kv_heads": hkv,
            "cmp_block": cmp_block,
            "cmp_stride": cmp_stride, "sel_block": sel_block, "num_selected": num_selected,
            "initial_blocks": initial_blocks, "local_blocks": local_blocks, "scale": scale}
    device = _device_index(q)

    def lookup(ks):
        """The selection kernel and, where the variant's compiler built one,
        the selected branch's kernel (nsa.attend), else None."""
        found = {kern.manifest.get("kernel"): kern for kern in _matching(ks, want)}
        if "nsa.select" not in found:
            raise LookupError(f"no NSA selection bundle for {want}")
        return found["nsa.select"], found.get("nsa.attend")
    # Compiled on first use: all of its branches' kernels (bundles.nsa_variants).
    select, attend = _resolve("nsa", bundles, (_want_key(want), window, page_size, device),
                              dict(want, window=window, page_size=page_size), lookup, device)
    if -(-s // sel_block) > select.manifest["max_key_blocks"]:
        raise ValueError(f"the NSA selection kernel scores at most "
                         f"{select.manifest['max_key_blocks']} blocks of {sel_block} keys")
    stream = _current_stream(device)
    # (1) Compressed attention, with its LSE.
    o_cmp, lse_cmp = _nsa_compressed(q, k_cmp, v_cmp, s, cmp_block, cmp_stride, scale, page_size,
                                     bundles)
    # (2) Block selection from the compressed probabilities.
    indices = torch.empty((b, t, hkv, num_selected), dtype=torch.int32, device=q.device)
    select.launch({"q": q, "k_cmp": k_cmp, "lse_cmp": lse_cmp, "indices": indices},
                  {"B": b, "Sq": t, "Sk": s, "Tc": tc}, stream, device)
    # (3) The window branch reads only the keys some query's window holds,
    # [s - t - window + 1, s): a key tile of the dense kernel that straddles
    # the first window's start would otherwise load keys before it (masked,
    # but 0 · NaN is NaN in P·V), keys that may be unselected and unset.
    lo = max(0, s - t - (window - 1))
    k_win, v_win = (k, v) if lo == 0 else (k[:, lo:].contiguous(), v[:, lo:].contiguous())
    o_win = attention(q, k_win, v_win, window=(window - 1, 0), scale=scale, layout="bshd",
                      bundles=bundles)
    # (4) The selected blocks and (5) the gated sum in float32: one kernel,
    # which reads the selections as they are, or (bundles of an older
    # compiler, selection blocks it does not take) the paged kernels over
    # the compacted selections and three torch passes.
    if attend is not None and b > 0 and t > 0:
        out = q.new_empty(b, t, hq, dv)
        attend.launch({"q": q, "k": k, "v": v, "indices": indices, "o_cmp": o_cmp,
                       "o_win": o_win, "gates": gates.float(), "out": out},
                      {"B": b, "Sq": t, "Sk": s}, stream, device)
        return (out, indices) if return_indices else out
    o_sel = sparse_attention(q, k, v, indices, block_size=sel_block, causal=True, scale=scale,
                             bundles=bundles)
    out = o_win.float().mul_(gates[..., 2:3])
    out.addcmul_(o_sel, gates[..., 1:2]).addcmul_(o_cmp, gates[..., 0:1])
    out = out.to(q.dtype)
    return (out, indices) if return_indices else out


GATED_RECURRENT_MAX_TOKENS = 16


@_on_tensor_device
def gated_delta_rule(q, k, v, g, beta, *, initial_state=None, qk_l2norm=False, scale=None,
                     bundles=None, out=None, path="auto"):
    """Gated DeltaNet (g [B, T, Hv]) or Kimi Delta Attention (g [B, T, Hv, Dk],
    per-channel gates) with attn's chunked kernels, shaped like
    flash-linear-attention's chunk_gated_delta_rule: q, k [B, T, Hk, Dk], v
    [B, T, Hv, Dv] (Hv a multiple of Hk), log-space gates g, beta [B, T, Hv]
    (f32 or q's dtype), initial_state [B, Hv, Dk, Dv] f32 or None. Returns
    (out [B, T, Hv, Dv] in q's dtype, final_state [B, Hv, Dk, Dv] f32).
    `path`: "chunked" (the chunk and state kernels; the chunk length is the
    bundles', it does not change the result), "recurrent" (one kernel, token
    by token: decode) or "auto" (recurrent up to GATED_RECURRENT_MAX_TOKENS
    tokens)."""
    import torch

    if bundles is None:
        bundles = os.environ.get("ATTN_BUNDLES", "build/bundles")
    for name, t in (("q", q), ("k", k), ("v", v), ("g", g), ("beta", beta)):
        if not isinstance(t, torch.Tensor) or not t.is_cuda or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous CUDA tensor")
    if q.dim() != 4 or k.shape != q.shape or v.dim() != 4:
        raise ValueError("q and k must be [B, T, Hk, Dk] and v [B, T, Hv, Dv]")
    b, t, hk, dk = q.shape
    hv, dv = v.shape[2], v.shape[3]
    if tuple(v.shape[:2]) != (b, t) or hk == 0 or hv % hk:
        raise ValueError(f"v {tuple(v.shape)} must be [B={b}, T={t}, Hv, Dv] with Hv a multiple "
                         f"of Hk={hk}")
    channel = g.dim() == 4
    if tuple(g.shape) != ((b, t, hv, dk) if channel else (b, t, hv)):
        raise ValueError(f"g must be [B, T, Hv] or [B, T, Hv, Dk], got {tuple(g.shape)}")
    if tuple(beta.shape) != (b, t, hv):
        raise ValueError(f"beta must be [B, T, Hv], got {tuple(beta.shape)}")
    dtype = _DTYPES.get(str(q.dtype).replace("torch.", ""))
    if dtype is None or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError("q, k and v must share one of float16, bfloat16, float32")
    dt = lambda x: _DTYPES.get(str(x.dtype).replace("torch.", ""))
    if dt(g) not in ("f32", dtype) or dt(beta) not in ("f32", dtype):
        raise ValueError("g and beta must be float32 or q's dtype")
    if initial_state is not None:
        if (not isinstance(initial_state, torch.Tensor) or initial_state.dtype != torch.float32
                or tuple(initial_state.shape) != (b, hv, dk, dv) or not initial_state.is_cuda):
            raise ValueError(f"initial_state must be a float32 CUDA tensor [B, Hv, Dk, Dv] = "
                             f"{(b, hv, dk, dv)}")
        initial_state = initial_state.contiguous()
    if path not in ("auto", "chunked", "recurrent"):
        raise ValueError(f"path must be auto, chunked or recurrent, got {path!r}")
    common = {"op": "gated_delta_rule", "dtype": dtype, "key_head_dim": dk,
              "value_head_dim": dv}
    inputs = dict(common, gate_kind="channel" if channel else "head", gate_dtype=dt(g),
                  beta_dtype=dt(beta), qk_l2norm=bool(qk_l2norm),
                  scale=_f32(scale if scale is not None else 1 / math.sqrt(dk)))
    has_init = initial_state is not None
    recurrent_path = path == "recurrent" or (path == "auto" and t <= GATED_RECURRENT_MAX_TOKENS)
    device = _device_index(q)

    def lookup(ks):
        """(recurrent kernel or None, chunk kernel, state kernel); the
        chunked pair is not needed when the recurrent one runs."""
        recurrent = [kern for kern in _matching(ks, dict(inputs, initial_state=has_init))
                     if kern.manifest.get("kernel") == "gated_delta.recurrent"]
        if recurrent_path and (recurrent or path == "recurrent"):
            if not recurrent:
                raise LookupError(f"no recurrent gated delta bundle for {inputs}")
            return recurrent[0], None, None
        chunk_kernel = _find([kern for kern in ks
                              if kern.manifest.get("kernel") == "gated_delta.chunk"], inputs)
        state_kernel = _find(ks, dict(common, chunk=chunk_kernel.variant["chunk"],
                                      initial_state=has_init))
        return None, chunk_kernel, state_kernel
    recurrent, chunk_kernel, state_kernel = _resolve(
        "gated_delta_rule", bundles, (_want_key(inputs), has_init, recurrent_path, path, device),
        dict(inputs, initial_state=has_init), lookup, device)
    if out is None:
        out = torch.empty((b, t, hv, dv), dtype=q.dtype, device=q.device)
    elif tuple(out.shape) != (b, t, hv, dv) or out.dtype != q.dtype or not out.is_contiguous():
        raise ValueError("out must be a contiguous tensor shaped like v, in q's dtype")
    final = torch.empty((b, hv, dk, dv), dtype=torch.float32, device=q.device)
    sizes = {"B": b, "T": t, "Hk": hk, "Hv": hv}
    stream = _current_stream(device)
    if recurrent is not None:
        tensors = {"q": q, "k": k, "v": v, "g": g, "beta": beta, "o": out,
                   "final_state": final}
        if has_init:
            tensors["initial_state"] = initial_state
        recurrent.launch(tensors, sizes, stream, device)
        return out, final
    chunk = chunk_kernel.variant["chunk"]
    chunks = -(-t // chunk)
    f32 = dict(dtype=torch.float32, device=q.device)
    tensors = {"q": q, "k": k, "v": v, "g": g, "beta": beta, "o": out, "final_state": final,
               "w": torch.empty((b, hv, t, dk), **f32), "u": torch.empty((b, hv, t, dv), **f32),
               "qg": torch.empty((b, hv, t, dk), **f32), "kg": torch.empty((b, hv, t, dk), **f32),
               "aqk": torch.empty((b, hv, t, chunk), **f32),
               "gc": torch.empty((b, hv, chunks, dk), **f32)}
    if has_init:
        tensors["initial_state"] = initial_state
    sizes["Chunks"] = chunks
    chunk_kernel.launch(tensors, sizes, stream, device)  # no chunks at T = 0: not launched
    state_kernel.launch(tensors, sizes, stream, device)
    return out, final


_matches = {}


def _frozen(x):
    return tuple(_frozen(e) for e in x) if isinstance(x, (list, tuple)) else x


def _want_key(want):
    """A hashable key of a `want` dict: its items in the caller's order
    (each call site builds its dicts in one order; no sorting per call)."""
    try:
        key = tuple(want.items())
        hash(key)
        return key
    except TypeError:  # list values (bias_broadcast)
        return tuple((k, _frozen(v)) for k, v in want.items())


def _matching(kernels, want):
    """The kernels of `kernels` (a load_bundles list) whose variant has
    `want`'s values (floats compared as f32). Memoized per list and want: the
    scan is linear in the bundles, and a call should not pay for a large
    bundle directory."""
    key = (id(kernels), _want_key(want))
    hit = _matches.get(key)
    if hit is not None:
        return hit[1]

    def same(a, b):
        if a == "runtime":  # the kernel takes the value as an argument
            return b is not None
        if isinstance(a, float) or isinstance(b, float):
            return a is not None and b is not None and _f32(a) == _f32(b)
        return a == b
    # "specialize": only kernels with the values compiled in (a negative
    # scale, which no run-time kernel takes).
    specialize = want.get("specialize", False)
    found = [kern for kern in kernels
             if all(same(kern.variant.get(key), value) for key, value in want.items()
                    if key != "specialize")
             and not (specialize and "runtime" in kern.variant.values())]
    _matches[key] = (kernels, found)  # holds the list: its id stays its own
    return found


def _find_paged_split(kernels, want, prefix_of_k, rows):
    """The split kernel of a paged variant. With the value cache a prefix of
    the key cache (MLA), the latent kernel where one was compiled: of its
    row-tile sizes, the smallest that holds a KV head's `rows` query rows (the
    largest if none does). Otherwise the general kernel."""
    if prefix_of_k:
        latent = _matching(kernels, dict(want, values="key_prefix"))
        if latent:
            fits = [k for k in latent if k.manifest["rows_per_block"] >= rows]
            if fits:
                return min(fits, key=lambda k: k.manifest["rows_per_block"])
            return max(latent, key=lambda k: k.manifest["rows_per_block"])
    return _find(kernels, dict(want, values="separate"))


def _find(kernels, want):
    matches = _matching(kernels, want)
    if matches:
        # Prefer tensor-core kernels when a directory holds several, then
        # the values compiled in over the same kernel taking them at run
        # time.
        rank = {"wgmma": 0, "mma.sync": 1}
        # A length alternative (a manifest's "prefer") only where no kernel
        # without one matches.
        ordered = sorted(matches, key=lambda k: (k.prefer is not None,
                                                 rank.get(k.manifest.get("kernel"), 2),
                                                 "runtime" in k.variant.values()))
        # The chosen kernel's length alternatives: the same variant and body
        # with other tiling, preferred at some sizes, tried in the order of
        # their names (as the host code of programs does); the call's sizes
        # pick among them at each launch.
        default = ordered[0]
        alternatives = sorted((k for k in ordered[1:] if k.prefer is not None
                               and k.variant == default.variant
                               and k.manifest["kernel"] == default.manifest["kernel"]),
                              key=lambda k: k.manifest["entry"])
        return KernelChoice(alternatives, default) if alternatives else default
    raise LookupError(f"no kernel bundle for the variant {want}; "
                      f"compile one with attn-compile or python -m attn.bundles")


_jit_kernels = {}  # (chip, variant key) -> kernels of its cache entry
_resolved = {}  # (op, bundles, key) -> what the op's lookup returned


def chip_of(device):
    """The chip attn compiles for on `device`: sm_90a on Hopper, else
    sm_80 (mma.sync kernels run on sm_80 and later)."""
    import torch

    major, _ = torch.cuda.get_device_capability(device)
    return "sm_90a" if major == 9 else "sm_80"


def _resolve(op, bundles, key, variant, lookup, device):
    """The kernels `lookup(kernels)` picks for one call of `op` (whose
    arguments `key` identifies), memoized: the same call again costs one
    dict lookup. `lookup` raises LookupError when the bundle directory has
    no match; then the op's `variant` (what attn.bundles.spec_of compiles)
    is compiled on first use into attn.jit's on-disk cache (bundle
    directories are searched first), or attn.jit.CompilerNotFound says which
    command would build it."""
    memo = (op, bundles, key)
    hit = _resolved.get(memo)
    if hit is not None:
        return hit
    try:
        found = lookup(load_bundles(bundles))
    except LookupError:
        from . import jit

        chip = chip_of(device)
        jit_key = (chip, _want_key(variant))
        kernels = _jit_kernels.get(jit_key)
        if kernels is None:
            kernels = _jit_kernels[jit_key] = load_bundles(jit.compile_variant(variant, chip))
        found = lookup(kernels)
    _resolved[memo] = found
    return found


def _paged_workspace(q, splits, b, sq, hq, dv):
    """o_part [splits, B, Sq, Hq, Dv] and lse_part [splits, B, Sq, Hq], float32
    views of one allocation on q's device, lse_part from the first 16-byte
    boundary past o_part: a decode call allocates once less (each
    allocation costs the host about 3 µs). The fast path allocates the
    same (_fastpath.c, paged_outputs)."""
    import torch

    n_o, n_l = splits * b * sq * hq * dv, splits * b * sq * hq
    pad = -(-n_o // 4) * 4
    ws = torch.empty((pad + n_l,), dtype=torch.float32, device=q.device)
    return (ws.narrow(0, 0, n_o).view(splits, b, sq, hq, dv),
            ws.narrow(0, pad, n_l).view(splits, b, sq, hq))


_index_tensors = {}


def _index_tensor(values, device):
    """A small int64 tensor of `values` on `device`, cached: made from pinned
    memory without synchronizing, so that a call works under CUDA-graph
    capture (a tensor made from a Python list is a synchronous copy)."""
    import torch

    key = (tuple(values), device)
    t = _index_tensors.get(key)
    if t is None:
        host = torch.tensor(values, dtype=torch.int64).pin_memory()
        t = _index_tensors[key] = host.to(device, non_blocking=True)
    return t


def _nsa_compressed(q, k_cmp, v_cmp, s, l, stride, scale, page_size, bundles):
    """NSA's compressed branch: out [B, T, Hq, Dv] and LSE [B, T, Hq] (f32)
    of attention over the compressed tokens each position p sees, c·stride +
    l <= p + 1.

    Positions p = stride·m + r of one residue r see the first m + c_r
    compressed tokens, c_r = floor((r + 1 - l) / stride) + 1: a causal mask
    (bottom-right aligned) over the rows m, and c_r takes at most two values.
    So when the frontend made every complete compressed token, the branch is
    at most two calls of the dense causal kernel, the residues of a value of
    c_r gathered as extra query heads of each KV head (GQA). Otherwise (fewer
    compressed tokens), each position is a sequence of the paged kernels
    over the compressed tokens as pages, its length the visible ones."""
    import torch

    b, t, hq, d = q.shape
    tc, hkv, dv = k_cmp.shape[1], k_cmp.shape[2], v_cmp.shape[3]
    group = hq // hkv
    p0 = s - t
    if tc < max(0, (s - l) // stride + 1):
        pos = torch.arange(t, device=q.device) + p0
        visible = torch.clamp(torch.div(pos + 1 - l, stride, rounding_mode="floor") + 1,
                              min=0, max=tc)
        pages = max(1, -(-tc // page_size))
        kc = k_cmp.new_zeros(b, pages * page_size, hkv, d)
        vc = v_cmp.new_zeros(b, pages * page_size, hkv, dv)
        kc[:, :tc], vc[:, :tc] = k_cmp, v_cmp
        table = (torch.arange(b, device=q.device)[:, None, None] * pages
                 + torch.arange(pages, device=q.device)[None, None, :]).expand(b, t, pages)
        o, lse = paged_attention(
            q.view(b * t, 1, hq, d), kc.view(b * pages, page_size, hkv, d),
            vc.view(b * pages, page_size, hkv, dv), table.reshape(b * t, pages).to(torch.int32),
            visible.repeat(b).to(torch.int32), scale=scale, return_lse=True, bundles=bundles)
        return o.view(b, t, hq, dv), lse.view(b, t, hq)
    # Rows of (token, KV head) pairs; one spare row takes the padding rows'
    # results.
    out = q.new_zeros(b, t * hkv + 1, group, dv)
    lse = torch.full((b, t * hkv + 1, group), float("-inf"), device=q.device)
    q_rows = q.view(b, t * hkv, group, d)
    m0 = p0 // stride
    rows = (s - 1) // stride - m0 + 1
    offsets = [(r + 1 - l) // stride + 1 for r in range(stride)]
    heads = torch.arange(hkv, device=q.device)
    for c in sorted(set(offsets)):
        res = _index_tensor([r for r in range(stride) if offsets[r] == c], q.device)
        keys = rows + m0 + c - 1  # row i sees keys j <= i + keys - rows
        if keys <= 0:
            continue
        n = len(res)
        # Query heads ordered (KV head, residue, head of the group): one
        # gather of the (token, KV head) rows; padding rows read token 0 and
        # write the spare row.
        tok = stride * (m0 + torch.arange(rows, device=q.device))[:, None] + res[None, :] - p0
        valid = (tok >= 0) & (tok < t)
        src = tok.clamp(0, t - 1)[:, None, :] * hkv + heads[None, :, None]  # [rows, Hkv, n]
        dst = torch.where(valid[:, None, :], src, torch.full_like(src, t * hkv)).flatten()
        qg = q_rows.index_select(1, src.flatten()).view(b, rows, hkv * n * group, d)
        kk, vv = k_cmp[:, :keys], v_cmp[:, :keys]
        if keys > tc:  # keys only the padding rows see
            kk = torch.cat([kk, k_cmp.new_zeros(b, keys - tc, hkv, d)], 1)
            vv = torch.cat([vv, v_cmp.new_zeros(b, keys - tc, hkv, dv)], 1)
        o, ls = attention(qg, kk.contiguous(), vv.contiguous(), causal=True, scale=scale,
                          layout="bshd", return_lse=True, bundles=bundles)
        out.index_copy_(1, dst, o.view(b, rows * hkv * n, group, dv))
        ls = ls.view(b, hkv, n, group, rows).permute(0, 4, 1, 2, 3)
        lse.index_copy_(1, dst, ls.reshape(b, rows * hkv * n, group))
    return (out[:, :t * hkv].reshape(b, t, hq, dv).contiguous(),
            lse[:, :t * hkv].reshape(b, t, hq).contiguous())
