//===- AttentionGradKernels.cpp - the attention backward from a spec ------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The kernels of an AttentionGradSpec (attn.attention_grad), launched in
// this order (each manifest's "step"):
//
//   dq     one thread per query row i of head h, batch b (grid as the
//          forward's baseline: 128 rows per block). Delta = dO[i]·O[i],
//          written to the `delta` workspace; lse2 = lse · log2 e (0 where
//          lse = -inf: such a row has no mass). For each admitted key j:
//            s  = the forward's logit (exp2 domain: scale, softcap, bias);
//            p  = exp2(s - lse2);  dp = dO[i]·V[j];
//            ds = p · (dp - Delta) · scale  (· (1 - tanh²) under softcap);
//            dQ[i] += ds · K[j].
//   dkdv   one thread per key j of KV head g: for each query head h of g's
//          group and each row i whose band admits j (the inverse band,
//          buildAdmittingPositions), p and ds as above from the `delta`
//          workspace; dV[j] += p · dO[i], dK[j] += ds · Q[i]. dK and dV are
//          summed over the group in registers: no atomics.
//   dsinks (with sinks) one thread per head:
//          dsinks[h] = -Σ_{b,i} exp(sink - lse) · Delta.
//
// The bodies above are thread-per-row kernels, the backward's counterpart
// of the forward's baseline: every variant (f32 too, any head dim up to 512)
// runs on them, deterministically. Where getGradMmaTiling takes the variant
// (f16/bf16, head dims multiples of 16 up to 128) and the kernel option is
// not "baseline", dq and dkdv are instead FlashAttention-2's tensor-core
// kernels (AttentionGradMmaKernels.cpp: mma.sync, 64-row tiles, key-major
// dK/dV) with the same parameters, steps and Delta workspace; their names
// end in "_mma" and their manifests carry a "tile". dsinks is shared.
//
// On chip sm_90a, dq and dkdv are instead AttentionGradWgmmaKernel.cpp's
// bodies (TMA, mbarriers, warp specialization, wgmma; 128 rows a block, the
// Q, K, V and dO tensor maps as extra parameters) wherever they take the
// variant (f16/bf16, head dims multiples of 64 up to 256) and the kernel
// option is `auto`; their entries are "…_bwd_dq_wgmma" and
// "…_bwd_dkdv_wgmma" (selectGradBodies). A spec may pin the bodies: "kernel":
// "mma" keeps mma.sync on any chip, "kernel": "wgmma" (or the kernel option
// wgmma) demands the wgmma bodies and makes another chip or variant an error at
// the op. Pinned kernels are named after the spec's kind
// (…_mma_bwd_dq_mma, …_wgmma_bwd_dkdv_wgmma) and their variants carry
// "kernel", so that a bundle directory holds every backward of a variant
// side by side.
//
// A spec with "deterministic": false (the op's `deterministic = false`)
// lets sums run in any order. Where the sm_90a dK/dV kernel takes it
// (getGradWgmmaTiling's fuseDQ: head dims 64 and 128), dQ is fused into that
// kernel as FlashAttention-3 does, and the steps are prep (Delta, and the
// f32 `dq_accum` workspace zeroed), dkdv_dq (dK, dV, and dQ's shares added
// into dq_accum with atomics), dq_convert (dQ = dq_accum · scale) and dsinks
// (AttentionGradDQAccum.cpp). Elsewhere it runs the deterministic bodies.
// Either way its kernels are named "…_bwd_nd_…", beside the deterministic
// spec's.
//
//===----------------------------------------------------------------------===//

#include "AttentionGradKernels.h"
#include "DenseKernels.h"
#include "KernelCommon.h"
#include "Kernels.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

/// Threads per block of the backward kernels.
static constexpr int64_t kThreads = 128;

