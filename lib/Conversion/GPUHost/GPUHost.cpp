//===- GPUHost.cpp - the host side of attn's GPU programs -----------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The passes attn-to-llvm adds around upstream's GPU lowering so that a
// whole module -- attention kernels and the linalg code around them --
// becomes a program whose tensors stay in device memory: buffers on the
// device, parallel loops shaped for launches, a check that nothing left on
// the host touches device memory, and the C interface on public functions.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToGPU.h"
#include "attn/Conversion/Passes.h"

#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/LLVMIR/FunctionCallUtils.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include <numeric>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNGPUDEVICEMEMORY
#define GEN_PASS_DEF_ATTNGPUMAPLOOPS
#define GEN_PASS_DEF_ATTNGPUCHECKHOSTACCESS
#define GEN_PASS_DEF_ATTNPROGRAMINTERFACE
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

/// The functions of the host (not the kernels' gpu.modules).
static SmallVector<func::FuncOp> getHostFunctions(ModuleOp module) {
  return llvm::to_vector(module.getOps<func::FuncOp>());
}

/// Replaces a marked cast of a buffer (kTensorMapAttrName) by the TMA
/// descriptor of the buffer, which the kernel takes as a pointer.
static void createTensorMap(RewriterBase &rewriter,
                            UnrealizedConversionCastOp marker, TypeAttr type) {
  Location loc = marker.getLoc();
  auto descriptorType = cast<nvgpu::TensorMapDescriptorType>(type.getValue());
  Value buffer = marker.getInputs().front();
  auto bufferType = cast<MemRefType>(buffer.getType());
  // nvgpu's lowering takes the map's data type from the buffer's element
  // type and knows no FP8 type: an FP8 buffer is given as the bytes (ui8)
  // its descriptor maps, a cast that vanishes in LLVM (both lower to the
  // same memref struct).
  Type boxElt = descriptorType.getTensor().getElementType();
  if (isa<Float8E4M3FNType>(bufferType.getElementType()) &&
      boxElt.isUnsignedInteger(8)) {
    bufferType =
        MemRefType::get(bufferType.getShape(), boxElt, bufferType.getLayout(),
                        bufferType.getMemorySpace());
    buffer =
        UnrealizedConversionCastOp::create(rewriter, loc, bufferType, buffer)
            .getResult(0);
  }
  Value unranked = memref::CastOp::create(
      rewriter, loc,
      UnrankedMemRefType::get(bufferType.getElementType(), Attribute()),
      buffer);
  SmallVector<Value> box;
  for (int64_t size : descriptorType.getTensor().getShape())
    box.push_back(arith::ConstantIndexOp::create(rewriter, loc, size));
  Value descriptor = nvgpu::TmaCreateDescriptorOp::create(
      rewriter, loc, descriptorType, unranked, box);
  rewriter.replaceOpWithNewOp<UnrealizedConversionCastOp>(
      marker, marker.getResultTypes(), descriptor);
}

/// The buffer a memref value views, through casts, reshapes and subviews.
static Value getRootBuffer(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    if (auto view = dyn_cast<ViewLikeOpInterface>(def)) {
      value = view.getViewSource();
      continue;
    }
    if (auto cast = dyn_cast<memref::CastOp>(def)) {
      value = cast.getSource();
      continue;
    }
    break;
  }
  return value;
}

/// Makes every buffer `func` returns one its caller owns: a returned value
/// that is not an allocation of this function (an argument or a view of
/// one), or whose allocation is already returned, is copied.
static void copyUnownedResults(RewriterBase &rewriter, func::ReturnOp ret) {
  llvm::SmallPtrSet<Operation *, 4> returned;
  rewriter.setInsertionPoint(ret);
  for (OpOperand &operand : ret->getOpOperands()) {
    Value value = operand.get();
    auto type = dyn_cast<MemRefType>(value.getType());
    if (!type)
      continue;
    Operation *root = getRootBuffer(value).getDefiningOp();
    if (isa_and_nonnull<memref::AllocOp>(root) && returned.insert(root).second)
      continue;
    Location loc = ret.getLoc();
    SmallVector<Value> sizes;
    for (int64_t dim = 0; dim < type.getRank(); ++dim)
      if (type.isDynamicDim(dim))
        sizes.push_back(memref::DimOp::create(rewriter, loc, value, dim));
    auto copy = memref::AllocOp::create(
        rewriter, loc, MemRefType::get(type.getShape(), type.getElementType()),
        sizes);
    memref::CopyOp::create(rewriter, loc, value, copy);
    Value result = copy;
    if (result.getType() != type)
      result = memref::CastOp::create(rewriter, loc, type, result);
    operand.set(result);
    returned.insert(copy);
  }
}

