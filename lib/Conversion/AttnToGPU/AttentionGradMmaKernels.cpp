//===- AttentionGradMmaKernels.cpp - the backward on mma.sync ------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// FlashAttention-2's backward on sm_80+ tensor cores (m16n8k16 mma.sync,
// f16/bf16 operands, f32 accumulators) for the variants getGradMmaTiling
// takes: the bodies of the `attention_grad.dq` and `attention_grad.dkdv`
// kernels (AttentionGradKernels.cpp builds their signatures and manifests;
// the sink gradient keeps its thread-per-head kernel). A block has 4 warps;
// each warp owns 16 rows of the block's 64 (queries in dQ, keys in dK/dV)
// and computes every product of its rows in registers, so no fragment goes
// through shared memory and nothing is shared between warps but the
// streamed tiles (cp.async, double-buffered, XOR-swizzled as the forward's,
// MmaTiles.h). With lse2 = lse·log2 e (0 where lse = -inf) and x the
// forward's logit in the exp2 domain (scale, softcap, bias, the mask:
// ScoreTransform, as the forward), th its tanh under softcap:
//
//   P  = exp2(x - lse2)           dP = dO·Vᵀ
//   dS = P ⊙ (dP - Delta) (⊙ (1 - th²) under softcap)
//   dQ = scale · dS·K   dK = scale · dSᵀ·Q   dV = Pᵀ·dO
//
// dq (step 0), grid [Sq / 64, Hq, B] (the forward's block order): one block
// per query block of one head.
//   1. Q and dO tiles to shared memory, the first K/V stage issued.
//   2. Delta = rowsum(dO ⊙ O) (f32) for the block's rows, written to the
//      `delta` workspace for the dK/dV kernel; it and lse2 also to shared
//      memory for the warps.
//   3. For each key block of the rows' band (getKeyBlocks; the per-element
//      mask only where a block crosses its edge or the end of the keys):
//      S = Q·Kᵀ and dP = dO·Vᵀ (B fragments of K and V by ldmatrix), P and
//      dS on the accumulators, dQ += dS·K: two adjacent key tiles of dS's
//      accumulators are the A fragment of the next m16n8k16, K's B
//      fragments come from ldmatrix.trans.
//   4. dQ·scale written in column pairs.
// dkdv (step 1), grid [Sk / 64, Hkv, B]: one block per key block of one KV
// head, key-major, so that dK and dV are complete in registers at the end:
//   1. K and V tiles to shared memory.
//   2. For each query head of the KV head's group and each query block whose
//      rows admit one of the block's keys (the inverse band,
//      buildAdmittingPositions), Q, dO, the LSE and Delta of the next block
//      are prefetched while Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ are computed (the
//      transposed products put a warp's keys in the accumulator rows, so
//      that Pᵀ and dSᵀ are A fragments again), Pᵀ and dSᵀ, then
//      dV += Pᵀ·dO and dK += dSᵀ·Q (dO's and Q's B fragments by
//      ldmatrix.trans). Query rows past Sq get P = 0.
//   3. dK·scale and dV written in column pairs.
// Both are deterministic: every gradient element is summed by one thread in
// a fixed order, without atomics.
//
//===----------------------------------------------------------------------===//

#include "AttentionGradKernels.h"
#include "DenseKernels.h"
#include "KernelCommon.h"
#include "MmaTiles.h"
#include "OnlineSoftmax.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

/// The largest dynamic shared memory of a block on sm_80 (163 KB): the
/// backward's tiles stay below it on every chip.
static constexpr int64_t kMaxSharedMemory = 163 * 1024;

int64_t GradMmaTiling::dqSharedMemoryBytes(int64_t d, int64_t dv) const {
  return 2 * (rows * (d + dv) + stages * keys * (d + dv)) + 2 * 4 * rows;
}

int64_t GradMmaTiling::dkdvSharedMemoryBytes(int64_t d, int64_t dv) const {
  return 2 * (keys * (d + dv) + stages * rows * (d + dv)) +
         2 * 4 * stages * threads();
}

