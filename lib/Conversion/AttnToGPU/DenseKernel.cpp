//===- DenseKernel.cpp - dense attention kernels from a spec --------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// One gpu.func per AttentionSpec: the choice of its body (thread per row,
// mma.sync or TMA + wgmma), its signature, manifest and kernel, and the
// thread-per-row body. That body computes, for the query row i =
// blockIdx.x * 128 + threadIdx.x of head h = blockIdx.y and batch b =
// blockIdx.z:
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
// Tensors are passed as flat, contiguous memref<?xT> in the spec's layout;
// sizes as index arguments, then (specs that leave them to run time) the
// scale, softcap and window extents. The calling contract goes to the
// manifest.
//
//===----------------------------------------------------------------------===//

#include "DenseKernels.h"
#include "KernelCommon.h"
#include "Kernels.h"

#include "attn/IR/MaskUtils.h"

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

/// Threads per block (= query rows per block) of the baseline kernel.
static constexpr int64_t kBlockRows = 128;

//===----------------------------------------------------------------------===//
// Kernel choice and name
//===----------------------------------------------------------------------===//

namespace {
/// The tiling of a resolved spec's kernel, whichever its kind.
struct DenseTiling {
  AttentionKernelKind kind = AttentionKernelKind::Baseline;
  MmaTiling mma;
  WgmmaTiling wgmma;

  bool isWgmma() const { return kind == AttentionKernelKind::Wgmma; }
  bool isMma() const { return kind == AttentionKernelKind::Mma; }
  int64_t rows() const {
    return isWgmma() ? wgmma.rows() : (isMma() ? mma.rows() : kBlockRows);
  }
  int64_t threads() const {
    return isWgmma() ? wgmma.threads() : (isMma() ? mma.threads() : kBlockRows);
  }
};
} // namespace

/// The tiling of `spec`'s kernel kind; failure (with the reason in `why`)
/// where that kernel cannot run the spec.
static FailureOr<DenseTiling> getDenseTiling(const AttentionSpec &spec,
                                             std::string *why) {
  DenseTiling t;
  t.kind = spec.kernel;
  bool blocks = spec.blockQ || spec.blockKV;
  // FP8 runs on the sm_90a kernel only (its e4m3 wgmma); the other bodies
  // read 16- and 32-bit floats.
  if (spec.dtype == ScalarType::F8E4M3 &&
      spec.kernel != AttentionKernelKind::Wgmma &&
      spec.kernel != AttentionKernelKind::Auto)
    return failWith(why, "FP8 (f8E4M3FN) attention runs on the sm_90a wgmma "
                         "kernel only");
  switch (spec.kernel) {
  case AttentionKernelKind::Auto:
    return failWith(why, "the attention kernel kind is not resolved");
  case AttentionKernelKind::Wgmma: {
    // Its tiling checks the block sizes (64 or 128 query rows; keys a
    // multiple of 16 that fits).
    FailureOr<WgmmaTiling> w = getWgmmaTiling(spec, why);
    if (failed(w))
      return failure();
    t.wgmma = *w;
    return t;
  }
  case AttentionKernelKind::Mma: {
    if (spec.persistent)
      return failWith(why, "the persistent schedule is the sm_90a wgmma "
                           "kernel's");
    FailureOr<MmaTiling> m = getMmaTiling(spec, why);
    if (failed(m))
      return failure();
    t.mma = *m;
    return t;
  }
  case AttentionKernelKind::Baseline:
    if (spec.persistent)
      return failWith(why, "the persistent schedule is the sm_90a wgmma "
                           "kernel's");
    if (blocks)
      return failWith(
          why, "block-q and block-kv apply to the tensor-core kernel only");
    return t;
  }
  llvm_unreachable("unknown attention kernel kind");
}

FailureOr<AttentionSpec> mlir::attn::detail::resolveAttentionKernel(
    const AttentionSpec &spec, StringRef chip, std::string *whyBaseline,
    std::string *why) {
  AttentionSpec resolved = spec;
  if (spec.dtype == ScalarType::F8E4M3 &&
      spec.kernel == AttentionKernelKind::Auto) {
    // FP8 has one body; its tiling says why a variant does not fit it.
    if (chip != "sm_90a")
      return FailureOr<AttentionSpec>(
          failWith(why, "FP8 (f8E4M3FN) attention needs the sm_90a wgmma "
                        "kernel (chip " +
                            chip + ")"));
    resolved.kernel = AttentionKernelKind::Wgmma;
  } else if (spec.persistent && spec.kernel == AttentionKernelKind::Auto) {
    // The schedule is the wgmma kernel's; its tiling says why a variant
    // does not fit it.
    if (chip != "sm_90a")
      return FailureOr<AttentionSpec>(
          failWith(why, "the persistent schedule needs the sm_90a wgmma "
                        "kernel (chip " +
                            chip + ")"));
    resolved.kernel = AttentionKernelKind::Wgmma;
  } else if (spec.kernel == AttentionKernelKind::Auto) {
    // Tensor cores wherever the variant allows them: wgmma on sm_90a
    // (measured faster than mma.sync at head dims 64, 128 and 256,
    // docs/gpu-results.md) unless mma.sync block sizes were asked for, then
    // mma.sync at its default tiling; block sizes that do not fit it are
    // then reported, not silently ignored.
    if (chip == "sm_90a" && !spec.blockQ && !spec.blockKV &&
        succeeded(getWgmmaTiling(spec, /*why=*/nullptr))) {
      resolved.kernel = AttentionKernelKind::Wgmma;
    } else if (isMmaKernelEligible(spec)) {
      resolved.kernel = AttentionKernelKind::Mma;
    } else {
      // The block sizes are the tensor-core kernel's: the baseline has none.
      resolved.kernel = AttentionKernelKind::Baseline;
      resolved.blockQ = resolved.blockKV = 0;
      (void)getMmaTiling(resolved, whyBaseline);
    }
  }
  if (failed(getDenseTiling(resolved, why)))
    return failure();
  return resolved;
}

