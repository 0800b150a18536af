//===- AttnRuntime.cpp - the mgpu* ABI on the CUDA driver API -------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Modules, launches, streams, events and memory of the mgpu* ABI that MLIR's
// gpu-to-llvm lowering calls, and the DLPack export. Tensor maps are in
// TensorMap.cpp; loading the driver, errors and the context in Driver.cpp.
//
// State shared between threads lives in never-destroyed objects behind
// mutexes: the generated programs' global destructors (mgpuModuleUnload) may
// run after this library's own static destructors.
//
//===----------------------------------------------------------------------===//

#include "Driver.h"

#include "attn/Runtime/AttnRuntime.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

using namespace attn::runtime;

namespace {

//===----------------------------------------------------------------------===//
// Modules and functions
//===----------------------------------------------------------------------===//

/// What mgpuModuleLoad* return: a module's binary, keyed by its address,
/// loaded into the current context on first use (mgpuModuleGetFunction).
/// The generated code loads its modules from a global constructor, when the
/// program is loaded: initializing CUDA there would run before tools that
/// must see cuInit first (compute-sanitizer disables itself then) and JIT
/// every kernel of a library whether it is called or not. The same library
/// loaded twice shares one module.
struct LazyModule {
  const void *data;
  int optLevel;
  bool jit;
  int references;
  CUcontext context = nullptr;
  CUmodule module = nullptr; // null until first used
};

struct FunctionKey {
  CUmodule module;
  std::string name;
  bool operator==(const FunctionKey &other) const {
    return module == other.module && name == other.name;
  }
};

struct FunctionKeyHash {
  size_t operator()(const FunctionKey &key) const {
    return std::hash<std::string>()(key.name) ^
           (std::hash<const void *>()(key.module) * 31);
  }
};

/// What has been set on a function, so each attribute is set once.
struct FunctionAttributes {
  /// The function's CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, asked
  /// on first use (-1 until then): by default 48 KiB less the function's
  /// static shared memory, not 48 KiB.
  int maxDynamicSharedBytes = -1;
  bool nonPortableClusters = false;
};

struct ModuleState {
  std::mutex mutex;
  std::vector<std::unique_ptr<LazyModule>> modules; // one per kernel binary
  // mgpuModuleGetFunction is called before every launch.
  std::unordered_map<FunctionKey, CUfunction, FunctionKeyHash> functions;
  std::unordered_map<CUfunction, FunctionAttributes> attributes;
};

ModuleState &moduleState() {
  static ModuleState *state = new ModuleState;
  return *state;
}

CUcontext currentContext(const Driver &d) {
  CUcontext ctx = nullptr;
  d.cuCtxGetCurrent(&ctx);
  return ctx;
}

/// The module `handle` (an mgpuModuleLoad* result), or null.
LazyModule *findModule(ModuleState &s, const void *handle) {
  for (std::unique_ptr<LazyModule> &m : s.modules)
    if (m.get() == handle)
      return m.get();
  return nullptr;
}

/// Loads PTX through the JIT with a log buffer, so a failure says why.
CUmodule loadPtx(const Driver &d, const void *ptx, int optLevel) {
  char log[8192] = {0};
  unsigned level = optLevel < 0 ? 0 : optLevel > 4 ? 4 : optLevel;
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {reinterpret_cast<void *>(uintptr_t(level)), log,
                    reinterpret_cast<void *>(uintptr_t(sizeof(log) - 1))};
  CUmodule module = nullptr;
  CUresult r = d.cuModuleLoadDataEx(&module, ptx, 3, options, values);
  if (r != CUDA_SUCCESS) {
    check(r, "cuModuleLoadDataEx", "mgpuModuleLoadJIT(O%u): JIT log: %s", level,
          log[0] ? log : "(empty)");
    return nullptr;
  }
  return module;
}

void *loadModule(const char *entry, const void *data, int optLevel, bool jit) {
  if (!data) {
    recordError("%s: null module data", entry);
    return nullptr;
  }
  ModuleState &s = moduleState();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (std::unique_ptr<LazyModule> &m : s.modules)
    if (m->data == data) {
      ++m->references;
      return m.get();
    }
  s.modules.push_back(
      std::make_unique<LazyModule>(LazyModule{data, optLevel, jit, 1}));
  return s.modules.back().get();
}

/// Loads `m` into the current context if it is not loaded yet; its module.
CUmodule ensureLoaded(const Driver &d, LazyModule &m) {
  if (m.module)
    return m.module;
  CUmodule module = nullptr;
  if (m.jit)
    module = loadPtx(d, m.data, m.optLevel);
  else if (!check(d.cuModuleLoadData(&module, m.data), "cuModuleLoadData",
                  "mgpuModuleGetFunction"))
    module = nullptr;
  if (module) {
    m.module = module;
    m.context = currentContext(d);
  }
  return module;
}

void unloadModule(const Driver *d, ModuleState &s, size_t index) {
  CUmodule module = s.modules[index]->module;
  CUcontext context = s.modules[index]->context;
  s.modules.erase(s.modules.begin() + index);
  if (!module || !d)
    return; // never used: nothing was loaded
  for (auto it = s.functions.begin(); it != s.functions.end();) {
    if (it->first.module == module) {
      s.attributes.erase(it->second);
      it = s.functions.erase(it);
    } else {
      ++it;
    }
  }
  // A module is unloaded from its own context; global destructors run on
  // whatever thread exits, with any context (or none) current.
  CUresult r = d->cuCtxPushCurrent(context);
  if (r == CUDA_SUCCESS) {
    r = d->cuModuleUnload(module);
    CUcontext popped;
    d->cuCtxPopCurrent(&popped);
  }
  // At process exit the driver may be shut down before the generated
  // programs' global destructors run: nothing is left to free then.
  if (r != CUDA_ERROR_DEINITIALIZED)
    check(r, "cuModuleUnload", "mgpuModuleUnload(%p)",
          static_cast<void *>(module));
}

//===----------------------------------------------------------------------===//
// Launches
//===----------------------------------------------------------------------===//

/// CUDA's grid limits. A dimension beyond them is an error rather than a
/// launch the driver would reject with a less helpful message; a zero
/// dimension (a zero-length tensor) means there is nothing to do.
enum class GridCheck { Launch, Empty, Invalid };

GridCheck checkDims(const char *entry, const int64_t grid[3],
                    const int64_t block[3]) {
  const int64_t gridLimit[3] = {INT32_MAX, 65535, 65535};
  const int64_t blockLimit[3] = {1024, 1024, 64};
  bool empty = false;
  for (int i = 0; i < 3; ++i) {
    if (grid[i] < 0 || grid[i] > gridLimit[i] || block[i] <= 0 ||
        block[i] > blockLimit[i]) {
      recordError("%s: grid (%lld, %lld, %lld) x block (%lld, %lld, %lld) "
                  "exceeds CUDA's limits",
                  entry, (long long)grid[0], (long long)grid[1],
                  (long long)grid[2], (long long)block[0], (long long)block[1],
                  (long long)block[2]);
      return GridCheck::Invalid;
    }
    empty |= grid[i] == 0;
  }
  return empty ? GridCheck::Empty : GridCheck::Launch;
}

/// Raises the function's dynamic shared memory limit when a launch needs more
/// than the function allows by default (48 KiB less its static shared
/// memory, which the attn kernels have: a kernel of exactly 48 KiB dynamic
/// failed to launch when this compared against 48 KiB); once per function
/// and size.
bool prepareFunction(const Driver &d, CUfunction fn, int32_t smem,
                     int64_t clusterSize, const char *entry) {
  if (smem < 0) {
    recordError("%s: negative shared memory size %d", entry, smem);
    return false;
  }
  if (smem == 0 && clusterSize <= 8)
    return true;
  ModuleState &s = moduleState();
  std::lock_guard<std::mutex> lock(s.mutex);
  FunctionAttributes &attrs = s.attributes[fn];
  if (attrs.maxDynamicSharedBytes < 0 &&
      !check(d.cuFuncGetAttribute(
                 &attrs.maxDynamicSharedBytes,
                 CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, fn),
             "cuFuncGetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", "%s",
             entry)) {
    attrs.maxDynamicSharedBytes = -1;
    return false;
  }
  if (smem > attrs.maxDynamicSharedBytes) {
    if (!check(d.cuFuncSetAttribute(
                   fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
               "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)",
               "%s: %d bytes", entry, smem))
      return false;
    attrs.maxDynamicSharedBytes = smem;
  }
  // Clusters of more than 8 blocks (up to 16 on Hopper) are "non-portable".
  if (clusterSize > 8 && !attrs.nonPortableClusters) {
    if (!check(d.cuFuncSetAttribute(
                   fn, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1),
               "cuFuncSetAttribute(NON_PORTABLE_CLUSTER_SIZE_ALLOWED)",
               "%s: cluster of %lld blocks", entry, (long long)clusterSize))
      return false;
    attrs.nonPortableClusters = true;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Streams
//===----------------------------------------------------------------------===//

/// Streams the runtime created. Destroyed ones are kept idle (a few per
/// context) and handed out again: the generated code creates and destroys a
/// stream on every call when no caller stream is set, and it synchronizes
/// each before destroying it, so a reused stream has no pending work.
struct StreamState {
  std::mutex mutex;
  std::unordered_map<CUstream, CUcontext> owned; // and each one's context
  std::vector<std::pair<CUcontext, CUstream>> idle;
};
constexpr size_t kMaxIdleStreams = 8;

StreamState &streamState() {
  static StreamState *state = new StreamState;
  return *state;
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

/// Managed (host-shared) allocations, which cuMemFreeAsync does not take.
/// Rare: the count keeps the common free off the mutex.
struct ManagedState {
  std::mutex mutex;
  std::unordered_set<CUdeviceptr> pointers;
  std::atomic<size_t> count{0};
};

ManagedState &managedState() {
  static ManagedState *state = new ManagedState;
  return *state;
}

bool isManaged(CUdeviceptr ptr, bool forget) {
  ManagedState &m = managedState();
  if (m.count.load(std::memory_order_relaxed) == 0)
    return false;
  std::lock_guard<std::mutex> lock(m.mutex);
  auto it = m.pointers.find(ptr);
  if (it == m.pointers.end())
    return false;
  if (forget) {
    m.pointers.erase(it);
    --m.count;
  }
  return true;
}

void freeDevice(const Driver &d, void *ptr, CUstream stream,
                const char *entry) {
  if (!ptr)
    return;
  auto dptr = reinterpret_cast<CUdeviceptr>(ptr);
  if (isManaged(dptr, /*forget=*/true))
    check(d.cuMemFree(dptr), "cuMemFree", "%s(%p)", entry, ptr);
  else
    check(d.cuMemFreeAsync(dptr, stream), "cuMemFreeAsync", "%s(%p)", entry,
          ptr);
}

//===----------------------------------------------------------------------===//
// DLPack (v0.8), defined from the public spec
//===----------------------------------------------------------------------===//

struct DLDevice {
  int32_t device_type; // kDLCUDA = 2, kDLCUDAManaged = 13
  int32_t device_id;
};
struct DLDataType {
  uint8_t code; // 0 int, 1 uint, 2 float, 4 bfloat
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(DLManagedTensor *self);
};
constexpr int32_t kDLCUDA = 2;
constexpr int32_t kDLCUDAManaged = 13;

/// Owns the buffer and the shape/strides arrays of one exported tensor.
struct DLPackHolder {
  DLManagedTensor tensor;
  std::vector<int64_t> shape, strides;
  void *allocated;
  CUstream stream;
  CUcontext context;
};

void deleteDLPack(DLManagedTensor *tensor) {
  auto *holder = static_cast<DLPackHolder *>(tensor->manager_ctx);
  // The deleter may run on any thread (PyTorch's autograd threads, say):
  // free in the context the buffer came from, leaving the caller's as it was.
  const Driver *d = driverIfLoaded();
  if (d && holder->allocated &&
      check(d->cuCtxPushCurrent(holder->context), "cuCtxPushCurrent",
            "DLPack deleter")) {
    freeDevice(*d, holder->allocated, holder->stream, "DLPack deleter");
    CUcontext popped;
    d->cuCtxPopCurrent(&popped);
  }
  delete holder;
}

} // namespace

//===----------------------------------------------------------------------===//
// The C ABI
//===----------------------------------------------------------------------===//

extern "C" {

ATTN_RUNTIME_EXPORT void *mgpuModuleLoad(const void *data, int64_t /*size*/) {
  // The size is not needed: cubins and fatbins carry their own.
  return loadModule("mgpuModuleLoad", data, 0, /*jit=*/false);
}

ATTN_RUNTIME_EXPORT void *mgpuModuleLoadJIT(const void *data, int optLevel) {
  return loadModule("mgpuModuleLoadJIT", data, optLevel, /*jit=*/true);
}

ATTN_RUNTIME_EXPORT void mgpuModuleUnload(void *module) {
  if (!module)
    return; // the load failed
  const Driver *d = driverIfLoaded();
  ModuleState &s = moduleState();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (size_t i = 0; i < s.modules.size(); ++i)
    if (s.modules[i].get() == module) {
      if (--s.modules[i]->references == 0)
        unloadModule(d, s, i);
      return;
    }
  recordError("mgpuModuleUnload: %p is not a module the runtime loaded",
              module);
}

ATTN_RUNTIME_EXPORT void *mgpuModuleGetFunction(void *module,
                                                const char *name) {
  const Driver *d = enter("mgpuModuleGetFunction");
  if (!d)
    return nullptr;
  if (!module || !name) {
    recordError("mgpuModuleGetFunction: null %s (did the module load?)",
                module ? "name" : "module");
    return nullptr;
  }
  ModuleState &s = moduleState();
  std::lock_guard<std::mutex> lock(s.mutex);
  LazyModule *lazy = findModule(s, module);
  if (!lazy) {
    recordError("mgpuModuleGetFunction: %p is not a module the runtime "
                "loaded",
                module);
    return nullptr;
  }
  CUmodule loaded = ensureLoaded(*d, *lazy);
  if (!loaded)
    return nullptr;
  FunctionKey key{loaded, name};
  auto it = s.functions.find(key);
  if (it != s.functions.end())
    return it->second;
  CUfunction fn = nullptr;
  if (!check(d->cuModuleGetFunction(&fn, key.module, name),
             "cuModuleGetFunction", "mgpuModuleGetFunction(%s)", name))
    return nullptr;
  s.functions.emplace(std::move(key), fn);
  return fn;
}

ATTN_RUNTIME_EXPORT void
mgpuLaunchKernel(void *function, int64_t gridX, int64_t gridY, int64_t gridZ,
                 int64_t blockX, int64_t blockY, int64_t blockZ, int32_t smem,
                 void *stream, void **params, void **extra,
                 int64_t /*paramsCount*/) {
  const char *entry = "mgpuLaunchKernel";
  const Driver *d = enter(entry);
  if (!d)
    return;
  const int64_t grid[3] = {gridX, gridY, gridZ};
  const int64_t block[3] = {blockX, blockY, blockZ};
  GridCheck dims = checkDims(entry, grid, block);
  if (dims == GridCheck::Empty || dims == GridCheck::Invalid)
    return;
  if (!function) {
    recordError("%s: null function (did the module load?)", entry);
    return;
  }
  auto fn = static_cast<CUfunction>(function);
  if (!prepareFunction(*d, fn, smem, 1, entry))
    return;
  check(d->cuLaunchKernel(fn, gridX, gridY, gridZ, blockX, blockY, blockZ, smem,
                          static_cast<CUstream>(stream), params, extra),
        "cuLaunchKernel",
        "%s: grid (%lld, %lld, %lld) block (%lld, %lld, %lld) smem %d", entry,
        (long long)gridX, (long long)gridY, (long long)gridZ, (long long)blockX,
        (long long)blockY, (long long)blockZ, smem);
}

ATTN_RUNTIME_EXPORT void
mgpuLaunchClusterKernel(void *function, int64_t clusterX, int64_t clusterY,
                        int64_t clusterZ, int64_t gridX, int64_t gridY,
                        int64_t gridZ, int64_t blockX, int64_t blockY,
                        int64_t blockZ, int32_t smem, void *stream,
                        void **params, void **extra, int64_t /*paramsCount*/) {
  const char *entry = "mgpuLaunchClusterKernel";
  const Driver *d = enter(entry);
  if (!d)
    return;
  const int64_t grid[3] = {gridX, gridY, gridZ};
  const int64_t block[3] = {blockX, blockY, blockZ};
  GridCheck dims = checkDims(entry, grid, block);
  if (dims == GridCheck::Empty || dims == GridCheck::Invalid)
    return;
  if (clusterX <= 0 || clusterY <= 0 || clusterZ <= 0 ||
      clusterX * clusterY * clusterZ > 16) {
    recordError("%s: invalid cluster (%lld, %lld, %lld)", entry,
                (long long)clusterX, (long long)clusterY, (long long)clusterZ);
    return;
  }
  if (!function) {
    recordError("%s: null function (did the module load?)", entry);
    return;
  }
  auto fn = static_cast<CUfunction>(function);
  if (!prepareFunction(*d, fn, smem, clusterX * clusterY * clusterZ, entry))
    return;
  CUlaunchAttribute cluster = {};
  cluster.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  cluster.value.clusterDim.x = unsigned(clusterX);
  cluster.value.clusterDim.y = unsigned(clusterY);
  cluster.value.clusterDim.z = unsigned(clusterZ);
  CUlaunchConfig config = {};
  config.gridDimX = unsigned(gridX);
  config.gridDimY = unsigned(gridY);
  config.gridDimZ = unsigned(gridZ);
  config.blockDimX = unsigned(blockX);
  config.blockDimY = unsigned(blockY);
  config.blockDimZ = unsigned(blockZ);
  config.sharedMemBytes = unsigned(smem);
  config.hStream = static_cast<CUstream>(stream);
  config.attrs = &cluster;
  config.numAttrs = 1;
  check(d->cuLaunchKernelEx(&config, fn, params, extra), "cuLaunchKernelEx",
        "%s: cluster (%lld, %lld, %lld) grid (%lld, %lld, %lld) "
        "block (%lld, %lld, %lld) smem %d",
        entry, (long long)clusterX, (long long)clusterY, (long long)clusterZ,
        (long long)gridX, (long long)gridY, (long long)gridZ, (long long)blockX,
        (long long)blockY, (long long)blockZ, smem);
}

ATTN_RUNTIME_EXPORT void *mgpuStreamCreate(void) {
  const Driver *d = enter("mgpuStreamCreate");
  if (!d)
    return nullptr;
  if (CUstream caller = callerStream())
    return caller;
  StreamState &s = streamState();
  CUcontext ctx = currentContext(*d);
  std::lock_guard<std::mutex> lock(s.mutex);
  for (size_t i = 0; i < s.idle.size(); ++i)
    if (s.idle[i].first == ctx) {
      CUstream stream = s.idle[i].second;
      s.idle.erase(s.idle.begin() + i);
      return stream;
    }
  // Non-blocking: no implicit synchronization with the legacy default stream,
  // which other libraries in the process may be using.
  CUstream stream = nullptr;
  if (!check(d->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
             "cuStreamCreate", "mgpuStreamCreate"))
    return nullptr;
  s.owned.emplace(stream, ctx);
  return stream;
}

ATTN_RUNTIME_EXPORT void mgpuStreamDestroy(void *stream) {
  const Driver *d = driverIfLoaded();
  auto cuStream = static_cast<CUstream>(stream);
  if (!d || !cuStream || cuStream == callerStream())
    return;
  StreamState &s = streamState();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto owned = s.owned.find(cuStream);
  if (owned == s.owned.end())
    return; // not ours (the caller's from before a change of stream, say)
  if (s.idle.size() < kMaxIdleStreams) {
    s.idle.push_back({owned->second, cuStream});
    return;
  }
  s.owned.erase(cuStream);
  check(d->cuStreamDestroy(cuStream), "cuStreamDestroy", "mgpuStreamDestroy");
}

ATTN_RUNTIME_EXPORT void mgpuStreamSynchronize(void *stream) {
  const Driver *d = enter("mgpuStreamSynchronize");
  auto cuStream = static_cast<CUstream>(stream);
  // The caller's stream is synchronized only if the caller asked: the
  // generated code synchronizes at the end of every function, which would
  // otherwise stall PyTorch's asynchronous execution.
  if (!d || (cuStream && cuStream == callerStream() && !callerSynchronizes()))
    return;
  check(d->cuStreamSynchronize(cuStream), "cuStreamSynchronize",
        "mgpuStreamSynchronize");
}

ATTN_RUNTIME_EXPORT void mgpuStreamWaitEvent(void *stream, void *event) {
  if (const Driver *d = enter("mgpuStreamWaitEvent"))
    check(d->cuStreamWaitEvent(static_cast<CUstream>(stream),
                               static_cast<CUevent>(event), 0),
          "cuStreamWaitEvent", "mgpuStreamWaitEvent");
}

ATTN_RUNTIME_EXPORT void *mgpuEventCreate(void) {
  const Driver *d = enter("mgpuEventCreate");
  CUevent event = nullptr;
  // Only ordering is needed; timing would make every record slower.
  if (!d || !check(d->cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
                   "cuEventCreate", "mgpuEventCreate"))
    return nullptr;
  return event;
}

ATTN_RUNTIME_EXPORT void mgpuEventDestroy(void *event) {
  if (const Driver *d = enter("mgpuEventDestroy"))
    check(d->cuEventDestroy(static_cast<CUevent>(event)), "cuEventDestroy",
          "mgpuEventDestroy");
}

ATTN_RUNTIME_EXPORT void mgpuEventSynchronize(void *event) {
  if (const Driver *d = enter("mgpuEventSynchronize"))
    check(d->cuEventSynchronize(static_cast<CUevent>(event)),
          "cuEventSynchronize", "mgpuEventSynchronize");
}

ATTN_RUNTIME_EXPORT void mgpuEventRecord(void *event, void *stream) {
  if (const Driver *d = enter("mgpuEventRecord"))
    check(d->cuEventRecord(static_cast<CUevent>(event),
                           static_cast<CUstream>(stream)),
          "cuEventRecord", "mgpuEventRecord");
}

ATTN_RUNTIME_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
                                       int8_t isHostShared) {
  const Driver *d = enter("mgpuMemAlloc");
  if (!d || sizeBytes == 0)
    return nullptr;
  CUdeviceptr ptr = 0;
  if (isHostShared) {
    if (!check(d->cuMemAllocManaged(&ptr, sizeBytes, CU_MEM_ATTACH_GLOBAL),
               "cuMemAllocManaged", "mgpuMemAlloc(%llu bytes, host-shared)",
               (unsigned long long)sizeBytes))
      return nullptr;
    ManagedState &m = managedState();
    std::lock_guard<std::mutex> lock(m.mutex);
    m.pointers.insert(ptr);
    ++m.count;
    return reinterpret_cast<void *>(ptr);
  }
  // Stream-ordered, from the device's default pool: no device-wide
  // synchronization, and capturable into CUDA graphs.
  if (!check(d->cuMemAllocAsync(&ptr, sizeBytes, static_cast<CUstream>(stream)),
             "cuMemAllocAsync", "mgpuMemAlloc(%llu bytes)",
             (unsigned long long)sizeBytes))
    return nullptr;
  return reinterpret_cast<void *>(ptr);
}

ATTN_RUNTIME_EXPORT void mgpuMemFree(void *ptr, void *stream) {
  if (!ptr)
    return;
  if (const Driver *d = enter("mgpuMemFree"))
    freeDevice(*d, ptr, static_cast<CUstream>(stream), "mgpuMemFree");
}

ATTN_RUNTIME_EXPORT void mgpuMemcpy(void *dst, void *src, uint64_t sizeBytes,
                                    void *stream) {
  if (sizeBytes == 0)
    return;
  if (const Driver *d = enter("mgpuMemcpy"))
    check(d->cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                           reinterpret_cast<CUdeviceptr>(src), sizeBytes,
                           static_cast<CUstream>(stream)),
          "cuMemcpyAsync", "mgpuMemcpy(%p <- %p, %llu bytes)", dst, src,
          (unsigned long long)sizeBytes);
}

ATTN_RUNTIME_EXPORT void mgpuMemset32(void *dst, int32_t value, uint64_t count,
                                      void *stream) {
  if (count == 0)
    return;
  if (const Driver *d = enter("mgpuMemset32"))
    check(d->cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst),
                              uint32_t(value), count,
                              static_cast<CUstream>(stream)),
          "cuMemsetD32Async", "mgpuMemset32(%p, %llu elements)", dst,
          (unsigned long long)count);
}

ATTN_RUNTIME_EXPORT void mgpuMemset16(void *dst, int16_t value, uint64_t count,
                                      void *stream) {
  if (count == 0)
    return;
  if (const Driver *d = enter("mgpuMemset16"))
    check(d->cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst),
                              uint16_t(value), count,
                              static_cast<CUstream>(stream)),
          "cuMemsetD16Async", "mgpuMemset16(%p, %llu elements)", dst,
          (unsigned long long)count);
}