FailureOr<GradMmaTiling>
mlir::attn::detail::getGradMmaTiling(const AttentionSpec &spec,
                                     std::string *why) {
  if (spec.dtype != ScalarType::F16 && spec.dtype != ScalarType::BF16)
    return failWith(why, "the tensor-core backward needs f16 or bf16");
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv) || d % 16 != 0 ||
      dv % 16 != 0 || d <= 0 || dv <= 0 || d > 128 || dv > 128)
    return failWith(why, "the tensor-core backward needs head dims that are "
                         "multiples of 16 up to 128");
  if (!spec.scale && !spec.runtimeValues)
    return failWith(why, "the tensor-core backward needs a known scale");
  GradMmaTiling t;
  // Up to head dim 64 the own fragments (16 + 16 registers) fit beside the
  // accumulators; at 128 they would double that and spill.
  t.ownInRegisters = d + dv <= 128;
  int64_t bytes =
      std::max(t.dqSharedMemoryBytes(d, dv), t.dkdvSharedMemoryBytes(d, dv));
  if (bytes > kMaxSharedMemory)
    return failWith(why, "the backward's tiles need " + Twine(bytes) +
                             " bytes of shared memory, more than " +
                             Twine(kMaxSharedMemory));
  return t;
}

namespace {

/// The thread's accumulator elements of a 16-row tile, [tile n][i * 2 + j]:
/// row g + 8i, column 8n + 2t + j (OnlineSoftmax.h's file comment).
using Elements = SmallVector<SmallVector<Value, 4>>;

/// What the dQ and dK/dV bodies share: the block's warps and lanes, the
/// swizzled tiles, the three ldmatrix patterns of m16n8k16 operands, the two
/// products and the epilogue. A derived class's methods are its kernel's
/// phases (the file comment's steps). The class is over 150 lines only
/// because its helpers are methods defined in it; each is well under the
/// limit.
class GradMmaKernel {
public:
  GradMmaKernel(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                const AttentionSpec &spec, const GradArgs &args,
                const GradMmaTiling &tiling)
      : b(loc, builder), e{b}, func(func), spec(spec), args(args), a(args.fwd),
        tiling(tiling), D(spec.headDim), Dv(spec.valueHeadDim),
        kRows(tiling.rows), kKeys(tiling.keys), kStages(tiling.stages) {
    elt = getType(builder.getContext(), spec.dtype);
    aType = VectorType::get({4, 2}, elt);
    cType = VectorType::get({2, 2}, b.getF32Type());
  }

protected:
  /// A view of the dynamic shared memory of type `t` and shape `dims`,
  /// after the previous ones.
  Value carve(ArrayRef<int64_t> dims, Type t) {
    if (!smem)
      smem = getDynamicSharedMemory(b, b.getLoc(), func);
    auto workgroup = gpu::AddressSpaceAttr::get(
        b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
    auto type = MemRefType::get(dims, t, AffineMap(), workgroup);
    Value view =
        memref::ViewOp::create(b, type, smem, e.idx(smemOffset), ValueRange{});
    smemOffset += type.getNumElements() * t.getIntOrFloatBitWidth() / 8;
    return view;
  }

  /// The thread's roles. Warp w owns rows [16w, 16w + 16) of the block's
  /// tile. The lanes of the ldmatrix x4 loads: A operands (the warp's own
  /// rows) row lane % 16, chunk bit lane / 16; B operands: matrix
  /// j = lane / 8, row lane % 8, jLo = j % 2, jHi = j / 2.
  void computeLaneRoles(Value batch) {
    bIdx = batch;
    c0 = e.idx(0);
    c1 = e.idx(1);
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    Value c32 = e.idx(32);
    warp = e.div(tid, c32);
    lane = e.rem(tid, c32);
    lanes = FragmentLanes::get(e, lane);
    lane8 = e.rem(lane, e.idx(8));
    warpRow = e.mul(warp, e.idx(16));
    rowA = e.add(warpRow, e.rem(lane, e.idx(16)));
    bitA = e.div(lane, e.idx(16));
    Value j8 = e.div(lane, e.idx(8));
    jLo = e.rem(j8, e.idx(2));
    jHi = e.div(j8, e.idx(2));
    rowB = e.add(lane8, e.mul(jHi, e.idx(8)));
    rowBT = e.add(lane8, e.mul(jLo, e.idx(8)));
    tiles.emplace(e, spec.layout, tiling.threads(), tid, lane8, bIdx, c0);
    zeroAcc = arith::ConstantOp::create(
        b, DenseElementsAttr::get(cType, b.getF32FloatAttr(0.0)));
    gradScale = getGradScale(e, spec, a);
  }

  SmallVector<Value> at(ValueRange prefix, Value row, Value col) {
    SmallVector<Value> indices(prefix.begin(), prefix.end());
    indices.append({row, col});
    return indices;
  }

  /// The A fragment (ldmatrix x4) of the warp's 16 rows of `buf` (at
  /// `prefix`), columns [16kk, 16kk + 16): matrices (rows 0-7, k lo),
  /// (8-15, lo), (0-7, hi), (8-15, hi) are a0..a3 of m16n8k16.
  Value loadA(Value buf, ValueRange prefix, int64_t kk, int64_t dim) {
    return nvgpu::LdMatrixOp::create(
        b, aType, buf, at(prefix, rowA, tiles->swizzledCol(2 * kk, bitA, dim)),
        /*transpose=*/false, 4);
  }

  /// The B fragments of n-tiles n and n + 1 for B = Xᵀ, X the rows
  /// [8n, 8n + 16) of `buf` (the product's columns) at columns [16kk,
  /// 16kk + 16) (its k): matrices (tile n, k lo), (n, hi), (n + 1, lo),
  /// (n + 1, hi); thread (g, t) gets X[8n + g][16kk + 2t, +1] = B[2t, +1][g].
  std::pair<Value, Value> loadB(Value buf, ValueRange prefix, int64_t n,
                                int64_t kk, int64_t dim) {
    Value f =
        nvgpu::LdMatrixOp::create(b, aType, buf,
                                  at(prefix, e.add(rowB, e.idx(n * 8)),
                                     tiles->swizzledCol(2 * kk, jLo, dim)),
                                  /*transpose=*/false, 4);
    return splitLdMatrixPair(b, b.getLoc(), f);
  }

  /// The B fragments of n-tiles n and n + 1 for B = X, X the rows [16kk,
  /// 16kk + 16) of `buf` (the product's k) at columns [8n, 8n + 16) (its
  /// columns), transposed: matrices (k lo, tile n), (k hi, n), (lo, n + 1),
  /// (hi, n + 1); thread (g, t) gets X[16kk + 2t, +1][8n + g].
  std::pair<Value, Value> loadBTrans(Value buf, ValueRange prefix, int64_t kk,
                                     int64_t n, int64_t dim) {
    Value f = nvgpu::LdMatrixOp::create(b, aType, buf,
                                        at(prefix, e.add(rowBT, e.idx(kk * 16)),
                                           tiles->swizzledCol(n, jHi, dim)),
                                        /*transpose=*/true, 4);
    return splitLdMatrixPair(b, b.getLoc(), f);
  }

  /// C = A·Xᵀ over k = [0, dim): `tiles8` tiles of 8 columns, A's fragment
  /// at k-step kk from `aFrag`, X the rows of `buf` (loadB).
  SmallVector<Value> multiplyTransposed(function_ref<Value(int64_t)> aFrag,
                                        Value buf, ValueRange prefix,
                                        int64_t tiles8, int64_t dim) {
    SmallVector<Value> c(tiles8, zeroAcc);
    for (int64_t kk = 0; kk < dim / 16; ++kk) {
      Value af = aFrag(kk);
      for (int64_t n = 0; n < tiles8; n += 2) {
        auto [b0, b1] = loadB(buf, prefix, n, kk, dim);
        c[n] = buildMmaSync(b, b.getLoc(), af, b0, c[n]);
        c[n + 1] = buildMmaSync(b, b.getLoc(), af, b1, c[n + 1]);
      }
    }
    return c;
  }

  /// acc += W·X: W the f32 elements `w` (the warp's 16 rows, 8·w.size()
  /// columns: the product's k) as A fragments in the element type (tiles
  /// 2kk and 2kk + 1 are a0a1/a2a3 and a4a5/a6a7), X the rows of `buf`
  /// (loadBTrans), `dim` columns.
  void accumulate(SmallVector<Value> &acc, const Elements &w, Value buf,
                  ValueRange prefix, int64_t dim) {
    for (int64_t kk = 0; kk < static_cast<int64_t>(w.size()) / 2; ++kk) {
      SmallVector<Value> elems;
      for (int64_t n : {2 * kk, 2 * kk + 1})
        for (Value x : w[n])
          elems.push_back(arith::TruncFOp::create(b, elt, x));
      Value af = vector::FromElementsOp::create(b, aType, elems);
      for (int64_t n = 0; n < dim / 8; n += 2) {
        auto [b0, b1] = loadBTrans(buf, prefix, kk, n, dim);
        acc[n] = buildMmaSync(b, b.getLoc(), af, b0, acc[n]);
        acc[n + 1] = buildMmaSync(b, b.getLoc(), af, b1, acc[n + 1]);
      }
    }
  }

  /// Element (i, j) of accumulator tile `acc`: row g + 8i, column 2t + j.
  Value element(Value acc, int64_t i, int64_t j) {
    return vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
  }

  /// dS from P, dP, Delta and the logit's tanh (null without softcap); the
  /// scale is applied to dQ and dK at the end.
  Value gradScore(Value p, Value dp, Value delta, Value th) {
    Value ds = e.fmul(p, e.fsub(dp, delta));
    if (th)
      ds = e.fmul(ds, e.fsub(e.f(1.0), e.fmul(th, th)));
    return ds;
  }

  /// The offset of row `row` of head `head` in the [B, Hq, Sq] LSE and Delta.
  Value statOffset(Value head, Value row) {
    return e.add(e.mul(e.add(e.mul(bIdx, a.hq), head), a.sq), row);
  }

  /// Writes the thread's rows `rows` (g and g + 8 of the warp's tile) of
  /// the accumulators `acc` (dim / 8 tiles), times `factor` where non-null,
  /// in the element type as column pairs into head `head` of `dst`; rows
  /// at or past `seqLen` write nothing.
  void storeRows(Value dst, Value heads, Value seqLen, Value head,
                 ArrayRef<Value> rows, ValueRange acc, int64_t dim,
                 Value factor) {
    for (int64_t i = 0; i < 2; ++i)
      e.when(e.slt(rows[i], seqLen), [&] {
        Value base = getRowOffset(e, spec.layout, bIdx, heads, seqLen, head,
                                  rows[i], dim);
        for (int64_t n = 0; n < dim / 8; ++n) {
          SmallVector<Value> pair;
          for (int64_t j = 0; j < 2; ++j) {
            Value x = element(acc[n], i, j);
            if (factor)
              x = e.fmul(x, factor);
            pair.push_back(arith::TruncFOp::create(b, elt, x));
          }
          Value col = e.add(e.idx(n * 8), e.mul(lanes.t, e.idx(2)));
          vector::StoreOp::create(b,
                                  vector::FromElementsOp::create(
                                      b, VectorType::get({2}, elt), pair),
                                  dst, ValueRange{e.add(base, col)},
                                  /*nontemporal=*/false, llvm::MaybeAlign(4));
        }
      });
  }

  /// The thread's rows of a 16-row tile that starts at row `first` of the
  /// block: first + 16w + g and + 8.
  SmallVector<Value> threadRows(Value first) {
    Value r = e.add(e.add(first, warpRow), lanes.g);
    return {r, e.add(r, e.idx(8))};
  }

  ImplicitLocOpBuilder b;
  Emitter e;
  gpu::GPUFuncOp func;
  const AttentionSpec &spec;
  const GradArgs &args;
  const AttentionKernelArgs &a;
  const GradMmaTiling &tiling;
  const int64_t D, Dv, kRows, kKeys, kStages;
  /// The element type (f16 or bf16); m16n8k16's A (and paired B) fragment
  /// and accumulator types.
  Type elt;
  VectorType aType, cType;
  Value smem;
  int64_t smemOffset = 0;
  Value bIdx, c0, c1, tid, warp, lane, lane8, warpRow;
  FragmentLanes lanes;
  /// Per-thread ldmatrix rows and chunk bits (computeLaneRoles).
  Value rowA, bitA, jLo, jHi, rowB, rowBT;
  std::optional<SwizzledTiles> tiles;
  /// A cp.async group of this thread (SwizzledTiles::waitGroups).
  Value anyGroup;
  Value zeroAcc, gradScale;
};

//===----------------------------------------------------------------------===//
// dQ
//===----------------------------------------------------------------------===//

/// The dQ kernel's body, one method per step of the file comment (over 150
/// lines only because those methods are defined in the class).
class DQKernel : public GradMmaKernel {
public:
  using GradMmaKernel::GradMmaKernel;

