//===- MmaKernel.cpp - tensor-core attention kernel (mma.sync) ------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The FlashAttention-2 kernel on sm_80+ tensor cores, for f16 and bf16 with
// head dims that are multiples of 16 up to 256. A block of 4 warps owns 64 or
// 128 query rows (one or two 16-row MMA tiles per warp, see MmaTiling); K and
// V go through a two-stage cp.async pipeline of `keys` rows per step, the
// next tile loading while the current one is computed. Shared memory is one
// dynamic array (Q tile, K stages, V stages), its 16-byte chunks
// XOR-swizzled by row. Each step:
//
//   1. S = Q·Kᵀ with m16n8k16 mma.sync: Q fragments by ldmatrix x4 (loaded
//      once when they fit in registers, else per step), K fragments by
//      ldmatrix x4 (two 8-key tiles per load; K rows are the columns of Kᵀ).
//   2. Scale (log2 e folded), softcap, bias on the accumulator fragments:
//      thread t of a quad holds row g = lane / 4 (and g + 8), columns 2t,
//      2t + 1 of each 8-key tile. Blocks that cross the band's edge or the
//      end of the keys also get the per-element mask; the others skip it.
//   3. Row maxima with two quad shuffles; m' = max(m, rowmax); alpha and
//      P = exp2(S - m') as in attn-tile; per-thread partial row sums.
//   4. O = O·alpha + P·V: the S accumulators of two adjacent key tiles are
//      exactly the A fragment of the next m16n8k16 (converted to f16/bf16);
//      V fragments come from ldmatrix.trans x4.
//   5. After the loop the quad's partial sums are added and O / l is
//      written in column pairs (0 for rows without keys; LSE if requested).
//
//===----------------------------------------------------------------------===//

#include "DenseKernels.h"
#include "KernelCommon.h"
#include "MmaTiles.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using mlir::attn::detail::AttentionKernelArgs;
using mlir::attn::detail::MmaTiling;

static constexpr int64_t kWarps = 4, kThreads = kWarps * 32;

/// The largest dynamic shared memory of a block on sm_90 (227 KB); sm_80
/// allows 163 KB. The default tilings stay at or below 96 KB.
static constexpr int64_t kMaxSharedMemory = 227 * 1024;

int64_t mlir::attn::detail::MmaTiling::sharedMemoryBytes(int64_t d,
                                                         int64_t dv) const {
  return 2 * (rows() * d + stages * keys * (d + dv));
}

