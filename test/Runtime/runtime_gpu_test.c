/* GPU self-test of libattn_runtime.so (not run by lit: CI has no GPU). Build
 * target attn_runtime_gpu_test; run build/bin/attn_runtime_gpu_test on a GPU
 * machine. It JIT-loads a hand-written PTX kernel, launches it on a caller
 * stream (attnRuntimeSetStream) and on runtime-owned streams, copies, sets and
 * frees memory, builds TMA descriptors (sm_90+) and exports a buffer through
 * DLPack. Prints one PASS/FAIL line per check; exits non-zero on a failure,
 * 0 with SKIP when there is no GPU. */
#include "attn/Runtime/AttnRuntime.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    int ok_ = (cond);                                                          \
    const char *err_ = attnRuntimeGetError();                                  \
    printf("%s: %s%s%s\n", ok_ ? "PASS" : "FAIL", what,                        \
           !ok_ && err_ ? ": " : "", !ok_ && err_ ? err_ : "");                \
    failures += !ok_;                                                          \
    attnRuntimeClearError();                                                   \
  } while (0)

/* y[i] += 1 for i < n; one thread per element. */
static const char kPtx[] =
    ".version 8.0\n"
    ".target sm_80\n"
    ".address_size 64\n"
    ".visible .entry add_one(.param .u64 p_data, .param .u32 p_n)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<6>;\n"
    "  .reg .f32 %f<3>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  ld.param.u64 %rd1, [p_data];\n"
    "  ld.param.u32 %r2, [p_n];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "  setp.ge.s32 %p1, %r1, %r2;\n"
    "  @%p1 bra DONE;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mul.wide.s32 %rd3, %r1, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  ld.global.f32 %f1, [%rd4];\n"
    "  add.f32 %f2, %f1, 0f3F800000;\n"
    "  st.global.f32 [%rd4], %f2;\n"
    "DONE:\n"
    "  ret;\n"
    "}\n"
    /* add_one with 1 KiB of static shared memory, as the attn kernels have:
       its default dynamic limit is 47 KiB, so a launch of 48 KiB must opt
       in (the runtime asked for 48 KiB past 48 KiB only, and such a launch
       failed with CUDA_ERROR_INVALID_VALUE). */
    ".shared .align 4 .b8 pad[1024];\n"
    ".visible .entry add_one_static(.param .u64 p_data, .param .u32 p_n)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<7>;\n"
    "  .reg .f32 %f<3>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  ld.param.u64 %rd1, [p_data];\n"
    "  ld.param.u32 %r2, [p_n];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "  mov.u32 %r6, pad;\n"
    "  st.shared.u32 [%r6], %r1;\n"
    "  setp.ge.s32 %p1, %r1, %r2;\n"
    "  @%p1 bra DONE_STATIC;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mul.wide.s32 %rd3, %r1, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  ld.global.f32 %f1, [%rd4];\n"
    "  add.f32 %f2, %f1, 0f3F800000;\n"
    "  st.global.f32 [%rd4], %f2;\n"
    "DONE_STATIC:\n"
    "  ret;\n"
    "}\n";

enum { N = 1000 };
static float host[N];

/* Waits for `stream` through an event: mgpuStreamSynchronize is a no-op on a
 * caller stream set without `synchronize`. */
static void waitFor(void *stream) {
  void *event = mgpuEventCreate();
  mgpuEventRecord(event, stream);
  mgpuEventSynchronize(event);
  mgpuEventDestroy(event);
}

static int allEqual(const float *values, float base, float step) {
  for (int i = 0; i < N; ++i)
    if (values[i] != base + step * (float)i)
      return 0;
  return 1;
}

static void launch(void *fn, void *buffer, long long grid, int smem,
                   void *stream) {
  int n = N;
  void *params[] = {&buffer, &n};
  mgpuLaunchKernel(fn, grid, 1, 1, 256, 1, 1, smem, stream, params, NULL, 2);
}

