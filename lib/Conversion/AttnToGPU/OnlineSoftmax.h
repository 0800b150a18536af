//===- OnlineSoftmax.h - the online softmax on MMA accumulators -*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: the online softmax of the
// tensor-core kernels (mma.sync m16n8k16 and wgmma m64nNk16), on the f32
// accumulators as a thread holds them. Both MMAs give thread `lane` of a
// warp the rows g = lane / 4 and g + 8 of the warp's 16 rows, and the
// columns 8n + 2t and 8n + 2t + 1 of every 8-column tile n (t = lane % 4):
// element (n, i, j) of the thread's fragment is row g + 8i, column
// 8n + 2t + j. A row's elements are thus spread over the quad of lanes
// 4g .. 4g + 3, and its statistics need two xor shuffles.
//
// One step over a block of keys, per row (logits x in the exp2 domain, -inf
// outside the band; m, l the running max and sum, l partial per thread):
//
//   m' = max(m, quad max of x)               rowMax, update
//   m's = m' with -inf replaced by 0         (a row without keys so far:
//                                             exp2(x - m's) stays 0, not NaN)
//   alpha = exp2(m - m's); l = l·alpha       update
//   p = exp2(x - m's); l += sum of p         weight, rowSum
//   O = O·alpha + P·V                        rescale
//
// and after the last block: l = quad sum of l; O / l, 0 where l = 0; the
// LSE (m + log2 l)·ln 2, -inf where l = 0 (finalSum, normalize, lse).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ONLINESOFTMAX_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ONLINESOFTMAX_H

#include "KernelCommon.h"

namespace mlir {
namespace attn {
namespace detail {

/// The lanes of an MMA accumulator fragment: thread `lane` holds rows g and
/// g + 8, columns 2t and 2t + 1 of each 8-column tile.
struct FragmentLanes {
  Value g, t;

  static FragmentLanes get(Emitter &e, Value lane) {
    return {e.div(lane, e.idx(4)), e.rem(lane, e.idx(4))};
  }
  /// Column 8n + 2t + j of the tile (relative to the tile's first column
  /// `col0`).
  Value column(Emitter &e, Value col0, int64_t n, int64_t j) const {
    return e.add(e.add(col0, e.idx(n * 8 + j)), e.mul(t, e.idx(2)));
  }
};

/// Element (n, i, j) of a thread's accumulator (row g + 8i, column 8n + 2t +
/// j): `acc` holds either one `vector<2x2xf32>` per 8-column tile
/// (mma.sync) or one LLVM struct of all the elements, 4n + 2i + j
/// (wgmma).
Value getAccumulatorElement(OpBuilder &b, Location loc, ValueRange acc,
                            int64_t n, int64_t i, int64_t j);

/// The online softmax of rows held by quads of lanes (see the file
/// comment).
class OnlineSoftmax {
public:
  /// `approxExp2`: exp2 as one ex2.approx.ftz (MUFU.EX2; the arguments are
  /// <= 0 and results below 2^-126 flush to 0, which the sums cannot see)
  /// instead of math.exp2.
  OnlineSoftmax(Emitter &e, bool approxExp2 = false)
      : e(e), approxExp2(approxExp2) {}

  /// The new running max and what it takes to rescale.
  struct RowUpdate {
    Value max;     ///< m'
    Value safeMax; ///< m', 0 where it is -inf
    Value alpha;   ///< exp2(m - m's)
    Value sum;     ///< l·alpha
  };

  Value exp2(Value x);
  /// The maximum over the quad of each lane's `v`.
  Value quadMax(Value v);
  /// The maximum of `terms` (the thread's logits of a row, and m where it
  /// joins before the shuffles) over the quad: a balanced tree, then two
  /// shuffles.
  Value rowMax(ArrayRef<Value> terms);
  /// m' = `newMax` (m included); the -inf-safe max, alpha and l·alpha from
  /// the old `max` and `sum`.
  RowUpdate update(Value newMax, Value max, Value sum);
  /// p = exp2(x - m's).
  Value weight(Value x, Value safeMax) { return exp2(e.fsub(x, safeMax)); }
  /// The sum of a row's weights `terms` on this thread (a balanced tree).
  Value rowSum(ArrayRef<Value> terms);
  /// Accumulator `acc` (one tile, or the struct of all tiles) with each
  /// element of row g + 8i multiplied by `alpha[i]`.
  Value rescale(Value acc, ArrayRef<Value> alpha);
  /// rescale, skipped (a warp-uniform branch on vote.sync) where every row
  /// of the warp keeps its max (alpha = exp2(0) = 1 in every lane), as most
  /// steps do once the maxima have settled.
  Value rescaleWhereMoved(Value acc, ArrayRef<Value> alpha);

  /// The row's sum over the quad (each thread holds a partial sum).
  Value finalSum(Value l) { return e.laneSum(l, 4); }
  /// Whether a row had no admitted key (l = 0).
  Value isEmpty(Value l) { return e.feq(l, e.f(0.0)); }
  /// O element `a` times `inv` = 1 / l, 0 for an empty row.
  Value normalize(Value a, Value inv, Value empty) {
    Value v = e.fmul(a, inv);
    return e.sel(empty, e.f(0.0), v);
  }
  /// The row's log-sum-exp (natural log), -inf for an empty row.
  Value lse(Value m, Value l, Value empty);

private:
  Emitter &e;
  bool approxExp2;
};

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ONLINESOFTMAX_H
