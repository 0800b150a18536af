//===- AttnToGPU.cpp - attn.attention to GPU kernels ----------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The attn-lower-to-gpu pass: the GPU kernels of attn's ops, one gpu.module
// per kernel, and their calling contracts (the module's attn.kernels). Each
// kernel family is generated from kernel specs in a file of its own
// (Kernels.h).
//
//===----------------------------------------------------------------------===//

#include "KernelCommon.h"
#include "Kernels.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/Conversion/Passes.h"
#include "attn/IR/AttnOps.h"
#include "attn/IR/KernelSpecOpInterface.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSwitch.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNLOWERTOGPU
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

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
    for (GatedDeltaRuleOp op : linearOps)
      if (failed(buildGatedDeltaKernels(builder, module, op, manifests)))
        return signalPassFailure();
    // Sparse attention: the paged kernels it runs on, NSA's block selection
    // and the DSA indexer's scores (NSA's attention runs on the paged and
    // attention kernels).
    for (SparseAttentionOp op : sparseOps)
      if (failed(buildSparseAttentionKernels(builder, module, op, manifests)))
        return signalPassFailure();
    for (NsaOp op : nsaOps)
      if (failed(buildNsaKernels(builder, module, op, manifests)))
        return signalPassFailure();
    for (LightningIndexerOp op : indexerOps)
      if (failed(buildIndexerKernels(builder, module, op, manifests)))
        return signalPassFailure();
    for (AttentionOp op : ops) {
      SmallVector<KernelSpec> specs;
      if (failed(cast<KernelSpecOpInterface>(op.getOperation())
                     .getKernelSpecs(specs)))
        return signalPassFailure();
      auto spec = std::get<AttentionSpec>(specs.front());
      spec.kernel = llvm::StringSwitch<AttentionKernelKind>(kernel)
                        .Case("baseline", AttentionKernelKind::Baseline)
                        .Case("mma", AttentionKernelKind::Mma)
                        .Case("wgmma", AttentionKernelKind::Wgmma)
                        .Default(AttentionKernelKind::Auto);
      // The block sizes are the mma.sync kernel's (auto then takes it where
      // the variant allows); the baseline and wgmma kernels ignore them.
      if (spec.kernel == AttentionKernelKind::Auto ||
          spec.kernel == AttentionKernelKind::Mma) {
        spec.blockQ = blockQ;
        spec.blockKV = blockKV;
      }
      std::string whyBaseline, why;
      FailureOr<AttentionSpec> resolved =
          attn::detail::resolveAttentionKernel(spec, chip, &whyBaseline, &why);
      if (failed(resolved)) {
        op.emitOpError(why);
        return signalPassFailure();
      }
      if (spec.kernel == AttentionKernelKind::Auto &&
          resolved->kernel == AttentionKernelKind::Baseline) {
        // No tensor-core kernel takes the variant: say so, or refuse.
        if (requireTensorCores) {
          op.emitOpError() << "no tensor-core kernel takes this variant ("
                           << whyBaseline
                           << ") and require-tensor-cores is set";
          return signalPassFailure();
        }
        op.emitRemark() << "runs on the thread-per-row baseline kernel: no "
                           "tensor-core kernel takes this variant ("
                        << whyBaseline << ")";
      }
      if (failed(attn::detail::buildAttentionKernels(
              builder, module, *resolved, op.getLoc(),
              [&] { return op.emitOpError(); }, manifests)))
        return signalPassFailure();
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
