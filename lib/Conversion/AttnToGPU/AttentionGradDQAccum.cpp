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
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

/// Accumulator elements a thread of a warpgroup holds of an m64n64 tile,
/// and the warpgroup's threads.
static constexpr int64_t kElements = 32, kWarpgroupThreads = 128;
/// Elements of padding after each row of the convert step's shared tile.
static constexpr int64_t kConvertPad = 8;

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
  Type elt = getType(b.getContext(), spec.dtype), f32 = b.getF32Type();
  const int64_t dv = spec.valueHeadDim, panels = spec.headDim / 64;
  // The tile's dq_accum zeroed first (panels · 4096 f32, four a store, a
  // warp's stores contiguous): the stores need nothing the loads bring.
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(VectorType::get({4}, f32), 0.0f));
  Value tileBase = getDQAccumOffset(e, ix.bh, ix.tiles, ix.tile, e.idx(0),
                                    panels, 0, e.idx(0));
  for (int64_t m = 0; m < panels * kElements / 4; ++m)
    vector::StoreOp::create(
        b, zeros, args.dqAccum,
        ValueRange{e.add(
            tileBase,
            e.mul(e.add(e.idx(m * kWarpgroupThreads), ix.thread), e.idx(4)))},
        /*nontemporal=*/false, llvm::MaybeAlign(16));
  // Delta = rowsum(dO ⊙ O): `lanes` consecutive threads a row, 16 bytes
  // each, so that a warp's loads are whole rows (two threads a row, each
  // over half of it, made every load touch 32 rows: 1.4x the time of
  // cuDNN's dot_do_o on an H200). Pass p takes rows p · rowsPerPass + g (g
  // = thread / lanes); every load is issued before the first sum.
  const int64_t lanes = dv / 8, rowsPerPass = kWarpgroupThreads / lanes,
                passes = kDQAccumRows / rowsPerPass;
  assert(llvm::isPowerOf2_64(lanes) && lanes >= 2 && lanes <= 32 &&
         "the fused dQ takes value head dims 64 and 128");
  Value lane = e.rem(ix.thread, e.idx(lanes));
  Value g = e.div(ix.thread, e.idx(lanes));
  Value tileRow0 = e.mul(ix.tile, e.idx(kDQAccumRows));
  auto rowOf = [&](Value pass) {
    return e.add(tileRow0, e.add(e.mul(pass, e.idx(rowsPerPass)), g));
  };
  SmallVector<Value> o, dO;
  for (int64_t pass = 0; pass < passes; ++pass) {
    Value row = rowOf(e.idx(pass));
    Value safeRow = e.sel(e.slt(row, a.sq), row, e.idx(0));
    Value at = e.add(getRowOffset(e, spec.layout, ix.batch, a.hq, a.sq, ix.head,
                                  safeRow, dv),
                     e.mul(lane, e.idx(8)));
    for (auto [tensor, out] : {std::pair{a.o, &o}, std::pair{args.dO, &dO}})
      out->push_back(vector::LoadOp::create(
          b, VectorType::get({8}, elt), tensor, ValueRange{at},
          /*nontemporal=*/false, b.getI64IntegerAttr(16)));
  }
  SmallVector<Value> sums;
  for (int64_t pass = 0; pass < passes; ++pass) {
    Value sum = e.f(0.0);
    for (int64_t x = 0; x < 8; ++x) {
      auto ext = [&](Value v) -> Value {
        Value elem = vector::ExtractOp::create(b, v, ArrayRef<int64_t>{x});
        return arith::ExtFOp::create(b, f32, elem);
      };
      sum = e.fadd(sum, e.fmul(ext(dO[pass]), ext(o[pass])));
    }
    sums.push_back(e.laneSum(sum, lanes));
  }
  // Each thread then writes one of the tile's 128 row_stats: lane j <
  // passes the Delta of pass j's row (and `delta`), lane passes + j the
  // lse2 of pass j's row; 0 for rows past Sq.
  Value isDelta = e.slt(lane, e.idx(passes));
  Value pass = e.sel(isDelta, lane, e.sub(lane, e.idx(passes)));
  Value delta = sums[0];
  for (int64_t q = 1; q < passes; ++q)
    delta = e.sel(e.eq(pass, e.idx(q)), sums[q], delta);
  Value row = rowOf(pass);
  Value inside = e.slt(row, a.sq);
  Value at = e.add(e.mul(ix.bh, a.sq), e.sel(inside, row, e.idx(0)));
  e.when(e.land(inside, isDelta),
         [&] { e.store(delta, args.delta, ValueRange{at}); });
  Value stat = e.ifElse(e.sle(e.idx(passes), lane), ValueRange{delta}, [&] {
    return SmallVector<Value>{getLse2(e, e.load(a.lse, at))};
  })[0];
  Value slot = e.add(e.sel(isDelta, e.idx(kDQAccumRows), e.idx(0)),
                     e.sub(row, tileRow0));
  Value statsAt = e.add(
      e.mul(e.add(e.mul(ix.bh, ix.tiles), ix.tile), e.idx(2 * kDQAccumRows)),
      slot);
  e.store(e.sel(inside, stat, e.f(0.0)), args.rowStats, ValueRange{statsAt});
}

