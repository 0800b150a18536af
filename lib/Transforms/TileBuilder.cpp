//===- TileBuilder.cpp - IR builders shared by attn-tile's loops ----------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "TileBuilder.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::tiling;

using utils::IteratorType;

static constexpr double kLog2e = 1.4426950408889634;

Value TileBuilder::dimOf(Value t, unsigned d) {
  auto type = cast<RankedTensorType>(t.getType());
  if (!type.isDynamicDim(d))
    return idx(type.getDimSize(d));
  return tensor::DimOp::create(b, loc, t, d);
}

Value TileBuilder::filled(ArrayRef<Value> sizes, ArrayRef<int64_t> staticSizes,
                          Value value) {
  SmallVector<Value> dyn;
  for (auto [s, st] : llvm::zip(sizes, staticSizes))
    if (ShapedType::isDynamic(st))
      dyn.push_back(s);
  Value empty = tensor::EmptyOp::create(b, loc, staticSizes, f32, dyn);
  return linalg::FillOp::create(b, loc, value, empty).getResult(0);
}

Value TileBuilder::emptyF32(ArrayRef<Value> sizes) {
  SmallVector<int64_t> shape(sizes.size(), ShapedType::kDynamic);
  return tensor::EmptyOp::create(b, loc, shape, f32, sizes);
}

Value TileBuilder::elementwise(
    ArrayRef<Value> inputs, ArrayRef<AffineMap> maps, Value init,
    function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
  unsigned rank = cast<RankedTensorType>(init.getType()).getRank();
  SmallVector<AffineMap> all(maps);
  all.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), inputs, init, all, iters,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        linalg::YieldOp::create(nb, nloc, fn(nb, nloc, args));
      });
  return generic.getResult(0);
}

Value TileBuilder::rowReduce(Value tile, Value init, bool isMax) {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, j;
  bindDims(ctx, i, j);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), tile, init,
      {AffineMap::get(2, 0, {i, j}, ctx), AffineMap::get(2, 0, {i}, ctx)},
      {IteratorType::parallel, IteratorType::reduction},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value r =
            isMax ? (Value)arith::MaximumFOp::create(nb, nloc, args[0], args[1])
                  : (Value)arith::AddFOp::create(nb, nloc, args[0], args[1]);
        linalg::YieldOp::create(nb, nloc, r);
      });
  return generic.getResult(0);
}

Value TileBuilder::contract(Value lhs, Value rhs, Value init, AffineMap lhsMap,
                            AffineMap rhsMap) {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, j, k;
  bindDims(ctx, i, j, k);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{lhs, rhs}, init,
      {lhsMap, rhsMap, AffineMap::get(3, 0, {i, j}, ctx)},
      {IteratorType::parallel, IteratorType::parallel, IteratorType::reduction},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        auto toF32 = [&](Value v) -> Value {
          if (v.getType() == f32)
            return v;
          return arith::ExtFOp::create(nb, nloc, f32, v);
        };
        Value p =
            arith::MulFOp::create(nb, nloc, toF32(args[0]), toF32(args[1]));
        linalg::YieldOp::create(
            nb, nloc, arith::AddFOp::create(nb, nloc, args[2], p).getResult());
      });
  return generic.getResult(0);
}

AffineMap TileBuilder::mapId1() {
  return AffineMap::getMultiDimIdentityMap(1, b.getContext());
}

AffineMap TileBuilder::mapId2() {
  return AffineMap::getMultiDimIdentityMap(2, b.getContext());
}

AffineMap TileBuilder::mapRow2() {
  return AffineMap::get(2, 0, {getAffineDimExpr(0, b.getContext())},
                        b.getContext());
}

std::pair<AffineMap, AffineMap> TileBuilder::mapsAB() {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, j, k;
  bindDims(ctx, i, j, k);
  return {AffineMap::get(3, 0, {i, k}, ctx), AffineMap::get(3, 0, {k, j}, ctx)};
}

std::pair<AffineMap, AffineMap> TileBuilder::mapsABt() {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, j, k;
  bindDims(ctx, i, j, k);
  return {AffineMap::get(3, 0, {i, k}, ctx), AffineMap::get(3, 0, {j, k}, ctx)};
}

std::pair<AffineMap, AffineMap> TileBuilder::mapsAtB() {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, j, k;
  bindDims(ctx, i, j, k);
  return {AffineMap::get(3, 0, {k, i}, ctx), AffineMap::get(3, 0, {k, j}, ctx)};
}

