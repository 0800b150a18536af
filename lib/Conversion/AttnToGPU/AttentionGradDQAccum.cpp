//===- AttentionGradDQAccum.cpp - the fused dQ's workspace ----------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The non-deterministic backward (an attention_grad spec's "deterministic":
// false) fuses dQ into the sm_90a dK/dV kernel, as FlashAttention-3 does:
// each (key block, query tile) adds its share of the tile's dQ into `dq_accum`,
// an f32 workspace, with atomics. This file is that workspace's layout and
// the two small kernels around the dK/dV step:
//
//   step 0  prep     a block of 128 threads a 64-row tile of a (batch,
//                    head): Delta = rowsum(dO ⊙ O) of its rows into the
//                    `delta` workspace (two threads a row, buildRowDelta),
//                    the tile's lse2 (getLse2) and Delta into `row_stats`
//                    (the dK/dV kernel's producer copies them with the
//                    tile's Q and dO), and the tile's dq_accum zeroed;
//   step 1  dK/dV    AttentionGradWgmmaKernel.cpp with fuseDQ;
//   step 2  convert  the same grid: dQ = dq_accum · scale (getGradScale) in
//                    the element type, rows past Sq skipped.
//
// dq_accum is [B, Hq, ceil(Sq / 64), 64 · D] f32 in the order of the dK/dV
// kernel's accumulators (getDQAccumOffset): for each 64-column panel of a
// tile, element 4n + 2i + j of thread l of a warpgroup (row 16 · (l / 32) +
// g + 8i, column 8n + 2t + j, with g = (l % 32) / 4 and t = l % 4) at
// (panel · 32 + element) · 128 + l. A warp's add of one element is then 128
// contiguous bytes, and the convert step's loads are as coalesced.
//
//===----------------------------------------------------------------------===//

#include "AttentionGradKernels.h"
#include "DenseKernels.h"
#include "KernelCommon.h"
#include "OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

/// Accumulator elements a thread of a warpgroup holds of an m64n64 tile,
/// and the warpgroup's threads.
static constexpr int64_t kElements = 32, kWarpgroupThreads = 128;

Value mlir::attn::detail::getDQAccumOffset(Emitter &e, Value bh, Value tiles,
                                           Value tile, Value panel,
                                           int64_t panels, int64_t element,
                                           Value thread) {
  Value tileBase = e.add(e.mul(bh, tiles), tile);
  Value panelBase = e.add(e.mul(tileBase, e.idx(panels)), panel);
  return e.add(e.mul(e.add(e.mul(panelBase, e.idx(kElements)), e.idx(element)),
                     e.idx(kWarpgroupThreads)),
               thread);
}

namespace {
/// The block's tile, head, batch and thread, as prep and convert share
/// them.
struct TileIndices {
  Value tile, head, batch, thread, tiles, bh;

  static TileIndices get(Emitter &e, const AttentionKernelArgs &a) {
    TileIndices t;
    t.tile = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
    t.head = gpu::BlockIdOp::create(e.b, gpu::Dimension::y);
    t.batch = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);
    t.thread = gpu::ThreadIdOp::create(e.b, gpu::Dimension::x);
    t.tiles = e.ceilDiv(a.sq, e.idx(kDQAccumRows));
    t.bh = e.add(e.mul(t.batch, a.hq), t.head);
    return t;
  }
};
} // namespace

void mlir::attn::detail::buildGradDQPrepBody(OpBuilder &builder, Location loc,
                                             const AttentionSpec &spec,
                                             const GradArgs &args) {
  ImplicitLocOpBuilder b(loc, builder);
  Emitter e{b};
  const AttentionKernelArgs &a = args.fwd;
  TileIndices ix = TileIndices::get(e, a);
  Type elt = getType(b.getContext(), spec.dtype);
  const int64_t dv = spec.valueHeadDim, panels = spec.headDim / 64;
  // Delta: two threads a row (adjacent lanes), 64 rows.
  Value half = e.rem(ix.thread, e.idx(2));
  Value row =
      e.add(e.mul(ix.tile, e.idx(kDQAccumRows)), e.div(ix.thread, e.idx(2)));
  Value inside = e.slt(row, a.sq);
  Value safeRow = e.sel(inside, row, e.idx(0));
  Value base =
      getRowOffset(e, spec.layout, ix.batch, a.hq, a.sq, ix.head, safeRow, dv);
  auto load = [&](Value tensor) {
    return [&, tensor](Value col) -> Value {
      return vector::LoadOp::create(
          b, VectorType::get({8}, elt), tensor, ValueRange{e.add(base, col)},
          /*nontemporal=*/false, b.getI64IntegerAttr(16));
    };
  };
  Value delta = buildRowDelta(e, elt, dv, half, load(a.o), load(args.dO));
  Value at = e.add(e.mul(ix.bh, a.sq), safeRow);
  e.when(e.land(inside, e.eq(half, e.idx(0))),
         [&] { e.store(delta, args.delta, ValueRange{at}); });
  // The tile's row_stats: thread 2r + h stores the row's lse2 (h = 0) or
  // Delta (h = 1) at h · 64 + r; 0 for rows past Sq. (Loading the LSE
  // before O and dO, in every thread, made this kernel 1.5x slower on an
  // H200: 0.094 -> 0.141 ms at d128, 8k x 2 x 16 heads.)
  Value stat = e.ifElse(e.eq(half, e.idx(0)), ValueRange{delta}, [&] {
    return SmallVector<Value>{getLse2(e, e.load(a.lse, at))};
  })[0];
  Value statsAt = e.add(
      e.mul(e.add(e.mul(ix.bh, ix.tiles), ix.tile), e.idx(2 * kDQAccumRows)),
      e.add(e.mul(half, e.idx(kDQAccumRows)), e.div(ix.thread, e.idx(2))));
  e.store(e.sel(inside, stat, e.f(0.0)), args.rowStats, ValueRange{statsAt});
  // The tile's dq_accum: panels · 4096 f32, four a store, a warp's stores
  // contiguous.
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(VectorType::get({4}, b.getF32Type()), 0.0f));
  Value tileBase = getDQAccumOffset(e, ix.bh, ix.tiles, ix.tile, e.idx(0),
                                    panels, 0, e.idx(0));
  for (int64_t m = 0; m < panels * kElements / 4; ++m)
    vector::StoreOp::create(
        b, zeros, args.dqAccum,
        ValueRange{e.add(
            tileBase,
            e.mul(e.add(e.idx(m * kWarpgroupThreads), ix.thread), e.idx(4)))},
        /*nontemporal=*/false, llvm::MaybeAlign(16));
}

