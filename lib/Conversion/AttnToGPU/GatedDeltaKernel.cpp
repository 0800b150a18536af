//===- GatedDeltaKernel.cpp - chunked gated delta rule kernels ------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// attn.gated_delta_rule (Gated DeltaNet, and Kimi Delta Attention with
// per-channel gates) as kernels: two for prefill, over chunks of C tokens,
// whose matrix products run on tensor cores (m16n8k8 tf32 mma.sync, f32
// accumulators), and a recurrent one for decode (f32 on CUDA cores).
//
// Within a chunk with incoming state S ([Dk, Dv]) and cumulative log gates
// G_i = g_0 + ... + g_i (per key channel for KDA, one per row for GDN), the
// recurrence is (docs/design-gated-delta.md)
//
//   A[i, j]   = beta_i Σ_d K[i, d] K[j, d] exp(G[i, d] - G[j, d])   (j < i)
//   Aqk[i, j] = Σ_d Q[i, d] K[j, d] exp(G[i, d] - G[j, d])          (j <= i)
//   T  = (I + A)^-1 diag(beta);  W = T (K ∘ exp(G));  U = T V
//   V' = U - W S
//   O  = (Q ∘ exp(G)) S + Aqk V'
//   S  = diag(exp(G_last)) S + (K ∘ exp(G_last - G))ᵀ V'
//
// * The chunk kernel (one block per chunk, value head and sequence, all
//   chunks at once) computes everything that does not need S: A and Aqk
//   (K Kᵀ and Q Kᵀ on tensor cores with a gate per head; f32 dot products
//   with per-channel gates, whose factors sit inside them), (I + A)^-1 by
//   forward substitution in 16-row blocks, W and U on tensor cores, Qg =
//   Q ∘ exp(G), Kg = K ∘ exp(G_last - G) and exp(G_last), into f32
//   workspaces (the mma operands among them rounded to tf32).
// * The state kernel (one block per 32 value columns, value head and
//   sequence) carries S across the chunks as mma accumulators in registers
//   and per chunk computes V', the output and the next state from the
//   workspaces, against a shared tf32 copy of S.
// * The recurrent kernel runs the recurrence token by token (the host takes
//   it for a few tokens: decode), one launch and no workspaces.
//
// Q and K are L2-normalized (if asked) and Q scaled in the chunk kernel.
// Decay factors are exp2 of log2-scaled gates; exp(G_i - G_j) is only
// evaluated for j <= i, where it is at most 1 for decaying gates.
//
//===----------------------------------------------------------------------===//

#include "KernelBody.h"
#include "KernelCommon.h"
#include "Kernels.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using attn::detail::addManifest;
using attn::detail::createKernel;
using attn::detail::EmitErrorFn;
using attn::detail::hexBits;
using attn::detail::KernelBody;
using attn::detail::KernelSignature;
using attn::detail::Manifests;
using attn::detail::typeName;

namespace {
/// Threads of the chunk kernel; value columns per block of the state and
/// recurrent kernels; threads per column of the recurrent kernel (each
/// owning every 16th group of 4 rows of S).
constexpr int64_t kChunkThreads = 256, kColumns = 16, kParts = 16;
/// Warps and value columns of the state kernel; its shared rows of U
/// (padded: conflict-free 8-byte reads of C fragments).
constexpr int64_t kStateWarps = 8, kStateColumns = 32,
                  kRowU = kStateColumns + 8;
constexpr int64_t kStateThreads = 32 * kStateWarps;
static_assert(kStateThreads == kColumns * kParts,
              "the state and recurrent kernels share a block size");
constexpr int64_t kMaxSharedMemory = 227 * 1024;

/// The static sizes of a gated delta variant.
struct GdnShape {
  int64_t dk, dv, chunk;
  bool channel, l2norm, init;
  double scale;
  GateKind gateKind;
  ScalarType dtype, gateDtype, betaDtype;

  explicit GdnShape(const GatedDeltaSpec &spec)
      : dk(spec.keyHeadDim), dv(spec.valueHeadDim), chunk(spec.chunk),
        channel(spec.gateKind == GateKind::Channel), l2norm(spec.qkL2norm),
        init(spec.initialState), scale(spec.scale), gateKind(spec.gateKind),
        dtype(spec.dtype), gateDtype(spec.gateDtype),
        betaDtype(spec.betaDtype) {}
  int64_t gateCols() const { return channel ? dk : 1; }
  /// Chunk kernel: K, Q, V, G (rows padded by 4 floats), beta, A, T (rows
  /// padded by one).
  int64_t chunkSharedMemory() const {
    return 4 * (2 * chunk * (dk + 4) + chunk * (dv + 4) +
                chunk * (channel ? dk + 4 : 1) + chunk + chunk * (chunk + 1) +
                chunk * (chunk + 4));
  }
  /// Recurrent kernel: the state tile, the token's k and q, its gates, the
  /// inverse norms.
  int64_t recurrentSharedMemory() const {
    return 4 * (dk * (kColumns + 4) + 2 * dk + (channel ? dk : 1) + 2);
  }
  /// The key head dim padded to the state kernel's 16-row tiles, and its
  /// shared row lengths: W, Qg and S (transposed) rows Dkp + 4 floats, Kg
  /// rows Dkp + 8 (read down columns), so that the fragment reads are free
  /// of bank conflicts.
  int64_t paddedDk() const { return (dk + 15) / 16 * 16; }
  int64_t rowW() const { return paddedDk() + 4; }
  int64_t rowKg() const { return paddedDk() + 8; }
  /// State kernel: W and Qg (double-buffered where that fits); Kg, U, Aqk
  /// double-buffered; V' and S (transposed); exp(G_last) double-buffered.
  int64_t stateSharedMemory(int64_t stages) const {
    return 4 * (2 * stages * chunk * rowW() + 2 * chunk * rowKg() +
                2 * chunk * kRowU + 2 * chunk * (chunk + 4) +
                kStateColumns * (chunk + 4) + kStateColumns * rowW() +
                2 * paddedDk());
  }
  int64_t wqStages() const {
    return stateSharedMemory(2) <= kMaxSharedMemory ? 2 : 1;
  }
  int64_t stateSharedMemory() const { return stateSharedMemory(wqStages()); }
};

std::string variantName(const GdnShape &s, StringRef kernel) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attn_gdn_" << kernel << "_" << stringifyScalarType(s.dtype) << "_dk"
     << s.dk << "_dv" << s.dv;
  if (kernel != "recurrent")
    os << "_c" << s.chunk;
  if (kernel != "state") {
    os << "_" << stringifyGateKind(s.gateKind)
       << stringifyScalarType(s.gateDtype) << "_beta"
       << stringifyScalarType(s.betaDtype);
    if (s.l2norm)
      os << "_l2";
    os << "_s" << hexBits(s.scale);
  }
  if (kernel != "chunk" && s.init)
    os << "_init";
  return name;
}
} // namespace

LogicalResult
mlir::attn::detail::checkGatedDeltaKernelEligible(const GatedDeltaSpec &spec,
                                                  std::string *why) {
  auto fail = [&](const Twine &msg) { return failWith(why, msg); };
  if (ShapedType::isDynamic(spec.keyHeadDim) ||
      ShapedType::isDynamic(spec.valueHeadDim))
    return fail("the gated delta GPU kernels need static head dims");
  if (spec.dtype != ScalarType::F16 && spec.dtype != ScalarType::BF16 &&
      spec.dtype != ScalarType::F32)
    return fail("the gated delta GPU kernels take f16, bf16 or f32 (got " +
                stringifyScalarType(spec.dtype) + ")");
  if (spec.keyHeadDim % 4 || spec.valueHeadDim % 4)
    return fail("the gated delta GPU kernels need head dims that are multiples "
                "of 4 (16-byte rows); got " +
                Twine(spec.keyHeadDim) + " / " + Twine(spec.valueHeadDim));
  // The row and column tiles of the chunk are 16 tokens; chunks longer than
  // kMaxGatedDeltaChunk leave too few warps per SM (shared memory). The op
  // states its own chunk clamped to that (attn.gated_delta_rule takes powers
  // of two from 16).
  if (spec.chunk != 16 && spec.chunk != kMaxGatedDeltaChunk)
    return fail("the gated delta GPU kernels take chunks of 16 or " +
                Twine(kMaxGatedDeltaChunk) + " (got " + Twine(spec.chunk) +
                ")");
  GdnShape s(spec);
  if (s.chunkSharedMemory() > kMaxSharedMemory ||
      s.stateSharedMemory() > kMaxSharedMemory)
    return fail("the gated delta GPU kernels keep a chunk in shared memory: "
                "head dims " +
                Twine(s.dk) + " / " + Twine(s.dv) + " with chunks of " +
                Twine(s.chunk) + " need " +
                Twine(std::max(s.chunkSharedMemory(), s.stateSharedMemory())) +
                " bytes (at most " + Twine(kMaxSharedMemory) + ")");
  return success();
}

namespace {
/// What the three gated delta kernels share: the variant's shape and the
/// block's coordinates.
class GdnKernel : protected KernelBody {
protected:
  GdnKernel(OpBuilder &builder, gpu::GPUFuncOp func, const GdnShape &s,
            Location loc)
      : KernelBody(builder, func, loc, builder.getF32Type()), s(s), Dk(s.dk),
        Dv(s.dv) {}