FailureOr<MmaTiling> mlir::attn::detail::getMmaTiling(const AttentionSpec &spec,
                                                      std::string *why) {
  const AttentionSpec &s = spec;
  if (s.dtype != ScalarType::F16 && s.dtype != ScalarType::BF16)
    return failWith(why, "the tensor-core kernel needs f16 or bf16");
  if (ShapedType::isDynamic(s.headDim) ||
      ShapedType::isDynamic(s.valueHeadDim) || s.headDim % 16 != 0 ||
      s.valueHeadDim % 16 != 0 || s.headDim > 256 || s.valueHeadDim > 256)
    return failWith(
        why, "the tensor-core kernel needs head dims that are multiples of "
             "16 up to 256");
  if (!spec.scale && !spec.runtimeValues)
    return failWith(why, "the tensor-core kernel needs a known scale");
  const int64_t d = s.headDim, dv = s.valueHeadDim, widest = std::max(d, dv);
  // Defaults, from a sweep on the H100/H200 (docs/gpu-results.md): 128 query
  // rows (two 16-row tiles per warp) and 64 keys per step up to head dim 64;
  // at 128, 64 rows and 64 keys for banded masks (less work past the
  // diagonal, more blocks) and 128 rows with 32 keys otherwise; above 128,
  // 64 rows and 32 keys (the O accumulators of a thread grow with Dv).
  MmaTiling t;
  bool banded = spec.mask.kind != MaskKind::None;
  if (widest <= 64) {
    t.rowTiles = 2;
    t.keys = 64;
  } else if (widest <= 128) {
    t.rowTiles = banded ? 1 : 2;
    t.keys = banded ? 64 : 32;
  } else {
    t.rowTiles = 1;
    t.keys = 32;
  }
  const int64_t blockQ = spec.blockQ, blockKV = spec.blockKV;
  if (blockQ) {
    if (blockQ != 64 && blockQ != 128)
      return failWith(why, "block-q must be 64 or 128, got " + Twine(blockQ));
    t.rowTiles = blockQ / (kWarps * 16);
  }
  if (blockKV) {
    if (blockKV != 16 && blockKV != 32 && blockKV != 64 && blockKV != 128)
      return failWith(why, "block-kv must be 16, 32, 64 or 128, got " +
                               Twine(blockKV));
    t.keys = blockKV;
  }
  t.qInRegisters = t.rowTiles * d <= 128;
  // Every thread issues whole 16-byte copies of each tile.
  for (int64_t dim : {d, dv})
    if ((t.keys * dim) % (kThreads * 8) != 0)
      return failWith(why, "block-kv " + Twine(t.keys) + " with head dim " +
                               Twine(dim) +
                               " does not split into 16-byte copies for " +
                               Twine(kThreads) + " threads");
  if (t.sharedMemoryBytes(d, dv) > kMaxSharedMemory)
    return failWith(why, "the tiles need " + Twine(t.sharedMemoryBytes(d, dv)) +
                             " bytes of shared memory, more than " +
                             Twine(kMaxSharedMemory));
  return t;
}

bool mlir::attn::detail::isMmaKernelEligible(const AttentionSpec &spec) {
  AttentionSpec defaults = spec;
  defaults.blockQ = defaults.blockKV = 0;
  return succeeded(getMmaTiling(defaults, nullptr));
}

namespace mlir {
namespace attn {
namespace detail {
namespace {
/// Emits the mma.sync body, one method per phase of the file comment's
/// algorithm (set-up, the Q tile, the pipelined key loop whose step is
/// steps 1-4, the epilogue of step 5).
/// The class is over 150 lines only because its phases are methods defined
/// in it; each phase is a function well under the limit.
class MmaKernel {
public:
  MmaKernel(OpBuilder &builder, Location loc, const AttentionSpec &spec,
            const AttentionKernelArgs &args, const MmaTiling &tiling)
      : b(loc, builder), e{b}, softmax(e), spec(spec), args(args),
        tiling(tiling), D(spec.headDim), Dv(spec.valueHeadDim),
        kRows(tiling.rows()), kKeys(tiling.keys), kMT(tiling.rowTiles),
        kStages(tiling.stages), kR(2 * tiling.rowTiles) {
    MLIRContext *ctx = builder.getContext();
    f16 = getType(ctx, spec.dtype);
    aType = VectorType::get({4, 2}, f16);
    cType = VectorType::get({2, 2}, b.getF32Type());
  }

