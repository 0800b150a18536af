// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// attn._fastpath: the native call path of attn.gpu.attention and
// attn.gpu.paged_attention.
//
// A call that has been seen before (the same dtype, head dims, layout, mask,
// scale, ... on the same device with the same bundles) maps to a *plan*: the
// kernels attn.gpu resolved for it, each as a Launcher that knows its
// parameter layout, launch grid, block, shared memory and CUfunction. Here a
// call is checked as the Python path checks it, its key built, its plan looked
// up, its outputs allocated (through the tensors' new_empty), its parameters
// packed on the C stack and its kernels launched on torch's current stream.
// Anything not taken here -- a check that fails, an unknown key, a device that
// is not current, an argument of an unexpected type -- returns None, and the
// Python path runs: it raises the errors, resolves kernels (bundles, the JIT)
// and registers the plan, so that the next such call is taken here.
//
// The module links nothing: the driver's cuLaunchKernel and
// cuTensorMapEncodeTiled come as addresses from Python's ctypes handle of
// libcuda, torch's current stream and device as Python callables, and tensors
// are read through their Python methods. It builds against the limited API
// (Py_LIMITED_API, abi3) by default, so one build serves every Python from
// 3.10 on; without it, method calls use vectorcall.
//
// The GIL is held throughout: plans and the descriptor caches are shared
// state that only the GIL protects, and a launch's parameters live on the C
// stack of its call.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef ATTN_FASTPATH_SOURCE_HASH
#define ATTN_FASTPATH_SOURCE_HASH ""
#endif

// The interface attn/gpu.py expects; bumped whenever an argument list, a
// slot order or a parameter spec changes.
#define FASTPATH_API 5

//===----------------------------------------------------------------------===//
// The CUDA driver's types (cuda.h), declared here so that nothing is included
// or linked.
//===----------------------------------------------------------------------===//

typedef int CUresult;
typedef void *CUfunction;
typedef void *CUstream;
typedef CUresult (*LaunchKernelFn)(CUfunction f, unsigned gridX, unsigned gridY,
                                   unsigned gridZ, unsigned blockX,
                                   unsigned blockY, unsigned blockZ,
                                   unsigned sharedBytes, CUstream stream,
                                   void **params, void **extra);
// CUtensorMapDataType, ...Interleave, ...Swizzle, ...L2promotion and
// ...FloatOOBfill are enums: ints.
typedef CUresult (*EncodeTiledFn)(void *map, int dataType, uint32_t rank,
                                  void *address, const uint64_t *dims,
                                  const uint64_t *strides, const uint32_t *box,
                                  const uint32_t *elementStrides,
                                  int interleave, int swizzle, int l2Promotion,
                                  int oobFill);

// cuStreamIsCapturing; CUstreamCaptureStatus is an enum (0: not capturing).
typedef CUresult (*IsCapturingFn)(CUstream stream, int *status);

enum {
  TMAP_BYTES = 128,      // sizeof(CUtensorMap); aligned to 64
  TMAP_SWIZZLE_128B = 3, // as attn.gpu._tensor_map encodes them
  TMAP_L2_256B = 3,
  MAX_GRID_X = 2147483647, // CUDA's grid limits
  MAX_GRID_YZ = 65535,
};

//===----------------------------------------------------------------------===//
// Limits of what a Launcher holds (a manifest past them gets no fast path:
// the constructor raises ValueError and attn.gpu keeps the Python path).
//===----------------------------------------------------------------------===//

enum {
  MAX_SLOTS = 16,     // tensors an entry point passes (slot indices)
  MAX_SIZES = 16,     // per-call sizes an entry point passes
  MAX_PARAMS = 64,    // manifest parameters
  MAX_ARGS = 320,     // cuLaunchKernel parameters (5 per memref)
  MAX_TENSORMAPS = 8, // by-value descriptors per kernel
  MAX_SET = 8,        // launchers of one launch_set or plan
  MAX_PREFER = 2,     // size ranges of a length alternative (Launcher prefer)
  MAX_WORKSPACES = 4, // workspaces of a backward plan
  WS_PROGRAM = 16,    // ints of one workspace dim's program
  MAX_PROGRAM = 128,  // ints of one grid axis's program
  MAX_STACK = 32,     // the grid program's evaluation stack
  TMAP_CACHE = 4,     // descriptors kept per descriptor parameter
  MAX_PLANS = 4096,   // plans kept before the table is cleared
  WORKSPACES = 8,     // split-KV workspaces kept, one per (device, stream)
};

// Parameter kinds of a Launcher's spec (attn.gpu._native_launcher).
enum { P_MEMREF = 0, P_I64 = 1, P_F32 = 2, P_TENSORMAP = 3 };
// Grid program operations: (op, argument) pairs in postfix order.
// G_MUL and G_MIN take their argument's count of values off the stack.
enum {
  G_CONST = 0,
  G_SIZE = 1,
  G_MUL = 2,
  G_DIV = 3,
  G_CEIL_DIV = 4,
  G_MIN = 5
};
// Dtype codes, in the order configure() takes the torch dtypes.
enum { DT_F16 = 0, DT_BF16, DT_F32, DT_I32, DT_I64, DT_COUNT };
static const int dtype_bytes[DT_COUNT] = {2, 2, 4, 4, 8};
// CUtensorMapDataType of each code; -1: no descriptor of that dtype.
static const int dtype_tma[DT_COUNT] = {6, 9, -1, -1, -1};

//===----------------------------------------------------------------------===//
// Configuration: what attn.gpu hands over once (configure()).
//===----------------------------------------------------------------------===//

static struct {
  int ready;
  LaunchKernelFn launch;
  EncodeTiledFn encode;
  IsCapturingFn is_capturing; // NULL: every paged call allocates its workspace
  PyObject *check;            // attn.gpu._check(result, what): raises CudaError
  PyObject *get_stream;       // torch._C._cuda_getCurrentRawStream(device)
  PyObject *get_device;       // torch._C._cuda_getDevice()
  PyObject *tensor_types[4];
  int ntensor_types;
  PyObject *dtypes[DT_COUNT];
  PyObject *f32_kwargs; // {"dtype": torch.float32}, for new_empty
} cfg;

static struct {
  unsigned long long hits, misses, rejected;
} stats;

static PyObject *plans; // (key bytes, bundles) -> Plan

static PyObject *s_is_cuda, *s_shape, *s_dtype, *s_get_device, *s_is_contiguous,
    *s_data_ptr, *s_new_empty, *s_stride;

static PyTypeObject *LauncherType, *PlanType;

//===----------------------------------------------------------------------===//
// Reading Python values. Helpers return 1 (read), 0 (not a value the fast
// path takes: the Python path decides) or -1 (an exception to propagate).
//===----------------------------------------------------------------------===//

// After a failed call into Python: an ordinary exception means "not for the
// fast path" -- the Python path will raise the right error -- while
// MemoryError, KeyboardInterrupt and SystemExit propagate.
static int soft_fail(void) {
  if (PyErr_ExceptionMatches(PyExc_Exception) &&
      !PyErr_ExceptionMatches(PyExc_MemoryError)) {
    PyErr_Clear();
    return 0;
  }
  return -1;
}

static PyObject *call_method0(PyObject *obj, PyObject *name) {
#if !defined(Py_LIMITED_API) || Py_LIMITED_API + 0 >= 0x030C0000
  PyObject *args[1] = {obj};
  return PyObject_VectorcallMethod(name, args, 1, NULL);
#else
  return PyObject_CallMethodObjArgs(obj, name, NULL);
#endif
}

// An exact int (not a bool) that fits int64.
static int read_int(PyObject *o, int64_t *v) {
  if (!PyLong_CheckExact(o))
    return 0;
  int overflow;
  long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (x == -1 && PyErr_Occurred())
    return soft_fail();
  if (overflow)
    return 0;
  *v = x;
  return 1;
}

static int read_bool(PyObject *o, int *v) {
  if (o != Py_True && o != Py_False)
    return 0;
  *v = o == Py_True;
  return 1;
}

// None or an exact float: its presence and bits (the key holds the bits, as
// the Python path's key holds the value).
static int read_opt_float(PyObject *o, uint64_t *present, uint64_t *bits) {
  if (o == Py_None) {
    *present = 0;
    *bits = 0;
    return 1;
  }
  if (!PyFloat_CheckExact(o))
    return 0;
  double d = PyFloat_AsDouble(o);
  if (d == -1.0 && PyErr_Occurred())
    return soft_fail();
  *present = 1;
  memcpy(bits, &d, sizeof d);
  return 1;
}

// None, or a tuple or list of two exact ints.
static int read_window(PyObject *o, int *present, int64_t *left,
                       int64_t *right) {
  *present = 0;
  *left = *right = 0;
  if (o == Py_None)
    return 1;
  PyObject *a, *b;
  if (PyTuple_CheckExact(o) && PyTuple_Size(o) == 2) {
    a = PyTuple_GetItem(o, 0);
    b = PyTuple_GetItem(o, 1);
  } else if (PyList_CheckExact(o) && PyList_Size(o) == 2) {
    a = PyList_GetItem(o, 0);
    b = PyList_GetItem(o, 1);
  } else {
    return 0;
  }
  if (!a || !b)
    return soft_fail();
  int r = read_int(a, left);
  if (r <= 0)
    return r;
  r = read_int(b, right);
  if (r <= 0)
    return r;
  *present = 1;
  return 1;
}

// The index of an exact str among `names`, or -1.
static int read_choice(PyObject *o, const char *const *names, int n) {
  if (!PyUnicode_CheckExact(o))
    return -1;
  for (int i = 0; i < n; i++)
    if (PyUnicode_CompareWithASCIIString(o, names[i]) == 0)
      return i;
  return -1;
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

// What a launch reads of one tensor. `obj` is borrowed from the call's
// arguments or owned by the call (outputs).
typedef struct {
  PyObject *obj; // NULL: absent
  uint64_t ptr;
  int64_t shape[4];
  int64_t numel;
  int ndim;
  int dtype; // DT_*, or -1: none of them
  int device;
  int contiguous;
} Tensor;

static int dtype_code(PyObject *dtype) {
  for (int i = 0; i < DT_COUNT; i++)
    if (dtype == cfg.dtypes[i])
      return i;
  return -1;
}

// torch.Tensor (or nn.Parameter) exactly: subclasses may override what is
// read here (__torch_function__), so they take the Python path.
static int is_tensor(PyObject *o) {
  for (int i = 0; i < cfg.ntensor_types; i++)
    if (Py_TYPE(o) == (PyTypeObject *)cfg.tensor_types[i])
      return 1;
  return 0;
}

static int read_shape(PyObject *shape, Tensor *t) {
  if (!PyTuple_Check(shape)) // torch.Size is a tuple
    return 0;
  Py_ssize_t n = PyTuple_Size(shape);
  if (n < 0)
    return soft_fail();
  if (n > 4)
    return 0;
  t->ndim = (int)n;
  int64_t numel = 1;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *d = PyTuple_GetItem(shape, i);
    if (!d)
      return soft_fail();
    int64_t v;
    int r = read_int(d, &v);
    if (r <= 0)
      return r;
    if (v < 0 || __builtin_mul_overflow(numel, v, &numel))
      return 0;
    t->shape[i] = v;
  }
  // Byte counts (numel times 8 at most) stay within int64.
  if (numel > ((int64_t)1 << 59))
    return 0;
  t->numel = numel;
  return 1;
}

// Reads a CUDA tensor of at most 4 dimensions: 1, or 0 for anything else
// (another type, a CPU tensor, more dimensions), or -1.
static int inspect(PyObject *obj, Tensor *t) {
  memset(t, 0, sizeof *t);
  if (!is_tensor(obj))
    return 0;
  t->obj = obj;
  PyObject *v = PyObject_GetAttr(obj, s_is_cuda);
  if (!v)
    return soft_fail();
  int cuda = v == Py_True;
  Py_DECREF(v);
  if (!cuda)
    return 0;
  if (!(v = PyObject_GetAttr(obj, s_shape)))
    return soft_fail();
  int r = read_shape(v, t);
  Py_DECREF(v);
  if (r <= 0)
    return r;
  if (!(v = PyObject_GetAttr(obj, s_dtype)))
    return soft_fail();
  t->dtype = dtype_code(v); // cfg holds the dtypes: the pointer stays valid
  Py_DECREF(v);
  if (!(v = call_method0(obj, s_get_device)))
    return soft_fail();
  int64_t device;
  r = read_int(v, &device);
  Py_DECREF(v);
  if (r <= 0)
    return r;
  if (device < 0 || device > 1 << 16)
    return 0;
  t->device = (int)device;
  if (!(v = call_method0(obj, s_is_contiguous)))
    return soft_fail();
  t->contiguous = v == Py_True;
  Py_DECREF(v);
  if (!(v = call_method0(obj, s_data_ptr)))
    return soft_fail();
  int64_t ptr;
  r = read_int(v, &ptr);
  Py_DECREF(v);
  if (r <= 0)
    return r;
  t->ptr = (uint64_t)ptr;
  return 1;
}

