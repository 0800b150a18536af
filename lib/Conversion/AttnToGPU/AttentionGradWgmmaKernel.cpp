//===- AttentionGradWgmmaKernel.cpp - the backward on wgmma ---------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The sm_90a bodies of the `attention_grad.dq` (step 0, which also writes
// Delta) and `attention_grad.dkdv` (step 1) kernels: FlashAttention-3's
// backward with dQ in a pass of its own (deterministic: no atomics), chosen
// by AttentionGradKernels.cpp's selectGradBodies. With lse2 = lse·log2 e
// (0 where lse = -inf),
// x the forward's logit in the exp2 domain (ScoreTransform) and th its tanh
// under softcap, per key block and query tile:
//
//   Sᵀ  = K·Qᵀ                    dPᵀ = V·dOᵀ
//   Pᵀ  = exp2(x - lse2)          dSᵀ = Pᵀ ⊙ (dPᵀ - Delta) (⊙ (1 - th²))
//   dV += Pᵀ·dO                   dK += dSᵀ·Q      (dK · scale at the end)
//
// A block of 384 threads owns 128 keys of one (batch, KV head), grid
// [Sk / 128, Hkv, B]:
//
//   warpgroup 0, 1  consumers, 64 keys each (wgmma's M), 240 registers
//   warpgroup 2     producer, 24 registers: thread 0 issues every TMA copy
//
// Shared memory (dynamic, 1024-aligned; every tile 128-byte swizzled in
// panels of 64 columns, as the TMA boxes land them):
//
//   K, V            128 x D, 128 x Dv       (loaded once)
//   Q, dO stages    2 x 64 x D, 2 x 64 x Dv (a ring over the query tiles)
//   statistics      2 stages x (lse2, Delta) x 64 f32
//
// mbarriers (static): kvFull, full[s] (count 1 + TMA bytes), empty[s] (lane
// 0 of each of the 8 consumer warps). The dQ kernel (or the fused set's
// prep) lays each 64-row tile's lse2 and Delta out in `row_stats`, and the
// producer copies a tile's with its Q and dO (bulk copies on full[s]: one of
// 512 bytes, or two of 128 for a 32-row tile), read by both warpgroups.
// Staged by the consumers instead (a plain load a thread, then a named
// barrier of each warpgroup), they cost the fused kernel 13% of its time at
// d128, 16k, on an H200; a producer warp loading them itself needed more
// than the producer's 24 registers and spilled.
//
// The query tiles are those of each query head of the KV head's group whose
// rows admit one of the block's keys (buildAdmittingPositions, the inverse
// band, as the mma.sync kernel): dK and dV are summed over the group in
// registers, without atomics (deterministic). A consumer warpgroup runs,
// per tile:
//
//   1. wait full[s] (Q, dO and the rows' statistics); issue Sᵀ (K rows of
//      the warpgroup by descriptor, Q K-major) and dPᵀ (V, dO) as two wgmma
//      groups (m64n64k16).
//   2. wait Sᵀ; Pᵀ on its accumulator registers (the mask and the key and
//      query ranges only in tiles that cross the band's edge); packed to
//      f16/bf16 pairs it is wgmma's register-A operand as it stands (the
//      forward's P·V trick); issue dV += Pᵀ·dO, dO MN-major by descriptor.
//   3. wait dPᵀ; dSᵀ, packed alike; issue dK += dSᵀ·Q, Q MN-major.
//   4. wait both; release the stage (empty[s]).
//
// Then dK·scale and dV go where K and V were (once both warpgroups' last
// products are done), in rows of swizzled 16-byte chunks, and out to global
// memory 16 bytes a thread (keys past Sk skipped; storeGradients). The
// split blocks write their one gradient in column pairs.
//
// With the fused dQ (GradWgmmaTiling::fuseDQ, the non-deterministic
// backward; 64-row tiles, head dims 64 and 128), step 3 also stores the
// warpgroup's packed dSᵀ into a shared buffer of the block's 128 keys x 64
// rows (two, by tile parity, 128-byte swizzled; a proxy fence and a named
// barrier of the 256 consumers), and dK takes dSᵀ from there (K-major A),
// which frees its registers. Once dV is done, the warpgroup issues its
// share of the tile's dQ = dS·K as m64n64 with both operands MN-major (dS
// the buffer read transposed, K resident): column panel w over the 128 keys
// at head dim 128, the one panel over its own 64 keys at 64. When dK is
// done the stage goes back. When dQ is, its 32 values a thread go into a
// 16 KB staging buffer of the warpgroup and the tile's parity (dqFull), and
// producer thread 32 adds both warpgroups' shares into `dq_accum`
// (AttentionGradDQAccum.cpp's layout) with one bulk reduction each (dqRead
// once they have been read; thread 0 waits for that before loading the tile
// that reuses the buffers). With dqAtomics ("dq_reduce": "atomic") the
// consumers instead add their values with f32 atomics.
//
// Head dims are multiples of 64 up to 256 (getGradWgmmaTiling). Past head
// dim 128 the streamed tiles are of 32 rows (query rows here, keys in dQ),
// halving Sᵀ and dPᵀ (S and dP). Past D + Dv = 320 (256 with 128 or 256)
// dK and dV of a consumer's 64 keys no longer fit its registers beside Sᵀ
// and dPᵀ: a block then computes one of them (grid z = [B, 2]: half 0 dV,
// from Sᵀ alone; half 1 dK), which recomputes Sᵀ once more; DeepSeek's
// 192/128 still fits. Where two stages do not fit 227 KB there is one.
//
// dQ (GradWgmmaDQKernel) is the same machinery the other way round: a block
// of 384 threads owns 128 query rows of one (batch, query head), grid
// [Sq / 128, Hq, B]; the producer loads Q and dO once and streams K and V
// of the key tiles the rows admit (getKeyBlocks, the forward's band) in 64
// keys a stage; a consumer warpgroup owns 64 rows and
//
//   0. computes Delta = rowsum(dO ⊙ O) of its rows (two threads a row, from
//      global memory, one shuffle), writes it to the `delta` workspace and,
//      with lse2, to its slots and its tile of `row_stats` (for dK/dV), and
//      keeps -lse2 and Delta of its own rows;
//   1. per key tile: S = Q·Kᵀ and dP = dO·Vᵀ by descriptors (m64n64);
//   2. P on S's registers (the mask only in tiles crossing the band's edge
//      for its rows), then dS = P ⊙ (dP - Delta) (⊙ (1 - th²));
//   3. dQ += dS·K with dS as register-A and K MN-major (m64nD); releases
//      the stage;
//   4. writes dQ·scale in column pairs (rows past Sq skipped).
//
//===----------------------------------------------------------------------===//

#include "AttentionGradKernels.h"
#include "DenseKernels.h"
#include "InlinePtx.h"
#include "KernelCommon.h"
#include "OnlineSoftmax.h"
#include "WgmmaOps.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

/// Keys per consumer warpgroup (wgmma's M) and consumer warpgroups.
static constexpr int64_t kWgKeys = 64, kConsumers = 2;
static constexpr int64_t kConsumerThreads = 128 * kConsumers;
static constexpr int64_t kConsumerWarps = kConsumerThreads / 32;
/// Registers a thread after setmaxnreg: 128 x 24 + 256 x 240 = 64512, the
/// 168 a thread of 384 is launched with.
static constexpr int64_t kProducerRegisters = 24, kConsumerRegisters = 240;
/// The most dynamic shared memory a block may have on sm_90.
static constexpr int64_t kMaxSharedMemory = 227 * 1024;

int64_t GradWgmmaTiling::sharedMemoryBytes(int64_t d, int64_t dv) const {
  int64_t bytes = 2 * keys * (d + dv) + stages * 2 * rows * (d + dv) +
                  stages * 2 * rows * 4;
  if (fuseDQ)
    bytes = llvm::alignTo(bytes, 1024) + 2 * keys * rows * 2;
  // The bulk reduction's buffers: each consumer warpgroup's 64 x 64 f32,
  // by tile parity.
  if (fuseDQ && !dqAtomics)
    bytes += 2 * kConsumers * kDQAccumRows * 64 * 4;
  return bytes;
}

int64_t GradWgmmaTiling::dqSharedMemoryBytes(int64_t d, int64_t dv) const {
  return 2 * dqRows * (d + dv) + dqStages * 2 * dqKeys * (d + dv) +
         kConsumers * 2 * (dqRows / kConsumers) * 4;
}