static void testKernels(void *stream) {
  void *module = mgpuModuleLoadJIT(kPtx, 3);
  CHECK(module != NULL, "mgpuModuleLoadJIT");
  CHECK(mgpuModuleLoadJIT(kPtx, 3) == module, "module cache hit");
  mgpuModuleUnload(module); /* one of the two references */
  void *fn = mgpuModuleGetFunction(module, "add_one");
  CHECK(fn != NULL, "mgpuModuleGetFunction");
  CHECK(mgpuModuleGetFunction(module, "add_one") == fn, "function cache hit");

  for (int i = 0; i < N; ++i)
    host[i] = (float)i;
  void *buffer = mgpuMemAlloc(sizeof(host), stream, 0);
  CHECK(buffer != NULL, "mgpuMemAlloc");
  mgpuMemcpy(buffer, host, sizeof(host), stream);
  launch(fn, buffer, (N + 255) / 256, 0, stream);
  launch(fn, buffer, 0, 0, stream); /* zero grid: a no-op */
  CHECK(attnRuntimeGetError() == NULL, "zero-grid launch is not an error");
  launch(fn, buffer, 1LL << 32, 0, stream);
  CHECK(attnRuntimeGetError() != NULL, "grid beyond CUDA's limits rejected");
  /* More than 48 KiB of dynamic shared memory: the attribute is set. */
  launch(fn, buffer, (N + 255) / 256, 64 * 1024, stream);
  /* Exactly 48 KiB beside 1 KiB of static: past the function's own limit. */
  void *withStatic = mgpuModuleGetFunction(module, "add_one_static");
  CHECK(withStatic != NULL, "mgpuModuleGetFunction(add_one_static)");
  launch(withStatic, buffer, (N + 255) / 256, 48 * 1024, stream);
  CHECK(attnRuntimeGetError() == NULL,
        "48 KiB of dynamic shared memory beside 1 KiB of static");
  /* A cluster launch (sm_90+): clusters of 2 over the 4 blocks. */
  int n = N;
  void *params[] = {&buffer, &n};
  mgpuLaunchClusterKernel(fn, 2, 1, 1, 4, 1, 1, 256, 1, 1, 0, stream, params,
                          NULL, 2);
  memset(host, 0, sizeof(host));
  mgpuMemcpy(host, buffer, sizeof(host), stream);
  waitFor(stream);
  CHECK(allEqual(host, 4.0f, 1.0f), "four launches added 4 (zero grid none)");

  mgpuMemset32(buffer, 0x3f800000 /* 1.0f */, N, stream);
  mgpuMemcpy(host, buffer, sizeof(host), stream);
  waitFor(stream);
  CHECK(allEqual(host, 1.0f, 0.0f), "mgpuMemset32");
  mgpuMemset16(buffer, 0x3f80, 2 * N, stream); /* bf16 1.0 pairs */
  mgpuMemcpy(host, buffer, sizeof(host), stream);
  waitFor(stream);
  unsigned bits = 0;
  memcpy(&bits, &host[N - 1], sizeof(bits));
  CHECK(bits == 0x3f803f80u && host[0] == host[N - 1], "mgpuMemset16");
  mgpuMemFree(buffer, stream);
  mgpuModuleUnload(module);
  CHECK(attnRuntimeGetError() == NULL, "free and unload");
}

/* A 128x64 bf16 memref: {allocated, aligned, offset, sizes[2], strides[2]}. */
struct Memref2D {
  void *allocated, *aligned;
  long long offset, sizes[2], strides[2];
};