  /// The index constants 0 and 1, the block's value head and sequence, the
  /// thread; returns the block's x coordinate (its chunk or column slice).
  Value blockCoordinates() {
    c0 = e.idx(0), c1 = e.idx(1);
    Value x = gpu::BlockIdOp::create(b, gpu::Dimension::x);
    head = gpu::BlockIdOp::create(b, gpu::Dimension::y);
    bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    return x;
  }

  /// Σ_d m[row, d]² over the Dk key channels, on a warp (`lane` takes
  /// every 32nd channel), in every lane.
  Value squaredNorm(Value m, Value row, Value lane) {
    Value ss = e.loop(lane, e.idx(Dk), e.idx(32), ValueRange{e.f(0.0)},
                      [&](Value d, ValueRange acc) {
                        Value x = e.load(m, {row, d});
                        return SmallVector<Value>{e.fma(x, x, acc[0])};
                      })[0];
    return e.laneSum(ss, 32);
  }

  const GdnShape &s;
  const int64_t Dk, Dv;
  Value c0, c1, head, bIdx, tid;
};
} // namespace

//===----------------------------------------------------------------------===//
// The chunk kernel
//===----------------------------------------------------------------------===//

namespace {
/// The chunk kernel (see the file comment). Grid (chunks, Hv, B). Rows of
/// K, Q, V, G in shared memory are padded by 4 floats (16-byte loads without
/// bank conflicts); threads work on 4 consecutive columns. Its phases, in
/// order: the chunk's rows into shared memory, L2 normalization, cumulative
/// gates, A and Aqk, T = (I + A)^-1, the gated rows, W and U.
class ChunkKernel : GdnKernel {
public:
  ChunkKernel(OpBuilder &builder, gpu::GPUFuncOp func, const GdnShape &s,
              Location loc);

  void build() {
    loadChunk();
    normalizeQK();
    cumulativeGates();
    if (!s.channel)
      headGateProducts();
    else
      channelGateProducts();
    e.barrier();
    invertA();
    gatedRows();
    productsWU();
  }

private:
  /// Token row i of the chunk in [B, T, `heads`, dim] tensors, at head `h`.
  Value tokenRow(Value i, Value heads, Value h) {
    return e.add(e.mul(e.add(e.mul(bIdx, tLen), e.add(t0, i)), heads), h);
  }
  /// Token row i of the chunk in the [B, Hv, T, dim] workspaces.
  Value workRow(Value i) {
    return e.add(e.mul(e.add(e.mul(bIdx, hv), head), tLen), e.add(t0, i));
  }
  /// Runs `fn(x)` for x in [0, total), 256 threads a round.
  void rounds(int64_t total, function_ref<void(Value)> fn) {
    e.rounds(tid, kChunkThreads, total, fn);
  }
  /// Runs `fn(x)` for the tiles x of a product, tile x on warp x mod 8.
  void warpRounds(int64_t tiles, function_ref<void(Value)> fn) {
    e.rounds(warp, kChunkThreads / 32, tiles, fn);
  }
  Value global4(Value m, Value at, Value inside);
  Value gates4(Value i, Value d) {
    return s.channel ? e.load4(gS, {i, d}) : e.splat4(e.load(gS, {i, c0}));
  }

  void loadChunk();
  void normalizeQK();
  void cumulativeGates();
  void headGateProducts();
  void channelGateProducts();
  void invertA();
  void gatedRows();
  void productsWU();

  const int64_t C, Gc;
  // Arguments: the inputs, the workspaces, the sizes.
  Value qArg, kArg, vArg, gArg, betaArg;
  Value wArg, uArg, qgArg, kgArg, aqkArg, gcArg;
  Value tLen, hk, hv;
  // Shared memory: the chunk's K, Q, V, (log2) gates and beta; A; T.
  Value kS, qS, vS, gS, betaS, aS, tS;
  Value chunk, nThreads, keyHead, t0, rows, numChunks;
  // Warp, lane and mma fragment coordinates (KernelCommon.h: buildMmaTf32).
  Value warp, lane, groupId, inGroup;
};
} // namespace

ChunkKernel::ChunkKernel(OpBuilder &builder, gpu::GPUFuncOp func,
                         const GdnShape &s, Location loc)
    : GdnKernel(builder, func, s, loc), C(s.chunk), Gc(s.gateCols()) {
  qArg = arg(), kArg = arg(), vArg = arg(), gArg = arg(), betaArg = arg();
  wArg = arg(), uArg = arg(), qgArg = arg(), kgArg = arg(), aqkArg = arg(),
  gcArg = arg();
  tLen = arg(), hk = arg(), hv = arg();

  const int64_t padK = Dk + 4, padV = Dv + 4;
  kS = shared({C, padK}), qS = shared({C, padK}), vS = shared({C, padV}),
  gS = shared({C, s.channel ? padK : 1}), betaS = shared({C}),
  aS = shared({C, C + 1}), tS = shared({C, C + 4});
  assert(sharedBytes == s.chunkSharedMemory() && "shared memory layout");

  chunk = blockCoordinates();
  nThreads = e.idx(kChunkThreads);
  keyHead = e.div(head, e.div(hv, hk));
  t0 = e.mul(chunk, e.idx(C));
  rows = e.umin(e.idx(C), e.sub(tLen, t0));
  numChunks = arith::CeilDivUIOp::create(b, tLen, e.idx(C));
}

/// Four elements of a [.., dim] row of global memory as f32 (zeros where
/// not `inside`; the address is clamped into the tensor). Rows are a
/// multiple of 4 elements long and `at` a multiple of 4: the load is
/// aligned, and says so (the backend splits it into scalar loads
/// otherwise).
Value ChunkKernel::global4(Value m, Value at, Value inside) {
  Type t = cast<MemRefType>(m.getType()).getElementType();
  Value v = vector::LoadOp::create(
      b, VectorType::get({4}, t), m, ValueRange{e.sel(inside, at, c0)},
      /*nontemporal=*/false,
      b.getI64IntegerAttr(t.getIntOrFloatBitWidth() / 2));
  if (!t.isF32())
    v = arith::ExtFOp::create(b, e.vec4Type(), v);
  return e.sel(inside, v, e.splat4(e.f(0.0)));
}

/// The rows of the chunk into shared memory (zeros past the sequence): K
/// and Q rounded to tf32, V, the gates in the log2 domain, beta; the
/// padding columns of K, Q and V rows zero.
void ChunkKernel::loadChunk() {
  rounds(C * Dk / 4, [&](Value x) {
    Value i = e.div(x, e.idx(Dk / 4)),
          d = e.mul(e.rem(x, e.idx(Dk / 4)), e.idx(4));
    Value inside = e.lt(i, rows);
    Value at = e.add(e.mul(tokenRow(i, hk, keyHead), e.idx(Dk)), d);
    e.storeVec(e.tf32(global4(kArg, at, inside)), kS, {i, d});
    e.storeVec(e.tf32(global4(qArg, at, inside)), qS, {i, d});
    if (s.channel) {
      Value gAt = e.add(e.mul(tokenRow(i, hv, head), e.idx(Dk)), d);
      e.storeVec(e.fmul(global4(gArg, gAt, inside),
                        e.splat4(e.f(llvm::numbers::log2e))),
                 gS, {i, d});
    }
  });
  rounds(C * Dv / 4, [&](Value x) {
    Value i = e.div(x, e.idx(Dv / 4)),
          d = e.mul(e.rem(x, e.idx(Dv / 4)), e.idx(4));
    Value at = e.add(e.mul(tokenRow(i, hv, head), e.idx(Dv)), d);
    e.storeVec(e.tf32(global4(vArg, at, e.lt(i, rows))), vS, {i, d});
  });
  // The padding columns (the mma k-steps and column tiles read them when a
  // head dim is not a multiple of 8).
  rounds(C, [&](Value i) {
    for (Value m : {kS, qS, vS})
      e.storeVec(e.splat4(e.f(0.0)), m, {i, e.idx(m == vS ? Dv : Dk)});
  });
  rounds(C, [&](Value i) {
    Value inside = e.lt(i, rows);
    Value at = tokenRow(i, hv, head);
    e.store(e.loadF32If(inside, betaArg, at), betaS, {i});
    if (!s.channel)
      e.store(e.fmul(e.loadF32If(inside, gArg, at), e.f(llvm::numbers::log2e)),
              gS, {i, c0});
  });
  e.barrier();
}

/// L2 normalization of the Q and K rows (a warp per row) and Q's scale,
/// rounded to tf32 again.
void ChunkKernel::normalizeQK() {
  warp = e.div(tid, e.idx(32)), lane = e.rem(tid, e.idx(32));
  groupId = e.div(lane, e.idx(4)), inGroup = e.rem(lane, e.idx(4));
  for (Value m : {qS, kS}) {
    double factor = m == qS ? s.scale : 1.0;
    if (!s.l2norm && factor == 1.0)
      continue;
    e.loop(warp, rows, e.idx(kChunkThreads / 32), [&](Value i) {
      Value inv = e.f(factor);
      if (s.l2norm) {
        Value ss = squaredNorm(m, i, lane);
        inv = e.fmul(e.rsqrt(e.fadd(ss, e.f(1e-6))), e.f(factor));
      }
      e.loop(lane, e.idx(Dk), e.idx(32), [&](Value d) {
        e.store(e.tf32(e.fmul(e.load(m, {i, d}), inv)), m, {i, d});
      });
    });
  }
}