FailureOr<GradWgmmaTiling>
mlir::attn::detail::getGradWgmmaTiling(const AttentionSpec &spec,
                                       std::string *why,
                                       const AttentionGradSpec *grad) {
  if (spec.dtype != ScalarType::F16 && spec.dtype != ScalarType::BF16)
    return failWith(why, "the wgmma backward needs f16 or bf16");
  auto isPanelled = [](int64_t d) { return d % 64 == 0 && d > 0 && d <= 256; };
  if (!isPanelled(spec.headDim) || !isPanelled(spec.valueHeadDim))
    return failWith(why, "the wgmma backward needs head dims that are "
                         "multiples of 64 up to 256");
  if (!spec.scale && !spec.runtimeValues)
    return failWith(why, "the wgmma backward needs a known scale");
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  GradWgmmaTiling t;
  // dK and dV of a consumer's 64 keys take (D + Dv) / 2 registers a thread.
  // Beside Sᵀ's and dPᵀ's (32 with the 32-row tiles below) they fit up to
  // D + Dv = 320, DeepSeek's 192/128 (ptxas: 168 registers, 4 bytes of
  // spills); past that a block keeps one of them, and Sᵀ is computed twice.
  t.splitDKDV = d + dv > 320;
  // Past head dim 128 the accumulators leave less room for Sᵀ and dPᵀ (S
  // and dP in dQ): tiles of 32 query rows (keys in dQ) halve them.
  if (std::max(d, dv) > 128) {
    t.rows = 32;
    t.dqKeys = 32;
  }
  // Two stages of the streamed tiles where they fit, else one.
  if (t.sharedMemoryBytes(d, dv) > kMaxSharedMemory)
    t.stages = 1;
  if (t.dqSharedMemoryBytes(d, dv) > kMaxSharedMemory)
    t.dqStages = 1;
  if (std::max(t.sharedMemoryBytes(d, dv), t.dqSharedMemoryBytes(d, dv)) >
      kMaxSharedMemory)
    return failWith(why, "the wgmma backward's tiles do not fit 227 KB");
  // The fused dQ takes the unsplit blocks of 64-row query tiles (head dims
  // 64 and 128): a warpgroup's share of a tile's dQ is then one m64n64
  // product (fusedDQ), and dQ's columns are one or two panels.
  GradWgmmaTiling fused = t;
  fused.fuseDQ = true;
  fused.dqAtomics = grad && grad->dqAtomics;
  if (grad && !grad->deterministic && !t.splitDKDV && t.rows == kDQAccumRows &&
      d <= 128 && fused.sharedMemoryBytes(d, dv) <= kMaxSharedMemory)
    return fused;
  return t;
}

namespace {

/// What the dK/dV and dQ bodies share: the set-up (thread indices, shared
/// memory, the mbarriers of a resident tile set and of a ring of stages),
/// the warp specialization, the TMA loads, the waits and the transposed
/// products. The bodies derive from it and emit their phases in between.
/// The class is over 150 lines only because each of these shared steps is a
/// short method defined in it.
class GradWgmmaBody {
protected:
  GradWgmmaBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                const AttentionSpec &spec, const GradArgs &args,
                ValueRange tmaDescriptors, int64_t stages)
      : b(loc, builder), e{b}, func(func), spec(spec), args(args), a(args.fwd),
        tma(tmaDescriptors), D(spec.headDim), Dv(spec.valueHeadDim),
        kStages(stages) {
    ctx = builder.getContext();
    elt = getType(ctx, spec.dtype);
    f32 = b.getF32Type();
    i64 = b.getI64Type();
    workgroup = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    // Without softcap or bias (and with a positive scale) the scale folds
    // into the exponent's FMA in the tiles that need no mask, as in the
    // forward.
    rawScores =
        !spec.softcap && !a.bias && (spec.runtimeValues || spec.scale > 0);
  }

  /// Warp specialization: the last warpgroup runs `producer`, the two
  /// before it `consumer` (setmaxnreg moves the register file to them).
  void specialize(function_ref<void()> producer,
                  function_ref<void()> consumer) {
    auto roles = scf::IfOp::create(b, e.le(e.idx(kConsumerThreads), tid),
                                   /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&roles.getThenRegion().front());
      setMaxRegisters(kProducerRegisters, NVVM::SetMaxRegisterAction::decrease);
      producer();
    }
    b.setInsertionPointToStart(&roles.getElseRegion().front());
    setMaxRegisters(kConsumerRegisters, NVVM::SetMaxRegisterAction::increase);
    consumer();
    b.setInsertionPointAfter(roles);
  }
  void setMaxRegisters(int64_t count, NVVM::SetMaxRegisterAction action) {
    NVVM::SetMaxRegisterOp::create(
        b, b.getI32IntegerAttr(count),
        NVVM::SetMaxRegisterActionAttr::get(ctx, action));
  }

  /// The thread's warpgroup, warp and lane; shared memory and its byte
  /// address (for the descriptors). After the block's own indices.
  void computeThreadIndices() {
    wg = e.div(tid, e.idx(128));
    lt = e.rem(tid, e.idx(128));
    warp = e.div(lt, e.idx(32));
    lane = e.rem(lt, e.idx(32));
    lanes = FragmentLanes::get(e, lane);
    smem = getDynamicSharedMemory(b, b.getLoc(), func);
    smemAddr = addressOf(smem);
  }

  /// The address of `memref`'s aligned pointer (i64).
  Value addressOf(Value memref) {
    return arith::IndexCastUIOp::create(
        b, i64, memref::ExtractAlignedPointerAsIndexOp::create(b, memref));
  }

  /// mbarriers: resident (the tiles loaded once), then full[s] and
  /// empty[s] of each stage (`emptyCount` arrivals: the consumer warps, or
  /// threads where each releases its own loads); thread 0 initializes them
  /// (and prefetches the tensor maps) before any use.
  void createBarriers(ArrayRef<int64_t> extraCounts = {},
                      int64_t emptyCount = kConsumerWarps) {
    barriers = nvgpu::MBarrierCreateOp::create(
        b, nvgpu::MBarrierGroupType::get(ctx, workgroup,
                                         1 + 2 * kStages + extraCounts.size()));
    ticks = e.idx(10000000);
    e.when(e.eq(tid, c0), [&] {
      nvgpu::MBarrierInitOp::create(b, barriers, c1, resident(), Value());
      for (int64_t s = 0; s < kStages; ++s) {
        nvgpu::MBarrierInitOp::create(b, barriers, c1, full(e.idx(s)), Value());
        nvgpu::MBarrierInitOp::create(b, barriers, e.idx(emptyCount),
                                      empty(e.idx(s)), Value());
      }
      for (auto [i, count] : llvm::enumerate(extraCounts))
        nvgpu::MBarrierInitOp::create(b, barriers, e.idx(count),
                                      extra(e.idx(i)), Value());
      NVVM::FenceMbarrierInitOp::create(b);
      for (Value d : tma)
        nvgpu::TmaPrefetchOp::create(b, d, Value());
    });
    e.barrier();
  }
  Value resident() { return c0; }
  Value full(Value stage) { return e.add(stage, c1); }
  Value empty(Value stage) { return e.add(stage, e.idx(1 + kStages)); }
  /// The body's own mbarriers, after the stages' (createBarriers).
  Value extra(Value i) { return e.add(i, e.idx(1 + 2 * kStages)); }

  /// The phase parity `p` (0 or 1) as the mbarrier waits take it.
  Value parity(Value p) {
    return arith::TruncIOp::create(b, b.getI1Type(),
                                   arith::IndexCastUIOp::create(b, i64, p));
  }
  void wait(Value barrierId, Value phase) {
    nvgpu::MBarrierTryWaitParityOp::create(b, barriers, parity(phase), ticks,
                                           barrierId);
  }
  Value stageOf(Value it) { return e.rem(it, e.idx(kStages)); }
  Value phaseOf(Value it) { return e.rem(e.div(it, e.idx(kStages)), e.idx(2)); }

  /// TMA boxes are 64 columns by `rows` rows of one (batch, head).
  MemRefType boxType(int64_t rows) {
    SmallVector<int64_t> dims = spec.layout == Layout::BSHD
                                    ? SmallVector<int64_t>{1, rows, 1, 64}
                                    : SmallVector<int64_t>{1, 1, rows, 64};
    return MemRefType::get(dims, elt, AffineMap(), workgroup);
  }
  /// Loads the `panels` boxes of `rows` rows from row `row` of `head` of
  /// the tensor of `desc` to the panels at byte `dst` on `barrierId`.
  void loadPanels(Value desc, int64_t rows, int64_t panels, Value dst,
                  Value row, Value head, Value barrierId) {
    for (int64_t p = 0; p < panels; ++p) {
      Value view = memref::ViewOp::create(b, boxType(rows), smem,
                                          e.add(dst, e.idx(p * rows * 128)),
                                          ValueRange{});
      Value col = e.idx(p * 64);
      SmallVector<Value> crd = spec.layout == Layout::BSHD
                                   ? SmallVector<Value>{col, head, row, bIdx}
                                   : SmallVector<Value>{col, row, head, bIdx};
      nvgpu::TmaAsyncLoadOp::create(b, view, barriers, desc, crd, barrierId,
                                    /*multicastMask=*/Value(),
                                    /*predicate=*/Value());
    }
  }

  /// Iteration `it` of a producer loop: from the second round on, wait
  /// until the consumers released the stage.
  void waitEmpty(Value it) {
    Value stage = stageOf(it);
    e.when(e.le(e.idx(kStages), it), [&] {
      wait(empty(stage), e.rem(e.add(e.div(it, e.idx(kStages)), c1), e.idx(2)));
    });
  }

  /// smemAddr + `base` + `offset` (i64).
  Value offsetAddr(int64_t base, Value offset) {
    Value addr = arith::AddIOp::create(
        b, smemAddr, arith::ConstantOp::create(b, b.getI64IntegerAttr(base)));
    return offset ? arith::AddIOp::create(b, addr, offset).getResult() : addr;
  }
  /// The byte address of `stage` of a ring at `base`.
  Value stageAddr(int64_t base, int64_t bytes, Value stage) {
    return offsetAddr(
        base, arith::IndexCastUIOp::create(b, i64, e.mul(stage, e.idx(bytes))));
  }

  /// A named barrier of the 256 consumer threads (3).
  void syncConsumers() {
    NVVM::BarrierOp::create(
        b, /*res=*/Type(), arith::ConstantOp::create(b, b.getI32IntegerAttr(3)),
        arith::ConstantOp::create(b, b.getI32IntegerAttr(kConsumerThreads)),
        /*reductionOp=*/nullptr, /*reductionPredicate=*/Value());
  }

  /// A named barrier of the thread's warpgroup (1 + warpgroup, 128
  /// threads).
  void syncWarpgroup() {
    NVVM::BarrierOp::create(
        b, /*res=*/Type(),
        arith::IndexCastUIOp::create(b, b.getI32Type(), e.add(wg, c1)),
        arith::ConstantOp::create(b, b.getI32IntegerAttr(128)),
        /*reductionOp=*/nullptr, /*reductionPredicate=*/Value());
  }

  /// The thread's column pair n (elements j = 0, 1) of its row i of
  /// accumulator `acc`, times `factor` where non-null, in the element type.
  Value packColumnPair(Value acc, int64_t n, int64_t i, Value factor) {
    SmallVector<Value> pair;
    for (int64_t j = 0; j < 2; ++j) {
      Value x = getAccumulatorElement(b, b.getLoc(), acc, n, i, j);
      if (factor)
        x = e.fmul(x, factor);
      pair.push_back(arith::TruncFOp::create(b, elt, x));
    }
    return vector::FromElementsOp::create(b, VectorType::get({2}, elt), pair);
  }

  /// Writes the thread's rows `rows` (g and g + 8 of its warp's 16) of
  /// accumulator `acc` (`dim` columns), times `factor` where non-null, in
  /// the element type as column pairs into head `head` of `dst` (`heads`
  /// heads of `seqLen` rows); rows at or past seqLen write nothing.
  void storeRowPairs(Value dst, Value acc, int64_t dim, ArrayRef<Value> rows,
                     Value heads, Value seqLen, Value head, Value factor) {
    for (int64_t i = 0; i < 2; ++i)
      e.when(e.slt(rows[i], seqLen), [&] {
        Value base = getRowOffset(e, spec.layout, bIdx, heads, seqLen, head,
                                  rows[i], dim);
        for (int64_t n = 0; n < dim / 8; ++n) {
          vector::StoreOp::create(
              b, packColumnPair(acc, n, i, factor), dst,
              ValueRange{e.add(base, lanes.column(e, c0, n, 0))},
              /*nontemporal=*/false, llvm::MaybeAlign(4));
        }
      });
  }

  /// Releases `stage` to the producer. Where every consumer thread read
  /// the stage with plain loads (`lanesRead`: the deterministic dK/dV
  /// kernel's statistics) every one arrives, the empty barriers counting
  /// the 256 threads: each thread's own arrival (release semantics) orders
  /// its loads before the producer's next bulk copy into the stage.
  /// compute-sanitizer's racecheck reported that copy against the loads
  /// when lane 0 of each warp arrived for its warp, after a warp barrier, a
  /// warpgroup or 256-thread barrier, with or without proxy fences
  /// (docs/bench/2026-12-05-h200-stop47). Otherwise (the stage read by
  /// wgmma, whose wait precedes) lane 0 of each warp arrives.
  void release(Value stage, bool lanesRead = false) {
    if (lanesRead) {
      nvgpu::MBarrierArriveOp::create(b, barriers, empty(stage));
      return;
    }
    e.when(e.eq(lane, c0),
           [&] { nvgpu::MBarrierArriveOp::create(b, barriers, empty(stage)); });
  }

  ImplicitLocOpBuilder b;
  Emitter e;
  gpu::GPUFuncOp func;
  const AttentionSpec &spec;
  const GradArgs &args;
  const AttentionKernelArgs &a;
  /// The Q, K, V and dO tensor maps.
  ValueRange tma;
  const int64_t D, Dv, kStages;
  MLIRContext *ctx;
  Type elt, f32, i64;
  gpu::AddressSpaceAttr workgroup;
  bool rawScores;

  Value c0, c1, tid, bIdx, off, wg, warp, lane;
  FragmentLanes lanes;
  Value smem, smemAddr, barriers, ticks, lt;
};

