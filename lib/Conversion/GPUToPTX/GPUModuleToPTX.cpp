//===- GPUModuleToPTX.cpp - gpu.module to PTX with attn's LLVM pipeline ---===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// gpu-module-to-binary{format=isa} for NVVM targets, with one difference:
// the LLVM optimization pipeline. Upstream runs the per-module default
// pipeline with every vectorizer on; the SLP vectorizer finds nothing to do
// in attn's kernels (the PTX of the whole variant matrix is byte-identical
// with and without it) but took up to a third of a kernel's compile time.
// The rest (translation, libdevice linking, code generation at the target's
// level) is the upstream NVVM serializer's.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/CompilationInterfaces.h"
#include "mlir/IR/Threading.h"
#include "mlir/Target/LLVM/NVVM/Utils.h"

#include "llvm/IR/Module.h"
#include "llvm/Passes/OptimizationLevel.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Target/TargetMachine.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNGPUMODULETOPTX
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

namespace {

/// The NVVM serializer with attn's optimization pipeline; emits PTX.
class PTXSerializer : public NVVM::SerializeGPUModuleBase {
public:
  using SerializeGPUModuleBase::SerializeGPUModuleBase;

protected:
  LogicalResult optimizeModule(llvm::Module &module, int level) override {
    std::optional<llvm::OptimizationLevel> optLevel;
    switch (level) {
    case 0:
      optLevel = llvm::OptimizationLevel::O0;
      break;
    case 1:
      optLevel = llvm::OptimizationLevel::O1;
      break;
    case 2:
      optLevel = llvm::OptimizationLevel::O2;
      break;
    case 3:
      optLevel = llvm::OptimizationLevel::O3;
      break;
    default:
      return getOperation().emitError()
             << "invalid LLVM optimization level " << level;
    }
    FailureOr<llvm::TargetMachine *> machine = getOrCreateTargetMachine();
    if (failed(machine))
      return getOperation().emitError()
             << "no LLVM target machine for " << triple;
    (*machine)->setOptLevel(static_cast<llvm::CodeGenOptLevel>(level));

    llvm::PipelineTuningOptions tuning;
    tuning.LoopUnrolling = true;
    tuning.LoopInterleaving = true;
    tuning.LoopVectorization = true;
    tuning.SLPVectorization = false;
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder builder(*machine, tuning);
    builder.registerModuleAnalyses(mam);
    builder.registerCGSCCAnalyses(cgam);
    builder.registerFunctionAnalyses(fam);
    builder.registerLoopAnalyses(lam);
    builder.crossRegisterProxies(lam, fam, cgam, mam);
    llvm::ModulePassManager passes =
        builder.buildPerModuleDefaultPipeline(*optLevel);
    passes.run(module, mam);
    return success();
  }

  FailureOr<SmallVector<char, 0>>
  moduleToObject(llvm::Module &module) override {
    // Upstream's serializer goes on when it finds no libdevice, and the PTX
    // then declares the __nv_* math functions as externs that no driver
    // resolves: the kernel would fail to load far from the cause.
    SmallVector<StringRef> unresolved;
    for (llvm::Function &f : module)
      if (f.isDeclaration() && f.getName().starts_with("__nv_"))
        unresolved.push_back(f.getName());
    if (!unresolved.empty()) {
      InFlightDiagnostic diag = getOperation().emitError()
                                << "libdevice functions left unresolved (";
      llvm::interleaveComma(ArrayRef(unresolved).take_front(4), diag);
      if (unresolved.size() > 4)
        diag << ", ...";
      return diag << "): no nvvm/libdevice/libdevice.10.bc in the CUDA "
                     "toolkit '"
                  << toolkitPath
                  << "' (set the toolkit with --cuda-path or $CUDA_HOME)";
    }
    FailureOr<llvm::TargetMachine *> machine = getOrCreateTargetMachine();
    if (failed(machine))
      return getOperation().emitError()
             << "no LLVM target machine for " << triple;
    FailureOr<SmallString<0>> ptx = translateModuleToISA(
        module, **machine, [&] { return getOperation().emitError(); });
    if (failed(ptx))
      return failure();
    return SmallVector<char, 0>(ptx->begin(), ptx->end());
  }
};

struct AttnGPUModuleToPTX
    : public attn::impl::AttnGPUModuleToPTXBase<AttnGPUModuleToPTX> {
  using Base::Base;

  void runOnOperation() override {
    NVVM::SerializeGPUModuleBase::init();
    gpu::TargetOptions options(toolkitPath, /*librariesToLink=*/{},
                               /*cmdOptions=*/{}, /*elfSection=*/{},
                               gpu::CompilationTarget::Assembly);
    // Check the targets, compile every (module, target) pair to PTX in
    // parallel (each in its own LLVM context; a paged variant's split and
    // combine kernels take one core each), then replace the modules.
    auto modules = llvm::to_vector(getOperation().getOps<gpu::GPUModuleOp>());
    struct Job {
      gpu::GPUModuleOp module;
      NVVM::NVVMTargetAttr target;
      std::optional<SmallVector<char, 0>> ptx;
    };
    SmallVector<Job> jobs;
    for (gpu::GPUModuleOp module : modules) {
      ArrayAttr targets = module.getTargetsAttr();
      if (!targets || targets.empty()) {
        module.emitError("the gpu.module has no target; run "
                         "nvvm-attach-target first");
        return signalPassFailure();
      }
      for (Attribute attr : targets) {
        auto target = dyn_cast<NVVM::NVVMTargetAttr>(attr);
        if (!target) {
          module.emitError("attn-gpu-module-to-ptx compiles NVVM targets "
                           "only, not ")
              << attr;
          return signalPassFailure();
        }
        jobs.push_back({module, target, std::nullopt});
      }
    }
    // Every job runs; failures are reported below, in order, from this
    // thread.
    parallelForEach(&getContext(), jobs, [&](Job &job) {
      PTXSerializer serializer(*job.module, job.target, options);
      job.ptx = serializer.run();
    });
    auto job = jobs.begin();
    for (gpu::GPUModuleOp module : modules) {
      SmallVector<Attribute> objects;
      for (; job != jobs.end() && job->module == module; ++job) {
        if (!job->ptx) {
          module.emitError("failed to compile the gpu.module to PTX for ")
              << job->target;
          return signalPassFailure();
        }
        objects.push_back(cast<gpu::TargetAttrInterface>(job->target)
                              .createObject(module, *job->ptx, options));
      }
      OpBuilder builder(module);
      gpu::BinaryOp::create(builder, module.getLoc(), module.getName(),
                            /*offloadingHandler=*/nullptr,
                            builder.getArrayAttr(objects));
      module->erase();
    }
  }
};

} // namespace