  void emit() {
    carveSharedMemory();
    computeIndices();
    loadTiles();
    computeRowStats();
    SmallVector<Value> dq = emitKeyLoop();
    // Drain the last (unused) prefetch before the block exits.
    tiles->waitGroups(anyGroup, 0);
    storeRows(args.dq, a.hq, a.sq, h, rows, dq, D, gradScale);
  }

private:
  void carveSharedMemory() {
    qS = carve({kRows, D}, elt);
    doS = carve({kRows, Dv}, elt);
    kS = carve({kStages, kKeys, D}, elt);
    vS = carve({kStages, kKeys, Dv}, elt);
    lse2S = carve({kRows}, b.getF32Type());
    deltaS = carve({kRows}, b.getF32Type());
  }

  /// The block's query rows, head and batch (the forward's order), the KV
  /// head, the thread's roles and rows.
  void computeIndices() {
    BlockCoordinates block = getBlockCoordinates(e, spec, a);
    h = block.head;
    computeLaneRoles(block.batch);
    q0 = e.mul(block.queryBlock, e.idx(kRows));
    kvh = e.div(h, e.div(a.hq, a.hkv));
    off = e.sub(a.sk, a.sq);
    rows = threadRows(q0);
  }

  /// K and V of key block `kb` into `stage`.
  void issueKV(Value kb, Value stage) {
    Value k0 = e.mul(kb, e.idx(kKeys));
    tiles->issueTile(a.k, kS, stage, kKeys, a.hkv, a.sk, kvh, k0, a.sk, D);
    tiles->issueTile(a.v, vS, stage, kKeys, a.hkv, a.sk, kvh, k0, a.sk, Dv);
  }

