// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Synthetic kernels with the parameter ABI of attn's manifests (memrefs of
// five values, i64 and f32 scalars, TMA descriptors by value as
// __grid_constant__ CUtensorMap), for the fast path's GPU tests
// (test_runtime_gpu.py): they copy q to o and write their parameters into a
// debug record, so that the host can check what each path passed.
#include <cuda.h>
#include <stdint.h>
#define MEMREF(T, n) T *n##_a, T *n, long long n##_off, long long n##_size, long long n##_stride
#define TID                                                                          \
  long long tid = threadIdx.x + (long long)blockDim.x *                              \
                                    (blockIdx.x + (long long)gridDim.x *              \
                                                      (blockIdx.y + (long long)gridDim.y * blockIdx.z)); \
  long long nthreads = (long long)blockDim.x * gridDim.x * gridDim.y * gridDim.z;

extern "C" __global__ void dense(MEMREF(uint16_t, q), MEMREF(uint16_t, k), MEMREF(uint16_t, v),
                                 MEMREF(uint16_t, o), MEMREF(unsigned, lse),
                                 const __grid_constant__ CUtensorMap q_tma,
                                 const __grid_constant__ CUtensorMap k_tma,
                                 const __grid_constant__ CUtensorMap v_tma, long long B,
                                 long long Hq, long long Hkv, long long Sq, long long Sk,
                                 float scale, float softcap, long long wl, long long wr) {
  TID
  for (long long i = tid; i < o_size && i < q_size; i += nthreads)
    o[i] = q[i];
  for (long long i = 128 + tid; i < lse_size; i += nthreads) // past the record
    lse[i] = 0;
  if (tid == 0 && lse_size >= 128) {
    unsigned *d = lse;
    d[0] = B; d[1] = Hq; d[2] = Hkv; d[3] = Sq; d[4] = Sk;
    d[5] = __float_as_uint(scale); d[6] = __float_as_uint(softcap);
    d[7] = (unsigned)wl; d[8] = (unsigned)wr;
    d[9] = (unsigned)(uintptr_t)k; d[10] = (unsigned)((uintptr_t)k >> 32);
    d[11] = (unsigned)(uintptr_t)v; d[12] = (unsigned)((uintptr_t)v >> 32);
    d[13] = k_size; d[14] = v_size; d[15] = q_off + k_off + v_off + o_off + lse_off;
    d[16] = q_stride + k_stride + v_stride + o_stride + lse_stride;
    d[17] = gridDim.x; d[18] = gridDim.y; d[19] = gridDim.z; d[20] = blockDim.x;
    d[21] = (q_a == q) + (k_a == k) + (v_a == v) + (o_a == o) + (lse_a == lse);
    for (int j = 22; j < 32; j++) d[j] = 0; // every word written: outputs compare bytewise
    const unsigned *m = (const unsigned *)&q_tma;
    for (int j = 0; j < 32; j++) d[32 + j] = m[j];
    m = (const unsigned *)&k_tma;
    for (int j = 0; j < 32; j++) d[64 + j] = m[j];
    m = (const unsigned *)&v_tma;
    for (int j = 0; j < 32; j++) d[96 + j] = m[j];
  }
}

// A causal kernel without LSE: only the scale is a run-time value.
extern "C" __global__ void dense_causal(MEMREF(uint16_t, q), MEMREF(uint16_t, k),
                                        MEMREF(uint16_t, v), MEMREF(uint16_t, o),
                                        const __grid_constant__ CUtensorMap q_tma,
                                        const __grid_constant__ CUtensorMap k_tma,
                                        const __grid_constant__ CUtensorMap v_tma, long long B,
                                        long long Hq, long long Hkv, long long Sq, long long Sk,
                                        float scale) {
  TID
  for (long long i = tid; i < o_size && i < q_size; i += nthreads)
    o[i] = q[i];
}

extern "C" __global__ void split(MEMREF(uint16_t, q), MEMREF(uint16_t, kc), MEMREF(uint16_t, vc),
                                 MEMREF(int, table), MEMREF(int, lens), MEMREF(float, o_part),
                                 MEMREF(float, lse_part), long long B, long long Hq,
                                 long long Hkv, long long Sq, long long MaxPages,
                                 long long Splits, long long VStride, float scale,
                                 float softcap, long long wl, long long wr) {
  TID
  for (long long i = tid; i < o_part_size; i += nthreads)
    o_part[i] = __uint_as_float((unsigned)q[i % q_size] << 16);
  for (long long i = tid; i < lse_part_size; i += nthreads)
    lse_part[i] = (float)(Splits + 1000 * VStride) + scale + softcap + wl + 1e-3f * wr;
}

extern "C" __global__ void combine(MEMREF(float, o_part), MEMREF(float, lse_part),
                                   MEMREF(uint16_t, o), MEMREF(float, lse), long long B,
                                   long long Sq, long long Hq, long long Splits) {
  TID
  for (long long i = tid; i < o_size; i += nthreads)
    o[i] = (uint16_t)(__float_as_uint(o_part[i]) >> 16);
  for (long long i = tid; i < lse_size; i += nthreads)
    lse[i] = lse_part[i];
}
