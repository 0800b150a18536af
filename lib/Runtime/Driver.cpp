//===- Driver.cpp - libcuda loaded at run time, errors, context -----------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "Driver.h"

#include "attn/Runtime/AttnRuntime.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <mutex>
#include <string>

namespace attn::runtime {
namespace {

// Thread-local state, trivially destructible: the generated programs' global
// destructors may call in after this thread's C++ thread_locals are gone.
thread_local char firstError[2048];
thread_local bool hasError = false;
thread_local CUstream tlsStream = nullptr;
thread_local bool tlsSynchronize = false;

bool verbose() {
  static const bool isVerbose = [] {
    const char *v = std::getenv("ATTN_RUNTIME_VERBOSE");
    return v && *v && std::string(v) != "0";
  }();
  return isVerbose;
}

void recordErrorV(const char *format, va_list args) {
  char buffer[sizeof(firstError)];
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  if (verbose())
    std::fprintf(stderr, "attn runtime: %s\n", buffer);
  if (!hasError) {
    std::memcpy(firstError, buffer, sizeof(buffer));
    hasError = true;
  }
}

/// The loaded driver, or why it did not load. Never destroyed: the generated
/// programs' global destructors (mgpuModuleUnload) may run after ours.
struct Loader {
  Driver driver;
  bool loaded = false;
  std::string error;
};

/// Resolves one driver function by the symbol cuda.h declares for it: the
/// name after macro expansion (cuMemFree -> cuMemFree_v2), so the pointer
/// always has the signature `decltype(&name)` promises. cuGetProcAddress is
/// not used on purpose: it maps a base name to the newest symbol of the
/// requested version, and that can disagree with the header's declaration
/// (CUDA 13's cuda.h declares the one-argument cuCtxGetDevice, while
/// cuGetProcAddress("cuCtxGetDevice", 13000) returns the two-argument
/// cuCtxGetDevice_v2; calling it through the header's type crashed in the
/// driver).
bool resolve(void *lib, const char *symbol, void **fn) {
  *fn = dlsym(lib, symbol);
  return *fn != nullptr;
}

void load(Loader &l) {
  // RTLD_LOCAL: the driver's symbols stay out of the global namespace, so they
  // cannot interpose on whatever else the process loaded.
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    l.error = std::string("libcuda.so.1 not found: ") +
              (why ? why : "dlopen failed") + " (no NVIDIA driver?)";
    return;
  }
  using DriverGetVersion = decltype(&::cuDriverGetVersion);
  auto getVersion =
      reinterpret_cast<DriverGetVersion>(dlsym(lib, "cuDriverGetVersion"));
  int driverVersion = 0;
  if (!getVersion || getVersion(&driverVersion) != CUDA_SUCCESS) {
    l.error = "libcuda.so.1 is too old: no cuDriverGetVersion";
    return;
  }
  // ATTN_SYMBOL(name) expands cuda.h's macro before stringizing.
#define ATTN_SYMBOL_STRING(symbol) #symbol
#define ATTN_SYMBOL(name) ATTN_SYMBOL_STRING(name)
#define ATTN_RESOLVE_CUDA_FUNCTION(name)                                       \
  if (!resolve(lib, ATTN_SYMBOL(name),                                         \
               reinterpret_cast<void **>(&l.driver.name))) {                   \
    l.error = "libcuda.so.1 (driver version " +                                \
              std::to_string(driverVersion) + ") lacks " ATTN_SYMBOL(name);    \
    return;                                                                    \
  }
  ATTN_CUDA_FUNCTIONS(ATTN_RESOLVE_CUDA_FUNCTION)
#undef ATTN_RESOLVE_CUDA_FUNCTION
#undef ATTN_SYMBOL
#undef ATTN_SYMBOL_STRING
  CUresult r = l.driver.cuInit(0);
  if (r != CUDA_SUCCESS) {
    const char *name = nullptr;
    l.driver.cuGetErrorName(r, &name);
    l.error = std::string("cuInit failed: ") + (name ? name : "?") +
              " (no usable CUDA device?)";
    return;
  }
  l.loaded = true;
}

Loader &loader() {
  static Loader *l = [] {
    auto *created = new Loader;
    load(*created);
    return created;
  }();
  return *l;
}

std::atomic<int> defaultDevice{0};
constexpr int kMaxDevices = 64;
std::mutex contextMutex;
CUcontext primaryContexts[kMaxDevices] = {};

} // namespace

void recordError(const char *format, ...) {
  va_list args;
  va_start(args, format);
  recordErrorV(format, args);
  va_end(args);
}