// An input of the entry points: a CUDA tensor of `ndim` dimensions on
// `device` (-1: any), contiguous unless `any_layout`, whose data starts at a
// 16-byte aligned address (the kernels' 16-byte copies need it).
static int input(PyObject *obj, Tensor *t, int ndim, int device,
                 int any_layout) {
  int r = inspect(obj, t);
  if (r <= 0)
    return r;
  if (t->ndim != ndim || (!any_layout && !t->contiguous) || t->ptr % 16 ||
      (device >= 0 && t->device != device))
    return 0;
  return 1;
}

// A new tensor like `like` (its device; its dtype, or float32), shaped
// `shape`: like.new_empty(shape[, dtype=torch.float32]). Allocation errors
// (out of memory) propagate.
static PyObject *new_empty(PyObject *like, const int64_t *shape, int ndim,
                           int f32) {
  PyObject *dims = PyTuple_New(ndim);
  if (!dims)
    return NULL;
  for (int i = 0; i < ndim; i++) {
    PyObject *d = PyLong_FromLongLong(shape[i]);
    if (!d || PyTuple_SetItem(dims, i, d) < 0) {
      Py_DECREF(dims);
      return NULL;
    }
  }
  PyObject *result;
  if (!f32) {
#if !defined(Py_LIMITED_API) || Py_LIMITED_API + 0 >= 0x030C0000
    PyObject *args[2] = {like, dims};
    result = PyObject_VectorcallMethod(s_new_empty, args, 2, NULL);
#else
    result = PyObject_CallMethodObjArgs(like, s_new_empty, dims, NULL);
#endif
  } else {
    PyObject *method = PyObject_GetAttr(like, s_new_empty);
    PyObject *args = method ? PyTuple_Pack(1, dims) : NULL;
    result = args ? PyObject_Call(method, args, cfg.f32_kwargs) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(method);
  }
  Py_DECREF(dims);
  return result;
}

// The output tensor `obj` (new_empty's) as a Tensor of `shape` (1 to 4
// dims), `dtype` on `device`: only its address is read. 1, 0 (not 16-byte
// aligned: the Python path raises) or -1.
static int output(PyObject *obj, const int64_t *shape, int ndim, int dtype,
                  int device, Tensor *t) {
  memset(t, 0, sizeof *t);
  t->obj = obj;
  t->ndim = ndim;
  t->numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (i < 4)
      t->shape[i] = shape[i];
    t->numel *= shape[i]; // checked by the caller: no overflow
  }
  t->dtype = dtype;
  t->device = device;
  t->contiguous = 1;
  PyObject *v = call_method0(obj, s_data_ptr);
  if (!v)
    return -1;
  int64_t ptr;
  int r = read_int(v, &ptr);
  Py_DECREF(v);
  if (r <= 0)
    return r < 0 ? -1 : 0;
  t->ptr = (uint64_t)ptr;
  return t->ptr % 16 == 0;
}

static int same_shape(const Tensor *t, const int64_t *shape, int ndim) {
  if (t->ndim != ndim)
    return 0;
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != shape[i])
      return 0;
  return 1;
}

// 1 when `device` is torch's current device; 0 when another is (the Python
// path switches) or torch cannot say.
static int device_is_current(int device) {
  PyObject *v = PyObject_CallNoArgs(cfg.get_device);
  if (!v)
    return soft_fail();
  int64_t current;
  int r = read_int(v, &current);
  Py_DECREF(v);
  if (r <= 0)
    return r;
  return current == device;
}

// torch's current stream on `device` (a cudaStream_t as an int).
static int current_stream(int device, void **stream) {
  PyObject *index = PyLong_FromLong(device);
  if (!index)
    return -1;
  PyObject *v = PyObject_CallFunctionObjArgs(cfg.get_stream, index, NULL);
  Py_DECREF(index);
  if (!v)
    return -1;
  *stream = PyLong_AsVoidPtr(v);
  Py_DECREF(v);
  return PyErr_Occurred() ? -1 : 1;
}

// Raises the driver's error as attn.gpu._check does (CudaError, named).
static void raise_driver(CUresult result, const char *what) {
  PyObject *r = PyObject_CallFunction(cfg.check, "is", (int)result, what);
  Py_XDECREF(r);
  if (!PyErr_Occurred())
    PyErr_Format(PyExc_RuntimeError, "%s failed: CUDA error %d", what,
                 (int)result);
}

//===----------------------------------------------------------------------===//
// Launcher: one kernel's launch, from its manifest (attn.gpu builds the spec)
//===----------------------------------------------------------------------===//

typedef struct {
  int kind;        // P_*
  int slot;        // memref, tensormap: the tensor's slot
  int size;        // scalar: index into the call's sizes; -1: `value`
  int64_t ivalue;  // i64 constant
  float fvalue;    // f32 constant
  uint32_t box[2]; // tensormap: columns, rows
  int cache;       // tensormap: its descriptor cache
} Param;

// A descriptor encoded for one tensor: the key is all the descriptor holds
// besides the kernel's box and layout (fixed per parameter).
typedef struct {
  _Alignas(64) unsigned char desc[TMAP_BYTES];
  uint64_t ptr;
  int64_t shape[4];
  int dtype;
  int valid;
} TmapEntry;

typedef struct {
  PyObject_HEAD Param params[MAX_PARAMS];
  int nparams;
  int nargs;
  int64_t grid[3][MAX_PROGRAM];
  int gridlen[3];
  unsigned block[3];
  unsigned shared;
  CUfunction function;
  int layout; // descriptors' dims: 0 bhsd, 1 bshd (attn.gpu._tensor_map)
  int ntmaps;
  void *tmap_block;                   // PyMem allocation holding `tmaps`
  TmapEntry *tmaps;                   // ntmaps * TMAP_CACHE, 64-byte aligned
  unsigned tmap_next[MAX_TENSORMAPS]; // round-robin replacement
  // The slots and sizes it reads: at most the entry point's (checked when a
  // plan is registered, so that no call reads past its arrays).
  int nslots, nsizes;
  uint32_t used_slots; // bit s: a parameter reads slot s
  // A length alternative's manifest "prefer": sizes[size] in [lo, hi) for
  // each range (hi -1: no bound). None: preferred at every size.
  struct {
    int size;
    int64_t lo, hi;
  } prefer[MAX_PREFER];
  int nprefer;
} Launcher;

// Whether `L` is preferred at the sizes `sizes` (its "prefer" ranges hold).
static int launcher_prefers(const Launcher *L, const int64_t *sizes) {
  for (int i = 0; i < L->nprefer; i++) {
    int64_t x = sizes[L->prefer[i].size];
    if (x < L->prefer[i].lo || (L->prefer[i].hi >= 0 && x >= L->prefer[i].hi))
      return 0;
  }
  return 1;
}

// What launcher_prepare found: the grid, or that it is empty.
typedef struct {
  unsigned grid[3];
  int empty;
} Prepared;

// Evaluates one axis's grid program over `sizes`: 1, or 0 when a value
// overflows or a divisor is 0 (the Python path raises ValueError for them).
// The program was checked when the Launcher was made: its stack stays within
// MAX_STACK and ends with one value.
static int grid_eval(const int64_t *prog, int len, const int64_t *sizes,
                     int64_t *result) {
  int64_t stack[MAX_STACK];
  int sp = 0;
  for (int i = 0; i < len; i += 2) {
    int64_t op = prog[i], arg = prog[i + 1];
    if (op == G_CONST) {
      stack[sp++] = arg;
    } else if (op == G_SIZE) {
      stack[sp++] = sizes[arg];
    } else if (op == G_MUL) {
      int64_t v = 1;
      for (int64_t k = 0; k < arg; k++)
        if (__builtin_mul_overflow(v, stack[--sp], &v))
          return 0;
      stack[sp++] = v;
    } else if (op == G_MIN) {
      int64_t v = stack[--sp];
      for (int64_t k = 1; k < arg; k++) {
        int64_t w = stack[--sp];
        v = w < v ? w : v;
      }
      stack[sp++] = v;
    } else {
      int64_t b = stack[--sp], a = stack[--sp];
      if (b <= 0 || a < 0)
        return 0;
      stack[sp++] = a / b + (op == G_CEIL_DIV && a % b != 0);
    }
  }
  *result = stack[0];
  return 1;
}

// Everything a launch could refuse, checked before anything is launched (a
// paged call launches two kernels: both are prepared first). 1, or 0.
static int launcher_prepare(const Launcher *L, const Tensor *slots,
                            const int64_t *sizes, Prepared *p) {
  static const int64_t limits[3] = {MAX_GRID_X, MAX_GRID_YZ, MAX_GRID_YZ};
  p->empty = 0;
  if (!L->function) // a length alternative not loaded yet
    return 0;
  for (int axis = 0; axis < 3; axis++) {
    int64_t n;
    if (!grid_eval(L->grid[axis], L->gridlen[axis], sizes, &n) ||
        n > limits[axis])
      return 0;
    p->grid[axis] = (unsigned)n;
    if (n == 0)
      p->empty = 1;
  }
  if (p->empty) // nothing to launch: the tensors are not read either
    return 1;
  for (int i = 0; i < L->nparams; i++) {
    const Param *pr = &L->params[i];
    if (pr->kind == P_MEMREF && !slots[pr->slot].obj)
      return 0;
    if (pr->kind == P_TENSORMAP) {
      const Tensor *t = &slots[pr->slot];
      if (!t->obj || t->ndim != 4 || t->dtype < 0 || dtype_tma[t->dtype] < 0)
        return 0;
    }
  }
  return 1;
}

// The TMA descriptor of 4-D tensor `t` for descriptor parameter `pr`, from
// the parameter's cache or encoded into it, as attn.gpu._tensor_map encodes
// it: dims innermost first, boxes of box[0] columns by box[1] rows of one
// (batch, head), 128-byte swizzle, zero fill. NULL with CudaError set when
// the driver refuses.
static const unsigned char *tensor_map(Launcher *L, const Param *pr,
                                       const Tensor *t) {
  TmapEntry *entries = &L->tmaps[pr->cache * TMAP_CACHE];
  for (int i = 0; i < TMAP_CACHE; i++) {
    TmapEntry *e = &entries[i];
    if (e->valid && e->ptr == t->ptr && e->dtype == t->dtype &&
        memcmp(e->shape, t->shape, sizeof e->shape) == 0)
      return e->desc;
  }
  TmapEntry *e = &entries[L->tmap_next[pr->cache]++ % TMAP_CACHE];
  e->valid = 0;
  uint64_t el = (uint64_t)dtype_bytes[t->dtype];
  uint64_t dims[4], strides[3];
  uint32_t box[4], unit[4] = {1, 1, 1, 1};
  const int64_t *s = t->shape;
  if (L->layout == 0) { // [B, H, S, D]
    uint64_t b = s[0], h = s[1], n = s[2], d = s[3];
    dims[0] = d, dims[1] = n, dims[2] = h, dims[3] = b;
    strides[0] = d * el, strides[1] = n * d * el, strides[2] = h * n * d * el;
    box[0] = pr->box[0], box[1] = pr->box[1], box[2] = 1, box[3] = 1;
  } else { // [B, S, H, D]
    uint64_t b = s[0], n = s[1], h = s[2], d = s[3];
    dims[0] = d, dims[1] = h, dims[2] = n, dims[3] = b;
    strides[0] = d * el, strides[1] = h * d * el, strides[2] = n * h * d * el;
    box[0] = pr->box[0], box[1] = 1, box[2] = pr->box[1], box[3] = 1;
  }
  CUresult r = cfg.encode(e->desc, dtype_tma[t->dtype], 4,
                          (void *)(uintptr_t)t->ptr, dims, strides, box, unit,
                          0, TMAP_SWIZZLE_128B, TMAP_L2_256B, 0);
  if (r) {
    raise_driver(r, "cuTensorMapEncodeTiled");
    return NULL;
  }
  e->ptr = t->ptr;
  e->dtype = t->dtype;
  memcpy(e->shape, t->shape, sizeof e->shape);
  e->valid = 1;
  return e->desc;
}

// Packs the parameters of a prepared launch as Kernel.launch's _ParamBuffer
// does -- a memref as (allocated, aligned, 0, numel, 1), a scalar as its i64
// or f32, a descriptor as its 128 bytes -- and launches on `stream`. The
// storage is this call's stack: cuLaunchKernel copies the values. 1 launched,
// 0 empty grid, -1 error.
static int launcher_launch(Launcher *L, const Prepared *p, const Tensor *slots,
                           const int64_t *sizes, CUstream stream) {
  if (p->empty)
    return 0;
  int64_t values[MAX_ARGS];
  void *argv[MAX_ARGS];
  unsigned char maps_raw[MAX_TENSORMAPS * TMAP_BYTES + 64];
  unsigned char *maps =
      (unsigned char *)(((uintptr_t)maps_raw + 63) & ~(uintptr_t)63);
  int a = 0, m = 0;
  for (int i = 0; i < L->nparams; i++) {
    const Param *pr = &L->params[i];
    if (pr->kind == P_MEMREF) {
      const Tensor *t = &slots[pr->slot];
      int64_t fields[5] = {(int64_t)t->ptr, (int64_t)t->ptr, 0, t->numel, 1};
      for (int k = 0; k < 5; k++, a++) {
        values[a] = fields[k];
        argv[a] = &values[a];
      }
    } else if (pr->kind == P_I64) {
      values[a] = pr->size >= 0 ? sizes[pr->size] : pr->ivalue;
      argv[a] = &values[a];
      a++;
    } else if (pr->kind == P_F32) {
      // Through double, as ctypes' c_float converts a Python int.
      float f = pr->size >= 0 ? (float)(double)sizes[pr->size] : pr->fvalue;
      values[a] = 0;
      memcpy(&values[a], &f, sizeof f);
      argv[a] = &values[a];
      a++;
    } else {
      const unsigned char *desc = tensor_map(L, pr, &slots[pr->slot]);
      if (!desc)
        return -1;
      memcpy(maps + m * TMAP_BYTES, desc, TMAP_BYTES);
      argv[a++] = maps + m++ * TMAP_BYTES;
    }
  }
  CUresult r =
      cfg.launch(L->function, p->grid[0], p->grid[1], p->grid[2], L->block[0],
                 L->block[1], L->block[2], L->shared, stream, argv, NULL);
  if (r) {
    raise_driver(r, "cuLaunchKernel");
    return -1;
  }
  return 1;
}

