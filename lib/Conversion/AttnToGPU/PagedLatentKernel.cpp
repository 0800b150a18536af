//===- PagedLatentKernel.cpp - paged decode over a latent cache -----------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The split kernel of attn.paged_attention when each key row also holds its
// value row (the value cache is the first Dv columns of the key cache):
// DeepSeek MLA's absorbed decode, one latent KV head of 576 = 512 + 64 rope
// columns with Dv = 512. FlashMLA's shape, on m16n8k16 mma.sync:
//
// A block of 8 warps owns 16·M packed query rows of one KV head of one
// sequence (M = 1 or 4 row tiles; row r = token · G + head % G as in the
// general split kernel) and one split of the sequence's keys. Q stays in
// shared memory. The keys stream through a two-stage cp.async ring of
// 64-key tiles, each key row copied once and used both as K and as V; the
// cache rows of a tile come from the block table two steps ahead, through
// shared memory. Each step:
//
//  1. S = Q·Kᵀ, split over the warps as M row tiles × 8/M key groups: warp w
//     computes row tile w % M against keys of group w / M.
//  2. The rows' running max: quad shuffles, then across the key groups
//     through shared memory; the warps of a row tile derive the same max.
//  3. P = exp2(S - m) and the rows' rescale factors go to shared memory.
//  4. O = O·alpha + P·V, V being the tile's first Dv columns (the same shared
//     memory as K): warp w owns value columns [w·Dv/8, (w+1)·Dv/8) of all
//     16·M rows (M·Dv/16 f32 accumulators per thread).
//
// So S is computed once per block and every cache byte is read once per
// block, against the general kernel's wide tiling that splits the value
// columns over blocks that each recompute S. Keys past the block's range
// are zero-filled and masked, never read from the cache. The block writes
// its normalized partial output and log-sum-exp for the combine kernel.
//
//===----------------------------------------------------------------------===//

#include "KernelCommon.h"
#include "PagedKernel.h"
#include "PagedSplitKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

bool LatentTiling::accepts(int64_t d, int64_t dv) const {
  return d % 32 == 0 && dv % (16 * kWarps) == 0 && dv <= d &&
         sharedMemoryBytes(d) <= kMaxPagedSharedMemory;
}

namespace {
/// The latent split kernel's builder (see the file comment); build() emits
/// its phases in order.
class LatentSplitKernel : PagedSplitKernel {
public:
  LatentSplitKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                    const PagedAttentionSpec &spec, LatentTiling tiling)
      : PagedSplitKernel(b, func, spec, /*separateValues=*/false),
        tiling(tiling), M(tiling.mTiles), R(tiling.rows()),
        WK(tiling.keyGroups()), keysPerWarp(kTileKeys / WK),
        NQ(keysPerWarp / 8), colsPerWarp(Dv / LatentTiling::kWarps),
        NV(colsPerWarp / 8) {}

  void build() {
    carveSharedMemory();
    emitBlockIndices(/*valueChunks=*/1, Dv);
    emitFragmentIndices();
    emitKeyRange(R, kTileKeys);
    stageQuery(qS, R, kThreads, [&](Value r, Value c, int64_t dim) {
      return swizzle(r, c, dim);
    });
    auto [firstGroup, page2] = startPipeline();
    ValueRange fin = keyLoop(firstGroup, page2);
    nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));
    sumRows(fin);
    writePartials(fin);
  }

