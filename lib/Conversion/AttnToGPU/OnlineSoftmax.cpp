//===- OnlineSoftmax.cpp - the online softmax on MMA accumulators ---------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

Value mlir::attn::detail::getAccumulatorElement(OpBuilder &b, Location loc,
                                                ValueRange acc, int64_t n,
                                                int64_t i, int64_t j) {
  if (isa<LLVM::LLVMStructType>(acc.front().getType()))
    return LLVM::ExtractValueOp::create(b, loc, acc.front(),
                                        ArrayRef<int64_t>{n * 4 + i * 2 + j});
  return vector::ExtractOp::create(b, loc, acc[n], ArrayRef<int64_t>{i, j});
}

Value OnlineSoftmax::exp2(Value x) {
  if (!approxExp2)
    return e.exp2(x);
  return LLVM::CallIntrinsicOp::create(
             e.b, e.b.getF32Type(),
             e.b.getStringAttr("llvm.nvvm.ex2.approx.ftz.f32"), ValueRange{x})
      ->getResult(0);
}

Value OnlineSoftmax::quadMax(Value v) {
  for (int32_t o : {1, 2})
    v = e.fmax(v, e.shuffleXor(v, o));
  return v;
}

Value OnlineSoftmax::rowMax(ArrayRef<Value> terms) {
  return quadMax(
      treeReduce(terms, [&](Value x, Value y) { return e.fmax(x, y); }));
}

OnlineSoftmax::RowUpdate OnlineSoftmax::update(Value newMax, Value max,
                                               Value sum) {
  RowUpdate u;
  u.max = newMax;
  Value isNinf = e.feq(newMax, e.f(-INFINITY));
  u.safeMax = e.sel(isNinf, e.f(0.0), newMax);
  u.alpha = exp2(e.fsub(max, u.safeMax));
  u.sum = e.fmul(sum, u.alpha);
  return u;
}

Value OnlineSoftmax::rowSum(ArrayRef<Value> terms) {
  return treeReduce(terms, [&](Value x, Value y) { return e.fadd(x, y); });
}

Value OnlineSoftmax::rescaleWhereMoved(Value acc, ArrayRef<Value> alpha) {
  ImplicitLocOpBuilder &b = e.b;
  auto moved = [&](Value a) {
    return arith::CmpFOp::create(b, arith::CmpFPredicate::UNE, a, e.f(1.0));
  };
  Value anyMoved = NVVM::VoteSyncOp::create(
      b, b.getI1Type(), arith::ConstantOp::create(b, b.getI32IntegerAttr(-1)),
      arith::OrIOp::create(b, moved(alpha[0]), moved(alpha[1])),
      NVVM::VoteSyncKind::any);
  return e.ifElse(anyMoved, ValueRange{acc},
                  [&] { return SmallVector<Value>{rescale(acc, alpha)}; })[0];
}

Value OnlineSoftmax::rescale(Value acc, ArrayRef<Value> alpha) {
  ImplicitLocOpBuilder &b = e.b;
  if (auto type = dyn_cast<LLVM::LLVMStructType>(acc.getType())) {
    int64_t tiles = type.getBody().size() / 4;
    for (int64_t n = 0; n < tiles; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          int64_t pos = n * 4 + i * 2 + j;
          Value a =
              LLVM::ExtractValueOp::create(b, acc, ArrayRef<int64_t>{pos});
          acc = LLVM::InsertValueOp::create(b, acc, e.fmul(a, alpha[i]),
                                            ArrayRef<int64_t>{pos});
        }
    return acc;
  }
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j) {
      Value a = vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
      acc = vector::InsertOp::create(b, e.fmul(a, alpha[i]), acc,
                                     ArrayRef<int64_t>{i, j});
    }
  return acc;
}

Value OnlineSoftmax::lse(Value m, Value l, Value empty) {
  Value r = e.fmul(e.fadd(m, e.log2(l)), e.f(llvm::numbers::ln2));
  return e.sel(empty, e.f(-INFINITY), r);
}