std::string
mlir::attn::detail::getAttentionKernelName(const AttentionSpec &spec) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attn_" << stringifyScalarType(spec.dtype) << "_d" << spec.headDim
     << "_dv" << spec.valueHeadDim << "_" << stringifyLayout(spec.layout);
  // FP8: the output's type and the descales' granularity.
  if (spec.outDtype)
    os << "_o" << stringifyScalarType(*spec.outDtype);
  if (spec.descale != DescaleMode::None)
    os << "_descale" << stringifyDescaleMode(spec.descale);
  os << "_" << stringifyMaskKind(spec.mask.kind);
  // Values left to run time appear as what the kernel takes: a softcap, and
  // the mask's kind.
  if (spec.mask.isWindow() && !spec.runtimeValues)
    os << "_l" << spec.mask.left << "_r" << spec.mask.right;
  if (spec.scale && !spec.runtimeValues)
    os << "_s" << hexBits(spec.scale);
  if (spec.softcap)
    os << "_cap";
  if (spec.softcap && !spec.runtimeValues)
    os << hexBits(*spec.softcap);
  if (spec.bias) {
    os << "_bias";
    for (bool broadcast : spec.biasBroadcast)
      os << (broadcast ? "1" : "n");
    os << stringifyScalarType(*spec.bias);
  }
  if (spec.sinks)
    os << "_sinks" << stringifyScalarType(*spec.sinks);
  if (spec.lse)
    os << "_lse";
  if (spec.kernel == AttentionKernelKind::Mma)
    os << "_mma";
  if (spec.kernel == AttentionKernelKind::Wgmma)
    os << "_wgmma";
  if (spec.blockQ)
    os << "_q" << spec.blockQ;
  if (spec.blockKV)
    os << "_kv" << spec.blockKV;
  // A length alternative: where it is preferred ("_pSk8192" from 8192 keys
  // up, "_pSk1024to4096" for [1024, 4096)).
  SmallVector<SizeRange> ranges(spec.prefer.begin(), spec.prefer.end());
  llvm::sort(ranges, [](const SizeRange &a, const SizeRange &b) {
    return a.size < b.size;
  });
  for (const SizeRange &range : ranges) {
    os << "_p" << range.size << range.lo;
    if (range.hi)
      os << "to" << *range.hi;
  }
  if (spec.persistent)
    os << "_persistent";
  return name;
}

//===----------------------------------------------------------------------===//
// Signature and manifest
//===----------------------------------------------------------------------===//

namespace {
/// The parameters of a dense kernel: its tensors and sizes and, for the
/// wgmma kernel, the TMA descriptors of Q, K and V (pointers, cast to
/// `tmaTypes` in the kernel; by value in parameter space or in global
/// memory as their manifest entries' "passing" says, see
/// attn-gpu-tensor-map-params).
struct DenseSignature : KernelSignature {
  SmallVector<Type> tmaTypes;
};
} // namespace

/// The signature of `spec`'s kernel: q, k, v, [bias], [descale_q,
/// descale_k, descale_v], [sinks], o, [lse], B, Hq, Hkv, Sq, Sk, the run-time
/// values and, for wgmma, the three tensor maps.
static DenseSignature buildSignature(MLIRContext *ctx,
                                     const AttentionSpec &spec,
                                     const DenseTiling &tiling,
                                     TensorMapPassing tensorMaps) {
  DenseSignature sig;
  Type elt = getType(ctx, spec.dtype), f32 = Float32Type::get(ctx);
  Type outElt = spec.outDtype ? getType(ctx, *spec.outDtype) : elt;
  bool bshd = spec.layout == Layout::BSHD;
  auto qkvShape = [&](StringRef h, StringRef s, int64_t d) {
    return bshd ? llvm::json::Array{"B", s, h, d}
                : llvm::json::Array{"B", h, s, d};
  };
  sig.attentionInputs(ctx, spec);
  // FP8's descales: f32, one per tensor ([]) or per (batch, KV head).
  if (spec.descale != DescaleMode::None)
    for (StringRef name : {"descale_q", "descale_k", "descale_v"})
      sig.tensor(name, "descale", f32,
                 spec.descale == DescaleMode::Head
                     ? llvm::json::Array{"B", "Hkv"}
                     : llvm::json::Array{});
  if (spec.sinks)
    sig.tensor("sinks", "sinks", getType(ctx, *spec.sinks),
               llvm::json::Array{"Hq"});
  sig.tensor("o", "output", outElt, qkvShape("Hq", "Sq", spec.valueHeadDim));
  if (spec.lse)
    sig.tensor("lse", "lse", f32, llvm::json::Array{"B", "Hq", "Sq"});
  sig.sizes(ctx, {"B", "Hq", "Hkv", "Sq", "Sk"});
  if (spec.runtimeValues)
    sig.runtimeValues(ctx, spec.softcap.has_value(), spec.mask.isWindow());
  if (!tiling.isWgmma())
    return sig;
  // TMA descriptors of Q, K and V by the tile's rows, in boxes of 128
  // bytes a row (FP8: bytes, as i8).
  Type boxElt = tiling.wgmma.fp8 ? IntegerType::get(ctx, 8) : elt;
  for (auto [tensor, rows] :
       {std::pair<StringRef, int64_t>{"q", tiling.wgmma.rows()},
        {"k", tiling.wgmma.keys},
        {"v", tiling.wgmma.keys}})
    sig.tmaTypes.push_back(sig.tensorMap(ctx, tensor, boxElt,
                                         tiling.wgmma.panelColumns(), rows,
                                         bshd, tensorMaps));
  return sig;
}