int64_t mlir::attn::detail::getDQConvertSharedMemoryBytes(int64_t headDim) {
  return kDQAccumRows * (headDim + kConvertPad) * 2;
}

void mlir::attn::detail::buildGradDQConvertBody(OpBuilder &builder,
                                                Location loc,
                                                gpu::GPUFuncOp func,
                                                const AttentionSpec &spec,
                                                const GradArgs &args) {
  ImplicitLocOpBuilder b(loc, builder);
  Emitter e{b};
  const AttentionKernelArgs &a = args.fwd;
  TileIndices ix = TileIndices::get(e, a);
  Type elt = getType(b.getContext(), spec.dtype), f32 = b.getF32Type();
  const int64_t d = spec.headDim, panels = d / 64, pitch = d + kConvertPad;
  Value scale = getGradScale(e, spec, a);
  // Lanes 4q .. 4q + 3 of the dK/dV kernel's warpgroup (warp q / 8, g =
  // q % 8, t = 0 .. 3) held columns 8n + 2t + j of row 16 · (q / 8) + g + 8i
  // of a panel as their elements 4n + 2i + j: one 16-byte load a j gives
  // thread q of this block the row's 8 columns 8n .. 8n + 7. Warp w takes
  // the (n, i) pairs c = w, w + 4, ..: its loads are 512 contiguous bytes,
  // and its i = w % 2, so the thread's row is the same in each.
  Value q = e.rem(ix.thread, e.idx(32)), sub = e.div(ix.thread, e.idx(32));
  Value i = e.rem(sub, e.idx(2));
  Value localRow = e.add(e.mul(e.div(q, e.idx(8)), e.idx(16)),
                         e.add(e.rem(q, e.idx(8)), e.mul(i, e.idx(8))));
  Value tileBase = getDQAccumOffset(e, ix.bh, ix.tiles, ix.tile, e.idx(0),
                                    panels, 0, e.mul(q, e.idx(4)));
  const int64_t pairs = panels * 16, warps = kWarpgroupThreads / 32;
  // Every load first (dq_accum has every row of the tile: no guard), so
  // that they are all in flight at once.
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
  // dQ · scale through shared memory (the tile's 64 rows, `pitch` elements
  // apart: a quarter warp's 16-byte stores of 8 rows fall in distinct
  // banks), so that the stores to dQ are whole rows: stored straight from
  // the fragments' rows, each warp's store touched 32 rows (0.097 ms
  // against cuDNN's 0.055 at d128, 8k x 2 x 16 heads, on an H200).
  auto workgroup = gpu::AddressSpaceAttr::get(
      b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  Value tile = memref::ViewOp::create(
      b, MemRefType::get({kDQAccumRows * pitch}, elt, AffineMap(), workgroup),
      getDynamicSharedMemory(b, loc, func), e.idx(0), ValueRange{});
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
        tile,
        ValueRange{e.add(e.mul(localRow, e.idx(pitch)),
                         e.add(e.mul(p[m], e.idx(64)), e.mul(n[m], e.idx(8))))},
        /*nontemporal=*/false, llvm::MaybeAlign(16));
  }
  e.barrier();
  // `lanes` consecutive threads a row, 16 bytes each; rows past Sq skipped.
  const int64_t lanes = d / 8, rowsPerPass = kWarpgroupThreads / lanes;
  Value lane = e.rem(ix.thread, e.idx(lanes));
  for (int64_t pass = 0; pass < kDQAccumRows / rowsPerPass; ++pass) {
    Value r = e.add(e.idx(pass * rowsPerPass), e.div(ix.thread, e.idx(lanes)));
    Value row = e.add(e.mul(ix.tile, e.idx(kDQAccumRows)), r);
    Value col = e.mul(lane, e.idx(8));
    Value value =
        vector::LoadOp::create(b, VectorType::get({8}, elt), tile,
                               ValueRange{e.add(e.mul(r, e.idx(pitch)), col)},
                               /*nontemporal=*/false, b.getI64IntegerAttr(16));
    e.when(e.slt(row, a.sq), [&] {
      Value base =
          getRowOffset(e, spec.layout, ix.batch, a.hq, a.sq, ix.head, row, d);
      vector::StoreOp::create(b, value, args.dq, ValueRange{e.add(base, col)},
                              /*nontemporal=*/false, llvm::MaybeAlign(16));
    });
  }
}
