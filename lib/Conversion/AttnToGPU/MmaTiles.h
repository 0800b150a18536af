//===- MmaTiles.h - shared-memory tiles of the mma.sync kernels -*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: how the dense mma.sync kernels (the
// forward, MmaKernel.cpp, and the backward, AttentionGradMmaKernels.cpp)
// move 16-bit tiles of Q, K, V, dO rows from global to shared memory
// (cp.async, 16 bytes a copy) and address them for ldmatrix: each row's
// 16-byte chunks XOR-swizzled by the row, so that the 8 rows one ldmatrix
// matrix reads fall in 8 different bank groups.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_MMATILES_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_MMATILES_H

#include "KernelCommon.h"

#include "attn/IR/KernelSpec.h"

#include "llvm/ADT/DenseMap.h"

#include <optional>

namespace mlir {
namespace attn {
namespace detail {

/// Row tiles of an attention tensor in XOR-swizzled shared memory: the
/// cp.async copies that fill them and the swizzled columns that ldmatrix
/// reads them at. Built once a kernel has its thread index, `lane8` (the
/// lane mod 8) and its batch index; the ops it creates go to `e`'s builder.
class SwizzledTiles {
public:
  /// `threads`: the block's threads, which share every tile's copies;
  /// `layout`: that of the tensors copied from (BHSD or BSHD); `c0`: the
  /// index constant 0.
  SwizzledTiles(Emitter &e, Layout layout, int64_t threads, Value tid,
                Value lane8, Value batch, Value c0)
      : e(e), layout(layout), threads(threads), tid(tid), lane8(lane8),
        batch(batch), c0(c0) {}

  /// Shared-memory tiles are stored with their 16-byte chunks XOR-swizzled
  /// by the row (chunk' = chunk ^ (row % 8)) when a row has a multiple of 8
  /// chunks: the 8 rows an ldmatrix reads then fall in 8 different bank
  /// groups instead of one. Every access here is chunk-aligned (the column
  /// is a multiple of 8 elements), so writer and readers agree.
  Value swizzle(Value r, Value c, int64_t dim);

  /// The ldmatrix addresses, written so that LLVM keeps few of them live: a
  /// lane reads row `rowThread + rowConst` at 16-byte chunk `chunkConst +
  /// bit` (chunkConst even, bit = 0 or 1 from the lane, rowThread = lane8
  /// modulo 8, rowConst a multiple of 8), so the swizzled chunk is
  /// (chunkConst & ~7) + ((chunkConst & 7 | bit) ^ lane % 8): a constant plus
  /// one of four per-thread values, computed once. The constants then become
  /// immediate offsets of the loads instead of one hoisted address register
  /// per load.
  Value swizzledCol(int64_t chunkConst, Value bit, int64_t dim);

  /// Issues the cp.async copies of a [rows, dim] tile (16 bytes = 8
  /// elements per copy, cached in L2 only, zero-filled past `limit`) into
  /// `dstBuf` (at `stage` when the buffer has one), rows*dim/(8*threads)
  /// copies per thread, as one group, which it returns. Row r of the tile is
  /// row `row0 + r` of head `head` of `src` ([B, heads, seqLen, dim] or
  /// [B, seqLen, heads, dim]).
  Value issueTile(Value src, Value dstBuf, std::optional<Value> stage,
                  int64_t rows, Value heads, Value seqLen, Value head,
                  Value row0, Value limit, int64_t dim);

  /// Waits until at most `pending` cp.async groups of this thread are in
  /// flight. The op names a group token, but its lowering waits on counts
  /// (cp.async.wait_group), so any dominating group token (`anyGroup`)
  /// will do.
  void waitGroups(Value anyGroup, int32_t pending);

private:
  Emitter &e;
  Layout layout;
  int64_t threads;
  Value tid, lane8, batch, c0;
  /// The swizzled chunk bases of swizzledCol, by lane bit and chunk.
  llvm::DenseMap<std::pair<void *, int64_t>, Value> xorChunks;
};

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_MMATILES_H
