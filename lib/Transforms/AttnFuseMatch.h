//===- AttnFuseMatch.h - what attn-fuse's matcher finds ---------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Shared by the parts of attn-fuse: the matcher (AttnFuseMatch.cpp, and
// AttnFuseBackward.cpp for the backward of a training graph) fills an
// AttentionMatch or names a FuseMiss, the mask analysis (MaskAnalysis.cpp)
// decides masks, the rewrite (AttnFuse.cpp) emits attn.attention (and
// attn.attention_grad) from the match.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_ATTNFUSEMATCH_H
#define ATTN_LIB_TRANSFORMS_ATTNFUSEMATCH_H

#include "MaskAnalysis.h"

#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SetVector.h"

#include <functional>

namespace mlir {
namespace attn {
namespace fuse {

//===----------------------------------------------------------------------===//
// Misses
//===----------------------------------------------------------------------===//

/// Why a candidate P·V contraction was not fused.
enum class FuseMiss {
  // Not attention at all (never reported).
  NotAContraction,
  PLayout,
  NoSoftmax,
  // Attention-like graphs that attn-fuse could not take.
  Logits,
  BatchRanks,
  BatchReshapes,
  QRepeated,
  TooManyBatchDims,
  QBatchDims,
  KVHeads,
  GroupedDim,
  Sizes,
  ScoresEscape,
  Mask,
  EmptyProblem,
  KVHeadsDivide,
  SizeBounds,
  QKVReshape,
  ElementType,
  OutputReshape,
  DynamicBias,
  TransposedBias,
  BiasBroadcast,
  BiasReshape,
  BiasElementType,
  DynamicHeadDim,
  MaskNeedsEqualLengths,
  GradientReshape,
};

/// The message reported for a miss (remarks and notifyMatchFailure).
StringRef getMessage(FuseMiss miss);

/// Misses worth reporting: the contraction consumes a softmax of P laid out
/// as [batch..., i, j].
inline bool isLikelyAttention(FuseMiss miss) {
  return miss >= FuseMiss::Logits;
}

/// Called by the patterns on each miss (report-misses).
using FuseMissCallback = std::function<void(Operation *, FuseMiss)>;

/// populateAttnFusePatterns with a callback for misses; `fuseBackward`:
/// whether training graphs fuse (into attn.attention_grad too).
void populateAttnFusePatterns(RewritePatternSet &patterns,
                              FuseMissCallback onMiss, bool fuseBackward);

//===----------------------------------------------------------------------===//
// Dimension labels and traces
//===----------------------------------------------------------------------===//

/// What one dimension of a traced tensor is. Batch dims carry a path: the
/// index of the contraction batch dim they come from, then the position
/// within each reshape group that split it (outer first). Paths order batch
/// parts the way row-major flattening does.
struct DimLabel {
  enum Role { Batch, Row, Col, Unit } role;
  SmallVector<int64_t, 4> path;
  int64_t size;
};

using Labels = SmallVector<DimLabel, 5>;

/// Whether sizes `a` and `b` (static or ShapedType::kDynamic) may be equal.
inline bool compatible(int64_t a, int64_t b) {
  return a == b || ShapedType::isDynamic(a) || ShapedType::isDynamic(b);
}

inline bool isPrefix(ArrayRef<int64_t> prefix, ArrayRef<int64_t> path) {
  return prefix.size() <= path.size() &&
         prefix == path.take_front(prefix.size());
}

/// A two-operand contraction out[batch..., m, n] = sum_k lhs * rhs.
struct Contraction {
  Operation *op;
  Value lhs, rhs, result;
  Labels lhsDims, rhsDims; ///< Batch [t] / Row (m or n) / Col (k).
  unsigned numBatch;
};

/// A contraction operand traced back to its source tensor.
struct Trace {
  Value source;
  Labels dims;                  ///< Labels of the source's dims.
  Labels reps;                  ///< Batch parts created by a broadcast.
  SmallVector<Operation *> ops; ///< Ops looked through.
  double scale = 1.0;           ///< Constant factor peeled off (Q only).
};

/// A gradient of the backward: the contraction that computes it and the
/// value it ends in (after batch reshapes, transposes, the GQA group sum and
/// element type conversions), which the rewrite replaces.
struct GradientMatch {
  Operation *contraction = nullptr;
  Value root;
  /// Labels of the root's dims: batch parts as in the forward traces, Row =
  /// the sequence dim, Col = the head dim.
  Labels dims;
  /// Constant factor applied between the contraction and the root.
  double scale = 1.0;
};

/// The backward graph of a matched attention (see AttnFuseBackward.cpp).
struct BackwardMatch {
  /// dO traced to its source, labelled like Q (Row = Sq, Col = Dv).
  Trace dO;
  /// The gradients; one whose input the graph computes no gradient for
  /// (autograd emits no chain for a frozen input) has a null root.
  GradientMatch dq, dk, dv;
  /// The dO·Vᵀ contraction (null when only dV is computed).
  Operation *dP = nullptr;
  /// Views of Q, K, V and dO that the backward contractions read: absorbed
  /// (erased when dead) but, like the forward's traces, free to have other
  /// users.
  SetVector<Operation *> inputOps;
};

/// How K or V relates to Q's batch parts: per Q part, the KV size; and the
/// group size of the (single) grouped part.
struct KVGrouping {
  SmallVector<int64_t> sizes;
  int64_t group = 1;
  int64_t groupedPart = -1;
};

/// What attn-fuse found, ready for the rewrite.
struct AttentionMatch {
  Contraction qk, pv;
  Trace q, k, v;
  Labels qParts;
  KVGrouping kGroup;
  /// Problem sizes; Sq and Sk (and the batch parts) may be
  /// ShapedType::kDynamic, D and Dv are static.
  int64_t sq = 0, sk = 0, d = 0, dv = 0;
  /// Whether the IR proves Sq = Sk (read when one is dynamic).
  bool equalLengths = false;
  /// The mask (see Band for its frame).
  Band band;
  double scale = 1.0;
  std::optional<double> softcap;
  Value bias;
  AffineMap biasMap;
  SmallVector<SmallVector<int64_t, 4>> spacePaths;
  SetVector<Operation *> absorbed;
  /// The scores space [batch..., i, j] (P, or what a batch collapse merged
  /// into P) and its i and j dims.
  Value space;
  unsigned iDim = 0, jDim = 0;
  /// P as P·V reads it, traced through views and casts (Row = i, Col = j).
  Trace p;
  /// Set when the scores also feed the backward of this attention.
  std::optional<BackwardMatch> backward;
};

/// Runs the whole match for P·V contraction `pvOp` (and, if `withBackward`,
/// its backward); on failure, `miss` says why.
FailureOr<AttentionMatch> matchAttention(Operation *pvOp, FuseMiss &miss,
                                         bool withBackward);

/// Matches the backward graph of the forward attention `m` (whose scores
/// have users outside the forward) and records it in `m.backward`, adding
/// its ops to `m.absorbed`; fails, leaving `m` as it was, unless each of
/// dQ, dK and dV that the graph computes is computed exactly as autograd
/// computes it.
LogicalResult matchBackward(AttentionMatch &m);

//===----------------------------------------------------------------------===//
// Pieces the forward and backward matchers share (AttnFuseMatch.cpp)
//===----------------------------------------------------------------------===//

/// Recognizes linalg contractions (named or generic, any indexing maps) and
/// tosa.matmul with one m, n and k dim.
FailureOr<Contraction> getContraction(Operation *op);

/// Traces `v`, whose dims are labelled `dims`, back through views, casts and
/// (if `allowScale`) a constant scale to its source.
Trace traceOperand(Value v, const Labels &dims, bool allowScale);

/// Whether `t` is a contraction result, possibly split into more batch dims
/// by an expand_shape; that contraction.
Operation *getScoresContraction(Value t);

/// Batch reshape: `op` is an expand/collapse_shape that keeps the last two
/// dims as singleton groups. Returns the groups of the batch dims.
std::optional<SmallVector<ReassociationIndices>>
getBatchReshapeGroups(Operation *op);

/// Space batch paths for batch groups.
SmallVector<SmallVector<int64_t, 4>>
getGroupPaths(ArrayRef<ReassociationIndices> groups);

/// Labels of the larger side of a reshape (`st`) from those of the smaller
/// (`dims`): batch labels split into path parts.
LogicalResult labelCollapseSource(ArrayRef<ReassociationIndices> groups,
                                  RankedTensorType st, const Labels &dims,
                                  Labels &next);

/// Labels of the smaller side of a reshape (`st`) from those of the larger
/// (`dims`): each group keeps its one labelled member.
LogicalResult labelExpandSource(ArrayRef<ReassociationIndices> groups,
                                RankedTensorType st, const Labels &dims,
                                Labels &next);

/// If `op` only moves data (a linalg.generic whose body yields its single
/// input), the input's indexing map; otherwise null.
AffineMap getCopyMap(linalg::LinalgOp op);

/// Batch parts of a trace, sorted by path.
Labels getBatchParts(const Labels &dims);

/// Which problem size, if any, the index or integer scalar `v` provably is
/// (what the mask analysis reads runtime sizes in masks as).
std::optional<SizeSym> classifySize(const AttentionMatch &m, Value v);

} // namespace fuse
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_ATTNFUSEMATCH_H
