//===- KernelCommon.h - pieces shared by the GPU kernels --------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: what the mma.sync and the wgmma
// kernels build the same way.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELCOMMON_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELCOMMON_H

#include "attn/Conversion/AttnToGPU.h"
#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/Support/JSON.h"

#include <array>
#include <optional>

namespace mlir {
namespace attn {
struct AttentionSpec;
namespace detail {
struct AttentionKernelArgs;

/// The kernel's dynamic shared memory as `memref<0xi8, workgroup>`: a public,
/// 1024-byte aligned, zero-size array in the kernel's gpu.module (created on
/// first use), which NVPTX emits as `.extern .shared .align 1024`.
/// (gpu.dynamic_shared_memory lowers to a 1-byte static array in LLVM 22.)
Value getDynamicSharedMemory(OpBuilder &b, Location loc, gpu::GPUFuncOp func);

/// A manifest entry for a `memref<?xT>` kernel parameter (five launch
/// arguments) holding a tensor of the given role and symbolic shape.
llvm::json::Object memrefParam(StringRef name, StringRef role, Type t,
                               llvm::json::Array shape);

/// A manifest entry for an index kernel parameter set by the host.
llvm::json::Object sizeParam(StringRef name);

/// A manifest entry for a value the host passes (scale, softcap: f32;
/// window extents: i64).
llvm::json::Object valueParam(StringRef name, StringRef dtype);

/// Failure, with `msg` in `why` where it is non-null: how the eligibility
/// checks say why a kernel cannot run a spec.
inline LogicalResult failWith(std::string *why, const Twine &msg) {
  if (why)
    *why = msg.str();
  return failure();
}

/// `memref<?xT>`: how the kernels take their tensors.
MemRefType flat(Type t);

/// The expressions of a manifest's launch grid (docs/kernel-spec.md): a
/// size parameter's name or an integer, and these over such expressions.
namespace grid {
inline llvm::json::Value ceilDiv(llvm::json::Value a, llvm::json::Value b) {
  return llvm::json::Object{
      {"ceil_div", llvm::json::Array{std::move(a), std::move(b)}}};
}
inline llvm::json::Value div(llvm::json::Value a, llvm::json::Value b) {
  return llvm::json::Object{
      {"div", llvm::json::Array{std::move(a), std::move(b)}}};
}
inline llvm::json::Value mul(std::initializer_list<llvm::json::Value> factors) {
  return llvm::json::Object{{"mul", llvm::json::Array(factors)}};
}
inline llvm::json::Value
min(std::initializer_list<llvm::json::Value> operands) {
  return llvm::json::Object{{"min", llvm::json::Array(operands)}};
}
} // namespace grid

/// A kernel's parameters, built together: the argument types of its
/// gpu.func and, in the same order, their manifest entries.
struct KernelSignature {
  SmallVector<Type> types;
  llvm::json::Array params;