namespace {

/// Which backward kernel: the deterministic set's dq and dkdv, the fused
/// set's prep, dkdv (with dQ's adds) and dq convert
/// (AttentionGradDQAccum.cpp), and dsinks, which both share.
enum class GradKernel { DQ, DKDV, DSinks, Prep, DKDVFused, DQConvert };

/// The parameters of kernel `which`, in order: the forward's inputs, O
/// (dq), dO, the LSE, the delta workspace, the `row_stats` workspace
/// (`rowStats`: the wgmma bodies' dq writes it, their dkdv copies it), the
/// gradients it writes, sizes, then the values left to run time.
KernelSignature buildGradSignature(MLIRContext *ctx, const AttentionSpec &spec,
                                   GradKernel which, bool rowStats) {
  KernelSignature sig;
  Type elt = getType(ctx, spec.dtype), f32 = Float32Type::get(ctx);
  bool bshd = spec.layout == Layout::BSHD;
  auto rows = [&](StringRef h, StringRef s, int64_t d) {
    return bshd ? llvm::json::Array{"B", s, h, d}
                : llvm::json::Array{"B", h, s, d};
  };
  llvm::json::Array rowShape{"B", "Hq", "Sq"};
  if (which == GradKernel::DSinks) {
    sig.tensor("sinks", "sinks", getType(ctx, *spec.sinks),
               llvm::json::Array{"Hq"});
    sig.tensor("lse", "lse", f32, llvm::json::Array(rowShape));
    sig.tensor("delta", "workspace", f32, llvm::json::Array(rowShape));
    sig.tensor("dsinks", "grad_sinks", getType(ctx, *spec.sinks),
               llvm::json::Array{"Hq"});
    sig.sizes(ctx, {"B", "Hq", "Sq"});
    return sig;
  }
  // The fused dQ's workspace: [B, Hq, ceil(Sq / 64) tiles, 64 · D] f32 in
  // getDQAccumOffset's order.
  llvm::json::Array accumShape{"B", "Hq", grid::ceilDiv("Sq", kDQAccumRows),
                               kDQAccumRows * spec.headDim};
  // Its statistics: [B, Hq, ceil(Sq / 64) tiles, 2 · 64] f32, each tile's
  // lse2 then Delta (0 past Sq), which the dK/dV kernel's producer copies
  // with one bulk copy a tile.
  llvm::json::Array statsShape{"B", "Hq", grid::ceilDiv("Sq", kDQAccumRows),
                               2 * kDQAccumRows};
  if (which == GradKernel::Prep || which == GradKernel::DQConvert) {
    if (which == GradKernel::Prep) {
      sig.tensor("o", "output", elt, rows("Hq", "Sq", spec.valueHeadDim));
      sig.tensor("do", "grad_output", elt, rows("Hq", "Sq", spec.valueHeadDim));
      sig.tensor("lse", "lse", f32, llvm::json::Array(rowShape));
      sig.tensor("delta", "workspace", f32, llvm::json::Array(rowShape));
      sig.tensor("row_stats", "workspace", f32, llvm::json::Array(statsShape));
    }
    sig.tensor("dq_accum", "workspace", f32, std::move(accumShape));
    if (which == GradKernel::DQConvert)
      sig.tensor("dq", "grad_query", elt, rows("Hq", "Sq", spec.headDim));
    sig.sizes(ctx, {"B", "Hq", "Sq"});
    if (spec.runtimeValues && which == GradKernel::DQConvert)
      sig.runtimeValues(ctx, spec.softcap.has_value(), spec.mask.isWindow());
    return sig;
  }
  sig.attentionInputs(ctx, spec);
  if (which == GradKernel::DQ)
    sig.tensor("o", "output", elt, rows("Hq", "Sq", spec.valueHeadDim));
  sig.tensor("do", "grad_output", elt, rows("Hq", "Sq", spec.valueHeadDim));
  sig.tensor("lse", "lse", f32, llvm::json::Array(rowShape));
  sig.tensor("delta", "workspace", f32, llvm::json::Array(rowShape));
  if (rowStats)
    sig.tensor("row_stats", "workspace", f32, std::move(statsShape));
  if (which == GradKernel::DKDVFused)
    sig.tensor("dq_accum", "workspace", f32, std::move(accumShape));
  if (which == GradKernel::DQ) {
    sig.tensor("dq", "grad_query", elt, rows("Hq", "Sq", spec.headDim));
  } else {
    sig.tensor("dk", "grad_key", elt, rows("Hkv", "Sk", spec.headDim));
    sig.tensor("dv", "grad_value", elt, rows("Hkv", "Sk", spec.valueHeadDim));
  }
  sig.sizes(ctx, {"B", "Hq", "Hkv", "Sq", "Sk"});
  if (spec.runtimeValues)
    sig.runtimeValues(ctx, spec.softcap.has_value(), spec.mask.isWindow());
  return sig;
}

/// Appends the TMA descriptors of wgmma kernel `which` to `sig`: Q, K, V
/// and dO as 4-D maps over the layout's dims, boxes of 64 columns (128
/// bytes, 128-byte swizzle) by the kernel's tile rows, zero fill out of
/// bounds (pointers in the signature, cast to the returned types in the
/// kernel).
SmallVector<Type> appendTensorMaps(MLIRContext *ctx, KernelSignature &sig,
                                   const AttentionSpec &spec,
                                   const GradWgmmaTiling &tiling,
                                   GradKernel which, TensorMapPassing passing) {
  Type elt = getType(ctx, spec.dtype);
  const bool dq = which == GradKernel::DQ;
  const int64_t rows = dq ? tiling.dqRows : tiling.rows;
  const int64_t keys = dq ? tiling.dqKeys : tiling.keys;
  SmallVector<Type> types;
  for (auto [tensor, boxRows] : {std::pair<StringRef, int64_t>{"q", rows},
                                 {"k", keys},
                                 {"v", keys},
                                 {"do", rows}})
    types.push_back(sig.tensorMap(ctx, tensor, elt, boxRows,
                                  spec.layout == Layout::BSHD, passing));
  return types;
}

/// The kernel's entry-block arguments, in buildGradSignature's order.
GradArgs getGradArgs(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                     const AttentionSpec &spec, GradKernel which,
                     bool rowStats) {
  Block &body = func.getBody().front();
  unsigned n = 0;
  auto next = [&] { return body.getArgument(n++); };
  GradArgs a;
  if (which == GradKernel::DSinks) {
    a.fwd.sinks = next();
    a.fwd.lse = next();
    a.delta = next();
    a.dsinks = next();
    a.fwd.batch = next();
    a.fwd.hq = next();
    a.fwd.sq = next();
    return a;
  }
  auto runtimeValues = [&] {
    if (!spec.runtimeValues)
      return;
    bool window = spec.mask.isWindow();
    unsigned count = 1 + (spec.softcap ? 1 : 0) + (window ? 2 : 0);
    RuntimeValues values = materializeRuntimeValues(
        builder, loc, body.getArguments().slice(n, count),
        spec.softcap.has_value(), window);
    a.fwd.scoreFactor = values.scoreFactor;
    a.fwd.softcapFactor = values.softcapFactor;
    a.fwd.windowLeft = values.windowLeft;
    a.fwd.windowRight = values.windowRight;
  };
  if (which == GradKernel::Prep || which == GradKernel::DQConvert) {
    if (which == GradKernel::Prep) {
      a.fwd.o = next();
      a.dO = next();
      a.fwd.lse = next();
      a.delta = next();
      a.rowStats = next();
    }
    a.dqAccum = next();
    if (which == GradKernel::DQConvert)
      a.dq = next();
    a.fwd.batch = next();
    a.fwd.hq = next();
    a.fwd.sq = next();
    if (which == GradKernel::DQConvert)
      runtimeValues();
    return a;
  }
  a.fwd.q = next();
  a.fwd.k = next();
  a.fwd.v = next();
  if (spec.bias)
    a.fwd.bias = next();
  if (which == GradKernel::DQ)
    a.fwd.o = next();
  a.dO = next();
  a.fwd.lse = next();
  a.delta = next();
  if (rowStats)
    a.rowStats = next();
  if (which == GradKernel::DKDVFused)
    a.dqAccum = next();
  if (which == GradKernel::DQ) {
    a.dq = next();
  } else {
    a.dk = next();
    a.dv = next();
  }
  a.fwd.batch = next();
  a.fwd.hq = next();
  a.fwd.hkv = next();
  a.fwd.sq = next();
  a.fwd.sk = next();
  runtimeValues();
  return a;
}

/// Emits a backward kernel body, one method per phase of the file comment.
/// Private memory holds the thread's row (f32) and its accumulators.
class GradKernelBody {
public:
  GradKernelBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                 const AttentionSpec &spec, const GradArgs &args)
      : b(loc, builder), e{b}, spec(spec), args(args), a(args.fwd),
        priv(func.getPrivateAttributions()) {}

