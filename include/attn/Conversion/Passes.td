//===- Passes.td - attn conversion passes ------------------*- tablegen -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_PASSES_TD
#define ATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnLowerToGPU : Pass<"attn-lower-to-gpu", "ModuleOp"> {
  let summary = "Generate specialized GPU kernels for each attn op variant";
  let description = [{
    Every op that implements `KernelSpecOpInterface` (`attn.attention`,
    `attn.paged_attention`, `attn.gated_delta_rule`, `attn.sparse_attention`,
    `attn.nsa`, `attn.lightning_indexer`) states the kernel specs it needs:
    what its kernels compute, independent of the op (docs/kernel-spec.md).
    The pass generates kernels from those specs only, in one walk: each
    kernel in a `gpu.module` of its own name, specialized for its spec
    (element types, head dims, layout, mask, scale, softcap, bias broadcast,
    sinks, LSE, ...); batch, head counts and sequence lengths are kernel
    arguments. Ops with equal specs share kernels. Each kernel's calling
    contract (parameters in order with role, dtype and shape, grid and block
    as expressions of the sizes, dynamic shared memory, the spec) is a
    dictionary in the module attribute `attn.kernels`, which `attn-compile`
    writes next to the PTX.

    Three kernel bodies share that contract:

    * `wgmma` (`chip=sm_90a`; f16/bf16 or f8E4M3FN with descales, head dims
      in 64-column panels up to 256, D != Dv allowed, known scale):
      FlashAttention-3's design on Hopper. A producer warpgroup issues TMA
      copies (tensor maps passed by the host) of Q and of K/V tiles into
      128-byte-swizzled shared memory on full/empty mbarriers; two consumer
      warpgroups of 64 query rows (registers moved to them with setmaxnreg)
      run S = Q·Kᵀ from shared-memory descriptors and O += P·V with P from
      registers, in ping-pong, with the softmax of one step overlapping the
      P·V of the previous one. At D = Dv = 64 (and with `block-q=64`) a
      block has one consumer warpgroup, and two blocks share an SM.
      `block-kv` sets the keys a step (128 by default, 64 past Dv = 128).
    * `mma` (f16/bf16, head dims multiples of 16 up to 256, known scale): the
      FlashAttention-2 algorithm on sm_80+ tensor cores. A block of 4 warps
      owns 64 or 128 query rows (`block-q`); K/V tiles of `block-kv` keys
      stream through a two-stage cp.async pipeline into XOR-swizzled dynamic
      shared memory; Q·Kᵀ and P·V run as m16n8k16 mma.sync on ldmatrix
      fragments, the online softmax on the accumulator fragments in
      registers. Only the key blocks of the band are visited (block skipping
      for causal/window masks, as in attn-tile), and only blocks that cross
      the band's edge or the sequence end pay for the per-element mask. GQA
      and MQA by index arithmetic (KV head = query head / group).
    * `baseline` (every variant, including f32): a thread per query row, the
      online softmax over exactly the row's admitted keys, f32 accumulation.

    `auto` takes `wgmma` on sm_90a where the variant allows it, else `mma`
    where it allows it, else `baseline`.

    Every `attn.attention_grad` becomes the dQ kernel (which also writes
    each row's Delta = rowsum(dO ⊙ O) to a workspace), then the dK/dV kernel
    and, with sinks, the sink-gradient kernel. Unless `kernel` is
    `baseline`, f16/bf16 variants with head dims that are multiples of 16 up
    to 128 get FlashAttention-2's backward on mma.sync: 4 warps over 64-row
    tiles, a key-major dK/dV kernel that visits only the query blocks whose
    band admits its keys, cp.async double-buffering, every gradient summed
    in registers (no atomics). Other variants run on thread-per-row kernels.
    On `chip=sm_90a`, `auto` (and `kernel=wgmma`, which makes another chip
    or variant an error at the op) puts f16/bf16 head dims that are
    multiples of 64 up to 256 on the sm_90a dQ and dK/dV kernels instead
    (TMA, mbarriers, a producer and
    two consumer warpgroups, wgmma with P, dS, Pᵀ and dSᵀ as register
    operands); `kernel=mma` keeps mma.sync.

    Every `attn.paged_attention` (f16/bf16, static page size, head dims
    multiples of 16: D = Dv up to 256, or D up to 576 with Dv up to 128 or a
    multiple of 128 up to 512, as DeepSeek MLA's 576/512) becomes two
    kernels, whatever `kernel` says: a split kernel (one block per sequence,
    KV head, 16 packed query rows of that KV head's group, key split and,
    for wide value heads, chunk of 128 value columns; key tiles gathered
    through the block table with cp.async; mma.sync; f32 partial output and
    LSE) and a combine kernel (the splits and the sinks into the output and
    LSE). The split count is a launch-time size. Other paged variants (f32,
    wider heads) are rejected with a diagnostic at the op.

    Every `attn.gated_delta_rule` becomes its chunk, state and recurrent
    kernels (tf32 tensor cores for the chunk and state kernels).

    The sparse ops: `attn.sparse_attention` becomes the paged kernels the
    host runs it on (its index lists compacted into page tables of
    `block_size` pages; causal or no mask); `attn.nsa` its block-selection
    kernel (compressed-token probabilities from the compressed branch's LSE
    on mma.sync, on sm_90a on wgmma; block scores, forced blocks, top-n)
    and, for selection
    blocks of a multiple of 16 keys, its selected-branch kernel (a token's
    selected blocks read straight from the selection's output on
    mma.sync, with the three branches' gated sum; its compressed and
    window branches run on the attention kernels of matching variants,
    other selection blocks on the paged kernels); and
    `attn.lightning_indexer` its scores kernel (Σ_h w·relu(q_h·k) on
    mma.sync; the top-k runs on the host). Variants they do not take (f32,
    window masks on sparse attention, NSA with head dims past 256 or more
    than 16 query heads per KV head) are rejected with a diagnostic at the
    op.

    The wgmma kernel's TMA descriptors are, by default, 128-byte kernel
    parameters (`tensor-maps=param`, CUDA's `const __grid_constant__
    CUtensorMap`): a launcher encodes them on the host and passes them with
    the launch, with no copy to the device, so the launch can be captured in
    a CUDA graph. `tensor-maps=global` makes them pointers to descriptors in
    device memory, which is what `launch` needs (`gpu.launch_func` passes
    arguments by pointer to their values). Each tensormap entry of a
    manifest says which (`"passing"`); `attn-gpu-tensor-map-params` gives
    the parameters their `byval` form once the kernel is in the LLVM
    dialect.

    With `drop-host`, host functions are removed so that the module holds only
    the kernels (for bundles).

    With `launch`, each op is replaced by the host code that runs it, on
    tensors, as the launch contract of its kernels' manifests says
    (docs/kernel-spec.md): a `bufferization.to_buffer` of each operand,
    the sizes read off their dims (a size two operands share is checked at
    run time with `cf.assert` where it is dynamic), the results and
    workspaces allocated, TMA descriptors made with
    `nvgpu.tma.create.descriptor`, the grid evaluated from the sizes, one
    `gpu.launch_func` per kernel, and a `bufferization.to_tensor` of each
    result. Paged decode launches its split and combine kernels over f32
    workspaces, with the split count computed at run time from the device's
    SM count (`attnRuntimeMultiprocessorCount` of libattn_runtime, the
    heuristic of `attn.gpu.num_splits`); the gated delta rule its chunk and
    state kernels, workspaces sized by the runtime length. One-shot
    bufferization then sees ordinary IR; the program pipeline
    (`attn-to-llvm`) runs it. Ops without a host lowering yet (the sparse
    ops, paged decode over MLA's latent cache) are an error at the op.
  }];
  let options = [
    Option<"dropHost", "drop-host", "bool", /*default=*/"false",
           "Remove the host functions, keeping only the gpu.module">,
    Option<"launch", "launch", "bool", /*default=*/"false",
           "Replace each op by host code that launches its kernels">,
    Option<"kernel", "kernel", "std::string", /*default=*/"\"baseline\"",
           "Kernel body: baseline (every variant), mma (mma.sync tensor "
           "cores; f16/bf16, head dims % 16 == 0 up to 256), wgmma (sm_90a "
           "TMA + wgmma; f16/bf16 head dims in {64, 128, 192, 256}, FP8 "
           "e4m3 in {128, 256}; with paged decode over a latent cache, "
           "its 64-row tile) or auto (the fastest eligible for the chip)">,
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_80\"",
           "Target chip: sm_80, sm_90 or sm_90a (others are rejected); with "
           "sm_90a, auto picks the TMA + wgmma kernel where the variant "
           "allows it">,
    Option<"requireTensorCores", "require-tensor-cores", "bool",
           /*default=*/"false",
           "With kernel=auto, make an attention variant that no tensor-core "
           "kernel takes an error (by default it runs on the baseline kernel, "
           "with a remark)">,
    Option<"blockQ", "block-q", "int64_t", /*default=*/"0",
           "Query rows per thread block of the tensor-core kernel: 64 or "
           "128 (0: 128 up to head dim 128, 64 above); wgmma: 64 (one "
           "consumer warpgroup, two blocks an SM) or 128 (0: 64 at D = Dv = "
           "64 without a bias, else 128)">,
    Option<"blockKV", "block-kv", "int64_t", /*default=*/"0",
           "Keys per pipeline step of the tensor-core kernel. mma.sync: 16, "
           "32, 64 or 128 (0: 64 up to head dim 128, 32 above); wgmma "
           "(kernel=wgmma): a multiple of 16 up to 256 that fits 227 KB of "
           "shared memory (0: 128 up to value head dim 128, 64 above)">,
    Option<"lengthAlternatives", "length-alternatives", "bool",
           /*default=*/"true",
           "Also build a dense variant's length alternatives where its "
           "tiling is left open: kernels with other tiling, each preferred "
           "at some sizes (its manifest's `prefer`); with launch, the host "
           "code chooses at run time (docs/design-length-choice.md)">,
    Option<"persistent", "persistent", "bool", /*default=*/"false",
           "Dense variants the sm_90a wgmma kernel takes with it get its "
           "persistent schedule: blocks walk the query tiles, a grid of the "
           "SMs' count (FP8 and head dims past 128 keep one block a tile)">,
    Option<"tensorMaps", "tensor-maps", "std::string", /*default=*/"\"auto\"",
           "How the wgmma kernel takes its TMA descriptors: param (by value, "
           "128-byte __grid_constant__ kernel parameters), global (pointers "
           "to descriptors in device memory) or auto (param, global with "
           "launch)">,
    Option<"specializeValues", "specialize-values", "bool",
           /*default=*/"false",
           "Compile the ops' scale, softcap and window extents into their "
           "kernels (by default dense and paged kernels take them as "
           "arguments, so that one kernel serves every value)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::cf::ControlFlowDialect",
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

def AttnGPUTensorMapParams : Pass<"attn-gpu-tensor-map-params", "ModuleOp"> {
  let summary = "Give kernels their TMA descriptors as by-value "
                "(__grid_constant__) parameters, as their manifests say";
  let description = [{
    For every manifest in `attn.kernels` with tensormap parameters passed
    by value (`"passing": "param"`, attn-lower-to-gpu's `tensor-maps`), marks
    the matching `!llvm.ptr` argument of the kernel's `llvm.func` (in the
    `gpu.module` of the kernel's name) `llvm.byval = !llvm.array<128 x i8>`,
    `llvm.align = 64` and `nvvm.grid_constant`: CUDA's `const
    __grid_constant__ CUtensorMap`. The NVPTX backend declares the parameter
    as `.param .align 64 .b8 name[128]` and turns its address into a generic
    one (`cvta.param`), which TMA instructions accept, so the kernel body
    is unchanged. The argument is found from the manifest's parameter list
    (a memref parameter is as many arguments as its `expands_to`, the others
    one each). Runs after convert-gpu-to-nvvm, where the attributes can be
    set on the kernel's arguments (the GPU-to-NVVM lowering does not carry
    `llvm.byval` over from a `gpu.func`, and the NVVM verifier rejects
    `nvvm.grid_constant` on one). A manifest whose parameters do not match
    its kernel's arguments is an error at the kernel.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::NVVM::NVVMDialect"];
}

def AttnGPUModuleToPTX : Pass<"attn-gpu-module-to-ptx", "ModuleOp"> {
  let summary = "Compile NVVM gpu.modules to PTX (gpu.binary) with attn's "
                "LLVM pipeline";
  let description = [{
    Replaces every `gpu.module` carrying `#nvvm.target`s by a `gpu.binary`
    holding one PTX object per target, as
    `gpu-module-to-binary{format=isa}` does, through the same NVVM
    serializer (translation to LLVM IR, libdevice linking, NVPTX code
    generation at the target's `O` level). The difference is LLVM's
    optimization pipeline: the per-module default pipeline at the target's
    level without the SLP vectorizer, which finds nothing to vectorize in
    attn's kernels (their PTX is byte-identical with and without it) and
    took up to a third of a kernel's compile time.

    A `gpu.module` without a target, or with a non-NVVM one, is an error.
  }];
  let options = [
    Option<"toolkitPath", "toolkit", "std::string", /*default=*/"\"\"",
           "CUDA toolkit whose libdevice is linked (default: the NVVM "
           "target's search: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda)">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

//===----------------------------------------------------------------------===//
// The host side of GPU programs (attn-to-llvm)
//===----------------------------------------------------------------------===//

def AttnGPUDeviceMemory : Pass<"attn-gpu-device-memory", "ModuleOp"> {
  let summary = "Put a bufferized program's buffers in device memory";
  let description = [{
    In a GPU program every tensor lives in device memory and every loop over
    one runs on the GPU (`attn-to-llvm`). After one-shot bufferization, this
    pass gives the host functions' buffers their lifetimes and moves them to
    the device:

    * every returned buffer is one the caller owns: a result that is an
      argument (or a view of one, or a buffer returned twice) is copied;
    * every other allocation is freed at the end of the function. The
      frees are stream-ordered after the launches that use the buffer, so
      the end is always safe; a buffer is held longer than it must be.
      Upstream's ownership-based deallocation cannot be used: it rejects
      `gpu.launch_func` (no declared memory effects). An allocation in a
      nested region or a function of several blocks is an error;
    * `memref.alloc`/`memref.dealloc` become `gpu.alloc`/`gpu.dealloc`
      (asynchronous once `gpu-async-region` has run), and every
      `memref.copy` a `linalg.copy`, so that copies run on the GPU like the
      other linalg ops. The kernels' TMA descriptors, which
    `attn-lower-to-gpu{launch}` left as marked casts of their buffers
    (bufferization rejects the descriptor op), become
    `nvgpu.tma.create.descriptor`. Code inside `gpu.module`s is not touched.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::nvgpu::NVGPUDialect"];
}

def AttnGPUMapLoops : Pass<"attn-gpu-map-loops", "func::FuncOp"> {
  let summary = "Shape a function's parallel loops for GPU launches";
  let description = [{
    Prepares the `scf.parallel` nests that `convert-linalg-to-parallel-loops`
    makes of linalg ops for upstream's `convert-parallel-loops-to-gpu`: each
    outermost nest (outside any `gpu.launch`) has its dims collapsed into
    one (`scf::collapseParallelLoops`), is tiled by `threads`
    (`scf::tileParallelLoop`, with a bound check instead of min bounds so
    that the block size is a constant) and mapped with upstream's greedy
    mapper: the tiles to blocks (x), the iterations of a tile to threads
    (x). Sequential loops inside (a linalg op's reduction dims) stay
    sequential in each thread. Without the collapse the greedy mapper would
    give each block one thread and run dims past the third sequentially.
  }];
  let options = [
    Option<"threads", "threads", "int64_t", /*default=*/"256",
           "Threads per block">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::affine::AffineDialect",
                           "::mlir::arith::ArithDialect"];
}

def AttnGPUCheckHostAccess : Pass<"attn-gpu-check-host-access", "ModuleOp"> {
  let summary = "Reject host code that would touch device memory";
  let description = [{
    After outlining, a GPU program's host functions may only compute sizes,
    make views, allocate, launch and copy through the GPU dialect. A load,
    store or linalg op left on the host over a buffer that is not a host
    stack buffer (`memref.alloca`) would dereference device memory on the
    CPU; it is reported at the op (for example a linalg op with no parallel
    dim, which `convert-linalg-to-parallel-loops` leaves as sequential host
    loops).
  }];
}

def AttnProgramInterface : Pass<"attn-program-interface", "ModuleOp"> {
  let summary = "Give every public function a program's calling convention";
  let description = [{
    Sets `llvm.emit_c_interface` on every public `func.func` with a body, so
    that `convert-func-to-llvm` emits `_mlir_ciface_<name>`, which takes its
    memrefs (and returns its results) through pointers to descriptors: the
    entry points of `attn-compile --shared` programs. Its tensor arguments
    are marked `bufferization.writable = false`: a caller's tensors are
    values, so bufferization copies instead of writing into them.
  }];
}

//===----------------------------------------------------------------------===//
// Sharded programs on MPI (the CPU)
//===----------------------------------------------------------------------===//

def AttnLowerAllSlice : Pass<"attn-lower-all-slice", "ModuleOp"> {
  let summary = "Lower shard.all_slice to a slice at the process's index";
  let description = [{
    `shard-partition` turns a replicated value that a split op consumes
    into `shard.all_slice`, which involves no communication (each process
    keeps its own block) and which `convert-shard-to-mpi` does not convert.
    This pass applies upstream's lowering of it: the process's index along
    the grid axes (`shard.process_multi_index`, which `convert-shard-to-mpi`
    turns into `MPI_Comm_rank` arithmetic) times the block size is the
    offset of a `tensor.extract_slice`.

    ```mlir
    %s = shard.all_slice %x on @grid grid_axes = [0] slice_axis = 1
        : tensor<2x8xf32> -> tensor<2x4xf32>
    // becomes
    %i = shard.process_multi_index on @grid axes = [0] : index
    %o = arith.muli %i, %c4 : index
    %s = tensor.extract_slice %x[0, %o] [2, 4] [1, 1] ...
    ```
  }];
  let dependentDialects = ["::mlir::affine::AffineDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::shard::ShardDialect"];
}

def AttnMPIToLLVM : Pass<"attn-mpi-to-llvm", "ModuleOp"> {
  let summary = "Lower mpi ops to calls of an MPI library's C API";
  let description = [{
    Upstream's MPI-to-LLVM patterns, for the MPI implementation whose ABI the
    calls follow: the module's `dlti.map` entry `"MPI:Implementation"`
    (`"MPICH"` or `"OpenMPI"`), or, where the module has none, the
    `implementation` option. MPICH's ABI (shared by Intel MPI, Cray MPICH
    and MVAPICH) takes communicators, datatypes and reduction ops as integer
    handles; Open MPI's as addresses of its predefined objects.

    The pass consumes what only served this lowering: the
    `"MPI:Implementation"` entry (the module attribute goes when it is
    left empty) and the `shard.grid` declarations that no op refers to any
    more after `convert-shard-to-mpi`. The result runs under `mpirun` with
    `mlir-runner` (which loads neither dialect) given the MPI library.

    ```mlir
    mpi.allreduce(%buf, %buf, MPI_SUM, %comm) : memref<8xf32>, memref<8xf32>
    // becomes (MPICH)
    %r = llvm.call @MPI_Allreduce(%p, %p, %n, %float, %sum, %comm) : ...
    ```
  }];
  let options = [
    Option<"implementation", "implementation", "std::string",
           /*default=*/"\"MPICH\"",
           "MPI whose ABI the calls follow where the module names none: "
           "MPICH or OpenMPI">,
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::DLTIDialect"];
}

#endif // ATTN_CONVERSION_PASSES_TD
