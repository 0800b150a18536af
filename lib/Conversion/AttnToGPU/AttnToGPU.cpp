//===- AttnToGPU.cpp - attn.attention to GPU kernels ----------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Generates one gpu.func per attention variant. The kernel computes, for the
// query row i = blockIdx.x * 128 + threadIdx.x of head h = blockIdx.y and
// batch b = blockIdx.z:
//
//   1. g = h / (Hq / Hkv); the admitted keys [lo, hi) of row i (bottom-right
//      aligned band, as attn-tile).
//   2. q = Q[b, h, i, :] into private memory (f32).
//   3. m = -inf, l = 0 (sinks: m = sink·log2 e, l = 1), acc = 0.
//   4. For each admitted key j: s = (q·K[b, g, j, :]) · scale·log2 e
//      (softcap: c·log2 e · tanh(q·k · scale / c); bias: + bias·log2 e);
//      m' = max(m, s); alpha = exp2(m - m'); p = exp2(s - m');
//      l = l·alpha + p; acc = acc·alpha + p·V[b, g, j, :]; m = m'.
//   5. O[b, h, i, :] = acc / l (0 if l = 0); lse = (m + log2 l)·ln 2.
//
// Multiply-adds are written as mulf + addf (the NVPTX backend fuses them):
// math.fma would become a libdevice call, and kernels without softcap or LSE
// then compile without a CUDA toolkit.
//
// Tensors are passed as flat, contiguous memref<?xT> in the op's layout;
// sizes as index arguments. The calling contract goes to the manifest.
//
//===----------------------------------------------------------------------===//

#include "KernelCommon.h"
#include "Kernels.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/Conversion/Passes.h"
#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNLOWERTOGPU
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

/// Threads per block (= query rows per block) of the baseline kernel.
static constexpr int64_t kBlockRows = 128;

using mlir::attn::detail::hexBits;
using mlir::attn::detail::typeName;

LogicalResult mlir::attn::checkSupportedChip(StringRef chip,
                                             std::string *why) {
  if (chip == "sm_80" || chip == "sm_90" || chip == "sm_90a")
    return success();
  if (why)
    *why = ("unsupported chip '" + chip +
            "': attn's kernels target sm_80, sm_90 or sm_90a")
               .str();
  return failure();
}

std::string mlir::attn::getAttentionKernelName(AttentionOp op,
                                               KernelKind kind,
                                               const KernelTileSizes &sizes) {
  AttentionShape shape = op.getAttentionShape();
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attn_" << typeName(op.getOutput().getType().getElementType()) << "_d"
     << shape.headDim << "_dv" << shape.valueHeadDim << "_"
     << stringifyLayout(op.getLayout());
  MaskAttr mask = op.getMaskOrNone();
  os << "_" << stringifyMaskKind(mask.getKind());
  if (mask.isWindow())
    os << "_l" << mask.getLeft() << "_r" << mask.getRight();
  if (std::optional<double> scale = op.getEffectiveScale())
    os << "_s" << hexBits(*scale);
  if (std::optional<APFloat> c = op.getSoftcap())
    os << "_cap" << hexBits(c->convertToDouble());
  if (Value bias = op.getBias()) {
    auto t = cast<RankedTensorType>(bias.getType());
    os << "_bias";
    for (int64_t d : t.getShape())
      os << (d == 1 ? "1" : "n");
    os << typeName(t.getElementType());
  }
  if (Value sinks = op.getSinks())
    os << "_sinks" << typeName(cast<RankedTensorType>(sinks.getType()).getElementType());
  if (op.getLse())
    os << "_lse";
  if (kind == KernelKind::Mma)
    os << "_mma";
  if (kind == KernelKind::Wgmma)
    os << "_wgmma";
  if (sizes.blockQ)
    os << "_q" << sizes.blockQ;
  if (sizes.blockKV)
    os << "_kv" << sizes.blockKV;
  return name;
}

