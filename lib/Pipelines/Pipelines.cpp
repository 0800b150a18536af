//===- Pipelines.cpp - attn compilation pipelines -------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attn/Pipelines/Pipelines.h"
#include "attn/Conversion/Passes.h"
#include "attn/IR/AttnOps.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/TosaToLinalg/TosaToLinalg.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"

#include <cstdlib>

using namespace mlir;
using namespace mlir::attn;

/// Upstream front ends: TOSA to linalg/arith/tensor, element-wise ops on
/// tensors to linalg.
static void addFrontendLowering(OpPassManager &pm) {
  OpPassManager &func = pm.nest<func::FuncOp>();
  // Result types as static as the operands allow, first: the verifiers
  // accept a result less static than its operands (`tosa.reduce_max` of a
  // tensor<8x16x16xf32> typed tensor<8x?x1xf32>), and LLVM 22's
  // tosa-to-linalg crashes on such a reduction and leaves a transpose or an
  // unranked result unconverted (docs/known-upstream-issues.md). Upstream's
  // shape inference refines those types and casts back where non-TOSA users
  // (func.return) keep the old ones.
  func.addPass(tosa::createTosaInferShapesPass());
  func.addPass(tosa::createTosaToLinalgNamed());
  func.addPass(tosa::createTosaToLinalg());
  func.addPass(createTosaToArithPass());
  func.addPass(createTosaToTensorPass());
  // arith/math on tensors (as frontends and attn-fuse's casts emit) to linalg.
  func.addPass(createConvertElementwiseToLinalgPass());
}

/// attn ops to tiled loops on tensors; linalg.softmax to generics.
static void addAttentionLowering(OpPassManager &pm,
                                 const AttnToCPUOptions &options) {
  OpPassManager &func = pm.nest<func::FuncOp>();
  AttnTileOptions tile;
  tile.blockQ = options.blockQ;
  tile.blockKV = options.blockKV;
  func.addPass(createAttnDecomposePaged());
  func.addPass(createAttnDecomposeSparse());
  func.addPass(createAttnDecomposeGatedDelta());
  func.addPass(createAttnTile(tile));
  func.addPass(createAttnDecomposeAggregates());
}

/// Tensors to buffers, loops, deallocation.
static void addBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  // The online-softmax state is recomputed each step.
  bufferize.allowReturnAllocsFromLoops = true;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  OpPassManager &func = pm.nest<func::FuncOp>();
  func.addPass(createConvertLinalgToLoopsPass());
  func.addPass(createForallToForLoopPass());
  bufferization::buildBufferDeallocationPipeline(pm);
}

