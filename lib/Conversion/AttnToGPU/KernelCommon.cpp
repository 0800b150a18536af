//===- KernelCommon.cpp - pieces shared by the tensor-core kernels --------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "KernelCommon.h"

#include "DenseKernels.h"
#include "attn/IR/KernelSpec.h"

#include "attn/Conversion/Manifest.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

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
    memref::GlobalOp::create(b, loc, name, b.getStringAttr("public"), bytesType,
                             Attribute(), /*constant=*/false,
                             b.getI64IntegerAttr(1024));
  }
  return memref::GetGlobalOp::create(b, loc, bytesType, name);
}

std::string mlir::attn::detail::typeName(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

std::string mlir::attn::detail::hexBits(double x) {
  float f = static_cast<float>(x);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  std::string s;
  llvm::raw_string_ostream(s) << llvm::format_hex_no_prefix(bits, 8);
  return s;
}

Value mlir::attn::detail::buildMmaSync(OpBuilder &b, Location loc, Value a,
                                       Value bFrag, Value c) {
  auto aType = cast<VectorType>(a.getType());
  if (aType.getElementType().isF16())
    return nvgpu::MmaSyncOp::create(b, loc, a, bFrag, c,
                                    ArrayRef<int64_t>{16, 8, 16});
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  auto pack = [&](Value v, int64_t rows) {
    SmallVector<Value> regs;
    for (int64_t r = 0; r < rows; ++r) {
      Value pair = vector::ExtractOp::create(b, loc, v, ArrayRef<int64_t>{r});
      Value word =
          vector::BitCastOp::create(b, loc, VectorType::get({1}, i32), pair);
      regs.push_back(
          vector::ExtractOp::create(b, loc, word, ArrayRef<int64_t>{0}));
    }
    return regs;
  };
  SmallVector<Value> cRegs;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j)
      cRegs.push_back(
          vector::ExtractOp::create(b, loc, c, ArrayRef<int64_t>{i, j}));
  Type resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  Value d = NVVM::MmaOp::create(
      b, loc, resultType, pack(a, 4), pack(bFrag, 2), cRegs,
      ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> elems;
  for (int64_t e = 0; e < 4; ++e)
    elems.push_back(
        LLVM::ExtractValueOp::create(b, loc, d, ArrayRef<int64_t>{e}));
  return vector::FromElementsOp::create(b, loc, c.getType(), elems);
}

SmallVector<Value, 4>
mlir::attn::detail::buildMmaTf32(OpBuilder &b, Location loc, ValueRange a,
                                 ValueRange bFrag, ValueRange c) {
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  auto bits = [&](ValueRange vs) {
    SmallVector<Value> out;
    for (Value v : vs)
      out.push_back(arith::BitcastOp::create(b, loc, i32, v));
    return out;
  };
  Type resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  Value d = NVVM::MmaOp::create(
      b, loc, resultType, bits(a), bits(bFrag), c, ArrayRef<int64_t>{16, 8, 8},
      std::nullopt, std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::tf32, NVVM::MMATypes::tf32},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value, 4> out;
  for (int64_t e = 0; e < 4; ++e)
    out.push_back(
        LLVM::ExtractValueOp::create(b, loc, d, ArrayRef<int64_t>{e}));
  return out;
}

Value mlir::attn::detail::roundToTf32(OpBuilder &b, Location loc, Value x) {
  Type i32 = b.getI32Type();
  Type bitsType = i32;
  if (auto vec = dyn_cast<VectorType>(x.getType()))
    bitsType = VectorType::get(vec.getShape(), i32);
  auto constant = [&](int32_t v) -> Value {
    if (auto vec = dyn_cast<VectorType>(bitsType))
      return arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(vec, b.getI32IntegerAttr(v)));
    return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
  };
  Value bits = arith::BitcastOp::create(b, loc, bitsType, x);
  bits = arith::AddIOp::create(b, loc, bits, constant(0x1000));
  bits = arith::AndIOp::create(b, loc, bits,
                               constant(static_cast<int32_t>(0xFFFFE000u)));
  return arith::BitcastOp::create(b, loc, x.getType(), bits);
}

std::pair<Value, Value>
mlir::attn::detail::splitLdMatrixPair(OpBuilder &b, Location loc, Value v) {
  Type elt = cast<VectorType>(v.getType()).getElementType();
  auto half = [&](int64_t o) -> Value {
    SmallVector<Value> elems;
    for (int64_t r = o; r < o + 2; ++r)
      for (int64_t c = 0; c < 2; ++c)
        elems.push_back(
            vector::ExtractOp::create(b, loc, v, ArrayRef<int64_t>{r, c}));
    return vector::FromElementsOp::create(b, loc, VectorType::get({2, 2}, elt),
                                          elems);
  };
  return {half(0), half(2)};
}