  void emit(OpBuilder &builder, gpu::GPUFuncOp func) {
    carveSharedMemory(builder, func);
    computeIndices();
    lane8 = e.rem(lane, e.idx(8));
    tiles.emplace(e, spec.layout, kThreads, tid, lane8, bIdx, c0);
    loadQueryTile();
    mapFragments();
    scores.emplace(spec, args, bIdx, h, c0, c1, /*raw=*/false);
    blocks = getKeyBlocks(e, spec, args, off, q0, kRows, kKeys);
    SmallVector<Value> init = getInitialState();
    // Prologue of the pipeline: the first K/V tile into stage 0.
    issueKV(blocks.begin, c0);
    ValueRange results = emitKeyLoop(init);
    // Drain the last (unused) prefetch before the block exits.
    tiles->waitGroups(anyGroup, 0);
    emitEpilogue(results);
  }

private:
  /// Shared memory is dynamic (the tiles exceed the 48 KB of static shared
  /// memory): an external, 1024-aligned workgroup array that the kernel
  /// views as the Q tile and the K and V stages. (gpu.dynamic_shared_memory
  /// would lower to a 1-byte static array in LLVM 22; see
  /// docs/gpu-results.md.)
  void carveSharedMemory(OpBuilder &builder, gpu::GPUFuncOp func) {
    auto workgroup = gpu::AddressSpaceAttr::get(
        b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
    Value smem = getDynamicSharedMemory(builder, b.getLoc(), func);
    int64_t smemOffset = 0;
    auto carve = [&](ArrayRef<int64_t> dims) -> Value {
      auto type = MemRefType::get(dims, f16, AffineMap(), workgroup);
      Value view = memref::ViewOp::create(b, type, smem, e.idx(smemOffset),
                                          ValueRange{});
      smemOffset += type.getNumElements() * 2;
      return view;
    };
    qS = carve({kRows, D});
    kS = carve({kStages, kKeys, D});
    vS = carve({kStages, kKeys, Dv});
  }

  /// The block's query rows, head and batch; the thread's warp and lane
  /// roles; the KV head (GQA) and the key position of query row 0.
  void computeIndices() {
    BlockCoordinates block = getBlockCoordinates(e, spec, args);
    Value bx = block.queryBlock;
    h = block.head;
    bIdx = block.batch;
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    Value c32 = e.idx(32), c4 = e.idx(4);
    c0 = e.idx(0);
    c1 = e.idx(1);
    warp = e.div(tid, c32);
    lane = e.rem(tid, c32);
    lanes.g = e.div(lane, c4);
    lanes.t = e.rem(lane, c4);
    q0 = e.mul(bx, e.idx(kRows));
    Value group = e.div(args.hq, args.hkv);
    kvh = e.div(h, group);
    off = e.sub(args.sk, args.sq);
  }

  /// The K and V tiles of key block `kbIdx` into `stage`.
  void issueKV(Value kbIdx, Value stage) {
    Value k0 = e.mul(kbIdx, e.idx(kKeys));
    tiles->issueTile(args.k, kS, stage, kKeys, args.hkv, args.sk, kvh, k0,
                     args.sk, D);
    tiles->issueTile(args.v, vS, stage, kKeys, args.hkv, args.sk, kvh, k0,
                     args.sk, Dv);
  }

  /// The Q tile, whole before any warp reads it.
  void loadQueryTile() {
    anyGroup = tiles->issueTile(args.q, qS, std::nullopt, kRows, args.hq,
                                args.sq, h, q0, args.sq, D);
    tiles->waitGroups(anyGroup, 0);
    e.barrier();
  }

  /// The A fragment (ldmatrix x4) of Q for row tile mt, k-step kk.
  Value loadQ(int64_t mt, int64_t kk) {
    Value r = e.add(qRowT, e.idx(mt * 16));
    return nvgpu::LdMatrixOp::create(
        b, aType, qS, ValueRange{r, tiles->swizzledCol(2 * kk, qBit, D)},
        /*transpose=*/false, 4);
  }

  /// Warp w owns rows [w * 16 * kMT, (w + 1) * 16 * kMT) of the block, as
  /// kMT 16-row MMA tiles. The lane roles of the ldmatrix x4 loads: Q (A
  /// operand) rows lane % 16, chunk lane / 16; K and V: matrix j = lane / 8,
  /// row lane % 8. Q's fragments go to registers when they fit; the rows
  /// of this thread are g and g + 8 of each of its row tiles, [mt * 2 + i].
  void mapFragments() {
    Value warpRow = e.mul(warp, e.idx(16 * kMT));
    qRowT = e.add(warpRow, e.rem(lane, e.idx(16)));
    qBit = e.div(lane, e.idx(16));
    Value j8 = e.div(lane, e.idx(8));
    jLo = e.rem(j8, e.idx(2));
    jHi = e.div(j8, e.idx(2));
    kRowT = e.add(lane8, e.mul(jHi, e.idx(8)));
    vRowT = e.add(lane8, e.mul(jLo, e.idx(8)));
    qa.resize(kMT);
    if (tiling.qInRegisters)
      for (int64_t mt = 0; mt < kMT; ++mt)
        for (int64_t kk = 0; kk < D / 16; ++kk)
          qa[mt].push_back(loadQ(mt, kk));
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t i = 0; i < 2; ++i)
        row.push_back(
            e.add(e.add(e.add(q0, warpRow), lanes.g), e.idx(mt * 16 + i * 8)));
  }