  /// Step 1: the Q and dO tiles, whole before any warp reads them, and the
  /// first key block's K and V in flight meanwhile.
  void loadTiles() {
    anyGroup = tiles->issueTile(a.q, qS, std::nullopt, kRows, a.hq, a.sq, h, q0,
                                a.sq, D);
    tiles->issueTile(args.dO, doS, std::nullopt, kRows, a.hq, a.sq, h, q0, a.sq,
                     Dv);
    blocks = getKeyBlocks(e, spec, a, off, q0, kRows, kKeys);
    issueKV(blocks.begin, c0);
    // Four groups: Q, dO, K, V; the first two must have landed.
    tiles->waitGroups(anyGroup, 2);
    e.barrier();
  }

  /// Step 2: Delta = rowsum(dO ⊙ O) of the block's rows: two threads a row,
  /// each over half of its columns (8 at a time: dO from shared memory, O
  /// from global memory), added with one shuffle. Delta goes to the
  /// workspace and, with lse2, to shared memory (0 for rows past Sq); the
  /// thread then reads those of its fragment rows.
  void computeRowStats() {
    Value r = e.div(tid, e.idx(2)), half = e.rem(tid, e.idx(2));
    Value row = e.add(q0, r);
    Value inside = e.slt(row, a.sq);
    Value safeRow = e.sel(inside, row, c0);
    Value oBase =
        getRowOffset(e, spec.layout, bIdx, a.hq, a.sq, h, safeRow, Dv);
    auto v8 = VectorType::get({8}, elt);
    Value sum = buildRowDelta(
        e, elt, Dv, half,
        [&](Value c) -> Value {
          return vector::LoadOp::create(b, v8, a.o, ValueRange{e.add(oBase, c)},
                                        /*nontemporal=*/false,
                                        b.getI64IntegerAttr(16));
        },
        [&](Value c) -> Value {
          return vector::LoadOp::create(
              b, v8, doS, ValueRange{r, tiles->swizzle(r, c, Dv)},
              /*nontemporal=*/false, b.getI64IntegerAttr(16));
        });
    Value delta = e.sel(inside, sum, e.f(0.0));
    e.when(e.eq(half, c0), [&] {
      e.when(inside, [&] { e.store(delta, args.delta, statOffset(h, row)); });
      e.store(delta, deltaS, r);
      Value lse2 = getLse2(e, e.load(a.lse, statOffset(h, safeRow)));
      e.store(e.sel(inside, lse2, e.f(0.0)), lse2S, r);
    });
    e.barrier();
    for (Value own : rows) {
      Value local = e.sub(own, q0);
      rowLse2.push_back(e.load(lse2S, local));
      rowDelta.push_back(e.load(deltaS, local));
    }
    if (tiling.ownInRegisters) {
      for (int64_t kk = 0; kk < D / 16; ++kk)
        qa.push_back(loadA(qS, {}, kk, D));
      for (int64_t kk = 0; kk < Dv / 16; ++kk)
        doa.push_back(loadA(doS, {}, kk, Dv));
    }
  }

