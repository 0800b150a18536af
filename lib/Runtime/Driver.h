//===- Driver.h - libcuda loaded at run time, errors, context ---*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to libattn_runtime.so. The runtime never links libcuda: it dlopens
// libcuda.so.1 on first use and resolves every driver function by the symbol
// the cuda.h it was compiled against declares (cuMemFree_v2, not the CUDA 3.x
// cuMemFree), so the library builds and loads on machines without a driver.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_RUNTIME_DRIVER_H
#define ATTN_LIB_RUNTIME_DRIVER_H

#include <cuda.h>

namespace attn::runtime {

// The driver functions the runtime uses. cuda.h #defines most names to their
// current versioned symbol (cuMemFree -> cuMemFree_v2), so `decltype(&name)`
// is the current signature and the expanded name is the symbol to bind.
#define ATTN_CUDA_FUNCTIONS(X)                                                 \
  X(cuInit)                                                                    \
  X(cuGetErrorName)                                                            \
  X(cuGetErrorString)                                                          \
  X(cuDeviceGet)                                                               \
  X(cuDeviceGetCount)                                                          \
  X(cuDeviceGetAttribute)                                                      \
  X(cuCtxGetDevice)                                                            \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuCtxGetCurrent)                                                           \
  X(cuCtxSetCurrent)                                                           \
  X(cuCtxPushCurrent)                                                          \
  X(cuCtxPopCurrent)                                                           \
  X(cuCtxSynchronize)                                                          \
  X(cuStreamCreate)                                                            \
  X(cuStreamDestroy)                                                           \
  X(cuStreamSynchronize)                                                       \
  X(cuStreamWaitEvent)                                                         \
  X(cuStreamIsCapturing)                                                       \
  X(cuEventCreate)                                                             \
  X(cuEventDestroy)                                                            \
  X(cuEventSynchronize)                                                        \
  X(cuEventRecord)                                                             \
  X(cuEventQuery)                                                              \
  X(cuModuleLoadData)                                                          \
  X(cuModuleLoadDataEx)                                                        \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuFuncGetAttribute)                                                        \
  X(cuFuncSetAttribute)                                                        \
  X(cuLaunchKernel)                                                            \
  X(cuLaunchKernelEx)                                                          \
  X(cuMemAllocAsync)                                                           \
  X(cuMemAllocManaged)                                                         \
  X(cuMemFreeAsync)                                                            \
  X(cuMemFree)                                                                 \
  X(cuMemcpyAsync)                                                             \
  X(cuMemcpyHtoDAsync)                                                         \
  X(cuMemsetD32Async)                                                          \
  X(cuMemsetD16Async)                                                          \
  X(cuTensorMapEncodeTiled)

/// Pointers to the driver functions; every one is non-null once loaded.
struct Driver {
#define ATTN_DECLARE_CUDA_FUNCTION(name) decltype(&::name) name = nullptr;
  ATTN_CUDA_FUNCTIONS(ATTN_DECLARE_CUDA_FUNCTION)
#undef ATTN_DECLARE_CUDA_FUNCTION
};

/// The entry guard of every runtime function: loads the driver on first use
/// and makes a context current on this thread (the current one if there is
/// one, else the primary context of the default device). Returns null, with
/// an error recorded that names `entry`, when either fails.
const Driver *enter(const char *entry);

/// The driver if it loaded, without touching the context (deleters, cleanup).
const Driver *driverIfLoaded();

/// The primary context of `device`, retained once and kept for the life of
/// the process; null (error recorded) on failure.
CUcontext primaryContext(const Driver &d, int device, const char *entry);

/// Sets the device whose primary context entries use when none is current.
void setDefaultDevice(int device);

/// Records `message` (printf-style) as this thread's error unless one is
/// already recorded; prints it when ATTN_RUNTIME_VERBOSE is set.
void recordError(const char *format, ...) __attribute__((format(printf, 1, 2)));

/// True if `result` is CUDA_SUCCESS; otherwise records
/// "<context>: <call> failed: <CUresult name>: <description>", with `context`
/// printf-formatted, and returns false.
bool check(CUresult result, const char *call, const char *context, ...)
    __attribute__((format(printf, 3, 4)));

/// The calling thread's stream set by attnRuntimeSetStream (null if none), and
/// whether the caller asked for synchronization on it.
CUstream callerStream();
bool callerSynchronizes();

} // namespace attn::runtime

#endif // ATTN_LIB_RUNTIME_DRIVER_H