  void emitDQ();
  void emitDKDV();
  void emitDSinks();

private:
  /// Sizes, factors and the thread's index along blockIdx.x.
  Value setUp();
  Value rowOffset(Value heads, Value seqLen, Value head, Value s, int64_t dim) {
    return getRowOffset(e, spec.layout, batch, heads, seqLen, head, s, dim);
  }
  /// `dst[0, n)` = row `base` of `src` as f32.
  void loadRow(Value src, Value base, int64_t n, Value dst);
  void clear(Value buf, int64_t n);
  /// Σ_d buf[d] · src[base + d].
  Value dot(Value buf, Value src, Value base, int64_t n);
  /// acc[d] += x · src[base + d].
  void axpy(Value acc, Value x, Value src, Value base, int64_t n);
  /// Writes `buf` (f32) as row `base` of `dst`.
  void storeRow(Value buf, Value dst, Value base, int64_t n);
  /// lse · log2 e of row i of head h, 0 where lse = -inf.
  Value lse2(Value head, Value i);
  /// The forward's logit of (query head, row i, key j) from the raw dot
  /// product, and the tanh under softcap (else null).
  std::pair<Value, Value> logit(Value rawDot, Value head, Value i, Value j);
  /// ds from p, dp, Delta and the tanh of the logit.
  Value gradScore(Value p, Value dp, Value delta, Value th);

  ImplicitLocOpBuilder b;
  Emitter e;
  const AttentionSpec &spec;
  const GradArgs &args;
  const AttentionKernelArgs &a;
  ArrayRef<BlockArgument> priv;
  Value batch, head, c0, c1, factor, gradScale;
};

Value GradKernelBody::setUp() {
  Value bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  head = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  batch = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  c0 = e.idx(0);
  c1 = e.idx(1);
  factor = getScoreFactor(e, spec, a);
  gradScale = getGradScale(e, spec, a);
  return e.add(e.mul(bx, e.idx(kThreads)), tid);
}

void GradKernelBody::loadRow(Value src, Value base, int64_t n, Value dst) {
  e.loop(c0, e.idx(n), c1,
         [&](Value d) { e.store(e.loadF32(src, e.add(base, d)), dst, d); });
}

void GradKernelBody::clear(Value buf, int64_t n) {
  e.loop(c0, e.idx(n), c1, [&](Value d) { e.store(e.f(0.0), buf, d); });
}

Value GradKernelBody::dot(Value buf, Value src, Value base, int64_t n) {
  return e.loop(c0, e.idx(n), c1, ValueRange{e.f(0.0)},
                [&](Value d, ValueRange s) -> SmallVector<Value> {
                  Value x =
                      e.fmul(e.load(buf, d), e.loadF32(src, e.add(base, d)));
                  return {e.fadd(s[0], x)};
                })[0];
}

