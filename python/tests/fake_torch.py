# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""A stand-in for the parts of torch that attn.gpu's attention and
paged_attention and attn._fastpath use, for tests without torch or a GPU
(test_fastpath.py puts it in sys.modules as "torch"). Tensors have shapes,
strides, dtypes, devices and data addresses, but no data: addresses come
from a bump allocator that reset() rewinds, so two calls that allocate in
the same order get the same addresses."""

import contextlib
import ctypes
import math
import types


class dtype:
    def __init__(self, name, itemsize):
        self.name, self.itemsize = name, itemsize

    def __str__(self):
        return f"torch.{self.name}"

    __repr__ = __str__


float16 = dtype("float16", 2)
bfloat16 = dtype("bfloat16", 2)
float32 = dtype("float32", 4)
int32 = dtype("int32", 4)
int64 = dtype("int64", 8)
uint8 = dtype("uint8", 1)

_BASE = 0x7F0000000000
_next = [_BASE]
allocations = [0]  # tensors allocated (new_empty, empty, copies)


def reset():
    """Rewinds the allocator: the next allocations repeat the last run's
    addresses."""
    _next[0] = _BASE


def _alloc(nbytes):
    allocations[0] += 1
    ptr = _next[0]
    _next[0] += max(512, -(-nbytes // 512) * 512)
    return ptr


class device:
    def __init__(self, index, type="cuda"):
        self.index, self.type = index, type

    def __repr__(self):
        return f"device(type={self.type!r}, index={self.index})"


def _dense_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.insert(0, acc)
        acc *= max(n, 1)
    return tuple(strides)


class Tensor:
    def __init__(self, shape, dtype=bfloat16, device=0, ptr=None, stride=None, is_cuda=True):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.is_cuda = is_cuda
        self._index = device
        self.device = globals()["device"](device if is_cuda else None,
                                          "cuda" if is_cuda else "cpu")
        self._stride = tuple(stride) if stride is not None else _dense_strides(self.shape)
        self._ptr = ptr if ptr is not None else _alloc(self.numel() * dtype.itemsize)

    def data_ptr(self):
        return self._ptr

    def dim(self):
        return len(self.shape)

    def numel(self):
        return math.prod(self.shape)

    def element_size(self):
        return self.dtype.itemsize

    def stride(self):
        return self._stride

    def get_device(self):
        return self._index if self.is_cuda else -1

    def is_contiguous(self):
        """torch's rule: sizes of 1 do not count, nor does anything when
        there are no elements."""
        if self.numel() == 0:
            return True
        expected = 1
        for n, s in zip(reversed(self.shape), reversed(self._stride)):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True

    def new_empty(self, shape, dtype=None):
        return Tensor(shape, dtype or self.dtype, self._index, is_cuda=self.is_cuda)

    def contiguous(self):
        return self if self.is_contiguous() else Tensor(self.shape, self.dtype, self._index)

    def view(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        assert self.is_contiguous() and math.prod(shape) == self.numel(), (shape, self.shape)
        return Tensor(shape, self.dtype, self._index, ptr=self._ptr)

    def narrow(self, dim, start, length):
        """A 1-D tensor's elements start .. start + length (the same memory)."""
        assert dim == 0 and self.dim() == 1 and 0 <= start and start + length <= self.numel()
        return Tensor((length,), self.dtype, self._index,
                      ptr=self._ptr + start * self.dtype.itemsize)

    def unsqueeze(self, i):
        shape, stride = list(self.shape), list(self._stride)
        shape.insert(i, 1)
        stride.insert(i, stride[i] * shape[i + 1] if i < len(stride) else 1)
        return Tensor(shape, self.dtype, self._index, ptr=self._ptr, stride=stride)

    def to(self, dtype):
        return self if dtype is self.dtype else Tensor(self.shape, dtype, self._index)

    def columns(self, n):
        """self[..., :n]: the first n columns of each row (same address)."""
        return Tensor(self.shape[:-1] + (n,), self.dtype, self._index, ptr=self._ptr,
                      stride=self._stride)

    def offset(self, nbytes):
        """The same tensor starting `nbytes` later (an unaligned view)."""
        return Tensor(self.shape, self.dtype, self._index, ptr=self._ptr + nbytes,
                      stride=self._stride)


def empty(shape, dtype=bfloat16, device=None, pin_memory=False):
    if isinstance(shape, int):
        shape = (shape,)
    if pin_memory:  # host memory that attn.gpu writes into: real memory
        storage = ctypes.create_string_buffer(math.prod(shape) * dtype.itemsize)
        t = Tensor(shape, dtype, 0, ptr=ctypes.addressof(storage), is_cuda=False)
        t.storage = storage
        return t
    index = device.index if hasattr(device, "index") else (device or 0)
    return Tensor(shape, dtype, index if index is not None else 0, is_cuda=device is not None)


def empty_like(t):
    return t.new_empty(t.shape)


class _Cuda:
    def __init__(self):
        self.current = 0
        self.streams = {}  # device -> raw stream

    def current_device(self):
        return self.current

    @contextlib.contextmanager
    def device(self, d):
        index = d.index if hasattr(d, "index") else d
        previous, self.current = self.current, index
        try:
            yield
        finally:
            self.current = previous

    def get_device_properties(self, d):
        return types.SimpleNamespace(multi_processor_count=132)

    def get_device_capability(self, d=None):
        return (9, 0)


cuda = _Cuda()


def _cuda_getCurrentRawStream(index):
    return cuda.streams.get(index, 0x5000 + index)


def _cuda_getDevice():
    return cuda.current


_C = types.SimpleNamespace(_cuda_getCurrentRawStream=_cuda_getCurrentRawStream,
                           _cuda_getDevice=_cuda_getDevice)


class Parameter(Tensor):
    pass


nn = types.SimpleNamespace(Parameter=Parameter)

# torch.use_deterministic_algorithms's switch, off by default as in torch.
_deterministic = [False]


def use_deterministic_algorithms(mode):
    _deterministic[0] = bool(mode)


def are_deterministic_algorithms_enabled():
    return _deterministic[0]