  /// Step 3: the key blocks of the band, K/V of the next one prefetched
  /// into the other stage while this one is computed.
  SmallVector<Value> emitKeyLoop() {
    SmallVector<Value> init(D / 8, zeroAcc);
    SmallVector<Type> types(init.size(), cType);
    ValueRange results = e.loop(
        blocks.begin, e.smax(blocks.begin, blocks.end), c1, init,
        [&](Value kb, ValueRange iter) -> SmallVector<Value> {
          Value k0 = e.mul(kb, e.idx(kKeys));
          Value stage = e.rem(e.sub(kb, blocks.begin), e.idx(kStages));
          // This step's tile has landed, and every warp is done with the
          // other stage: prefetch the next tile into it.
          tiles->waitGroups(anyGroup, 0);
          e.barrier();
          issueKV(e.add(kb, c1), e.rem(e.add(stage, c1), e.idx(kStages)));
          Value full = e.land(e.sle(blocks.fullFrom, k0),
                              e.sle(e.add(k0, e.idx(kKeys)), blocks.fullTo));
          return ifFullBlock(e, full, types, [&](bool masked) {
            return emitStep(k0, stage, iter, masked);
          });
        });
    return SmallVector<Value>(results);
  }

  /// One key block: S = Q·Kᵀ, dP = dO·Vᵀ, P and dS, dQ += dS·K.
  SmallVector<Value> emitStep(Value k0, Value stage, ValueRange iter,
                              bool masked) {
    SmallVector<Value> s = multiplyTransposed(
        [&](int64_t kk) {
          return tiling.ownInRegisters ? qa[kk] : loadA(qS, {}, kk, D);
        },
        kS, stage, kKeys / 8, D);
    SmallVector<Value> dp = multiplyTransposed(
        [&](int64_t kk) {
          return tiling.ownInRegisters ? doa[kk] : loadA(doS, {}, kk, Dv);
        },
        vS, stage, kKeys / 8, Dv);
    ScoreTransform scores(spec, a, bIdx, h, c0, c1, /*raw=*/false);
    Elements ds(kKeys / 8);
    for (int64_t n = 0; n < kKeys / 8; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          Value th;
          Value x = scores.apply(
              b, b.getLoc(), element(s[n], i, j), rows[i],
              [&] { return lanes.column(e, k0, n, j); }, masked, &th);
          Value p = e.exp2(e.fsub(x, rowLse2[i]));
          ds[n].push_back(gradScore(p, element(dp[n], i, j), rowDelta[i], th));
        }
    SmallVector<Value> dq(iter);
    accumulate(dq, ds, kS, stage, D);
    return dq;
  }

