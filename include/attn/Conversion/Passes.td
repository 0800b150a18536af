//===- Passes.td - attn conversion passes ------------------*- tablegen -*-===//

#ifndef ATTN_CONVERSION_PASSES_TD
#define ATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnLowerToGPU : Pass<"attn-lower-to-gpu", "ModuleOp"> {
  let summary = "Generate one specialized GPU kernel per attn.attention variant";
  let description = [{
    For every `attn.attention` in the module, adds a `gpu.func` kernel in a
    `gpu.module` of the same name, specialized for the op's variant (element
    type, head dims, layout, mask, scale, softcap, bias broadcast, sinks,
    LSE); batch, head counts and sequence lengths are kernel arguments. One
    kernel is generated per distinct variant. The kernel's calling contract
    (parameters in order with role, dtype and shape, grid and block as
    functions of the sizes, dynamic shared memory) is recorded as JSON in the
    module attribute `attn.kernels`, which `attn-compile` writes next to the
    PTX.

    Current kernel (the correctness baseline of the GPU path): a thread block
    per (query block of 128 rows, query head, batch), a thread per query row,
    the online softmax over exactly the admitted keys of the row (band-limited
    like attn-tile), f32 accumulation, GQA by index arithmetic. The tensor-core
    kernel (cp.async, ldmatrix, mma.sync) replaces its body; the contract stays.

    With `drop-host`, host functions are removed so that the module holds only
    the kernels (for bundles).
  }];
  let options = [
    Option<"dropHost", "drop-host", "bool", /*default=*/"false",
           "Remove the host functions, keeping only the gpu.module">,
    Option<"kernel", "kernel", "std::string", /*default=*/"\"baseline\"",
           "Kernel body: baseline (every variant), mma (mma.sync tensor "
           "cores; f16/bf16, head dims % 16 == 0 up to 128) or auto (mma where "
           "eligible)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::vector::VectorDialect",
    "::mlir::scf::SCFDialect",
  ];
}

#endif // ATTN_CONVERSION_PASSES_TD