// Item `i` of sequence `seq` as an int64 (construction only: ValueError).
static int seq_int(PyObject *seq, Py_ssize_t i, int64_t *v) {
  PyObject *o = PySequence_GetItem(seq, i);
  if (!o)
    return -1;
  int overflow = 0;
  long long x =
      PyLong_Check(o) ? PyLong_AsLongLongAndOverflow(o, &overflow) : -1;
  int bad = !PyLong_Check(o) || overflow;
  Py_DECREF(o);
  if (x == -1 && PyErr_Occurred())
    return -1;
  if (bad) {
    PyErr_Format(PyExc_ValueError, "Launcher: item %zd is not an int64", i);
    return -1;
  }
  *v = x;
  return 0;
}

static int spec_error(const char *what, Py_ssize_t i) {
  PyErr_Format(PyExc_ValueError, "Launcher: bad %s (item %zd)", what, i);
  return -1;
}

// One parameter of the spec: (0, slot) memref; (1, size, value) i64 and
// (2, size, value) f32 scalars (size -1: the constant value); (3, slot,
// box columns, box rows) descriptor by value.
static int parse_param(Launcher *L, PyObject *item, Py_ssize_t i) {
  Param *p = &L->params[L->nparams];
  memset(p, 0, sizeof *p);
  Py_ssize_t n = PySequence_Size(item);
  if (n < 2)
    return n < 0 ? -1 : spec_error("parameter", i);
  int64_t kind, v1, v2 = 0, v3 = 0;
  if (seq_int(item, 0, &kind) < 0 || seq_int(item, 1, &v1) < 0)
    return -1;
  p->kind = (int)kind;
  if (kind == P_MEMREF && n == 2 && v1 >= 0 && v1 < MAX_SLOTS) {
    p->slot = (int)v1;
    L->used_slots |= 1u << p->slot;
    L->nslots = p->slot + 1 > L->nslots ? p->slot + 1 : L->nslots;
    L->nargs += 5;
  } else if ((kind == P_I64 || kind == P_F32) && n == 3 && v1 >= -1 &&
             v1 < MAX_SIZES) {
    p->size = (int)v1;
    L->nsizes = p->size + 1 > L->nsizes ? p->size + 1 : L->nsizes;
    if (kind == P_I64 && seq_int(item, 2, &p->ivalue) < 0)
      return -1;
    if (kind == P_F32) {
      PyObject *o = PySequence_GetItem(item, 2);
      double d = o ? PyFloat_AsDouble(o) : -1.0;
      Py_XDECREF(o);
      if (d == -1.0 && PyErr_Occurred())
        return -1;
      p->fvalue = (float)d;
    }
    L->nargs += 1;
  } else if (kind == P_TENSORMAP && n == 4 && v1 >= 0 && v1 < MAX_SLOTS) {
    if (seq_int(item, 2, &v2) < 0 || seq_int(item, 3, &v3) < 0)
      return -1;
    if (v2 < 1 || v2 > 256 || v3 < 1 || v3 > 256 || L->ntmaps == MAX_TENSORMAPS)
      return spec_error("descriptor parameter", i);
    p->slot = (int)v1;
    L->used_slots |= 1u << p->slot;
    L->nslots = p->slot + 1 > L->nslots ? p->slot + 1 : L->nslots;
    p->box[0] = (uint32_t)v2;
    p->box[1] = (uint32_t)v3;
    p->cache = L->ntmaps++;
    L->nargs += 1;
  } else {
    return spec_error("parameter", i);
  }
  L->nparams++;
  return L->nargs > MAX_ARGS ? spec_error("parameter count", i) : 0;
}

// A program over a call's sizes (a grid axis, a workspace's dim): a flat
// sequence of (op, argument) pairs into `dst` (at most `cap` ints), checked
// so that grid_eval's stack stays within bounds and ends with one value;
// `*nsizes` grows to cover the sizes it reads. `what` and `index` name it
// in the error.
static int parse_prog(PyObject *prog, int64_t *dst, int cap, int *len,
                      int *nsizes, const char *what, Py_ssize_t index) {
  Py_ssize_t n = PySequence_Size(prog);
  if (n < 0)
    return -1;
  if (n == 0 || n % 2 || n > cap)
    return spec_error(what, index);
  int depth = 0;
  for (Py_ssize_t i = 0; i < n; i += 2) {
    int64_t op, arg;
    if (seq_int(prog, i, &op) < 0 || seq_int(prog, i + 1, &arg) < 0)
      return -1;
    dst[i] = op;
    dst[i + 1] = arg;
    if (op == G_CONST && arg >= 0)
      depth++;
    else if (op == G_SIZE && arg >= 0 && arg < MAX_SIZES) {
      depth++;
      *nsizes = arg + 1 > *nsizes ? (int)arg + 1 : *nsizes;
    } else if ((op == G_MUL || op == G_MIN) && arg >= 2 && arg <= depth)
      depth -= (int)arg - 1;
    else if ((op == G_DIV || op == G_CEIL_DIV) && depth >= 2)
      depth--;
    else
      return spec_error(what, index);
    if (depth > MAX_STACK)
      return spec_error(what, index);
  }
  if (depth != 1)
    return spec_error(what, index);
  *len = (int)n;
  return 0;
}

// One axis's grid program (parse_prog).
static int parse_program(Launcher *L, int axis, PyObject *prog) {
  return parse_prog(prog, L->grid[axis], MAX_PROGRAM, &L->gridlen[axis],
                    &L->nsizes, "grid program", axis);
}

// A length alternative's ranges: a sequence of (size, lo, hi) with
// 0 <= lo < hi, or hi -1 for no upper bound.
static int parse_prefer(Launcher *L, PyObject *prefer) {
  Py_ssize_t n = PySequence_Size(prefer);
  if (n < 0)
    return -1;
  if (n > MAX_PREFER)
    return spec_error("prefer (too many ranges)", n);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *range = PySequence_GetItem(prefer, i);
    if (!range)
      return -1;
    int64_t size, lo, hi;
    int r = PySequence_Size(range) == 3 && seq_int(range, 0, &size) == 0 &&
            seq_int(range, 1, &lo) == 0 && seq_int(range, 2, &hi) == 0;
    Py_DECREF(range);
    if (!r) {
      if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        return spec_error("prefer range", i);
      }
      return -1;
    }
    if (size < 0 || size >= MAX_SIZES || lo < 0 || (hi != -1 && hi <= lo))
      return spec_error("prefer range", i);
    L->prefer[i].size = (int)size;
    L->prefer[i].lo = lo;
    L->prefer[i].hi = hi;
    L->nsizes = (int)size + 1 > L->nsizes ? (int)size + 1 : L->nsizes;
  }
  L->nprefer = (int)n;
  return 0;
}

static PyObject *launcher_new(PyTypeObject *type, PyObject *args,
                              PyObject *kwds) {
  PyObject *params, *grid, *block, *function, *prefer = NULL;
  long long shared;
  int layout;
  static char *names[] = {"params",   "grid",   "block",  "shared",
                          "function", "layout", "prefer", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOLOi|O", names, &params,
                                   &grid, &block, &shared, &function, &layout,
                                   &prefer))
    return NULL;
  Launcher *L = (Launcher *)PyType_GenericAlloc(type, 0);
  if (!L)
    return NULL;
  // Zeroed by the allocation: tmap_block is NULL until set.
  Py_ssize_t n = PySequence_Size(params);
  if (n < 0)
    goto fail;
  if (n > MAX_PARAMS) {
    spec_error("parameter count", n);
    goto fail;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PySequence_GetItem(params, i);
    int r = item ? parse_param(L, item, i) : -1;
    Py_XDECREF(item);
    if (r < 0)
      goto fail;
  }
  if (PySequence_Size(grid) != 3 || PySequence_Size(block) != 3) {
    PyErr_Clear();
    spec_error("grid or block (3 entries each)", 0);
    goto fail;
  }
  for (int axis = 0; axis < 3; axis++) {
    PyObject *prog = PySequence_GetItem(grid, axis);
    int r = prog ? parse_program(L, axis, prog) : -1;
    Py_XDECREF(prog);
    int64_t b;
    if (r < 0 || seq_int(block, axis, &b) < 0)
      goto fail;
    if (b < 1 || b > 1024) {
      spec_error("block", axis);
      goto fail;
    }
    L->block[axis] = (unsigned)b;
  }
  if (shared < 0 || shared >= ((long long)1 << 31) ||
      (layout != 0 && layout != 1)) {
    spec_error("shared memory or layout", 0);
    goto fail;
  }
  L->shared = (unsigned)shared;
  L->layout = layout;
  if (prefer && parse_prefer(L, prefer) < 0)
    goto fail;
  L->function = PyLong_AsVoidPtr(function);
  if (PyErr_Occurred())
    goto fail;
  // NULL: a kernel of a plan whose module is not loaded yet (a variant's
  // length alternatives, loaded on first use). launcher_prepare refuses
  // it, so a call that picks it takes the Python path, which loads it and
  // registers the plan again.

  if (L->ntmaps) {
    size_t bytes = (size_t)L->ntmaps * TMAP_CACHE * sizeof(TmapEntry);
    L->tmap_block = PyMem_Calloc(1, bytes + 63);
    if (!L->tmap_block) {
      PyErr_NoMemory();
      goto fail;
    }
    L->tmaps = (TmapEntry *)(((uintptr_t)L->tmap_block + 63) & ~(uintptr_t)63);
  }
  return (PyObject *)L;
fail:
  Py_DECREF(L);
  return NULL;
}

static void launcher_dealloc(PyObject *self) {
  Launcher *L = (Launcher *)self;
  PyMem_Free(L->tmap_block);
  PyTypeObject *type = Py_TYPE(self);
  freefunc free_fn = (freefunc)PyType_GetSlot(type, Py_tp_free);
  free_fn(self);
  Py_DECREF(type);
}

// The launches of `n` launchers with one call's tensors (a sequence by
// slot; None: absent) and sizes, on `stream`: Launcher.launch and
// launch_set. Each tensor a launcher reads is inspected once, for all of
// them, and every launcher is prepared before the first launches, so that a
// refusal launches nothing. True: launched (every non-empty grid), False:
// every grid empty, None: refused (a tensor or size a kernel cannot take).
static PyObject *launch_all(Launcher *const *Ls, int n, PyObject *tensors,
                            PyObject *sizes_seq, PyObject *stream_obj) {
  if (!cfg.ready) {
    PyErr_SetString(PyExc_RuntimeError, "attn._fastpath is not configured");
    return NULL;
  }
  Tensor slots[MAX_SLOTS];
  int64_t sizes[MAX_SIZES] = {0};
  memset(slots, 0, sizeof slots);
  Py_ssize_t nt = PySequence_Size(tensors), ns = PySequence_Size(sizes_seq);
  if (nt < 0 || ns < 0)
    return NULL;
  if (nt > MAX_SLOTS || ns > MAX_SIZES)
    return PyErr_Format(PyExc_ValueError, "too many tensors or sizes");
  for (Py_ssize_t i = 0; i < ns; i++)
    if (seq_int(sizes_seq, i, &sizes[i]) < 0)
      return NULL;
  uint32_t used = 0;
  for (int i = 0; i < n; i++)
    used |= Ls[i]->used_slots;
  PyObject *items[MAX_SLOTS] = {NULL};
  PyObject *result = NULL;
  for (Py_ssize_t i = 0; i < nt; i++) {
    if (!(used >> i & 1)) // no kernel reads it: not even looked at
      continue;
    if (!(items[i] = PySequence_GetItem(tensors, i)))
      goto done;
    if (items[i] == Py_None)
      continue;
    int r = inspect(items[i], &slots[i]);
    if (r < 0)
      goto done;
    if (r == 0) {
      result = Py_NewRef(Py_None);
      goto done;
    }
  }
  void *stream = PyLong_AsVoidPtr(stream_obj);
  if (PyErr_Occurred())
    goto done;
  Prepared p[MAX_SET];
  for (int i = 0; i < n; i++)
    if (!launcher_prepare(Ls[i], slots, sizes, &p[i])) {
      result = Py_NewRef(Py_None);
      goto done;
    }
  int launched = 0;
  for (int i = 0; i < n; i++) {
    int r = launcher_launch(Ls[i], &p[i], slots, sizes, stream);
    if (r < 0)
      goto done;
    launched |= r;
  }
  result = PyBool_FromLong(launched);
done:
  for (Py_ssize_t i = 0; i < nt; i++)
    Py_XDECREF(items[i]);
  return result;
}

