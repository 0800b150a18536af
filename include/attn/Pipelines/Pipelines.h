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
  PassOptions::Option<std::string> mpi{
      *this, "mpi",
      llvm::cl::desc("For a partitioned (SPMD) module: lower its shard ops "
                     "to calls of this MPI's C API, mpich or openmpi (empty: "
                     "the module has no shard ops)"),
      llvm::cl::init("")};
};

/// Lowers a module -- attn ops and the func/tensor/linalg/tosa/arith/math code
/// around them -- to the LLVM dialect for the host, ready for mlir-runner or
/// mlir-translate: TOSA to linalg, attn-tile, aggregate decomposition,
/// one-shot bufferization, loops, deallocation, then the LLVM conversions.
/// With `mpi`, a module that shard-partition made SPMD first has its shard
/// ops lowered to MPI (attn-lower-all-slice, convert-shard-to-mpi) and, at
/// the end, its MPI ops to calls of that MPI (attn-mpi-to-llvm): one
/// program that every rank of `mpirun` runs (docs/sharding.md).
void buildAttnToCPUPipeline(OpPassManager &pm, const AttnToCPUOptions &options);

/// The options every GPU pipeline has: the target and how kernels are
/// picked (the attn-to-ptx and attn-to-llvm pipelines).
template <typename Derived>
struct GPUPipelineOptions : public PassPipelineOptions<Derived> {
  template <typename T>
  using Option = typename PassPipelineOptions<Derived>::template Option<T>;

  Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("Target: sm_80, sm_90 or sm_90a (others are rejected)"),
      llvm::cl::init("sm_90a")};
  Option<int> optLevel{*this, "opt-level",
                       llvm::cl::desc("LLVM optimization level"),
                       llvm::cl::init(3)};
  Option<std::string> cudaPath{
      *this, "cuda-path",
      llvm::cl::desc("CUDA toolkit (for libdevice); default: $CUDA_HOME, "
                     "$CUDA_PATH, $CUDA_ROOT or /usr/local/cuda"),
      llvm::cl::init("")};
  Option<std::string> kernel{
      *this, "kernel",
      llvm::cl::desc("Kernel body: baseline (thread per row), mma (mma.sync "
                     "tensor cores), wgmma (sm_90a TMA + wgmma) or auto (the "
                     "fastest the variant and chip allow)"),
      llvm::cl::init("auto")};
  Option<bool> requireTensorCores{
      *this, "require-tensor-cores",
      llvm::cl::desc("With kernel=auto, an attention variant that no "
                     "tensor-core kernel takes is an error instead of a "
                     "remark and a baseline kernel"),
      llvm::cl::init(false)};
  Option<int64_t> blockQ{
      *this, "block-q",
      llvm::cl::desc("Query rows per block of the tensor-core kernel: 64 or "
                     "128 (0: by head dim; with kernel=wgmma, 64 runs one "
                     "consumer warpgroup, two blocks an SM)"),
      llvm::cl::init(0)};
  Option<int64_t> blockKV{
      *this, "block-kv",
      llvm::cl::desc("Keys per step of the tensor-core kernel: 16, 32, 64 or "
                     "128 (0: by head dim); with kernel=wgmma, a multiple of "
                     "16 up to 256"),
      llvm::cl::init(0)};
  Option<bool> lengthAlternatives{
      *this, "length-alternatives",
      llvm::cl::desc("Also build a dense variant's length alternatives "
                     "(kernels with other tiling, preferred at some sizes), "
                     "chosen between at each launch"),
      llvm::cl::init(true)};
  Option<bool> persistent{
      *this, "persistent",
      llvm::cl::desc("Dense sm_90a wgmma kernels take the persistent "
                     "schedule where it takes the variant (blocks walk the "
                     "query tiles)"),
      llvm::cl::init(false)};
  Option<bool> fuse{
      *this, "fuse",
      llvm::cl::desc("Run attn-fuse first, so unfused graphs become kernels"),
      llvm::cl::init(true)};
  Option<bool> specializeValues{
      *this, "specialize-values",
      llvm::cl::desc("Compile scale, softcap and window extents into the "
                     "kernels instead of passing them as arguments"),
      llvm::cl::init(false)};
};

/// Options of the attn-to-ptx pipeline.
struct AttnToPTXOptions : public GPUPipelineOptions<AttnToPTXOptions> {
  Option<std::string> tensorMaps{
      *this, "tensor-maps",
      llvm::cl::desc("How the wgmma kernel takes its TMA descriptors: param "
                     "(128-byte __grid_constant__ parameters, nothing copied "
                     "to the device) or global (pointers to device memory)"),
      llvm::cl::init("param")};
};

/// Compiles every attention of a module (attn ops, or unfused graphs with
/// `fuse`) to one specialized kernel per variant, each in a gpu.binary holding
/// PTX for `chip`; host code is dropped and the kernels' calling contracts are
/// kept in the module attribute `attn.kernels`.
void buildAttnToPTXPipeline(OpPassManager &pm, const AttnToPTXOptions &options);

/// Options of the attn-to-llvm pipeline.
struct AttnToLLVMOptions : public GPUPipelineOptions<AttnToLLVMOptions> {
  Option<int64_t> threads{
      *this, "threads",
      llvm::cl::desc("Threads per block of the kernels made of the linalg "
                     "code around attention"),
      llvm::cl::init(256)};
};

/// Compiles a whole module -- its functions, the attention in them (attn
/// ops, or unfused graphs with `fuse`) and the tensor code around it -- to
/// one LLVM-dialect module for the host that runs on the GPU: attention on
/// one specialized kernel per variant (launched as its manifest says), the
/// linalg/tensor/tosa code on kernels made by upstream's parallel-loop
/// lowering, every tensor in device memory, the kernels embedded as
/// gpu.binary, the host lowered with gpu-to-llvm. Public functions get the
/// C interface. The result translates with mlir-translate --mlir-to-llvmir
/// and links against libattn_runtime.
void buildAttnToLLVMPipeline(OpPassManager &pm,
                             const AttnToLLVMOptions &options);

/// Registers the attn pipelines (attn-to-cpu, attn-to-ptx, attn-to-llvm)
/// with the pass registry.
void registerAttnPipelines();

} // namespace attn
} // namespace mlir

#endif // ATTN_PIPELINES_PIPELINES_H