  /// The loop's state before the first key block: m[kR], l[kR] (partial:
  /// this thread's columns), O[kMT][Dv / 8] = 0.
  SmallVector<Value> getInitialState() {
    auto [m0, l0] = getInitialRowState(e, args, h, lanes.t);
    zeroAcc = arith::ConstantOp::create(
        b, DenseElementsAttr::get(cType, b.getF32FloatAttr(0.0)));
    SmallVector<Value> init;
    init.append(kR, m0);
    init.append(kR, l0);
    for (int64_t i = 0; i < kMT * Dv / 8; ++i)
      init.push_back(zeroAcc);
    return init;
  }

  /// The key blocks of the band, K/V of the next one prefetched into the
  /// other stage while this one is computed.
  ValueRange emitKeyLoop(ValueRange init) {
    SmallVector<Type> iterTypes = llvm::to_vector(init.getTypes());
    return e.loop(
        blocks.begin, e.smax(blocks.begin, blocks.end), c1, init,
        [&](Value kb, ValueRange iter) -> SmallVector<Value> {
          Value k0 = e.mul(kb, e.idx(kKeys));
          Value stage = e.rem(e.sub(kb, blocks.begin), e.idx(kStages));
          // This step's tile has landed, and every warp is done with the
          // other stage: prefetch the next tile into it while computing on
          // this one.
          tiles->waitGroups(anyGroup, 0);
          e.barrier();
          issueKV(e.add(kb, c1), e.rem(e.add(stage, c1), e.idx(kStages)));
          // Blocks inside the band for every row (the bulk of a long causal
          // or windowed sequence) skip the per-element mask.
          Value full = e.land(e.sle(blocks.fullFrom, k0),
                              e.sle(e.add(k0, e.idx(kKeys)), blocks.fullTo));
          return ifFullBlock(e, full, iterTypes, [&](bool masked) {
            return emitStep(k0, stage, iter, masked);
          });
        });
  }

  /// [mt][n][i * 2 + j]: the thread's element (row g + 8i, column 2t + j)
  /// of key tile n (8 keys) of row tile mt.
  using Fragments = SmallVector<SmallVector<SmallVector<Value, 4>>>;

  /// One step of the online softmax over the key block at `k0` in `stage`;
  /// `masked` adds the per-element test of the key range and the band.
  SmallVector<Value> emitStep(Value k0, Value stage, ValueRange iter,
                              bool masked) {
    SmallVector<SmallVector<Value>> s = multiplyQK(stage);
    Fragments x = computeLogits(s, k0, masked);
    SmallVector<OnlineSoftmax::RowUpdate> rows;
    Fragments p = updateSoftmax(x, iter, rows);
    SmallVector<Value> yields;
    for (const OnlineSoftmax::RowUpdate &u : rows)
      yields.push_back(u.max);
    for (const OnlineSoftmax::RowUpdate &u : rows)
      yields.push_back(u.sum);
    llvm::append_range(yields, accumulatePV(p, rows, stage, iter));
    return yields;
  }

