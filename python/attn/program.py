"""Calls attn's compiled GPU programs on torch CUDA tensors.

A program is what ``attn-compile --shared model.mlir -o layer.so`` writes:
``layer.so`` (a C entry point ``_mlir_ciface_<name>`` per public function of
the module, its kernels embedded, linked against libattn_runtime),
``layer.h`` and ``layer.json`` (the entry points' arguments and results).

    prog = attn.program.load("layer.so")
    out = prog.attention(q, k, v)        # torch CUDA tensors in and out

Arguments are passed without copies: each tensor's memory is handed to the
program as a memref descriptor (dense, row-major tensors; a non-contiguous
tensor is refused rather than copied). Results are the program's own device
buffers, wrapped as torch tensors through DLPack; freeing the tensor frees
the buffer. Work is ordered on torch's current stream of the tensors'
device, with no synchronization, like any torch op. Dynamic dims take any
runtime size.

A program's kernels are loaded on their first launch, into the context
current then (torch's primary context of the tensors' device); a program
runs on the device it was first called on.
"""

import ctypes
import json
import os

__all__ = ["load", "Program", "find_runtime"]

# DLPack type codes (DLDataTypeCode) and torch dtypes of the program dtypes.
_DTYPES = {
    "f16": (2, 16, "float16"), "bf16": (4, 16, "bfloat16"), "f32": (2, 32, "float32"),
    "f64": (2, 64, "float64"), "i8": (0, 8, "int8"), "i16": (0, 16, "int16"),
    "i32": (0, 32, "int32"), "i64": (0, 64, "int64"),
}
_SCALARS = {"f16": ctypes.c_uint16, "bf16": ctypes.c_uint16, "f32": ctypes.c_float,
            "f64": ctypes.c_double, "i8": ctypes.c_int8, "i16": ctypes.c_int16,
            "i32": ctypes.c_int32, "i64": ctypes.c_int64}

_runtime = None
_CU_STREAM_LEGACY = 1  # cuda.h: CU_STREAM_LEGACY ((CUstream)0x1)


def find_runtime(near=None):
    """The path of libattn_runtime.so: $ATTN_RUNTIME_LIB, else next to
    `near` (a program), in ../lib from it, or in the build tree of this
    checkout (build/lib)."""
    candidates = []
    if os.environ.get("ATTN_RUNTIME_LIB"):
        candidates.append(os.environ["ATTN_RUNTIME_LIB"])
    if near:
        d = os.path.dirname(os.path.abspath(near))
        candidates += [os.path.join(d, "libattn_runtime.so"),
                       os.path.join(d, "..", "lib", "libattn_runtime.so")]
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "..", "build", "lib", "libattn_runtime.so"))
    for c in candidates:
        if os.path.isfile(c):
            return os.path.abspath(c)
    raise FileNotFoundError("libattn_runtime.so not found (looked in: " +
                            ", ".join(candidates) + "); set ATTN_RUNTIME_LIB")


def _load_runtime(near):
    global _runtime
    if _runtime is None:
        # RTLD_GLOBAL: programs name libattn_runtime.so as a dependency; one
        # already loaded satisfies it, wherever the program's RUNPATH points.
        lib = ctypes.CDLL(find_runtime(near), mode=ctypes.RTLD_GLOBAL)
        lib.attnRuntimeSetStream.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.attnRuntimeGetError.restype = ctypes.c_char_p
        lib.attnRuntimeWrapDLPack.restype = ctypes.c_void_p
        lib.attnRuntimeWrapDLPack.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64),
            ctypes.c_uint8, ctypes.c_uint8, ctypes.c_int32]
        lib.attnRuntimeFree.argtypes = [ctypes.c_void_p]
        _runtime = lib
    return _runtime


def _descriptor_type(rank):
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
              ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    return type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": fields})