void GradKernelBody::axpy(Value acc, Value x, Value src, Value base,
                          int64_t n) {
  e.loop(c0, e.idx(n), c1, [&](Value d) {
    Value y = e.fmul(x, e.loadF32(src, e.add(base, d)));
    e.store(e.fadd(e.load(acc, d), y), acc, d);
  });
}

void GradKernelBody::storeRow(Value buf, Value dst, Value base, int64_t n) {
  Type elt = cast<MemRefType>(dst.getType()).getElementType();
  e.loop(c0, e.idx(n), c1, [&](Value d) {
    Value x = e.load(buf, d);
    if (!elt.isF32())
      x = arith::TruncFOp::create(b, elt, x);
    e.store(x, dst, e.add(base, d));
  });
}

Value GradKernelBody::lse2(Value h, Value i) {
  Value off = e.add(e.mul(e.add(e.mul(batch, a.hq), h), a.sq), i);
  return getLse2(e, e.load(a.lse, off));
}

std::pair<Value, Value> GradKernelBody::logit(Value rawDot, Value h, Value i,
                                              Value j) {
  Value s = e.fmul(rawDot, factor), th;
  if (spec.softcap) {
    th = e.tanh(s);
    s = e.fmul(th, getSoftcapFactor(e, spec, a));
  }
  if (a.bias) {
    Value off = getBiasOffset(e, spec, a, batch, h, i, j, c0, c1);
    s = e.fadd(s, e.fmul(e.loadF32(a.bias, off), e.f(llvm::numbers::log2e)));
  }
  return {s, th};
}

Value GradKernelBody::gradScore(Value p, Value dp, Value delta, Value th) {
  Value ds = e.fmul(e.fmul(p, e.fsub(dp, delta)), gradScale);
  if (th)
    ds = e.fmul(ds, e.fsub(e.f(1.0), e.fmul(th, th)));
  return ds;
}

void GradKernelBody::emitDQ() {
  Value i = setUp();
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  Value qRow = priv[0], doRow = priv[1], acc = priv[2];
  e.when(e.slt(i, a.sq), [&] {
    Value kvHead = e.div(head, e.div(a.hq, a.hkv));
    loadRow(a.q, rowOffset(a.hq, a.sq, head, i, d), d, qRow);
    loadRow(args.dO, rowOffset(a.hq, a.sq, head, i, dv), dv, doRow);
    clear(acc, d);
    // Delta = dO·O, kept for the dK/dV kernel.
    Value delta = dot(doRow, a.o, rowOffset(a.hq, a.sq, head, i, dv), dv);
    e.store(delta, args.delta,
            e.add(e.mul(e.add(e.mul(batch, a.hq), head), a.sq), i));
    Value l2 = lse2(head, i);
    Value pos = e.add(i, e.sub(a.sk, a.sq));
    auto [lo, hi] = buildAdmittedKeys(
        b, b.getLoc(), getMaskBand(b.getContext(), spec, a), pos, a.sk);
    e.loop(lo, e.smax(lo, hi), c1, [&](Value j) {
      Value kBase = rowOffset(a.hkv, a.sk, kvHead, j, d);
      auto [s, th] = logit(dot(qRow, a.k, kBase, d), head, i, j);
      Value p = e.exp2(e.fsub(s, l2));
      Value dp = dot(doRow, a.v, rowOffset(a.hkv, a.sk, kvHead, j, dv), dv);
      axpy(acc, gradScore(p, dp, delta, th), a.k, kBase, d);
    });
    storeRow(acc, args.dq, rowOffset(a.hq, a.sq, head, i, d), d);
  });
}

void GradKernelBody::emitDKDV() {
  // Here blockIdx.y is the KV head and the thread's index a key.
  Value j = setUp();
  Value g = head;
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  Value kRow = priv[0], vRow = priv[1], dkAcc = priv[2], dvAcc = priv[3];
  e.when(e.slt(j, a.sk), [&] {
    loadRow(a.k, rowOffset(a.hkv, a.sk, g, j, d), d, kRow);
    loadRow(a.v, rowOffset(a.hkv, a.sk, g, j, dv), dv, vRow);
    clear(dkAcc, d);
    clear(dvAcc, dv);
    // The rows whose band admits key j: positions p = i + Sk - Sq.
    Value off = e.sub(a.sk, a.sq);
    auto [posLo, posHi] = buildAdmittingPositions(
        b, b.getLoc(), getMaskBand(b.getContext(), spec, a), j, e.add(j, c1),
        off, e.add(a.sq, off));
    Value lo = e.sub(posLo, off), hi = e.sub(posHi, off);
    Value group = e.div(a.hq, a.hkv), h0 = e.mul(g, group);
    e.loop(h0, e.add(h0, group), c1, [&](Value h) {
      e.loop(lo, e.smax(lo, hi), c1, [&](Value i) {
        Value qBase = rowOffset(a.hq, a.sq, h, i, d);
        Value doBase = rowOffset(a.hq, a.sq, h, i, dv);
        auto [s, th] = logit(dot(kRow, a.q, qBase, d), h, i, j);
        Value p = e.exp2(e.fsub(s, lse2(h, i)));
        axpy(dvAcc, p, args.dO, doBase, dv);
        Value dp = dot(vRow, args.dO, doBase, dv);
        Value delta = e.load(
            args.delta, e.add(e.mul(e.add(e.mul(batch, a.hq), h), a.sq), i));
        axpy(dkAcc, gradScore(p, dp, delta, th), a.q, qBase, d);
      });
    });
    storeRow(dkAcc, args.dk, rowOffset(a.hkv, a.sk, g, j, d), d);
    storeRow(dvAcc, args.dv, rowOffset(a.hkv, a.sk, g, j, dv), dv);
  });
}