/// The manifest's "variant": what the kernel computes.
static llvm::json::Object buildVariant(const AttentionSpec &spec) {
  llvm::json::Object variant{{"dtype", stringifyScalarType(spec.dtype)},
                             {"head_dim", spec.headDim},
                             {"value_head_dim", spec.valueHeadDim},
                             {"layout", stringifyLayout(spec.layout)},
                             {"mask", stringifyMaskKind(spec.mask.kind)},
                             {"softcap", spec.softcap
                                             ? llvm::json::Value(*spec.softcap)
                                             : llvm::json::Value(nullptr)},
                             {"bias", spec.bias.has_value()},
                             {"sinks", spec.sinks.has_value()},
                             {"lse", spec.lse}};
  if (spec.outDtype)
    variant["out_dtype"] = stringifyScalarType(*spec.outDtype);
  if (spec.descale != DescaleMode::None)
    variant["descale"] = stringifyDescaleMode(spec.descale);
  if (spec.bias) {
    llvm::json::Array bcast;
    for (bool x : spec.biasBroadcast)
      bcast.push_back(x);
    variant["bias_broadcast"] = std::move(bcast);
    variant["bias_dtype"] = stringifyScalarType(*spec.bias);
  }
  if (spec.sinks)
    variant["sinks_dtype"] = stringifyScalarType(*spec.sinks);
  if (spec.runtimeValues) {
    // What the launcher passes as arguments (KernelSpec.cpp writes the
    // spec's JSON the same way).
    variant["scale"] = "runtime";
    if (spec.softcap)
      variant["softcap"] = "runtime";
    if (spec.mask.isWindow())
      variant["window_left"] = variant["window_right"] = "runtime";
    return variant;
  }
  if (spec.mask.isWindow()) {
    variant["window_left"] = spec.mask.left;
    variant["window_right"] = spec.mask.right;
  }
  if (spec.scale)
    variant["scale"] = static_cast<double>(static_cast<float>(spec.scale));
  return variant;
}

/// The launch grid: a block per query tile, [query blocks, Hq, B]; or,
/// persistent, [min(tiles, blocks an SM x "SMs"), 1, 1], "SMs" being the
/// device's multiprocessor count, which the launcher supplies.
static llvm::json::Array buildGrid(const AttentionSpec &spec,
                                   const DenseTiling &tiling) {
  llvm::json::Value queryBlocks = grid::ceilDiv("Sq", tiling.rows());
  if (!tiling.isWgmma() || !tiling.wgmma.persistent)
    return llvm::json::Array{std::move(queryBlocks), "Hq", "B"};
  int64_t perSM = tiling.wgmma.blocksPerSM(spec.headDim, spec.valueHeadDim);
  return llvm::json::Array{
      grid::min(
          {grid::mul({std::move(queryBlocks), "Hq", "B"}),
           perSM == 1 ? llvm::json::Value("SMs") : grid::mul({"SMs", perSM})}),
      1, 1};
}

/// The calling contract of `spec`'s kernel `name`.
static llvm::json::Object buildManifest(const AttentionSpec &spec,
                                        StringRef name,
                                        llvm::json::Array params,
                                        const DenseTiling &tiling) {
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  llvm::json::Object manifest{
      {"entry", name.str()},
      {"params", std::move(params)},
      {"grid", buildGrid(spec, tiling)},
      {"block", llvm::json::Array{tiling.threads(), 1, 1}},
      {"kernel",
       tiling.isWgmma() ? "wgmma" : (tiling.isMma() ? "mma.sync" : "baseline")},
      {"dynamic_shared_memory",
       tiling.isWgmma()
           ? tiling.wgmma.sharedMemoryBytes(d, dv)
           : (tiling.isMma() ? tiling.mma.sharedMemoryBytes(d, dv) : 0)},
      {"variant", buildVariant(spec)}};
  if (!spec.prefer.empty())
    manifest["prefer"] = preferToJSON(spec.prefer);
  if (tiling.isWgmma()) {
    manifest["tile"] = llvm::json::Object{{"block_q", tiling.wgmma.rows()},
                                          {"block_kv", tiling.wgmma.keys},
                                          {"stages", tiling.wgmma.stages}};
    if (tiling.wgmma.persistent)
      manifest.getObject("tile")->try_emplace("persistent", true);
  } else if (tiling.isMma())
    manifest["tile"] = llvm::json::Object{{"block_q", tiling.mma.rows()},
                                          {"block_kv", tiling.mma.keys},
                                          {"stages", tiling.mma.stages}};
  return manifest;
}