/// Cumulative gates (rows past the sequence add 0, so the last row holds
/// G_last): a warp per gate column, lane i holding row i, a scan by
/// shuffles.
void ChunkKernel::cumulativeGates() {
  e.loop(warp, e.idx(Gc), e.idx(kChunkThreads / 32), [&](Value d) {
    Value inside = e.lt(lane, e.idx(C));
    Value x = e.sel(inside, e.load(gS, {e.sel(inside, lane, c0), d}), e.f(0.0));
    for (int32_t o = 1; o < C; o *= 2) {
      Value y = gpu::ShuffleOp::create(b, x, o, 32, gpu::ShuffleMode::UP)
                    .getShuffleResult();
      x = e.sel(e.le(e.idx(o), lane), e.fadd(x, y), x);
    }
    e.when(inside, [&] { e.store(x, gS, {lane, d}); });
  });
  e.barrier();
}

/// A (strictly lower) and Aqk (lower, to the workspace) for the chunk's
/// rows with a gate per head: K Kᵀ and Q Kᵀ as tf32 mma tiles (16 rows x 8
/// columns, both from one B fragment; the last k-step reads the zero
/// padding when Dk is not a multiple of 8) scaled by exp(G_i - G_j) after.
void ChunkKernel::headGateProducts() {
  const int64_t kSteps = llvm::divideCeil(Dk, 8);
  const int64_t colTiles = C / 8, tiles = C / 16 * colTiles;
  warpRounds(tiles, [&](Value x) {
    Value m = e.div(x, e.idx(colTiles)), nt = e.rem(x, e.idx(colTiles));
    Value row[2] = {e.add(e.mul(m, e.idx(16)), groupId), Value()};
    row[1] = e.add(row[0], e.idx(8));
    Value colB = e.add(e.mul(nt, e.idx(8)), groupId);
    // Tiles wholly above the diagonal (first column past the row tile's
    // last row) are zero.
    SmallVector<Value> both =
        e.ifElse(e.lt(e.mul(nt, e.idx(8)), e.mul(e.add(m, c1), e.idx(16))),
                 SmallVector<Value>(8, e.f(0.0)), [&] {
                   SmallVector<Value> kk(4, e.f(0.0)), qk(4, e.f(0.0));
                   for (int64_t ks = 0; ks < kSteps; ++ks) {
                     Value ka = e.add(inGroup, e.idx(8 * ks)),
                           kb = e.add(inGroup, e.idx(8 * ks + 4));
                     SmallVector<Value> bFrag{e.load(kS, {colB, ka}),
                                              e.load(kS, {colB, kb})};
                     auto aFrag = [&](Value m) {
                       return SmallVector<Value>{
                           e.load(m, {row[0], ka}), e.load(m, {row[1], ka}),
                           e.load(m, {row[0], kb}), e.load(m, {row[1], kb})};
                     };
                     kk = e.mmaTf32(aFrag(kS), bFrag, kk);
                     qk = e.mmaTf32(aFrag(qS), bFrag, qk);
                   }
                   kk.append(qk);
                   return kk;
                 });
    ArrayRef<Value> kk = ArrayRef<Value>(both).take_front(4),
                    qk = ArrayRef<Value>(both).drop_front(4);
    for (int64_t h = 0; h < 2; ++h) {
      Value i = row[h];
      Value gi = e.load(gS, {i, c0}), beta = e.load(betaS, {i});
      for (int64_t jj = 0; jj < 2; ++jj) {
        Value j = e.add(e.add(e.mul(nt, e.idx(8)), e.mul(inGroup, e.idx(2))),
                        e.idx(jj));
        // exp(G_i - G_j) is only taken where j <= i (at most 1 there).
        Value decay = e.exp2(e.fsub(gi, e.load(gS, {j, c0})));
        Value a = e.fmul(e.fmul(kk[2 * h + jj], decay), beta);
        e.store(e.sel(e.lt(j, i), a, e.f(0.0)), aS, {i, j});
        Value aqk = e.sel(e.le(j, i), e.fmul(qk[2 * h + jj], decay), e.f(0.0));
        e.when(e.lt(i, rows), [&] {
          e.store(e.tf32(aqk), aqkArg, {e.add(e.mul(workRow(i), e.idx(C)), j)});
        });
      }
    }
  });
}

/// A and Aqk with per-channel gates, whose factors sit inside the dot
/// products: a thread per (i, j) of the chunk, dot products over 16-byte
/// slices where j <= i.
void ChunkKernel::channelGateProducts() {
  e.loop(tid, e.mul(rows, e.idx(C)), nThreads, [&](Value x) {
    Value i = e.div(x, e.idx(C)), j = e.rem(x, e.idx(C));
    Type f32 = b.getF32Type();
    auto ifOp = scf::IfOp::create(b, TypeRange{f32, f32}, e.le(j, i),
                                  /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      // Over the key channels, four 16-byte slices per iteration (a loop:
      // fully unrolled, ptxas ran this kernel at 32 registers with spills).
      const int64_t unroll = Dk % 16 == 0 ? 4 : 1;
      ValueRange sums =
          e.loop(c0, e.idx(Dk), e.idx(4 * unroll),
                 ValueRange{e.splat4(e.f(0.0)), e.splat4(e.f(0.0))},
                 [&](Value d0, ValueRange acc) {
                   Value kk = acc[0], qk = acc[1];
                   for (int64_t u = 0; u < unroll; ++u) {
                     Value d = e.add(d0, e.idx(4 * u));
                     Value kj = e.fmul(e.load4(kS, {j, d}),
                                       e.exp2(e.fsub(e.load4(gS, {i, d}),
                                                     e.load4(gS, {j, d}))));
                     kk = e.fma(e.load4(kS, {i, d}), kj, kk);
                     qk = e.fma(e.load4(qS, {i, d}), kj, qk);
                   }
                   return SmallVector<Value>{kk, qk};
                 });
      Value kkS = e.sum4(sums[0]), qkS = e.sum4(sums[1]);
      Value a = e.sel(e.lt(j, i), e.fmul(kkS, e.load(betaS, {i})), e.f(0.0));
      scf::YieldOp::create(b, ValueRange{a, qkS});
      b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      scf::YieldOp::create(b, ValueRange{e.f(0.0), e.f(0.0)});
    }
    e.store(ifOp.getResult(0), aS, {i, j});
    e.store(e.tf32(ifOp.getResult(1)), aqkArg,
            {e.add(e.mul(workRow(i), e.idx(C)), j)});
  });
}

/// T = (I + A)^-1 diag(beta). tS takes L^-1 = (I + A)^-1 (unit lower
/// triangular; diag(beta) is applied as the product W, U reads it), in
/// blocks of 16 rows: the diagonal blocks at once by forward substitution,
/// column by column,
///   L^-1[i, c] = [i = c] - Σ_{j < i} A[i, j] L^-1[j, c],
/// eight lanes per column splitting the sum (lane p takes j = p mod 8 and
/// alone writes those rows, so that it only reads its own writes); then
/// (at C = 32) the block below the diagonal, -L22^-1 (A21 L11^-1), and
/// zeros above it.
void ChunkKernel::invertA() {
  const int64_t blocks = C / 16;
  e.when(e.lt(tid, e.idx(128 * blocks)), [&] {
    Value base = e.mul(e.div(tid, e.idx(128)), e.idx(16));
    Value local = e.rem(tid, e.idx(128));
    Value col = e.add(base, e.div(local, e.idx(8)));
    Value part = e.rem(local, e.idx(8));
    Value blockRows = e.umin(e.idx(16), e.sub(rows, e.umin(base, rows)));
    e.loop(c0, blockRows, c1, [&](Value il) {
      Value i = e.add(base, il);
      Value partial =
          e.loop(e.add(base, part), i, e.idx(8), ValueRange{e.f(0.0)},
                 [&](Value j, ValueRange acc) {
                   return SmallVector<Value>{
                       e.fma(e.load(aS, {i, j}), e.load(tS, {j, col}), acc[0])};
                 })[0];
      Value sum = e.laneSum(partial, 8);
      Value diag = e.sel(e.eq(i, col), e.f(1.0), e.f(0.0));
      e.when(e.eq(e.rem(il, e.idx(8)), part),
             [&] { e.store(e.fsub(diag, sum), tS, {i, col}); });
    });
  });
  if (blocks == 2) {
    // L^-1's upper right block is 0; X = A21 L11^-1 into A's (unused)
    // upper right block.
    Value r = e.div(tid, e.idx(16)), c = e.rem(tid, e.idx(16));
    e.store(e.f(0.0), tS, {r, e.add(c, e.idx(16))});
    e.barrier();
    Value x = e.f(0.0);
    for (int64_t m = 0; m < 16; ++m)
      x = e.fma(e.load(aS, {e.add(r, e.idx(16)), e.idx(m)}),
                e.load(tS, {e.idx(m), c}), x);
    e.store(x, aS, {r, e.add(c, e.idx(16))});
  }
  e.barrier();
  if (blocks == 2) {
    // L^-1's lower left block: -L22^-1 X (L22^-1 is lower triangular).
    Value r = e.div(tid, e.idx(16)), c = e.rem(tid, e.idx(16));
    Value row = e.add(r, e.idx(16));
    Value t21 = e.loop(c0, e.add(r, c1), c1, ValueRange{e.f(0.0)},
                       [&](Value m, ValueRange acc) {
                         return SmallVector<Value>{e.fma(
                             e.load(tS, {row, e.add(m, e.idx(16))}),
                             e.load(aS, {m, e.add(c, e.idx(16))}), acc[0])};
                       })[0];
    e.store(e.fsub(e.f(0.0), t21), tS, {row, c});
  }
}