private:
  static constexpr int64_t kThreads = LatentTiling::kThreads,
                           kTileKeys = LatentTiling::kTileKeys,
                           kStages = LatentTiling::kStages;

  /// Shared memory (16-byte chunks of Q, K and P rows XOR-swizzled by row):
  /// Q [R, D], the K ring [kStages, 64, D], P [R, 64]; per key group and
  /// row the tile max (in the loop), then the row sum; the rows' rescale
  /// factors; the cache row of each key of the next two tiles (-1: not
  /// read).
  void carveSharedMemory() {
    Value smem = getDynamicSharedMemory(b, loc, func);
    int64_t offset = 0;
    auto carve = [&](ArrayRef<int64_t> dims, Type t) {
      Value v = sharedView(smem, dims, t, offset);
      int64_t bytes = t.getIntOrFloatBitWidth() / 8;
      for (int64_t d : dims)
        bytes *= d;
      offset += bytes;
      return v;
    };
    qS = carve({R, D}, elt);
    kS = carve({kStages, kTileKeys, D}, elt);
    pS = carve({R, kTileKeys}, elt);
    redS = carve({WK, R}, f32);
    alphaS = carve({R}, f32);
    rowS = carve({2, kTileKeys}, b.getI32Type());
    assert(offset == tiling.sharedMemoryBytes(D) && "shared memory layout");
  }

  /// The ldmatrix lane coordinates, this warp's row tile rg and key group
  /// kg in S, and its first value column in O.
  void emitFragmentIndices() {
    lane8 = rem(lane, idx(8));
    j8 = div(lane, idx(8));
    jLo = rem(j8, idx(2));
    jHi = div(j8, idx(2));
    rg = rem(warp, idx(M));
    kg = div(warp, idx(M));
    col0 = mul(warp, idx(colsPerWarp));
  }

  /// Column `c` (a multiple of 8, or 8k + e for a P element) of row `r` in
  /// a swizzled buffer of rows of `dim` elements.
  Value swizzle(Value r, Value c, int64_t dim) {
    if ((dim / 8) % 8 != 0)
      return c;
    Value chunkIdx = xori(div(c, idx(8)), rem(r, idx(8)));
    return add(mul(chunkIdx, idx(8)), rem(c, idx(8)));
  }

  /// The same for the ldmatrix addresses, whose rows are all lane8 mod 8:
  /// column `hi + cConst + lo` with `hi` a multiple of 64 (or null), `lo` a
  /// small multiple of 8 and (cConst mod 64) + lo < 64. The XOR then
  /// touches the chunk's low three bits only, so that the multiples of 64
  /// in cConst stay constant offsets and a thread's addresses take a few
  /// registers across the unrolled k-steps.
  Value swizzleAt(Value phase, Value hi, int64_t cConst, Value lo,
                  int64_t dim) {
    Value c = add(idx(cConst % 64), lo);
    Value low =
        (dim / 8) % 8 != 0 ? c : mul(xori(div(c, idx(8)), phase), idx(8));
    Value col = add(idx(cConst - cConst % 64), low);
    return hi ? add(hi, col) : col;
  }

  /// The page of this thread's key of tile `step` (keys at or past kEnd do
  /// not look at their possibly unset entries).
  Value tilePage(Value step) {
    Value key = tileKey(step, tid);
    return readPage(tableRow, land(isRowThread, slt(key, kEnd)), key);
  }

  /// Turns `page` into the cache row of this thread's key of tile `step`
  /// (-1 past kEnd), in ring slot `slotOfRing` of rowS.
  void storeRow(Value step, Value page, Value slotOfRing) {
    when(isRowThread, [&] {
      Value key = tileKey(step, tid);
      Value slot = rem(key, idx(P));
      Value row = cacheRow(page, slot);
      row = sel(slt(key, kEnd), row, idx(-1));
      store(arith::IndexCastOp::create(b, b.getI32Type(), row), rowS,
            {slotOfRing, tid});
    });
  }

  /// The copies of tile `step` into its stage, as one cp.async group:
  /// 16-byte chunks, D / 8 per key row, zero-filled for rows marked -1.
  Value issueTile(Value step) {
    Value stage = rem(step, idx(kStages)), ring = rem(step, idx(2));
    SmallVector<Value> tokens;
    for (int64_t k = 0; k < kTileKeys * D / (8 * kThreads); ++k) {
      Value e8 = mul(add(tid, idx(k * kThreads)), idx(8));
      Value r = div(e8, idx(D)), c = rem(e8, idx(D));
      Value row = loadIndex(rowS, {ring, r});
      Value inside =
          arith::CmpIOp::create(b, arith::CmpIPredicate::sge, row, c0);
      tokens.push_back(copyChunk(kS, {stage, r, swizzle(r, c, D)}, kArg,
                                 add(mul(sel(inside, row, c0), idx(D)), c),
                                 inside));
    }
    return nvgpu::DeviceAsyncCreateGroupOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(ctx), tokens);
  }

  /// The pipeline's start: the rows of tiles 0 and 1, the page of tile 2 in
  /// flight (returned), then tile 0's copies (their group returned).
  std::pair<Value, Value> startPipeline() {
    tableRow = mul(bIdx, maxPages);
    isRowThread = slt(tid, idx(kTileKeys));
    storeRow(c0, tilePage(c0), c0);
    storeRow(c1, tilePage(c1), c1);
    Value page2 = tilePage(idx(2));
    barrier();
    Value firstGroup = issueTile(c0);
    return {firstGroup, page2};
  }

  /// The key loop: m[2], l[2] (of this thread's S elements), the O
  /// accumulators [M][NV], the page of the tile two steps ahead; this
  /// thread's rows in S (g and g + 8 of row tile rg) and their key
  /// positions first.
  ValueRange keyLoop(Value firstGroup, Value page2) {
    zeroAcc = zeroAccumulator();
    for (int64_t i = 0; i < 2; ++i) {
      sRow[i] = add(mul(rg, idx(16)), add(g, idx(8 * i)));
      pos[i] = add(div(add(r0, sRow[i]), group), off);
    }
    SmallVector<Value> init{f(-INFINITY), f(-INFINITY), f(0.0), f(0.0)};
    init.append(M * NV, zeroAcc);
    init.push_back(page2);
    return loop(c0, steps, c1, init, [&](Value step, ValueRange iter) {
      return keyStep(firstGroup, step, iter);
    });
  }

  /// One step: wait for this step's tile (every warp is then done with the
  /// last step: its stage, P, the statistics, its ring slot of rows), put
  /// the next tile in flight and the rows of the one after, then S, the
  /// rows' max, the online softmax and O += P·V.
  SmallVector<Value> keyStep(Value firstGroup, Value step, ValueRange iter) {
    Value stage = rem(step, idx(kStages));
    nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));
    barrier();
    issueTile(add(step, c1));
    storeRow(add(step, idx(2)), iter.back(), rem(step, idx(2)));
    Value pageAhead = tilePage(add(step, idx(3)));

    Value wKey = mul(kg, idx(keysPerWarp));
    SmallVector<Value> sAcc = scores(stage, wKey);
    // x[i][nt * 2 + j]: row sRow[i], key wKey + 8nt + 2t + j.
    Value tileKey0 = tileKey(step, wKey);
    auto x = maskedLogits(sAcc, tileKey0, pos);
    std::array<Value, 2> tileMax = rowMax(x);
    SmallVector<Value> next(iter.begin(), iter.end());
    softmax(wKey, x, tileMax, iter, next);
    accumulatePV(stage, iter, next);
    next.back() = pageAhead;
    return next;
  }

  /// Q's A fragment for k-step `u` after column `hi`.
  Value loadQ(Value qRow, Value half8, Value hi, int64_t u) {
    return ldmatrix(qS, {qRow, swizzleAt(lane8, hi, 16 * u, half8, D)},
                    /*transpose=*/false);
  }

  /// S = Q·Kᵀ for row tile rg and the keys of group kg. The k-steps as a
  /// loop of `unroll` steps per iteration (4 whenever the rows are
  /// swizzled, so that 16 k-steps' columns stay a multiple of 64 and the
  /// swizzle a constant offset): a quarter of the IR of the fully unrolled
  /// form.
  SmallVector<Value> scores(Value stage, Value wKey) {
    SmallVector<Value> sAcc(NQ, zeroAcc);
    Value qRow = add(mul(rg, idx(16)), rem(lane, idx(16)));
    Value half8 = mul(div(lane, idx(16)), idx(8));
    const int64_t kSteps = D / 16;
    const int64_t unroll = kSteps % 4 == 0 ? 4 : 2;
    ValueRange res = loop(
        c0, idx(kSteps), idx(unroll), sAcc, [&](Value kStep, ValueRange it) {
          Value hi = mul(kStep, idx(16));
          SmallVector<Value> acc(it.begin(), it.end());
          if (NQ == 1) {
            // One 8-key n-tile: an ldmatrix x4 covers two k-steps.
            for (int64_t u = 0; u < unroll; u += 2) {
              Value r = add(wKey, lane8);
              auto [b0, b1] = loadBPair(
                  kS,
                  {stage, r, swizzleAt(lane8, hi, 16 * u, mul(j8, idx(8)), D)},
                  /*transpose=*/false);
              acc[0] =
                  buildMmaSync(b, loc, loadQ(qRow, half8, hi, u), b0, acc[0]);
              acc[0] = buildMmaSync(b, loc, loadQ(qRow, half8, hi, u + 1), b1,
                                    acc[0]);
            }
            return acc;
          }
          for (int64_t u = 0; u < unroll; ++u) {
            Value a = loadQ(qRow, half8, hi, u);
            for (int64_t np = 0; np < NQ / 2; ++np) {
              Value r =
                  add(add(wKey, idx(16 * np)), add(lane8, mul(jHi, idx(8))));
              auto [b0, b1] = loadBPair(
                  kS,
                  {stage, r, swizzleAt(lane8, hi, 16 * u, mul(jLo, idx(8)), D)},
                  /*transpose=*/false);
              acc[2 * np] = buildMmaSync(b, loc, a, b0, acc[2 * np]);
              acc[2 * np + 1] = buildMmaSync(b, loc, a, b1, acc[2 * np + 1]);
            }
          }
          return acc;
        });
    return SmallVector<Value>(res.begin(), res.end());
  }

  /// The tile's max of this thread's two rows: over the quad, then over the
  /// key groups through shared memory.
  std::array<Value, 2> rowMax(const std::array<SmallVector<Value>, 2> &x) {
    auto max = [&](Value u, Value v) { return fmax(u, v); };
    std::array<Value, 2> tileMax;
    for (int64_t i = 0; i < 2; ++i)
      tileMax[i] = laneMax(treeReduce(x[i], max), 4);
    if (WK == 1)
      return tileMax;
    when(eq(t, c0), [&] {
      for (int64_t i = 0; i < 2; ++i)
        store(tileMax[i], redS, {kg, sRow[i]});
    });
    barrier();
    for (int64_t i = 0; i < 2; ++i) {
      SmallVector<Value> parts;
      for (int64_t w = 0; w < WK; ++w)
        parts.push_back(load(redS, {idx(w), sRow[i]}));
      tileMax[i] = treeReduce(parts, max);
    }
    return tileMax;
  }

  /// The online softmax: the rows' new m, l into `next`, P to shared memory,
  /// the rescale factors too (key group 0 writes them).
  void softmax(Value wKey, const std::array<SmallVector<Value>, 2> &x,
               std::array<Value, 2> tileMax, ValueRange iter,
               SmallVectorImpl<Value> &next) {
    Value alpha[2];
    for (int64_t i = 0; i < 2; ++i) {
      Value mx = fmax(iter[i], tileMax[i]);
      RowStep step = softmaxStep(iter[i], iter[2 + i], mx, x[i]);
      alpha[i] = step.alpha;
      next[i] = mx;
      next[2 + i] = step.l;
      auto pair = VectorType::get({2}, elt);
      for (int64_t nt = 0; nt < NQ; ++nt) {
        Value v = vector::FromElementsOp::create(
            b, pair,
            ValueRange{arith::TruncFOp::create(b, elt, step.p[2 * nt]),
                       arith::TruncFOp::create(b, elt, step.p[2 * nt + 1])});
        Value c = add(add(wKey, idx(8 * nt)), mul(t, idx(2)));
        vector::StoreOp::create(
            b, v, pS, ValueRange{sRow[i], swizzle(sRow[i], c, kTileKeys)});
      }
    }
    when(land(eq(kg, c0), eq(t, c0)), [&] {
      for (int64_t i = 0; i < 2; ++i)
        store(alpha[i], alphaS, {sRow[i]});
    });
    barrier();
  }

  /// O = O·alpha + P·V over this warp's value columns, all row tiles, V
  /// being the first Dv columns of the tile's key rows.
  void accumulatePV(Value stage, ValueRange iter,
                    SmallVectorImpl<Value> &next) {
    Value rowAlpha[8];
    for (int64_t mt = 0; mt < M; ++mt)
      for (int64_t i = 0; i < 2; ++i)
        rowAlpha[2 * mt + i] = load(alphaS, {add(g, idx(16 * mt + 8 * i))});
    for (int64_t mt = 0; mt < M; ++mt)
      for (int64_t e = 0; e < NV; ++e)
        next[4 + mt * NV + e] = scaleRows(
            iter[4 + mt * NV + e], rowAlpha[2 * mt], rowAlpha[2 * mt + 1]);
    for (int64_t kk = 0; kk < kTileKeys / 16; ++kk) {
      SmallVector<Value> pa;
      for (int64_t mt = 0; mt < M; ++mt) {
        Value r = add(idx(16 * mt), rem(lane, idx(16)));
        pa.push_back(
            ldmatrix(pS,
                     {r, swizzleAt(lane8, Value(), 16 * kk,
                                   mul(div(lane, idx(16)), idx(8)), kTileKeys)},
                     /*transpose=*/false));
      }
      for (int64_t ee = 0; ee < NV / 2; ++ee) {
        Value r = add(idx(16 * kk), add(lane8, mul(jLo, idx(8))));
        Value c =
            colsPerWarp % 64 == 0
                ? swizzleAt(lane8, col0, 16 * ee, mul(jHi, idx(8)), D)
                : swizzle(r, add(col0, mul(add(idx(2 * ee), jHi), idx(8))), D);
        auto [b0, b1] = loadBPair(kS, {stage, r, c}, /*transpose=*/true);
        for (int64_t mt = 0; mt < M; ++mt) {
          Value &o0 = next[4 + mt * NV + 2 * ee];
          Value &o1 = next[4 + mt * NV + 2 * ee + 1];
          o0 = buildMmaSync(b, loc, pa[mt], b0, o0);
          o1 = buildMmaSync(b, loc, pa[mt], b1, o1);
        }
      }
    }
  }

  /// The row sums over the key groups into redS (free once every warp is
  /// past the last step's softmax).
  void sumRows(ValueRange fin) {
    barrier();
    Value lQuad[2];
    for (int64_t i = 0; i < 2; ++i)
      lQuad[i] = laneSum(fin[2 + i], 4);
    when(eq(t, c0), [&] {
      for (int64_t i = 0; i < 2; ++i)
        store(lQuad[i], redS, {kg, sRow[i]});
    });
    barrier();
  }

  /// Row `r`'s sum over the key groups.
  Value rowSum(Value r) {
    SmallVector<Value> parts;
    for (int64_t w = 0; w < WK; ++w)
      parts.push_back(load(redS, {idx(w), r}));
    return treeReduce(parts, [&](Value u, Value v) { return fadd(u, v); });
  }

  /// Partial outputs [splits, B, Sq, Hq, Dv] (O / l, 0 for rows without
  /// keys) and, by one thread per row (key group 0, t = 0), LSEs [splits,
  /// B, Sq, Hq] (natural log, -inf without keys).
  void writePartials(ValueRange fin) {
    Value rowsAll = mul(mul(batch, sq), hq);
    auto pair32 = VectorType::get({2}, f32);
    for (int64_t mt = 0; mt < M; ++mt)
      for (int64_t i = 0; i < 2; ++i) {
        Value r = add(g, idx(16 * mt + 8 * i));
        Value row = add(r0, r);
        when(slt(row, rows), [&] {
          Value l = rowSum(r);
          Value empty =
              arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, l, f(0.0));
          Value inv = sel(empty, f(0.0), fdiv(f(1.0), l));
          Value base = mul(partialRow(rowsAll, row), idx(Dv));
          for (int64_t e = 0; e < NV; ++e) {
            Value acc = fin[4 + mt * NV + e];
            SmallVector<Value> o;
            for (int64_t j = 0; j < 2; ++j)
              o.push_back(fmul(
                  vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j}),
                  inv));
            Value c = add(add(col0, idx(8 * e)), mul(t, idx(2)));
            vector::StoreOp::create(
                b, vector::FromElementsOp::create(b, pair32, o), oPart,
                ValueRange{add(base, c)});
          }
        });
      }
    for (int64_t i = 0; i < 2; ++i) {
      Value row = add(r0, sRow[i]);
      Value first = land(eq(kg, c0), eq(t, c0));
      when(land(first, slt(row, rows)), [&] {
        Value lse = naturalLse(fin[i], rowSum(sRow[i]));
        Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ,
                                            fin[i], f(-INFINITY));
        store(sel(empty, f(-INFINITY), lse), lsePart, partialRow(rowsAll, row));
      });
    }
  }

  const LatentTiling tiling;
  /// Row tiles, rows, key groups; keys per warp in S (8 or 32) and their
  /// 8-key n-tiles; value columns per warp in O and their n-tiles.
  const int64_t M, R, WK, keysPerWarp, NQ, colsPerWarp, NV;
  Value qS, kS, pS, redS, alphaS, rowS;
  Value lane8, j8, jLo, jHi, rg, kg, col0;
  Value tableRow, isRowThread, zeroAcc;
  Value sRow[2], pos[2];
};
} // namespace

void mlir::attn::detail::buildLatentSplitKernelBody(
    ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
    const PagedAttentionSpec &spec, LatentTiling tiling) {
  LatentSplitKernel(b, func, spec, tiling).build();
}