//===----------------------------------------------------------------------===//
// The kernel
//===----------------------------------------------------------------------===//

/// The arguments of `func`'s entry block in signature order; the values a
/// spec leaves to run time are materialized at `builder`'s insertion point.
static AttentionKernelArgs getKernelArgs(OpBuilder &builder, Location loc,
                                         gpu::GPUFuncOp func,
                                         const AttentionSpec &spec) {
  Block &body = func.getBody().front();
  unsigned n = 0;
  AttentionKernelArgs args;
  args.q = body.getArgument(n++);
  args.k = body.getArgument(n++);
  args.v = body.getArgument(n++);
  if (spec.bias)
    args.bias = body.getArgument(n++);
  if (spec.descale != DescaleMode::None)
    for (Value *d : {&args.descaleQ, &args.descaleK, &args.descaleV})
      *d = body.getArgument(n++);
  if (spec.sinks)
    args.sinks = body.getArgument(n++);
  args.o = body.getArgument(n++);
  if (spec.lse)
    args.lse = body.getArgument(n++);
  args.batch = body.getArgument(n);
  args.hq = body.getArgument(n + 1);
  args.hkv = body.getArgument(n + 2);
  args.sq = body.getArgument(n + 3);
  args.sk = body.getArgument(n + 4);
  n += 5;
  if (spec.runtimeValues) {
    bool window = spec.mask.isWindow();
    unsigned count = 1 + (spec.softcap ? 1 : 0) + (window ? 2 : 0);
    RuntimeValues values = materializeRuntimeValues(
        builder, loc, body.getArguments().slice(n, count),
        spec.softcap.has_value(), window);
    args.scoreFactor = values.scoreFactor;
    args.softcapFactor = values.softcapFactor;
    args.windowLeft = values.windowLeft;
    args.windowRight = values.windowRight;
  }
  return args;
}

LogicalResult mlir::attn::detail::buildAttentionKernels(
    OpBuilder &builder, ModuleOp module, const AttentionSpec &spec,
    TensorMapPassing tensorMaps, Location loc, EmitErrorFn emitError,
    Manifests &manifests) {
  std::string why;
  FailureOr<DenseTiling> tiling = getDenseTiling(spec, &why);
  if (failed(tiling))
    return emitError() << why;
  if (ShapedType::isDynamic(spec.headDim) ||
      ShapedType::isDynamic(spec.valueHeadDim))
    return emitError() << "GPU kernels need static head dims";
  if (!spec.scale && !spec.runtimeValues)
    return emitError() << "GPU kernels need a static head dim or a scale";
  MLIRContext *ctx = builder.getContext();
  std::string name = getAttentionKernelName(spec);
  DenseSignature sig = buildSignature(ctx, spec, *tiling, tensorMaps);
  addManifest(builder, manifests, name,
              buildManifest(spec, name, std::move(sig.params), *tiling));
  if (auto gpuModule = module.lookupSymbol<gpu::GPUModuleOp>(name))
    if (gpuModule.lookupSymbol<gpu::GPUFuncOp>(name))
      return success();

  // The baseline keeps its query row and accumulator in private memory.
  SmallVector<Type> privateBuffers;
  if (tiling->kind == AttentionKernelKind::Baseline) {
    auto privateSpace = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getPrivateAddressSpace());
    Type f32 = builder.getF32Type();
    privateBuffers = {
        MemRefType::get({spec.headDim}, f32, AffineMap(), privateSpace),
        MemRefType::get({spec.valueHeadDim}, f32, AffineMap(), privateSpace)};
  }
  gpu::GPUFuncOp func = createKernel(builder, module, loc, name, sig.types,
                                     tiling->threads(), privateBuffers);
  // The wgmma kernel with one consumer warpgroup runs two (or three)
  // blocks an SM: ptxas then caps a thread at 128 (80) registers, which
  // setmaxnreg deals out.
  if (tiling->isWgmma() && tiling->wgmma.consumerWarpgroups == 1)
    func->setAttr(
        NVVM::NVVMDialect::getMinctasmAttrName(),
        builder.getI32IntegerAttr(std::max<int64_t>(
            2, tiling->wgmma.blocksPerSM(spec.headDim, spec.valueHeadDim))));
  OpBuilder::InsertionGuard guard(builder);
  Block &body = func.getBody().front();
  builder.setInsertionPointToStart(&body);
  AttentionKernelArgs args = getKernelArgs(builder, loc, func, spec);
  switch (tiling->kind) {
  case AttentionKernelKind::Wgmma: {
    SmallVector<Value> descriptors;
    for (auto [arg, type] :
         llvm::zip_equal(body.getArguments().take_back(3), sig.tmaTypes))
      descriptors.push_back(
          UnrealizedConversionCastOp::create(builder, loc, type, arg)
              .getResult(0));
    buildWgmmaKernelBody(builder, loc, func, spec, args, descriptors,
                         tiling->wgmma);
    break;
  }
  case AttentionKernelKind::Mma:
    buildMmaKernelBody(builder, loc, func, spec, args, tiling->mma);
    break;
  default:
    buildBaselineKernelBody(builder, loc, func, spec, args);
    break;
  }
  gpu::ReturnOp::create(builder, loc);
  return success();
}