/// Qg = Q ∘ exp(G), Kg = K ∘ exp(G_last - G) and exp(G_last) to the
/// workspaces; K becomes K ∘ exp(G) for W.
void ChunkKernel::gatedRows() {
  Value last = e.idx(C - 1);
  rounds(C * Dk / 4, [&](Value x) {
    Value i = e.div(x, e.idx(Dk / 4)),
          d = e.mul(e.rem(x, e.idx(Dk / 4)), e.idx(4));
    Value g = gates4(i, d), gLast = gates4(last, d);
    Value k = e.load4(kS, {i, d});
    e.when(e.lt(i, rows), [&] {
      Value at = e.add(e.mul(workRow(i), e.idx(Dk)), d);
      e.storeVec(e.tf32(e.fmul(e.load4(qS, {i, d}), e.exp2(g))), qgArg, {at});
      e.storeVec(e.tf32(e.fmul(k, e.exp2(e.fsub(gLast, g)))), kgArg, {at});
    });
    e.storeVec(e.tf32(e.fmul(k, e.exp2(g))), kS, {i, d});
  });
  rounds(Dk / 4, [&](Value q) {
    Value d = e.mul(q, e.idx(4));
    Value at = e.add(
        e.mul(e.add(e.mul(e.add(e.mul(bIdx, hv), head), numChunks), chunk),
              e.idx(Dk)),
        d);
    e.storeVec(e.exp2(gates4(last, d)), gcArg, {at});
  });
  e.barrier();
}

/// W = T (K ∘ exp(G)) and U = T V as tf32 mma tiles (16 rows x 8 columns;
/// T's rows past the chunk's are never read into stored rows). A warp takes
/// a 16-row tile of T, loads its A fragments once, and every (8 / (C /
/// 16))-th column tile of [W | U].
void ChunkKernel::productsWU() {
  const int64_t warps = kChunkThreads / 32, rowTiles = C / 16,
                warpsPerRow = warps / rowTiles;
  const int64_t wTiles = llvm::divideCeil(Dk, 8),
                uTiles = llvm::divideCeil(Dv, 8), colTiles = wTiles + uTiles;
  Value m = e.div(warp, e.idx(warpsPerRow));
  Value first = e.rem(warp, e.idx(warpsPerRow));
  Value row[2] = {e.add(e.mul(m, e.idx(16)), groupId), Value()};
  row[1] = e.add(row[0], e.idx(8));
  // T = L^-1 diag(beta), rounded: the A fragments of the warp's row tile.
  SmallVector<SmallVector<Value>> aFrags;
  for (int64_t ks = 0; ks < C / 8; ++ks) {
    Value ka = e.add(inGroup, e.idx(8 * ks)),
          kb = e.add(inGroup, e.idx(8 * ks + 4));
    Value betaA = e.load(betaS, {ka}), betaB = e.load(betaS, {kb});
    aFrags.push_back({e.tf32(e.fmul(e.load(tS, {row[0], ka}), betaA)),
                      e.tf32(e.fmul(e.load(tS, {row[1], ka}), betaA)),
                      e.tf32(e.fmul(e.load(tS, {row[0], kb}), betaB)),
                      e.tf32(e.fmul(e.load(tS, {row[1], kb}), betaB))});
  }
  // Column tile `nt` of T `src` into `dst` ([.., dim]).
  auto tile = [&](Value src, Value nt, int64_t dim, Value dst, bool round) {
    Value colB = e.add(e.mul(nt, e.idx(8)), groupId);
    SmallVector<Value> acc(4, e.f(0.0));
    for (int64_t ks = 0; ks < C / 8; ++ks) {
      Value ka = e.add(inGroup, e.idx(8 * ks)),
            kb = e.add(inGroup, e.idx(8 * ks + 4));
      acc = e.mmaTf32(aFrags[ks],
                      {e.load(src, {ka, colB}), e.load(src, {kb, colB})}, acc);
    }
    Value d = e.add(e.mul(nt, e.idx(8)), e.mul(inGroup, e.idx(2)));
    for (int64_t h = 0; h < 2; ++h)
      e.when(e.land(e.lt(row[h], rows), e.lt(d, e.idx(dim))), [&] {
        Value pair = vector::FromElementsOp::create(
            b, VectorType::get({2}, b.getF32Type()),
            ValueRange{acc[2 * h], acc[2 * h + 1]});
        e.storeVec(round ? e.tf32(pair) : pair, dst,
                   {e.add(e.mul(workRow(row[h]), e.idx(dim)), d)});
      });
  };
  e.rounds(first, warpsPerRow, colTiles, [&](Value nt) {
    auto ifOp =
        scf::IfOp::create(b, e.lt(nt, e.idx(wTiles)), /*withElse=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    tile(kS, nt, Dk, wArg, /*round=*/true);
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    tile(vS, e.sub(nt, e.idx(wTiles)), Dv, uArg, /*round=*/false);
  });
}

//===----------------------------------------------------------------------===//
// The state kernel
//===----------------------------------------------------------------------===//

namespace {
/// The state kernel (see the file comment). Grid (ceil(Dv / 32), Hv, B),
/// eight warps; every product is an m16n8k8 tf32 mma.sync with f32
/// accumulators (operands rounded to tf32: the workspaces by the chunk
/// kernel, V' and the shared copy of S here). Per chunk:
///  1. V' = U - W S and Qg S over the whole of Dk, in units of 16 rows x 16
///     columns (one A fragment, two B fragments a k-step), one unit per
///     warp at C = 32: A from W or Qg, B from the shared copy of S; V' goes
///     to shared memory, transposed;
///  2. O = Qg S + Aqk V' for the units of Qg S (Aqk's k-steps up to the
///     diagonal), and S = diag(exp(G_last)) S + Kgᵀ V': warp w holds S's
///     16-row tiles w, w + 8, ... (all 32 columns) as accumulators in
///     registers across the chunks and publishes them to the shared copy.
/// Two barriers per chunk: the shared S is read in step 1 only and written
/// in step 2 only. Shared rows are padded so that every fragment access is
/// free of bank conflicts, and Dk to a multiple of 16 with zeros. A chunk's
/// workspace rows arrive by cp.async (zero-filled past the sequence) while
/// the chunk before it is processed: all of them double-buffered where
/// shared memory allows (head dims up to 128 or so), else W and Qg only
/// once step 1 is over.
class StateKernel : GdnKernel {
public:
  StateKernel(OpBuilder &builder, gpu::GPUFuncOp func, const GdnShape &s,
              Location loc);

  void build() {
    SmallVector<Value> state = initialState();
    zeroPadding();
    publish(state);
    firstGroup = issueChunk(c0);
    if (stages == 1)
      issueWQ(c0);
    ValueRange finalState =
        e.loop(c0, numChunks, c1, state, [&](Value chunk, ValueRange sIn) {
          return processChunk(chunk, sIn);
        });
    storeFinalState(finalState);
  }

private:
  //===--- fragments ---------------------------------------------------===//

  /// Column j (0, 1) of this thread's pair in 8-column tile `nt` of a C
  /// fragment.
  Value pairCol(Value nt, int64_t j) {
    return e.plus(e.add(e.mul(nt, e.idx(8)), e.mul(t, e.idx(2))), j);
  }
  /// Column g of tile `nt` of a B fragment.
  Value bColumn(Value nt) { return e.add(e.mul(nt, e.idx(8)), g); }
  SmallVector<Value> aFragment(Value m, ValueRange lead, Value row0, Value row1,
                               Value ka);
  SmallVector<Value> bFragment(Value m, Value nt, Value ka);

  //===--- the state in registers --------------------------------------===//

  /// The state: accumulator (round r, column tile nt, row half h, column
  /// j) of S's row tile warp + 8r is element 16r + 4nt + 2h + j, at key
  /// channel 16 (warp + 8r) + g + 8h and value column col0 + 8nt + 2t + j.
  Value stateTile(int64_t r) { return e.plus(warp, kStateWarps * r); }
  Value stateRow(Value tile, int64_t h) {
    return e.plus(e.add(e.mul(tile, e.idx(16)), g), 8 * h);
  }
  Value stateAt(Value row, Value col) {
    return e.add(e.mul(e.add(e.mul(headRow, e.idx(Dk)), row), e.idx(Dv)), col);
  }
  /// Every warp has a tile in round r (null), or only those below
  /// `stateTiles`.
  Value stateGuard(int64_t r) {
    if (kStateWarps * (r + 1) <= stateTiles)
      return Value();
    return e.lt(stateTile(r), e.idx(stateTiles));
  }
  void forStateElements(function_ref<void(int64_t, Value, Value)> fn);
  Value inState(Value row, Value col) {
    return e.land(e.lt(row, e.idx(Dk)), e.lt(col, e.idx(Dv)));
  }
  SmallVector<Value> initialState();
  void publish(ArrayRef<Value> st);
  void storeFinalState(ValueRange finalState);