/// The dK/dV body, one method per phase of the file comment: set-up, the
/// producer (tiles, statistics) and the consumers (the query-tile loop, one
/// step of it, the epilogue). The class is over 150 lines only because
/// its phases are methods defined in it.
class GradWgmmaKernel : GradWgmmaBody {
public:
  GradWgmmaKernel(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                  const AttentionSpec &spec, const GradArgs &args,
                  ValueRange tmaDescriptors, const GradWgmmaTiling &tiling)
      : GradWgmmaBody(builder, loc, func, spec, args, tmaDescriptors,
                      tiling.stages),
        kKeys(tiling.keys), kRows(tiling.rows), split(tiling.splitDKDV),
        fuse(tiling.fuseDQ), bulk(tiling.fuseDQ && !tiling.dqAtomics), kBase(0),
        vBase(kBase + kKeys * D * 2), qBase(vBase + kKeys * Dv * 2),
        qStageBytes(kRows * D * 2), doBase(qBase + kStages * qStageBytes),
        doStageBytes(kRows * Dv * 2),
        statsBase(doBase + kStages * doStageBytes),
        dsBase(llvm::alignTo(statsBase + kStages * kStatsStageBytes, 1024)),
        dsBytes(kKeys * kRows * 2), dqBase(dsBase + 2 * dsBytes) {}

  void emit() {
    computeIndices();
    locateQueryBlocks();
    // The bulk reduction's handoffs, by tile parity p: dqFull[p] (the 256
    // consumer threads stored their shares), dqRead[p] (the reducer has
    // read them).
    if (bulk)
      createBarriers({kConsumerThreads, kConsumerThreads, 1, 1});
    else
      createBarriers({}, fuse ? kConsumerWarps : kConsumerThreads);
    specialize([&] { emitProducer(); }, [&] { emitConsumer(); });
  }

private:
  static constexpr int64_t kWarpgroupThreads = 128;
  /// Bytes of a consumer warpgroup's share of a tile's dQ (64 x 64 f32).
  static constexpr int64_t kShareBytes = kDQAccumRows * 64 * 4;
  /// Bytes of a tile of `row_stats` (lse2, Delta: 64 f32 each).
  static constexpr int64_t kStatsBytes = 2 * kDQAccumRows * 4;
  Value dqFull(Value parity) { return extra(parity); }
  Value dqRead(Value parity) { return extra(e.add(parity, e.idx(2))); }

  //===--------------------------------------------------------------------===//
  // Set-up
  //===--------------------------------------------------------------------===//

  /// The block's keys, KV head and batch, the thread's indices, the
  /// statistics' slots.
  void computeIndices() {
    c0 = e.idx(0);
    c1 = e.idx(1);
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    // A pair's streamed rows: Q, dO, their statistics and, fused, dQ's
    // accumulator.
    GradBlockIds ids = getGradBlockIds(e, spec, a, /*heavyLast=*/false, a.sq,
                                       (D + Dv) * 2 + 8 + (fuse ? 4 * D : 0));
    Value kb = ids.x;
    kvh = ids.y;
    bIdx = ids.z;
    if (split) {
      // Grid z is [B, 2]: the block computes dV (half 0) or dK (half 1).
      half = e.rem(bIdx, e.idx(2));
      bIdx = e.div(bIdx, e.idx(2));
    }
    k0 = e.mul(kb, e.idx(kKeys));
    off = e.sub(a.sk, a.sq);
    computeThreadIndices();
    statsS = memref::ViewOp::create(
        b, MemRefType::get({kStages, 2, kRows}, f32, AffineMap(), workgroup),
        smem, e.idx(statsBase), ValueRange{});
  }

  /// The query tiles whose rows admit one of the block's keys (positions
  /// p = row + Sk - Sq), for each query head of the KV head's group: the
  /// loop runs over `count` = heads × tiles, iteration `it` being head
  /// h0 + it / tiles, tile firstBlock + it % tiles (forEachTile).
  void locateQueryBlocks() {
    Value keyEnd = e.smin(e.add(k0, e.idx(kKeys)), a.sk);
    auto [posLo, posHi] =
        buildAdmittingPositions(b, b.getLoc(), getMaskBand(ctx, spec, a), k0,
                                keyEnd, off, e.add(a.sq, off));
    Value lo = e.sub(posLo, off), hi = e.sub(posHi, off);
    firstBlock = e.div(lo, e.idx(kRows));
    Value blocks = e.smax(e.sub(e.ceilDiv(hi, e.idx(kRows)), firstBlock), c0);
    Value group = e.div(a.hq, a.hkv);
    h0 = e.mul(kvh, group);
    count = e.mul(group, blocks);
    // Divides only where count > 0, but must not divide by 0 anywhere.
    queryBlocks = e.smax(blocks, c1);
  }

