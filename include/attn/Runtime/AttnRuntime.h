/*===- AttnRuntime.h - the runtime of attn's compiled GPU programs -*- C
 * -*-===//
 *
 * Part of attn, under the Apache License v2.0 with LLVM Exceptions.
 * See LICENSE for license information.
 * SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
 *
 * libattn_runtime.so implements the mgpu* C ABI that MLIR's gpu-to-llvm
 * lowering emits calls to (module loading, launches, streams, events, memory,
 * TMA descriptors) on the CUDA driver API, plus the small API below through
 * which a host program (or PyTorch, through ctypes) drives it.
 *
 * The runtime loads libcuda.so.1 when first used, so it loads on machines
 * without a driver: there every entry point records an error and does nothing.
 * It works in the primary context of the current device, the one the CUDA
 * runtime and PyTorch use, so device pointers and streams are shared with them.
 *
 * Errors never abort: each failing call records a message in a thread-local
 * "first error since the last clear" (attnRuntimeGetError) and returns NULL or
 * does nothing; set ATTN_RUNTIME_VERBOSE=1 to also print every error to stderr.
 *
 *===----------------------------------------------------------------------===*/

#ifndef ATTN_RUNTIME_ATTNRUNTIME_H
#define ATTN_RUNTIME_ATTNRUNTIME_H

#include <stdint.h>