  //===--- the workspace copies ----------------------------------------===//

  void zeroPadding();
  Value rowsOf(Value chunk) {
    Value t0 = e.mul(chunk, e.idx(C));
    Value left = e.sub(tLen, e.umin(t0, tLen));
    return e.umin(e.idx(C), left);
  }
  Value firstRowOf(Value chunk) {
    return e.add(e.mul(headRow, tLen), e.mul(chunk, e.idx(C)));
  }
  void copy4(SmallVectorImpl<Value> &tokens, Value dst,
             SmallVector<Value> dstAt, Value src, Value at, Value inside);
  void copyRows(SmallVectorImpl<Value> &tokens, Value dst, Value buf, Value src,
                Value firstRow, int64_t width, Value stride, Value colBase,
                Value rows, Value colLimit);
  void copyWQ(SmallVectorImpl<Value> &tokens, Value chunk);
  Value issueChunk(Value chunk);
  Value issueWQ(Value chunk);

  //===--- one chunk ---------------------------------------------------===//

  /// Step 1's unit x (x < units / 2: V', else Qg S): its product, row tile
  /// and first column tile.
  struct Unit {
    Value x, prod, rowTile, colTile, row[2];
  };
  Unit unitOf(int64_t r);
  /// Every warp has a unit in round r (null), or only those below `units`.
  Value unitGuard(const Unit &u, int64_t r) {
    if (kStateWarps * (r + 1) <= units)
      return Value();
    return e.lt(u.x, e.idx(units));
  }
  SmallVector<Value> processChunk(Value chunk, ValueRange sIn);
  SmallVector<SmallVector<Value>> stepNewValues(Value bufC, Value wqBuf);
  void stepOutput(Value t0, Value rows, Value bufC,
                  ArrayRef<SmallVector<Value>> qgsAcc);
  SmallVector<Value> stepNextState(ValueRange sIn, Value bufC);

  const int64_t C, Dkp, stages;
  // 8-column tiles of the block's columns; step 1's units (product, row
  // tile, pair of column tiles); S's 16-row tiles; rounds of eight warps;
  // state elements per round.
  const int64_t nTiles, units, stateTiles, unitRounds, stateRounds, perRound;
  // Arguments: the workspaces, [initial_state], o, final_state, the sizes.
  Value wArg, uArg, qgArg, kgArg, aqkArg, gcArg, initArg, oArg, finalArg;
  Value tLen, hv;
  // Shared memory: W and Qg (buffer 2 x stage + 0 and 1); Kg, U, Aqk and
  // exp(G_last) double-buffered; V' and S transposed (value column-major).
  Value wqS, kgS, uS, aS, vnS, stS, gcS;
  Value slice, warp, lane;
  // Fragment coordinates: g = lane / 4 (A and C rows, B columns), t = lane
  // mod 4 (A columns and B rows, C columns 2t and 2t + 1).
  Value g, t;
  Value col0, numChunks, headRow;
  SmallVector<Value> zeros4;
  /// The cp.async group of the first chunk's copies.
  Value firstGroup;
};
} // namespace

StateKernel::StateKernel(OpBuilder &builder, gpu::GPUFuncOp func,
                         const GdnShape &s, Location loc)
    : GdnKernel(builder, func, s, loc), C(s.chunk), Dkp(s.paddedDk()),
      stages(s.wqStages()), nTiles(kStateColumns / 8),
      units(2 * (C / 16) * nTiles / 2), stateTiles(Dkp / 16),
      unitRounds(llvm::divideCeil(units, kStateWarps)),
      stateRounds(llvm::divideCeil(stateTiles, kStateWarps)),
      perRound(4 * nTiles) {
  wArg = arg(), uArg = arg(), qgArg = arg(), kgArg = arg(), aqkArg = arg(),
  gcArg = arg();
  initArg = s.init ? arg() : Value();
  oArg = arg(), finalArg = arg();
  tLen = arg(), hv = arg();

  wqS = shared({2 * stages, C, s.rowW()}), kgS = shared({2, C, s.rowKg()}),
  uS = shared({2, C, kRowU}), aS = shared({2, C, C + 4}),
  vnS = shared({kStateColumns, C + 4}), stS = shared({kStateColumns, s.rowW()}),
  gcS = shared({2, Dkp});
  assert(sharedBytes == s.stateSharedMemory() && "shared memory layout");

  slice = blockCoordinates();
  warp = e.div(tid, e.idx(32)), lane = e.rem(tid, e.idx(32));
  g = e.div(lane, e.idx(4)), t = e.rem(lane, e.idx(4));
  col0 = e.mul(slice, e.idx(kStateColumns));
  numChunks = arith::CeilDivUIOp::create(b, tLen, e.idx(C));
  headRow = e.add(e.mul(bIdx, hv), head);
  zeros4.assign(4, e.f(0.0));
}

/// The A fragment at rows `row0`, `row1` (rows g and g + 8 of a row tile)
/// and k-step columns ka, ka + 4 of `m` at `lead` (leading indices).
SmallVector<Value> StateKernel::aFragment(Value m, ValueRange lead, Value row0,
                                          Value row1, Value ka) {
  Value kb = e.plus(ka, 4);
  auto at = [&](Value row, Value col) {
    SmallVector<Value> idx(lead);
    idx.append({row, col});
    return e.load(m, idx);
  };
  return SmallVector<Value>{at(row0, ka), at(row1, ka), at(row0, kb),
                            at(row1, kb)};
}

/// The B fragment of tile `nt` and k-step rows ka, ka + 4 of a matrix kept
/// transposed in `m` ([column][k]).
SmallVector<Value> StateKernel::bFragment(Value m, Value nt, Value ka) {
  Value col = bColumn(nt);
  return SmallVector<Value>{e.load(m, {col, ka}),
                            e.load(m, {col, e.plus(ka, 4)})};
}

/// Calls fn(element, key channel, value column) for the state elements.
void StateKernel::forStateElements(
    function_ref<void(int64_t, Value, Value)> fn) {
  for (int64_t r = 0; r < stateRounds; ++r)
    for (int64_t nt = 0; nt < nTiles; ++nt)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t j = 0; j < 2; ++j)
          fn(perRound * r + 4 * nt + 2 * h + j, stateRow(stateTile(r), h),
             e.add(col0, pairCol(e.idx(nt), j)));
}

/// The state's accumulators: the initial state, or zeros.
SmallVector<Value> StateKernel::initialState() {
  SmallVector<Value> state(stateRounds * perRound);
  forStateElements([&](int64_t x, Value row, Value col) {
    state[x] = s.init
                   ? e.loadF32If(inState(row, col), initArg, stateAt(row, col))
                   : e.f(0.0);
  });
  return state;
}

/// The state, rounded to tf32, into the shared copy (transposed).
void StateKernel::publish(ArrayRef<Value> st) {
  for (int64_t r = 0; r < stateRounds; ++r) {
    auto write = [&] {
      for (int64_t nt = 0; nt < nTiles; ++nt)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t j = 0; j < 2; ++j)
            e.store(e.tf32(st[perRound * r + 4 * nt + 2 * h + j]), stS,
                    {pairCol(e.idx(nt), j), stateRow(stateTile(r), h)});
    };
    if (Value cond = stateGuard(r))
      e.when(cond, write);
    else
      write();
  }
}

/// The last chunk's cp.async group completes; the state to final_state.
void StateKernel::storeFinalState(ValueRange finalState) {
  nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));
  forStateElements([&](int64_t x, Value row, Value col) {
    e.when(inState(row, col),
           [&] { e.store(finalState[x], finalArg, {stateAt(row, col)}); });
  });
}

/// The padding columns Dk .. Dkp of the W, Qg and Kg rows and of
/// exp(G_last): zero (the copies never write them; the k-steps read them).
void StateKernel::zeroPadding() {
  const int64_t pad = Dkp - Dk;
  if (!pad)
    return;
  auto zeroPad = [&](Value m, int64_t rows) {
    e.loop(tid, e.idx(rows * pad), e.idx(kStateThreads), [&](Value x) {
      Value r = e.div(x, e.idx(pad));
      Value c = e.add(e.rem(x, e.idx(pad)), e.idx(Dk));
      SmallVector<Value> at{r, c};
      if (cast<MemRefType>(m.getType()).getRank() == 3)
        at = {e.div(r, e.idx(C)), e.rem(r, e.idx(C)), c};
      e.store(e.f(0.0), m, at);
    });
  };
  zeroPad(wqS, 2 * stages * C);
  zeroPad(kgS, 2 * C);
  zeroPad(gcS, 2);
}

