// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// A stand-in for libcuda with the functions attn.gpu and attn._fastpath call,
// for tests on machines without a GPU (python/tests/test_fastpath.py builds
// it with cc). Launches are recorded -- function, grid, block, shared memory,
// stream and the bytes of every kernel parameter -- so that the fast path's
// launches can be compared byte for byte with the Python path's. Device
// pointers are never dereferenced.

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { LOG = 16, MAX_BYTES = 8192, MAX_FUNCTIONS = 4096, MAX_PARAMS = 320 };

typedef struct {
  uint64_t info[10]; // function, grid xyz, block xyz, shared, stream, bytes
  unsigned char bytes[MAX_BYTES];
} Launch;

static Launch launches[LOG];
static int launch_count, encode_count, module_count, function_count;
static int fail_launch, fail_encode;
static uint64_t capturing_stream; // the stream "being captured"; 0: none

// The byte size of each parameter of a function (set by the test from the
// kernel's manifest): what cuLaunchKernel reads through each pointer.
static struct {
  uint64_t function;
  int n;
  int sizes[MAX_PARAMS];
} functions[MAX_FUNCTIONS];
static int nfunctions;

void fake_reset(void) {
  launch_count = encode_count = 0;
  fail_launch = fail_encode = 0;
  capturing_stream = 0;
}

// cuStreamIsCapturing answers CU_STREAM_CAPTURE_STATUS_ACTIVE (1) for
// `stream` from now on (0: for none).
void fake_set_capturing(uint64_t stream) { capturing_stream = stream; }

int cuStreamIsCapturing(void *stream, int *status) {
  *status = capturing_stream && (uintptr_t)stream == capturing_stream;
  return 0;
}

int fake_set_param_sizes(uint64_t function, int n, const int *sizes) {
  if (n > MAX_PARAMS)
    return -1;
  int i = 0;
  while (i < nfunctions && functions[i].function != function)
    i++;
  if (i == nfunctions) {
    if (nfunctions == MAX_FUNCTIONS)
      return -1;
    nfunctions++;
  }
  functions[i].function = function;
  functions[i].n = n;
  memcpy(functions[i].sizes, sizes, sizeof(int) * n);
  return 0;
}

void fake_fail(int launch_result, int encode_result) {
  fail_launch = launch_result;
  fail_encode = encode_result;
}

int fake_launches(void) { return launch_count; }
int fake_encodes(void) { return encode_count; }

// Launch `i` of the last LOG ones (0: the oldest kept).
int fake_launch(int i, uint64_t *info, unsigned char *bytes) {
  int first = launch_count > LOG ? launch_count - LOG : 0;
  if (i < 0 || first + i >= launch_count)
    return -1;
  const Launch *l = &launches[(first + i) % LOG];
  memcpy(info, l->info, sizeof l->info);
  memcpy(bytes, l->bytes, l->info[9]);
  return 0;
}

int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                   unsigned by, unsigned bz, unsigned shared, void *stream,
                   void **params, void **extra) {
  if (fail_launch) {
    int r = fail_launch;
    fail_launch = 0;
    return r;
  }
  int fn = 0;
  while (fn < nfunctions && functions[fn].function != (uint64_t)(uintptr_t)f)
    fn++;
  if (fn == nfunctions || extra)
    return 1; // CUDA_ERROR_INVALID_VALUE: the test did not describe it
  Launch *l = &launches[launch_count % LOG];
  uint64_t info[10] = {(uintptr_t)f,      gx, gy, gz, bx, by, bz, shared,
                       (uintptr_t)stream, 0};
  size_t at = 0;
  for (int i = 0; i < functions[fn].n; i++) {
    size_t n = (size_t)functions[fn].sizes[i];
    if (at + n > MAX_BYTES)
      return 1;
    memcpy(l->bytes + at, params[i], n);
    at += n;
  }
  info[9] = at;
  memcpy(l->info, info, sizeof info);
  launch_count++;
  return 0;
}

// Writes every argument into the descriptor's 128 bytes (120 of them), so
// that two descriptors are equal exactly when their arguments are.
int cuTensorMapEncodeTiled(void *map, int dtype, uint32_t rank, void *address,
                           const uint64_t *dims, const uint64_t *strides,
                           const uint32_t *box, const uint32_t *elem,
                           int interleave, int swizzle, int l2, int oob) {
  if (fail_encode) {
    int r = fail_encode;
    fail_encode = 0;
    return r;
  }
  if ((uintptr_t)map % 64 || rank != 4)
    return 1;
  unsigned char *p = map;
  memset(p, 0, 128);
  uint32_t small[6] = {(uint32_t)dtype,   rank,         (uint32_t)interleave,
                       (uint32_t)swizzle, (uint32_t)l2, (uint32_t)oob};
  uint64_t addr = (uintptr_t)address;
  memcpy(p, small, 24);
  memcpy(p + 24, &addr, 8);
  memcpy(p + 32, dims, 32);
  memcpy(p + 64, strides, 24);
  memcpy(p + 88, box, 16);
  memcpy(p + 104, elem, 16);
  encode_count++;
  return 0;
}

int cuGetErrorName(int error, const char **name) {
  static char buffer[64];
  snprintf(buffer, sizeof buffer, "CUDA_ERROR_FAKE_%d", error);
  *name = buffer;
  return 0;
}

int cuModuleLoadData(void **module, const void *image) {
  *module = (void *)(uintptr_t)(0x1000 * ++module_count);
  return 0;
}

int cuModuleGetFunction(void **function, void *module, const char *name) {
  *function = (void *)(uintptr_t)(0x10000000 + 0x100 * ++function_count);
  return 0;
}

// The dynamic shared memory each function was last opted into
// (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 8); 0: never.
static struct {
  void *function;
  int bytes;
} opt_ins[MAX_FUNCTIONS];
static int nopt_ins;

int cuFuncSetAttribute(void *function, int attribute, int value) {
  if (attribute != 8)
    return 0;
  int i = 0;
  while (i < nopt_ins && opt_ins[i].function != function)
    i++;
  if (i == nopt_ins && nopt_ins < MAX_FUNCTIONS)
    nopt_ins++;
  if (i < MAX_FUNCTIONS) {
    opt_ins[i].function = function;
    opt_ins[i].bytes = value;
  }
  return 0;
}

int fake_shared_opt_in(void *function) {
  for (int i = 0; i < nopt_ins; i++)
    if (opt_ins[i].function == function)
      return opt_ins[i].bytes;
  return 0;
}

/* A function's default limits: 48 KB of dynamic shared memory less 1 KB of
   static, as the attn kernels have. */
int cuFuncGetAttribute(int *value, int attribute, void *function) {
  *value = attribute == 8 ? 48 * 1024 - 1024 : 0;
  return 0;
}

int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t n,
                         void *stream) {
  return 0;
}
