//===- PagedKernel.h - paged decode kernels, internal -----------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: the split kernel for latent caches
// (PagedLatentKernel.cpp), built next to the general split and combine
// kernels of PagedKernel.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_PAGEDKERNEL_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_PAGEDKERNEL_H

#include "attn/IR/KernelSpec.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir {
namespace attn {
namespace detail {

/// Dynamic shared memory of a block on sm_90 (227 KB).
inline constexpr int64_t kMaxPagedSharedMemory = 227 * 1024;

/// How the latent split kernel is tiled: 8 warps, 64-key tiles in a
/// two-stage ring, `mTiles` m16 tiles of packed query rows per block.
struct LatentTiling {
  static constexpr int64_t kWarps = 8, kThreads = 32 * kWarps, kTileKeys = 64,
                           kStages = 2;
  int64_t mTiles = 4;

  int64_t rows() const { return 16 * mTiles; }
  /// Warps that share a row tile in S = Q·Kᵀ (each takes some of its keys).
  int64_t keyGroups() const { return kWarps / mTiles; }
  /// Q, the K ring, P, the row statistics and the tiles' cache rows.
  int64_t sharedMemoryBytes(int64_t d) const {
    return 2 * (rows() * d + kStages * kTileKeys * d + rows() * kTileKeys) +
           4 * (keyGroups() * rows() + rows() + 2 * kTileKeys);
  }
  /// Whether the kernel takes head dims d / dv: ldmatrix and mma shapes
  /// (dv split over 8 warps in pairs of 8-column tiles), shared memory.
  bool accepts(int64_t d, int64_t dv) const;
};

/// The row-tile counts the mma.sync latent split kernel is built for (the
/// host picks the smallest that holds a KV head's query rows; the wgmma
/// kernel, where it is built, is the only one).
inline constexpr int64_t kLatentRowTileCounts[] = {1, 4};

/// How the sm_90a latent split kernel (PagedLatentWgmmaKernel.cpp) is
/// tiled: 384 threads (S and the softmax, O's second half, the producer),
/// 64 packed query rows, 64-key tiles in a two-stage ring.
struct LatentWgmmaTiling {
  static constexpr int64_t kThreads = 384, kRows = 64, kTileKeys = 64,
                           kStages = 2;
  /// Q, the K ring (D / 64 panels of 8 KB each), P (one panel), the rows'
  /// factors and sums, 16 bytes for a zero word.
  static constexpr int64_t sharedMemoryBytes(int64_t d) {
    return (1 + kStages) * (d / 64) * kRows * 128 + kRows * 128 +
           2 * kRows * 4 + 16;
  }
  /// Whether the kernel takes head dims d / dv: whole 64-column panels, Dv
  /// split into two halves of whole panels, each at most wgmma's N of 256,
  /// and shared memory (D at most 576).
  static bool accepts(int64_t d, int64_t dv);
};

/// Builds the body of the sm_90a latent split kernel of `spec` into `func`
/// (arguments as for buildLatentSplitKernelBody).
void buildLatentWgmmaKernelBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                                const PagedAttentionSpec &spec);

/// Builds the body of the latent split kernel of `spec` into `func` at
/// `b`'s insertion point (see PagedLatentKernel.cpp). Arguments: q, k_cache,
/// block_table, seq_lens, o_part, lse_part, then B, Hq, Hkv, Sq, MaxPages,
/// Splits.
void buildLatentSplitKernelBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                                const PagedAttentionSpec &spec,
                                LatentTiling tiling);

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_PAGEDKERNEL_H