// Launcher.launch(tensors, sizes, stream): the launch with the tensors of
// its slots (None: absent) and the sizes, for tests and for callers with
// their own checks. True launched, False empty grid, None refused (a tensor
// or size the kernel cannot take).
static PyObject *launcher_launch_py(PyObject *self, PyObject *args) {
  PyObject *tensors, *sizes_seq, *stream_obj;
  if (!PyArg_ParseTuple(args, "OOO", &tensors, &sizes_seq, &stream_obj))
    return NULL;
  Launcher *L = (Launcher *)self;
  return launch_all(&L, 1, tensors, sizes_seq, stream_obj);
}

static PyMethodDef launcher_methods[] = {
    {"launch", launcher_launch_py, METH_VARARGS,
     "launch(tensors, sizes, stream): True launched, False empty grid, None "
     "refused"},
    {NULL, NULL, 0, NULL}};

static PyType_Slot launcher_slots[] = {
    {Py_tp_new, (void *)launcher_new},
    {Py_tp_dealloc, (void *)launcher_dealloc},
    {Py_tp_methods, launcher_methods},
    {Py_tp_doc,
     (void *)"Launcher(params, grid, block, shared, function, layout, "
             "prefer=()): one kernel's launch (built by "
             "attn.gpu._native_launcher); prefer: a length alternative's "
             "(size, lo, hi) ranges, hi -1 for none; function 0: not loaded "
             "yet, launches refuse it."},
    {0, NULL}};

static PyType_Spec launcher_spec = {"attn._fastpath.Launcher", sizeof(Launcher),
                                    0, Py_TPFLAGS_DEFAULT, launcher_slots};

//===----------------------------------------------------------------------===//
// Plans: what a call's key maps to
//===----------------------------------------------------------------------===//

// A workspace a backward plan allocates per call: an f32 tensor for
// `slot`, each of its `ndim` dims a program over the call's sizes
// (parse_prog).
typedef struct {
  int slot, ndim;
  int64_t prog[4][WS_PROGRAM];
  int len[4];
} WorkspaceSpec;

typedef struct {
  // dense: the kernel; paged: split, combine; backward: its steps in order
  PyObject_HEAD Launcher *kernels[MAX_SET];
  int nkernels;
  WorkspaceSpec workspaces[MAX_WORKSPACES]; // backward: in allocation order
  int nworkspaces;
  // Paged: the split heuristic's constants (attn.gpu.num_splits):
  // row tiles, value chunks and resident blocks x SMs.
  int64_t row_tiles, chunks, slots;
  // $ATTN_BUNDLES when the plan was made for bundles=None (env_set 0: it
  // was unset); a call finds the plan only while it is the same.
  char *env;
  int env_set;
} Plan;

static void plan_dealloc(PyObject *self) {
  Plan *p = (Plan *)self;
  for (int i = 0; i < MAX_SET; i++)
    Py_XDECREF((PyObject *)p->kernels[i]);
  PyMem_Free(p->env);
  PyTypeObject *type = Py_TYPE(self);
  freefunc free_fn = (freefunc)PyType_GetSlot(type, Py_tp_free);
  free_fn(self);
  Py_DECREF(type);
}

static PyType_Slot plan_slots[] = {{Py_tp_dealloc, (void *)plan_dealloc},
                                   {0, NULL}};

static PyType_Spec plan_spec = {
    "attn._fastpath.Plan", sizeof(Plan), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, plan_slots};

static PyObject *plan_key(const uint64_t *key, size_t words,
                          PyObject *bundles) {
  PyObject *bytes =
      PyBytes_FromStringAndSize((const char *)key, (Py_ssize_t)(words * 8));
  if (!bytes)
    return NULL;
  PyObject *k = PyTuple_Pack(2, bytes, bundles);
  Py_DECREF(bytes);
  return k;
}

static int env_matches(const Plan *plan) {
  const char *env = getenv("ATTN_BUNDLES");
  if (!plan->env_set)
    return env == NULL;
  return env && strcmp(env, plan->env) == 0;
}

// 1 with a new reference in *plan, 0 when the key has none, -1 on error.
// The reference keeps the plan alive while the call runs Python code
// (new_empty) that may replace it.
static int find_plan(const uint64_t *key, size_t words, PyObject *bundles,
                     Plan **plan) {
  PyObject *k = plan_key(key, words, bundles);
  if (!k)
    return -1;
  PyObject *found = PyDict_GetItemWithError(plans, k);
  Py_DECREF(k);
  if (!found)
    return PyErr_Occurred() ? -1 : 0;
  if (bundles == Py_None && !env_matches((Plan *)found))
    return 0;
  Py_INCREF(found);
  *plan = (Plan *)found;
  return 1;
}

static Plan *plan_new(PyObject *bundles) {
  Plan *p = (Plan *)PyType_GenericAlloc(PlanType, 0);
  if (!p)
    return NULL;
  const char *env = bundles == Py_None ? getenv("ATTN_BUNDLES") : NULL;
  if (env) {
    size_t n = strlen(env) + 1;
    if (!(p->env = PyMem_Malloc(n))) {
      Py_DECREF(p);
      PyErr_NoMemory();
      return NULL;
    }
    memcpy(p->env, env, n);
    p->env_set = 1;
  }
  return p;
}

static int store_plan(const uint64_t *key, size_t words, PyObject *bundles,
                      Plan *plan) {
  if (PyDict_Size(plans) >= MAX_PLANS)
    PyDict_Clear(plans);
  PyObject *k = plan_key(key, words, bundles);
  if (!k)
    return -1;
  int r = PyDict_SetItem(plans, k, (PyObject *)plan);
  Py_DECREF(k);
  return r;
}

// The start of an entry point, after its read function returned `r` (1:
// the call is one the module takes, with its device, key and bundles): 1
// with the key's plan (a new reference) when the device is current and
// there is one; else 0 with the entry point's answer in *answer, None (the
// Python path takes the call; counted as rejected or missed) or NULL (an
// error is set).
static int entry_plan(int r, int device, const uint64_t *key, size_t words,
                      PyObject *bundles, Plan **plan, PyObject **answer) {
  if (r > 0)
    r = device_is_current(device);
  if (r > 0) {
    r = find_plan(key, words, bundles, plan);
    if (r > 0)
      return 1;
    stats.misses += r == 0;
  } else {
    stats.rejected += r == 0;
  }
  *answer = r < 0 ? NULL : Py_NewRef(Py_None);
  return 0;
}

// A Launcher whose slots and sizes are within an entry point's.
static int is_launcher(PyObject *o, int nslots, int nsizes) {
  if (Py_TYPE(o) != LauncherType)
    return 0;
  const Launcher *L = (const Launcher *)o;
  return L->nslots <= nslots && L->nsizes <= nsizes;
}

//===----------------------------------------------------------------------===//
// Options shared by both entry points
//===----------------------------------------------------------------------===//

typedef struct {
  int causal, window, lse;
  int64_t left, right;
  uint64_t has_scale, scale, has_softcap, softcap;
  PyObject *bundles; // borrowed: None or a str
} Options;

static int read_options(PyObject *causal, PyObject *window, PyObject *softcap,
                        PyObject *scale, PyObject *lse, PyObject *bundles,
                        Options *o) {
  int r;
  if ((r = read_bool(causal, &o->causal)) <= 0 ||
      (r = read_window(window, &o->window, &o->left, &o->right)) <= 0 ||
      (r = read_opt_float(softcap, &o->has_softcap, &o->softcap)) <= 0 ||
      (r = read_opt_float(scale, &o->has_scale, &o->scale)) <= 0 ||
      (r = read_bool(lse, &o->lse)) <= 0)
    return r;
  if (o->causal && o->window) // the Python path raises
    return 0;
  if (bundles != Py_None && !PyUnicode_CheckExact(bundles))
    return 0;
  o->bundles = bundles;
  return 1;
}

// Writes the options' part of a key at `key`; returns the words written.
static int option_key(const Options *o, uint64_t *key) {
  key[0] = o->window ? 2 : o->causal; // mask: none, causal, window
  key[1] = (uint64_t)o->left;
  key[2] = (uint64_t)o->right;
  key[3] = o->has_scale;
  key[4] = o->scale;
  key[5] = o->has_softcap;
  key[6] = o->softcap;
  key[7] = (uint64_t)o->lse;
  return 8;
}

//===----------------------------------------------------------------------===//
// attention (dense)
//===----------------------------------------------------------------------===//

// Argument positions of attention() and register_attention(); the slots and
// sizes a dense Launcher's spec refers to (DENSE_SLOTS, DENSE_SIZES).
enum {
  DA_Q,
  DA_K,
  DA_V,
  DA_CAUSAL,
  DA_WINDOW,
  DA_SOFTCAP,
  DA_SCALE,
  DA_BIAS,
  DA_SINKS,
  DA_LAYOUT,
  DA_LSE,
  DA_BUNDLES,
  DA_OUT,
  DA_NARGS
};
enum { D_Q, D_K, D_V, D_O, D_LSE, D_BIAS, D_SINKS, D_NSLOTS };
enum { DS_B, DS_HQ, DS_HKV, DS_SQ, DS_SK, DS_NSIZES };
static const char *const dense_slot_names[D_NSLOTS] = {
    "q", "k", "v", "o", "lse", "bias", "sinks"};
static const char *const dense_size_names[DS_NSIZES] = {"B", "Hq", "Hkv", "Sq",
                                                        "Sk"};
enum { DENSE_KEY_WORDS = 24 };

typedef struct {
  Tensor t[D_NSLOTS];
  int64_t sizes[MAX_SIZES];
  int64_t out_shape[4], lse_shape[3];
  uint64_t key[DENSE_KEY_WORDS];
  Options opt;
  int device;
} DenseCall;

// bias: None, or a contiguous 4-D CUDA tensor broadcastable to `full`. Its
// part of the key: which dims broadcast, and the dtype.
static int read_bias(PyObject *obj, const int64_t *full, int device, Tensor *t,
                     uint64_t *key) {
  key[0] = key[1] = 0;
  if (obj == Py_None)
    return 1;
  int r = input(obj, t, 4, device, 0);
  if (r <= 0)
    return r;
  if (t->dtype < 0 || t->dtype > DT_F32)
    return 0;
  uint64_t ones = 0;
  for (int i = 0; i < 4; i++) {
    if (t->shape[i] != 1 && t->shape[i] != full[i])
      return 0;
    ones |= (uint64_t)(t->shape[i] == 1) << i;
  }
  key[0] = 1 | ones << 1;
  key[1] = (uint64_t)t->dtype;
  return 1;
}

// sinks: None, or a contiguous CUDA tensor [Hq] (the Python path copies a
// strided one; that call stays there). Its key part: 0, or 1 + its dtype.
static int read_sinks(PyObject *obj, int64_t hq, int device, Tensor *t,
                      uint64_t *key) {
  *key = 0;
  if (obj == Py_None)
    return 1;
  int r = input(obj, t, 1, device, 0);
  if (r <= 0)
    return r;
  if (t->shape[0] != hq || t->dtype < 0 || t->dtype > DT_F32)
    return 0;
  *key = 1 + (uint64_t)t->dtype;
  return 1;
}

// What a dense call's q, k, v, bias and sinks say, as dense_read and
// grad_read share it: the sizes in DENSE_SIZES order, the output's shape,
// and the key words of the head dims, the bias and the sinks.
typedef struct {
  int64_t sizes[DS_NSIZES];
  int64_t d, dv, o_shape[4];
  uint64_t bias_key[2], sinks_key;
} DenseShape;

// Reads q, k, v (4-D CUDA tensors on one device, contiguous, one dtype of
// f16, bf16, f32; shapes consistent in `layout`: 0 bhsd, 1 bshd; Hq a
// multiple of Hkv), the bias and the sinks into their Tensors, checked as
// attn.gpu's dense entry points check them; `objs` are q, k, v, bias,
// sinks. 1, 0 (the Python path takes the call), -1.
static int read_dense(PyObject *const *objs, int layout, Tensor *q, Tensor *k,
                      Tensor *v, Tensor *bias, Tensor *sinks, DenseShape *s) {
  int r;
  if ((r = input(objs[0], q, 4, -1, 0)) <= 0 ||
      (r = input(objs[1], k, 4, q->device, 0)) <= 0 ||
      (r = input(objs[2], v, 4, q->device, 0)) <= 0)
    return r;
  if (q->dtype < 0 || q->dtype > DT_F32 || k->dtype != q->dtype ||
      v->dtype != q->dtype)
    return 0;
  int64_t b = q->shape[0], hq, sq, d = q->shape[3], hkv, sk;
  if (layout == 0) {
    hq = q->shape[1], sq = q->shape[2], hkv = k->shape[1], sk = k->shape[2];
  } else {
    sq = q->shape[1], hq = q->shape[2], sk = k->shape[1], hkv = k->shape[2];
  }
  int64_t dv = v->shape[3];
  if (k->shape[0] != b || v->shape[0] != b || k->shape[3] != d ||
      v->shape[1] != k->shape[1] || v->shape[2] != k->shape[2])
    return 0;
  if (hkv == 0 || hq % hkv)
    return 0;
  int64_t full[4] = {b, hq, sq, sk};
  if ((r = read_bias(objs[3], full, q->device, bias, s->bias_key)) <= 0 ||
      (r = read_sinks(objs[4], hq, q->device, sinks, &s->sinks_key)) <= 0)
    return r;
  int64_t sizes[DS_NSIZES] = {b, hq, hkv, sq, sk};
  int64_t o_bhsd[4] = {b, hq, sq, dv}, o_bshd[4] = {b, sq, hq, dv};
  memcpy(s->sizes, sizes, sizeof sizes);
  memcpy(s->o_shape, layout == 0 ? o_bhsd : o_bshd, sizeof s->o_shape);
  s->d = d;
  s->dv = dv;
  return 1;
}