  /// Step 1: S = Q·Kᵀ, kKeys / 8 key tiles of 8 per row tile ([mt][n]).
  SmallVector<SmallVector<Value>> multiplyQK(Value stage) {
    SmallVector<SmallVector<Value>> s(kMT,
                                      SmallVector<Value>(kKeys / 8, zeroAcc));
    for (int64_t kk = 0; kk < D / 16; ++kk) {
      SmallVector<Value> a(kMT);
      for (int64_t mt = 0; mt < kMT; ++mt)
        a[mt] = tiling.qInRegisters ? qa[mt][kk] : loadQ(mt, kk);
      for (int64_t n = 0; n < kKeys / 8; n += 2) {
        // Matrices (n, lo), (n, hi), (n+1, lo), (n+1, hi) of 8x8 each.
        Value kf = nvgpu::LdMatrixOp::create(
            b, aType, kS,
            ValueRange{stage, e.add(kRowT, e.idx(n * 8)),
                       tiles->swizzledCol(2 * kk, jLo, D)},
            /*transpose=*/false, 4);
        auto [k0f, k1f] = splitLdMatrixPair(b, b.getLoc(), kf);
        for (int64_t mt = 0; mt < kMT; ++mt) {
          s[mt][n] = buildMmaSync(b, b.getLoc(), a[mt], k0f, s[mt][n]);
          s[mt][n + 1] = buildMmaSync(b, b.getLoc(), a[mt], k1f, s[mt][n + 1]);
        }
      }
    }
    return s;
  }

  /// Step 2: logits in the exp2 domain, masked outside the band.
  Fragments computeLogits(ArrayRef<SmallVector<Value>> s, Value k0,
                          bool masked) {
    Fragments x(kMT, SmallVector<SmallVector<Value, 4>>(kKeys / 8));
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t n = 0; n < kKeys / 8; ++n)
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            Value v =
                vector::ExtractOp::create(b, s[mt][n], ArrayRef<int64_t>{i, j});
            x[mt][n].push_back(scores->apply(
                b, b.getLoc(), v, row[mt * 2 + i],
                [&] { return lanes.column(e, k0, n, j); }, masked));
          }
    return x;
  }

  /// Step 3: the rows' new running max, alpha and sum (in `rows`), and
  /// P = exp2(S - m').
  Fragments updateSoftmax(const Fragments &x, ValueRange iter,
                          SmallVector<OnlineSoftmax::RowUpdate> &rows) {
    for (int64_t r = 0; r < kR; ++r) {
      int64_t mt = r / 2, i = r % 2;
      SmallVector<Value> terms{iter[r]};
      for (int64_t n = 0; n < kKeys / 8; ++n)
        for (int64_t j = 0; j < 2; ++j)
          terms.push_back(x[mt][n][i * 2 + j]);
      rows.push_back(
          softmax.update(softmax.rowMax(terms), iter[r], iter[kR + r]));
    }
    Fragments p(kMT, SmallVector<SmallVector<Value, 4>>(kKeys / 8));
    SmallVector<SmallVector<Value>> terms(kR);
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t n = 0; n < kKeys / 8; ++n)
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            int64_t r = mt * 2 + i;
            Value w = softmax.weight(x[mt][n][i * 2 + j], rows[r].safeMax);
            terms[r].push_back(w);
            p[mt][n].push_back(w);
          }
    for (int64_t r = 0; r < kR; ++r)
      rows[r].sum = e.fadd(rows[r].sum, softmax.rowSum(terms[r]));
    return p;
  }