Value mlir::attn::detail::treeReduce(
    ArrayRef<Value> terms, function_ref<Value(Value, Value)> combine) {
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

ScoreTransform::ScoreTransform(const AttentionSpec &spec,
                               const AttentionKernelArgs &args,
                               Value batchIndex, Value head, Value c0, Value c1,
                               bool raw)
    : args(args), band(getMaskBand(head.getContext(), spec, args)),
      softcap(spec.softcap), biasBroadcast(spec.biasBroadcast), raw(raw),
      batchIndex(batchIndex), head(head), c0(c0), c1(c1) {
  factor = spec.scale * (softcap ? 1.0 / *softcap : llvm::numbers::log2e);
}

Value ScoreTransform::apply(OpBuilder &b, Location loc, Value v, Value row,
                            function_ref<Value()> makeKey, bool masked,
                            Value *tanh) const {
  ImplicitLocOpBuilder ib(loc, b);
  Emitter e{ib};
  const double log2e = llvm::numbers::log2e;
  if (!raw)
    v = e.fmul(v, args.scoreFactor ? args.scoreFactor : e.f(factor));
  if (softcap) {
    Value th = e.tanh(v);
    if (tanh)
      *tanh = th;
    v = e.fmul(th,
               args.softcapFactor ? args.softcapFactor : e.f(*softcap * log2e));
  }
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
      return e.smin(x, e.sub(size, c1));
    };
    Value sizes[3] = {args.batch, args.hq, sq};
    Value coords[3] = {batchIndex, head, clampTo(row, sq)};
    Value rowOffset = c0;
    for (unsigned d = 0; d < 3; ++d)
      rowOffset = e.add(e.mul(rowOffset, biasBroadcast[d] ? c1 : sizes[d]),
                        biasBroadcast[d] ? c0 : coords[d]);
    Value boff = e.mul(rowOffset, biasBroadcast[3] ? c1 : sk);
    if (!biasBroadcast[3])
      boff = e.add(boff, masked ? clampTo(key, sk) : key);
    v = e.fadd(v, e.fmul(e.loadF32(args.bias, boff), e.f(log2e)));
  }
  if (masked) {
    Value ok = e.slt(key, sk);
    Value pos = e.add(row, e.sub(sk, sq));
    if (Value inBand = buildAdmitsKey(b, loc, band, pos, key))
      ok = e.land(ok, inBand);
    v = e.sel(ok, v, e.f(-INFINITY));
  }
  return v;
}

llvm::json::Object mlir::attn::detail::memrefParam(StringRef name,
                                                   StringRef role, Type t,
                                                   llvm::json::Array shape) {
  return llvm::json::Object{
      {"name", name},
      {"role", role},
      {"kind", "memref"},
      {"dtype", typeName(t)},
      {"shape", std::move(shape)},
      {"expands_to", llvm::json::Array{"allocated_ptr", "aligned_ptr", "offset",
                                       "size", "stride"}}};
}

llvm::json::Object mlir::attn::detail::sizeParam(StringRef name) {
  return llvm::json::Object{
      {"name", name}, {"role", "size"}, {"kind", "scalar"}, {"dtype", "i64"}};
}

llvm::json::Object mlir::attn::detail::valueParam(StringRef name,
                                                  StringRef dtype) {
  return llvm::json::Object{
      {"name", name}, {"role", "value"}, {"kind", "scalar"}, {"dtype", dtype}};
}