#if defined(__GNUC__)
#define ATTN_RUNTIME_EXPORT __attribute__((visibility("default")))
#else
#define ATTN_RUNTIME_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Makes `cuStream` (a CUstream / cudaStream_t, e.g. PyTorch's
 * torch.cuda.current_stream().cuda_stream) the calling thread's current stream:
 * the compiled programs then run on it (mgpuStreamCreate returns it and
 * mgpuStreamDestroy leaves it alone), asynchronously unless `synchronize` is
 * non-zero (mgpuStreamSynchronize on it is a no-op otherwise: the generated
 * code synchronizes only at the end of a function and never reads device memory
 * on the host). NULL (the default) makes the programs create their own streams
 * and wait for them before returning. The legacy default stream, whose
 * cudaStream_t is 0 (PyTorch's default stream), is passed as CU_STREAM_LEGACY
 * ((void *)1): NULL would mean "no caller stream" and make every call
 * synchronous. */
ATTN_RUNTIME_EXPORT void attnRuntimeSetStream(void *cuStream, int synchronize);

/* The calling thread's current stream, or NULL. */
ATTN_RUNTIME_EXPORT void *attnRuntimeGetStream(void);

/* The first error recorded on this thread since the last
 * attnRuntimeClearError, or NULL. Valid until that clear. */
ATTN_RUNTIME_EXPORT const char *attnRuntimeGetError(void);

/* Forgets this thread's recorded error. */
ATTN_RUNTIME_EXPORT void attnRuntimeClearError(void);

/* Frees a device buffer a program returned (its memref's allocated pointer),
 * ordered on the current stream (the legacy default stream when none is set).
 * NULL is a no-op. */
ATTN_RUNTIME_EXPORT void attnRuntimeFree(void *devicePtr);

/* 1 if libcuda.so.1 loaded and at least one CUDA device exists, else 0 with
 * the reason recorded (attnRuntimeGetError). */
ATTN_RUNTIME_EXPORT int attnRuntimeAvailable(void);

/* The multiprocessor count of the current context's device (1 when it
 * cannot be read: an error is recorded). Compiled programs call it to choose
 * the key splits of paged decode (attn.paged_attention). */
ATTN_RUNTIME_EXPORT int64_t attnRuntimeMultiprocessorCount(void);

/* Wraps a device buffer a program returned -- the memref's allocated and
 * aligned pointers, offset, sizes and strides (both in elements) -- as a DLPack
 * (v0.8) DLManagedTensor*, for torch.from_dlpack. `code` and `bits` are
 * DLPack's dtype (code 0 int, 1 uint, 2 float, 4 bfloat). The tensor owns the
 * buffer: its deleter frees `allocated` ordered on the stream that was current
 * when it was wrapped (so that stream must outlive the tensor), or the legacy
 * default stream. The returned tensor's data points at the first element
 * (aligned + offset), with byte_offset 0, as PyTorch and CuPy expect. Returns
 * NULL (and records an error) on bad arguments. */
ATTN_RUNTIME_EXPORT void *attnRuntimeWrapDLPack(void *allocated, void *aligned,
                                                int64_t offset, int32_t ndim,
                                                const int64_t *sizes,
                                                const int64_t *strides,
                                                uint8_t code, uint8_t bits,
                                                int32_t deviceId);

/* The mgpu* ABI of the generated host code (MLIR's gpu-to-llvm lowering, LLVM
 * 22). Declared for tests and hand-written hosts; compiled programs call them
 * directly. Handles are opaque: CUmodule, CUfunction, CUstream, CUevent. */
ATTN_RUNTIME_EXPORT void *mgpuModuleLoad(const void *data, int64_t size);
ATTN_RUNTIME_EXPORT void *mgpuModuleLoadJIT(const void *data, int optLevel);
ATTN_RUNTIME_EXPORT void mgpuModuleUnload(void *module);
ATTN_RUNTIME_EXPORT void *mgpuModuleGetFunction(void *module, const char *name);
ATTN_RUNTIME_EXPORT void mgpuLaunchKernel(void *function, int64_t gridX,
                                          int64_t gridY, int64_t gridZ,
                                          int64_t blockX, int64_t blockY,
                                          int64_t blockZ, int32_t smem,
                                          void *stream, void **params,
                                          void **extra, int64_t paramsCount);
ATTN_RUNTIME_EXPORT void
mgpuLaunchClusterKernel(void *function, int64_t clusterX, int64_t clusterY,
                        int64_t clusterZ, int64_t gridX, int64_t gridY,
                        int64_t gridZ, int64_t blockX, int64_t blockY,
                        int64_t blockZ, int32_t smem, void *stream,
                        void **params, void **extra, int64_t paramsCount);
ATTN_RUNTIME_EXPORT void *mgpuStreamCreate(void);
ATTN_RUNTIME_EXPORT void mgpuStreamDestroy(void *stream);
ATTN_RUNTIME_EXPORT void mgpuStreamSynchronize(void *stream);
ATTN_RUNTIME_EXPORT void mgpuStreamWaitEvent(void *stream, void *event);
ATTN_RUNTIME_EXPORT void *mgpuEventCreate(void);
ATTN_RUNTIME_EXPORT void mgpuEventDestroy(void *event);
ATTN_RUNTIME_EXPORT void mgpuEventSynchronize(void *event);
ATTN_RUNTIME_EXPORT void mgpuEventRecord(void *event, void *stream);
/* Size 0 returns NULL without an error: nothing may be read or written
 * through it, and freeing NULL is a no-op. */
ATTN_RUNTIME_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
                                       int8_t isHostShared);
ATTN_RUNTIME_EXPORT void mgpuMemFree(void *ptr, void *stream);
ATTN_RUNTIME_EXPORT void mgpuMemcpy(void *dst, void *src, uint64_t sizeBytes,
                                    void *stream);
ATTN_RUNTIME_EXPORT void mgpuMemset32(void *dst, int32_t value, uint64_t count,
                                      void *stream);
ATTN_RUNTIME_EXPORT void mgpuMemset16(void *dst, int16_t value, uint64_t count,
                                      void *stream);
ATTN_RUNTIME_EXPORT void mgpuSetDefaultDevice(int32_t device);
/* A device pointer to a 128-byte CUtensorMap for the ranked memref
 * `descriptor` (rank 1..5); cached, so repeated calls with the same arguments
 * return the same pointer without any CUDA call. NULL without an error when a
 * dimension is 0 (no work can read it). */
ATTN_RUNTIME_EXPORT void *mgpuTensorMapEncodeTiledMemref(
    int64_t rank, void *descriptor, int64_t dataType, int64_t interleave,
    int64_t swizzle, int64_t l2Promotion, int64_t oobFill, int64_t *boxDims);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_RUNTIME_ATTNRUNTIME_H */
