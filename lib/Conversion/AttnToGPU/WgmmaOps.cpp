//===- WgmmaOps.cpp - wgmma operands and chains ---------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "WgmmaOps.h"
#include "InlinePtx.h"
#include "KernelCommon.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cassert>

using namespace mlir;

static Value ci64(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantOp::create(b, b.getI64IntegerAttr(v));
}

Value mlir::attn::detail::buildWgmmaDescriptor(ImplicitLocOpBuilder &b,
                                               Value addr, int64_t lbo) {
  Value a = arith::AndIOp::create(
      b, arith::ShRUIOp::create(b, addr, ci64(b, 4)), ci64(b, 0x3FFF));
  int64_t fixed = ((lbo >> 4) & 0x3FFF) << 16 | (int64_t(1024 >> 4) << 32) |
                  (int64_t(1) << 62);
  return arith::OrIOp::create(b, a, ci64(b, fixed));
}

Value mlir::attn::detail::advanceWgmmaDescriptor(ImplicitLocOpBuilder &b,
                                                 Value desc, int64_t offset) {
  assert(offset % 16 == 0 && "descriptor offsets are 16-byte units");
  return offset
             ? arith::AddIOp::create(b, desc, ci64(b, offset >> 4)).getResult()
             : desc;
}

Type mlir::attn::detail::getWgmmaAccumulatorType(MLIRContext *ctx, int64_t n) {
  return LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(n / 2, Float32Type::get(ctx)));
}

Value mlir::attn::detail::buildZeroAccumulator(ImplicitLocOpBuilder &b,
                                               int64_t n) {
  Value acc =
      LLVM::PoisonOp::create(b, getWgmmaAccumulatorType(b.getContext(), n));
  Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0.0));
  for (int64_t i = 0; i < n / 2; ++i)
    acc = LLVM::InsertValueOp::create(b, acc, zero, ArrayRef<int64_t>{i});
  return acc;
}

static NVVM::WGMMATypesAttr getWgmmaType(MLIRContext *ctx, Type t) {
  if (isa<Float8E4M3FNType>(t))
    return NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::e4m3);
  return NVVM::WGMMATypesAttr::get(ctx, t.isF16() ? NVVM::WGMMATypes::f16
                                                  : NVVM::WGMMATypes::bf16);
}

Value mlir::attn::detail::buildWgmmaChain(ImplicitLocOpBuilder &b, Type elt,
                                          Value acc, int64_t n, int64_t ksteps,
                                          bool zeroInit,
                                          function_ref<Value(int64_t)> descA,
                                          function_ref<Value(int64_t)> descB,
                                          bool bMNMajor, bool negateA,
                                          bool aMNMajor) {
  MLIRContext *ctx = b.getContext();
  NVVM::WgmmaFenceAlignedOp::create(b);
  for (int64_t kk = 0; kk < ksteps; ++kk) {
    acc = NVVM::WgmmaMmaAsyncOp::create(
        b, acc.getType(), acc, descA(kk), descB(kk),
        NVVM::MMAShapeAttr::get(ctx, 64, n, getWgmmaK(elt)),
        getWgmmaType(ctx, elt), getWgmmaType(ctx, elt),
        NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::f32),
        NVVM::WGMMAScaleOutAttr::get(ctx, zeroInit && kk == 0
                                              ? NVVM::WGMMAScaleOut::zero
                                              : NVVM::WGMMAScaleOut::one),
        NVVM::WGMMAScaleInAttr::get(ctx, negateA ? NVVM::WGMMAScaleIn::neg
                                                 : NVVM::WGMMAScaleIn::one),
        NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one),
        NVVM::MMALayoutAttr::get(ctx, aMNMajor ? NVVM::MMALayout::col
                                               : NVVM::MMALayout::row),
        NVVM::MMALayoutAttr::get(ctx, bMNMajor ? NVVM::MMALayout::row
                                               : NVVM::MMALayout::col),
        /*satfinite=*/nullptr);
  }
  NVVM::WgmmaGroupSyncAlignedOp::create(b);
  return acc;
}

int64_t mlir::attn::detail::getWgmmaK(Type elt) {
  return isa<Float8E4M3FNType>(elt) ? 32 : 16;
}

Value mlir::attn::detail::buildWgmmaTransposedProduct(
    ImplicitLocOpBuilder &b, Type elt, Value xDesc, int64_t xRows, Value yDesc,
    int64_t yRows, int64_t dim) {
  return buildWgmmaChain(
      b, elt,
      LLVM::PoisonOp::create(b, getWgmmaAccumulatorType(b.getContext(), yRows)),
      yRows, dim / 16, /*zeroInit=*/true,
      [&](int64_t kk) {
        return advanceWgmmaDescriptor(b, xDesc, getKMajorStepOffset(kk, xRows));
      },
      [&](int64_t kk) {
        return advanceWgmmaDescriptor(b, yDesc, getKMajorStepOffset(kk, yRows));
      },
      /*bMNMajor=*/false);
}

Value mlir::attn::detail::buildWgmmaRegisterAChain(
    ImplicitLocOpBuilder &b, Type elt, Value acc, ValueRange a, int64_t n,
    function_ref<Value(int64_t)> descB, bool bKMajor) {
  const bool fresh = !acc;
  if (fresh)
    acc = LLVM::PoisonOp::create(b, getWgmmaAccumulatorType(b.getContext(), n));
  NVVM::WgmmaFenceAlignedOp::create(b);
  for (int64_t kk = 0; kk < static_cast<int64_t>(a.size()) / 4; ++kk)
    acc = createWgmmaRegisterA(
        b, b.getLoc(), acc, a.slice(4 * kk, 4), descB(kk), n, elt,
        /*transB=*/!bKMajor && !isa<Float8E4M3FNType>(elt),
        /*accumulate=*/!(fresh && kk == 0));
  NVVM::WgmmaGroupSyncAlignedOp::create(b);
  return acc;
}

Value mlir::attn::detail::buildSwizzledChunkOffset(ImplicitLocOpBuilder &b,
                                                   Value base, Value r,
                                                   Value chunk, int64_t rows) {
  Emitter e{b};
  Value panel = e.div(chunk, e.idx(8));
  Value swz = e.xori(e.rem(chunk, e.idx(8)), e.rem(r, e.idx(8)));
  return e.add(e.add(base, e.mul(panel, e.idx(rows * 128))),
               e.add(e.mul(r, e.idx(128)), e.mul(swz, e.idx(16))));
}

void mlir::attn::detail::buildWgmmaWait(ImplicitLocOpBuilder &b,
                                        int64_t pending) {
  NVVM::WgmmaWaitGroupSyncOp::create(b, b.getI64IntegerAttr(pending));
}

SmallVector<Value> mlir::attn::detail::packRegisterA(ImplicitLocOpBuilder &b,
                                                     Type elt,
                                                     ArrayRef<Value> x) {
  auto pairType = VectorType::get({2}, elt);
  auto wordType = VectorType::get({1}, b.getI32Type());
  SmallVector<Value> regs;
  // Accumulator index 4n + 2i + j: registers in (n, i) order are the
  // fragments' a0 .. a3 of k-step n / 2 in turn.
  for (size_t first = 0; first + 1 < x.size(); first += 2) {
    Value pair = vector::FromElementsOp::create(
        b, pairType,
        ValueRange{arith::TruncFOp::create(b, elt, x[first]),
                   arith::TruncFOp::create(b, elt, x[first + 1])});
    Value word = vector::BitCastOp::create(b, wordType, pair);
    regs.push_back(vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0}));
  }
  return regs;
}