  /// The loop over the query tiles, carrying `init` through `body(it,
  /// head, first row, carried values)`: head h0 + it / tiles and tile
  /// it % tiles are counted along (a 64-bit division would not fit the
  /// producer's 24 registers).
  ValueRange forEachTile(
      ValueRange init,
      function_ref<SmallVector<Value>(Value, Value, Value, ValueRange)> body) {
    SmallVector<Value> state = {h0, c0};
    llvm::append_range(state, init);
    ValueRange results =
        e.loop(c0, count, c1, state,
               [&](Value it, ValueRange iter) -> SmallVector<Value> {
                 Value head = iter[0], tile = iter[1];
                 Value first = e.mul(e.add(firstBlock, tile), e.idx(kRows));
                 SmallVector<Value> carried =
                     body(it, head, first, iter.drop_front(2));
                 Value next = e.add(tile, c1);
                 Value wrap = e.eq(next, queryBlocks);
                 SmallVector<Value> out = {e.sel(wrap, e.add(head, c1), head),
                                           e.sel(wrap, c0, next)};
                 llvm::append_range(out, carried);
                 return out;
               });
    return results.drop_front(2);
  }
  void forEachTile(function_ref<void(Value, Value, Value)> body) {
    forEachTile(ValueRange{},
                [&](Value it, Value head, Value first, ValueRange) {
                  body(it, head, first);
                  return SmallVector<Value>{};
                });
  }

  //===--------------------------------------------------------------------===//
  // Producer
  //===--------------------------------------------------------------------===//

  /// The producer warpgroup: thread 0 loads K and V (only where some query
  /// tile admits the keys, so that no copy outlives the consumers), then Q
  /// and dO of every query tile (with the bulk reduction, once the reducer
  /// read the dQ buffers tile's consumers will write); with the bulk
  /// reduction, thread 32 (the second warp) adds the consumers' shares of
  /// dQ into `dq_accum`.
  void emitProducer() {
    Value local = e.sub(tid, e.idx(kConsumerThreads));
    if (bulk)
      e.when(e.eq(local, e.idx(32)), [&] { emitQueryGradReducer(); });
    e.when(e.eq(local, c0), [&] {
      e.when(e.slt(c0, count), [&] {
        nvgpu::MBarrierArriveExpectTxOp::create(
            b, barriers, e.idx(kKeys * (D + Dv) * 2), resident(), Value());
        loadPanels(tma[1], kKeys, D / 64, e.idx(kBase), k0, kvh, resident());
        loadPanels(tma[2], kKeys, Dv / 64, e.idx(vBase), k0, kvh, resident());
      });
      forEachTile([&](Value it, Value head, Value first) {
        // With the bulk reduction, tile it's consumers write the dQ
        // buffers of parity it % 2 again: not before the reducer has read
        // tile it - 2's shares from them.
        if (bulk)
          e.when(e.le(e.idx(2), it), [&] {
            wait(dqRead(e.rem(it, e.idx(2))),
                 e.rem(e.add(e.div(it, e.idx(2)), c1), e.idx(2)));
          });
        waitEmpty(it);
        Value stage = stageOf(it);
        nvgpu::MBarrierArriveExpectTxOp::create(
            b, barriers, e.idx(kRows * (D + Dv) * 2 + kStatsStageBytes),
            full(stage), Value());
        loadStatistics(head, first, stage);
        loadPanels(tma[0], kRows, D / 64,
                   e.add(e.idx(qBase), e.mul(stage, e.idx(qStageBytes))), first,
                   head, full(stage));
        loadPanels(tma[3], kRows, Dv / 64,
                   e.add(e.idx(doBase), e.mul(stage, e.idx(doStageBytes))),
                   first, head, full(stage));
      });
    });
  }

  /// The tile's lse2 and Delta (`row_stats`, written by the dQ kernel or
  /// the fused set's prep) into the stage's statistics, by bulk copies on
  /// full[s]: a 64-row tile's 512 bytes at once, a 32-row tile's (past head
  /// dim 128) lse2 and Delta halves of 128 bytes each. Both warpgroups read
  /// them: the consumers neither load them nor wait on a barrier of their
  /// own for them.
  void loadStatistics(Value head, Value first, Value stage) {
    auto ptr = [&](unsigned space) {
      return LLVM::LLVMPointerType::get(ctx, space);
    };
    Value tiles = e.ceilDiv(a.sq, e.idx(kDQAccumRows));
    Value tile = e.add(e.mul(e.add(e.mul(bIdx, a.hq), head), tiles),
                       e.div(first, e.idx(kDQAccumRows)));
    Value tileAddr = arith::AddIOp::create(
        b, addressOf(args.rowStats),
        arith::IndexCastUIOp::create(b, i64, e.mul(tile, e.idx(kStatsBytes))));
    Value mbar = LLVM::IntToPtrOp::create(
        b, ptr(3),
        nvgpu::MBarrierGetOp::create(b, b.getI32Type(), barriers, full(stage))
            .getResult());
    const bool whole = kRows == kDQAccumRows;
    const int64_t bytes = whole ? kStatsBytes : kRows * 4;
    // A 32-row tile's first row within its 64-row tile of row_stats.
    Value within = whole ? Value() : e.rem(first, e.idx(kDQAccumRows));
    for (int64_t which = 0; which < (whole ? 1 : 2); ++which) {
      Value src = tileAddr;
      if (!whole) {
        Value row = e.add(e.idx(which * kDQAccumRows), within);
        src = arith::AddIOp::create(
            b, src, arith::IndexCastUIOp::create(b, i64, e.mul(row, e.idx(4))));
      }
      // A generic address of global memory, cast to the global space (PTX's
      // cvta.to.global), and the stage's shared address, which addresses the
      // block's own shared memory in the cluster window too.
      Value global = LLVM::AddrSpaceCastOp::create(
          b, ptr(1), LLVM::IntToPtrOp::create(b, ptr(0), src));
      Value dst = stageAddr(statsBase + which * bytes, kStatsStageBytes, stage);
      NVVM::CpAsyncBulkGlobalToSharedClusterOp::create(
          b, LLVM::IntToPtrOp::create(b, ptr(7), dst), global, mbar,
          arith::ConstantOp::create(b, b.getI32IntegerAttr(bytes)),
          /*multicastMask=*/Value(), /*l2CacheHint=*/Value());
    }
  }

  //===--------------------------------------------------------------------===//
  // Consumers
  //===--------------------------------------------------------------------===//

