//===- WgmmaOps.h - wgmma operands and chains -------------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: the pieces of Hopper's warpgroup
// MMA that the sm_90a kernels build alike. Every operand in shared memory
// is 128-byte swizzled and stored in panels of 64 columns (f16/bf16: 128
// bytes a row), each panel `rows` x 128 bytes, as TMA boxes of 64 columns
// land them.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_WGMMAOPS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_WGMMAOPS_H

#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/Value.h"

namespace mlir {
namespace attn {
namespace detail {

/// The wgmma matrix descriptor of a 128-byte-swizzled operand at shared
/// byte address `addr` (i64): the swizzle atoms are 8 rows of 128 bytes
/// (stride byte offset 1024); `lbo` is the byte distance between 64-column
/// panels along M/N for MN-major operands (unused for K-major ones).
Value buildWgmmaDescriptor(ImplicitLocOpBuilder &b, Value addr, int64_t lbo);

/// The descriptor of `offset` bytes (a multiple of 16) past the operand of
/// descriptor `desc`: the start address field (bits 0-13, in 16-byte units)
/// cannot overflow inside shared memory, so one add replaces the shift,
/// mask and or of buildWgmmaDescriptor.
Value advanceWgmmaDescriptor(ImplicitLocOpBuilder &b, Value desc,
                             int64_t offset);

/// The byte offset, in a K-major operand of `rows` rows a panel, of k-step
/// `kk` (16 columns): panel kk / 4, 32 bytes per k-step inside it.
inline int64_t getKMajorStepOffset(int64_t kk, int64_t rows) {
  return (kk / 4) * rows * 128 + (kk % 4) * 32;
}

/// The byte offset, from `base`, of 16-byte chunk `chunk` of row `r` in an
/// operand of such panels, `rows` rows a panel: panel chunk / 8, 128 bytes a
/// row, the chunk's place in the row XORed with r mod 8 (the 128-byte
/// swizzle), as the copies that stage an operand write it.
Value buildSwizzledChunkOffset(ImplicitLocOpBuilder &b, Value base, Value r,
                               Value chunk, int64_t rows);

/// The f32 accumulator of an m64nNk16 wgmma (N / 2 registers a thread):
/// the literal LLVM struct nvvm.wgmma.mma_async takes.
Type getWgmmaAccumulatorType(MLIRContext *ctx, int64_t n);

/// An accumulator of `n` columns holding zeros.
Value buildZeroAccumulator(ImplicitLocOpBuilder &b, int64_t n);

/// The k of a wgmma of element type `elt`: 16 (f16, bf16) or 32 (e4m3);
/// a k-step is 32 bytes of a row either way.
int64_t getWgmmaK(Type elt);

/// Issues acc = A·B (+ acc unless `zeroInit`) for an m64nNk wgmma of
/// element type `elt` (f16, bf16 or f8E4M3FN; k = getWgmmaK) over `ksteps`
/// k-steps, A and B by descriptor (A K-major, or MN-major where `aMNMajor`;
/// B MN-major where `bMNMajor`; MN-major for 16-bit types only), as one
/// committed wgmma group: a fence, the MMAs, the commit. The caller waits.
/// `negateA`: acc = -A·B (+ acc), wgmma's scale-a of -1.
Value buildWgmmaChain(ImplicitLocOpBuilder &b, Type elt, Value acc, int64_t n,
                      int64_t ksteps, bool zeroInit,
                      function_ref<Value(int64_t)> descA,
                      function_ref<Value(int64_t)> descB, bool bMNMajor,
                      bool negateA = false, bool aMNMajor = false);

/// Issues X·Yᵀ (64 x yRows, a fresh accumulator) for the warpgroup's 64
/// rows of X (descriptor `xDesc`, panels of xRows rows) and the yRows rows
/// of Y (`yDesc`, panels of yRows rows), both K-major over `dim` columns of
/// `elt` (f16/bf16): the scores S = Q·Kᵀ and their kin. The caller waits.
Value buildWgmmaTransposedProduct(ImplicitLocOpBuilder &b, Type elt,
                                  Value xDesc, int64_t xRows, Value yDesc,
                                  int64_t yRows, int64_t dim);

/// Issues acc += A·B with A from registers (`a`: four 32-bit registers per
/// k-step, wgmma's A fragment; for f16/bf16 an m64nNk16 accumulator of 16
/// columns packed in pairs) and B by descriptor (`descB(kk)`; MN-major for
/// f16/bf16, K-major for e4m3, which has no transposed B), as one committed
/// group; register-A MMAs are InlinePtx.h's.
/// `bKMajor`: B K-major (f16/bf16; S = Q·Kᵀ with Q from registers). A
/// null `acc`: a fresh accumulator, acc = A·B (the first MMA's scale-d
/// false).
Value buildWgmmaRegisterAChain(ImplicitLocOpBuilder &b, Type elt, Value acc,
                               ValueRange a, int64_t n,
                               function_ref<Value(int64_t)> descB,
                               bool bKMajor = false);

/// Waits until at most `pending` wgmma groups of the warpgroup are in
/// flight.
void buildWgmmaWait(ImplicitLocOpBuilder &b, int64_t pending);

/// The f32 elements `x` (an accumulator's, in its order: tile n, row i,
/// column j at index 4n + 2i + j) packed to `elt` pairs in 32-bit
/// registers, in the order of wgmma's register-A fragments: k-step kk takes
/// (n, i) = (2kk, 0), (2kk, 1), (2kk + 1, 0), (2kk + 1, 1).
SmallVector<Value> packRegisterA(ImplicitLocOpBuilder &b, Type elt,
                                 ArrayRef<Value> x);

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_WGMMAOPS_H