//===----------------------------------------------------------------------===//
// Pieces of the bodies
//===----------------------------------------------------------------------===//

Value mlir::attn::detail::getRowOffset(Emitter &e, Layout layout, Value batch,
                                       Value heads, Value seqLen, Value head,
                                       Value s, int64_t dim) {
  Value r = layout == Layout::BSHD
                ? e.add(e.mul(e.add(e.mul(batch, seqLen), s), heads), head)
                : e.add(e.mul(e.add(e.mul(batch, heads), head), seqLen), s);
  return e.mul(r, e.idx(dim));
}

Value mlir::attn::detail::getBiasOffset(Emitter &e, const AttentionSpec &spec,
                                        const AttentionKernelArgs &args,
                                        Value batch, Value head, Value row,
                                        Value key, Value c0, Value c1) {
  Value sizes[4] = {args.batch, args.hq, args.sq, args.sk};
  Value coords[4] = {batch, head, row, key};
  Value off = c0;
  for (unsigned d = 0; d < 4; ++d) {
    Value size = spec.biasBroadcast[d] ? c1 : sizes[d];
    Value coord = spec.biasBroadcast[d] ? c0 : coords[d];
    off = e.add(e.mul(off, size), coord);
  }
  return off;
}

Value mlir::attn::detail::getQueryBlock(Emitter &e, const AttentionSpec &spec) {
  Value bx = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
  if (spec.mask.kind == MaskKind::None)
    return bx;
  return e.sub(e.sub(gpu::GridDimOp::create(e.b, gpu::Dimension::x), bx),
               e.idx(1));
}

/// The L2 bytes that one group of heads' keys and values may take: about half
/// of an H100/H200's 50 MB, leaving room for the queries and outputs streaming
/// through.
static constexpr int64_t kCausalGroupBytes = 24 << 20;

/// A causal grid's blocks re-dealt: FlashAttention-3's longest-processing-time
/// order with its L2 grouping of heads. The blocks' linear index L (x fastest,
/// as the hardware launches them) walks groups of G (batch, head) pairs; within
/// a group, all G pairs' heaviest query block first (the last one: it visits
/// the most keys), then all their next heaviest, and so on. Launched in that
/// order, the light blocks fill the grid's tail, and a group's keys and values
/// (G pairs of Sk x (D + Dv) 16-bit elements; the heads of one KV head
/// together) stay in L2 while its query blocks read them. G is a multiple of
/// Hq / Hkv, at least one KV head's worth, and at most every pair; the last
/// group may hold fewer. A bijection of [0, blocks): every block is dealt
/// once.
static BlockCoordinates dealCausalTiles(Emitter &e, const AttentionSpec &spec,
                                        const AttentionKernelArgs &args,
                                        Value linear, Value blocks, Value heads,
                                        Value pairs);
static BlockCoordinates getCausalBlockOrder(Emitter &e,
                                            const AttentionSpec &spec,
                                            const AttentionKernelArgs &args) {
  auto dim = [&](gpu::Dimension d) { return gpu::GridDimOp::create(e.b, d); };
  auto id = [&](gpu::Dimension d) { return gpu::BlockIdOp::create(e.b, d); };
  Value blocks = dim(gpu::Dimension::x), heads = dim(gpu::Dimension::y);
  Value pairs = e.mul(heads, dim(gpu::Dimension::z));
  Value linear =
      e.add(id(gpu::Dimension::x),
            e.mul(blocks, e.add(id(gpu::Dimension::y),
                                e.mul(heads, id(gpu::Dimension::z)))));
  return dealCausalTiles(e, spec, args, linear, blocks, heads, pairs);
}

/// getCausalBlockOrder's deal of the tile of linear index `linear` among
/// `blocks` query blocks x `pairs` (batch, head) pairs of `heads` heads.
static BlockCoordinates dealCausalTiles(Emitter &e, const AttentionSpec &spec,
                                        const AttentionKernelArgs &args,
                                        Value linear, Value blocks, Value heads,
                                        Value pairs) {
  auto minU = [&](Value x, Value y) {
    return arith::MinUIOp::create(e.b, x, y).getResult();
  };
  auto maxU = [&](Value x, Value y) {
    return arith::MaxUIOp::create(e.b, x, y).getResult();
  };
  Value kvBytes = e.mul(args.sk, e.idx(2 * (spec.headDim + spec.valueHeadDim)));
  Value kvHeads =
      maxU(e.idx(1), e.div(e.idx(kCausalGroupBytes), maxU(kvBytes, e.idx(1))));
  Value group =
      minU(e.mul(kvHeads, e.div(args.hq, args.hkv)), pairs); // G, in pairs
  Value span = e.mul(group, blocks);                         // G x blocks
  Value g = e.div(linear, span);
  Value r = e.sub(linear, e.mul(g, span));
  Value first = e.mul(g, group);
  Value size = minU(group, e.sub(pairs, first)); // the last group: fewer
  Value heaviness = e.div(r, size);
  Value pair = e.add(first, e.sub(r, e.mul(heaviness, size)));
  return {e.sub(e.sub(blocks, heaviness), e.idx(1)), e.rem(pair, heads),
          e.div(pair, heads)};
}