// Writes a dense call's key from the op (`op`, with the fast path's API) to
// the device at `key`; returns the words written.
static int dense_key(uint64_t *key, int op, const Tensor *q,
                     const DenseShape *s, int layout, const Options *opt) {
  int w = 0;
  key[w++] = (uint64_t)op | (uint64_t)FASTPATH_API << 8;
  key[w++] = (uint64_t)q->dtype;
  key[w++] = (uint64_t)s->d;
  key[w++] = (uint64_t)s->dv;
  key[w++] = (uint64_t)layout;
  w += option_key(opt, key + w);
  key[w++] = s->bias_key[0];
  key[w++] = s->bias_key[1];
  key[w++] = s->sinks_key;
  key[w++] = (uint64_t)q->device;
  return w;
}

// Checks a call as attn.gpu.attention does and builds its key. 1, 0 (the
// Python path takes the call), -1.
static int dense_read(PyObject *const *args, Py_ssize_t nargs, DenseCall *c) {
  static const char *const layouts[] = {"bhsd", "bshd"};
  memset(c, 0, sizeof *c); // entry_plan reads c->device whatever this returns
  if (nargs != DA_NARGS || !cfg.ready)
    return 0;
  int r = read_options(args[DA_CAUSAL], args[DA_WINDOW], args[DA_SOFTCAP],
                       args[DA_SCALE], args[DA_LSE], args[DA_BUNDLES], &c->opt);
  if (r <= 0)
    return r;
  int layout = read_choice(args[DA_LAYOUT], layouts, 2);
  if (layout < 0)
    return 0;
  Tensor *q = &c->t[D_Q];
  DenseShape sh;
  PyObject *dense[5] = {args[DA_Q], args[DA_K], args[DA_V], args[DA_BIAS],
                        args[DA_SINKS]};
  if ((r = read_dense(dense, layout, q, &c->t[D_K], &c->t[D_V], &c->t[D_BIAS],
                      &c->t[D_SINKS], &sh)) <= 0)
    return r;
  memcpy(c->out_shape, sh.o_shape, sizeof c->out_shape);
  c->lse_shape[0] = sh.sizes[DS_B], c->lse_shape[1] = sh.sizes[DS_HQ],
  c->lse_shape[2] = sh.sizes[DS_SQ];
  if (args[DA_OUT] != Py_None) {
    Tensor *o = &c->t[D_O];
    if ((r = input(args[DA_OUT], o, 4, q->device, 0)) <= 0)
      return r;
    if (!same_shape(o, c->out_shape, 4) || o->dtype != q->dtype)
      return 0;
  }
  c->device = q->device;
  memcpy(c->sizes, sh.sizes, sizeof sh.sizes);
  dense_key(c->key, 1, q, &sh, layout, &c->opt);
  return 1;
}

static PyObject *fp_attention(PyObject *self, PyObject *const *args,
                              Py_ssize_t nargs) {
  DenseCall c;
  Plan *plan;
  PyObject *answer;
  int r = dense_read(args, nargs, &c);
  if (!entry_plan(r, c.device, c.key, DENSE_KEY_WORDS, c.opt.bundles, &plan,
                  &answer))
    return answer;
  PyObject *q = args[DA_Q], *out = NULL, *lse = NULL, *result = NULL;
  int dtype = c.t[D_Q].dtype;
  void *stream;
  Prepared p;
  if (args[DA_OUT] != Py_None) {
    out = Py_NewRef(args[DA_OUT]);
  } else {
    if (!(out = new_empty(q, c.out_shape, 4, 0)) ||
        (r = output(out, c.out_shape, 4, dtype, c.device, &c.t[D_O])) <= 0)
      goto done;
  }
  if (c.opt.lse &&
      (!(lse = new_empty(q, c.lse_shape, 3, 1)) ||
       (r = output(lse, c.lse_shape, 3, DT_F32, c.device, &c.t[D_LSE])) <= 0))
    goto done;
  // A variant's length alternatives come first, its kernel without
  // ranges last (register_attention). One not loaded yet (no function) is
  // refused by launcher_prepare: the Python path loads it.
  const Launcher *L = plan->kernels[plan->nkernels - 1];
  for (int i = 0; i < plan->nkernels - 1; i++)
    if (launcher_prefers(plan->kernels[i], c.sizes)) {
      L = plan->kernels[i];
      break;
    }
  if (!launcher_prepare(L, c.t, c.sizes, &p)) {
    r = 0;
    goto done;
  }
  if ((r = current_stream(c.device, &stream)) < 0 ||
      (r = launcher_launch(L, &p, c.t, c.sizes, stream)) < 0)
    goto done;
  stats.hits++;
  result = c.opt.lse ? PyTuple_Pack(2, out, lse) : Py_NewRef(out);
done:
  if (!result && r == 0 && !PyErr_Occurred()) {
    // Refused after the lookup (an unaligned output, a grid past CUDA's
    // limits): the Python path raises the error.
    stats.rejected++;
    result = Py_NewRef(Py_None);
  }
  Py_XDECREF(out);
  Py_XDECREF(lse);
  Py_DECREF(plan);
  return result;
}

static PyObject *fp_register_attention(PyObject *self, PyObject *const *args,
                                       Py_ssize_t nargs) {
  // One Launcher, or a tuple of them: a variant's length alternatives
  // (each with its ranges), then its kernel for every other size.
  PyObject *given = nargs == DA_NARGS + 1 ? args[DA_NARGS] : NULL;
  PyObject *launchers[MAX_SET] = {given}; // borrowed
  Py_ssize_t n = 1;
  if (given && PyTuple_Check(given)) {
    n = PyTuple_Size(given);
    for (Py_ssize_t i = 0; i < n && i < MAX_SET; i++)
      launchers[i] = PyTuple_GetItem(given, i);
  }
  int ok = given && n >= 1 && n <= MAX_SET;
  for (Py_ssize_t i = 0; ok && i < n; i++)
    ok = is_launcher(launchers[i], D_NSLOTS, DS_NSIZES) &&
         (i < n - 1) == (((const Launcher *)launchers[i])->nprefer > 0);
  if (!ok) {
    PyErr_SetString(PyExc_TypeError,
                    "register_attention(<attention's 13 arguments>, a Launcher "
                    "of DENSE_SLOTS and DENSE_SIZES, or a tuple of up to "
                    "MAX_SET: length alternatives with prefer ranges, then one "
                    "without)");
    return NULL;
  }
  DenseCall c;
  int r = dense_read(args, DA_NARGS, &c);
  if (r <= 0)
    return r < 0 ? NULL : Py_NewRef(Py_False);
  Plan *plan = plan_new(c.opt.bundles);
  if (!plan)
    return NULL;
  for (Py_ssize_t i = 0; i < n; i++)
    plan->kernels[i] = (Launcher *)Py_NewRef(launchers[i]);
  plan->nkernels = (int)n;
  r = store_plan(c.key, DENSE_KEY_WORDS, c.opt.bundles, plan);
  Py_DECREF(plan);
  return r < 0 ? NULL : Py_NewRef(Py_True);
}

//===----------------------------------------------------------------------===//
// paged_attention
//===----------------------------------------------------------------------===//

enum {
  PA_Q,
  PA_KC,
  PA_VC,
  PA_TABLE,
  PA_LENS,
  PA_CAUSAL,
  PA_WINDOW,
  PA_SOFTCAP,
  PA_SCALE,
  PA_SINKS,
  PA_LAYOUT,
  PA_LSE,
  PA_SPLITS,
  PA_BUNDLES,
  PA_OUT,
  PA_NARGS
};
enum {
  S_Q,
  S_KC,
  S_VC,
  S_TABLE,
  S_LENS,
  S_SINKS,
  S_O,
  S_OPART,
  S_LSEPART,
  S_LSE,
  S_NSLOTS
};
enum {
  PS_B,
  PS_HQ,
  PS_HKV,
  PS_SQ,
  PS_MAXPAGES,
  PS_SPLITS,
  PS_VSTRIDE,
  PS_NSIZES
};
static const char *const paged_slot_names[S_NSLOTS] = {
    "q",     "k_cache", "v_cache", "block_table", "seq_lens",
    "sinks", "o",       "o_part",  "lse_part",    "lse"};
static const char *const paged_size_names[PS_NSIZES] = {
    "B", "Hq", "Hkv", "Sq", "MaxPages", "Splits", "VStride"};
enum { PAGED_KEY_WORDS = 24 };

typedef struct {
  Tensor t[S_NSLOTS];
  int64_t sizes[MAX_SIZES];
  uint64_t key[PAGED_KEY_WORDS];
  Options opt;
  int single, device;
  int64_t b, sq, hq, hkv, dv, page, max_pages, splits_override;
} PagedCall;

// attn.gpu._row_stride: elements between consecutive rows of a 4-D tensor
// of `size` and `stride` when its first three dims enumerate its rows in
// order, each row dense; 0 when it is not laid out so (or when the Python
// path would raise on it: a negative stride, a division by 0).
static int row_stride_of(const int64_t *size, const int64_t *stride,
                         int64_t *row_out) {
  if (size[3] > 1 && stride[3] != 1)
    return 0;
  int64_t row = -1, inside = 1; // rows inside one step of dim i
  for (int i = 2; i >= 0; i--) {
    if (stride[i] < 0)
      return 0;
    if (size[i] > 1) {
      if (row < 0) {
        if (inside == 0) // the Python path divides by it
          return 0;
        if (stride[i] % inside)
          return 0;
        row = stride[i] / inside;
      } else {
        int64_t want;
        if (__builtin_mul_overflow(row, inside, &want) || stride[i] != want)
          return 0;
      }
    }
    if (__builtin_mul_overflow(inside, size[i], &inside))
      return 0;
  }
  *row_out = row < 0 ? size[3] : row;
  return 1;
}

// The row stride of tensor `t` (row_stride_of): for a contiguous one with
// elements, torch's strides are the dense ones and the answer is its last
// dim; otherwise its stride() is read.
static int row_stride(const Tensor *t, int64_t *row_out) {
  if (t->contiguous && t->numel > 0) {
    *row_out = t->shape[3];
    return 1;
  }
  PyObject *v = call_method0(t->obj, s_stride);
  if (!v)
    return soft_fail();
  int64_t stride[4];
  int r = PyTuple_Check(v) && PyTuple_Size(v) == 4;
  for (int i = 0; r > 0 && i < 4; i++)
    r = read_int(PyTuple_GetItem(v, i), &stride[i]);
  Py_DECREF(v);
  if (r <= 0)
    return r;
  return row_stride_of(t->shape, stride, row_out);
}

// The checks of the tensors of a paged call, as attn.gpu.paged_attention
// makes them. Fills the shapes and VStride; 1, 0 or -1.
static int paged_tensors(PyObject *const *args, PagedCall *c, int layout,
                         int64_t *vstride, int *prefix_of_k) {
  Tensor *q = &c->t[S_Q], *kc = &c->t[S_KC], *vc = &c->t[S_VC];
  Tensor *table = &c->t[S_TABLE], *lens = &c->t[S_LENS];
  int r = inspect(args[PA_Q], q);
  if (r <= 0)
    return r;
  c->single = q->ndim == 3;
  if ((q->ndim != 3 && q->ndim != 4) || !q->contiguous || q->ptr % 16)
    return 0;
  if ((r = input(args[PA_KC], kc, 4, q->device, 0)) <= 0 ||
      (r = input(args[PA_VC], vc, 4, q->device, 1)) <= 0 ||
      (r = input(args[PA_TABLE], table, 2, q->device, 0)) <= 0 ||
      (r = input(args[PA_LENS], lens, 1, q->device, 0)) <= 0)
    return r;
  if ((q->dtype != DT_F16 && q->dtype != DT_BF16) || kc->dtype != q->dtype ||
      vc->dtype != q->dtype)
    return 0;
  c->b = q->shape[0];
  c->sq = c->single ? 1 : q->shape[1];
  c->hq = q->shape[c->single ? 1 : 2];
  int64_t d = q->shape[c->single ? 2 : 3], dk = kc->shape[3];
  c->page = kc->shape[layout == 0 ? 1 : 2];
  c->hkv = kc->shape[layout == 0 ? 2 : 1];
  c->dv = vc->shape[3];
  if ((r = row_stride(vc, vstride)) <= 0)
    return r;
  *prefix_of_k = vc->ptr == kc->ptr && *vstride == dk && c->dv <= dk;
  if (!(*vstride == c->dv || *prefix_of_k))
    return 0;
  if (dk != d || vc->shape[0] != kc->shape[0] || vc->shape[1] != kc->shape[1] ||
      vc->shape[2] != kc->shape[2])
    return 0;
  if (c->hkv == 0 || c->hq % c->hkv)
    return 0;
  // The table's integer type; seq_lens of another is converted by the
  // Python path.
  if ((table->dtype != DT_I32 && table->dtype != DT_I64) ||
      lens->dtype != table->dtype || table->shape[0] != c->b ||
      lens->shape[0] != c->b)
    return 0;
  c->max_pages = table->shape[1];
  return 1;
}