  /// Shared memory: the Q and dO tiles, the K and V stages, lse2 and Delta.
  Value qS, doS, kS, vS, lse2S, deltaS;
  Value h, q0, kvh, off;
  /// The thread's query rows (g and g + 8 of its warp's), their lse2 and
  /// Delta.
  SmallVector<Value> rows, rowLse2, rowDelta;
  /// Q's and dO's A fragments by k-step, where kept in registers.
  SmallVector<Value> qa, doa;
  KeyBlocks blocks;
};

//===----------------------------------------------------------------------===//
// dK/dV
//===----------------------------------------------------------------------===//

/// The dK/dV kernel's body, one method per step of the file comment (over
/// 150 lines only because those methods are defined in the class).
class DKDVKernel : public GradMmaKernel {
public:
  using GradMmaKernel::GradMmaKernel;

  void emit() {
    carveSharedMemory();
    computeIndices();
    locateQueryBlocks();
    loadTiles();
    SmallVector<Value> acc = emitQueryLoop();
    tiles->waitGroups(anyGroup, 0);
    ValueRange all(acc);
    storeRows(args.dk, a.hkv, a.sk, kvh, rows, all.take_front(D / 8), D,
              gradScale);
    storeRows(args.dv, a.hkv, a.sk, kvh, rows, all.drop_front(D / 8), Dv,
              Value());
  }

private:
  void carveSharedMemory() {
    kS = carve({kKeys, D}, elt);
    vS = carve({kKeys, Dv}, elt);
    qS = carve({kStages, kRows, D}, elt);
    doS = carve({kStages, kRows, Dv}, elt);
    lseS = carve({kStages, tiling.threads()}, b.getF32Type());
    deltaS = carve({kStages, tiling.threads()}, b.getF32Type());
  }

  /// The block's keys, KV head and batch (getGradBlockIds' order); the
  /// thread's roles and keys.
  void computeIndices() {
    // A pair's streamed rows: Q, dO, the lse and Delta.
    GradBlockIds ids = getGradBlockIds(e, spec, a, /*heavyLast=*/false, a.sq,
                                       (D + Dv) * 2 + 8);
    Value kb = ids.x;
    kvh = ids.y;
    computeLaneRoles(ids.z);
    k0 = e.mul(kb, e.idx(kKeys));
    off = e.sub(a.sk, a.sq);
    rows = threadRows(k0);
  }