BlockCoordinates
mlir::attn::detail::getBlockCoordinates(Emitter &e, const AttentionSpec &spec,
                                        const AttentionKernelArgs &args) {
  BlockCoordinates plain{getQueryBlock(e, spec),
                         gpu::BlockIdOp::create(e.b, gpu::Dimension::y),
                         gpu::BlockIdOp::create(e.b, gpu::Dimension::z)};
  if (spec.mask.kind != MaskKind::Causal)
    return plain;
  // Measured on the H200 (docs/bench/2026-12-03-h200-a05f1c5-causal-lpt):
  // the grouped order gains 10-11% where the query heads of a group share
  // their K/V (GQA, MQA), and loses 3-9% where every head has its own (MHA,
  // MLA), whose plain order keeps one head's K/V in L2 across its query
  // blocks. The group size is a run-time size: choose per launch.
  BlockCoordinates grouped = getCausalBlockOrder(e, spec, args);
  Value shared =
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt, args.hq, args.hkv);
  return {e.sel(shared, grouped.queryBlock, plain.queryBlock),
          e.sel(shared, grouped.head, plain.head),
          e.sel(shared, grouped.batch, plain.batch)};
}

BlockCoordinates
mlir::attn::detail::getTileCoordinates(Emitter &e, const AttentionSpec &spec,
                                       const AttentionKernelArgs &args,
                                       Value tile, Value queryBlocks) {
  // Without a mask every tile visits the same keys: a head's query blocks
  // together, as the grid of one block a tile launches them.
  if (spec.mask.kind == MaskKind::None) {
    Value rest = e.div(tile, queryBlocks);
    return {e.rem(tile, queryBlocks), e.rem(rest, args.hq),
            e.div(rest, args.hq)};
  }
  // With one, heaviest first over the whole grid: level l holds every
  // (batch, head) pair's query block queryBlocks - 1 - l (a band's last
  // blocks visit the most keys), the heads of a KV head side by side.
  // Dealt in a snake (WgmmaKernel.cpp), this balances the blocks' work; the
  // grid's own orders do not. Simulated with each tile's cost its key blocks
  // plus 3.5 blocks of fixed cost, 132 blocks, the longest block's share of
  // the ideal is 0.97-1.00 at 1k-16k tokens (d128 causal, 16 heads, GQA
  // 32/8), against 0.82 / 0.86 / 0.90 / 0.65 for MHA at 1k x 16, 2k x 8,
  // 4k x 4, 16k x 1 and 0.93 for GQA at 8k with the grid's orders dealt
  // t += grid (docs/bench/2026-12-05-h200-persistent-deal/deal.py). The
  // grid's L2 groups of heads are given up: at a level, the tiles of a KV
  // head's query heads start together and read its keys together. On the
  // H200 (docs/design-length-choice.md) it has the best worst case of the
  // deals tried (0.81 of one block a tile against 0.60 with the grid's
  // orders, snake or stride) at the same geometric mean.
  Value pairs = e.mul(args.hq, args.batch);
  Value level = e.div(tile, pairs);
  Value pair = e.rem(tile, pairs);
  return {e.sub(e.sub(queryBlocks, level), e.idx(1)), e.rem(pair, args.hq),
          e.div(pair, args.hq)};
}

Value mlir::attn::detail::getScoreFactor(Emitter &e, const AttentionSpec &spec,
                                         const AttentionKernelArgs &args) {
  if (args.scoreFactor)
    return args.scoreFactor;
  return e.f(spec.scale *
             (spec.softcap ? 1.0 / *spec.softcap : llvm::numbers::log2e));
}

Value mlir::attn::detail::getSoftcapFactor(Emitter &e,
                                           const AttentionSpec &spec,
                                           const AttentionKernelArgs &args) {
  if (args.softcapFactor)
    return args.softcapFactor;
  return e.f(*spec.softcap * llvm::numbers::log2e);
}

MaskBand mlir::attn::detail::getMaskBand(MLIRContext *ctx,
                                         const AttentionSpec &spec,
                                         const AttentionKernelArgs &args) {
  return {spec.mask.getAttr(ctx), args.windowLeft, args.windowRight};
}