  /// Step 4: O = O·alpha + P·V. The S accumulators of two adjacent key
  /// tiles are exactly the A fragment of the next m16n8k16 (a0a1: tile 2kk
  /// row g; a2a3: row g + 8; a4..a7: tile 2kk + 1); V fragments come from
  /// ldmatrix.trans x4.
  SmallVector<Value> accumulatePV(const Fragments &p,
                                  ArrayRef<OnlineSoftmax::RowUpdate> rows,
                                  Value stage, ValueRange iter) {
    SmallVector<Value> o;
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t n = 0; n < Dv / 8; ++n)
        o.push_back(
            softmax.rescale(iter[2 * kR + mt * (Dv / 8) + n],
                            {rows[mt * 2].alpha, rows[mt * 2 + 1].alpha}));
    for (int64_t kk = 0; kk < kKeys / 16; ++kk) {
      SmallVector<Value> pa(kMT);
      for (int64_t mt = 0; mt < kMT; ++mt) {
        SmallVector<Value> elems;
        for (int64_t n : {2 * kk, 2 * kk + 1})
          for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 2; ++j)
              elems.push_back(
                  arith::TruncFOp::create(b, f16, p[mt][n][i * 2 + j]));
        pa[mt] = vector::FromElementsOp::create(b, aType, elems);
      }
      for (int64_t n = 0; n < Dv / 8; n += 2) {
        // Matrices (keys lo, n), (keys hi, n), (lo, n+1), (hi, n+1),
        // transposed: the V rows are the k dimension of the product.
        Value vf = nvgpu::LdMatrixOp::create(
            b, aType, vS,
            ValueRange{stage, e.add(vRowT, e.idx(kk * 16)),
                       tiles->swizzledCol(n, jHi, Dv)},
            /*transpose=*/true, 4);
        auto [v0f, v1f] = splitLdMatrixPair(b, b.getLoc(), vf);
        for (int64_t mt = 0; mt < kMT; ++mt) {
          Value &o0 = o[mt * (Dv / 8) + n];
          Value &o1 = o[mt * (Dv / 8) + n + 1];
          o0 = buildMmaSync(b, b.getLoc(), pa[mt], v0f, o0);
          o1 = buildMmaSync(b, b.getLoc(), pa[mt], v1f, o1);
        }
      }
    }
    return o;
  }

  /// Step 5: quad-reduce the row sums, normalize, write.
  void emitEpilogue(ValueRange results) {
    for (int64_t r = 0; r < kR; ++r) {
      int64_t mt = r / 2, i = r % 2;
      writeOutputRow(e, softmax, spec, args, bIdx, h, lanes, row[r], i,
                     results[r], results[kR + r],
                     results.slice(2 * kR + mt * (Dv / 8), Dv / 8), Dv);
    }
  }

  ImplicitLocOpBuilder b;
  Emitter e;
  OnlineSoftmax softmax;
  const AttentionSpec &spec;
  const AttentionKernelArgs &args;
  const MmaTiling &tiling;
  const int64_t D, Dv, kRows, kKeys, kMT, kStages;
  /// Rows of a thread: two per row tile.
  const int64_t kR;
  /// The element type of the tiles and fragments (f16 or bf16); the A (and
  /// paired B) fragment and accumulator types of m16n8k16.
  Type f16;
  VectorType aType, cType;

  /// Shared memory: the Q tile, the K and V stages.
  Value qS, kS, vS;
  Value h, bIdx, tid, warp, lane, lane8, q0, kvh, off, c0, c1;
  FragmentLanes lanes;
  /// Per-thread ldmatrix rows and chunk bits (see mapFragments).
  Value qRowT, qBit, jLo, jHi, kRowT, vRowT;
  /// The Q, K and V tiles' copies and ldmatrix columns.
  std::optional<SwizzledTiles> tiles;
  /// A cp.async group of this thread (SwizzledTiles::waitGroups).
  Value anyGroup;
  /// Q's fragments [mt][kk] when they are kept in registers.
  SmallVector<SmallVector<Value>> qa;
  /// The thread's query rows, [mt * 2 + i].
  SmallVector<Value> row;
  std::optional<ScoreTransform> scores;
  KeyBlocks blocks;
  Value zeroAcc;
};
} // namespace
} // namespace detail
} // namespace attn
} // namespace mlir

void mlir::attn::detail::buildMmaKernelBody(OpBuilder &builder, Location loc,
                                            gpu::GPUFuncOp func,
                                            const AttentionSpec &spec,
                                            const AttentionKernelArgs &args,
                                            const MmaTiling &tiling) {
  MmaKernel(builder, loc, spec, args, tiling).emit(builder, func);
}