/// A 16-byte copy into `dst` at `dstAt` from float `at` of `src` where
/// `inside`, else zero fill.
void StateKernel::copy4(SmallVectorImpl<Value> &tokens, Value dst,
                        SmallVector<Value> dstAt, Value src, Value at,
                        Value inside) {
  tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst, dstAt, src,
      ValueRange{e.sel(inside, at, c0)}, b.getIndexAttr(4),
      e.sel(inside, e.idx(4), c0),
      /*bypassL1=*/b.getUnitAttr()));
}

/// The rows `firstRow`.. of `width` floats (from column `colBase` of rows
/// `stride` floats apart, columns past `colLimit` zero) into buffer `buf`
/// of `dst` [.., C, >= width], rows past `rows` zero; rounds that not every
/// thread takes part in are guarded (the group commits every earlier copy
/// of the thread).
void StateKernel::copyRows(SmallVectorImpl<Value> &tokens, Value dst, Value buf,
                           Value src, Value firstRow, int64_t width,
                           Value stride, Value colBase, Value rows,
                           Value colLimit) {
  SmallVector<Value> guardedTokens;
  e.rounds(tid, kStateThreads, C * width / 4, [&](Value x, bool guarded) {
    Value i = e.div(x, e.idx(width / 4));
    Value c = e.mul(e.rem(x, e.idx(width / 4)), e.idx(4));
    Value inside = e.lt(i, rows);
    if (colLimit)
      inside = e.land(inside, e.lt(e.add(colBase, c), colLimit));
    Value at = e.add(e.mul(e.add(firstRow, i), stride), e.add(colBase, c));
    copy4(guarded ? guardedTokens : tokens, dst, {buf, i, c}, src, at, inside);
  });
}

/// W and Qg of `chunk` into their buffers (of its stage).
void StateKernel::copyWQ(SmallVectorImpl<Value> &tokens, Value chunk) {
  Value rows = rowsOf(chunk), first = firstRowOf(chunk);
  Value buf = stages == 2 ? e.mul(e.rem(chunk, e.idx(2)), e.idx(2)) : c0;
  copyRows(tokens, wqS, buf, wArg, first, Dk, e.idx(Dk), c0, rows, Value());
  copyRows(tokens, wqS, e.plus(buf, 1), qgArg, first, Dk, e.idx(Dk), c0, rows,
           Value());
}

/// The copies of Kg, Aqk, U and exp(G_last) of `chunk` (and W and Qg with
/// two stages), 16 bytes (4 floats) each, zero-filled past the sequence
/// (and past Dv in U), as one cp.async group.
Value StateKernel::issueChunk(Value chunk) {
  SmallVector<Value> tokens;
  Value rows = rowsOf(chunk), first = firstRowOf(chunk);
  Value buf = e.rem(chunk, e.idx(2));
  if (stages == 2)
    copyWQ(tokens, chunk);
  copyRows(tokens, kgS, buf, kgArg, first, Dk, e.idx(Dk), c0, rows, Value());
  copyRows(tokens, aS, buf, aqkArg, first, C, e.idx(C), c0, rows, Value());
  copyRows(tokens, uS, buf, uArg, first, kStateColumns, e.idx(Dv), col0, rows,
           e.idx(Dv));
  // exp(G_last) of the chunk: one row of Dk (none past the last chunk).
  Value gcFirst = e.add(e.mul(headRow, numChunks), chunk);
  for (int64_t k = 0; k * kStateThreads < Dk / 4; ++k) {
    Value q = e.add(tid, e.idx(k * kStateThreads));
    SmallVector<Value> guardedTokens;
    e.when(e.lt(q, e.idx(Dk / 4)), [&] {
      copy4(guardedTokens, gcS, {buf, e.mul(q, e.idx(4))}, gcArg,
            e.add(e.mul(gcFirst, e.idx(Dk)), e.mul(q, e.idx(4))),
            e.lt(chunk, numChunks));
    });
  }
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), tokens);
}

/// The copies of W and Qg of `chunk`, as one cp.async group.
Value StateKernel::issueWQ(Value chunk) {
  SmallVector<Value> tokens;
  copyWQ(tokens, chunk);
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), tokens);
}

StateKernel::Unit StateKernel::unitOf(int64_t r) {
  Unit u;
  u.x = e.plus(warp, kStateWarps * r);
  u.prod = e.div(u.x, e.idx(units / 2));
  Value local = e.rem(u.x, e.idx(units / 2));
  u.rowTile = e.div(local, e.idx(nTiles / 2));
  u.colTile = e.mul(e.rem(local, e.idx(nTiles / 2)), e.idx(2));
  for (int64_t h = 0; h < 2; ++h)
    u.row[h] = e.plus(e.add(e.mul(u.rowTile, e.idx(16)), g), 8 * h);
  return u;
}

/// One chunk: waits for its rows, issues the next chunk's copies into the
/// other buffers (free: the last step is over), then steps 1, 2a and 2b;
/// returns the next state, published.
SmallVector<Value> StateKernel::processChunk(Value chunk, ValueRange sIn) {
  Value t0 = e.mul(chunk, e.idx(C));
  Value rows = rowsOf(chunk);
  Value bufC = e.rem(chunk, e.idx(2));
  Value wqBuf = stages == 2 ? e.mul(bufC, e.idx(2)) : c0;
  nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));
  e.barrier();
  issueChunk(e.add(chunk, c1));
  SmallVector<SmallVector<Value>> qgsAcc = stepNewValues(bufC, wqBuf);
  e.barrier();
  // With one stage, W and Qg of the next chunk now (step 1 is over).
  if (stages == 1)
    issueWQ(e.add(chunk, c1));
  stepOutput(t0, rows, bufC, qgsAcc);
  SmallVector<Value> next = stepNextState(sIn, bufC);
  publish(next);
  return next;
}

/// Step 1: W S and Qg S units over Dk (two column tiles, even and odd
/// k-steps in separate accumulators); V' = U - W S to shared memory. A warp
/// keeps its Qg S units for step 2 (returned per round).
SmallVector<SmallVector<Value>> StateKernel::stepNewValues(Value bufC,
                                                           Value wqBuf) {
  SmallVector<SmallVector<Value>> qgsAcc;
  for (int64_t r = 0; r < unitRounds; ++r) {
    Unit u = unitOf(r);
    SmallVector<Value> zeros8(8, zeros4[0]);
    qgsAcc.push_back(e.ifElse(unitGuard(u, r), zeros8, [&] {
      Value buf = e.add(wqBuf, u.prod);
      SmallVector<Value> acc[2][2] = {{zeros4, zeros4}, {zeros4, zeros4}};
      for (int64_t kk = 0; kk < Dkp / 8; ++kk) {
        Value ka = e.plus(t, 8 * kk);
        SmallVector<Value> a = aFragment(wqS, {buf}, u.row[0], u.row[1], ka);
        for (int64_t c = 0; c < 2; ++c)
          acc[c][kk % 2] = e.mmaTf32(
              a, bFragment(stS, e.plus(u.colTile, c), ka), acc[c][kk % 2]);
      }
      SmallVector<Value> sum;
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t x = 0; x < 4; ++x)
          sum.push_back(e.fadd(acc[c][0][x], acc[c][1][x]));
      e.when(e.eq(u.prod, c0), [&] {
        for (int64_t c = 0; c < 2; ++c)
          for (int64_t h = 0; h < 2; ++h)
            for (int64_t j = 0; j < 2; ++j) {
              Value col = pairCol(e.plus(u.colTile, c), j);
              Value vn = e.fsub(e.load(uS, {bufC, u.row[h], col}),
                                sum[4 * c + 2 * h + j]);
              e.store(e.tf32(vn), vnS, {col, u.row[h]});
            }
      });
      return sum;
    }));
  }
  return qgsAcc;
}

/// Step 2a: O = Qg S + Aqk V' (k-steps up to the diagonal block), rows
/// `rows` of the chunk from token t0.
void StateKernel::stepOutput(Value t0, Value rows, Value bufC,
                             ArrayRef<SmallVector<Value>> qgsAcc) {
  for (int64_t r = 0; r < unitRounds; ++r) {
    Unit u = unitOf(r);
    Value isQgs = e.eq(u.prod, c1);
    if (Value cond = unitGuard(u, r))
      isQgs = e.land(isQgs, cond);
    e.when(isQgs, [&] {
      Value steps = e.mul(e.add(u.rowTile, c1), e.idx(2));
      ValueRange acc =
          e.loop(c0, steps, c1, qgsAcc[r], [&](Value kk, ValueRange cur) {
            Value ka = e.add(e.mul(kk, e.idx(8)), t);
            SmallVector<Value> a =
                aFragment(aS, {bufC}, u.row[0], u.row[1], ka);
            SmallVector<Value> out;
            for (int64_t c = 0; c < 2; ++c)
              out.append(e.mmaTf32(a, bFragment(vnS, e.plus(u.colTile, c), ka),
                                   SmallVector<Value>(cur.slice(4 * c, 4))));
            return out;
          });
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t j = 0; j < 2; ++j) {
            Value i = u.row[h];
            Value col = e.add(col0, pairCol(e.plus(u.colTile, c), j));
            Value out = acc[4 * c + 2 * h + j];
            e.when(e.land(e.lt(i, rows), e.lt(col, e.idx(Dv))), [&] {
              Value at = e.add(
                  e.mul(e.add(e.mul(e.add(e.mul(bIdx, tLen), e.add(t0, i)), hv),
                              head),
                        e.idx(Dv)),
                  col);
              if (s.dtype != ScalarType::F32)
                out = arith::TruncFOp::create(
                    b, getType(b.getContext(), s.dtype), out);
              e.store(out, oArg, {at});
            });
          }
    });
  }
}