KeyBlocks mlir::attn::detail::getKeyBlocks(Emitter &e,
                                           const AttentionSpec &spec,
                                           const AttentionKernelArgs &args,
                                           Value off, Value q0, int64_t rows,
                                           int64_t keys) {
  MaskBand mask = getMaskBand(e.b.getContext(), spec, args);
  auto band = [&](Value r) {
    return buildAdmittedKeys(e.b, e.b.getLoc(), mask, e.add(r, off), args.sk);
  };
  Value lastRow = e.sub(e.smin(e.add(q0, e.idx(rows)), args.sq), e.idx(1));
  auto firstBand = band(q0), lastBand = band(lastRow);
  KeyBlocks blocks;
  blocks.begin = e.div(firstBand.first, e.idx(keys));
  blocks.end = arith::CeilDivSIOp::create(e.b, lastBand.second, e.idx(keys));
  blocks.fullFrom = lastBand.first;
  blocks.fullTo = firstBand.second;
  return blocks;
}

SmallVector<Value> mlir::attn::detail::ifFullBlock(
    Emitter &e, Value full, TypeRange types,
    function_ref<SmallVector<Value>(bool masked)> body) {
  ImplicitLocOpBuilder &b = e.b;
  auto ifOp = scf::IfOp::create(b, types, full, /*withElse=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  scf::YieldOp::create(b, body(/*masked=*/false));
  b.setInsertionPointToStart(&ifOp.getElseRegion().front());
  scf::YieldOp::create(b, body(/*masked=*/true));
  return SmallVector<Value>(ifOp.getResults());
}

std::pair<Value, Value>
mlir::attn::detail::getInitialRowState(Emitter &e,
                                       const AttentionKernelArgs &args,
                                       Value head, Value t, double one) {
  Value m0 = e.f(-INFINITY), l0 = e.f(0.0);
  if (args.sinks) {
    m0 = e.fmul(e.loadF32(args.sinks, head), e.f(llvm::numbers::log2e));
    l0 = e.sel(e.eq(t, e.idx(0)), e.f(one), e.f(0.0));
  }
  return {m0, l0};
}

void mlir::attn::detail::writeOutputRow(
    Emitter &e, OnlineSoftmax &softmax, const AttentionSpec &spec,
    const AttentionKernelArgs &args, Value batch, Value head,
    const FragmentLanes &lanes, Value row, int64_t i, Value m, Value l,
    ValueRange acc, int64_t dv, Value outScale) {
  ImplicitLocOpBuilder &b = e.b;
  l = softmax.finalSum(l);
  Value empty = softmax.isEmpty(l);
  e.when(e.slt(row, args.sq), [&] {
    Value oBase =
        getRowOffset(e, spec.layout, batch, args.hq, args.sq, head, row, dv);
    Value inv = e.fdiv(outScale ? outScale : e.f(1.0), l);
    Type elt = getType(b.getContext(), spec.outDtype.value_or(spec.dtype));
    for (int64_t n = 0; n < dv / 8; ++n) {
      SmallVector<Value> pair;
      for (int64_t j = 0; j < 2; ++j) {
        Value a = getAccumulatorElement(b, b.getLoc(), acc, n, i, j);
        Value o = softmax.normalize(a, inv, empty);
        pair.push_back(elt.isF32() ? o : arith::TruncFOp::create(b, elt, o));
      }
      Value col = e.add(e.idx(n * 8), e.mul(lanes.t, e.idx(2)));
      vector::StoreOp::create(
          b, vector::FromElementsOp::create(b, VectorType::get({2}, elt), pair),
          args.o, ValueRange{e.add(oBase, col)}, /*nontemporal=*/false,
          llvm::MaybeAlign(4));
    }
    if (!args.lse)
      return;
    // FP8's P (and so l) carries the exponent offset 2^8.
    Value lse = softmax.lse(outScale ? e.fsub(m, e.f(8.0)) : m, l, empty);
    e.when(e.eq(lanes.t, e.idx(0)), [&] {
      e.store(lse, args.lse,
              e.add(e.mul(e.add(e.mul(batch, args.hq), head), args.sq), row));
    });
  });
}

//===----------------------------------------------------------------------===//
// The thread-per-row body
//===----------------------------------------------------------------------===//

namespace {
/// Emits the thread-per-row body (the file comment's steps 1-5), one method
/// per step.
class BaselineKernel {
public:
  BaselineKernel(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                 const AttentionSpec &spec, const AttentionKernelArgs &args)
      : b(loc, builder), e{b}, spec(spec), args(args),
        qRow(func.getPrivateAttributions()[0]),
        acc(func.getPrivateAttributions()[1]) {}

  /// The whole body: the thread's query row, if it is one of the Sq.
  void emit() {
    Value bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
    h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
    batch = gpu::BlockIdOp::create(b, gpu::Dimension::z);
    Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    i = e.add(e.mul(bx, e.idx(kBlockRows)), tid);
    e.when(e.slt(i, args.sq), [&] {
      auto [lo, hi] = locateKeys();
      loadQuery();
      auto [m0, l0] = initialState();
      auto [m, l] = visitKeys(lo, hi, m0, l0);
      writeOutput(m, l);
    });
  }

private:
  /// Step 1: the KV head of query head h, and the admitted keys of row i.
  std::pair<Value, Value> locateKeys() {
    Value group = e.div(args.hq, args.hkv);
    kvHead = e.div(h, group);
    Value pos = e.add(i, e.sub(args.sk, args.sq));
    return buildAdmittedKeys(
        b, b.getLoc(), getMaskBand(b.getContext(), spec, args), pos, args.sk);
  }

