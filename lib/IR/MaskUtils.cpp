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

std::pair<Value, Value> mlir::attn::buildAdmittedKeys(OpBuilder &b,
                                                      Location loc,
                                                      MaskAttr mask, Value pos,
                                                      Value sk) {
  auto cst = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  Value zero = cst(0), lo = zero, hi = sk;
  if (!mask.isNone()) {
    int64_t right = mask.isWindow() ? clampExtent(mask.getRight()) : 0;
    Value end = arith::AddIOp::create(b, loc, pos, cst(right + 1));
    hi = arith::MaxSIOp::create(b, loc, zero,
                                arith::MinSIOp::create(b, loc, sk, end));
  }
  if (mask.isWindow()) {
    Value start =
        arith::SubIOp::create(b, loc, pos, cst(clampExtent(mask.getLeft())));
    lo = arith::MaxSIOp::create(b, loc, zero, start);
  }
  return {lo, hi};
}

Value mlir::attn::buildAdmitsKey(OpBuilder &b, Location loc, MaskAttr mask,
                                 Value pos, Value key) {
  if (mask.isNone())
    return Value();
  auto cst = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  int64_t right = mask.isWindow() ? clampExtent(mask.getRight()) : 0;
  Value ok =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, key,
                            arith::AddIOp::create(b, loc, pos, cst(right)));
  if (mask.isWindow()) {
    Value first =
        arith::SubIOp::create(b, loc, pos, cst(clampExtent(mask.getLeft())));
    ok = arith::AndIOp::create(
        b, loc, ok,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, key, first));
  }
  return ok;
}

Value mlir::attn::buildPagedSequenceLength(OpBuilder &b, Location loc,
                                           Value len, Value capacity) {
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  return arith::MaxSIOp::create(b, loc, zero,
                                arith::MinSIOp::create(b, loc, len, capacity));
}