  /// The query blocks whose rows admit one of the block's keys (positions
  /// p = row + Sk - Sq), for each query head of the KV head's group: the
  /// loop runs over `count` = heads × query blocks, iteration `it` being
  /// head h0 + it / blocks, query block first + it % blocks.
  void locateQueryBlocks() {
    Value keyEnd = e.smin(e.add(k0, e.idx(kKeys)), a.sk);
    auto [posLo, posHi] = buildAdmittingPositions(
        b, b.getLoc(), getMaskBand(b.getContext(), spec, a), k0, keyEnd, off,
        e.add(a.sq, off));
    Value lo = e.sub(posLo, off), hi = e.sub(posHi, off);
    firstBlock = e.div(lo, e.idx(kRows));
    Value blocks = e.smax(e.sub(e.ceilDiv(hi, e.idx(kRows)), firstBlock), c0);
    Value group = e.div(a.hq, a.hkv);
    h0 = e.mul(kvh, group);
    count = e.mul(group, blocks);
    // Divides only where count > 0, but must not divide by 0 anywhere.
    queryBlocks = e.smax(blocks, c1);
  }

  /// Head and first query row of iteration `it`.
  std::pair<Value, Value> iterationRows(Value it) {
    return {e.add(h0, e.div(it, queryBlocks)),
            e.mul(e.add(firstBlock, e.rem(it, queryBlocks)), e.idx(kRows))};
  }