/// What is left of a host module after its dialect-specific lowering
/// (math, GPU) to the LLVM dialect.
static void addFinalLLVMConversions(OpPassManager &pm) {
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

/// Loops and memrefs to the LLVM dialect; MPI ops, if `mpi` names an
/// implementation, to calls of its C API.
static void addLLVMLowering(OpPassManager &pm, StringRef mpi) {
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.nest<func::FuncOp>().addPass(math::createMathExpandOpsPass());
  // FP8 (e4m3) conversions, which arith-to-llvm cannot lower.
  pm.nest<func::FuncOp>().addPass(createAttnExpandF8E4M3FN());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  if (!mpi.empty()) {
    AttnMPIToLLVMOptions lower;
    lower.implementation = mpi.str();
    pm.addPass(createAttnMPIToLLVM(lower));
  }
  addFinalLLVMConversions(pm);
}

/// The communication of a partitioned (SPMD) module to MPI ops: the
/// process-local slices, then upstream's conversion of the collectives and
/// process indices.
static void addShardToMPI(OpPassManager &pm) {
  pm.addPass(createAttnLowerAllSlice());
  pm.addPass(createConvertShardToMPIPass());
}

namespace {
/// attn-to-cpu lowers the code of functions: its tensor-level passes nest on
/// func.func, so code at the module's top level (a graph region they never
/// visit) would reach the module-wide LLVM conversions half-lowered and
/// leave invalid IR. Such code is rejected first, at the op.
struct CheckHostCodeInFunctionsPass
    : PassWrapper<CheckHostCodeInFunctionsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CheckHostCodeInFunctionsPass)
  StringRef getArgument() const final { return "attn-check-host-code"; }
  StringRef getDescription() const final {
    return "Reject code at the module's top level (attn-to-cpu lowers "
           "functions)";
  }
  void runOnOperation() override {
    for (Operation &op : *getOperation().getBody())
      if (!isa<SymbolOpInterface>(op)) {
        op.emitOpError("is at the module's top level: attn-to-cpu lowers the "
                       "code of functions; move it into a func.func");
        return signalPassFailure();
      }
    // Upstream's tensor reshape verifier reads reassociation indices as
    // 32-bit affine dims (2^32 + d passes as d) and does not compare an
    // expand_shape's output_shape with its type; bufferization then makes a
    // memref reshape that its verifier rejects (docs/known-upstream-
    // issues.md). Both are reported here instead.
    WalkResult walk = getOperation().walk([](Operation *op) {
      if (!isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(op))
        return WalkResult::advance();
      if (!getReshapeReassociation(op)) {
        op->emitOpError("reassociation does not group the dims of its "
                        "higher-rank side into consecutive runs (an index "
                        "past 2^32 passes upstream's verifier)");
        return WalkResult::interrupt();
      }
      // Upstream's verifier does not compare a static output_shape with the
      // result type; the memref one does, after bufferization.
      if (auto e = dyn_cast<tensor::ExpandShapeOp>(op))
        for (auto [i, size] : llvm::enumerate(e.getStaticOutputShape()))
          if (!ShapedType::isDynamic(size) &&
              !e.getResultType().isDynamicDim(i) &&
              size != e.getResultType().getDimSize(i)) {
            op->emitOpError()
                << "output_shape size " << size << " of dim " << i
                << " differs from the result type " << e.getResultType();
            return WalkResult::interrupt();
          }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace

void mlir::attn::buildAttnToCPUPipeline(OpPassManager &pm,
                                        const AttnToCPUOptions &options) {
  pm.addPass(std::make_unique<CheckHostCodeInFunctionsPass>());
  if (!options.mpi.empty())
    addShardToMPI(pm);
  addFrontendLowering(pm);
  addAttentionLowering(pm, options);
  addBufferization(pm);
  addLLVMLowering(pm, options.mpi);
}

/// The CUDA toolkit whose libdevice the kernels link (math functions such as
/// tanh): the option, else the usual environment variables, else the
/// standard install location.
static std::string getCUDAToolkitPath(StringRef option) {
  if (!option.empty())
    return option.str();
  for (const char *var : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"})
    if (const char *value = std::getenv(var))
      if (*value)
        return value;
  if (llvm::sys::fs::is_directory("/usr/local/cuda"))
    return "/usr/local/cuda";
  return "";
}

/// The kernel-generator options of a GPU pipeline.
template <typename Options>
static AttnLowerToGPUOptions getLowerToGPUOptions(const Options &options) {
  AttnLowerToGPUOptions lower;
  lower.kernel = options.kernel;
  lower.requireTensorCores = options.requireTensorCores;
  lower.blockQ = options.blockQ;
  lower.chip = options.chip;
  lower.blockKV = options.blockKV;
  lower.lengthAlternatives = options.lengthAlternatives;
  lower.persistent = options.persistent;
  lower.specializeValues = options.specializeValues;
  return lower;
}

/// Every gpu.module to a gpu.binary of PTX for the chip. With
/// `lowerAffine`, affine ops in the kernels are lowered first (the program
/// pipeline's outlined loops index with affine.apply; attn's kernels have
/// none).
template <typename Options>
static void addKernelCompilation(OpPassManager &pm, const Options &options,
                                 bool lowerAffine) {
  // CSE only: canonicalizing the freshly built kernels took up to 0.9 s of a
  // 1.6 s compile (bf16 mma.sync fragments). LLVM's optimizer does the rest;
  // a canonicalize + CSE after the NVVM conversion changed no byte of the
  // PTX of any kernel of the test matrices (sm_80 and sm_90a) and cost
  // ~0.04 s per kernel, so there is none.
  pm.addNestedPass<gpu::GPUModuleOp>(createCSEPass());

  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = "+ptx80";
  target.optLevel = options.optLevel;
  pm.addPass(createGpuNVVMAttachTarget(target));
  OpPassManager &gpu = pm.nest<gpu::GPUModuleOp>();
  if (lowerAffine)
    gpu.addPass(createLowerAffinePass());
  gpu.addPass(createSCFToControlFlowPass());
  gpu.addPass(createConvertNVGPUToNVVMPass());
  gpu.addPass(createConvertGpuOpsToNVVMOps());
  // NVVM ops that are emitted as inline PTX (mbarrier waits, wgmma).
  gpu.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  // TMA descriptors the manifests pass by value become byval parameters.
  pm.addPass(createAttnGPUTensorMapParams());
  // gpu-module-to-binary{format=isa} without LLVM's SLP vectorizer.
  AttnGPUModuleToPTXOptions binary;
  binary.toolkitPath = getCUDAToolkitPath(options.cudaPath);
  pm.addPass(createAttnGPUModuleToPTX(binary));
}

/// attn-fuse for the GPU pipelines: forward attention only, since
/// attn.attention_grad has no GPU kernels yet (a training graph stays
/// unfused linalg there, as before the backward was recognized). On the CPU,
/// `attn-fuse` then `attn-to-cpu` fuses and runs training graphs.
static std::unique_ptr<Pass> createPipelineFuse() {
  AttnFuseOptions options;
  options.fuseBackward = false;
  return createAttnFuse(options);
}

void mlir::attn::buildAttnToPTXPipeline(OpPassManager &pm,
                                        const AttnToPTXOptions &options) {
  if (options.fuse)
    pm.nest<func::FuncOp>().addPass(createPipelineFuse());
  AttnLowerToGPUOptions lower = getLowerToGPUOptions(options);
  lower.dropHost = true;
  lower.tensorMaps = options.tensorMaps;
  pm.addPass(createAttnLowerToGPU(lower));
  addKernelCompilation(pm, options, /*lowerAffine=*/false);
}

/// Bufferization of a GPU program: every function boundary with identity
/// layouts (the C interface's callers pass dense tensors, which are never
/// written), results owned by the caller, buffers freed at the end of the
/// function and moved to the device (attn-gpu-device-memory says why not
/// upstream's buffer deallocation).
static void addProgramBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(createAttnProgramInterface());
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createAttnGPUDeviceMemory());
}

/// The linalg code around attention to kernels: parallel loops, shaped
/// and mapped to blocks and threads, converted to gpu.launch and outlined.
static void addLoopsToGPU(OpPassManager &pm, const AttnToLLVMOptions &options) {
  OpPassManager &func = pm.nest<func::FuncOp>();
  func.addPass(createConvertLinalgToParallelLoopsPass());
  func.addPass(createCanonicalizerPass());
  AttnGPUMapLoopsOptions map;
  map.threads = options.threads;
  func.addPass(createAttnGPUMapLoops(map));
  func.addPass(createConvertParallelLoopToGpuPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createAttnGPUCheckHostAccess());
  // One stream per function call, the launches, allocations and copies
  // ordered on it instead of a synchronization after each.
  pm.nest<func::FuncOp>().addPass(createGpuAsyncRegionPass());
}

/// The host to the LLVM dialect, launches to runtime calls (libattn_runtime
/// implements the mgpu* ABI gpu-to-llvm targets).
static void addHostLowering(OpPassManager &pm) {
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVGPUToNVVMPass());
  pm.addPass(createGpuToLLVMConversionPass());
  addFinalLLVMConversions(pm);
}

void mlir::attn::buildAttnToLLVMPipeline(OpPassManager &pm,
                                         const AttnToLLVMOptions &options) {
  pm.addPass(std::make_unique<CheckHostCodeInFunctionsPass>());
  if (options.fuse)
    pm.nest<func::FuncOp>().addPass(createPipelineFuse());
  addFrontendLowering(pm);
  AttnLowerToGPUOptions lower = getLowerToGPUOptions(options);
  lower.launch = true;
  pm.addPass(createAttnLowerToGPU(lower));
  addProgramBufferization(pm);
  addLoopsToGPU(pm, options);
  addKernelCompilation(pm, options, /*lowerAffine=*/true);
  addHostLowering(pm);
}

void mlir::attn::registerAttnPipelines() {
  PassPipelineRegistration<AttnToPTXOptions>(
      "attn-to-ptx",
      "Compile every attention of a module to one PTX kernel per variant "
      "(gpu.binary), with its calling contract in attn.kernels",
      buildAttnToPTXPipeline);
  PassPipelineRegistration<AttnToLLVMOptions>(
      "attn-to-llvm",
      "Compile a whole module to a GPU program: host code in the LLVM "
      "dialect launching attn's kernels and the kernels of the code around "
      "them (gpu.binary), for mlir-translate and libattn_runtime",
      buildAttnToLLVMPipeline);
  PassPipelineRegistration<AttnToCPUOptions>(
      "attn-to-cpu",
      "Lower attn ops and the surrounding tensor/linalg/tosa code to the LLVM "
      "dialect for the host (mlir-runner)",
      buildAttnToCPUPipeline);
}
