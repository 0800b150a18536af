//===- AttnToGPU.cpp - the attn-lower-to-gpu pass -------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The attn-lower-to-gpu pass: one walk over the ops that run on kernels
// (KernelSpecOpInterface); each states its specs, and the KernelGenerator
// builds their kernels, one gpu.module per kernel, from the specs only
// (each kernel family in a file of its own, Kernels.h).
//
//===----------------------------------------------------------------------===//

#include "HostLaunch.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/Conversion/Passes.h"
#include "attn/IR/AttnOps.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNLOWERTOGPU
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

StringRef mlir::attn::stringifyTensorMapPassing(TensorMapPassing passing) {
  return passing == TensorMapPassing::Param ? "param" : "global";
}

LogicalResult mlir::attn::checkSupportedChip(StringRef chip, std::string *why) {
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
      if (auto name =
              op.getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName()))
        hostSymbols.try_emplace(name.getValue(), &op);
  for (auto gpuModule : module.getOps<gpu::GPUModuleOp>())
    if (Operation *host = hostSymbols.lookup(gpuModule.getName()))
      return host->emitOpError()
             << "is named @" << gpuModule.getName()
             << ", the name of a kernel attn-lower-to-gpu generates for this "
                "module: rename it (kernel names start with attn_)";
  return success();
}

/// Erases everything but the kernels' gpu.modules. The module body is a
/// graph region, so an op may be used by one before or after it, and
/// erasing a value that still has uses corrupts the use lists: every
/// reference is dropped first.
static void dropHostCode(ModuleOp module) {
  SmallVector<Operation *> host;
  for (Operation &op : *module.getBody())
    if (!isa<gpu::GPUModuleOp>(op))
      host.push_back(&op);
  for (Operation *op : host)
    op->dropAllReferences();
  for (Operation *op : host)
    op->erase();
}

/// The prefix of an op's kernel errors where its kernels are another op's
/// (attn.sparse_attention runs on the paged kernels).
static std::string getKernelErrorPrefix(Operation *op, const KernelSpec &spec) {
  StringRef family = getKernelSpecOp(spec);
  if (op->getName().stripDialect() == family)
    return "";
  return family == "paged_attention"
             ? "runs on the paged kernels: "
             : ("runs on the " + family + " kernels: ").str();
}

namespace {
struct AttnLowerToGPUPass
    : public attn::impl::AttnLowerToGPUBase<AttnLowerToGPUPass> {
  using AttnLowerToGPUBase::AttnLowerToGPUBase;

  /// Option errors are located at the first op that needs a kernel, or the
  /// first gpu.module the pipeline would compile for the chip (the module
  /// has no location of its own in a file), without printing it.
  LogicalResult checkOptions(Operation *first) {
    if (kernel != "baseline" && kernel != "mma" && kernel != "wgmma" &&
        kernel != "auto")
      return emitError(first->getLoc())
             << "attn-lower-to-gpu: kernel must be " << kKernelChoices
             << ", got '" << kernel << "'";
    std::string why;
    if (failed(checkSupportedChip(chip, &why)))
      return emitError(first->getLoc()) << "attn-lower-to-gpu: " << why;
    if (tensorMaps != "auto" && tensorMaps != "param" && tensorMaps != "global")
      return emitError(first->getLoc())
             << "attn-lower-to-gpu: tensor-maps must be param, global or "
                "auto, got '"
             << tensorMaps << "'";
    if (launch && tensorMaps == "param")
      return emitError(first->getLoc())
             << "attn-lower-to-gpu: launch passes TMA descriptors in device "
                "memory (gpu.launch_func cannot pass a 128-byte parameter by "
                "value); use tensor-maps=global or auto";
    return success();
  }

  TensorMapPassing getTensorMapPassing() const {
    if (tensorMaps == "global" || (tensorMaps == "auto" && launch))
      return TensorMapPassing::Global;
    return TensorMapPassing::Param;
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Operation *first = nullptr;
    SmallVector<KernelSpecOpInterface> ops;
    module.walk([&](Operation *op) {
      if (!first && (isa_and_nonnull<AttnDialect>(op->getDialect()) ||
                     isa<gpu::GPUModuleOp>(op)))
        first = op;
      if (auto specOp = dyn_cast<KernelSpecOpInterface>(op))
        ops.push_back(specOp);
    });
    if (!first)
      return;
    if (failed(checkOptions(first)))
      return signalPassFailure();
    if (dropHost && launch) {
      emitError(first->getLoc())
          << "attn-lower-to-gpu: drop-host and launch exclude each other";
      return signalPassFailure();
    }
    if (ops.empty())
      return;
    KernelGenerator generator(
        module,
        KernelOptions{chip, kernel, blockQ, blockKV, requireTensorCores,
                      getTensorMapPassing(), lengthAlternatives, persistent});
    IRRewriter rewriter(module.getContext());
    for (KernelSpecOpInterface op : ops) {
      SmallVector<DictionaryAttr> kernels;
      SmallVector<KernelSpec> specs;
      if (failed(op.getKernelSpecs(specs)))
        return signalPassFailure();
      for (const KernelSpec &opSpec : specs) {
        // The op's values are known; unless asked to specialize on them,
        // its kernels take them as arguments (the host launches pass the
        // op's), so that ops differing only in them share a kernel.
        KernelSpec spec = specializeValues ? opSpec : withRuntimeValues(opSpec);
        std::string prefix = getKernelErrorPrefix(op, spec);
        auto diagnose = [&](DiagnosticSeverity severity) {
          if (severity != DiagnosticSeverity::Error)
            return op->emitRemark();
          InFlightDiagnostic diag = op->emitOpError();
          diag << prefix;
          return diag;
        };
        if (failed(generator.add(spec, op->getLoc(), diagnose, &kernels)))
          return signalPassFailure();
      }
      if (launch &&
          failed(replaceWithKernelLaunches(rewriter, op, kernels, module)))
        return signalPassFailure();
    }
    if (launch)
      generator.eraseUnlaunchedAlternatives();
    generator.finish();
    if (failed(checkKernelNamesFree(module)))
      return signalPassFailure();
    if (dropHost)
      dropHostCode(module);
  }
};
} // namespace
