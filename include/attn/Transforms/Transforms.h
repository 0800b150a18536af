//===- Transforms.h - attn rewrite entry points -----------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Pattern populators of attn's transformations, for pipelines, the plugin and
// compilers that embed attn.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_TRANSFORMS_H
#define ATTN_TRANSFORMS_TRANSFORMS_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <optional>

namespace mlir {
class Operation;
class RewritePatternSet;
class RewriterBase;
namespace attn {
class AttentionOp;
class AttentionGradOp;

/// The reassociation of a tensor.expand_shape or tensor.collapse_shape `op`
/// (the groups of its higher-rank side's dims) when the groups partition
/// that side's dims into consecutive runs; none for other ops or a
/// malformed reassociation. Upstream's verifier checks the indices as
/// 32-bit affine dims, so an index of 2^32 + d passes there as d; attn-fuse
/// and the attn-to-cpu pipeline read reshapes only through this.
std::optional<SmallVector<SmallVector<int64_t, 2>>>
getReshapeReassociation(Operation *op);

/// Tile sizes of the FlashAttention loops.
struct AttentionTileOptions {
  int64_t blockQ = 64;  ///< query rows per tile
  int64_t blockKV = 64; ///< keys per tile
};

/// Rewrites `op` into tiled FlashAttention loops (see the attn-tile pass).
LogicalResult tileAttention(RewriterBase &rewriter, AttentionOp op,
                            const AttentionTileOptions &options);

/// Rewrites `op` into FlashAttention-2's backward loops (see the attn-tile
/// pass).
LogicalResult tileAttentionGrad(RewriterBase &rewriter, AttentionGradOp op,
                                const AttentionTileOptions &options);

/// Adds the patterns that apply tileAttention to every attn.attention and
/// tileAttentionGrad to every attn.attention_grad.
void populateAttnTilePatterns(RewritePatternSet &patterns,
                              const AttentionTileOptions &options);

/// Adds the patterns that rewrite unfused attention graphs (linalg, tosa,
/// arith on tensors) into attn.attention, and the backward of training
/// graphs into attn.attention_grad. They anchor on the P·V contraction
/// and are meant for a single-walk driver (walkAndApplyPatterns): each
/// successful application erases the ops it absorbed that became dead.
void populateAttnFusePatterns(RewritePatternSet &patterns);

/// Adds the pattern that rewrites attn.paged_attention into a gather of the
/// paged K/V and an attn.attention with a length/mask bias (see
/// AttnDecomposePaged.cpp).
void populateAttnDecomposePagedPatterns(RewritePatternSet &patterns);

/// attn.gated_delta_rule -> its token-by-token recurrence as loops on
/// tensors (attn-decompose-gated-delta).
void populateAttnDecomposeGatedDeltaPatterns(RewritePatternSet &patterns);

/// attn.sparse_attention -> attn.attention with a 0 / -inf bias of the
/// selected keys; attn.lightning_indexer -> linalg scores and a per-row
/// top-k (attn-decompose-sparse).
void populateAttnDecomposeSparsePatterns(RewritePatternSet &patterns);

/// arith.extf from and arith.truncf to f8E4M3FN (scalars) -> integer
/// arithmetic on the bits (attn-expand-f8e4m3fn): exact widening, and
/// narrowing that rounds to nearest even and saturates to ±448.
void populateExpandF8E4M3FNPatterns(RewritePatternSet &patterns);

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_TRANSFORMS_H