void GradKernelBody::emitDSinks() {
  Value bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value h = e.add(e.mul(bx, e.idx(kThreads)), tid);
  c0 = e.idx(0);
  c1 = e.idx(1);
  e.when(e.slt(h, a.hq), [&] {
    Value sink = e.loadF32(a.sinks, h);
    Value total = e.loop(
        c0, a.batch, c1, ValueRange{e.f(0.0)},
        [&](Value bi, ValueRange outer) -> SmallVector<Value> {
          Value base = e.mul(e.add(e.mul(bi, a.hq), h), a.sq);
          return {e.loop(c0, a.sq, c1, ValueRange{outer[0]},
                         [&](Value i, ValueRange acc) -> SmallVector<Value> {
                           Value lse = e.load(a.lse, e.add(base, i));
                           Value ps = math::ExpOp::create(b, e.fsub(sink, lse));
                           ps = e.sel(e.feq(lse, e.f(-INFINITY)), e.f(0.0), ps);
                           Value delta = e.load(args.delta, e.add(base, i));
                           return {e.fsub(acc[0], e.fmul(ps, delta))};
                         })[0]};
        })[0];
    Type elt = cast<MemRefType>(args.dsinks.getType()).getElementType();
    if (!elt.isF32())
      total = arith::TruncFOp::create(b, elt, total);
    e.store(total, args.dsinks, h);
  });
}

/// "attn_…_bwd_<kernel>": the forward's name for the variant's values (with
/// "_mma" or "_wgmma" for a spec that pins the backward's kernel), and
/// "_bwd_nd_" for a non-deterministic spec, so that its kernels (the fused
/// set, or the deterministic bodies where that does not take the variant)
/// sit beside the deterministic spec's in one bundle directory.
std::string getGradKernelName(const AttentionGradSpec &grad, StringRef kernel) {
  AttentionSpec named = grad.forward;
  named.lse = false;
  if (named.kernel != AttentionKernelKind::Mma &&
      named.kernel != AttentionKernelKind::Wgmma)
    named.kernel = AttentionKernelKind::Baseline;
  named.blockQ = named.blockKV = 0;
  named.prefer.clear();
  named.persistent = false;
  return getAttentionKernelName(named) +
         (grad.deterministic ? "_bwd_" : "_bwd_nd_") +
         (grad.dqAtomics ? "atomic_" : "") + kernel.str();
}

} // namespace

Value mlir::attn::detail::getLse2(Emitter &e, Value lse) {
  return e.sel(e.feq(lse, e.f(-INFINITY)), e.f(0.0),
               e.fmul(lse, e.f(llvm::numbers::log2e)));
}

Value mlir::attn::detail::buildRowDelta(Emitter &e, Type elt, int64_t dv,
                                        Value half,
                                        function_ref<Value(Value)> loadO,
                                        function_ref<Value(Value)> loadDO) {
  Value sum = e.f(0.0);
  for (int64_t m = 0; m < dv / 16; ++m) {
    Value col = e.add(e.mul(half, e.idx(dv / 2)), e.idx(8 * m));
    Value o = loadO(col);
    Value d = loadDO(col);
    for (int64_t x = 0; x < 8; ++x) {
      auto ext = [&](Value v) -> Value {
        Value elem = vector::ExtractOp::create(e.b, v, ArrayRef<int64_t>{x});
        return arith::ExtFOp::create(e.b, e.b.getF32Type(), elem);
      };
      sum = e.fadd(sum, e.fmul(ext(d), ext(o)));
    }
  }
  return e.fadd(sum, e.shuffleXor(sum, 1));
}