Type KernelSignature::tensorMap(MLIRContext *ctx, StringRef tensor, Type elt,
                                int64_t columns, int64_t rows, bool bshd,
                                TensorMapPassing passing) {
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  SmallVector<int64_t> box = bshd ? SmallVector<int64_t>{1, rows, 1, columns}
                                  : SmallVector<int64_t>{1, 1, rows, columns};
  types.push_back(LLVM::LLVMPointerType::get(ctx));
  params.push_back(
      llvm::json::Object{{"name", (tensor + "_tma").str()},
                         {"role", "tma_descriptor"},
                         {"kind", "tensormap"},
                         {"passing", stringifyTensorMapPassing(passing)},
                         {"tensor", tensor},
                         {"box", llvm::json::Array{columns, rows}},
                         {"swizzle", "128B"},
                         {"l2_promotion", "256B"},
                         {"oob_fill", "zero"}});
  return nvgpu::TensorMapDescriptorType::get(
      ctx, MemRefType::get(box, elt, AffineMap(), workgroup),
      nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
      nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
      nvgpu::TensorMapOOBKind::OOB_ZERO,
      nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
}

void KernelSignature::attentionInputs(MLIRContext *ctx,
                                      const AttentionSpec &spec) {
  Type elt = getType(ctx, spec.dtype);
  auto rows = [&](StringRef h, StringRef s, int64_t d) {
    return spec.layout == Layout::BSHD ? llvm::json::Array{"B", s, h, d}
                                       : llvm::json::Array{"B", h, s, d};
  };
  tensor("q", "query", elt, rows("Hq", "Sq", spec.headDim));
  tensor("k", "key", elt, rows("Hkv", "Sk", spec.headDim));
  tensor("v", "value", elt, rows("Hkv", "Sk", spec.valueHeadDim));
  if (!spec.bias)
    return;
  llvm::json::Array names;
  const char *full[4] = {"B", "Hq", "Sq", "Sk"};
  for (unsigned d = 0; d < 4; ++d) {
    if (spec.biasBroadcast[d])
      names.push_back(1);
    else
      names.push_back(full[d]);
  }
  tensor("bias", "bias", getType(ctx, *spec.bias), std::move(names));
}

void KernelSignature::runtimeValues(MLIRContext *ctx, bool softcap,
                                    bool window) {
  Type f32 = Float32Type::get(ctx);
  params.push_back(valueParam("scale", "f32"));
  types.push_back(f32);
  if (softcap) {
    params.push_back(valueParam("softcap", "f32"));
    types.push_back(f32);
  }
  if (window) {
    for (StringRef name : {"window_left", "window_right"}) {
      params.push_back(valueParam(name, "i64"));
      types.push_back(IndexType::get(ctx));
    }
  }
}

RuntimeValues mlir::attn::detail::materializeRuntimeValues(OpBuilder &builder,
                                                           Location loc,
                                                           ValueRange args,
                                                           bool softcap,
                                                           bool window) {
  ImplicitLocOpBuilder b(loc, builder);
  Emitter e{b};
  RuntimeValues v;
  unsigned n = 0;
  Value scale = args[n++];
  const double log2e = llvm::numbers::log2e;
  if (softcap) {
    Value cap = args[n++];
    v.scoreFactor = e.fdiv(scale, cap);
    v.softcapFactor = e.fmul(cap, e.f(log2e));
  } else {
    v.scoreFactor = e.fmul(scale, e.f(log2e));
  }
  if (window) {
    auto clamp = [&](Value x) {
      return e.smin(e.smax(x, e.idx(0)), e.idx(int64_t(1) << 40));
    };
    v.windowLeft = clamp(args[n++]);
    v.windowRight = clamp(args[n++]);
  }
  return v;
}

MemRefType mlir::attn::detail::flat(Type t) {
  return MemRefType::get({ShapedType::kDynamic}, t);
}

gpu::GPUFuncOp mlir::attn::detail::createKernel(
    OpBuilder &builder, ModuleOp module, Location loc, StringRef name,
    ArrayRef<Type> argTypes, int64_t threads, TypeRange privateTypes) {
  OpBuilder::InsertionGuard guard(builder);
  auto gpuModule = module.lookupSymbol<gpu::GPUModuleOp>(name);
  if (!gpuModule) {
    builder.setInsertionPointToEnd(module.getBody());
    gpuModule = gpu::GPUModuleOp::create(builder, loc, name);
  }
  builder.setInsertionPointToEnd(gpuModule.getBody());
  auto func = gpu::GPUFuncOp::create(builder, loc, name,
                                     builder.getFunctionType(argTypes, {}),
                                     TypeRange{}, privateTypes);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                builder.getUnitAttr());
  func.setKnownBlockSizeAttr(
      builder.getDenseI32ArrayAttr({static_cast<int32_t>(threads), 1, 1}));
  return func;
}

void mlir::attn::detail::addManifest(OpBuilder &builder,
                                     ManifestTable &manifests, StringRef name,
                                     llvm::json::Object manifest) {
  manifests.requested.push_back(builder.getStringAttr(name));
  if (llvm::any_of(manifests.entries,
                   [&](NamedAttribute a) { return a.getName() == name; }))
    return;
  manifests.entries.push_back(builder.getNamedAttr(
      name, jsonToAttribute(builder.getContext(),
                            llvm::json::Value(std::move(manifest)))));
}