/// Step 2b: S = diag(exp(G_last)) S + Kgᵀ V' (Kg rows past the sequence are
/// zero).
SmallVector<Value> StateKernel::stepNextState(ValueRange sIn, Value bufC) {
  SmallVector<Value> next;
  for (int64_t r = 0; r < stateRounds; ++r) {
    SmallVector<Value> old(sIn.begin() + perRound * r,
                           sIn.begin() + perRound * (r + 1));
    next.append(e.ifElse(stateGuard(r), old, [&] {
      Value tile = stateTile(r);
      Value dk[2] = {stateRow(tile, 0), stateRow(tile, 1)};
      Value decay[2] = {e.load(gcS, {bufC, dk[0]}), e.load(gcS, {bufC, dk[1]})};
      SmallVector<Value> acc;
      for (int64_t x = 0; x < perRound; ++x)
        acc.push_back(e.fmul(old[x], decay[(x / 2) % 2]));
      for (int64_t kk = 0; kk < C / 8; ++kk) {
        // Kgᵀ's A fragment: rows dk, columns (chunk rows) ka, ka + 4.
        Value ka = e.plus(t, 8 * kk), kb = e.plus(ka, 4);
        SmallVector<Value> a{
            e.load(kgS, {bufC, ka, dk[0]}), e.load(kgS, {bufC, ka, dk[1]}),
            e.load(kgS, {bufC, kb, dk[0]}), e.load(kgS, {bufC, kb, dk[1]})};
        for (int64_t nt = 0; nt < nTiles; ++nt) {
          SmallVector<Value> tileAcc =
              e.mmaTf32(a, bFragment(vnS, e.idx(nt), ka),
                        ArrayRef<Value>(acc).slice(4 * nt, 4));
          std::copy(tileAcc.begin(), tileAcc.end(), acc.begin() + 4 * nt);
        }
      }
      return acc;
    }));
  }
  return next;
}

//===----------------------------------------------------------------------===//
// The recurrent kernel
//===----------------------------------------------------------------------===//

namespace {
/// The recurrent kernel: the token-by-token recurrence with the state in
/// registers, for decode (a few tokens per sequence). Grid (ceil(Dv / 16),
/// Hv, B), 256 threads: thread (column c = tid / 16, part p = tid mod 16)
/// holds S rows 4g .. 4g + 3 of its column for g = p, p + 16, ...; the 16
/// parts of a column are 16 lanes of one warp, so that Sᵀk and Sᵀq are
/// shuffle reductions. The state tile [Dk, 16] moves through shared memory
/// with coalesced 16-byte accesses.
class RecurrentKernel : GdnKernel {
public:
  RecurrentKernel(OpBuilder &builder, gpu::GPUFuncOp func, const GdnShape &s,
                  Location loc);

  void build() {
    SmallVector<Value> state = loadState();
    warp = e.div(tid, e.idx(32)), lane = e.rem(tid, e.idx(32));
    ValueRange finalState =
        e.loop(c0, tLen, c1, state, [&](Value t, ValueRange sIn) {
          Value tokRow = e.add(e.mul(bIdx, tLen), t);
          loadToken(tokRow);
          inverseNorms();
          return update(tokRow, sIn);
        });
    storeState(finalState);
  }

private:
  void tileRounds(function_ref<void(Value, Value, Value, Value)> fn);
  SmallVector<Value> loadState();
  void loadToken(Value tokRow);
  void inverseNorms();
  SmallVector<Value> update(Value tokRow, ValueRange sIn);
  void storeState(ValueRange finalState);

  // Groups of 4 rows of S; groups per thread.
  const int64_t groups, M;
  // Arguments: the inputs, [initial_state], o, final_state, the sizes.
  Value qArg, kArg, vArg, gArg, betaArg, initArg, oArg, finalArg;
  Value tLen, hk, hv;
  // Shared memory: the state tile (rows padded), the token's k and q (f32),
  // its per-channel gates, the inverse norms.
  Value tileS, kqS, gS, normS;
  Value slice, local, part, col0, col, colOk, keyHead, headRow, warp, lane;
  // The first row of this thread's groups of S, and whether they exist.
  SmallVector<Value> groupAt, groupOk;
};
} // namespace

RecurrentKernel::RecurrentKernel(OpBuilder &builder, gpu::GPUFuncOp func,
                                 const GdnShape &s, Location loc)
    : GdnKernel(builder, func, s, loc), groups(Dk / 4),
      M((groups + kParts - 1) / kParts) {
  qArg = arg(), kArg = arg(), vArg = arg(), gArg = arg(), betaArg = arg();
  initArg = s.init ? arg() : Value();
  oArg = arg(), finalArg = arg();
  tLen = arg(), hk = arg(), hv = arg();

  tileS = shared({Dk, kColumns + 4}), kqS = shared({2, Dk}),
  gS = shared({s.channel ? Dk : 1}), normS = shared({2});
  assert(sharedBytes == s.recurrentSharedMemory() && "shared memory layout");

  slice = blockCoordinates();
  local = e.div(tid, e.idx(kParts)), part = e.rem(tid, e.idx(kParts));
  col0 = e.mul(slice, e.idx(kColumns));
  col = e.add(col0, local);
  colOk = e.lt(col, e.idx(Dv));
  keyHead = e.div(head, e.div(hv, hk));
  headRow = e.add(e.mul(bIdx, hv), head);
  for (int64_t m = 0; m < M; ++m) {
    Value g = e.add(part, e.idx(kParts * m));
    groupOk.push_back(e.lt(g, e.idx(groups)));
    groupAt.push_back(e.mul(e.umin(g, e.idx(groups - 1)), e.idx(4)));
  }
}

/// Calls fn(row, column, at, inside) for the 16-byte pieces of the [Dk, 16]
/// state tile: `at` its place in the global [B, Hv, Dk, Dv] state,
/// `inside` whether it is within Dv.
void RecurrentKernel::tileRounds(
    function_ref<void(Value, Value, Value, Value)> fn) {
  e.rounds(tid, kStateThreads, Dk * kColumns / 4, [&](Value x) {
    Value row = e.div(x, e.idx(kColumns / 4));
    Value c = e.mul(e.rem(x, e.idx(kColumns / 4)), e.idx(4));
    Value at = e.add(e.mul(e.add(e.mul(headRow, e.idx(Dk)), row), e.idx(Dv)),
                     e.add(col0, c));
    fn(row, c, at, e.lt(e.add(col0, c), e.idx(Dv)));
  });
}

/// The initial state (zeros without one; zeros past Dv) into the shared
/// tile, and this thread's rows of its column into registers.
SmallVector<Value> RecurrentKernel::loadState() {
  tileRounds([&](Value row, Value c, Value at, Value inside) {
    Value v = e.zeros(e.vec4Type());
    if (s.init)
      v = e.ifElse(inside, ValueRange{v}, [&] {
        return SmallVector<Value>{e.load4(initArg, {at})};
      })[0];
    e.storeVec(v, tileS, {row, c});
  });
  e.barrier();
  SmallVector<Value> state;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t r = 0; r < 4; ++r)
      state.push_back(e.load(tileS, {e.add(groupAt[m], e.idx(r)), local}));
  return state;
}

/// The token's k and q (f32) and per-channel gates into shared memory.
void RecurrentKernel::loadToken(Value tokRow) {
  e.loop(tid, e.idx(Dk), e.idx(kStateThreads), [&](Value d) {
    Value at = e.add(e.mul(e.add(e.mul(tokRow, hk), keyHead), e.idx(Dk)), d);
    e.store(e.loadF32(kArg, at), kqS, {c0, d});
    e.store(e.loadF32(qArg, at), kqS, {c1, d});
    if (s.channel)
      e.store(
          e.loadF32(gArg,
                    e.add(e.mul(e.add(e.mul(tokRow, hv), head), e.idx(Dk)), d)),
          gS, {d});
  });
  e.barrier();
}

/// The token's inverse norms (warp 0: k, warp 1: q; 1 without
/// normalization), times the scale for q, into shared memory.
void RecurrentKernel::inverseNorms() {
  e.when(e.lt(warp, e.idx(2)), [&] {
    Value ss = squaredNorm(kqS, warp, lane);
    Value inv = s.l2norm ? e.rsqrt(e.fadd(ss, e.f(1e-6))) : e.f(1.0);
    inv = e.sel(e.eq(warp, c1), e.fmul(inv, e.f(s.scale)), inv);
    e.when(e.eq(lane, c0), [&] { e.store(inv, normS, {warp}); });
  });
  e.barrier();
}