/// Frees, at the end of `func`, every allocation that is not returned.
static LogicalResult insertDeallocations(RewriterBase &rewriter,
                                         func::FuncOp func) {
  if (!func.getBody().hasOneBlock())
    return func.emitOpError()
           << "has several blocks: GPU programs support structured control "
              "flow only";
  auto ret = cast<func::ReturnOp>(func.front().getTerminator());
  copyUnownedResults(rewriter, ret);
  llvm::SmallPtrSet<Operation *, 8> returned;
  for (Value value : ret.getOperands())
    if (isa<MemRefType>(value.getType()))
      returned.insert(getRootBuffer(value).getDefiningOp());
  SmallVector<memref::AllocOp> allocs;
  WalkResult walk = func.walk([&](memref::AllocOp alloc) {
    if (alloc->getBlock() != &func.front()) {
      alloc.emitOpError() << "allocates in a nested region: GPU programs "
                             "free their buffers at the end of the function";
      return WalkResult::interrupt();
    }
    if (!returned.contains(alloc))
      allocs.push_back(alloc);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  rewriter.setInsertionPoint(ret);
  for (memref::AllocOp alloc : allocs)
    memref::DeallocOp::create(rewriter, alloc.getLoc(), alloc);
  return success();
}

namespace {
struct AttnGPUDeviceMemoryPass
    : public attn::impl::AttnGPUDeviceMemoryBase<AttnGPUDeviceMemoryPass> {
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    for (func::FuncOp func : getHostFunctions(getOperation())) {
      if (func.isExternal())
        continue;
      if (failed(insertDeallocations(rewriter, func)))
        return signalPassFailure();
      func.walk([&](Operation *op) {
        rewriter.setInsertionPoint(op);
        if (auto copy = dyn_cast<memref::CopyOp>(op)) {
          rewriter.replaceOpWithNewOp<linalg::CopyOp>(copy, copy.getSource(),
                                                      copy.getTarget());
        } else if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
          rewriter.replaceOpWithNewOp<gpu::AllocOp>(
              alloc, alloc.getType(), /*asyncToken=*/Type(),
              /*asyncDependencies=*/ValueRange(), alloc.getDynamicSizes(),
              alloc.getSymbolOperands(), /*hostShared=*/false);
        } else if (auto marker = dyn_cast<UnrealizedConversionCastOp>(op)) {
          if (auto type = marker->getAttrOfType<TypeAttr>(kTensorMapAttrName))
            createTensorMap(rewriter, marker, type);
        } else if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
          rewriter.replaceOpWithNewOp<gpu::DeallocOp>(
              dealloc, /*asyncToken=*/Type(),
              /*asyncDependencies=*/ValueRange(), dealloc.getMemref());
        }
      });
    }
  }
};