  Value rowOffset(Value heads, Value seqLen, Value head, Value s, int64_t dim) {
    return getRowOffset(e, spec.layout, batch, heads, seqLen, head, s, dim);
  }

  /// Step 2: the query row into private memory (f32); the accumulator
  /// cleared.
  void loadQuery() {
    Value qBase = rowOffset(args.hq, args.sq, h, i, spec.headDim);
    c0 = e.idx(0);
    c1 = e.idx(1);
    cD = e.idx(spec.headDim);
    cDv = e.idx(spec.valueHeadDim);
    e.loop(c0, cD, c1, [&](Value d) {
      e.store(e.loadF32(args.q, e.add(qBase, d)), qRow, d);
    });
    e.loop(c0, cDv, c1, [&](Value d) { e.store(e.f(0.0), acc, d); });
  }

  /// Step 3: the running max and sum before the first key (the sink's
  /// logit and weight 1 with sinks).
  std::pair<Value, Value> initialState() {
    Value m0 = e.f(-INFINITY), l0 = e.f(0.0);
    if (args.sinks) {
      m0 = e.fmul(e.loadF32(args.sinks, h), e.f(llvm::numbers::log2e));
      l0 = e.f(1.0);
    }
    return {m0, l0};
  }

  /// The logit of key j in the exp2 domain: q·k scaled, softcapped, biased.
  Value logit(Value j) {
    Value kBase = rowOffset(args.hkv, args.sk, kvHead, j, spec.headDim);
    Value dot = e.loop(c0, cD, c1, ValueRange{e.f(0.0)},
                       [&](Value d, ValueRange s) -> SmallVector<Value> {
                         Value qd = e.load(qRow, d);
                         Value kd = e.loadF32(args.k, e.add(kBase, d));
                         return {e.fadd(e.fmul(qd, kd), s[0])};
                       })[0];
    Value s = e.fmul(dot, factor);
    if (spec.softcap)
      s = e.fmul(e.tanh(s), getSoftcapFactor(e, spec, args));
    if (args.bias) {
      Value off = getBiasOffset(e, spec, args, batch, h, i, j, c0, c1);
      s = e.fadd(s,
                 e.fmul(e.loadF32(args.bias, off), e.f(llvm::numbers::log2e)));
    }
    return s;
  }

  /// Step 4: the online softmax over the admitted keys [lo, hi); returns
  /// the final running max and sum, the weighted values in `acc`.
  std::pair<Value, Value> visitKeys(Value lo, Value hi, Value m0, Value l0) {
    factor = getScoreFactor(e, spec, args);
    ValueRange ml =
        e.loop(lo, e.smax(lo, hi), c1, ValueRange{m0, l0},
               [&](Value j, ValueRange iter) -> SmallVector<Value> {
                 Value m = iter[0], l = iter[1];
                 Value s = logit(j);
                 Value mNew = e.fmax(m, s);
                 Value alpha = e.exp2(e.fsub(m, mNew));
                 Value p = e.exp2(e.fsub(s, mNew));
                 Value lNew = e.fadd(e.fmul(l, alpha), p);
                 Value vBase =
                     rowOffset(args.hkv, args.sk, kvHead, j, spec.valueHeadDim);
                 e.loop(c0, cDv, c1, [&](Value d) {
                   Value ad = e.load(acc, d);
                   Value vd = e.loadF32(args.v, e.add(vBase, d));
                   e.store(e.fadd(e.fmul(p, vd), e.fmul(ad, alpha)), acc, d);
                 });
                 return {mNew, lNew};
               });
    return {ml[0], ml[1]};
  }

  /// Step 5: O = acc / l (0 for a row without keys) and the LSE.
  void writeOutput(Value m, Value l) {
    Value empty = e.feq(l, e.f(0.0));
    Value oBase = rowOffset(args.hq, args.sq, h, i, spec.valueHeadDim);
    Type elt = getType(b.getContext(), spec.dtype);
    e.loop(c0, cDv, c1, [&](Value d) {
      Value o = e.fdiv(e.load(acc, d), l);
      o = e.sel(empty, e.f(0.0), o);
      if (!elt.isF32())
        o = arith::TruncFOp::create(b, elt, o);
      e.store(o, args.o, e.add(oBase, d));
    });
    if (!args.lse)
      return;
    Value r = e.fmul(e.fadd(m, e.log2(l)), e.f(llvm::numbers::ln2));
    r = e.sel(empty, e.f(-INFINITY), r);
    Value off = e.add(e.mul(e.add(e.mul(batch, args.hq), h), args.sq), i);
    e.store(r, args.lse, off);
  }

  ImplicitLocOpBuilder b;
  Emitter e;
  const AttentionSpec &spec;
  const AttentionKernelArgs &args;
  /// Private memory: the query row and the output accumulator (f32).
  Value qRow, acc;
  /// The query head, batch, query row and KV head of the thread.
  Value h, batch, i, kvHead;
  Value c0, c1, cD, cDv;
  /// scale·log2 e (scale / softcap before the tanh).
  Value factor;
};
} // namespace

void mlir::attn::detail::buildBaselineKernelBody(
    OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
    const AttentionSpec &spec, const AttentionKernelArgs &args) {
  BaselineKernel(builder, loc, func, spec, args).emit();
}