  /// A `memref<?xT>` tensor of the given role and symbolic shape.
  void tensor(StringRef name, StringRef role, Type t, llvm::json::Array shape) {
    params.push_back(memrefParam(name, role, t, std::move(shape)));
    types.push_back(flat(t));
  }
  /// Q, K and V in `spec`'s layout, then the bias where it has one: the
  /// inputs every dense attention kernel (forward and backward) takes first.
  void attentionInputs(MLIRContext *ctx, const AttentionSpec &spec);
  /// Index sizes set by the host.
  void sizes(MLIRContext *ctx, ArrayRef<StringRef> names) {
    for (StringRef name : names) {
      params.push_back(sizeParam(name));
      types.push_back(IndexType::get(ctx));
    }
  }
  /// The values a spec leaves to run time (KernelSpec.h: runtimeValues):
  /// "scale" and, with a softcap, "softcap" (f32), then with a window
  /// "window_left" and "window_right" (index, i64 in the manifest).
  void runtimeValues(MLIRContext *ctx, bool softcap, bool window);
  /// The TMA descriptor (CUtensorMap, built by the host) of `tensor`: a 4-D
  /// map over the layout's dims, boxes of `columns` elements of `elt` (128
  /// bytes, 128-byte swizzle) by `rows`, zero fill out of bounds. Passed as
  /// a plain pointer (the GPU-to-NVVM signature conversion has no rule for
  /// the nvgpu type); returns the descriptor type the kernel casts it to.
  Type tensorMap(MLIRContext *ctx, StringRef tensor, Type elt, int64_t rows,
                 bool bshd, TensorMapPassing passing) {
    return tensorMap(ctx, tensor, elt, 64, rows, bshd, passing);
  }
  Type tensorMap(MLIRContext *ctx, StringRef tensor, Type elt, int64_t columns,
                 int64_t rows, bool bshd, TensorMapPassing passing);
};

/// What a body uses of the values a kernel takes at run time
/// (KernelSignature::runtimeValues), computed once at the kernel's entry:
/// the exp2-domain factors scale·log2 e (or scale / softcap) and
/// softcap·log2 e, and the window extents clamped to [0, 2^40] (any
/// argument then admits the keys its clamped value does, and the index
/// arithmetic cannot overflow). Null for what the kernel does not take.
struct RuntimeValues {
  Value scoreFactor, softcapFactor, windowLeft, windowRight;
};
/// `args`: the kernel's value arguments, in signature order.
RuntimeValues materializeRuntimeValues(OpBuilder &b, Location loc,
                                       ValueRange args, bool softcap,
                                       bool window);

/// A kernel function with `argTypes`, a fixed block size and
/// `privateTypes` private attributions, in its own gpu.module named like it
/// (one bundle per kernel), created if needed.
gpu::GPUFuncOp createKernel(OpBuilder &builder, ModuleOp module, Location loc,
                            StringRef name, ArrayRef<Type> argTypes,
                            int64_t threads, TypeRange privateTypes = {});

/// Adds `manifest` as kernel `name`'s entry of `manifests` (the module's
/// attn.kernels), unless it has one.
void addManifest(OpBuilder &builder, ManifestTable &manifests, StringRef name,
                 llvm::json::Object manifest);

/// The MLIR spelling of a type (`f16`, `bf16`, `i32`): kernel names and
/// manifests.
std::string typeName(Type t);

/// The bits of `x` as an f32, in 8 hex digits (kernel names of scales).
std::string hexBits(double x);

/// D = A·B + C for one m16n8k16 tile: A `vector<4x2xT>`, B `vector<2x2xT>`,
/// C and D `vector<2x2xf32>`, T f16 or bf16. f16 goes through
/// nvgpu.mma.sync; bf16 (which nvgpu.mma.sync in LLVM 22 rejects) through
/// nvvm.mma.sync, each row of A and B packed into one 32-bit register.
Value buildMmaSync(OpBuilder &b, Location loc, Value a, Value bFrag, Value c);

/// D = A·B + C for one m16n8k8 tile in tf32 with f32 accumulators: `a` the
/// thread's four A elements (rows g, g + 8 at column t, then at t + 4; g =
/// lane / 4, t = lane mod 4), `bFrag` its two B elements (column g, rows t
/// and t + 4), `c` its four accumulators (row g, columns 2t and 2t + 1, then
/// row g + 8), all f32 scalars; returns D's four. The hardware reads the
/// operands' top 19 bits: round them first (roundToTf32) for
/// round-to-nearest.
SmallVector<Value, 4> buildMmaTf32(OpBuilder &b, Location loc, ValueRange a,
                                   ValueRange bFrag, ValueRange c);

/// `x` (f32 or a vector of f32) rounded to the nearest tf32 value (ties away
/// from zero, as cvt.rna.tf32.f32): its low 13 mantissa bits cleared after
/// adding half of their range.
Value roundToTf32(OpBuilder &b, Location loc, Value x);

/// The two adjacent B fragments (`vector<2x2xT>`: rows 0-1 and 2-3) of an
/// ldmatrix x4 result (`vector<4x2xT>`).
std::pair<Value, Value> splitLdMatrixPair(OpBuilder &b, Location loc, Value v);

/// Combines `terms` (at least one) pairwise, as a balanced tree: the row
/// max and sum of a softmax step over a thread's fragment in log2(n)
/// dependent steps instead of a chain of n.
Value treeReduce(ArrayRef<Value> terms,
                 function_ref<Value(Value, Value)> combine);

/// Turns one Q·Kᵀ accumulator element into its logit in the exp2 domain:
/// scale (with log2 e folded in), softcap, bias and, for blocks that need it,
/// the test of the key range and the mask's band (-inf outside).
class ScoreTransform {
public:
  /// `raw`: leave the scale out (the caller folds it into the exponent; only
  /// valid without softcap and bias). `c0`, `c1`: index constants 0 and 1.
  ScoreTransform(const AttentionSpec &spec, const AttentionKernelArgs &args,
                 Value batchIndex, Value head, Value c0, Value c1, bool raw);