namespace {
/// Emits the kernel body.
class KernelBuilder {
public:
  KernelBuilder(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32c(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value load(Value m, Value i) {
    Value v = memref::LoadOp::create(b, loc, m, i);
    if (v.getType() != b.getF32Type())
      v = arith::ExtFOp::create(b, loc, b.getF32Type(), v);
    return v;
  }

  OpBuilder &b;
  Location loc;
};
} // namespace

// Over 150 lines: one kernel body, written before the phase split of
// issue 19 (kernels from a spec, shared emitter pieces), which owns
// splitting it into named phases with byte-identical PTX.
FailureOr<AttentionKernel>
mlir::attn::buildAttentionKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                                 AttentionOp op, KernelKind kind,
                                 KernelTileSizes sizes) {
  const bool wgmma = kind == KernelKind::Wgmma;
  const bool mma = kind == KernelKind::Mma || wgmma;
  MmaTiling tiling;
  WgmmaTiling wgTiling;
  if (wgmma) {
    std::string why;
    FailureOr<WgmmaTiling> t = getWgmmaTiling(op, &why);
    if (failed(t))
      return op.emitOpError(why);
    wgTiling = *t;
    if (sizes.blockQ || sizes.blockKV)
      return op.emitOpError("block-q and block-kv apply to the mma.sync "
                            "kernel only");
  } else if (mma) {
    std::string why;
    FailureOr<MmaTiling> t = getMmaTiling(op, sizes.blockQ, sizes.blockKV, &why);
    if (failed(t))
      return op.emitOpError(why);
    tiling = *t;
  } else if (sizes.blockQ || sizes.blockKV) {
    return op.emitOpError("block-q and block-kv apply to the tensor-core "
                          "kernel only");
  }
  const int64_t blockRows =
      wgmma ? wgTiling.rows() : (mma ? tiling.rows() : kBlockRows);
  const int64_t blockThreads =
      wgmma ? wgTiling.threads() : (mma ? tiling.threads() : kBlockRows);
  MLIRContext *ctx = builder.getContext();
  AttentionShape shape = op.getAttentionShape();
  if (ShapedType::isDynamic(shape.headDim) ||
      ShapedType::isDynamic(shape.valueHeadDim))
    return op.emitOpError("GPU kernels need static head dims");
  std::optional<double> scale = op.getEffectiveScale();
  const double log2e = 1.4426950408889634, ln2 = 0.6931471805599453;
  std::string name = getAttentionKernelName(op, kind, sizes);

  Type elt = op.getOutput().getType().getElementType();
  Type f32 = builder.getF32Type();
  auto flat = [&](Type t) {
    return MemRefType::get({ShapedType::kDynamic}, t);
  };
  Value bias = op.getBias(), sinks = op.getSinks();
  Type biasElt = bias ? cast<RankedTensorType>(bias.getType()).getElementType()
                      : Type();
  Type sinksElt =
      sinks ? cast<RankedTensorType>(sinks.getType()).getElementType() : Type();
  bool hasLse = static_cast<bool>(op.getLse());
  Layout layout = op.getLayout();
  bool bshd = layout == Layout::BSHD;

  // The calling contract.
  llvm::json::Array params;
  SmallVector<Type> argTypes;
  auto tensorParam = [&](StringRef pname, StringRef role, Type t,
                         llvm::json::Array shapeNames) {
    argTypes.push_back(flat(t));
    params.push_back(llvm::json::Object{
        {"name", pname},
        {"role", role},
        {"kind", "memref"},
        {"dtype", typeName(t)},
        {"shape", std::move(shapeNames)},
        {"expands_to",
         llvm::json::Array{"allocated_ptr", "aligned_ptr", "offset", "size",
                           "stride"}}});
  };
  auto qkvShape = [&](StringRef h, StringRef s, int64_t d) {
    return bshd ? llvm::json::Array{"B", s, h, d}
                : llvm::json::Array{"B", h, s, d};
  };
  tensorParam("q", "query", elt, qkvShape("Hq", "Sq", shape.headDim));
  tensorParam("k", "key", elt, qkvShape("Hkv", "Sk", shape.headDim));
  tensorParam("v", "value", elt, qkvShape("Hkv", "Sk", shape.valueHeadDim));
  SmallVector<bool> biasBcast;
  if (bias) {
    auto t = cast<RankedTensorType>(bias.getType());
    llvm::json::Array names;
    const char *full[4] = {"B", "Hq", "Sq", "Sk"};
    for (unsigned d = 0; d < 4; ++d) {
      biasBcast.push_back(t.getDimSize(d) == 1);
      if (biasBcast.back())
        names.push_back(1);
      else
        names.push_back(full[d]);
    }
    tensorParam("bias", "bias", biasElt, std::move(names));
  }
  if (sinks)
    tensorParam("sinks", "sinks", sinksElt, llvm::json::Array{"Hq"});
  tensorParam("o", "output", elt, qkvShape("Hq", "Sq", shape.valueHeadDim));
  if (hasLse)
    tensorParam("lse", "lse", f32, llvm::json::Array{"B", "Hq", "Sq"});
  for (StringRef s : {"B", "Hq", "Hkv", "Sq", "Sk"}) {
    argTypes.push_back(builder.getIndexType());
    params.push_back(llvm::json::Object{
        {"name", s}, {"role", "size"}, {"kind", "scalar"}, {"dtype", "i64"}});
  }
  SmallVector<Type> tmaTypes;
  if (wgmma) {
    // TMA descriptors (CUtensorMap in global memory, built by the host) of
    // Q, K and V: 4-D over the layout's dims, boxes of 64 columns (128
    // bytes, 128-byte swizzle) by the tile's rows, zero fill out of bounds.
    auto workgroup = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    for (auto [tensor, rows] : {std::pair<StringRef, int64_t>{"q", wgTiling.rows()},
                                {"k", wgTiling.keys},
                                {"v", wgTiling.keys}}) {
      SmallVector<int64_t> box = bshd ? SmallVector<int64_t>{1, rows, 1, 64}
                                      : SmallVector<int64_t>{1, 1, rows, 64};
      // Passed as a plain pointer (the GPU-to-NVVM signature conversion has
      // no rule for the nvgpu type) and cast to it in the kernel.
      argTypes.push_back(LLVM::LLVMPointerType::get(ctx));
      tmaTypes.push_back(nvgpu::TensorMapDescriptorType::get(
          ctx, MemRefType::get(box, elt, AffineMap(), workgroup),
          nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
          nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
          nvgpu::TensorMapOOBKind::OOB_ZERO,
          nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE));
      params.push_back(llvm::json::Object{
          {"name", (tensor + "_tma").str()},
          {"role", "tma_descriptor"},
          {"kind", "tensormap"},
          {"tensor", tensor},
          {"box", llvm::json::Array{64, rows}},
          {"swizzle", "128B"},
          {"l2_promotion", "256B"},
          {"oob_fill", "zero"}});
    }
  }

  llvm::json::Object variant{
      {"dtype", typeName(elt)},
      {"head_dim", shape.headDim},
      {"value_head_dim", shape.valueHeadDim},
      {"layout", stringifyLayout(layout)},
      {"mask", stringifyMaskKind(op.getMaskOrNone().getKind())},
      {"softcap", op.getSoftcap() ? llvm::json::Value(op.getSoftcap()->convertToDouble())
                                  : llvm::json::Value(nullptr)},
      {"bias", static_cast<bool>(bias)},
      {"sinks", static_cast<bool>(sinks)},
      {"lse", hasLse}};
  if (bias) {
    llvm::json::Array bcast;
    for (bool x : biasBcast)
      bcast.push_back(x);
    variant["bias_broadcast"] = std::move(bcast);
    variant["bias_dtype"] = typeName(biasElt);
  }
  if (sinks)
    variant["sinks_dtype"] = typeName(sinksElt);
  if (op.getMaskOrNone().isWindow()) {
    variant["window_left"] = op.getMaskOrNone().getLeft();
    variant["window_right"] = op.getMaskOrNone().getRight();
  }
  if (scale)
    variant["scale"] = static_cast<double>(static_cast<float>(*scale));
  llvm::json::Object manifest{
      {"entry", name},
      {"params", std::move(params)},
      {"grid", llvm::json::Array{("ceil(Sq / " + Twine(blockRows) + ")").str(),
                                 "Hq", "B"}},
      {"block", llvm::json::Array{blockThreads, 1, 1}},
      {"kernel", wgmma ? "wgmma" : (mma ? "mma.sync" : "baseline")},
      {"dynamic_shared_memory",
       wgmma ? wgTiling.sharedMemoryBytes(shape.headDim, shape.valueHeadDim)
             : (mma ? tiling.sharedMemoryBytes(shape.headDim, shape.valueHeadDim)
                    : 0)},
      {"variant", std::move(variant)}};
  if (wgmma)
    manifest["tile"] = llvm::json::Object{{"block_q", wgTiling.rows()},
                                          {"block_kv", wgTiling.keys},
                                          {"stages", wgTiling.stages}};
  else if (mma)
    manifest["tile"] = llvm::json::Object{{"block_q", tiling.rows()},
                                          {"block_kv", tiling.keys},
                                          {"stages", tiling.stages}};
  std::string manifestText;
  llvm::raw_string_ostream(manifestText) << llvm::json::Value(std::move(manifest));

  if (auto existing = module.lookupSymbol<gpu::GPUFuncOp>(name))
    return AttentionKernel{existing, manifestText};

  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(module.getBody());
  Location loc = op.getLoc();
  auto privateSpace = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getPrivateAddressSpace());
  Type qRowType = MemRefType::get({shape.headDim}, f32, AffineMap(), privateSpace);
  Type accType =
      MemRefType::get({shape.valueHeadDim}, f32, AffineMap(), privateSpace);
  SmallVector<Type> privateBuffers;
  if (!mma)
    privateBuffers = {qRowType, accType};
  auto func = gpu::GPUFuncOp::create(builder, loc, name,
                                     builder.getFunctionType(argTypes, {}),
                                     TypeRange{}, privateBuffers);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), builder.getUnitAttr());
  func.setKnownBlockSizeAttr(
      builder.getDenseI32ArrayAttr({(int32_t)blockThreads, 1, 1}));
  if (mma) {
    Block &body = func.getBody().front();
    builder.setInsertionPointToStart(&body);
    unsigned n = 0;
    MmaKernelArgs args;
    args.q = body.getArgument(n++);
    args.k = body.getArgument(n++);
    args.v = body.getArgument(n++);
    if (bias)
      args.bias = body.getArgument(n++);
    if (sinks)
      args.sinks = body.getArgument(n++);
    args.o = body.getArgument(n++);
    if (hasLse)
      args.lse = body.getArgument(n++);
    args.batch = body.getArgument(n);
    args.hq = body.getArgument(n + 1);
    args.hkv = body.getArgument(n + 2);
    args.sq = body.getArgument(n + 3);
    args.sk = body.getArgument(n + 4);
    args.biasBroadcast.assign(biasBcast.begin(), biasBcast.end());
    if (wgmma) {
      SmallVector<Value> descriptors;
      for (auto [arg, type] :
           llvm::zip_equal(body.getArguments().take_back(3), tmaTypes))
        descriptors.push_back(
            UnrealizedConversionCastOp::create(builder, loc, type, arg)
                .getResult(0));
      buildWgmmaKernelBody(builder, func, op, args, descriptors, wgTiling);
    }
    else
      buildMmaKernelBody(builder, func, op, args, tiling);
    gpu::ReturnOp::create(builder, loc);
    return AttentionKernel{func, manifestText};
  }

  Block &entry = func.getBody().front();
  builder.setInsertionPointToStart(&entry);
  KernelBuilder k(builder, loc);
  unsigned a = 0;
  Value qArg = entry.getArgument(a++), kArg = entry.getArgument(a++),
        vArg = entry.getArgument(a++);
  Value biasArg = bias ? entry.getArgument(a++) : Value();
  Value sinksArg = sinks ? entry.getArgument(a++) : Value();
  Value oArg = entry.getArgument(a++);
  Value lseArg = hasLse ? entry.getArgument(a++) : Value();
  Value hq = entry.getArgument(a + 1), hkv = entry.getArgument(a + 2);
  Value sq = entry.getArgument(a + 3), sk = entry.getArgument(a + 4);
  Value qRow = func.getPrivateAttributions()[0];
  Value acc = func.getPrivateAttributions()[1];

  Value bx = gpu::BlockIdOp::create(builder, loc, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(builder, loc, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(builder, loc, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(builder, loc, gpu::Dimension::x);
  Value i = k.add(k.mul(bx, k.idx(kBlockRows)), tid);
  Value inRange = arith::CmpIOp::create(builder, loc, arith::CmpIPredicate::slt,
                                        i, sq);
  auto ifOp = scf::IfOp::create(builder, loc, inRange, /*withElse=*/false);
  builder.setInsertionPointToStart(&ifOp.getThenRegion().front());

  // Step 1: KV head and band.
  Value g = arith::DivUIOp::create(builder, loc, hq, hkv);
  Value kvh = arith::DivUIOp::create(builder, loc, h, g);
  Value p = k.add(i, k.sub(sk, sq));
  auto [lo, hi] = buildAdmittedKeys(builder, loc, op.getMaskOrNone(), p, sk);

  // Element offsets of [b, head, s, 0] in a contiguous 4-D tensor.
  auto rowOffset = [&](Value heads, Value seqLen, Value head, Value s,
                       int64_t dim) {
    Value r = bshd ? k.add(k.mul(k.add(k.mul(bIdx, seqLen), s), heads), head)
                   : k.add(k.mul(k.add(k.mul(bIdx, heads), head), seqLen), s);
    return k.mul(r, k.idx(dim));
  };

  // Step 2: the query row.
  Value qBase = rowOffset(hq, sq, h, i, shape.headDim);
  Value c0 = k.idx(0), c1 = k.idx(1);
  Value cD = k.idx(shape.headDim), cDv = k.idx(shape.valueHeadDim);
  scf::ForOp::create(builder, loc, c0, cD, c1, ValueRange{},
                     [&](OpBuilder &nb, Location, Value d, ValueRange) {
                       Value x = k.load(qArg, k.add(qBase, d));
                       memref::StoreOp::create(nb, loc, x, qRow, d);
                       scf::YieldOp::create(nb, loc);
                     });
  scf::ForOp::create(builder, loc, c0, cDv, c1, ValueRange{},
                     [&](OpBuilder &nb, Location, Value e, ValueRange) {
                       memref::StoreOp::create(nb, loc, k.f32c(0.0), acc, e);
                       scf::YieldOp::create(nb, loc);
                     });

  // Step 3: initial state.
  Value m0 = k.f32c(-INFINITY), l0 = k.f32c(0.0);
  if (sinks) {
    m0 = k.fmul(k.load(sinksArg, h), k.f32c(log2e));
    l0 = k.f32c(1.0);
  }

  // Step 4: the admitted keys.
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  Value factor;
  if (scale) {
    factor = k.f32c(*scale * (softcap ? 1.0 / *softcap : log2e));
  } else {
    return op.emitOpError("GPU kernels need a static head dim or a scale");
  }
  auto keyLoop = scf::ForOp::create(
      builder, loc, lo, k.max(lo, hi), c1, ValueRange{m0, l0},
      [&](OpBuilder &nb, Location, Value j, ValueRange iter) {
        Value m = iter[0], l = iter[1];
        Value kBase = rowOffset(hkv, sk, kvh, j, shape.headDim);
        auto dot = scf::ForOp::create(
            nb, loc, c0, cD, c1, ValueRange{k.f32c(0.0)},
            [&](OpBuilder &nb2, Location, Value d, ValueRange s) {
              Value qd = memref::LoadOp::create(nb2, loc, qRow, d);
              Value kd = k.load(kArg, k.add(kBase, d));
              Value r = k.fadd(k.fmul(qd, kd), s[0]);
              scf::YieldOp::create(nb2, loc, r);
            });
        Value s = k.fmul(dot.getResult(0), factor);
        if (softcap)
          s = k.fmul(math::TanhOp::create(nb, loc, s), k.f32c(*softcap * log2e));
        if (bias) {
          auto biasType = cast<RankedTensorType>(bias.getType());
          (void)biasType;
          Value sizes[4] = {entry.getArgument(a), hq, sq, sk};
          Value coords[4] = {bIdx, h, i, j};
          Value off = c0;
          for (unsigned d = 0; d < 4; ++d) {
            Value size = biasBcast[d] ? c1 : sizes[d];
            Value coord = biasBcast[d] ? c0 : coords[d];
            off = k.add(k.mul(off, size), coord);
          }
          s = k.fadd(s, k.fmul(k.load(biasArg, off), k.f32c(log2e)));
        }
        Value mNew = arith::MaximumFOp::create(nb, loc, m, s);
        Value alpha = math::Exp2Op::create(nb, loc, k.fsub(m, mNew));
        Value pj = math::Exp2Op::create(nb, loc, k.fsub(s, mNew));
        Value lNew = k.fadd(k.fmul(l, alpha), pj);
        Value vBase = rowOffset(hkv, sk, kvh, j, shape.valueHeadDim);
        scf::ForOp::create(
            nb, loc, c0, cDv, c1, ValueRange{},
            [&](OpBuilder &nb2, Location, Value e, ValueRange) {
              Value ae = memref::LoadOp::create(nb2, loc, acc, e);
              Value ve = k.load(vArg, k.add(vBase, e));
              Value r = k.fadd(k.fmul(pj, ve), k.fmul(ae, alpha));
              memref::StoreOp::create(nb2, loc, r, acc, e);
              scf::YieldOp::create(nb2, loc);
            });
        scf::YieldOp::create(nb, loc, ValueRange{mNew, lNew});
      });

  // Step 5: normalize and write.
  Value m = keyLoop.getResult(0), l = keyLoop.getResult(1);
  Value empty = arith::CmpFOp::create(builder, loc, arith::CmpFPredicate::OEQ,
                                      l, k.f32c(0.0));
  Value oBase = rowOffset(hq, sq, h, i, shape.valueHeadDim);
  scf::ForOp::create(
      builder, loc, c0, cDv, c1, ValueRange{},
      [&](OpBuilder &nb, Location, Value e, ValueRange) {
        Value ae = memref::LoadOp::create(nb, loc, acc, e);
        Value o = arith::DivFOp::create(nb, loc, ae, l);
        o = arith::SelectOp::create(nb, loc, empty, k.f32c(0.0), o);
        if (elt != f32)
          o = arith::TruncFOp::create(nb, loc, elt, o);
        memref::StoreOp::create(nb, loc, o, oArg, k.add(oBase, e));
        scf::YieldOp::create(nb, loc);
      });
  if (hasLse) {
    Value r = k.fmul(k.fadd(m, math::Log2Op::create(builder, loc, l)),
                     k.f32c(ln2));
    r = arith::SelectOp::create(builder, loc, empty, k.f32c(-INFINITY), r);
    Value off = k.add(k.mul(k.add(k.mul(bIdx, hq), h), sq), i);
    memref::StoreOp::create(builder, loc, r, lseArg, off);
  }
  builder.setInsertionPointToEnd(&entry);
  gpu::ReturnOp::create(builder, loc);
  return AttentionKernel{func, manifestText};
}

/// Kernels are gpu.modules named after their variants (attn_...); a host
/// symbol of the module with one of those names would make two symbols of
/// one name. Reported at the host symbol.
static LogicalResult checkKernelNamesFree(ModuleOp module) {
  llvm::StringMap<Operation *> hostSymbols;
  for (Operation &op : *module.getBody())
    if (!isa<gpu::GPUModuleOp>(op))
      if (auto name = op.getAttrOfType<StringAttr>(
              SymbolTable::getSymbolAttrName()))
        hostSymbols.try_emplace(name.getValue(), &op);
  for (auto gpuModule : module.getOps<gpu::GPUModuleOp>())
    if (Operation *host = hostSymbols.lookup(gpuModule.getName()))
      return host->emitOpError()
             << "is named @" << gpuModule.getName()
             << ", the name of a kernel attn-lower-to-gpu generates for this "
                "module: rename it (kernel names start with attn_)";
  return success();
}

namespace {
struct AttnLowerToGPUPass
    : public attn::impl::AttnLowerToGPUBase<AttnLowerToGPUPass> {
  using AttnLowerToGPUBase::AttnLowerToGPUBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<AttentionOp> ops;
    module.walk([&](AttentionOp op) { ops.push_back(op); });
    SmallVector<PagedAttentionOp> pagedOps;
    module.walk([&](PagedAttentionOp op) { pagedOps.push_back(op); });
    SmallVector<GatedDeltaRuleOp> linearOps;
    module.walk([&](GatedDeltaRuleOp op) { linearOps.push_back(op); });
    SmallVector<NsaOp> nsaOps;
    module.walk([&](NsaOp op) { nsaOps.push_back(op); });
    SmallVector<LightningIndexerOp> indexerOps;
    module.walk([&](LightningIndexerOp op) { indexerOps.push_back(op); });
    SmallVector<SparseAttentionOp> sparseOps;
    module.walk([&](SparseAttentionOp op) { sparseOps.push_back(op); });
    // Option errors are located at the first op that needs a kernel, or
    // the first gpu.module the pipeline would compile for the chip (the
    // module has no location of its own in a file), without printing it.
    Operation *first = nullptr;
    module.walk([&](Operation *op) {
      if (isa_and_nonnull<AttnDialect>(op->getDialect()) ||
          isa<gpu::GPUModuleOp>(op))
        first = op;
      return first ? WalkResult::interrupt() : WalkResult::advance();
    });
    if (!first)
      return;
    if (kernel != "baseline" && kernel != "mma" && kernel != "wgmma" &&
        kernel != "auto") {
      emitError(first->getLoc()) << "attn-lower-to-gpu: kernel must be "
                                 << kKernelChoices << ", got '" << kernel
                                 << "'";
      return signalPassFailure();
    }
    std::string why;
    if (failed(checkSupportedChip(chip, &why))) {
      emitError(first->getLoc()) << "attn-lower-to-gpu: " << why;
      return signalPassFailure();
    }
    if (ops.empty() && pagedOps.empty() && linearOps.empty() &&
        nsaOps.empty() && indexerOps.empty() && sparseOps.empty())
      return;
    OpBuilder builder(&getContext());
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    builder.getUnitAttr());
    SmallVector<NamedAttribute> manifests;
    if (auto existing = module->getAttrOfType<DictionaryAttr>("attn.kernels"))
      llvm::append_range(manifests, existing.getValue());
    // Paged attention has one kernel form (split + combine, mma.sync).
    for (PagedAttentionOp op : pagedOps)
      if (failed(buildPagedKernels(builder, module, op, manifests)))
        return signalPassFailure();
    // Linear attention: the chunk and state kernels (tf32 tensor cores)
    // and the recurrent kernel.
    for (GatedDeltaRuleOp op : linearOps) {
      SmallVector<KernelSpec> specs;
      if (failed(cast<KernelSpecOpInterface>(op.getOperation())
                     .getKernelSpecs(specs)) ||
          failed(attn::detail::buildGatedDeltaKernels(
              builder, module, std::get<GatedDeltaSpec>(specs.front()),
              op.getLoc(), [&] { return op.emitOpError(); }, manifests)))
        return signalPassFailure();
    }
    // Sparse attention: the paged kernels it runs on, NSA's block selection
    // and the DSA indexer's scores (NSA's attention runs on the paged and
    // attention kernels).
    for (SparseAttentionOp op : sparseOps)
      if (failed(buildSparseAttentionKernels(builder, module, op, manifests)))
        return signalPassFailure();
    for (NsaOp op : nsaOps) {
      SmallVector<KernelSpec> specs;
      if (failed(cast<KernelSpecOpInterface>(op.getOperation())
                     .getKernelSpecs(specs)) ||
          failed(attn::detail::buildNsaSelectKernel(
              builder, module, std::get<NsaSelectSpec>(specs.front()),
              op.getLoc(), [&] { return op.emitOpError(); }, manifests)))
        return signalPassFailure();
    }
    for (LightningIndexerOp op : indexerOps) {
      SmallVector<KernelSpec> specs;
      if (failed(cast<KernelSpecOpInterface>(op.getOperation())
                     .getKernelSpecs(specs)) ||
          failed(attn::detail::buildIndexerKernel(
              builder, module, std::get<IndexerSpec>(specs.front()),
              op.getLoc(), [&] { return op.emitOpError(); }, manifests)))
        return signalPassFailure();
    }
    for (AttentionOp op : ops) {
      // One gpu.module per variant, named like its kernel, so that each
      // kernel becomes its own gpu.binary (and bundle).
      KernelKind kind = KernelKind::Baseline;
      // auto: tensor cores wherever the variant allows them; block sizes
      // that do not fit it are then reported, not silently ignored.
      // auto takes wgmma on sm_90a wherever it applies (measured faster
      // than mma.sync at head dims 64, 128 and 256, docs/gpu-results.md),
      // unless mma.sync block sizes were asked for.
      if (kernel == "wgmma" ||
          (kernel == "auto" && chip == "sm_90a" && !blockQ && !blockKV &&
           succeeded(getWgmmaTiling(op, /*why=*/nullptr))))
        kind = KernelKind::Wgmma;
      else if (kernel == "mma" || (kernel == "auto" && isMmaKernelEligible(op)))
        kind = KernelKind::Mma;
      else if (kernel == "auto") {
        // No tensor-core kernel takes the variant: say so, or refuse.
        std::string why;
        (void)getMmaTiling(op, 0, 0, &why);
        if (requireTensorCores) {
          op.emitOpError() << "no tensor-core kernel takes this variant ("
                           << why << ") and require-tensor-cores is set";
          return signalPassFailure();
        }
        op.emitRemark() << "runs on the thread-per-row baseline kernel: no "
                           "tensor-core kernel takes this variant ("
                        << why << ")";
      }
      KernelTileSizes sizes;
      if (kind == KernelKind::Mma)
        sizes = {blockQ, blockKV};
      std::string name = getAttentionKernelName(op, kind, sizes);
      auto gpuModule = module.lookupSymbol<gpu::GPUModuleOp>(name);
      if (!gpuModule) {
        builder.setInsertionPointToEnd(module.getBody());
        gpuModule = gpu::GPUModuleOp::create(builder, module.getLoc(), name);
      }
      FailureOr<AttentionKernel> kernel =
          buildAttentionKernel(builder, gpuModule, op, kind, sizes);
      if (failed(kernel))
        return signalPassFailure();
      if (llvm::none_of(manifests, [&](NamedAttribute n) {
            return n.getName() == kernel->func.getName();
          }))
        manifests.push_back(builder.getNamedAttr(
            kernel->func.getName(), builder.getStringAttr(kernel->manifest)));
    }
    if (failed(checkKernelNamesFree(module)))
      return signalPassFailure();
    module->setAttr("attn.kernels", builder.getDictionaryAttr(manifests));
    if (dropHost) {
      // Drop every reference first: the module body is a graph region, so
      // an op may be used by one before or after it, and erasing a value
      // that still has uses corrupts the use lists.
      SmallVector<Operation *> host;
      for (Operation &op : *module.getBody())
        if (!isa<gpu::GPUModuleOp>(op))
          host.push_back(&op);
      for (Operation *op : host)
        op->dropAllReferences();
      for (Operation *op : host)
        op->erase();
    }
  }
};
} // namespace