GradBlockIds mlir::attn::detail::getGradBlockIds(
    Emitter &e, const AttentionSpec &spec, const AttentionKernelArgs &args,
    bool heavyLast, Value streamedRows, int64_t bytesPerRow) {
  auto id = [&](gpu::Dimension d) {
    return gpu::BlockIdOp::create(e.b, d).getResult();
  };
  GradBlockIds grid{id(gpu::Dimension::x), id(gpu::Dimension::y),
                    id(gpu::Dimension::z)};
  if (spec.mask.kind != MaskKind::Causal)
    return grid;
  // In 32 bits, as the hardware's block indices are (a grid of fewer than
  // 2^32 blocks): a 64-bit division is a long subroutine that every block
  // would run before its warps specialize.
  Type i32 = e.b.getI32Type();
  auto narrow = [&](Value v) {
    return arith::IndexCastUIOp::create(e.b, i32, v).getResult();
  };
  auto dim = [&](gpu::Dimension d) {
    return narrow(gpu::GridDimOp::create(e.b, d));
  };
  auto widen = [&](Value v) {
    return arith::IndexCastUIOp::create(e.b, e.b.getIndexType(), v).getResult();
  };
  auto c32 = [&](int64_t v) {
    return arith::ConstantIntOp::create(e.b, i32, v).getResult();
  };
  auto shr = [&](Value v, int64_t n) {
    return arith::ShRUIOp::create(e.b, v, c32(n)).getResult();
  };
  auto umax = [&](Value x, Value y) {
    return arith::MaxUIOp::create(e.b, x, y).getResult();
  };
  auto umin = [&](Value x, Value y) {
    return arith::MinUIOp::create(e.b, x, y).getResult();
  };
  // The Emitter's integer ops take any integer type: these are i32.
  Value blocks = dim(gpu::Dimension::x), ys = dim(gpu::Dimension::y);
  Value pairs = e.mul(ys, dim(gpu::Dimension::z));
  Value linear =
      e.add(narrow(grid.x),
            e.mul(blocks, e.add(narrow(grid.y), e.mul(ys, narrow(grid.z)))));

  // The section's size in pairs: every pair where the query heads of a group
  // share their K/V (Hq > Hkv at run time), else as many pairs as fit
  // kGradL2SectionBytes of streamed rows, rounded down to a power of two.
  // A run-time size: the rows per pair are a launch's.
  Value fit =
      e.div(c32(std::max<int64_t>(kGradL2SectionBytes / bytesPerRow, 1)),
            umax(narrow(streamedRows), c32(1)));
  for (int64_t n : {1, 2, 4, 8, 16})
    fit = arith::OrIOp::create(e.b, fit, shr(fit, n));
  Value fitPow2 = umax(e.sub(fit, shr(fit, 1)), c32(1));
  Value shared =
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt, args.hq, args.hkv);
  Value section = e.sel(shared, pairs, umin(fitPow2, pairs));

  // Sections are whole but the last: section L / (X s) starts at pair p0,
  // holds n = min(s, pairs - p0) pairs, and deals its X n blocks by level.
  Value first = e.mul(e.div(linear, e.mul(blocks, section)), section);
  Value inSection = umin(section, e.sub(pairs, first));
  Value rest = e.sub(linear, e.mul(first, blocks));
  Value level = widen(e.div(rest, inSection));
  Value pair = e.add(first, e.rem(rest, inSection));
  return {heavyLast ? e.sub(e.sub(widen(blocks), level), e.idx(1)) : level,
          widen(e.rem(pair, ys)), widen(e.div(pair, ys))};
}

Value mlir::attn::detail::getGradScale(Emitter &e, const AttentionSpec &spec,
                                       const AttentionKernelArgs &args) {
  Value factor = getScoreFactor(e, spec, args);
  if (spec.softcap)
    return e.fmul(factor, e.fdiv(getSoftcapFactor(e, spec, args),
                                 e.f(llvm::numbers::log2e)));
  return e.fdiv(factor, e.f(llvm::numbers::log2e));
}

namespace {
/// One kernel of the backward, as buildAttentionGradKernels builds it.
struct GradKernelInfo {
  GradKernel which;
  StringRef name;
  llvm::json::Array grid;
  int64_t threads = kThreads;
  SmallVector<Type> privates;
  /// Dynamic shared memory: the tensor-core bodies' and the convert
  /// step's; 0 for the others.
  int64_t sharedMemory = 0;
  /// "mma.sync" or "wgmma"; empty for the thread-per-row bodies.
  StringRef body;
  /// The manifest's "tile" (tensor-core bodies).
  llvm::json::Object tile;