// Checks a call as attn.gpu.paged_attention does and builds its key. 1, 0,
// -1. Batches past the grid's 65535 sequences (run in slices) stay in Python.
static int paged_read(PyObject *const *args, Py_ssize_t nargs, PagedCall *c) {
  static const char *const layouts[] = {"nhd", "hnd"};
  memset(c, 0, sizeof *c); // entry_plan reads c->device whatever this returns
  if (nargs != PA_NARGS || !cfg.ready)
    return 0;
  int r = read_options(args[PA_CAUSAL], args[PA_WINDOW], args[PA_SOFTCAP],
                       args[PA_SCALE], args[PA_LSE], args[PA_BUNDLES], &c->opt);
  if (r <= 0)
    return r;
  int layout = read_choice(args[PA_LAYOUT], layouts, 2);
  if (layout < 0)
    return 0;
  c->splits_override = 0;
  if (args[PA_SPLITS] != Py_None &&
      ((r = read_int(args[PA_SPLITS], &c->splits_override)) <= 0 ||
       c->splits_override < 0))
    return r < 0 ? r : 0;
  int64_t vstride;
  int prefix_of_k;
  if ((r = paged_tensors(args, c, layout, &vstride, &prefix_of_k)) <= 0)
    return r;
  if (c->b > MAX_GRID_YZ)
    return 0;
  const Tensor *q = &c->t[S_Q];
  uint64_t sinks_key;
  if ((r = read_sinks(args[PA_SINKS], c->hq, q->device, &c->t[S_SINKS],
                      &sinks_key)) <= 0)
    return r;
  if (args[PA_OUT] != Py_None) {
    // The output shape, or [B, Hq, Dv] for a single token.
    Tensor *o = &c->t[S_O];
    int64_t full[4] = {c->b, c->sq, c->hq, c->dv};
    int64_t flat[3] = {c->b, c->hq, c->dv};
    if ((r = inspect(args[PA_OUT], o)) <= 0)
      return r;
    if (!(same_shape(o, full, 4) || (c->single && same_shape(o, flat, 3))) ||
        o->dtype != q->dtype || !o->contiguous || o->ptr % 16 ||
        o->device != q->device)
      return 0;
  }
  c->device = q->device;
  int64_t sizes[PS_NSIZES] = {c->b,         c->hq, c->hkv, c->sq,
                              c->max_pages, 0,     vstride};
  memcpy(c->sizes, sizes, sizeof sizes);
  uint64_t *key = c->key;
  int w = 0;
  key[w++] = 2 | (uint64_t)FASTPATH_API << 8; // the op
  key[w++] = (uint64_t)q->dtype;
  key[w++] = (uint64_t)c->t[S_KC].shape[3]; // head dim
  key[w++] = (uint64_t)c->dv;
  key[w++] = (uint64_t)c->page;
  key[w++] = (uint64_t)layout;
  key[w++] = (uint64_t)c->t[S_TABLE].dtype; // and seq_lens'
  w += option_key(&c->opt, key + w);
  key[w++] = (uint64_t)prefix_of_k;
  key[w++] = (uint64_t)(c->hq / c->hkv * c->sq); // a KV head's query rows
  key[w++] = sinks_key;
  key[w++] = (uint64_t)c->device;
  return 1;
}

// attn.gpu.num_splits over int64 (`slots`: resident blocks x SMs): a
// product past int64 is "more blocks than slots", as it is in Python.
static int64_t num_splits(int64_t batch, int64_t kv_heads, int64_t row_tiles,
                          int64_t max_len, int64_t slots) {
  int64_t blocks;
  if (__builtin_mul_overflow(batch, kv_heads, &blocks) ||
      __builtin_mul_overflow(blocks, row_tiles, &blocks))
    blocks = INT64_MAX;
  if (blocks < 1)
    blocks = 1;
  int64_t fill = slots / blocks;
  int64_t by_length = max_len / 256 + (max_len % 256 != 0);
  int64_t s = fill < by_length ? fill : by_length;
  s = s < 128 ? s : 128;
  return s > 1 ? s : 1;
}

//===----------------------------------------------------------------------===//
// Split-KV workspaces kept across paged calls
//===----------------------------------------------------------------------===//

// The split kernel writes o_part and lse_part and the combine kernel, next on
// the same stream, reads them; nothing else does. So a workspace can serve
// every later call on that stream: the stream orders each call's kernels after
// the previous call's. One float32 tensor is kept per (device, stream) --
// grown, never shrunk, until clear() -- which saves a paged call one
// allocation (3-5 µs of host time on the H200's host). A stream being captured
// into a CUDA graph gets a fresh allocation instead, from the graph's pool,
// as the Python path does: a kept workspace baked into a graph would be shared
// between its replays and eager calls on other streams. What this assumes: a
// stream handle names one stream while its work runs (torch's pooled streams
// are never destroyed; an external stream destroyed with paged calls in
// flight and its handle reused at once would break it).
typedef struct {
  PyObject *tensor; // NULL: a free entry
  Tensor t;
  int device;
  void *stream;
} Workspace;

static Workspace workspaces[WORKSPACES];
static unsigned workspace_evictions; // round robin over the full table

static void clear_workspaces(void) {
  for (int i = 0; i < WORKSPACES; i++)
    Py_CLEAR(workspaces[i].tensor);
}

static int kept_workspaces(void) {
  int n = 0;
  for (int i = 0; i < WORKSPACES; i++)
    n += workspaces[i].tensor != NULL;
  return n;
}

// 1 when `stream` is not being captured; 0 when it is, or the driver cannot
// say (a fresh allocation is always right).
static int stream_is_eager(void *stream) {
  int status = 1;
  return cfg.is_capturing && cfg.is_capturing(stream, &status) == 0 &&
         status == 0;
}

// The float32 workspace of `numel` elements for a call on (device, stream),
// into *t: a kept one, or a new one (kept when the stream is eager; else in
// *owned, this call's). 1, 0 (not for the fast path) or -1.
static int paged_workspace(PyObject *q, int device, void *stream, int64_t numel,
                           Tensor *t, PyObject **owned) {
  int eager = stream_is_eager(stream), slot = -1;
  if (eager)
    for (int i = 0; i < WORKSPACES && slot < 0; i++)
      if (workspaces[i].tensor && workspaces[i].device == device &&
          workspaces[i].stream == stream)
        slot = i;
  if (slot >= 0 && workspaces[slot].t.numel >= numel) {
    *t = workspaces[slot].t;
    return 1;
  }
  int64_t shape[1] = {numel};
  PyObject *ws = new_empty(q, shape, 1, 1);
  int r = ws ? output(ws, shape, 1, DT_F32, device, t) : -1;
  if (r <= 0 || !eager) {
    *owned = ws;
    return r;
  }
  if (slot < 0) // a free entry, else the next in turn
    for (int i = 0; i < WORKSPACES && slot < 0; i++)
      if (!workspaces[i].tensor)
        slot = i;
  if (slot < 0)
    slot = (int)(workspace_evictions++ % WORKSPACES);
  PyObject *previous = workspaces[slot].tensor; // Py_XSETREF: not limited API
  workspaces[slot].tensor = ws;
  Py_XDECREF(previous);
  workspaces[slot].t = *t;
  workspaces[slot].device = device;
  workspaces[slot].stream = stream;
  return 1;
}

// The allocations of a paged call, in the Python path's order (out, the
// workspace of o_part and lse_part, lse), each also as a slot. 1, 0 (unaligned:
// the Python path raises) or -1.
static int paged_outputs(PyObject *const *args, PagedCall *c, int64_t splits,
                         void *stream, PyObject **owned) {
  PyObject *q = args[PA_Q];
  int dtype = c->t[S_Q].dtype, r;
  int64_t b = c->b, sq = c->sq, hq = c->hq, dv = c->dv;
  int64_t o4[4] = {b, sq, hq, dv}, o3[3] = {b, hq, dv};
  int64_t opart[5] = {splits, b, sq, hq, dv}, lpart[4] = {splits, b, sq, hq};
  int64_t lse3[3] = {b, hq, sq}, lse2[2] = {b, hq};
  // o_part's element count must not wrap before torch sees it (a
  // num_splits_override past it: the Python path raises).
  int64_t n = 1;
  for (int i = 0; i < 5; i++)
    if (__builtin_mul_overflow(n, opart[i], &n) || n > ((int64_t)1 << 59))
      return 0;
  if (args[PA_OUT] == Py_None) {
    const int64_t *shape = c->single ? o3 : o4;
    int ndim = c->single ? 3 : 4;
    if (!(owned[0] = new_empty(q, shape, ndim, 0)) ||
        (r = output(owned[0], shape, ndim, dtype, c->device, &c->t[S_O])) <= 0)
      return owned[0] ? r : -1;
  }
  // o_part and lse_part: one float32 workspace, lse_part from the first
  // 16-byte boundary past o_part (gpu._paged_workspace's layout).
  int64_t nl = splits * b * sq * hq; // at most n: no overflow
  int64_t pad = (n + 3) / 4 * 4;
  if ((r = paged_workspace(q, c->device, stream, pad + nl, &c->t[S_OPART],
                           &owned[1])) <= 0)
    return r;
  Tensor *op = &c->t[S_OPART], *lp = &c->t[S_LSEPART];
  *lp = *op;
  op->ndim = 5; // only the address and element count are passed
  for (int i = 0; i < 4; i++)
    op->shape[i] = opart[i];
  op->numel = n;
  lp->ndim = 4;
  for (int i = 0; i < 4; i++)
    lp->shape[i] = lpart[i];
  lp->numel = nl;
  lp->ptr += (uint64_t)pad * 4;
  if (c->opt.lse) {
    const int64_t *shape = c->single ? lse2 : lse3;
    int ndim = c->single ? 2 : 3;
    if (!(owned[3] = new_empty(q, shape, ndim, 1)) ||
        (r = output(owned[3], shape, ndim, DT_F32, c->device, &c->t[S_LSE])) <=
            0)
      return owned[3] ? r : -1;
  }
  return 1;
}

// The result: out -- viewed as [B, Hq, Dv] when a single token's caller
// passed a 4-D one -- and the LSE with return_lse.
static PyObject *paged_result(PyObject *const *args, const PagedCall *c,
                              PyObject **owned) {
  PyObject *out =
      args[PA_OUT] == Py_None ? Py_NewRef(owned[0]) : Py_NewRef(args[PA_OUT]);
  if (c->single && c->t[S_O].ndim == 4) {
    PyObject *viewed = PyObject_CallMethod(out, "view", "LLL", (long long)c->b,
                                           (long long)c->hq, (long long)c->dv);
    Py_DECREF(out);
    if (!(out = viewed))
      return NULL;
  }
  if (!c->opt.lse)
    return out;
  PyObject *result = PyTuple_Pack(2, out, owned[3]);
  Py_DECREF(out);
  return result;
}

static PyObject *fp_paged_attention(PyObject *self, PyObject *const *args,
                                    Py_ssize_t nargs) {
  PagedCall c;
  Plan *plan;
  PyObject *answer;
  int r = paged_read(args, nargs, &c);
  if (!entry_plan(r, c.device, c.key, PAGED_KEY_WORDS, c.opt.bundles, &plan,
                  &answer))
    return answer;
  PyObject *owned[4] = {NULL, NULL, NULL, NULL}, *result = NULL;
  int64_t kv_blocks, max_len;
  if (__builtin_mul_overflow(c.hkv, plan->chunks, &kv_blocks))
    kv_blocks = INT64_MAX;
  if (__builtin_mul_overflow(c.max_pages, c.page, &max_len))
    max_len = INT64_MAX;
  int64_t splits =
      c.splits_override
          ? c.splits_override
          : num_splits(c.b, kv_blocks, plan->row_tiles, max_len, plan->slots);
  c.sizes[PS_SPLITS] = splits;
  void *stream;
  Prepared split, combine;
  if ((r = current_stream(c.device, &stream)) < 0 ||
      (r = paged_outputs(args, &c, splits, stream, owned)) <= 0)
    goto done;
  if (!launcher_prepare(plan->kernels[0], c.t, c.sizes, &split) ||
      !launcher_prepare(plan->kernels[1], c.t, c.sizes, &combine)) {
    r = 0;
    goto done;
  }
  if ((r = launcher_launch(plan->kernels[0], &split, c.t, c.sizes, stream)) <
          0 ||
      (r = launcher_launch(plan->kernels[1], &combine, c.t, c.sizes, stream)) <
          0)
    goto done;
  stats.hits++;
  result = paged_result(args, &c, owned);
done:
  if (!result && r == 0 && !PyErr_Occurred()) {
    stats.rejected++;
    result = Py_NewRef(Py_None);
  }
  for (int i = 0; i < 4; i++)
    Py_XDECREF(owned[i]);
  Py_DECREF(plan);
  return result;
}

