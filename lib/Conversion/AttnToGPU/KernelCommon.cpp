//===- KernelCommon.cpp - pieces shared by the tensor-core kernels --------===//

#include "KernelCommon.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr double kLog2e = 1.4426950408889634;

Value mlir::attn::detail::getDynamicSharedMemory(OpBuilder &b, Location loc,
                                                 gpu::GPUFuncOp func) {
  MLIRContext *ctx = b.getContext();
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  auto bytesType = MemRefType::get({0}, b.getI8Type(), AffineMap(), workgroup);
  auto module = func->getParentOfType<gpu::GPUModuleOp>();
  StringRef name = "attn_dynamic_shared_memory";
  if (!module.lookupSymbol(name)) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    memref::GlobalOp::create(b, loc, name, b.getStringAttr("public"),
                             bytesType, Attribute(), /*constant=*/false,
                             b.getI64IntegerAttr(1024));
  }
  return memref::GetGlobalOp::create(b, loc, bytesType, name);
}

Value mlir::attn::detail::treeReduce(ArrayRef<Value> terms,
                                     function_ref<Value(Value, Value)> combine) {
  assert(!terms.empty() && "nothing to reduce");
  SmallVector<Value> level(terms.begin(), terms.end());
  while (level.size() > 1) {
    SmallVector<Value> next;
    for (size_t k = 0; k + 1 < level.size(); k += 2)
      next.push_back(combine(level[k], level[k + 1]));
    if (level.size() % 2)
      next.push_back(level.back());
    level = std::move(next);
  }
  return level.front();
}

ScoreTransform::ScoreTransform(AttentionOp op, const MmaKernelArgs &args,
                               Value batchIndex, Value head, Value c0,
                               Value c1, bool raw)
    : args(args), mask(op.getMaskOrNone()), raw(raw), batchIndex(batchIndex),
      head(head), c0(c0), c1(c1) {
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  double scale = *op.getEffectiveScale();
  factor = scale * (softcap ? 1.0 / *softcap : kLog2e);
}

Value ScoreTransform::apply(OpBuilder &b, Location loc, Value v, Value row,
                            function_ref<Value()> makeKey, bool masked) const {
  auto cf = [&](double x) -> Value {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(x));
  };
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, Value y) -> Value {
    return arith::MulIOp::create(b, loc, x, y);
  };
  auto slt = [&](Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, x, y);
  };
  Type f32 = b.getF32Type();
  if (!raw)
    v = arith::MulFOp::create(b, loc, v, cf(factor));
  if (softcap)
    v = arith::MulFOp::create(b, loc, math::TanhOp::create(b, loc, v),
                              cf(*softcap * kLog2e));
  Value key = makeKey();
  Value sq = args.sq, sk = args.sk;
  if (args.bias) {
    // Offset = rowOffset + key, with the row part (one per query row, shared
    // by all of a row's elements after CSE) and the key kept apart so that
    // the elements of a fragment differ by constants: a full Horner chain
    // per element cost ~0.5 s of LLVM's straight-line strength reduction.
    // Rows past Sq (the last query block) and, in masked blocks, keys past
    // Sk read the last valid element; their logits are discarded.
    auto clampTo = [&](Value x, Value size) -> Value {
      return arith::MinSIOp::create(b, loc, x,
                                    arith::SubIOp::create(b, loc, size, c1));
    };
    Value sizes[3] = {args.batch, args.hq, sq};
    Value coords[3] = {batchIndex, head, clampTo(row, sq)};
    Value rowOffset = c0;
    for (unsigned d = 0; d < 3; ++d)
      rowOffset = add(mul(rowOffset, args.biasBroadcast[d] ? c1 : sizes[d]),
                      args.biasBroadcast[d] ? c0 : coords[d]);
    Value boff = mul(rowOffset, args.biasBroadcast[3] ? c1 : sk);
    if (!args.biasBroadcast[3])
      boff = add(boff, masked ? clampTo(key, sk) : key);
    Value bv = memref::LoadOp::create(b, loc, args.bias, boff);
    if (bv.getType() != f32)
      bv = arith::ExtFOp::create(b, loc, f32, bv);
    v = arith::AddFOp::create(b, loc, v,
                              arith::MulFOp::create(b, loc, bv, cf(kLog2e)));
  }
  if (masked) {
    Value ok = slt(key, sk);
    Value pos = add(row, arith::SubIOp::create(b, loc, sk, sq));
    if (Value inBand = buildAdmitsKey(b, loc, mask, pos, key))
      ok = arith::AndIOp::create(b, loc, ok, inBand);
    v = arith::SelectOp::create(b, loc, ok, v, cf(-INFINITY));
  }
  return v;
}
