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

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

namespace {
constexpr double kLog2e = 1.4426950408889634, kLn2 = 0.6931471805599453;
} // namespace

bool LatentTiling::accepts(int64_t d, int64_t dv) const {
  return d % 32 == 0 && dv % (16 * kWarps) == 0 && dv <= d &&
         sharedMemoryBytes(d) <= 227 * 1024;
}

// Over 150 lines: one kernel body, written before the phase split of
// issue 19 (kernels from a spec, shared emitter pieces), which owns
// splitting it into named phases with byte-identical PTX.
void mlir::attn::detail::buildLatentSplitKernelBody(
    OpBuilder &builder, gpu::GPUFuncOp func, const PagedAttentionSpec &spec,
    Location loc, LatentTiling tiling) {
  MLIRContext *ctx = builder.getContext();
  ImplicitLocOpBuilder b(loc, builder);
  Block &body = func.getBody().front();
  b.setInsertionPointToStart(&body);
  const int64_t D = spec.headDim, Dv = spec.valueHeadDim;
  const int64_t P = spec.pageSize;
  const bool hnd = spec.cacheLayout == CacheLayout::HND;
  constexpr int64_t kThreads = LatentTiling::kThreads,
                    kTileKeys = LatentTiling::kTileKeys,
                    kStages = LatentTiling::kStages;
  const int64_t M = tiling.mTiles, R = tiling.rows();
  const int64_t WK = tiling.keyGroups();
  // Keys per warp in S (8 or 32) and their 8-key n-tiles; value columns per
  // warp in O and their n-tiles.
  const int64_t keysPerWarp = kTileKeys / WK, NQ = keysPerWarp / 8;
  const int64_t colsPerWarp = Dv / LatentTiling::kWarps, NV = colsPerWarp / 8;
  Type elt = getType(ctx, spec.dtype);
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  MaskAttr mask = spec.mask.getAttr(ctx);
  std::optional<double> softcap = spec.softcap;
  const double factor = spec.scale * (softcap ? 1.0 / *softcap : kLog2e);

  unsigned n = 0;
  Value qArg = body.getArgument(n++), kArg = body.getArgument(n++),
        tableArg = body.getArgument(n++), lensArg = body.getArgument(n++),
        oPart = body.getArgument(n++), lsePart = body.getArgument(n++);
  Value batch = body.getArgument(n++), hq = body.getArgument(n++),
        hkv = body.getArgument(n++), sq = body.getArgument(n++),
        maxPages = body.getArgument(n++), splits = body.getArgument(n++);

  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, v);
  };
  auto cf = [&](double v) -> Value {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  };
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, x, y);
  };
  auto sub = [&](Value x, Value y) -> Value {
    return arith::SubIOp::create(b, x, y);
  };
  auto mul = [&](Value x, Value y) -> Value {
    return arith::MulIOp::create(b, x, y);
  };
  auto divu = [&](Value x, Value y) -> Value {
    return arith::DivUIOp::create(b, x, y);
  };
  auto remu = [&](Value x, Value y) -> Value {
    return arith::RemUIOp::create(b, x, y);
  };
  auto slt = [&](Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
  };
  auto eq = [&](Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, x, y);
  };
  auto select = [&](Value c, Value x, Value y) -> Value {
    return arith::SelectOp::create(b, c, x, y);
  };
  auto fmax = [&](Value x, Value y) -> Value {
    return arith::MaximumFOp::create(b, x, y);
  };
  auto fadd = [&](Value x, Value y) -> Value {
    return arith::AddFOp::create(b, x, y);
  };
  auto fmul = [&](Value x, Value y) -> Value {
    return arith::MulFOp::create(b, x, y);
  };
  auto exp2 = [&](Value x) -> Value { return math::Exp2Op::create(b, x); };
  auto loadIndex = [&](Value m, Value i) -> Value {
    Value v = memref::LoadOp::create(b, m, i);
    return arith::IndexCastOp::create(b, b.getIndexType(), v);
  };
  // The quad (4 lanes of a fragment row) reduction of `v`.
  auto quad = [&](Value v, function_ref<Value(Value, Value)> combine) {
    for (int32_t o : {1, 2})
      v = combine(v, gpu::ShuffleOp::create(b, v, o, 32, gpu::ShuffleMode::XOR)
                         .getShuffleResult());
    return v;
  };
  // Runs `build` in an scf.if on `cond` (no results).
  auto when = [&](Value cond, function_ref<void()> build) {
    auto ifOp = scf::IfOp::create(b, cond, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    build();
  };

  // Shared memory (16-byte chunks of Q, K and P rows XOR-swizzled by row).
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  Value smem = getDynamicSharedMemory(b, loc, func);
  int64_t offset = 0;
  auto carve = [&](ArrayRef<int64_t> dims, Type t) -> Value {
    auto type = MemRefType::get(dims, t, AffineMap(), workgroup);
    Value v = memref::ViewOp::create(b, type, smem, idx(offset), ValueRange{});
    int64_t bytes = t.getIntOrFloatBitWidth() / 8;
    for (int64_t d : dims)
      bytes *= d;
    offset += bytes;
    return v;
  };
  Value qS = carve({R, D}, elt);
  Value kS = carve({kStages, kTileKeys, D}, elt);
  Value pS = carve({R, kTileKeys}, elt);
  // Per key group and row: the tile max (in the loop), then the row sum.
  Value redS = carve({WK, R}, f32);
  Value alphaS = carve({R}, f32);
  // The cache row of each key of the next two tiles (-1: not read).
  Value rowS = carve({2, kTileKeys}, i32);
  assert(offset == tiling.sharedMemoryBytes(D) && "shared memory layout");

  Value c0 = idx(0), c1 = idx(1);
  Value bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value kvh = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value split = remu(bx, splits), rowTile = divu(bx, splits);
  Value warp = divu(tid, idx(32)), lane = remu(tid, idx(32));
  Value g = divu(lane, idx(4)), t = remu(lane, idx(4));
  Value lane8 = remu(lane, idx(8)), j8 = divu(lane, idx(8));
  Value jLo = remu(j8, idx(2)), jHi = divu(j8, idx(2));
  // This warp's row tile and key group in S, its value columns in O.
  Value rg = remu(warp, idx(M)), kg = divu(warp, idx(M));
  Value col0 = mul(warp, idx(colsPerWarp));
  Value group = divu(hq, hkv);
  Value rows = mul(group, sq);
  Value r0 = mul(rowTile, idx(R));
  // The sequence's keys, clamped to what its row of the table can name.
  Value len = buildPagedSequenceLength(b, loc, loadIndex(lensArg, bIdx),
                                       mul(maxPages, idx(P)));
  Value off = sub(len, sq);

  // Keys of this block: the band of its rows, cut to its split (whole tiles
  // of the length's share).
  Value lastRow = sub(arith::MinSIOp::create(b, add(r0, idx(R)), rows), c1);
  auto firstBand =
      buildAdmittedKeys(b, loc, mask, add(divu(r0, group), off), len);
  auto lastBand =
      buildAdmittedKeys(b, loc, mask, add(divu(lastRow, group), off), len);
  Value chunk =
      mul(arith::CeilDivSIOp::create(
              b, arith::CeilDivSIOp::create(b, len, splits), idx(kTileKeys)),
          idx(kTileKeys));
  Value kBegin = arith::MaxSIOp::create(b, firstBand.first, mul(split, chunk));
  Value kEnd =
      arith::MinSIOp::create(b, lastBand.second, mul(add(split, c1), chunk));
  Value steps = select(
      slt(kBegin, kEnd),
      arith::CeilDivSIOp::create(b, sub(kEnd, kBegin), idx(kTileKeys)), c0);

  // Element offset of packed row r's query (or output) [b, token, head, 0]
  // in [B, Sq, Hq, dim].
  auto rowElement = [&](Value r, int64_t dim) -> Value {
    Value token = divu(r, group);
    Value head = add(mul(kvh, group), remu(r, group));
    return mul(add(mul(add(mul(bIdx, sq), token), hq), head), idx(dim));
  };
  // Column `c` (a multiple of 8, or 8k + e for a P element) of row `r` in a
  // swizzled buffer of rows of `dim` elements.
  auto swizzle = [&](Value r, Value c, int64_t dim) -> Value {
    if ((dim / 8) % 8 != 0)
      return c;
    Value chunkIdx = arith::XOrIOp::create(b, divu(c, idx(8)), remu(r, idx(8)));
    return add(mul(chunkIdx, idx(8)), remu(c, idx(8)));
  };

  // The same for the ldmatrix addresses, whose rows are all lane8 mod 8:
  // column `hi + cConst + lo` with `hi` a multiple of 64 (or null), `lo` a
  // small multiple of 8 and (cConst mod 64) + lo < 64. The XOR then touches
  // the chunk's low three bits only, so that the multiples of 64 in cConst
  // stay constant offsets and a thread's addresses take a few registers
  // across the unrolled k-steps.
  auto swizzleAt = [&](Value phase, Value hi, int64_t cConst, Value lo,
                       int64_t dim) -> Value {
    Value c = add(idx(cConst % 64), lo);
    Value low =
        (dim / 8) % 8 != 0
            ? c
            : mul(arith::XOrIOp::create(b, divu(c, idx(8)), phase), idx(8));
    Value col = add(idx(cConst - cConst % 64), low);
    return hi ? add(hi, col) : col;
  };

  // Q: rows past the packed rows are zero.
  auto vec8 = VectorType::get({8}, elt);
  {
    Value zero = arith::ConstantOp::create(
        b, vec8, DenseElementsAttr::get(vec8, b.getZeroAttr(elt)));
    scf::ForOp::create(
        b, tid, idx(R * D / 8), idx(kThreads), ValueRange{},
        [&](OpBuilder &nb, Location, Value e, ValueRange) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          Value e8 = mul(e, idx(8));
          Value r = divu(e8, idx(D)), c = remu(e8, idx(D));
          Value row = add(r0, r);
          auto ifOp = scf::IfOp::create(b, TypeRange{vec8}, slt(row, rows),
                                        /*withElse=*/true);
          b.setInsertionPointToStart(&ifOp.getThenRegion().front());
          Value x = vector::LoadOp::create(
              b, vec8, qArg, ValueRange{add(rowElement(row, D), c)});
          scf::YieldOp::create(b, x);
          b.setInsertionPointToStart(&ifOp.getElseRegion().front());
          scf::YieldOp::create(b, zero);
          b.setInsertionPointAfter(ifOp);
          vector::StoreOp::create(b, ifOp.getResult(0), qS,
                                  ValueRange{r, swizzle(r, c, D)});
          scf::YieldOp::create(b);
        });
  }

  // The cache rows of a tile: thread `tid` < 64 reads the page of key `tid`
  // of tile `step` (keys at or past kEnd do not look at their possibly unset
  // entries), then turns it into the row of [rows, D] (-1 past kEnd).
  Value tableRow = mul(bIdx, maxPages);
  Value isRowThread = slt(tid, idx(kTileKeys));
  auto tileKey = [&](Value step) -> Value {
    return add(add(kBegin, mul(step, idx(kTileKeys))), tid);
  };
  auto readPage = [&](Value step) -> Value {
    Value key = tileKey(step);
    Value entry = select(arith::AndIOp::create(b, isRowThread, slt(key, kEnd)),
                         add(tableRow, divu(key, idx(P))), tableRow);
    return loadIndex(tableArg, entry);
  };
  auto storeRow = [&](Value step, Value page, Value slotOfRing) {
    when(isRowThread, [&] {
      Value key = tileKey(step);
      Value slot = remu(key, idx(P));
      Value row = hnd ? add(mul(add(mul(page, hkv), kvh), idx(P)), slot)
                      : add(mul(add(mul(page, idx(P)), slot), hkv), kvh);
      row = select(slt(key, kEnd), row, idx(-1));
      memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, row), rowS,
                              ValueRange{slotOfRing, tid});
    });
  };
  // The copies of tile `step` into its stage: 16-byte chunks, D / 8 per key
  // row, zero-filled for rows marked -1.
  auto asyncTokenType = nvgpu::DeviceAsyncTokenType::get(ctx);
  auto issueTile = [&](Value step) -> Value {
    Value stage = remu(step, idx(kStages)), ring = remu(step, idx(2));
    SmallVector<Value> tokens;
    for (int64_t k = 0; k < kTileKeys * D / (8 * kThreads); ++k) {
      Value e8 = mul(add(tid, idx(k * kThreads)), idx(8));
      Value r = divu(e8, idx(D)), c = remu(e8, idx(D));
      Value row = arith::IndexCastOp::create(
          b, b.getIndexType(),
          memref::LoadOp::create(b, rowS, ValueRange{ring, r}));
      Value inside =
          arith::CmpIOp::create(b, arith::CmpIPredicate::sge, row, c0);
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, asyncTokenType, kS, ValueRange{stage, r, swizzle(r, c, D)}, kArg,
          ValueRange{add(mul(select(inside, row, c0), idx(D)), c)},
          b.getIndexAttr(8), select(inside, idx(8), c0),
          /*bypassL1=*/b.getUnitAttr()));
    }
    return nvgpu::DeviceAsyncCreateGroupOp::create(b, asyncTokenType, tokens);
  };

  // Rows of tiles 0 and 1, the page of tile 2 in flight; then tile 0.
  storeRow(c0, readPage(c0), c0);
  storeRow(c1, readPage(c1), c1);
  Value page2 = readPage(idx(2));
  gpu::BarrierOp::create(b);
  Value firstGroup = issueTile(c0);

  // Fragments of m16n8k16 mma.sync.
  auto aType = VectorType::get({4, 2}, elt);
  auto cType = VectorType::get({2, 2}, f32);
  auto mmaSync = [&](Value a, Value bv, Value c) -> Value {
    return buildMmaSync(b, loc, a, bv, c);
  };
  auto splitPair = [&](Value v) { return splitLdMatrixPair(b, loc, v); };
  Value zeroAcc = arith::ConstantOp::create(
      b, cType, DenseElementsAttr::get(cType, b.getF32FloatAttr(0.0)));

  // This thread's rows in S: g and g + 8 of row tile rg, and their key
  // positions.
  Value sRow[2], pos[2];
  for (int64_t i = 0; i < 2; ++i) {
    sRow[i] = add(mul(rg, idx(16)), add(g, idx(8 * i)));
    pos[i] = add(divu(add(r0, sRow[i]), group), off);
  }

  // The key loop: m[2], l[2] (of this thread's S elements), the O
  // accumulators [M][NV], the page of the tile two steps ahead.
  SmallVector<Value> init{cf(-INFINITY), cf(-INFINITY), cf(0.0), cf(0.0)};
  init.append(M * NV, zeroAcc);
  init.push_back(page2);
  auto loop = scf::ForOp::create(b, c0, steps, c1, init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value step = loop.getInductionVar();
    ValueRange iter = loop.getRegionIterArgs();
    Value stage = remu(step, idx(kStages));
    // Wait for this step's tile; every warp is then done with the last step
    // (its stage, P, the statistics, its ring slot of rows).
    nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));
    gpu::BarrierOp::create(b);
    issueTile(add(step, c1));
    storeRow(add(step, idx(2)), iter.back(), remu(step, idx(2)));
    Value pageAhead = readPage(add(step, idx(3)));

    // S = Q·Kᵀ for row tile rg and the keys of group kg.
    Value wKey = mul(kg, idx(keysPerWarp));
    SmallVector<Value> sAcc(NQ, zeroAcc);
    Value qRow = add(mul(rg, idx(16)), remu(lane, idx(16)));
    Value half8 = mul(divu(lane, idx(16)), idx(8));
    // The k-steps as a loop of `unroll` steps per iteration (4 whenever the
    // rows are swizzled, so that 16 k-steps' columns stay a multiple of 64
    // and the swizzle a constant offset): a quarter of the IR of the fully
    // unrolled form.
    const int64_t kSteps = D / 16;
    const int64_t unroll = kSteps % 4 == 0 ? 4 : 2;
    auto loadQ = [&](Value hi, int64_t u) -> Value {
      return nvgpu::LdMatrixOp::create(
          b, aType, qS,
          ValueRange{qRow, swizzleAt(lane8, hi, 16 * u, half8, D)},
          /*transpose=*/false, 4);
    };
    auto qkLoop = scf::ForOp::create(b, c0, idx(kSteps), idx(unroll), sAcc);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(qkLoop.getBody());
      Value hi = mul(qkLoop.getInductionVar(), idx(16));
      SmallVector<Value> acc(qkLoop.getRegionIterArgs().begin(),
                             qkLoop.getRegionIterArgs().end());
      if (NQ == 1) {
        // One 8-key n-tile: an ldmatrix x4 covers two k-steps.
        for (int64_t u = 0; u < unroll; u += 2) {
          Value r = add(wKey, lane8);
          Value frag = nvgpu::LdMatrixOp::create(
              b, aType, kS,
              ValueRange{stage, r,
                         swizzleAt(lane8, hi, 16 * u, mul(j8, idx(8)), D)},
              /*transpose=*/false, 4);
          auto [b0, b1] = splitPair(frag);
          acc[0] = mmaSync(loadQ(hi, u), b0, acc[0]);
          acc[0] = mmaSync(loadQ(hi, u + 1), b1, acc[0]);
        }
      } else {
        for (int64_t u = 0; u < unroll; ++u) {
          Value a = loadQ(hi, u);
          for (int64_t np = 0; np < NQ / 2; ++np) {
            Value r =
                add(add(wKey, idx(16 * np)), add(lane8, mul(jHi, idx(8))));
            Value frag = nvgpu::LdMatrixOp::create(
                b, aType, kS,
                ValueRange{stage, r,
                           swizzleAt(lane8, hi, 16 * u, mul(jLo, idx(8)), D)},
                /*transpose=*/false, 4);
            auto [b0, b1] = splitPair(frag);
            acc[2 * np] = mmaSync(a, b0, acc[2 * np]);
            acc[2 * np + 1] = mmaSync(a, b1, acc[2 * np + 1]);
          }
        }
      }
      scf::YieldOp::create(b, acc);
    }
    for (int64_t nt = 0; nt < NQ; ++nt)
      sAcc[nt] = qkLoop.getResult(nt);

    // Logits in the exp2 domain, masked to each row's band and the block's
    // keys; x[i][nt * 2 + j]: row sRow[i], key wKey + 8nt + 2t + j.
    Value tileKey0 = add(add(kBegin, mul(step, idx(kTileKeys))), wKey);
    SmallVector<Value> x[2];
    for (int64_t nt = 0; nt < NQ; ++nt)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          Value s =
              vector::ExtractOp::create(b, sAcc[nt], ArrayRef<int64_t>{i, j});
          s = fmul(s, cf(factor));
          if (softcap)
            s = fmul(math::TanhOp::create(b, s), cf(*softcap * kLog2e));
          Value key = add(add(tileKey0, idx(8 * nt + j)), mul(t, idx(2)));
          Value ok = slt(key, kEnd);
          if (Value inBand = buildAdmitsKey(b, loc, mask, pos[i], key))
            ok = arith::AndIOp::create(b, ok, inBand);
          x[i].push_back(select(ok, s, cf(-INFINITY)));
        }

    // The tile's row max over the key groups.
    Value tileMax[2];
    for (int64_t i = 0; i < 2; ++i)
      tileMax[i] = quad(treeReduce(x[i], fmax), fmax);
    if (WK > 1) {
      when(eq(t, c0), [&] {
        for (int64_t i = 0; i < 2; ++i)
          memref::StoreOp::create(b, tileMax[i], redS, ValueRange{kg, sRow[i]});
      });
      gpu::BarrierOp::create(b);
      for (int64_t i = 0; i < 2; ++i) {
        SmallVector<Value> parts;
        for (int64_t w = 0; w < WK; ++w)
          parts.push_back(
              memref::LoadOp::create(b, redS, ValueRange{idx(w), sRow[i]}));
        tileMax[i] = treeReduce(parts, fmax);
      }
    }

    // Online softmax: P to shared memory, the rescale factors too (key
    // group 0 writes them).
    SmallVector<Value> next(iter.begin(), iter.end());
    Value alpha[2];
    for (int64_t i = 0; i < 2; ++i) {
      Value mx = fmax(iter[i], tileMax[i]);
      Value isNinf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx,
                                           cf(-INFINITY));
      Value mSafe = select(isNinf, cf(0.0), mx);
      alpha[i] = exp2(arith::SubFOp::create(b, iter[i], mSafe));
      SmallVector<Value> p;
      for (Value v : x[i])
        p.push_back(exp2(arith::SubFOp::create(b, v, mSafe)));
      next[i] = mx;
      next[2 + i] = fadd(fmul(iter[2 + i], alpha[i]), treeReduce(p, fadd));
      auto pair = VectorType::get({2}, elt);
      for (int64_t nt = 0; nt < NQ; ++nt) {
        Value v = vector::FromElementsOp::create(
            b, pair,
            ValueRange{arith::TruncFOp::create(b, elt, p[2 * nt]),
                       arith::TruncFOp::create(b, elt, p[2 * nt + 1])});
        Value c = add(add(wKey, idx(8 * nt)), mul(t, idx(2)));
        vector::StoreOp::create(
            b, v, pS, ValueRange{sRow[i], swizzle(sRow[i], c, kTileKeys)});
      }
    }
    when(arith::AndIOp::create(b, eq(kg, c0), eq(t, c0)), [&] {
      for (int64_t i = 0; i < 2; ++i)
        memref::StoreOp::create(b, alpha[i], alphaS, ValueRange{sRow[i]});
    });
    gpu::BarrierOp::create(b);

    // O = O·alpha + P·V over this warp's value columns, all row tiles.
    Value rowAlpha[8];
    for (int64_t mt = 0; mt < M; ++mt)
      for (int64_t i = 0; i < 2; ++i)
        rowAlpha[2 * mt + i] = memref::LoadOp::create(
            b, alphaS, ValueRange{add(g, idx(16 * mt + 8 * i))});
    for (int64_t mt = 0; mt < M; ++mt)
      for (int64_t e = 0; e < NV; ++e) {
        Value acc = iter[4 + mt * NV + e];
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            Value a =
                vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
            acc = vector::InsertOp::create(b, fmul(a, rowAlpha[2 * mt + i]),
                                           acc, ArrayRef<int64_t>{i, j});
          }
        next[4 + mt * NV + e] = acc;
      }
    for (int64_t kk = 0; kk < kTileKeys / 16; ++kk) {
      SmallVector<Value> pa;
      for (int64_t mt = 0; mt < M; ++mt) {
        Value r = add(idx(16 * mt), remu(lane, idx(16)));
        pa.push_back(nvgpu::LdMatrixOp::create(
            b, aType, pS,
            ValueRange{r,
                       swizzleAt(lane8, Value(), 16 * kk,
                                 mul(divu(lane, idx(16)), idx(8)), kTileKeys)},
            /*transpose=*/false, 4));
      }
      for (int64_t ee = 0; ee < NV / 2; ++ee) {
        Value r = add(idx(16 * kk), add(lane8, mul(jLo, idx(8))));
        Value frag = nvgpu::LdMatrixOp::create(
            b, aType, kS,
            ValueRange{
                stage, r,
                colsPerWarp % 64 == 0
                    ? swizzleAt(lane8, col0, 16 * ee, mul(jHi, idx(8)), D)
                    : swizzle(r, add(col0, mul(add(idx(2 * ee), jHi), idx(8))),
                              D)},
            /*transpose=*/true, 4);
        auto [b0, b1] = splitPair(frag);
        for (int64_t mt = 0; mt < M; ++mt) {
          Value &o0 = next[4 + mt * NV + 2 * ee];
          Value &o1 = next[4 + mt * NV + 2 * ee + 1];
          o0 = mmaSync(pa[mt], b0, o0);
          o1 = mmaSync(pa[mt], b1, o1);
        }
      }
    }
    next.back() = pageAhead;
    scf::YieldOp::create(b, next);
  }
  nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));

  // The row sums over the key groups (redS is free once every warp is past
  // the last step's softmax).
  ValueRange fin = loop.getResults();
  gpu::BarrierOp::create(b);
  Value lQuad[2];
  for (int64_t i = 0; i < 2; ++i)
    lQuad[i] = quad(fin[2 + i], fadd);
  when(eq(t, c0), [&] {
    for (int64_t i = 0; i < 2; ++i)
      memref::StoreOp::create(b, lQuad[i], redS, ValueRange{kg, sRow[i]});
  });
  gpu::BarrierOp::create(b);
  auto rowSum = [&](Value r) -> Value {
    SmallVector<Value> parts;
    for (int64_t w = 0; w < WK; ++w)
      parts.push_back(memref::LoadOp::create(b, redS, ValueRange{idx(w), r}));
    return treeReduce(parts, fadd);
  };

  // Partial outputs [splits, B, Sq, Hq, Dv] (O / l, 0 for rows without
  // keys) and LSEs [splits, B, Sq, Hq] (natural log, -inf without keys).
  Value rowsAll = mul(mul(batch, sq), hq);
  auto outRow = [&](Value row) -> Value {
    return add(mul(split, rowsAll), rowElement(row, 1));
  };
  auto pair32 = VectorType::get({2}, f32);
  for (int64_t mt = 0; mt < M; ++mt)
    for (int64_t i = 0; i < 2; ++i) {
      Value r = add(g, idx(16 * mt + 8 * i));
      Value row = add(r0, r);
      when(slt(row, rows), [&] {
        Value l = rowSum(r);
        Value empty =
            arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, l, cf(0.0));
        Value inv =
            select(empty, cf(0.0), arith::DivFOp::create(b, cf(1.0), l));
        Value base = mul(outRow(row), idx(Dv));
        for (int64_t e = 0; e < NV; ++e) {
          Value acc = fin[4 + mt * NV + e];
          SmallVector<Value> o;
          for (int64_t j = 0; j < 2; ++j)
            o.push_back(
                fmul(vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j}),
                     inv));
          Value c = add(add(col0, idx(8 * e)), mul(t, idx(2)));
          vector::StoreOp::create(b,
                                  vector::FromElementsOp::create(b, pair32, o),
                                  oPart, ValueRange{add(base, c)});
        }
      });
    }
  // One thread per row (key group 0, t = 0) writes the split's LSE.
  for (int64_t i = 0; i < 2; ++i) {
    Value row = add(r0, sRow[i]);
    Value first = arith::AndIOp::create(b, eq(kg, c0), eq(t, c0));
    when(arith::AndIOp::create(b, first, slt(row, rows)), [&] {
      Value l = rowSum(sRow[i]);
      Value lse = fmul(fadd(fin[i], math::Log2Op::create(b, l)), cf(kLn2));
      Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, fin[i],
                                          cf(-INFINITY));
      memref::StoreOp::create(b, select(empty, cf(-INFINITY), lse), lsePart,
                              ValueRange{outRow(row)});
    });
  }
}
