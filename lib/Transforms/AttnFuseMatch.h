//===- AttnFuseMatch.h - what attn-fuse's matcher finds ---------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Shared by the three parts of attn-fuse: the matcher (AttnFuseMatch.cpp)
// fills an AttentionMatch or names a FuseMiss, the mask analysis
// (MaskAnalysis.cpp) decides masks, the rewrite (AttnFuse.cpp) emits
// attn.attention from the match.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_ATTNFUSEMATCH_H
#define ATTN_LIB_TRANSFORMS_ATTNFUSEMATCH_H

#include "MaskAnalysis.h"

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

/// populateAttnFusePatterns with a callback for misses.
void populateAttnFusePatterns(RewritePatternSet &patterns,
                              FuseMissCallback onMiss);

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
};

/// Runs the whole match for P·V contraction `pvOp`; on failure, `miss` says
/// why.
FailureOr<AttentionMatch> matchAttention(Operation *pvOp, FuseMiss &miss);

} // namespace fuse
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_ATTNFUSEMATCH_H
