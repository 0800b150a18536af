//===- MaskUtils.cpp - IR for the semantics of #attn.mask -----------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::attn;

/// Window extents beyond any real length are clamped so that index math
/// cannot overflow; they admit the same keys.
static int64_t clampExtent(int64_t extent) {
  return std::min<int64_t>(extent, int64_t(1) << 40);
}

namespace {
/// The window extents of a band as index arithmetic: the attribute's
/// (clamped) constants, or the band's run-time values.
struct Extents {
  OpBuilder &b;
  Location loc;
  const MaskBand &band;

  Value cst(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  /// `pos + right + k`.
  Value afterRight(Value pos, int64_t k) {
    if (band.right)
      return arith::AddIOp::create(
          b, loc, pos, arith::AddIOp::create(b, loc, band.right, cst(k)));
    int64_t right =
        band.mask.isWindow() ? clampExtent(band.mask.getRight()) : 0;
    return arith::AddIOp::create(b, loc, pos, cst(right + k));
  }
  /// `pos - left`.
  Value beforeLeft(Value pos) {
    Value left = band.left ? band.left : cst(clampExtent(band.mask.getLeft()));
    return arith::SubIOp::create(b, loc, pos, left);
  }
};
} // namespace

std::pair<Value, Value> mlir::attn::buildAdmittedKeys(OpBuilder &b,
                                                      Location loc,
                                                      MaskAttr mask, Value pos,
                                                      Value sk) {
  return buildAdmittedKeys(b, loc, MaskBand{mask, Value(), Value()}, pos, sk);
}

std::pair<Value, Value> mlir::attn::buildAdmittedKeys(OpBuilder &b,
                                                      Location loc,
                                                      const MaskBand &band,
                                                      Value pos, Value sk) {
  Extents x{b, loc, band};
  Value zero = x.cst(0), lo = zero, hi = sk;
  if (!band.mask.isNone()) {
    Value end = x.afterRight(pos, 1);
    hi = arith::MaxSIOp::create(b, loc, zero,
                                arith::MinSIOp::create(b, loc, sk, end));
  }
  if (band.mask.isWindow())
    lo = arith::MaxSIOp::create(b, loc, zero, x.beforeLeft(pos));
  return {lo, hi};
}

std::pair<Value, Value>
mlir::attn::buildAdmittingPositions(OpBuilder &b, Location loc, MaskAttr mask,
                                    Value keyBegin, Value keyEnd, Value minPos,
                                    Value maxPos) {
  return buildAdmittingPositions(b, loc, MaskBand{mask, Value(), Value()},
                                 keyBegin, keyEnd, minPos, maxPos);
}

std::pair<Value, Value>
mlir::attn::buildAdmittingPositions(OpBuilder &b, Location loc,
                                    const MaskBand &band, Value keyBegin,
                                    Value keyEnd, Value minPos, Value maxPos) {
  // A row at position p admits the keys [p - left, p + right]; it meets
  // [keyBegin, keyEnd) iff p + right >= keyBegin and p - left < keyEnd.
  if (band.mask.isNone())
    return {minPos, maxPos};
  Extents x{b, loc, band};
  Value right =
      band.right
          ? band.right
          : x.cst(band.mask.isWindow() ? clampExtent(band.mask.getRight()) : 0);
  Value lo = arith::MaxSIOp::create(
      b, loc, minPos, arith::SubIOp::create(b, loc, keyBegin, right));
  Value hi = maxPos;
  if (band.mask.isWindow()) {
    Value left =
        band.left ? band.left : x.cst(clampExtent(band.mask.getLeft()));
    hi = arith::MinSIOp::create(b, loc, maxPos,
                                arith::AddIOp::create(b, loc, keyEnd, left));
  }
  return {lo, hi};
}

Value mlir::attn::buildAdmitsKey(OpBuilder &b, Location loc, MaskAttr mask,
                                 Value pos, Value key) {
  return buildAdmitsKey(b, loc, MaskBand{mask, Value(), Value()}, pos, key);
}

Value mlir::attn::buildAdmitsKey(OpBuilder &b, Location loc,
                                 const MaskBand &band, Value pos, Value key) {
  if (band.mask.isNone())
    return Value();
  Extents x{b, loc, band};
  Value ok = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, key,
                                   x.afterRight(pos, 0));
  if (band.mask.isWindow())
    ok = arith::AndIOp::create(b, loc, ok,
                               arith::CmpIOp::create(b, loc,
                                                     arith::CmpIPredicate::sge,
                                                     key, x.beforeLeft(pos)));
  return ok;
}

Value mlir::attn::buildPagedSequenceLength(OpBuilder &b, Location loc,
                                           Value len, Value capacity) {
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  return arith::MaxSIOp::create(b, loc, zero,
                                arith::MinSIOp::create(b, loc, len, capacity));
}