bool check(CUresult result, const char *call, const char *context, ...) {
  if (result == CUDA_SUCCESS)
    return true;
  char where[1024];
  va_list args;
  va_start(args, context);
  std::vsnprintf(where, sizeof(where), context, args);
  va_end(args);
  const char *name = nullptr, *description = nullptr;
  if (const Driver *d = driverIfLoaded()) {
    d->cuGetErrorName(result, &name);
    d->cuGetErrorString(result, &description);
  }
  recordError("%s: %s failed: %s: %s", where, call,
              name ? name : "CUDA_ERROR_?",
              description ? description : "unknown error");
  return false;
}

const Driver *driverIfLoaded() {
  Loader &l = loader();
  return l.loaded ? &l.driver : nullptr;
}

CUcontext primaryContext(const Driver &d, int device, const char *entry) {
  if (device < 0 || device >= kMaxDevices) {
    recordError("%s: device %d out of range", entry, device);
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(contextMutex);
  if (primaryContexts[device])
    return primaryContexts[device];
  CUdevice dev;
  CUcontext ctx = nullptr;
  if (!check(d.cuDeviceGet(&dev, device), "cuDeviceGet", "%s: device %d", entry,
             device) ||
      !check(d.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain",
             "%s: device %d", entry, device))
    return nullptr;
  // Retained for the life of the process, as the CUDA runtime does: releasing
  // it would destroy modules and memory the compiled programs still hold.
  primaryContexts[device] = ctx;
  return ctx;
}

void setDefaultDevice(int device) { defaultDevice = device; }

const Driver *enter(const char *entry) {
  Loader &l = loader();
  if (!l.loaded) {
    recordError("%s: %s", entry, l.error.c_str());
    return nullptr;
  }
  const Driver &d = l.driver;
  // Cheap when a context is already current (PyTorch's, or ours from an
  // earlier call on this thread): one thread-local read in the driver.
  CUcontext current = nullptr;
  if (d.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current)
    return &d;
  CUcontext ctx = primaryContext(d, defaultDevice.load(), entry);
  if (!ctx || !check(d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", "%s", entry))
    return nullptr;
  return &d;
}

CUstream callerStream() { return tlsStream; }
bool callerSynchronizes() { return tlsSynchronize; }

} // namespace attn::runtime

using namespace attn::runtime;

extern "C" {

ATTN_RUNTIME_EXPORT void attnRuntimeSetStream(void *cuStream, int synchronize) {
  tlsStream = static_cast<CUstream>(cuStream);
  tlsSynchronize = synchronize != 0;
}

ATTN_RUNTIME_EXPORT void *attnRuntimeGetStream(void) { return tlsStream; }

ATTN_RUNTIME_EXPORT const char *attnRuntimeGetError(void) {
  return hasError ? firstError : nullptr;
}

ATTN_RUNTIME_EXPORT void attnRuntimeClearError(void) { hasError = false; }

ATTN_RUNTIME_EXPORT int attnRuntimeAvailable(void) {
  Loader &l = loader();
  if (!l.loaded) {
    recordError("attnRuntimeAvailable: %s", l.error.c_str());
    return 0;
  }
  int count = 0;
  if (!check(l.driver.cuDeviceGetCount(&count), "cuDeviceGetCount",
             "attnRuntimeAvailable"))
    return 0;
  if (count <= 0) {
    recordError("attnRuntimeAvailable: the driver sees no CUDA device");
    return 0;
  }
  return 1;
}

ATTN_RUNTIME_EXPORT int64_t attnRuntimeMultiprocessorCount(void) {
  // Asked once per launch of a paged program: cached per device.
  static std::atomic<int> counts[64];
  const Driver *d = enter("attnRuntimeMultiprocessorCount");
  CUdevice device = 0;
  if (!d || !check(d->cuCtxGetDevice(&device), "cuCtxGetDevice",
                   "attnRuntimeMultiprocessorCount"))
    return 1;
  bool cached = device >= 0 && device < 64;
  if (cached)
    if (int count = counts[device].load(std::memory_order_relaxed))
      return count;
  int count = 0;
  if (!check(d->cuDeviceGetAttribute(
                 &count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device),
             "cuDeviceGetAttribute", "attnRuntimeMultiprocessorCount") ||
      count < 1)
    return 1;
  if (cached)
    counts[device].store(count, std::memory_order_relaxed);
  return count;
}

ATTN_RUNTIME_EXPORT void mgpuSetDefaultDevice(int32_t device) {
  setDefaultDevice(device);
  const Driver *d = driverIfLoaded();
  if (!d) {
    enter("mgpuSetDefaultDevice"); // records why
    return;
  }
  // Switch this thread now, as the CUDA runtime's cudaSetDevice does.
  if (CUcontext ctx = primaryContext(*d, device, "mgpuSetDefaultDevice"))
    check(d->cuCtxSetCurrent(ctx), "cuCtxSetCurrent",
          "mgpuSetDefaultDevice(%d)", device);
}

} // extern "C"
