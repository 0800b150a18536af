//===- MaskAnalysis.h - exact mask analysis for attn-fuse -------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// attn-fuse reads a mask as the set of (query row i, key column j) it admits
// on the domain 0 <= i < Sq, 0 <= j < Sk. A predicate mask (arith.cmpi,
// andi/ori/xori, select on i1, linear index arithmetic, runtime sizes)
// becomes a Presburger set; a constant mask is scanned row by row. Either is
// a mask attn.attention can take exactly when that set equals a band on the
// domain, and the band is the set of one MaskAttr (bottom-right aligned).
//
// With static sizes a band bounds d = j - i. With a dynamic Sq or Sk the
// mask must be one band for every size the IR allows, so Sq and Sk are
// variables of the sets and a band bounds d - (Sk - Sq), the offset from the
// bottom-right diagonal that MaskAttr is defined on: a top-left causal mask
// (j <= i) is then a band only where the IR proves Sq = Sk.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_MASKANALYSIS_H
#define ATTN_LIB_TRANSFORMS_MASKANALYSIS_H

#include "ElementwiseExpr.h"

#include "attn/IR/AttnOps.h"

#include "mlir/IR/BuiltinTypeInterfaces.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>

namespace mlir {
namespace attn {
namespace fuse {

/// Keys admitted by a mask, as a band lo <= d <= hi on d = j - i, or on
/// d - (Sk - Sq) when a size is dynamic (MaskSizes::isDynamic); a missing
/// bound is unbounded.
struct Band {
  std::optional<int64_t> lo, hi;
  void intersect(const Band &o) {
    if (o.lo)
      lo = lo ? std::max(*lo, *o.lo) : *o.lo;
    if (o.hi)
      hi = hi ? std::min(*hi, *o.hi) : *o.hi;
  }
};

/// Whether `v` is a masking value: -inf or the lowest finite f16/bf16/f32
/// (what frontends use as torch.finfo(dtype).min).
bool isMaskingValue(double v);

/// A problem size that a scalar outside the mask provably equals.
enum class SizeSym { Sq, Sk };

/// What the mask analysis knows of Sq and Sk.
struct MaskSizes {
  /// Static sizes, or ShapedType::kDynamic.
  int64_t sq, sk;
  /// Whether the IR proves Sq = Sk (only read when a size is dynamic).
  bool equal = false;
  /// Which size, if any, a scalar captured by the mask (an index or integer
  /// value defined outside it) provably is; null: none is.
  function_ref<std::optional<SizeSym>(Value)> classify = nullptr;

  bool isDynamic() const {
    return ShapedType::isDynamic(sq) || ShapedType::isDynamic(sk);
  }
};

/// The band that predicate `pred` (or its negation) admits on the domain
/// [0, Sq) x [0, Sk) of (space dim `iDim`, space dim `jDim`); none when the
/// predicate is not built from what the analysis reads or its set is not a
/// band there (for every size `sizes` allows).
std::optional<Band> getPredicateBand(const Expr *pred, bool negate,
                                     unsigned iDim, unsigned jDim,
                                     const MaskSizes &sizes);

/// The band admitted by a constant mask read at `map` over the space, where
/// `admitted(value)` says whether an element admits its key. Fails unless
/// the mask is the same for every batch index and exactly a band. Static
/// sizes only (a constant mask has a static shape).
std::optional<Band>
getConstantMaskBand(DenseElementsAttr attr, AffineMap map, unsigned iDim,
                    unsigned jDim, int64_t sq, int64_t sk,
                    function_ref<std::optional<bool>(Attribute)> admitted);

/// The mask attribute whose admitted set equals `band` on the domain (query
/// row i at key position i + Sk - Sq) for every size `sizes` allows; none if
/// no attribute does.
std::optional<MaskAttr> getMaskAttr(MLIRContext *ctx, const Band &band,
                                    const MaskSizes &sizes);

} // namespace fuse
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_MASKANALYSIS_H