TileBuilder::TilePlacement TileBuilder::placeTile(Value batch, Value head,
                                                  Value seq0, Value seqLen,
                                                  OpFoldResult cols) {
  unsigned hPos = getHeadDimPos(layout), sPos = getSeqDimPos(layout);
  TilePlacement p;
  p.offsets.assign(4, b.getIndexAttr(0));
  p.sizes.assign(4, b.getIndexAttr(1));
  p.strides.assign(4, b.getIndexAttr(1));
  p.offsets[0] = batch;
  p.offsets[hPos] = head;
  p.offsets[sPos] = seq0;
  p.sizes[sPos] = seqLen;
  p.sizes[3] = cols;
  return p;
}

Value TileBuilder::sliceQKV(Value t, Value batch, Value head, Value seq0,
                            Value seqLen) {
  auto type = cast<RankedTensorType>(t.getType());
  OpFoldResult cols = type.isDynamicDim(3)
                          ? OpFoldResult(dimOf(t, 3))
                          : OpFoldResult(b.getIndexAttr(type.getDimSize(3)));
  TilePlacement p = placeTile(batch, head, seq0, seqLen, cols);
  auto resultType = RankedTensorType::get(
      {ShapedType::kDynamic, type.getDimSize(3)}, type.getElementType());
  return tensor::ExtractSliceOp::create(b, loc, resultType, t, p.offsets,
                                        p.sizes, p.strides);
}

Value TileBuilder::sliceRows(Value t, Value batch, Value head, Value seq0,
                             Value seqLen) {
  SmallVector<OpFoldResult> offsets = {batch, head, seq0};
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), b.getIndexAttr(1),
                                     seqLen};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  auto type = cast<RankedTensorType>(t.getType());
  auto resultType =
      RankedTensorType::get({ShapedType::kDynamic}, type.getElementType());
  return tensor::ExtractSliceOp::create(b, loc, resultType, t, offsets, sizes,
                                        strides);
}

void TileBuilder::insertTile(Value tile, Value dest, Value batch, Value head,
                             Value seq0, Value seqLen,
                             RankedTensorType destType, Value cols) {
  TilePlacement p =
      placeTile(batch, head, seq0, seqLen,
                destType.isDynamicDim(3)
                    ? OpFoldResult(cols)
                    : OpFoldResult(b.getIndexAttr(destType.getDimSize(3))));
  tensor::ParallelInsertSliceOp::create(b, loc, tile, dest, p.offsets, p.sizes,
                                        p.strides);
}

Value TileBuilder::truncTile(Value tile, Type elt, Value rows, Value cols,
                             int64_t cols0) {
  MLIRContext *ctx = b.getContext();
  Value empty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic, cols0}, elt,
      ShapedType::isDynamic(cols0) ? ValueRange{rows, cols} : ValueRange{rows});
  return elementwise({tile}, {AffineMap::getMultiDimIdentityMap(2, ctx)}, empty,
                     [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       if (elt == f32)
                         return a[0];
                       return arith::TruncFOp::create(nb, nl, elt, a[0]);
                     });
}

void TileBuilder::setSequenceLengths(Value q, Value k, Value positionOffset) {
  unsigned sPos = getSeqDimPos(layout);
  sq = dimOf(q, sPos);
  sk = dimOf(k, sPos);
  off = sub(sk, sq);
  if (positionOffset)
    off = add(off, positionOffset);
}

std::pair<Value, Value> TileBuilder::band(Value row) {
  // Query row i sits at key position p = i + Sk - Sq (bottom-right), shifted
  // by the op's position offset.
  return buildAdmittedKeys(b, loc, mask, add(row, off), sk);
}

ScoreTransform TileBuilder::buildScoreTransform(std::optional<double> scale,
                                                std::optional<double> softcap,
                                                Value q, Value bias) {
  // The factor applied to Q·Kᵀ inside tanh (softcap) or overall, log2(e)
  // folded in when there is no softcap: scale / cap, or scale · log2 e.
  double factor = softcap ? 1.0 / *softcap : kLog2e;
  ScoreTransform st;
  st.softcap = softcap;
  st.bias = bias;
  if (scale) {
    st.factor = f32c(*scale * factor);
    return st;
  }
  Value d = arith::IndexCastUIOp::create(b, loc, b.getI64Type(), dimOf(q, 3));
  Value df = arith::UIToFPOp::create(b, loc, f32, d);
  st.factor = arith::MulFOp::create(b, loc, math::RsqrtOp::create(b, loc, df),
                                    f32c(factor));
  return st;
}