static void testTensorMaps(void *stream) {
  void *buffer = mgpuMemAlloc(128 * 64 * 2, stream, 0);
  struct Memref2D m = {buffer, buffer, 0, {128, 64}, {64, 1}};
  int64_t box[2] = {64, 64};
  /* data type 9: BFLOAT16; swizzle 3: 128B (64 bf16 = 128 bytes inner box). */
  void *map = mgpuTensorMapEncodeTiledMemref(2, &m, 9, 0, 3, 0, 0, box);
  CHECK(map != NULL, "mgpuTensorMapEncodeTiledMemref");
  CHECK(((unsigned long long)map & 63) == 0, "tensor map 64-byte aligned");
  CHECK(mgpuTensorMapEncodeTiledMemref(2, &m, 9, 0, 3, 0, 0, box) == map,
        "tensor map cache hit");
  int64_t otherBox[2] = {32, 64};
  void *other = mgpuTensorMapEncodeTiledMemref(2, &m, 9, 0, 3, 0, 0, otherBox);
  CHECK(other != NULL && other != map, "another box, another tensor map");
  m.offset = 1;
  CHECK(mgpuTensorMapEncodeTiledMemref(2, &m, 9, 0, 3, 0, 0, box) == NULL &&
            attnRuntimeGetError() != NULL,
        "misaligned base rejected");
  m.offset = 0;
  m.sizes[0] = 0;
  CHECK(mgpuTensorMapEncodeTiledMemref(2, &m, 9, 0, 3, 0, 0, box) == NULL &&
            attnRuntimeGetError() == NULL,
        "zero-size tensor: no map, no error");
  waitFor(stream);
  mgpuMemFree(buffer, stream);
}

static void testDLPack(void *stream) {
  void *buffer = mgpuMemAlloc(sizeof(host), stream, 0);
  int64_t sizes[2] = {10, 100}, strides[2] = {100, 1};
  void *tensor =
      attnRuntimeWrapDLPack(buffer, buffer, 0, 2, sizes, strides, 2, 32, 0);
  CHECK(tensor != NULL, "attnRuntimeWrapDLPack");
  void *data;
  void (*deleter)(void *);
  memcpy(&data, tensor, sizeof(data));
  memcpy(&deleter, (char *)tensor + 56, sizeof(deleter));
  CHECK(data == buffer, "DLPack data pointer");
  deleter(tensor); /* frees the buffer on the caller stream */
  CHECK(attnRuntimeGetError() == NULL, "DLPack deleter");
}

/* The caller's stream: a real CUstream made through libcuda directly, the
 * way PyTorch's would come in. */
static void *createCallerStream(void) {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  int (*create)(void **, unsigned) =
      lib ? (int (*)(void **, unsigned))dlsym(lib, "cuStreamCreate") : NULL;
  void *stream = NULL;
  if (!create || create(&stream, 1 /* CU_STREAM_NON_BLOCKING */) != 0)
    return NULL;
  return stream;
}

int main(void) {
  if (!attnRuntimeAvailable()) {
    printf("SKIP: no GPU (%s)\n",
           attnRuntimeGetError() ? attnRuntimeGetError() : "no device");
    return 0;
  }
  /* The context: made current by the first call (none is yet). */
  void *ownStream = mgpuStreamCreate();
  CHECK(ownStream != NULL, "mgpuStreamCreate (runtime-owned)");
  void *stream = createCallerStream();
  CHECK(stream != NULL, "caller stream from libcuda");
  attnRuntimeSetStream(stream, 0);
  CHECK(attnRuntimeGetStream() == stream, "attnRuntimeGetStream");
  CHECK(mgpuStreamCreate() == stream, "mgpuStreamCreate returns the caller's");
  /* 1 is the answer on an error; every GPU this runs on has more SMs. The
   * second call is the cached one. */
  int64_t sms = attnRuntimeMultiprocessorCount();
  CHECK(sms > 1 && attnRuntimeMultiprocessorCount() == sms,
        "attnRuntimeMultiprocessorCount (cuCtxGetDevice, cached)");
  testKernels(stream);
  testTensorMaps(stream);
  testDLPack(stream);
  mgpuStreamSynchronize(stream); /* a no-op: synchronize was not asked */
  mgpuStreamDestroy(stream);     /* leaves the caller's stream alone */
  waitFor(stream);
  CHECK(attnRuntimeGetError() == NULL, "caller stream still usable");

  /* Runtime-owned streams: synchronous, and reused after destruction. */
  attnRuntimeSetStream(NULL, 0);
  testKernels(ownStream);
  mgpuStreamSynchronize(ownStream);
  mgpuStreamDestroy(ownStream);
  void *again = mgpuStreamCreate();
  CHECK(again == ownStream, "destroyed runtime stream reused");
  mgpuStreamSynchronize(again);
  mgpuStreamDestroy(again);
  CHECK(attnRuntimeGetError() == NULL, "no stray errors");

  printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures != 0;
}
