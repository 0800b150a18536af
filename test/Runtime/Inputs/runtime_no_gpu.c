/* Exercises libattn_runtime.so's entry points with arguments that must fail
 * (or be no-ops) the same way with or without a GPU: nothing may crash or
 * abort, and every failure must be reported through attnRuntimeGetError,
 * naming the entry point. Without a usable driver every entry fails; with
 * one, the valid calls must succeed. runtime-no-gpu.test runs it. */
#include "attn/Runtime/AttnRuntime.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;
static int available = 0;

/* Checks that the last calls left an error naming `entry` (or none), then
 * clears it. */
static void expectError(const char *what, const char *entry, int wanted) {
  const char *error = attnRuntimeGetError();
  int ok = wanted ? error && strstr(error, entry) != NULL : error == NULL;
  printf("%s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) {
    printf("  expected %s, got: %s\n", wanted ? entry : "no error",
           error ? error : "(no error)");
    ++failures;
  }
  attnRuntimeClearError();
}

static void expectNull(const char *what, const void *p, int wanted) {
  int ok = wanted ? p == NULL : p != NULL;
  printf("%s %s\n", ok ? "ok" : "FAIL", what);
  failures += !ok;
}

int main(void) {
  available = attnRuntimeAvailable();
  printf("runtime available: %s\n", available ? "yes" : "no");
  /* Without a GPU it says why (no libcuda, or no device). */
  expectError("availability error", "attnRuntimeAvailable", !available);
  attnRuntimeClearError();
  expectNull("no error after clear", attnRuntimeGetError(), 1);

  void *stream = mgpuStreamCreate();
  expectNull("stream-create", stream, !available);
  expectError("stream-create error", "mgpuStreamCreate", !available);

  void *buffer = mgpuMemAlloc(256, stream, 0);
  expectNull("mem-alloc", buffer, !available);
  expectError("mem-alloc error", "mgpuMemAlloc", !available);
  mgpuMemset32(buffer, 0, 64, stream);
  expectError("memset error", "mgpuMemset32", !available);
  void *empty = mgpuMemAlloc(0, stream, 0);
  expectNull("mem-alloc of 0 bytes", empty, 1);
  expectError("mem-alloc of 0 bytes error", "mgpuMemAlloc", !available);

  /* The SM count: 1 and an error without a GPU, the device's with one. */
  int64_t sms = attnRuntimeMultiprocessorCount();
  printf("%s multiprocessor count\n",
         (available ? sms > 1 : sms == 1) ? "ok" : "FAIL");
  failures += !(available ? sms > 1 : sms == 1);
  expectError("multiprocessor count error", "attnRuntimeMultiprocessorCount",
              !available);

  /* Failing in both cases: a null function, a grid beyond CUDA's limits, PTX
   * that does not parse, a rank-7 tensor map. */
  mgpuLaunchKernel(NULL, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL, 0);
  expectError("launch of a null function", "mgpuLaunchKernel", 1);
  mgpuLaunchKernel(NULL, 1LL << 32, 1, 1, 32, 1, 1, 0, stream, NULL, NULL, 0);
  expectError("launch beyond the grid limits", "mgpuLaunchKernel", 1);
  /* A zero grid is a no-op, checked before the function. */
  mgpuLaunchKernel(NULL, 0, 1, 1, 32, 1, 1, 0, stream, NULL, NULL, 0);
  expectError("launch of a zero grid", "mgpuLaunchKernel", !available);
  /* Modules load on first use, not when a program's constructor registers
   * them (no CUDA there): bad PTX fails at the first function lookup. */
  static const char notPtx[] = "this is not PTX";
  void *module = mgpuModuleLoadJIT(notPtx, 2);
  expectNull("module-load registers the binary", module, 0);
  expectError("module-load makes no CUDA call", "mgpuModuleLoadJIT", 0);
  expectNull("get-function of bad PTX", mgpuModuleGetFunction(module, "kernel"),
             1);
  expectError("get-function of bad PTX error", "mgpuModuleGetFunction", 1);
  expectNull("get-function of a null module",
             mgpuModuleGetFunction(NULL, "kernel"), 1);
  expectError("get-function error", "mgpuModuleGetFunction", 1);
  mgpuModuleUnload(module);
  expectError("unload of a module never used", "mgpuModuleUnload", 0);
  int64_t descriptor[3 + 2 * 7] = {0};
  int64_t box[7] = {1, 1, 1, 1, 1, 1, 1};
  expectNull("tensor map of rank 7",
             mgpuTensorMapEncodeTiledMemref(7, descriptor, 9, 0, 0, 0, 0, box),
             1);
  expectError("tensor map error", "mgpuTensorMapEncodeTiledMemref", 1);

  /* Only the first error is kept. */
  mgpuLaunchKernel(NULL, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL, 0);
  mgpuModuleGetFunction(NULL, "kernel");
  expectError("first error kept", "mgpuLaunchKernel", 1);

  /* The deleter frees on the legacy stream, unordered with `stream`. */
  mgpuStreamSynchronize(stream);
  expectError("synchronize", "mgpuStreamSynchronize", !available);
  int64_t sizes[1] = {64}, strides[1] = {1};
  void *tensor =
      attnRuntimeWrapDLPack(buffer, buffer, 0, 1, sizes, strides, 2, 32, 0);
  expectNull("dlpack-wrap", tensor, !available);
  expectError("dlpack-wrap error", "attnRuntimeWrapDLPack", !available);
  if (tensor) {
    /* DLManagedTensor: the deleter follows DLTensor (48 bytes) and
     * manager_ctx; it frees the buffer. */
    void (*deleter)(void *);
    memcpy(&deleter, (char *)tensor + 56, sizeof(deleter));
    deleter(tensor);
    buffer = NULL;
    expectError("dlpack deleter", "DLPack", 0);
  }

  mgpuMemFree(buffer, stream);
  mgpuMemFree(NULL, stream);
  mgpuStreamSynchronize(stream);
  mgpuStreamDestroy(stream);
  expectError("free/synchronize/destroy", "mgpuStream", !available);

  printf("%s\n", failures ? "FAILED" : "PASSED");
  return failures != 0;
}