ATTN_RUNTIME_EXPORT void attnRuntimeFree(void *devicePtr) {
  if (!devicePtr)
    return;
  if (const Driver *d = enter("attnRuntimeFree"))
    freeDevice(*d, devicePtr, callerStream(), "attnRuntimeFree");
}

ATTN_RUNTIME_EXPORT void *attnRuntimeWrapDLPack(void *allocated, void *aligned,
                                                int64_t offset, int32_t ndim,
                                                const int64_t *sizes,
                                                const int64_t *strides,
                                                uint8_t code, uint8_t bits,
                                                int32_t deviceId) {
  const Driver *d = enter("attnRuntimeWrapDLPack");
  if (!d)
    return nullptr;
  if (ndim < 0 || (ndim > 0 && (!sizes || !strides)) || bits == 0 ||
      bits % 8 != 0 || offset < 0 || deviceId < 0) {
    recordError("attnRuntimeWrapDLPack: invalid arguments (ndim %d, bits %u, "
                "offset %lld, device %d)",
                ndim, unsigned(bits), (long long)offset, deviceId);
    return nullptr;
  }
  auto *holder = new DLPackHolder();
  holder->shape.assign(sizes, sizes + ndim);
  holder->strides.assign(strides, strides + ndim);
  holder->allocated = allocated;
  holder->stream = callerStream();
  holder->context = currentContext(*d);
  DLTensor &t = holder->tensor.dl_tensor;
  // data points at the first element with byte_offset 0: PyTorch and CuPy
  // ignore byte_offset (see the DLPack spec's note on data alignment).
  t.data = static_cast<char *>(aligned) + offset * (bits / 8);
  bool managed = isManaged(reinterpret_cast<CUdeviceptr>(allocated), false);
  t.device = {managed ? kDLCUDAManaged : kDLCUDA, deviceId};
  t.ndim = ndim;
  t.dtype = {code, bits, 1};
  t.shape = holder->shape.data();
  t.strides = holder->strides.data();
  t.byte_offset = 0;
  holder->tensor.manager_ctx = holder;
  holder->tensor.deleter = deleteDLPack;
  return &holder->tensor;
}

} // extern "C"