static PyObject *fp_register_paged_attention(PyObject *self,
                                             PyObject *const *args,
                                             Py_ssize_t nargs) {
  int64_t row_tiles, chunks, slots;
  if (nargs != PA_NARGS + 5 ||
      !is_launcher(args[PA_NARGS], S_NSLOTS, PS_NSIZES) ||
      !is_launcher(args[PA_NARGS + 1], S_NSLOTS, PS_NSIZES) ||
      read_int(args[PA_NARGS + 2], &row_tiles) <= 0 ||
      read_int(args[PA_NARGS + 3], &chunks) <= 0 ||
      read_int(args[PA_NARGS + 4], &slots) <= 0 || row_tiles < 1 ||
      chunks < 1 || slots < 0) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_TypeError,
                      "register_paged_attention(<paged_attention's 15 "
                      "arguments>, split and combine Launchers of PAGED_SLOTS "
                      "and PAGED_SIZES, row_tiles, chunks, slots)");
    return NULL;
  }
  PagedCall c;
  int r = paged_read(args, PA_NARGS, &c);
  if (r <= 0)
    return r < 0 ? NULL : Py_NewRef(Py_False);
  Plan *plan = plan_new(c.opt.bundles);
  if (!plan)
    return NULL;
  plan->kernels[0] = (Launcher *)Py_NewRef(args[PA_NARGS]);
  plan->kernels[1] = (Launcher *)Py_NewRef(args[PA_NARGS + 1]);
  plan->row_tiles = row_tiles;
  plan->chunks = chunks;
  plan->slots = slots;
  r = store_plan(c.key, PAGED_KEY_WORDS, c.opt.bundles, plan);
  Py_DECREF(plan);
  return r < 0 ? NULL : Py_NewRef(Py_True);
}

//===----------------------------------------------------------------------===//
// The module
//===----------------------------------------------------------------------===//

static void release_config(void) {
  cfg.ready = 0;
  cfg.is_capturing = NULL;
  clear_workspaces();
  Py_CLEAR(cfg.check);
  Py_CLEAR(cfg.get_stream);
  Py_CLEAR(cfg.get_device);
  Py_CLEAR(cfg.f32_kwargs);
  for (int i = 0; i < 4; i++)
    Py_CLEAR(cfg.tensor_types[i]);
  for (int i = 0; i < DT_COUNT; i++)
    Py_CLEAR(cfg.dtypes[i]);
  cfg.ntensor_types = 0;
}

// configure(launch, encode, check, get_stream, get_device, tensor_types,
// dtypes, float32, is_capturing): the driver's cuLaunchKernel and
// cuTensorMapEncodeTiled (addresses), attn.gpu._check, torch's current stream
// and device getters, the exact types taken as tensors, the dtypes float16,
// bfloat16, float32, int32, int64 (in that order), float32 again (new_empty's
// dtype=) and the driver's cuStreamIsCapturing (an address, or 0: no paged
// workspace is kept). Plans and workspaces made before are dropped: they hold
// the old driver's functions and the old torch's tensors.
static PyObject *fp_configure(PyObject *self, PyObject *args) {
  PyObject *launch, *encode, *check, *get_stream, *get_device, *types, *dtypes,
      *float32, *capturing;
  if (!PyArg_ParseTuple(args, "OOOOOOOOO", &launch, &encode, &check,
                        &get_stream, &get_device, &types, &dtypes, &float32,
                        &capturing))
    return NULL;
  void *launch_fn = PyLong_AsVoidPtr(launch);
  void *encode_fn = launch_fn ? PyLong_AsVoidPtr(encode) : NULL;
  void *capturing_fn =
      capturing == Py_None ? NULL : PyLong_AsVoidPtr(capturing);
  if (PyErr_Occurred())
    return NULL;
  if (!launch_fn || !encode_fn || !PyCallable_Check(check) ||
      !PyCallable_Check(get_stream) || !PyCallable_Check(get_device) ||
      !PyTuple_Check(types) || PyTuple_Size(types) < 1 ||
      PyTuple_Size(types) > 4 || !PyTuple_Check(dtypes) ||
      PyTuple_Size(dtypes) != DT_COUNT) {
    PyErr_SetString(PyExc_ValueError,
                    "configure: function addresses, three callables, a tuple "
                    "of 1-4 tensor types and a tuple of 5 dtypes");
    return NULL;
  }
  PyObject *kwargs = Py_BuildValue("{sO}", "dtype", float32);
  if (!kwargs)
    return NULL;
  release_config();
  PyDict_Clear(plans);
  cfg.launch = (LaunchKernelFn)launch_fn;
  cfg.encode = (EncodeTiledFn)encode_fn;
  cfg.is_capturing = (IsCapturingFn)capturing_fn;
  cfg.check = Py_NewRef(check);
  cfg.get_stream = Py_NewRef(get_stream);
  cfg.get_device = Py_NewRef(get_device);
  cfg.f32_kwargs = kwargs;
  cfg.ntensor_types = (int)PyTuple_Size(types);
  for (int i = 0; i < cfg.ntensor_types; i++)
    cfg.tensor_types[i] = Py_NewRef(PyTuple_GetItem(types, i));
  for (int i = 0; i < DT_COUNT; i++)
    cfg.dtypes[i] = Py_NewRef(PyTuple_GetItem(dtypes, i));
  cfg.ready = 1;
  Py_RETURN_NONE;
}

static PyObject *fp_num_splits(PyObject *self, PyObject *args) {
  long long b, h, r, l, s;
  if (!PyArg_ParseTuple(args, "LLLLL", &b, &h, &r, &l, &s))
    return NULL;
  return PyLong_FromLongLong(num_splits(b, h, r, l, s));
}

// row_stride(shape, stride): row_stride_of's answer (None: not a row
// layout), for tests against attn.gpu._row_stride.
static PyObject *fp_row_stride(PyObject *self, PyObject *args) {
  PyObject *shape, *stride;
  int64_t size[4], strides[4], row;
  if (!PyArg_ParseTuple(args, "OO", &shape, &stride))
    return NULL;
  if (PySequence_Size(shape) != 4 || PySequence_Size(stride) != 4) {
    PyErr_Clear();
    return PyErr_Format(PyExc_ValueError, "4 sizes and 4 strides");
  }
  for (int i = 0; i < 4; i++)
    if (seq_int(shape, i, &size[i]) < 0 || seq_int(stride, i, &strides[i]) < 0)
      return NULL;
  if (!row_stride_of(size, strides, &row))
    Py_RETURN_NONE;
  return PyLong_FromLongLong(row);
}

//===----------------------------------------------------------------------===//
// attention_backward
//===----------------------------------------------------------------------===//

// Argument positions of attention_backward() and
// register_attention_backward(); the slots a backward Launcher's spec refers
// to (GRAD_SLOTS; its sizes are DENSE_SIZES).
enum {
  GA_DO,
  GA_Q,
  GA_K,
  GA_V,
  GA_OUT,
  GA_LSE,
  GA_CAUSAL,
  GA_WINDOW,
  GA_SOFTCAP,
  GA_SCALE,
  GA_BIAS,
  GA_SINKS,
  GA_LAYOUT,
  GA_BUNDLES,
  GA_KERNEL,
  GA_DETERMINISTIC,
  GA_DQ_REDUCE,
  GA_NARGS
};
enum {
  GR_Q,
  GR_K,
  GR_V,
  GR_BIAS,
  GR_O,
  GR_DO,
  GR_LSE,
  GR_DELTA,
  GR_ROW_STATS,
  GR_DQ_ACCUM,
  GR_DQ,
  GR_DK,
  GR_DV,
  GR_SINKS,
  GR_DSINKS,
  GR_NSLOTS
};
static const char *const grad_slot_names[GR_NSLOTS] = {
    "q",         "k",        "v",  "bias", "o",  "do",    "lse",   "delta",
    "row_stats", "dq_accum", "dq", "dk",   "dv", "sinks", "dsinks"};
enum { GRAD_KEY_WORDS = 24 };

typedef struct {
  Tensor t[GR_NSLOTS];
  int64_t sizes[MAX_SIZES];
  uint64_t key[GRAD_KEY_WORDS];
  Options opt;
  int device;
} GradCall;

// Checks a call as attn.gpu.attention_backward does (`deterministic`
// already resolved to a bool) and builds its key. 1, 0 (the Python path
// takes the call), -1.
static int grad_read(PyObject *const *args, Py_ssize_t nargs, GradCall *c) {
  static const char *const layouts[] = {"bhsd", "bshd"};
  static const char *const kernels[] = {"auto", "mma", "wgmma"};
  static const char *const reduces[] = {"bulk", "atomic"};
  memset(c, 0, sizeof *c); // entry_plan reads c->device whatever this returns
  if (nargs != GA_NARGS || !cfg.ready)
    return 0;
  int r = read_options(args[GA_CAUSAL], args[GA_WINDOW], args[GA_SOFTCAP],
                       args[GA_SCALE], Py_False, args[GA_BUNDLES], &c->opt);
  if (r <= 0)
    return r;
  int deterministic;
  if ((r = read_bool(args[GA_DETERMINISTIC], &deterministic)) <= 0)
    return r;
  int layout = read_choice(args[GA_LAYOUT], layouts, 2);
  // None is "auto", and "bulk", the way the Python path reads them.
  int kernel =
      args[GA_KERNEL] == Py_None ? 0 : read_choice(args[GA_KERNEL], kernels, 3);
  int reduce = args[GA_DQ_REDUCE] == Py_None
                   ? 0
                   : read_choice(args[GA_DQ_REDUCE], reduces, 2);
  if (layout < 0 || kernel < 0 || reduce < 0)
    return 0;
  Tensor *q = &c->t[GR_Q];
  DenseShape sh;
  PyObject *dense[5] = {args[GA_Q], args[GA_K], args[GA_V], args[GA_BIAS],
                        args[GA_SINKS]};
  if ((r = read_dense(dense, layout, q, &c->t[GR_K], &c->t[GR_V],
                      &c->t[GR_BIAS], &c->t[GR_SINKS], &sh)) <= 0 ||
      (r = input(args[GA_OUT], &c->t[GR_O], 4, q->device, 0)) <= 0 ||
      (r = input(args[GA_DO], &c->t[GR_DO], 4, q->device, 0)) <= 0 ||
      (r = input(args[GA_LSE], &c->t[GR_LSE], 3, q->device, 0)) <= 0)
    return r;
  int64_t lse_shape[3] = {sh.sizes[DS_B], sh.sizes[DS_HQ], sh.sizes[DS_SQ]};
  if (c->t[GR_O].dtype != q->dtype || c->t[GR_DO].dtype != q->dtype ||
      c->t[GR_LSE].dtype != DT_F32 || !same_shape(&c->t[GR_O], sh.o_shape, 4) ||
      !same_shape(&c->t[GR_DO], sh.o_shape, 4) ||
      !same_shape(&c->t[GR_LSE], lse_shape, 3))
    return 0;
  c->device = q->device;
  memcpy(c->sizes, sh.sizes, sizeof sh.sizes);
  int w = dense_key(c->key, 3, q, &sh, layout, &c->opt);
  c->key[w++] = (uint64_t)kernel;
  c->key[w++] = (uint64_t)deterministic;
  c->key[w++] = (uint64_t)reduce;
  return 1;
}

// The gradients (each like its input: dq like q, ..., dsinks like the
// sinks) and the plan's workspaces, allocated in the Python path's order,
// into `c` and `made` (new references). 1, 0 (a workspace size past what the
// programs allow), -1.
static int grad_outputs(GradCall *c, const Plan *plan, PyObject **made) {
  static const int grads[4][2] = {
      {GR_DQ, GR_Q}, {GR_DK, GR_K}, {GR_DV, GR_V}, {GR_DSINKS, GR_SINKS}};
  int r;
  for (int i = 0; i < 4; i++) {
    const Tensor *like = &c->t[grads[i][1]];
    int slot = grads[i][0];
    if (!like->obj) // no sinks
      continue;
    if (!(made[slot] = new_empty(like->obj, like->shape, like->ndim, 0)))
      return -1;
    if ((r = output(made[slot], like->shape, like->ndim, like->dtype, c->device,
                    &c->t[slot])) <= 0)
      return r;
  }
  for (int i = 0; i < plan->nworkspaces; i++) {
    const WorkspaceSpec *ws = &plan->workspaces[i];
    int64_t shape[4], numel = 1;
    for (int j = 0; j < ws->ndim; j++)
      if (!grid_eval(ws->prog[j], ws->len[j], c->sizes, &shape[j]) ||
          __builtin_mul_overflow(numel, shape[j], &numel) ||
          numel > ((int64_t)1 << 40))
        return 0;
    if (!(made[ws->slot] = new_empty(c->t[GR_Q].obj, shape, ws->ndim, 1)))
      return -1;
    if ((r = output(made[ws->slot], shape, ws->ndim, DT_F32, c->device,
                    &c->t[ws->slot])) <= 0)
      return r;
  }
  return 1;
}