Value TileBuilder::sliceBias(Value bias, Value batch, Value head, Value q0,
                             Value bm, Value k0, Value bn, AffineMap &map) {
  MLIRContext *ctx = b.getContext();
  auto biasType = cast<RankedTensorType>(bias.getType());
  bool bcast[4];
  for (unsigned d = 0; d < 4; ++d)
    bcast[d] = biasType.getDimSize(d) == 1;
  SmallVector<OpFoldResult> offsets = {
      bcast[0] ? b.getIndexAttr(0) : OpFoldResult(batch),
      bcast[1] ? b.getIndexAttr(0) : OpFoldResult(head),
      bcast[2] ? b.getIndexAttr(0) : OpFoldResult(q0),
      bcast[3] ? b.getIndexAttr(0) : OpFoldResult(k0)};
  SmallVector<OpFoldResult> sizes = {
      b.getIndexAttr(1), b.getIndexAttr(1),
      bcast[2] ? b.getIndexAttr(1) : OpFoldResult(bm),
      bcast[3] ? b.getIndexAttr(1) : OpFoldResult(bn)};
  SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
  auto tileType = RankedTensorType::get({bcast[2] ? 1 : ShapedType::kDynamic,
                                         bcast[3] ? 1 : ShapedType::kDynamic},
                                        biasType.getElementType());
  AffineExpr di, dj;
  bindDims(ctx, di, dj);
  map = AffineMap::get(2, 0,
                       {bcast[2] ? getAffineConstantExpr(0, ctx) : di,
                        bcast[3] ? getAffineConstantExpr(0, ctx) : dj},
                       ctx);
  return tensor::ExtractSliceOp::create(b, loc, tileType, bias, offsets, sizes,
                                        strides);
}

Value TileBuilder::logitsTile(const ScoreTransform &st, ArrayRef<Value> inputs,
                              ArrayRef<AffineMap> maps, Value q0, Value bm,
                              Value k0, Value bn, bool masked) {
  Value init = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic, ShapedType::kDynamic},
      f32, ValueRange{bm, bn});
  return elementwise(
      inputs, maps, init,
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        auto cst = [&](double x) -> Value {
          return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(x));
        };
        Value t;
        t = arith::MulFOp::create(nb, nl, a[0], st.factor);
        if (st.softcap) {
          t = math::TanhOp::create(nb, nl, t);
          t = arith::MulFOp::create(nb, nl, t, cst(*st.softcap * kLog2e));
        }
        if (st.bias) {
          Value bv = a[1];
          if (bv.getType() != f32)
            bv = arith::ExtFOp::create(nb, nl, f32, bv);
          bv = arith::MulFOp::create(nb, nl, bv, cst(kLog2e));
          t = arith::AddFOp::create(nb, nl, t, bv);
        }
        if (!masked)
          return t;
        // The element-wise mask of an edge block.
        Value i = arith::AddIOp::create(nb, nl, q0,
                                        linalg::IndexOp::create(nb, nl, 0));
        Value j = arith::AddIOp::create(nb, nl, k0,
                                        linalg::IndexOp::create(nb, nl, 1));
        Value p = arith::AddIOp::create(nb, nl, i, off);
        Value ok = buildAdmitsKey(nb, nl, mask, p, j);
        return arith::SelectOp::create(nb, nl, ok, t, cst(-INFINITY));
      });
}

Value TileBuilder::buildLogits(const ScoreTransform &st, Value s, Value batch,
                               Value head, Value q0, Value bm, Value k0,
                               Value bn, Value lastLo, Value firstHi) {
  MLIRContext *ctx = b.getContext();
  SmallVector<Value> inputs = {s};
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(2, ctx)};
  if (st.bias) {
    AffineMap map;
    inputs.push_back(sliceBias(st.bias, batch, head, q0, bm, k0, bn, map));
    maps.push_back(map);
  }
  if (mask.isNone())
    return logitsTile(st, inputs, maps, q0, bm, k0, bn, /*masked=*/false);
  // Interior blocks are admitted for every row of the query block.
  Value k1 = add(k0, bn);
  Value interior = arith::AndIOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, k0, lastLo),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, k1, firstHi));
  auto ifOp = scf::IfOp::create(b, loc, TypeRange{s.getType()}, interior,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  scf::YieldOp::create(
      b, loc, logitsTile(st, inputs, maps, q0, bm, k0, bn, /*masked=*/false));
  b.setInsertionPointToStart(&ifOp.getElseRegion().front());
  scf::YieldOp::create(
      b, loc, logitsTile(st, inputs, maps, q0, bm, k0, bn, /*masked=*/true));
  return ifOp.getResult(0);
}