  /// Q, dO, the LSE and Delta of iteration `it` into `stage`. The LSE and
  /// Delta go as 4-byte copies (their rows are not 16-byte aligned), one
  /// slot per thread: threads past the block's rows fill theirs with 0.
  void issueQueryBlock(Value it, Value stage) {
    auto [head, first] = iterationRows(it);
    tiles->issueTile(a.q, qS, stage, kRows, a.hq, a.sq, head, first, a.sq, D);
    tiles->issueTile(args.dO, doS, stage, kRows, a.hq, a.sq, head, first, a.sq,
                     Dv);
    Value row = e.add(first, tid);
    Value inside = e.land(e.slt(tid, e.idx(kRows)), e.slt(row, a.sq));
    Value src = statOffset(head, e.sel(inside, row, c0));
    Value count = e.sel(inside, c1, c0);
    auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
    SmallVector<Value> tokens;
    for (Value buf : {lseS, deltaS})
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, tokenType, buf, ValueRange{stage, tid},
          buf == lseS ? a.lse : args.delta, ValueRange{src}, b.getIndexAttr(1),
          count, /*bypassL1=*/UnitAttr()));
    nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, tokens);
  }

  /// Step 1: K and V, with the first query block, whole before any warp
  /// reads them; the warps' K and V fragments where kept in registers.
  void loadTiles() {
    anyGroup = tiles->issueTile(a.k, kS, std::nullopt, kKeys, a.hkv, a.sk, kvh,
                                k0, a.sk, D);
    tiles->issueTile(a.v, vS, std::nullopt, kKeys, a.hkv, a.sk, kvh, k0, a.sk,
                     Dv);
    e.when(e.slt(c0, count), [&] { issueQueryBlock(c0, c0); });
    tiles->waitGroups(anyGroup, 0);
    e.barrier();
    if (tiling.ownInRegisters) {
      for (int64_t kk = 0; kk < D / 16; ++kk)
        ka.push_back(loadA(kS, {}, kk, D));
      for (int64_t kk = 0; kk < Dv / 16; ++kk)
        va.push_back(loadA(vS, {}, kk, Dv));
    }
  }

  /// Step 2: the loop over (query head, query block), the next one's tiles
  /// prefetched into the other stage while this one is computed; dK and
  /// dV (D / 8 then Dv / 8 accumulator tiles) carried.
  SmallVector<Value> emitQueryLoop() {
    SmallVector<Value> init(D / 8 + Dv / 8, zeroAcc);
    SmallVector<Type> types(init.size(), cType);
    ValueRange results = e.loop(
        c0, count, c1, init,
        [&](Value it, ValueRange iter) -> SmallVector<Value> {
          Value stage = e.rem(it, e.idx(kStages));
          tiles->waitGroups(anyGroup, 0);
          e.barrier();
          Value next = e.add(it, c1);
          e.when(e.slt(next, count),
                 [&] { issueQueryBlock(next, e.rem(next, e.idx(kStages))); });
          Value head, first;
          std::tie(head, first) = iterationRows(it);
          // Whole blocks: every row of the query block is one of the Sq and
          // admits every key of the key block (which lies inside the Sk).
          KeyBlocks band = getKeyBlocks(e, spec, a, off, first, kRows, kKeys);
          Value full =
              e.land(e.land(e.sle(band.fullFrom, k0),
                            e.sle(e.add(k0, e.idx(kKeys)), band.fullTo)),
                     e.sle(e.add(first, e.idx(kRows)), a.sq));
          return ifFullBlock(e, full, types, [&](bool masked) {
            return emitStep(head, first, stage, iter, masked);
          });
        });
    return SmallVector<Value>(results);
  }

  /// One query block: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, Pᵀ and dSᵀ, dV += Pᵀ·dO,
  /// dK += dSᵀ·Q.
  SmallVector<Value> emitStep(Value head, Value first, Value stage,
                              ValueRange iter, bool masked) {
    SmallVector<Value> st = multiplyTransposed(
        [&](int64_t kk) {
          return tiling.ownInRegisters ? ka[kk] : loadA(kS, {}, kk, D);
        },
        qS, stage, kRows / 8, D);
    SmallVector<Value> dpt = multiplyTransposed(
        [&](int64_t kk) {
          return tiling.ownInRegisters ? va[kk] : loadA(vS, {}, kk, Dv);
        },
        doS, stage, kRows / 8, Dv);
    auto [pt, dst] = computeWeights(head, first, stage, st, dpt, masked);
    SmallVector<Value> dk(iter.take_front(D / 8)), dv(iter.drop_front(D / 8));
    accumulate(dv, pt, doS, stage, Dv);
    accumulate(dk, dst, qS, stage, D);
    SmallVector<Value> out = std::move(dk);
    llvm::append_range(out, dv);
    return out;
  }

  /// Pᵀ and dSᵀ from Sᵀ and dPᵀ: element (n, i, j) is key row i of the
  /// thread, query column 8n + 2t + j of the block, whose lse2 and Delta
  /// come from shared memory. In masked blocks, queries past Sq get -inf.
  std::pair<Elements, Elements> computeWeights(Value head, Value first,
                                               Value stage, ArrayRef<Value> st,
                                               ArrayRef<Value> dpt,
                                               bool masked) {
    ScoreTransform scores(spec, a, bIdx, head, c0, c1, /*raw=*/false);
    Elements pt(kRows / 8), dst(kRows / 8);
    for (int64_t n = 0; n < kRows / 8; ++n)
      for (int64_t j = 0; j < 2; ++j) {
        Value col = lanes.column(e, c0, n, j);
        Value query = e.add(first, col);
        Value lse2 = getLse2(e, e.load(lseS, ValueRange{stage, col}));
        Value delta = e.load(deltaS, ValueRange{stage, col});
        for (int64_t i = 0; i < 2; ++i) {
          Value th;
          Value x = scores.apply(
              b, b.getLoc(), element(st[n], i, j), query,
              [&] { return rows[i]; }, masked, &th);
          if (masked)
            x = e.sel(e.slt(query, a.sq), x, e.f(-INFINITY));
          Value p = e.exp2(e.fsub(x, lse2));
          pt[n].push_back(p);
          dst[n].push_back(gradScore(p, element(dpt[n], i, j), delta, th));
        }
      }
    // The loops above visit (n, j, i); fragments are ordered (n, i, j).
    for (Elements *w : {&pt, &dst})
      for (SmallVector<Value, 4> &tile : *w)
        std::swap(tile[1], tile[2]);
    return {pt, dst};
  }

  /// Shared memory: the K and V tiles, the Q and dO stages, the LSE and
  /// Delta stages.
  Value kS, vS, qS, doS, lseS, deltaS;
  Value kvh, k0, off;
  /// The query blocks (locateQueryBlocks).
  Value firstBlock, queryBlocks, h0, count;
  /// The thread's keys (g and g + 8 of its warp's).
  SmallVector<Value> rows;
  /// K's and V's A fragments by k-step, where kept in registers.
  SmallVector<Value> ka, va;
};

} // namespace

void mlir::attn::detail::buildGradMmaDQBody(OpBuilder &builder, Location loc,
                                            gpu::GPUFuncOp func,
                                            const AttentionSpec &spec,
                                            const GradArgs &args,
                                            const GradMmaTiling &tiling) {
  DQKernel(builder, loc, func, spec, args, tiling).emit();
}

void mlir::attn::detail::buildGradMmaDKDVBody(OpBuilder &builder, Location loc,
                                              gpu::GPUFuncOp func,
                                              const AttentionSpec &spec,
                                              const GradArgs &args,
                                              const GradMmaTiling &tiling) {
  DKDVKernel(builder, loc, func, spec, args, tiling).emit();
}