  /// Whether the kernel (dq, dkdv or dkdv_dq) passes the tiles' statistics
  /// in `row_stats`: the wgmma bodies do (dq writes it beside Delta, the
  /// dK/dV producer copies a tile's with its Q and dO), as the fused set's
  /// prep (which has a signature of its own) does.
  bool passesRowStats() const { return body == "wgmma"; }
};

/// The backward's kernels in launch order: dq and dkdv on the wgmma bodies
/// where `wgmma` is set, else on the mma.sync bodies where `mma` holds, else
/// thread-per-row; dsinks with sinks.
SmallVector<GradKernelInfo>
getGradKernels(MLIRContext *ctx, const AttentionSpec &spec,
               const FailureOr<GradMmaTiling> &mma,
               const std::optional<GradWgmmaTiling> &wgmma) {
  auto privateSpace = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getPrivateAddressSpace());
  auto buffer = [&](int64_t n) -> Type {
    return MemRefType::get({n}, Float32Type::get(ctx), AffineMap(),
                           privateSpace);
  };
  auto tile = [](StringRef body, int64_t q, int64_t kv, int64_t stages) {
    return llvm::json::Object{
        {"body", body}, {"block_q", q}, {"block_kv", kv}, {"stages", stages}};
  };
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  SmallVector<GradKernelInfo> kernels;
  if (wgmma && wgmma->fuseDQ) {
    // The fused set: prep, dK/dV with dQ's adds, convert.
    llvm::json::Array tiles{grid::ceilDiv("Sq", kDQAccumRows), "Hq", "B"};
    kernels.push_back({GradKernel::Prep,
                       "prep",
                       llvm::json::Array(tiles),
                       kThreads,
                       {},
                       0,
                       "",
                       {}});
    kernels.push_back(
        {GradKernel::DKDVFused,
         "dkdv_dq",
         llvm::json::Array{grid::ceilDiv("Sk", wgmma->keys), "Hkv", "B"},
         wgmma->threads(),
         {},
         wgmma->sharedMemoryBytes(d, dv),
         "wgmma",
         tile("wgmma", wgmma->rows, wgmma->keys, wgmma->stages)});
    kernels.push_back({GradKernel::DQConvert,
                       "dq_convert",
                       std::move(tiles),
                       kThreads,
                       {},
                       getDQConvertSharedMemoryBytes(d),
                       "",
                       {}});
  } else if (wgmma) {
    kernels.push_back(
        {GradKernel::DQ,
         "dq",
         llvm::json::Array{grid::ceilDiv("Sq", wgmma->dqRows), "Hq", "B"},
         wgmma->threads(),
         {},
         wgmma->dqSharedMemoryBytes(d, dv),
         "wgmma",
         tile("wgmma", wgmma->dqRows, wgmma->dqKeys, wgmma->dqStages)});
    kernels.push_back(
        {GradKernel::DKDV,
         "dkdv",
         llvm::json::Array{grid::ceilDiv("Sk", wgmma->keys), "Hkv",
                           wgmma->splitDKDV ? grid::mul({"B", 2})
                                            : llvm::json::Value("B")},
         wgmma->threads(),
         {},
         wgmma->sharedMemoryBytes(d, dv),
         "wgmma",
         tile("wgmma", wgmma->rows, wgmma->keys, wgmma->stages)});
  } else if (succeeded(mma)) {
    kernels.push_back(
        {GradKernel::DQ,
         "dq",
         llvm::json::Array{grid::ceilDiv("Sq", mma->rows), "Hq", "B"},
         mma->threads(),
         {},
         mma->dqSharedMemoryBytes(d, dv),
         "mma.sync",
         tile("mma.sync", mma->rows, mma->keys, mma->stages)});
    kernels.push_back(
        {GradKernel::DKDV,
         "dkdv",
         llvm::json::Array{grid::ceilDiv("Sk", mma->keys), "Hkv", "B"},
         mma->threads(),
         {},
         mma->dkdvSharedMemoryBytes(d, dv),
         "mma.sync",
         tile("mma.sync", mma->rows, mma->keys, mma->stages)});
  } else {
    kernels.push_back(
        {GradKernel::DQ,
         "dq",
         llvm::json::Array{grid::ceilDiv("Sq", kThreads), "Hq", "B"},
         kThreads,
         {buffer(d), buffer(dv), buffer(d)},
         0,
         "",
         {}});
    kernels.push_back(
        {GradKernel::DKDV,
         "dkdv",
         llvm::json::Array{grid::ceilDiv("Sk", kThreads), "Hkv", "B"},
         kThreads,
         {buffer(d), buffer(dv), buffer(d), buffer(dv)},
         0,
         "",
         {}});
  }
  if (spec.sinks)
    kernels.push_back({GradKernel::DSinks,
                       "dsinks",
                       llvm::json::Array{grid::ceilDiv("Hq", kThreads), 1, 1},
                       kThreads,
                       {},
                       0,
                       "",
                       {}});
  return kernels;
}

/// Emits kernel `k`'s body into `func` (the builder at its entry).
void emitGradBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                  const AttentionSpec &spec, const GradKernelInfo &k,
                  const FailureOr<GradMmaTiling> &mma,
                  const std::optional<GradWgmmaTiling> &wgmma,
                  ArrayRef<Type> tmaTypes) {
  GradArgs args =
      getGradArgs(builder, loc, func, spec, k.which, k.passesRowStats());
  if (k.body == "wgmma") {
    SmallVector<Value> descriptors;
    Block &body = func.getBody().front();
    for (auto [arg, type] : llvm::zip_equal(
             body.getArguments().take_back(tmaTypes.size()), tmaTypes))
      descriptors.push_back(
          UnrealizedConversionCastOp::create(builder, loc, type, arg)
              .getResult(0));
    if (k.which == GradKernel::DQ)
      buildGradWgmmaDQBody(builder, loc, func, spec, args, descriptors, *wgmma);
    else
      buildGradWgmmaDKDVBody(builder, loc, func, spec, args, descriptors,
                             *wgmma);
  } else if (k.body == "mma.sync") {
    if (k.which == GradKernel::DQ)
      buildGradMmaDQBody(builder, loc, func, spec, args, *mma);
    else
      buildGradMmaDKDVBody(builder, loc, func, spec, args, *mma);
  } else if (k.which == GradKernel::Prep) {
    buildGradDQPrepBody(builder, loc, spec, args);
  } else if (k.which == GradKernel::DQConvert) {
    buildGradDQConvertBody(builder, loc, func, spec, args);
  } else {
    GradKernelBody body(builder, loc, func, spec, args);
    switch (k.which) {
    case GradKernel::DQ:
      body.emitDQ();
      break;
    case GradKernel::DKDV:
      body.emitDKDV();
      break;
    case GradKernel::DSinks:
      body.emitDSinks();
      break;
    case GradKernel::Prep:
    case GradKernel::DKDVFused:
    case GradKernel::DQConvert:
      llvm_unreachable("the fused set's kernels have bodies of their own");
    }
  }
  builder.setInsertionPointToEnd(&func.getBody().front());
  gpu::ReturnOp::create(builder, loc);
}

