//===- Pipelines.h - attn compilation pipelines -----------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The pipelines from attn (and the upstream code around it) to executable
// code, each built by one function that attn-opt, the plugin and embedding
// compilers call.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_PIPELINES_PIPELINES_H
#define ATTN_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
namespace attn {

/// Options of the attn-to-cpu pipeline.
struct AttnToCPUOptions : public PassPipelineOptions<AttnToCPUOptions> {
  PassOptions::Option<int64_t> blockQ{*this, "block-q",
                                      llvm::cl::desc("Query rows per tile"),
                                      llvm::cl::init(64)};
  PassOptions::Option<int64_t> blockKV{
      *this, "block-kv", llvm::cl::desc("Keys per tile"), llvm::cl::init(64)};
};

/// Lowers a module -- attn ops and the func/tensor/linalg/tosa/arith/math code
/// around them -- to the LLVM dialect for the host, ready for mlir-runner or
/// mlir-translate: TOSA to linalg, attn-tile, aggregate decomposition,
/// one-shot bufferization, loops, deallocation, then the LLVM conversions.
void buildAttnToCPUPipeline(OpPassManager &pm, const AttnToCPUOptions &options);

/// Options of the attn-to-ptx pipeline.
struct AttnToPTXOptions : public PassPipelineOptions<AttnToPTXOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("Target: sm_80, sm_90 or sm_90a (others are rejected)"),
      llvm::cl::init("sm_90a")};
  PassOptions::Option<int> optLevel{*this, "opt-level",
                                    llvm::cl::desc("LLVM optimization level"),
                                    llvm::cl::init(3)};
  PassOptions::Option<std::string> cudaPath{
      *this, "cuda-path",
      llvm::cl::desc("CUDA toolkit (for libdevice); default: $CUDA_HOME, "
                     "$CUDA_PATH, $CUDA_ROOT or /usr/local/cuda"),
      llvm::cl::init("")};
  PassOptions::Option<std::string> kernel{
      *this, "kernel",
      llvm::cl::desc("Kernel body: baseline (thread per row), mma (mma.sync "
                     "tensor cores), wgmma (sm_90a TMA + wgmma) or auto (the "
                     "fastest the variant and chip allow)"),
      llvm::cl::init("auto")};
  PassOptions::Option<bool> requireTensorCores{
      *this, "require-tensor-cores",
      llvm::cl::desc("With kernel=auto, an attention variant that no "
                     "tensor-core kernel takes is an error instead of a "
                     "remark and a baseline kernel"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> blockQ{
      *this, "block-q",
      llvm::cl::desc("Query rows per block of the tensor-core kernel: 64 or "
                     "128 (0: by head dim)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> blockKV{
      *this, "block-kv",
      llvm::cl::desc("Keys per step of the tensor-core kernel: 16, 32, 64 or "
                     "128 (0: by head dim)"),
      llvm::cl::init(0)};
  PassOptions::Option<bool> fuse{
      *this, "fuse",
      llvm::cl::desc("Run attn-fuse first, so unfused graphs become kernels"),
      llvm::cl::init(true)};
};

/// Compiles every attention of a module (attn ops, or unfused graphs with
/// `fuse`) to one specialized kernel per variant, each in a gpu.binary holding
/// PTX for `chip`; host code is dropped and the kernels' calling contracts are
/// kept in the module attribute `attn.kernels`.
void buildAttnToPTXPipeline(OpPassManager &pm, const AttnToPTXOptions &options);

/// Registers the attn pipelines (attn-to-cpu, attn-to-ptx) with the pass
/// registry.
void registerAttnPipelines();

} // namespace attn
} // namespace mlir

#endif // ATTN_PIPELINES_PIPELINES_H