/// One token's step of the recurrence on this thread's rows of S:
///   S = diag(exp(g)) S;  u = beta (v - Sᵀk);  S += k uᵀ;  o = Sᵀq,
/// the output to o; returns the next state.
SmallVector<Value> RecurrentKernel::update(Value tokRow, ValueRange sIn) {
  Value invK = e.load(normS, {c0}), invQ = e.load(normS, {c1});
  Value at = e.add(e.mul(tokRow, hv), head);
  Value beta = e.loadF32(betaArg, at);
  Value v = e.loadF32If(colOk, vArg, e.add(e.mul(at, e.idx(Dv)), col));
  Value headDecay = s.channel ? Value() : e.exp(e.loadF32(gArg, at));
  SmallVector<Value> next(sIn.begin(), sIn.end()), kd(4 * M), qd(4 * M);
  Value pk = e.f(0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t r = 0; r < 4; ++r) {
      int64_t x = 4 * m + r;
      Value d = e.add(groupAt[m], e.idx(r));
      Value decay = s.channel ? e.exp(e.load(gS, {d})) : headDecay;
      kd[x] = e.sel(groupOk[m], e.fmul(e.load(kqS, {c0, d}), invK), e.f(0.0));
      qd[x] = e.sel(groupOk[m], e.fmul(e.load(kqS, {c1, d}), invQ), e.f(0.0));
      next[x] = e.fmul(next[x], decay);
      pk = e.fma(next[x], kd[x], pk);
    }
  Value u = e.fmul(beta, e.fsub(v, e.laneSum(pk, kParts)));
  Value po = e.f(0.0);
  for (int64_t x = 0; x < 4 * M; ++x) {
    next[x] = e.fma(kd[x], u, next[x]);
    po = e.fma(next[x], qd[x], po);
  }
  Value o = e.laneSum(po, kParts);
  e.when(e.land(e.eq(part, c0), colOk), [&] {
    Value oAt = e.add(e.mul(at, e.idx(Dv)), col);
    e.store(
        s.dtype == ScalarType::F32
            ? o
            : arith::TruncFOp::create(b, getType(b.getContext(), s.dtype), o)
                  .getResult(),
        oArg, {oAt});
  });
  // Every thread is done with the token's k, q, gates.
  e.barrier();
  return next;
}

/// The state through the shared tile to final_state (columns within Dv).
void RecurrentKernel::storeState(ValueRange finalState) {
  for (int64_t m = 0; m < M; ++m)
    e.when(groupOk[m], [&] {
      for (int64_t r = 0; r < 4; ++r)
        e.store(finalState[4 * m + r], tileS,
                {e.add(groupAt[m], e.idx(r)), local});
    });
  e.barrier();
  tileRounds([&](Value row, Value c, Value at, Value inside) {
    e.when(inside,
           [&] { e.storeVec(e.load4(tileS, {row, c}), finalArg, {at}); });
  });
}

/// Builds the body of kernel `KernelT` into `func`.
template <typename KernelT>
static void buildBody(OpBuilder &builder, gpu::GPUFuncOp func,
                      const GdnShape &s, Location loc) {
  KernelT(builder, func, s, loc).build();
}

//===----------------------------------------------------------------------===//
// The entry point
//===----------------------------------------------------------------------===//

LogicalResult mlir::attn::detail::buildGatedDeltaKernels(
    OpBuilder &builder, ModuleOp module, const GatedDeltaSpec &spec,
    Location loc, EmitErrorFn emitError, Manifests &manifests) {
  std::string why;
  if (failed(checkGatedDeltaKernelEligible(spec, &why)))
    return emitError() << why;
  const GdnShape s(spec);
  MLIRContext *ctx = builder.getContext();
  Type f32 = builder.getF32Type(), elt = getType(ctx, s.dtype),
       gateElt = getType(ctx, s.gateDtype), betaElt = getType(ctx, s.betaDtype);
  // Each kernel's variant names what it depends on: the chunk kernel the
  // inputs' preparation, the state kernel the initial state.
  llvm::json::Object chunkVariant{
      {"op", "gated_delta_rule"},
      {"dtype", typeName(elt)},
      {"key_head_dim", s.dk},
      {"value_head_dim", s.dv},
      {"chunk", s.chunk},
      {"gate_kind", stringifyGateKind(s.gateKind)},
      {"gate_dtype", typeName(gateElt)},
      {"beta_dtype", typeName(betaElt)},
      {"qk_l2norm", s.l2norm},
      {"scale", static_cast<double>(static_cast<float>(s.scale))}};
  llvm::json::Object stateVariant{
      {"op", "gated_delta_rule"}, {"dtype", typeName(elt)},
      {"key_head_dim", s.dk},     {"value_head_dim", s.dv},
      {"chunk", s.chunk},         {"initial_state", s.init}};
  llvm::json::Object recurrentVariant = chunkVariant;
  recurrentVariant.erase("chunk");
  recurrentVariant["initial_state"] = s.init;

  // q, k, v, g, beta.
  auto inputs = [&](KernelSignature &sig) {
    sig.tensor("q", "query", elt, llvm::json::Array{"B", "T", "Hk", s.dk});
    sig.tensor("k", "key", elt, llvm::json::Array{"B", "T", "Hk", s.dk});
    sig.tensor("v", "value", elt, llvm::json::Array{"B", "T", "Hv", s.dv});
    llvm::json::Array gateShape{"B", "T", "Hv"};
    if (s.channel)
      gateShape.push_back(s.dk);
    sig.tensor("g", "gate", gateElt, std::move(gateShape));
    sig.tensor("beta", "beta", betaElt, llvm::json::Array{"B", "T", "Hv"});
  };
  // The chunk kernel's outputs, the state kernel's inputs.
  auto workspaces = [&](KernelSignature &sig) {
    for (auto [name, last] : {std::pair<StringRef, int64_t>{"w", s.dk},
                              {"u", s.dv},
                              {"qg", s.dk},
                              {"kg", s.dk},
                              {"aqk", s.chunk}})
      sig.tensor(name, "workspace", f32,
                 llvm::json::Array{"B", "Hv", "T", last});
    sig.tensor("gc", "workspace", f32,
               llvm::json::Array{"B", "Hv", "Chunks", s.dk});
  };
  // [initial_state], o, final_state.
  auto stateIO = [&](KernelSignature &sig) {
    if (s.init)
      sig.tensor("initial_state", "initial_state", f32,
                 llvm::json::Array{"B", "Hv", s.dk, s.dv});
    sig.tensor("o", "output", elt, llvm::json::Array{"B", "T", "Hv", s.dv});
    sig.tensor("final_state", "final_state", f32,
               llvm::json::Array{"B", "Hv", s.dk, s.dv});
  };
  // Builds kernel `name` (once per module) and adds its manifest.
  auto emit = [&](StringRef kernel, KernelSignature sig, llvm::json::Array grid,
                  int64_t threads, int64_t sharedMemory,
                  llvm::json::Object variant,
                  void (*body)(OpBuilder &, gpu::GPUFuncOp, const GdnShape &,
                               Location)) {
    std::string name = variantName(s, kernel);
    llvm::json::Object manifest{{"entry", name},
                                {"params", std::move(sig.params)},
                                {"grid", std::move(grid)},
                                {"block", llvm::json::Array{threads, 1, 1}},
                                {"kernel", ("gated_delta." + kernel).str()},
                                {"dynamic_shared_memory", sharedMemory},
                                {"variant", std::move(variant)}};
    if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
      gpu::GPUFuncOp func =
          createKernel(builder, module, loc, name, sig.types, threads);
      OpBuilder::InsertionGuard guard(builder);
      body(builder, func, s, loc);
      builder.setInsertionPointToEnd(&func.getBody().front());
      gpu::ReturnOp::create(builder, loc);
    }
    addManifest(builder, manifests, name, std::move(manifest));
  };
  const int64_t slices = (s.dv + kColumns - 1) / kColumns,
                stateSlices = llvm::divideCeil(s.dv, kStateColumns);

  KernelSignature chunkSig;
  inputs(chunkSig);
  workspaces(chunkSig);
  chunkSig.sizes(ctx, {"T", "Hk", "Hv"});
  emit("chunk", std::move(chunkSig),
       llvm::json::Array{grid::ceilDiv("T", s.chunk), "Hv", "B"}, kChunkThreads,
       s.chunkSharedMemory(), std::move(chunkVariant), buildBody<ChunkKernel>);

  KernelSignature stateSig;
  workspaces(stateSig);
  stateIO(stateSig);
  stateSig.sizes(ctx, {"T", "Hv"});
  emit("state", std::move(stateSig), llvm::json::Array{stateSlices, "Hv", "B"},
       kStateThreads, s.stateSharedMemory(), std::move(stateVariant),
       buildBody<StateKernel>);

  // The recurrent kernel (decode: the host takes it for short sequences).
  KernelSignature recurrentSig;
  inputs(recurrentSig);
  stateIO(recurrentSig);
  recurrentSig.sizes(ctx, {"T", "Hk", "Hv"});
  emit("recurrent", std::move(recurrentSig),
       llvm::json::Array{slices, "Hv", "B"}, kStateThreads,
       s.recurrentSharedMemory(), std::move(recurrentVariant),
       buildBody<RecurrentKernel>);
  return success();
}