struct AttnGPUMapLoopsPass
    : public attn::impl::AttnGPUMapLoopsBase<AttnGPUMapLoopsPass> {
  using AttnGPUMapLoopsBase::AttnGPUMapLoopsBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (threads < 1 || threads > 1024) {
      func.emitError() << "attn-gpu-map-loops: threads must be in [1, 1024], "
                          "got "
                       << threads;
      return signalPassFailure();
    }
    SmallVector<scf::ParallelOp> nests;
    func.walk([&](scf::ParallelOp loop) {
      if (!loop->getParentOfType<scf::ParallelOp>() &&
          !loop->getParentOfType<gpu::LaunchOp>())
        nests.push_back(loop);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ParallelOp loop : nests) {
      if (loop.getNumLoops() > 1) {
        // collapseParallelLoops builds the collapsed loop in place of the
        // old one (after the ops computing its bound) and erases the old.
        Block *block = loop->getBlock();
        Operation *next = loop->getNextNode();
        std::vector<unsigned> all(loop.getNumLoops());
        std::iota(all.begin(), all.end(), 0u);
        rewriter.setInsertionPoint(loop);
        collapseParallelLoops(rewriter, loop, {all});
        loop = nullptr;
        for (Operation &op : llvm::make_range(
                 block->begin(), next ? next->getIterator() : block->end()))
          if (auto candidate = dyn_cast<scf::ParallelOp>(&op))
            loop = candidate;
        if (!loop) {
          func.emitError("attn-gpu-map-loops: a collapsed loop vanished");
          return signalPassFailure();
        }
      }
      auto [blocks, lanes] =
          scf::tileParallelLoop(loop, {static_cast<int64_t>(threads)},
                                /*noMinMaxBounds=*/true);
      // Upstream's greedy mapper (gpu-map-parallel-loops) would do the same
      // for these one-dim nests, but it is not exposed as a function.
      if (failed(map(blocks, gpu::Processor::BlockX)) ||
          failed(map(lanes, gpu::Processor::ThreadX)))
        return signalPassFailure();
      // Parallel loops nested deeper run sequentially in each thread.
      WalkResult nested = lanes.getBody()->walk([&](scf::ParallelOp inner) {
        return failed(map(inner, gpu::Processor::Sequential))
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      });
      if (nested.wasInterrupted())
        return signalPassFailure();
    }
  }

  /// Maps every dim of `loop` to `processor` (Sequential for more than one
  /// dim of a hardware processor would be invalid; the nests mapped to
  /// blocks and threads have one dim).
  LogicalResult map(scf::ParallelOp loop, gpu::Processor processor) {
    MLIRContext *ctx = loop.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(1, ctx);
    SmallVector<gpu::ParallelLoopDimMappingAttr> dims(
        loop.getNumLoops(), gpu::ParallelLoopDimMappingAttr::get(
                                ctx, processor, identity, identity));
    if (processor != gpu::Processor::Sequential && dims.size() != 1)
      return loop.emitOpError("attn-gpu-map-loops: expected one dim");
    return gpu::setMappingAttr(loop, dims);
  }
};

struct AttnGPUCheckHostAccessPass
    : public attn::impl::AttnGPUCheckHostAccessBase<
          AttnGPUCheckHostAccessPass> {
  void runOnOperation() override {
    for (func::FuncOp func : getHostFunctions(getOperation())) {
      WalkResult result = func.walk([&](Operation *op) {
        // GPU ops reach device memory from the device; views and dims read
        // only descriptors.
        if (isa<gpu::GPUDialect>(op->getDialect()) ||
            isa<ViewLikeOpInterface, memref::DimOp, memref::CastOp,
                memref::ExtractAlignedPointerAsIndexOp,
                memref::ExtractStridedMetadataOp>(op))
          return WalkResult::advance();
        auto effects = dyn_cast<MemoryEffectOpInterface>(op);
        SmallVector<MemoryEffects::EffectInstance> instances;
        if (effects)
          effects.getEffects(instances);
        for (const MemoryEffects::EffectInstance &effect : instances) {
          Value value = effect.getValue();
          if (!value || !isa<MemRefType>(value.getType()))
            continue;
          if (!isa<MemoryEffects::Read, MemoryEffects::Write>(
                  effect.getEffect()))
            continue;
          if (isa_and_nonnull<memref::AllocaOp>(
                  getRootBuffer(value).getDefiningOp()))
            continue;
          op->emitOpError()
              << "would access device memory on the host: in a GPU program "
                 "every tensor lives on the device and only parallel loops "
                 "(linalg ops with a parallel dim) run there";
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (result.wasInterrupted())
        return signalPassFailure();
    }
  }
};

struct AttnProgramInterfacePass
    : public attn::impl::AttnProgramInterfaceBase<AttnProgramInterfacePass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    auto readOnly = BoolAttr::get(ctx, false);
    for (func::FuncOp func : getHostFunctions(getOperation())) {
      if (!func.isPublic() || func.isExternal())
        continue;
      func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                    UnitAttr::get(ctx));
      for (auto [i, type] : llvm::enumerate(func.getArgumentTypes()))
        if (isa<TensorType>(type))
          func.setArgAttr(
              i, bufferization::BufferizationDialect::kWritableAttrName,
              readOnly);
    }
  }
};
} // namespace