static PyObject *fp_attention_backward(PyObject *self, PyObject *const *args,
                                       Py_ssize_t nargs) {
  GradCall c;
  Plan *plan;
  PyObject *answer;
  int r = grad_read(args, nargs, &c);
  if (!entry_plan(r, c.device, c.key, GRAD_KEY_WORDS, c.opt.bundles, &plan,
                  &answer))
    return answer;
  PyObject *made[GR_NSLOTS] = {NULL}, *result = NULL;
  Prepared p[MAX_SET];
  void *stream;
  if ((r = grad_outputs(&c, plan, made)) <= 0)
    goto done;
  // Every kernel prepared before the first launches: a refusal launches
  // nothing, and the Python path raises.
  for (int i = 0; i < plan->nkernels; i++)
    if (!launcher_prepare(plan->kernels[i], c.t, c.sizes, &p[i])) {
      r = 0;
      goto done;
    }
  if ((r = current_stream(c.device, &stream)) < 0)
    goto done;
  for (int i = 0; i < plan->nkernels; i++)
    if ((r = launcher_launch(plan->kernels[i], &p[i], c.t, c.sizes, stream)) <
        0)
      goto done;
  stats.hits++;
  result = made[GR_DSINKS]
               ? PyTuple_Pack(4, made[GR_DQ], made[GR_DK], made[GR_DV],
                              made[GR_DSINKS])
               : PyTuple_Pack(3, made[GR_DQ], made[GR_DK], made[GR_DV]);
done:
  if (!result && r == 0 && !PyErr_Occurred()) {
    stats.rejected++;
    result = Py_NewRef(Py_None);
  }
  for (int i = 0; i < GR_NSLOTS; i++)
    Py_XDECREF(made[i]);
  Py_DECREF(plan);
  return result;
}

// One workspace of a backward plan: (slot, (program, ...)), a program per
// dim (parse_prog); the slot one of the workspaces' (delta, row_stats,
// dq_accum).
static int parse_workspace(WorkspaceSpec *ws, PyObject *item, Py_ssize_t i) {
  memset(ws, 0, sizeof *ws);
  int64_t slot;
  if (PySequence_Size(item) != 2) {
    PyErr_Clear();
    return spec_error("workspace (slot, dims)", i);
  }
  if (seq_int(item, 0, &slot) < 0)
    return -1;
  if (slot < GR_DELTA || slot > GR_DQ_ACCUM)
    return spec_error("workspace slot", i);
  ws->slot = (int)slot;
  PyObject *dims = PySequence_GetItem(item, 1);
  if (!dims)
    return -1;
  Py_ssize_t n = PySequence_Size(dims);
  int r = n < 0 ? -1 : 0, nsizes = 0;
  if (n == 0 || n > 4)
    r = spec_error("workspace dims (1 to 4)", i);
  for (Py_ssize_t j = 0; r == 0 && j < n; j++) {
    PyObject *prog = PySequence_GetItem(dims, j);
    r = prog ? parse_prog(prog, ws->prog[j], WS_PROGRAM, &ws->len[j], &nsizes,
                          "workspace dim", i)
             : -1;
    Py_XDECREF(prog);
  }
  Py_DECREF(dims);
  if (r == 0 && nsizes > DS_NSIZES)
    r = spec_error("workspace dim (a size past DENSE_SIZES)", i);
  ws->ndim = (int)n;
  return r;
}

static PyObject *fp_register_attention_backward(PyObject *self,
                                                PyObject *const *args,
                                                Py_ssize_t nargs) {
  static const char *usage =
      "register_attention_backward(<attention_backward's 17 arguments>, a "
      "tuple of Launchers of GRAD_SLOTS and DENSE_SIZES, a tuple of "
      "workspaces)";
  if (nargs != GA_NARGS + 2 || !PyTuple_Check(args[GA_NARGS]) ||
      !PyTuple_Check(args[GA_NARGS + 1])) {
    PyErr_SetString(PyExc_TypeError, usage);
    return NULL;
  }
  PyObject *launchers = args[GA_NARGS], *workspaces = args[GA_NARGS + 1];
  Py_ssize_t n = PyTuple_Size(launchers), nws = PyTuple_Size(workspaces);
  if (n < 1 || n > MAX_SET || nws > MAX_WORKSPACES) {
    PyErr_SetString(PyExc_TypeError, usage);
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++)
    if (!is_launcher(PyTuple_GetItem(launchers, i), GR_NSLOTS, DS_NSIZES)) {
      PyErr_SetString(PyExc_TypeError, usage);
      return NULL;
    }
  GradCall c;
  int r = grad_read(args, GA_NARGS, &c);
  if (r <= 0)
    return r < 0 ? NULL : Py_NewRef(Py_False);
  Plan *plan = plan_new(c.opt.bundles);
  if (!plan)
    return NULL;
  uint32_t slots = 0;
  for (Py_ssize_t i = 0; i < nws; i++) {
    WorkspaceSpec *ws = &plan->workspaces[i];
    if (parse_workspace(ws, PyTuple_GetItem(workspaces, i), i) < 0 ||
        ((slots >> ws->slot & 1) && spec_error("workspace slot (twice)", i))) {
      Py_DECREF(plan);
      return NULL;
    }
    slots |= 1u << ws->slot;
  }
  plan->nworkspaces = (int)nws;
  for (Py_ssize_t i = 0; i < n; i++)
    plan->kernels[i] = (Launcher *)Py_NewRef(PyTuple_GetItem(launchers, i));
  plan->nkernels = (int)n;
  r = store_plan(c.key, GRAD_KEY_WORDS, c.opt.bundles, plan);
  Py_DECREF(plan);
  return r < 0 ? NULL : Py_NewRef(Py_True);
}

// launch_set(launchers, tensors, sizes, stream): the launches of a tuple of
// Launchers in order with one call's tensors and sizes (launch_all): a
// kernel set such as attention_backward's.
static PyObject *fp_launch_set(PyObject *self, PyObject *args) {
  PyObject *launchers, *tensors, *sizes_seq, *stream_obj;
  if (!PyArg_ParseTuple(args, "O!OOO", &PyTuple_Type, &launchers, &tensors,
                        &sizes_seq, &stream_obj))
    return NULL;
  Py_ssize_t n = PyTuple_Size(launchers);
  if (n < 1 || n > MAX_SET)
    return PyErr_Format(PyExc_ValueError, "launch_set takes 1 to %d launchers",
                        (int)MAX_SET);
  Launcher *Ls[MAX_SET];
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *o = PyTuple_GetItem(launchers, i);
    if (Py_TYPE(o) != LauncherType)
      return PyErr_Format(PyExc_TypeError,
                          "launch_set: item %zd is not a "
                          "Launcher",
                          i);
    Ls[i] = (Launcher *)o;
  }
  return launch_all(Ls, (int)n, tensors, sizes_seq, stream_obj);
}

static PyObject *fp_stats(PyObject *self, PyObject *unused) {
  return Py_BuildValue("{sKsKsKsnsi}", "hits", stats.hits, "misses",
                       stats.misses, "rejected", stats.rejected, "plans",
                       PyDict_Size(plans), "workspaces", kept_workspaces());
}

static PyObject *fp_clear(PyObject *self, PyObject *unused) {
  PyDict_Clear(plans);
  clear_workspaces();
  memset(&stats, 0, sizeof stats);
  Py_RETURN_NONE;
}

static PyObject *fp_release_workspaces(PyObject *self, PyObject *unused) {
  clear_workspaces();
  Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", fp_configure, METH_VARARGS,
     "configure(launch, encode, check, get_stream, get_device, tensor_types, "
     "dtypes, float32, is_capturing)"},
    {"attention", (PyCFunction)(void (*)(void))fp_attention, METH_FASTCALL,
     "attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout, "
     "return_lse, bundles, out): the result, or None for the Python path"},
    {"register_attention", (PyCFunction)(void (*)(void))fp_register_attention,
     METH_FASTCALL,
     "register_attention(<attention's arguments>, launcher): whether the "
     "call's key now maps to the launcher"},
    {"paged_attention", (PyCFunction)(void (*)(void))fp_paged_attention,
     METH_FASTCALL,
     "paged_attention(q, k_cache, v_cache, block_table, seq_lens, causal, "
     "window, softcap, scale, sinks, cache_layout, return_lse, "
     "num_splits_override, bundles, out): the result, or None"},
    {"register_paged_attention",
     (PyCFunction)(void (*)(void))fp_register_paged_attention, METH_FASTCALL,
     "register_paged_attention(<paged_attention's arguments>, split, combine, "
     "row_tiles, chunks, slots)"},
    {"num_splits", fp_num_splits, METH_VARARGS,
     "num_splits(batch, kv_heads, row_tiles, max_len, resident_x_sms)"},
    {"attention_backward", (PyCFunction)(void (*)(void))fp_attention_backward,
     METH_FASTCALL,
     "attention_backward(do, q, k, v, out, lse, causal, window, softcap, "
     "scale, bias, sinks, layout, bundles, kernel, deterministic, dq_reduce): "
     "the gradients, or None for the Python path"},
    {"register_attention_backward",
     (PyCFunction)(void (*)(void))fp_register_attention_backward, METH_FASTCALL,
     "register_attention_backward(<attention_backward's arguments>, "
     "launchers, workspaces)"},
    {"launch_set", fp_launch_set, METH_VARARGS,
     "launch_set(launchers, tensors, sizes, stream): the Launchers' launches "
     "in order, each tensor inspected once, none launched unless all can be; "
     "True, False (every grid empty) or None (refused)"},
    {"row_stride", fp_row_stride, METH_VARARGS,
     "row_stride(shape, stride): attn.gpu._row_stride's answer"},
    {"stats", fp_stats, METH_NOARGS,
     "counters: hits, misses, rejected, plans, workspaces (kept)"},
    {"release_workspaces", fp_release_workspaces, METH_NOARGS,
     "drops the kept split-KV workspaces"},
    {"clear", fp_clear, METH_NOARGS,
     "drops every plan and kept workspace; zeroes the counters"},
    {NULL, NULL, 0, NULL}};

static void module_free(void *unused) {
  release_config();
  Py_CLEAR(plans);
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_fastpath",
    "The native call path of attn.gpu.attention and paged_attention.",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    module_free};

static PyObject *names_tuple(const char *const *names, int n) {
  PyObject *t = PyTuple_New(n);
  for (int i = 0; t && i < n; i++) {
    PyObject *s = PyUnicode_FromString(names[i]);
    if (!s || PyTuple_SetItem(t, i, s) < 0) {
      Py_DECREF(t);
      return NULL;
    }
  }
  return t;
}

static int add_constants(PyObject *m) {
  struct {
    const char *name;
    long value;
  } ints[] = {
      {"API", FASTPATH_API},
      {"MAX_SET", MAX_SET},
      {"KIND_MEMREF", P_MEMREF},
      {"KIND_I64", P_I64},
      {"KIND_F32", P_F32},
      {"KIND_TENSORMAP", P_TENSORMAP},
      {"GRID_CONST", G_CONST},
      {"GRID_SIZE", G_SIZE},
      {"GRID_MUL", G_MUL},
      {"GRID_MIN", G_MIN},
      {"GRID_DIV", G_DIV},
      {"GRID_CEIL_DIV", G_CEIL_DIV},
#ifdef Py_LIMITED_API
      {"LIMITED_API", Py_LIMITED_API},
#else
      {"LIMITED_API", 0},
#endif
  };
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    if (PyModule_AddIntConstant(m, ints[i].name, ints[i].value) < 0)
      return -1;
  if (PyModule_AddStringConstant(m, "SOURCE_HASH", ATTN_FASTPATH_SOURCE_HASH) <
      0)
    return -1;
  struct {
    const char *name;
    const char *const *names;
    int n;
  } tuples[] = {{"DENSE_SLOTS", dense_slot_names, D_NSLOTS},
                {"DENSE_SIZES", dense_size_names, DS_NSIZES},
                {"PAGED_SLOTS", paged_slot_names, S_NSLOTS},
                {"PAGED_SIZES", paged_size_names, PS_NSIZES},
                {"GRAD_SLOTS", grad_slot_names, GR_NSLOTS}};
  for (size_t i = 0; i < sizeof tuples / sizeof tuples[0]; i++) {
    PyObject *t = names_tuple(tuples[i].names, tuples[i].n);
    int r = t ? PyModule_AddObjectRef(m, tuples[i].name, t) : -1;
    Py_XDECREF(t);
    if (r < 0)
      return -1;
  }
  return 0;
}

PyMODINIT_FUNC PyInit__fastpath(void) {
  struct {
    PyObject **slot;
    const char *name;
  } names[] = {{&s_is_cuda, "is_cuda"},
               {&s_shape, "shape"},
               {&s_dtype, "dtype"},
               {&s_get_device, "get_device"},
               {&s_is_contiguous, "is_contiguous"},
               {&s_data_ptr, "data_ptr"},
               {&s_new_empty, "new_empty"},
               {&s_stride, "stride"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!*names[i].slot &&
        !(*names[i].slot = PyUnicode_InternFromString(names[i].name)))
      return NULL;
  PyObject *m = PyModule_Create(&module_def);
  if (!m)
    return NULL;
  if (!plans && !(plans = PyDict_New()))
    goto fail;
  LauncherType = (PyTypeObject *)PyType_FromSpec(&launcher_spec);
  PlanType = (PyTypeObject *)PyType_FromSpec(&plan_spec);
  if (!LauncherType || !PlanType ||
      PyModule_AddObjectRef(m, "Launcher", (PyObject *)LauncherType) < 0 ||
      add_constants(m) < 0)
    goto fail;
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