  /// The consumer warpgroups: the query-tile loop carrying dK and dV, then
  /// the epilogue.
  void emitConsumer() {
    // The thread's keys: g and g + 8 of its warp's 16 in its warpgroup's 64.
    Value key = e.add(e.add(k0, e.mul(wg, e.idx(kWgKeys))),
                      e.add(e.mul(warp, e.idx(16)), lanes.g));
    keys[0] = key;
    keys[1] = e.add(key, e.idx(8));
    wgKey0 = e.add(k0, e.mul(wg, e.idx(kWgKeys)));
    // The warpgroup's K and V rows (A operands, K-major).
    Value wgOffset =
        arith::IndexCastUIOp::create(b, i64, e.mul(wg, e.idx(kWgKeys * 128)));
    kDesc = buildWgmmaDescriptor(b, offsetAddr(kBase, wgOffset), 0);
    vDesc = buildWgmmaDescriptor(b, offsetAddr(vBase, wgOffset), 0);
    e.when(e.slt(c0, count), [&] { wait(resident(), c0); });
    if (!split) {
      SmallVector<Value> init = {buildZeroAccumulator(b, D),
                                 buildZeroAccumulator(b, Dv)};
      ValueRange acc = forEachTile(
          init, [&](Value it, Value head, Value first, ValueRange iter) {
            return emitStep(it, head, first, iter, Grads::Both);
          });
      gradScale = getGradScale(e, spec, a);
      storeGradients(acc[0], acc[1]);
      return;
    }
    // Split: one accumulator a block, whose registers fit beside Sᵀ and dPᵀ.
    auto ifOp = scf::IfOp::create(b, e.eq(half, c0), /*withElse=*/true);
    for (Grads grads : {Grads::DV, Grads::DK}) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(grads == Grads::DV
                                     ? &ifOp.getThenRegion().front()
                                     : &ifOp.getElseRegion().front());
      int64_t dim = grads == Grads::DV ? Dv : D;
      Value acc =
          forEachTile(ValueRange{buildZeroAccumulator(b, dim)},
                      [&](Value it, Value head, Value first, ValueRange iter) {
                        return emitStep(it, head, first, iter, grads);
                      })[0];
      if (grads == Grads::DV)
        storeRowPairs(args.dv, acc, Dv, keys, a.hkv, a.sk, kvh, Value());
      else
        storeRowPairs(args.dk, acc, D, keys, a.hkv, a.sk, kvh,
                      getGradScale(e, spec, a));
    }
    b.setInsertionPointAfter(ifOp);
  }

  /// The epilogue of an unsplit block: dK·scale and dV through shared
  /// memory. Their tiles have K's and V's shapes, so they go where K and V
  /// were, once both warpgroups' last products have read them (dQ's reads
  /// every key's K row; a warpgroup's Sᵀ and dPᵀ only its own). Each
  /// warpgroup writes its 64 keys' rows there, row-major with the 16-byte
  /// chunks of row r XOR-swizzled by r % 8 (a warp's column pairs land in 32
  /// banks), then its threads copy them out 16 bytes each, consecutive
  /// threads along a row: a warp stores whole 128-byte lines where its
  /// column pairs wrote 16 bytes of each of 8 rows (the fused set's dQ
  /// convert stores 16 bytes at a time too: gradients start 16-byte
  /// aligned).
  void storeGradients(Value dk, Value dv) {
    syncConsumers();
    Value kStaged = stageGradientRows(dk, D, kBase, gradScale);
    Value vStaged = stageGradientRows(dv, Dv, vBase, Value());
    syncWarpgroup();
    copyGradientRows(args.dk, D, kStaged);
    copyGradientRows(args.dv, Dv, vStaged);
  }

  /// Writes the thread's rows of accumulator `acc` (`dim` columns, times
  /// `factor` where non-null) into its warpgroup's rows of the region at
  /// byte `base` (storeGradients' layout); returns the region's view.
  Value stageGradientRows(Value acc, int64_t dim, int64_t base, Value factor) {
    Value rows = memref::ViewOp::create(
        b, MemRefType::get({kKeys * dim}, elt, AffineMap(), workgroup), smem,
        e.idx(base), ValueRange{});
    for (int64_t i = 0; i < 2; ++i) {
      // Row warp·16 + g + 8i of the warpgroup's: r % 8 = g.
      Value row = e.sub(keys[i], k0);
      Value start = e.add(e.mul(row, e.idx(dim)), e.mul(lanes.t, e.idx(2)));
      for (int64_t n = 0; n < dim / 8; ++n) {
        Value chunk = e.xori(e.idx(n), lanes.g);
        vector::StoreOp::create(
            b, packColumnPair(acc, n, i, factor), rows,
            ValueRange{e.add(start, e.mul(chunk, e.idx(8)))},
            /*nontemporal=*/false, llvm::MaybeAlign(4));
      }
    }
    return rows;
  }

  /// Copies the warpgroup's staged rows (stageGradientRows) to `dst`, 16
  /// bytes a thread at a time; keys at or past Sk write nothing.
  void copyGradientRows(Value dst, int64_t dim, Value rows) {
    const int64_t chunks = dim / 8;
    Value wgRow0 = e.mul(wg, e.idx(kWgKeys));
    for (int64_t m = 0; m < kWgKeys * chunks / 128; ++m) {
      Value idx = e.add(lt, e.idx(128 * m));
      Value row = e.add(wgRow0, e.div(idx, e.idx(chunks)));
      Value chunk = e.rem(idx, e.idx(chunks));
      Value swizzled = e.xori(chunk, e.rem(row, e.idx(8)));
      Value value = vector::LoadOp::create(
          b, VectorType::get({8}, elt), rows,
          ValueRange{e.add(e.mul(row, e.idx(dim)), e.mul(swizzled, e.idx(8)))},
          /*nontemporal=*/false, b.getI64IntegerAttr(16));
      Value key = e.add(k0, row);
      e.when(e.slt(key, a.sk), [&] {
        Value offset =
            getRowOffset(e, spec.layout, bIdx, a.hkv, a.sk, kvh, key, dim);
        vector::StoreOp::create(
            b, value, dst, ValueRange{e.add(offset, e.mul(chunk, e.idx(8)))},
            /*nontemporal=*/false, llvm::MaybeAlign(16));
      });
    }
  }

  /// Which gradients a block accumulates.
  enum class Grads { Both, DK, DV };

  /// One query tile (the file comment's steps 1-4); `acc` and the result
  /// are dK and dV (Both) or the one gradient of a split block (dV needs
  /// neither dPᵀ nor dSᵀ).
  SmallVector<Value> emitStep(Value it, Value head, Value first, ValueRange acc,
                              Grads grads) {
    Value stage = stageOf(it);
    // Step 1: Sᵀ and dPᵀ, Q and dO as K-major B operands.
    wait(full(stage), phaseOf(it));
    Value qAddr = stageAddr(qBase, qStageBytes, stage);
    Value doAddr = stageAddr(doBase, doStageBytes, stage);
    Value qDesc = buildWgmmaDescriptor(b, qAddr, 0);
    Value doDesc = buildWgmmaDescriptor(b, doAddr, 0);
    Value st =
        buildWgmmaTransposedProduct(b, elt, kDesc, kKeys, qDesc, kRows, D);
    Value dpt = grads == Grads::DV
                    ? Value()
                    : buildWgmmaTransposedProduct(b, elt, vDesc, kKeys, doDesc,
                                                  kRows, Dv);
    // Step 2: Pᵀ, then dV += Pᵀ·dO with dO MN-major: its 64-column panels
    // are kRows rows of 128 bytes apart (the leading byte offset), k-step
    // kk its rows 16kk.. .
    buildWgmmaWait(b, grads == Grads::DV ? 0 : 1);
    SmallVector<Value> weights = computeWeights(head, first, stage, st);
    ArrayRef<Value> pt = ArrayRef<Value>(weights).take_front(kRows / 2);
    Value dk = grads == Grads::DV ? Value() : acc.front();
    Value dv = grads == Grads::DK ? Value() : acc.back();
    if (dv) {
      Value doMN = buildWgmmaDescriptor(b, doAddr, kRows * 128);
      dv = buildWgmmaRegisterAChain(
          b, elt, dv, packRegisterA(b, elt, pt), Dv, [&](int64_t kk) {
            return advanceWgmmaDescriptor(b, doMN, kk * 2048);
          });
    }
    // Step 3: dSᵀ, then dK += dSᵀ·Q with Q MN-major (dSᵀ from registers,
    // or with the fused dQ from the dSᵀ buffer, which frees its registers
    // for dQ's accumulator).
    if (dk) {
      buildWgmmaWait(b, grads == Grads::Both ? 1 : 0);
      SmallVector<Value> dst = computeGradScores(
          stage, pt, dpt, ArrayRef<Value>(weights).drop_front(kRows / 2));
      Value qMN = buildWgmmaDescriptor(b, qAddr, kRows * 128);
      SmallVector<Value> packed = packRegisterA(b, elt, dst);
      auto qStep = [&](int64_t kk) {
        return advanceWgmmaDescriptor(b, qMN, kk * 2048);
      };
      if (fuse) {
        Value dsDesc = stageGradScores(it, packed);
        dk = buildWgmmaChain(
            b, elt, dk, D, kRows / 16, /*zeroInit=*/false,
            [&](int64_t kk) {
              return advanceWgmmaDescriptor(b, dsDesc,
                                            getKMajorStepOffset(kk, kWgKeys));
            },
            qStep, /*bMNMajor=*/true);
      } else {
        dk = buildWgmmaRegisterAChain(b, elt, dk, packed, D, qStep);
      }
    }
    // Step 4: the products done, the stage goes back to the producer. With
    // the fused dQ, its product is issued once dV is done (Pᵀ's registers
    // free for dQ's accumulator: issued earlier, the consumers spilled) and
    // reads K and the dSᵀ buffer, not the stage: the stage goes back as
    // soon as dK is done. Every lane read the stage's statistics: with the
    // fused dQ the consumers' named barrier in stageGradScores has ordered
    // those reads before the release; without it every thread arrives.
    if (fuse) {
      buildWgmmaWait(b, 1);
      Value dq = issueQueryGrad(it);
      buildWgmmaWait(b, 1);
      release(stage);
      buildWgmmaWait(b, 0);
      if (bulk)
        stageQueryGrad(it, dq);
      else
        addQueryGrad(head, first, dq);
    } else {
      buildWgmmaWait(b, 0);
      release(stage, /*lanesRead=*/true);
    }
    if (grads == Grads::Both)
      return {dk, dv};
    return {dk ? dk : dv};
  }

  /// Pᵀ from Sᵀ: element 4n + 2i + j is the thread's key i and query column
  /// 8n + 2t + j of the tile. The per-element mask (band, keys past Sk,
  /// queries past Sq) only where the tile crosses the band's edge or the
  /// sequences' ends. Returns Pᵀ's kRows / 2 values, then under softcap the
  /// tanh of each logit.
  SmallVector<Value> computeWeights(Value head, Value first, Value stage,
                                    Value st) {
    KeyBlocks band = getKeyBlocks(e, spec, a, off, first, kRows, kWgKeys);
    Value whole =
        e.land(e.land(e.sle(band.fullFrom, wgKey0),
                      e.sle(e.add(wgKey0, e.idx(kWgKeys)), band.fullTo)),
               e.sle(e.add(first, e.idx(kRows)), a.sq));
    SmallVector<Type> types(kRows / 2 * (spec.softcap ? 2 : 1), f32);
    return ifFullBlock(e, whole, types, [&](bool masked) {
      return computeWeightsIn(head, first, stage, st, masked);
    });
  }

  /// computeWeights in a tile that needs the mask (`masked`) or not.
  SmallVector<Value> computeWeightsIn(Value head, Value first, Value stage,
                                      Value st, bool masked) {
    OnlineSoftmax exp2(e, /*approxExp2=*/true);
    bool raw = rawScores && !masked;
    ScoreTransform scores(spec, a, bIdx, head, c0, c1, raw);
    Value factor = raw ? getScoreFactor(e, spec, a) : Value();
    SmallVector<Value> pt(kRows / 2), th(spec.softcap ? kRows / 2 : 0);
    for (int64_t n = 0; n < kRows / 8; ++n) {
      Value lse2 = loadPair(stage, 0, lanes.column(e, c0, n, 0));
      for (int64_t j = 0; j < 2; ++j) {
        Value query = e.add(first, lanes.column(e, c0, n, j));
        Value negLse2 = arith::NegFOp::create(
            b, vector::ExtractOp::create(b, lse2, ArrayRef<int64_t>{j}));
        for (int64_t i = 0; i < 2; ++i) {
          int64_t k = 4 * n + 2 * i + j;
          Value s = getAccumulatorElement(b, b.getLoc(), st, n, i, j);
          Value x = scores.apply(
              b, b.getLoc(), s, query, [&] { return keys[i]; }, masked,
              spec.softcap ? &th[k] : nullptr);
          if (masked)
            x = e.sel(e.slt(query, a.sq), x, e.f(-INFINITY));
          pt[k] =
              exp2.exp2(raw ? e.fma(x, factor, negLse2) : e.fadd(x, negLse2));
        }
      }
    }
    llvm::append_range(pt, th);
    return pt;
  }

  /// dSᵀ = Pᵀ ⊙ (dPᵀ - Delta) (⊙ (1 - th²) under softcap), in Pᵀ's order.
  SmallVector<Value> computeGradScores(Value stage, ArrayRef<Value> pt,
                                       Value dpt, ArrayRef<Value> th) {
    SmallVector<Value> ds(kRows / 2);
    for (int64_t n = 0; n < kRows / 8; ++n) {
      Value delta = loadPair(stage, 1, lanes.column(e, c0, n, 0));
      for (int64_t j = 0; j < 2; ++j) {
        Value dj = vector::ExtractOp::create(b, delta, ArrayRef<int64_t>{j});
        for (int64_t i = 0; i < 2; ++i) {
          int64_t k = 4 * n + 2 * i + j;
          Value dp = getAccumulatorElement(b, b.getLoc(), dpt, n, i, j);
          ds[k] = e.fmul(pt[k], e.fsub(dp, dj));
          if (!th.empty())
            ds[k] = e.fmul(ds[k], e.fsub(e.f(1.0), e.fmul(th[k], th[k])));
        }
      }
    }
    return ds;
  }

  //===--------------------------------------------------------------------===//
  // The fused dQ (fuse)
  //===--------------------------------------------------------------------===//

  /// Step 3: the thread's packed dSᵀ pairs (its key i, the tile's query
  /// columns 8n + 2t and + 1: register 2n + i) into the tile's dSᵀ buffer
  /// (parity it % 2), one 4-byte store each: row = the key's place among
  /// the block's keys (128 bytes: the tile's 64 queries), 16-byte chunk
  /// n ^ (key % 8), the 128-byte swizzle of the wgmma operands (key % 8 is
  /// g: conflict-free). Then visible to wgmma (the async proxy) and, after
  /// a named barrier of the 256 consumer threads, complete: dQ reads both
  /// warpgroups' rows. Returns the descriptor of the warpgroup's rows as
  /// dK's A operand (K-major: a row is the key's 64 queries).
  Value stageGradScores(Value it, ArrayRef<Value> packed) {
    Value words = memref::ViewOp::create(
        b,
        MemRefType::get({2 * dsBytes / 4}, b.getI32Type(), AffineMap(),
                        workgroup),
        smem, e.idx(dsBase), ValueRange{});
    Value buffer = e.mul(e.rem(it, e.idx(2)), e.idx(dsBytes / 4));
    for (int64_t i = 0; i < 2; ++i) {
      // Word (chunk n ^ g) · 4 + t of the key's row: the row's words have
      // bits 2-4 clear, so that is the row's word of chunk g XOR 4n. Built
      // on the buffer's offset, which changes each tile: the 16 offsets of
      // a loop-invariant base would be hoisted out of the loop into live
      // registers.
      Value key = e.sub(keys[i], k0);
      Value row = e.add(e.add(buffer, e.mul(key, e.idx(32))),
                        e.add(e.mul(lanes.g, e.idx(4)), lanes.t));
      for (int64_t n = 0; n < kRows / 8; ++n)
        e.store(packed[2 * n + i], words, e.xori(row, e.idx(4 * n)));
    }
    NVVM::FenceProxyOp::create(
        b, NVVM::ProxyKindAttr::get(ctx, NVVM::ProxyKind::async_shared),
        NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    syncConsumers();
    Value rows = e.add(e.mul(e.rem(it, e.idx(2)), e.idx(dsBytes)),
                       e.mul(wg, e.idx(kWgKeys * 128)));
    return buildWgmmaDescriptor(
        b, offsetAddr(dsBase, arith::IndexCastUIOp::create(b, i64, rows)), 0);
  }

  /// Step 4: issues the warpgroup's share of the tile's dQ = dS·K, m64n64
  /// with both operands MN-major (after stageGradScores): dS is the
  /// buffer read transposed, K the resident keys. With two column panels
  /// (D = 128) warpgroup w takes panel w over the block's 128 keys; with
  /// one (D = 64) each takes it over its own 64 keys. The buffer of parity
  /// it % 2 is written again at tile it + 2, after both warpgroups passed
  /// tile it + 1's barrier, hence after both waited for this product.
  Value issueQueryGrad(Value it) {
    const int64_t panels = D / 64;
    Value keyOffset = panels == 1 ? e.mul(wg, e.idx(kWgKeys * 128)) : c0;
    Value panelOffset = panels == 2 ? e.mul(wg, e.idx(kKeys * 128)) : c0;
    auto toI64 = [&](Value x) {
      return arith::IndexCastUIOp::create(b, i64, x).getResult();
    };
    Value buffer = e.mul(e.rem(it, e.idx(2)), e.idx(dsBytes));
    Value dsDesc = buildWgmmaDescriptor(
        b, offsetAddr(dsBase, toI64(e.add(buffer, keyOffset))), kKeys * 128);
    // K's descriptor from the buffer's (the same fields, the start address
    // moved by kBase + panelOffset - dsBase - buffer, in 16-byte units): a
    // loop-invariant descriptor's k-step offsets would be hoisted out of
    // the loop into 16 live registers, and the consumers spilled.
    Value kDescMN = arith::AddIOp::create(
        b, dsDesc,
        arith::SubIOp::create(
            b, toI64(e.div(e.add(e.idx(kBase), panelOffset), e.idx(16))),
            toI64(e.div(e.add(e.idx(dsBase), buffer), e.idx(16)))));
    return buildWgmmaChain(
        b, elt,
        LLVM::PoisonOp::create(b, getWgmmaAccumulatorType(ctx, kDQAccumRows)),
        kDQAccumRows, (panels == 2 ? kKeys : kWgKeys) / 16, /*zeroInit=*/true,
        [&](int64_t kk) {
          return advanceWgmmaDescriptor(b, dsDesc, kk * 2048);
        },
        [&](int64_t kk) {
          return advanceWgmmaDescriptor(b, kDescMN, kk * 2048);
        },
        /*bMNMajor=*/true, /*negateA=*/false, /*aMNMajor=*/true);
  }

  /// Step 5: adds the warpgroup's share of the tile's dQ (unscaled: the
  /// convert step applies the scale) into `dq_accum`, one f32 atomic add an
  /// element (red.global.add.f32; a warp's add is 128 contiguous bytes).
  void addQueryGrad(Value head, Value first, Value dq) {
    const int64_t panels = D / 64;
    Value tiles = e.ceilDiv(a.sq, e.idx(kDQAccumRows));
    Value tile = e.div(first, e.idx(kDQAccumRows));
    Value bh = e.add(e.mul(bIdx, a.hq), head);
    Value panel = panels == 2 ? wg : c0;
    for (int64_t n = 0; n < kDQAccumRows / 8; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          memref::AtomicRMWOp::create(
              b, arith::AtomicRMWKind::addf,
              getAccumulatorElement(b, b.getLoc(), dq, n, i, j), args.dqAccum,
              ValueRange{getDQAccumOffset(e, bh, tiles, tile, panel, panels,
                                          4 * n + 2 * i + j, lt)});
  }

  /// Step 5 with the bulk reduction: the warpgroup's 32 values a thread
  /// into its 16 KB buffer of parity it % 2, in dq_accum's order (element k
  /// of thread l at 128k + l: conflict-free), visible to the async proxy,
  /// then dqFull. No wait: the producer loaded this tile only after the
  /// reducer had read tile it - 2's shares, which these buffers held. (A
  /// wait of the consumers for the reducer, anywhere in the step, left
  /// ptxas spilling 160 bytes, against 28 without.)
  void stageQueryGrad(Value it, Value dq) {
    Value parity = e.rem(it, e.idx(2));
    Value buffer = memref::ViewOp::create(
        b,
        MemRefType::get({2 * kConsumers * kShareBytes / 4}, f32, AffineMap(),
                        workgroup),
        smem, e.idx(dqBase), ValueRange{});
    Value base = e.add(e.mul(e.add(e.mul(parity, e.idx(kConsumers)), wg),
                             e.idx(kShareBytes / 4)),
                       lt);
    for (int64_t n = 0; n < kDQAccumRows / 8; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          e.store(getAccumulatorElement(b, b.getLoc(), dq, n, i, j), buffer,
                  e.add(base, e.idx((4 * n + 2 * i + j) * kWarpgroupThreads)));
    NVVM::FenceProxyOp::create(
        b, NVVM::ProxyKindAttr::get(ctx, NVVM::ProxyKind::async_shared),
        NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    nvgpu::MBarrierArriveOp::create(b, barriers, dqFull(parity));
  }

  /// The reducer (producer thread 32), per query tile it: waits for both
  /// consumer warpgroups' shares (dqFull of parity it % 2), adds each into
  /// its 16 KB of `dq_accum` (the tile's column panel of the warpgroup, or
  /// at head dim 64 the one panel, twice) with one bulk reduction, waits
  /// until the reductions have read shared memory and says so (dqRead),
  /// which the loader waits for before the tile that reuses the buffers.
  /// FlashAttention-3's dQ path: the consumers never wait on global memory.
  void emitQueryGradReducer() {
    const int64_t panels = D / 64;
    Value accum = addressOf(args.dqAccum);
    Value tiles = e.ceilDiv(a.sq, e.idx(kDQAccumRows));
    forEachTile([&](Value it, Value head, Value first) {
      Value parity = e.rem(it, e.idx(2));
      wait(dqFull(parity), e.rem(e.div(it, e.idx(2)), e.idx(2)));
      Value bh = e.add(e.mul(bIdx, a.hq), head);
      Value tile = e.div(first, e.idx(kDQAccumRows));
      for (int64_t w = 0; w < kConsumers; ++w) {
        Value offset = getDQAccumOffset(e, bh, tiles, tile,
                                        e.idx(panels == 2 ? w : 0), panels,
                                        /*element=*/0, /*thread=*/c0);
        Value dst = arith::AddIOp::create(
            b, accum,
            arith::IndexCastUIOp::create(b, i64, e.mul(offset, e.idx(4))));
        Value src = arith::TruncIOp::create(
            b, b.getI32Type(),
            offsetAddr(
                dqBase + w * kShareBytes,
                arith::IndexCastUIOp::create(
                    b, i64, e.mul(parity, e.idx(kConsumers * kShareBytes)))));
        createBulkReduceAddF32(b, b.getLoc(), dst, src, kShareBytes);
      }
      NVVM::CpAsyncBulkCommitGroupOp::create(b);
      NVVM::CpAsyncBulkWaitGroupOp::create(b, b.getI32IntegerAttr(0),
                                           b.getUnitAttr());
      nvgpu::MBarrierArriveOp::create(b, barriers, dqRead(parity));
    });
  }

  /// The two f32 of the tile's statistic `which` (0: lse2, 1: Delta) in
  /// `stage` at columns `col`, + 1 (col even).
  Value loadPair(Value stage, int64_t which, Value col) {
    return vector::LoadOp::create(b, VectorType::get({2}, f32), statsS,
                                  ValueRange{stage, e.idx(which), col});
  }

  const int64_t kKeys, kRows;
  /// Bytes of a stage's statistics (lse2, Delta: kRows f32 each).
  const int64_t kStatsStageBytes = 2 * kRows * 4;
  /// Whether a block computes dK or dV only (GradWgmmaTiling::splitDKDV).
  const bool split;
  /// Whether it also adds dQ's shares (GradWgmmaTiling::fuseDQ), and by
  /// bulk reductions of the producer's (not dqAtomics).
  const bool fuse, bulk;
  /// Shared memory byte offsets: K, V, the Q and dO rings, the statistics,
  /// the two dSᵀ buffers (fuse) of dsBytes each, the consumers' dQ shares
  /// (bulk: 16 KB each).
  const int64_t kBase, vBase, qBase, qStageBytes, doBase, doStageBytes,
      statsBase, dsBase, dsBytes, dqBase;

  Value kvh, k0, half;
  /// [stage, lse2 | Delta, row] (f32).
  Value statsS;
  /// The query tiles (locateQueryBlocks).
  Value firstBlock, queryBlocks, h0, count;
  /// Consumer state: the thread's keys, the warpgroup's first key, the K
  /// and V descriptors of its rows, the scale of dK.
  Value keys[2];
  Value wgKey0, kDesc, vDesc, gradScale;
};

/// The dQ body (step 0), one method per phase of the file comment's dQ
/// part: set-up, the producer (Q and dO once, K and V per key tile) and the
/// consumers (Delta, the key-tile loop, one step of it, the epilogue). The
/// class is over 150 lines only because its phases are methods defined in
/// it.
class GradWgmmaDQKernel : GradWgmmaBody {
public:
  GradWgmmaDQKernel(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                    const AttentionSpec &spec, const GradArgs &args,
                    ValueRange tmaDescriptors, const GradWgmmaTiling &tiling)
      : GradWgmmaBody(builder, loc, func, spec, args, tmaDescriptors,
                      tiling.dqStages),
        kRows(tiling.dqRows), kKeys(tiling.dqKeys), qBase(0),
        doBase(qBase + kRows * D * 2), kBase(doBase + kRows * Dv * 2),
        kStageBytes(kKeys * D * 2), vBase(kBase + kStages * kStageBytes),
        vStageBytes(kKeys * Dv * 2), statsBase(vBase + kStages * vStageBytes) {}

  void emit() {
    computeIndices();
    locateKeyBlocks();
    createBarriers();
    specialize([&] { emitProducer(); }, [&] { emitConsumer(); });
  }

private:
  /// The block's rows, query head, KV head and batch, the thread's
  /// indices, the statistics' slots.
  void computeIndices() {
    c0 = e.idx(0);
    c1 = e.idx(1);
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    GradBlockIds ids =
        getGradBlockIds(e, spec, a, /*heavyLast=*/true, a.sk, (D + Dv) * 2);
    Value qb = ids.x;
    head = ids.y;
    bIdx = ids.z;
    q0 = e.mul(qb, e.idx(kRows));
    off = e.sub(a.sk, a.sq);
    kvh = e.div(head, e.div(a.hq, a.hkv));
    computeThreadIndices();
    statsS = memref::ViewOp::create(
        b,
        MemRefType::get({kConsumers, 2, kWgRows}, f32, AffineMap(), workgroup),
        smem, e.idx(statsBase), ValueRange{});
  }

  /// The key tiles the block's rows admit: [begin, begin + count).
  void locateKeyBlocks() {
    KeyBlocks blocks = getKeyBlocks(e, spec, a, off, q0, kRows, kKeys);
    begin = blocks.begin;
    count = e.smax(e.sub(blocks.end, blocks.begin), c0);
  }

  /// The producer warpgroup: thread 0 loads Q and dO (only where some key
  /// tile is admitted, so that no copy outlives the consumers), then K and
  /// V of every key tile.
  void emitProducer() {
    Value local = e.sub(tid, e.idx(kConsumerThreads));
    e.when(e.eq(local, c0), [&] {
      e.when(e.slt(c0, count), [&] {
        nvgpu::MBarrierArriveExpectTxOp::create(
            b, barriers, e.idx(kRows * (D + Dv) * 2), resident(), Value());
        loadPanels(tma[0], kRows, D / 64, e.idx(qBase), q0, head, resident());
        loadPanels(tma[3], kRows, Dv / 64, e.idx(doBase), q0, head, resident());
      });
      e.loop(c0, count, c1, [&](Value it) {
        waitEmpty(it);
        Value stage = stageOf(it);
        Value k = e.mul(e.add(begin, it), e.idx(kKeys));
        nvgpu::MBarrierArriveExpectTxOp::create(
            b, barriers, e.idx(kKeys * (D + Dv) * 2), full(stage), Value());
        loadPanels(tma[1], kKeys, D / 64,
                   e.add(e.idx(kBase), e.mul(stage, e.idx(kStageBytes))), k,
                   kvh, full(stage));
        loadPanels(tma[2], kKeys, Dv / 64,
                   e.add(e.idx(vBase), e.mul(stage, e.idx(vStageBytes))), k,
                   kvh, full(stage));
      });
    });
  }

  /// The consumer warpgroups: Delta, the key-tile loop carrying dQ, then
  /// the epilogue.
  void emitConsumer() {
    Value wgRow0 = e.add(q0, e.mul(wg, e.idx(kWgRows)));
    // The thread's rows: g and g + 8 of its warp's 16 in its warpgroup's 64.
    Value row = e.add(wgRow0, e.add(e.mul(warp, e.idx(16)), lanes.g));
    rows[0] = row;
    rows[1] = e.add(row, e.idx(8));
    computeDelta(wgRow0);
    // The warpgroup's Q and dO rows (A operands, K-major).
    Value wgOffset =
        arith::IndexCastUIOp::create(b, i64, e.mul(wg, e.idx(kWgRows * 128)));
    qDesc = buildWgmmaDescriptor(b, offsetAddr(qBase, wgOffset), 0);
    doDesc = buildWgmmaDescriptor(b, offsetAddr(doBase, wgOffset), 0);
    KeyBlocks band = getKeyBlocks(e, spec, a, off, wgRow0, kWgRows, kKeys);
    fullFrom = band.fullFrom;
    fullTo = band.fullTo;
    e.when(e.slt(c0, count), [&] { wait(resident(), c0); });
    Value dq = e.loop(c0, count, c1, ValueRange{buildZeroAccumulator(b, D)},
                      [&](Value it, ValueRange iter) -> SmallVector<Value> {
                        return {emitStep(it, iter[0])};
                      })[0];
    storeRowPairs(args.dq, dq, D, rows, a.hq, a.sq, head,
                  getGradScale(e, spec, a));
  }

  /// Delta = rowsum(dO ⊙ O) of the warpgroup's 64 rows: two threads a row,
  /// each over half of its columns (8 at a time from global memory), added
  /// with one shuffle; written to the `delta` workspace (for dsinks) and,
  /// with lse2, to the warpgroup's slots and its tile of `row_stats` (for
  /// the dK/dV kernel). The thread then keeps -lse2 and Delta of its own two
  /// rows.
  void computeDelta(Value wgRow0) {
    Value r = e.div(lt, e.idx(2)), half = e.rem(lt, e.idx(2));
    Value row = e.add(wgRow0, r);
    Value inside = e.slt(row, a.sq);
    Value safeRow = e.sel(inside, row, c0);
    Value oBase =
        getRowOffset(e, spec.layout, bIdx, a.hq, a.sq, head, safeRow, Dv);
    auto load = [&](Value tensor) {
      return [&, tensor](Value col) -> Value {
        return vector::LoadOp::create(
            b, VectorType::get({8}, elt), tensor, ValueRange{e.add(oBase, col)},
            /*nontemporal=*/false, b.getI64IntegerAttr(16));
      };
    };
    Value sum = buildRowDelta(e, elt, Dv, half, load(a.o), load(args.dO));
    Value delta = e.sel(inside, sum, e.f(0.0));
    Value bh = e.add(e.mul(bIdx, a.hq), head);
    Value stat = e.add(e.mul(bh, a.sq), safeRow);
    e.when(e.land(inside, e.eq(half, c1)),
           [&] { e.store(delta, args.delta, stat); });
    // The row's statistic `half` (0: lse2, 1: Delta; 0 past Sq) into the
    // warpgroup's slot and into its 64-row tile of `row_stats` (where the
    // tile is one of the head's), which the dK/dV kernel copies.
    Value mine = e.ifElse(e.eq(half, c0), ValueRange{delta}, [&] {
      return SmallVector<Value>{
          e.sel(inside, getLse2(e, e.load(a.lse, stat)), e.f(0.0))};
    })[0];
    e.store(mine, statsS, ValueRange{wg, half, r});
    Value tiles = e.ceilDiv(a.sq, e.idx(kDQAccumRows));
    Value tile = e.add(e.mul(bh, tiles), e.div(wgRow0, e.idx(kDQAccumRows)));
    e.when(e.slt(wgRow0, a.sq), [&] {
      e.store(mine, args.rowStats,
              e.add(e.mul(tile, e.idx(2 * kDQAccumRows)),
                    e.add(e.mul(half, e.idx(kDQAccumRows)), r)));
    });
    syncWarpgroup();
    for (int64_t i = 0; i < 2; ++i) {
      Value local = e.sub(rows[i], wgRow0);
      negLse2[i] =
          arith::NegFOp::create(b, e.load(statsS, ValueRange{wg, c0, local}));
      rowDelta[i] = e.load(statsS, ValueRange{wg, c1, local});
    }
  }

  /// One key tile: S and dP (Q and dO of the warpgroup's rows, K and V of
  /// the stage K-major), P, dS, then dQ += dS·K with dS as register-A and K
  /// MN-major; returns dQ.
  Value emitStep(Value it, Value dq) {
    Value stage = stageOf(it);
    Value key0 = e.mul(e.add(begin, it), e.idx(kKeys));
    wait(full(stage), phaseOf(it));
    Value kAddr = stageAddr(kBase, kStageBytes, stage);
    Value vAddr = stageAddr(vBase, vStageBytes, stage);
    Value s = buildWgmmaTransposedProduct(
        b, elt, qDesc, kRows, buildWgmmaDescriptor(b, kAddr, 0), kKeys, D);
    Value dp = buildWgmmaTransposedProduct(
        b, elt, doDesc, kRows, buildWgmmaDescriptor(b, vAddr, 0), kKeys, Dv);
    buildWgmmaWait(b, 1);
    SmallVector<Value> weights = computeWeights(key0, s);
    ArrayRef<Value> p = ArrayRef<Value>(weights).take_front(kKeys / 2);
    buildWgmmaWait(b, 0);
    SmallVector<Value> ds = computeGradScores(
        p, dp, ArrayRef<Value>(weights).drop_front(kKeys / 2));
    // K MN-major: its 64-column panels are kKeys rows of 128 bytes apart
    // (the leading byte offset), k-step kk its rows 16kk.. .
    Value kMN = buildWgmmaDescriptor(b, kAddr, kKeys * 128);
    dq = buildWgmmaRegisterAChain(
        b, elt, dq, packRegisterA(b, elt, ds), D,
        [&](int64_t kk) { return advanceWgmmaDescriptor(b, kMN, kk * 2048); });
    buildWgmmaWait(b, 0);
    release(stage);
    return dq;
  }

  /// P from S: element 4n + 2i + j is the thread's row i and key 8n + 2t +
  /// j of the tile at `key0`. The per-element mask (band, keys past Sk) only
  /// where the tile crosses the band's edge for the warpgroup's rows.
  /// Returns P's kKeys / 2 values, then under softcap the tanh of each
  /// logit.
  SmallVector<Value> computeWeights(Value key0, Value s) {
    Value whole =
        e.land(e.sle(fullFrom, key0), e.sle(e.add(key0, e.idx(kKeys)), fullTo));
    SmallVector<Type> types(kKeys / 2 * (spec.softcap ? 2 : 1), f32);
    return ifFullBlock(e, whole, types, [&](bool masked) {
      return computeWeightsIn(key0, s, masked);
    });
  }

  /// computeWeights in a tile that needs the mask (`masked`) or not.
  SmallVector<Value> computeWeightsIn(Value key0, Value s, bool masked) {
    OnlineSoftmax exp2(e, /*approxExp2=*/true);
    bool raw = rawScores && !masked;
    ScoreTransform scores(spec, a, bIdx, head, c0, c1, raw);
    Value factor = raw ? getScoreFactor(e, spec, a) : Value();
    SmallVector<Value> p(kKeys / 2), th(spec.softcap ? kKeys / 2 : 0);
    for (int64_t n = 0; n < kKeys / 8; ++n)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t i = 0; i < 2; ++i) {
          int64_t k = 4 * n + 2 * i + j;
          Value x = scores.apply(
              b, b.getLoc(), getAccumulatorElement(b, b.getLoc(), s, n, i, j),
              rows[i], [&] { return lanes.column(e, key0, n, j); }, masked,
              spec.softcap ? &th[k] : nullptr);
          p[k] = exp2.exp2(raw ? e.fma(x, factor, negLse2[i])
                               : e.fadd(x, negLse2[i]));
        }
    llvm::append_range(p, th);
    return p;
  }

  /// dS = P ⊙ (dP - Delta) (⊙ (1 - th²) under softcap), in P's order.
  SmallVector<Value> computeGradScores(ArrayRef<Value> p, Value dp,
                                       ArrayRef<Value> th) {
    SmallVector<Value> ds(kKeys / 2);
    for (int64_t n = 0; n < kKeys / 8; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          int64_t k = 4 * n + 2 * i + j;
          Value x = getAccumulatorElement(b, b.getLoc(), dp, n, i, j);
          ds[k] = e.fmul(p[k], e.fsub(x, rowDelta[i]));
          if (!th.empty())
            ds[k] = e.fmul(ds[k], e.fsub(e.f(1.0), e.fmul(th[k], th[k])));
        }
    return ds;
  }

  /// Rows per consumer warpgroup (wgmma's M).
  static constexpr int64_t kWgRows = 64;
  static_assert(kWgRows == kDQAccumRows,
                "a warpgroup's rows are one tile of row_stats");
  const int64_t kRows, kKeys;
  /// Shared memory byte offsets: Q, dO, the K and V rings, the statistics.
  const int64_t qBase, doBase, kBase, kStageBytes, vBase, vStageBytes,
      statsBase;

  Value head, kvh, q0;
  /// [warpgroup, lse2 | Delta, row] (f32).
  Value statsS;
  /// The key tiles (locateKeyBlocks).
  Value begin, count;
  /// Consumer state: the thread's rows, their -lse2 and Delta, the Q and dO
  /// descriptors of the warpgroup's rows, the keys every row of the
  /// warpgroup admits.
  Value rows[2], negLse2[2], rowDelta[2];
  Value qDesc, doDesc, fullFrom, fullTo;
};

} // namespace

void mlir::attn::detail::buildGradWgmmaDKDVBody(
    OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
    const AttentionSpec &spec, const GradArgs &args, ValueRange tmaDescriptors,
    const GradWgmmaTiling &tiling) {
  GradWgmmaKernel(builder, loc, func, spec, args, tmaDescriptors, tiling)
      .emit();
}

void mlir::attn::detail::buildGradWgmmaDQBody(OpBuilder &builder, Location loc,
                                              gpu::GPUFuncOp func,
                                              const AttentionSpec &spec,
                                              const GradArgs &args,
                                              ValueRange tmaDescriptors,
                                              const GradWgmmaTiling &tiling) {
  GradWgmmaDQKernel(builder, loc, func, spec, args, tmaDescriptors, tiling)
      .emit();
}
