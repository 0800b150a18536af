//===- PagedSplitKernel.cpp - what the paged split kernels share ----------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "PagedSplitKernel.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

PagedSplitKernel::PagedSplitKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                                   const PagedAttentionSpec &spec,
                                   bool separateValues)
    : PagedSplitKernel(b, func, spec, OwnArguments{}) {
  SmallVector<Value *> slots{&qArg, &kArg};
  if (separateValues)
    slots.push_back(&vArg);
  slots.append({&tableArg, &lensArg, &oPart, &lsePart, &batch, &hq, &hkv, &sq,
                &maxPages, &splits});
  if (separateValues)
    slots.push_back(&vStride);
  // The values left to run time come last (KernelSignature::runtimeValues).
  if (runtimeValues) {
    valueArgs.resize(1 + (softcap ? 1 : 0) + (band.mask.isWindow() ? 2 : 0));
    for (Value &v : valueArgs)
      slots.push_back(&v);
  }
  bindArguments(func, slots);
}

PagedSplitKernel::PagedSplitKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                                   const PagedAttentionSpec &spec, OwnArguments)
    : Emitter{b}, func(func), loc(b.getLoc()), ctx(b.getContext()),
      D(spec.headDim), Dv(spec.valueHeadDim), P(spec.pageSize),
      hnd(spec.cacheLayout == CacheLayout::HND), elt(getType(ctx, spec.dtype)),
      f32(b.getF32Type()), band{spec.mask.getAttr(ctx), Value(), Value()},
      softcap(spec.softcap),
      factor(spec.scale * (softcap ? 1.0 / *softcap : llvm::numbers::log2e)),
      runtimeValues(spec.runtimeValues), aType(VectorType::get({4, 2}, elt)),
      cType(VectorType::get({2, 2}, f32)) {}

void mlir::attn::detail::bindArguments(gpu::GPUFuncOp func,
                                       ArrayRef<Value *> slots) {
  for (auto [slot, arg] :
       llvm::zip_equal(slots, func.getBody().front().getArguments()))
    *slot = arg;
}

Value PagedSplitKernel::sharedView(Value smem, ArrayRef<int64_t> dims, Type t,
                                   int64_t at) {
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  auto type = MemRefType::get(dims, t, AffineMap(), workgroup);
  return memref::ViewOp::create(b, type, smem, idx(at), ValueRange{});
}

void PagedSplitKernel::emitBlockIndices(int64_t valueChunks,
                                        int64_t chunkCols) {
  c0 = idx(0);
  c1 = idx(1);
  bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value by = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  kvh = valueChunks > 1 ? div(by, idx(valueChunks)) : by;
  chunkCol0 =
      valueChunks > 1 ? mul(rem(by, idx(valueChunks)), idx(chunkCols)) : c0;
  bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  if (runtimeValues) {
    RuntimeValues values = materializeRuntimeValues(
        b, loc, valueArgs, softcap.has_value(), band.mask.isWindow());
    scoreFactor = values.scoreFactor;
    softcapFactor = values.softcapFactor;
    band.left = values.windowLeft;
    band.right = values.windowRight;
  }
  split = rem(bx, splits);
  rowTile = div(bx, splits);
  warp = div(tid, idx(32));
  lane = rem(tid, idx(32));
  g = div(lane, idx(4));
  t = rem(lane, idx(4));
}

void PagedSplitKernel::emitKeyRange(int64_t rowsPerBlock, int64_t keysPerTile) {
  tileKeys = keysPerTile;
  group = div(hq, hkv);
  rows = mul(group, sq);
  r0 = mul(rowTile, idx(rowsPerBlock));
  len = buildPagedSequenceLength(b, loc, loadIndex(lensArg, bIdx),
                                 mul(maxPages, idx(P)));
  off = sub(len, sq);
  Value lastRow = sub(smin(add(r0, idx(rowsPerBlock)), rows), c1);
  auto firstBand =
      buildAdmittedKeys(b, loc, band, add(div(r0, group), off), len);
  auto lastBand =
      buildAdmittedKeys(b, loc, band, add(div(lastRow, group), off), len);
  Value chunk =
      mul(ceilDiv(ceilDiv(len, splits), idx(tileKeys)), idx(tileKeys));
  kBegin = smax(firstBand.first, mul(split, chunk));
  kEnd = smin(lastBand.second, mul(add(split, c1), chunk));
  steps = sel(slt(kBegin, kEnd), ceilDiv(sub(kEnd, kBegin), idx(tileKeys)), c0);
}

Value PagedSplitKernel::tileKey(Value step, Value offset) {
  return add(add(kBegin, mul(step, idx(tileKeys))), offset);
}

Value PagedSplitKernel::rowElement(Value r, int64_t dim) {
  Value token = div(r, group);
  Value head = add(mul(kvh, group), rem(r, group));
  return mul(add(mul(add(mul(bIdx, sq), token), hq), head), idx(dim));
}

Value PagedSplitKernel::loadIndex(Value m, ValueRange i) {
  return arith::IndexCastOp::create(b, b.getIndexType(), load(m, i));
}