/// Which bodies take dq and dkdv: the wgmma kernels where `wgmma` is set,
/// else the mma.sync ones where `mma` holds, else the thread-per-row ones;
/// the sink gradient is the same for all. `auto` on sm_90a puts dq and dkdv
/// on the wgmma bodies where both tilings take the variant (measured
/// 1.8-1.9x the mma.sync backward at d128 8k-16k on an H200,
/// docs/gpu-results.md). A pinned
/// kernel is never replaced silently: a chip or variant it cannot take is an
/// error. Where neither tensor-core backward takes the variant (and the
/// kernel option is not "baseline"), `fallback` gets why before the
/// thread-per-row bodies are chosen.
LogicalResult selectGradBodies(const AttentionGradSpec &grad,
                               const KernelOptions &options,
                               EmitErrorFn emitError, GradFallbackFn fallback,
                               FailureOr<GradMmaTiling> &mma,
                               std::optional<GradWgmmaTiling> &wgmma) {
  const AttentionSpec &spec = grad.forward;
  std::string why;
  switch (spec.kernel) {
  case AttentionKernelKind::Wgmma: {
    if (options.chip != "sm_90a")
      return emitError() << "the wgmma backward needs chip sm_90a, not "
                         << options.chip;
    FailureOr<GradWgmmaTiling> w = getGradWgmmaTiling(spec, &why, &grad);
    if (failed(w))
      return emitError() << why;
    wgmma = *w;
    return success();
  }
  case AttentionKernelKind::Mma:
    mma = getGradMmaTiling(spec, &why);
    if (failed(mma))
      return emitError() << why;
    return success();
  default:
    break;
  }
  if (options.kernel == "baseline")
    return success();
  if (options.kernel == "auto" && options.chip == "sm_90a")
    if (FailureOr<GradWgmmaTiling> w = getGradWgmmaTiling(spec, nullptr, &grad);
        succeeded(w)) {
      wgmma = *w;
      return success();
    }
  mma = getGradMmaTiling(spec, &why);
  return succeeded(mma) ? success() : fallback(why);
}
} // namespace

LogicalResult mlir::attn::detail::buildAttentionGradKernels(
    OpBuilder &builder, ModuleOp module, const AttentionGradSpec &grad,
    const KernelOptions &options, Location loc, EmitErrorFn emitError,
    GradFallbackFn fallback, Manifests &manifests) {
  const AttentionSpec &spec = grad.forward;
  if (ShapedType::isDynamic(spec.headDim) ||
      ShapedType::isDynamic(spec.valueHeadDim) || spec.headDim <= 0 ||
      spec.valueHeadDim <= 0)
    return emitError() << "GPU kernels need static head dims";
  if (!spec.scale && !spec.runtimeValues)
    return emitError() << "GPU kernels need a static head dim or a scale";
  // The rows and accumulators live in private memory: bound them.
  if (spec.headDim > 512 || spec.valueHeadDim > 512)
    return emitError() << "the backward kernels take head dims up to 512";
  MLIRContext *ctx = builder.getContext();
  FailureOr<GradMmaTiling> mma = failure();
  std::optional<GradWgmmaTiling> wgmma;
  if (failed(selectGradBodies(grad, options, emitError, fallback, mma, wgmma)))
    return failure();
  for (auto [step, k] :
       llvm::enumerate(getGradKernels(ctx, spec, mma, wgmma))) {
    std::string name = getGradKernelName(
        grad, k.body.empty()
                  ? k.name
                  : (k.name + (k.body == "wgmma" ? "_wgmma" : "_mma")).str());
    KernelSignature sig =
        buildGradSignature(ctx, spec, k.which, k.passesRowStats());
    SmallVector<Type> tmaTypes;
    if (k.body == "wgmma")
      tmaTypes =
          appendTensorMaps(ctx, sig, spec, *wgmma, k.which, options.tensorMaps);
    llvm::json::Object manifest{{"entry", name},
                                {"params", std::move(sig.params)},
                                {"grid", std::move(k.grid)},
                                {"block", llvm::json::Array{k.threads, 1, 1}},
                                {"kernel", ("attention_grad." + k.name).str()},
                                {"step", static_cast<int64_t>(step)},
                                {"dynamic_shared_memory", k.sharedMemory},
                                {"variant", toJSON(KernelSpec(grad))}};
    if (!k.body.empty())
      manifest["tile"] = std::move(k.tile);
    addManifest(builder, manifests, name, std::move(manifest));
    if (auto gpuModule = module.lookupSymbol<gpu::GPUModuleOp>(name))
      if (gpuModule.lookupSymbol<gpu::GPUFuncOp>(name))
        continue;
    gpu::GPUFuncOp func = createKernel(builder, module, loc, name, sig.types,
                                       k.threads, k.privates);
    // One block an SM (.minnctapersm 1): the 168 registers a thread that
    // setmaxnreg deals out between the warpgroups.
    if (k.body == "wgmma")
      func->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                    builder.getI32IntegerAttr(1));
    OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToStart(&func.getBody().front());
    emitGradBody(builder, loc, func, spec, k, mma, wgmma, tmaTypes);
  }
  return success();
}