_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class Function:
    """One entry point of a program."""

    def __init__(self, program, entry):
        self.name = entry["name"]
        self.arguments = entry["arguments"]
        self.results = entry["results"]
        self._program = program
        self._fn = getattr(program._lib, entry["symbol"])
        self._fn.restype = None
        self._arg_types = [_descriptor_type(len(a["shape"])) if a["kind"] == "tensor"
                           else _SCALARS[a["dtype"]] for a in self.arguments]
        self._result_types = [_descriptor_type(len(r["shape"])) for r in self.results]
        if len(self._result_types) > 1:
            self._results_struct = type(
                f"{self.name}_results", (ctypes.Structure,),
                {"_fields_": [(f"r{i}", t) for i, t in enumerate(self._result_types)]})
        elif self._result_types:
            self._results_struct = self._result_types[0]
        else:
            self._results_struct = None

    def _descriptor(self, i, spec, t):
        import torch

        where = f"{self.name}: argument {i}"
        if not isinstance(t, torch.Tensor) or not t.is_cuda:
            raise TypeError(f"{where} must be a torch CUDA tensor")
        want = getattr(torch, _DTYPES[spec["dtype"]][2])
        if t.dtype != want:
            raise TypeError(f"{where} is {t.dtype}, the program takes {want}")
        if t.dim() != len(spec["shape"]):
            raise ValueError(f"{where} has rank {t.dim()}, the program takes "
                             f"rank {len(spec['shape'])}")
        for d, (have, size) in enumerate(zip(t.shape, spec["shape"])):
            if size >= 0 and have != size:
                raise ValueError(f"{where}: dim {d} is {have}, the program takes {size}")
        if not t.is_contiguous():
            raise ValueError(f"{where} is not contiguous: programs take dense "
                             "row-major tensors (call .contiguous())")
        desc = self._arg_types[i]()
        desc.allocated = desc.aligned = t.data_ptr()
        desc.offset = 0
        if t.dim():
            desc.sizes[:] = list(t.shape)
            desc.strides[:] = list(t.stride())
        return desc

    def _wrap(self, desc, spec, device):
        import torch

        rank = len(spec["shape"])
        code, bits, _ = _DTYPES[spec["dtype"]]
        sizes = (ctypes.c_int64 * max(rank, 1))(*(desc.sizes if rank else [0]))
        strides = (ctypes.c_int64 * max(rank, 1))(*(desc.strides if rank else [0]))
        managed = self._program._runtime.attnRuntimeWrapDLPack(
            desc.allocated, desc.aligned, desc.offset, rank, sizes, strides,
            code, bits, device)
        if not managed:
            self._program._runtime.attnRuntimeFree(desc.allocated)
            raise RuntimeError(f"{self.name}: cannot wrap a result for DLPack")
        return torch.from_dlpack(_PyCapsule_New(managed, b"dltensor", None))

    def __call__(self, *args):
        import torch

        if len(args) != len(self.arguments):
            raise TypeError(f"{self.name} takes {len(self.arguments)} arguments, "
                            f"got {len(args)}")
        call_args, descriptors = [], []  # descriptors live until the call returns
        device = None
        for i, (spec, a) in enumerate(zip(self.arguments, args)):
            if spec["kind"] == "tensor":
                d = self._descriptor(i, spec, a)
                if device is None:
                    device = a.device
                elif a.device != device:
                    raise ValueError(f"{self.name}: arguments on {device} and {a.device}")
                descriptors.append(d)
                call_args.append(ctypes.byref(d))
            else:
                call_args.append(self._arg_types[i](a))
        device = device or torch.device("cuda", torch.cuda.current_device())
        rt = self._program._runtime
        results = self._results_struct() if self._results_struct else None
        with torch.cuda.device(device):
            # torch's default stream is handle 0, which the runtime would take
            # for "no caller stream" (own streams, synchronous calls): pass
            # CU_STREAM_LEGACY (1), the driver's name for that stream.
            stream = torch.cuda.current_stream(device).cuda_stream or _CU_STREAM_LEGACY
            rt.attnRuntimeSetStream(ctypes.c_void_p(stream), 0)
            rt.attnRuntimeClearError()
            if results is not None:
                self._fn(ctypes.byref(results), *call_args)
            else:
                self._fn(*call_args)
            error = rt.attnRuntimeGetError()
        descs = ([getattr(results, f"r{i}") for i in range(len(self.results))]
                 if len(self.results) > 1 else ([results] if results is not None else []))
        outs = [self._wrap(d, s, device.index) for d, s in zip(descs, self.results)]
        if error:
            rt.attnRuntimeClearError()
            raise RuntimeError(f"{self.name}: {error.decode(errors='replace')}")
        if len(outs) == 1:
            return outs[0]
        return tuple(outs)


class Program:
    """A loaded program: its public functions are attributes."""

    def __init__(self, path, runtime=None):
        path = os.path.abspath(path)
        meta = os.path.splitext(path)[0] + ".json"
        with open(meta) as f:
            self.description = json.load(f)
        if self.description.get("version") != 1:
            raise ValueError(f"{meta}: unknown program description version")
        if runtime:
            os.environ.setdefault("ATTN_RUNTIME_LIB", runtime)
        self._runtime = _load_runtime(path)
        self._runtime.attnRuntimeClearError()
        self._lib = ctypes.CDLL(path)
        error = self._runtime.attnRuntimeGetError()
        if error:
            self._runtime.attnRuntimeClearError()
            raise RuntimeError(f"{path}: registering its kernels failed: "
                               f"{error.decode(errors='replace')}")
        self.functions = {e["name"]: Function(self, e)
                          for e in self.description["functions"]}

    def __getattr__(self, name):
        functions = self.__dict__.get("functions", {})
        if name in functions:
            return functions[name]
        raise AttributeError(name)


def load(path, runtime=None):
    """Loads the program `path` (attn-compile --shared); `runtime` is the
    path of libattn_runtime.so if it is not found by find_runtime."""
    return Program(path, runtime)