void mlir::attn::detail::buildGradDQConvertBody(OpBuilder &builder,
                                                Location loc,
                                                const AttentionSpec &spec,
                                                const GradArgs &args) {
  ImplicitLocOpBuilder b(loc, builder);
  Emitter e{b};
  const AttentionKernelArgs &a = args.fwd;
  TileIndices ix = TileIndices::get(e, a);
  Type elt = getType(b.getContext(), spec.dtype), f32 = b.getF32Type();
  const int64_t d = spec.headDim, panels = d / 64;
  Value scale = getGradScale(e, spec, a);
  // Lanes 4q .. 4q + 3 of the dK/dV kernel's warpgroup (warp q / 8, g =
  // q % 8, t = 0 .. 3) held columns 8n + 2t + j of row 16 · (q / 8) + g + 8i
  // of a panel as their elements 4n + 2i + j: one 16-byte load a j gives
  // thread q of this block the row's 8 columns 8n .. 8n + 7, one 16-byte
  // store. Warp w takes the (n, i) pairs c = w, w + 4, ..: its loads are 512
  // contiguous bytes, and its i = w % 2, so the thread's row is the same in
  // each.
  Value q = e.rem(ix.thread, e.idx(32)), sub = e.div(ix.thread, e.idx(32));
  Value i = e.rem(sub, e.idx(2));
  Value row = e.add(e.add(e.mul(ix.tile, e.idx(kDQAccumRows)),
                          e.mul(e.div(q, e.idx(8)), e.idx(16))),
                    e.add(e.rem(q, e.idx(8)), e.mul(i, e.idx(8))));
  Value tileBase = getDQAccumOffset(e, ix.bh, ix.tiles, ix.tile, e.idx(0),
                                    panels, 0, e.mul(q, e.idx(4)));
  const int64_t pairs = panels * 16, warps = kWarpgroupThreads / 32;
  // Every load first (dq_accum has every row of the tile: no guard), so
  // that they are all in flight at once: the stores, to another buffer
  // that the compilers cannot tell apart from dq_accum, would otherwise
  // keep each load behind the previous store.
  SmallVector<Value> p(pairs / warps), n(pairs / warps), v;
  for (int64_t m = 0; m < pairs / warps; ++m) {
    Value c = e.add(e.idx(m * warps), sub);
    p[m] = e.div(c, e.idx(16));
    n[m] = e.div(e.rem(c, e.idx(16)), e.idx(2));
    // Element 4n + 2i + j of panel p: (p · 32 + 4n + 2i + j) · 128.
    Value element = e.add(e.mul(p[m], e.idx(kElements)),
                          e.add(e.mul(n[m], e.idx(4)), e.mul(i, e.idx(2))));
    Value at = e.add(tileBase, e.mul(element, e.idx(kWarpgroupThreads)));
    for (int64_t j = 0; j < 2; ++j)
      v.push_back(vector::LoadOp::create(
          b, VectorType::get({4}, f32), args.dqAccum,
          ValueRange{e.add(at, e.idx(j * kWarpgroupThreads))},
          /*nontemporal=*/false, b.getI64IntegerAttr(16)));
  }
  e.when(e.slt(row, a.sq), [&] {
    Value base =
        getRowOffset(e, spec.layout, ix.batch, a.hq, a.sq, ix.head, row, d);
    for (int64_t m = 0; m < pairs / warps; ++m) {
      SmallVector<Value> out;
      for (int64_t t = 0; t < 4; ++t)
        for (int64_t j = 0; j < 2; ++j)
          out.push_back(arith::TruncFOp::create(
              b, elt,
              e.fmul(vector::ExtractOp::create(b, v[2 * m + j],
                                               ArrayRef<int64_t>{t}),
                     scale)));
      vector::StoreOp::create(
          b, vector::FromElementsOp::create(b, VectorType::get({8}, elt), out),
          args.dq,
          ValueRange{e.add(
              base, e.add(e.mul(p[m], e.idx(64)), e.mul(n[m], e.idx(8))))},
          /*nontemporal=*/false, llvm::MaybeAlign(16));
    }
  });
}