  /// The logit of accumulator element `s` of query row `row`; `makeKey`
  /// builds the element's key index (called once, after the scaling).
  /// Under softcap, `tanh` (where non-null) receives the tanh of the scaled
  /// score (the backward's derivative needs it).
  Value apply(OpBuilder &b, Location loc, Value s, Value row,
              function_ref<Value()> makeKey, bool masked,
              Value *tanh = nullptr) const;

private:
  const AttentionKernelArgs &args;
  MaskBand band;
  std::optional<double> softcap;
  /// Which of the bias' [B, Hq, Sq, Sk] dims are 1.
  std::array<bool, 4> biasBroadcast;
  /// The compiled-in factor (specs without runtime values).
  double factor;
  bool raw;
  Value batchIndex, head, c0, c1;
};

/// Arithmetic on index and f32 values, and the small control-flow helpers
/// the kernel builders share (an ImplicitLocOpBuilder at the insertion
/// point).
struct Emitter {
  ImplicitLocOpBuilder &b;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value f(double v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value div(Value x, Value y) { return arith::DivUIOp::create(b, x, y); }
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, x, y); }
  /// Signed min and max (sizes that may go negative).
  Value smin(Value x, Value y) { return arith::MinSIOp::create(b, x, y); }
  Value smax(Value x, Value y) { return arith::MaxSIOp::create(b, x, y); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, x, y);
  }
  Value slt(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
  }
  Value sle(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::sle, x, y);
  }
  Value le(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ule, x, y);
  }
  Value eq(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, x, y);
  }
  Value land(Value x, Value y) { return arith::AndIOp::create(b, x, y); }
  Value xori(Value x, Value y) { return arith::XOrIOp::create(b, x, y); }
  /// Signed ceil-div (sizes that may go negative, such as a key range's
  /// ends).
  Value ceilDiv(Value x, Value y) {
    return arith::CeilDivSIOp::create(b, x, y);
  }
  Value sel(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, c, x, y);
  }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
  Value fdiv(Value x, Value y) { return arith::DivFOp::create(b, x, y); }
  /// The larger of `x` and `y`, NaN if either is (arith.maximumf).
  Value fmax(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }
  Value feq(Value x, Value y) {
    return arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, x, y);
  }
  Value fma(Value x, Value y, Value z) {
    return math::FmaOp::create(b, x, y, z);
  }
  Value exp2(Value x) { return math::Exp2Op::create(b, x); }
  Value log2(Value x) { return math::Log2Op::create(b, x); }
  Value tanh(Value x) { return math::TanhOp::create(b, x); }
  Value load(Value m, ValueRange i) { return memref::LoadOp::create(b, m, i); }
  void store(Value v, Value m, ValueRange i) {
    memref::StoreOp::create(b, v, m, i);
  }
  /// A load from global memory as f32.
  Value loadF32(Value m, Value i) {
    Value v = memref::LoadOp::create(b, m, i);
    return v.getType().isF32() ? v
                               : arith::ExtFOp::create(b, b.getF32Type(), v);
  }
  /// `m[i]` as f32 where `cond`, else 0 (nothing read).
  Value loadF32If(Value cond, Value m, Value i) {
    auto ifOp = scf::IfOp::create(b, TypeRange{b.getF32Type()}, cond,
                                  /*withElse=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    scf::YieldOp::create(b, loadF32(m, i));
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    scf::YieldOp::create(b, f(0.0));
    return ifOp.getResult(0);
  }
  /// The values of `fn()` where `cond` holds (always, for a null `cond`),
  /// else `orElse`.
  SmallVector<Value> ifElse(Value cond, ValueRange orElse,
                            function_ref<SmallVector<Value>()> fn) {
    if (!cond)
      return fn();
    auto ifOp = scf::IfOp::create(b, orElse.getTypes(), cond,
                                  /*withElse=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    scf::YieldOp::create(b, fn());
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    scf::YieldOp::create(b, orElse);
    return SmallVector<Value>(ifOp.getResults());
  }
  /// Runs `body` where `cond` holds.
  void when(Value cond, function_ref<void()> body) {
    auto ifOp = scf::IfOp::create(b, cond, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    body();
  }
  /// for (i = lo; i < hi; i += step) body(i), carrying `init`.
  ValueRange loop(Value lo, Value hi, Value step, ValueRange init,
                  function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto forOp = scf::ForOp::create(b, lo, hi, step, init);
    OpBuilder::InsertionGuard guard(b);
    // Without iteration values the body comes with its yield.
    Block *block = forOp.getBody();
    if (!block->empty())
      block->back().erase();
    b.setInsertionPointToEnd(block);
    scf::YieldOp::create(
        b, body(forOp.getInductionVar(), forOp.getRegionIterArgs()));
    return forOp.getResults();
  }
  void loop(Value lo, Value hi, Value step, function_ref<void(Value)> body) {
    loop(lo, hi, step, ValueRange{}, [&](Value i, ValueRange) {
      body(i);
      return SmallVector<Value>{};
    });
  }
  Value shuffleXor(Value v, int32_t offset) {
    return gpu::ShuffleOp::create(b, v, offset, 32, gpu::ShuffleMode::XOR)
        .getShuffleResult();
  }
  /// The sum of `v` over `lanes` lanes (a power of two) `stride` lanes
  /// apart: a group of consecutive lanes by default.
  Value laneSum(Value v, int64_t lanes, int32_t stride = 1) {
    for (int32_t o = stride; o < stride * lanes; o *= 2)
      v = fadd(v, shuffleXor(v, o));
    return v;
  }
  /// The max of `v` over `lanes` consecutive lanes (a power of two).
  Value laneMax(Value v, int64_t lanes) {
    for (int32_t o = 1; o < lanes; o *= 2)
      v = fmax(v, shuffleXor(v, o));
    return v;
  }
  void barrier() { gpu::BarrierOp::create(b); }
};

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELCOMMON_H