void PagedSplitKernel::stageQuery(
    Value qS, int64_t rowsPerBlock, int64_t threads,
    function_ref<Value(Value, Value, int64_t)> swizzle) {
  auto vec8 = VectorType::get({8}, elt);
  Value zero = arith::ConstantOp::create(
      b, vec8, DenseElementsAttr::get(vec8, b.getZeroAttr(elt)));
  loop(tid, idx(rowsPerBlock * D / 8), idx(threads), [&](Value e) {
    Value e8 = mul(e, idx(8));
    Value r = div(e8, idx(D)), c = rem(e8, idx(D));
    Value row = add(r0, r);
    Value x = ifElse(slt(row, rows), zero, [&] {
      return SmallVector<Value>{vector::LoadOp::create(
          b, vec8, qArg, ValueRange{add(rowElement(row, D), c)})};
    })[0];
    vector::StoreOp::create(b, x, qS, ValueRange{r, swizzle(r, c, D)});
  });
}

Value PagedSplitKernel::readPage(Value tableRow, Value valid, Value key) {
  return loadIndex(tableArg,
                   sel(valid, add(tableRow, div(key, idx(P))), tableRow));
}

Value PagedSplitKernel::cacheRow(Value page, Value slot) {
  return hnd ? add(mul(add(mul(page, hkv), kvh), idx(P)), slot)
             : add(mul(add(mul(page, idx(P)), slot), hkv), kvh);
}

Value PagedSplitKernel::copyChunk(Value dst, ValueRange dstIndices, Value src,
                                  Value srcIndex, Value inside) {
  return nvgpu::DeviceAsyncCopyOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(ctx), dst, dstIndices, src,
      ValueRange{srcIndex}, b.getIndexAttr(8), sel(inside, idx(8), c0),
      /*bypassL1=*/b.getUnitAttr());
}

Value PagedSplitKernel::ldmatrix(Value buffer, ValueRange indices,
                                 bool transpose) {
  return nvgpu::LdMatrixOp::create(b, aType, buffer, indices, transpose, 4);
}

std::pair<Value, Value>
PagedSplitKernel::loadBPair(Value buffer, ValueRange indices, bool transpose) {
  return splitLdMatrixPair(b, loc, ldmatrix(buffer, indices, transpose));
}

Value PagedSplitKernel::zeroAccumulator() {
  return arith::ConstantOp::create(
      b, cType, DenseElementsAttr::get(cType, b.getF32FloatAttr(0.0)));
}

std::array<SmallVector<Value>, 2>
PagedSplitKernel::maskedLogits(ArrayRef<Value> sAcc, Value tileKey0,
                               const Value pos[2]) {
  return maskedLogits(sAcc, tileKey0, [&](int64_t i, Value key) {
    Value ok = slt(key, kEnd);
    if (Value inBand = buildAdmitsKey(b, loc, band, pos[i], key))
      ok = land(ok, inBand);
    return ok;
  });
}

std::array<SmallVector<Value>, 2>
PagedSplitKernel::maskedLogits(ArrayRef<Value> sAcc, Value tileKey0,
                               function_ref<Value(int64_t, Value)> admits) {
  std::array<SmallVector<Value>, 2> x;
  for (auto [nt, acc] : llvm::enumerate(sAcc))
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        Value s = vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
        s = fmul(s, scoreFactor ? scoreFactor : f(factor));
        if (softcap)
          s = fmul(math::TanhOp::create(b, s),
                   softcapFactor ? softcapFactor
                                 : f(*softcap * llvm::numbers::log2e));
        Value key = add(add(tileKey0, idx(8 * nt + j)), mul(t, idx(2)));
        x[i].push_back(sel(admits(i, key), s, f(-INFINITY)));
      }
  return x;
}

PagedSplitKernel::RowStep PagedSplitKernel::softmaxStep(Value mOld, Value lOld,
                                                        Value m,
                                                        ArrayRef<Value> x) {
  RowStep step;
  Value isNinf =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, m, f(-INFINITY));
  Value mSafe = sel(isNinf, f(0.0), m);
  step.alpha = exp2(fsub(mOld, mSafe));
  for (Value v : x)
    step.p.push_back(exp2(fsub(v, mSafe)));
  step.l =
      fadd(fmul(lOld, step.alpha),
           treeReduce(step.p, [&](Value u, Value v) { return fadd(u, v); }));
  return step;
}

Value PagedSplitKernel::scaleRows(Value acc, Value alpha0, Value alpha1) {
  Value alpha[2] = {alpha0, alpha1};
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j) {
      Value a = vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
      acc = vector::InsertOp::create(b, fmul(a, alpha[i]), acc,
                                     ArrayRef<int64_t>{i, j});
    }
  return acc;
}

Value PagedSplitKernel::naturalLse(Value m, Value l) {
  return fmul(fadd(m, math::Log2Op::create(b, l)), f(llvm::numbers::ln2));
}

Value PagedSplitKernel::partialRow(Value rowsAll, Value row) {
  return add(mul(split, rowsAll), rowElement(row, 1));
}
