// Option and module errors of attn-lower-to-gpu (and the attn-to-ptx
// pipeline built on it): located at the op that needs a kernel, never a crash
// in the backend, never the module dumped.

// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_75" 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not attn-opt %s --split-input-file --attn-to-ptx="chip=sm_100a" 2>&1 | FileCheck %s --check-prefix=CHIP100
// RUN: not attn-opt %s --split-input-file --attn-to-ptx="chip=" 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="kernel=foo" 2>&1 | FileCheck %s --check-prefix=KERNEL
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="tensor-maps=shared" 2>&1 | FileCheck %s --check-prefix=MAPS
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 tensor-maps=param" 2>&1 | FileCheck %s --check-prefix=LAUNCH-MAPS
// CHIP: attn-lower-to-gpu-options.mlir:[[@LINE+11]]:8: error: attn-lower-to-gpu: unsupported chip 'sm_75': attn's kernels target sm_80, sm_90 or sm_90a
// CHIP-NOT: see current operation
// CHIP-NOT: LLVM ERROR
// CHIP100: attn-lower-to-gpu-options.mlir:[[@LINE+8]]:8: error: attn-lower-to-gpu: unsupported chip 'sm_100a'
// CHIP100-NOT: LLVM ERROR
// EMPTY: attn-lower-to-gpu-options.mlir:[[@LINE+6]]:8: error: attn-lower-to-gpu: unsupported chip ''
// KERNEL: attn-lower-to-gpu-options.mlir:[[@LINE+5]]:8: error: attn-lower-to-gpu: kernel must be baseline, mma, wgmma or auto, got 'foo'
// KERNEL-NOT: see current operation
// MAPS: attn-lower-to-gpu-options.mlir:[[@LINE+3]]:8: error: attn-lower-to-gpu: tensor-maps must be param, global or auto, got 'shared'
// LAUNCH-MAPS: attn-lower-to-gpu-options.mlir:[[@LINE+2]]:8: error: attn-lower-to-gpu: launch passes TMA descriptors in device memory
func.func @f(%q: tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16> {
  %o = attn.attention %q, %q, %q : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>
  return %o : tensor<1x2x16x64xf16>
}

// -----

// A host symbol with a kernel's name: reported at the host symbol.
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s --check-prefix=CLASH
// CLASH: attn-lower-to-gpu-options.mlir:[[@LINE+1]]:1: error: 'func.func' op is named @attn_f32_d16_dv16_bhsd_none, the name of a kernel attn-lower-to-gpu generates for this module
func.func @attn_f32_d16_dv16_bhsd_none() { return }
func.func @g(%q: tensor<1x2x16x16xf32>) -> tensor<1x2x16x16xf32> {
  %o = attn.attention %q, %q, %q : (tensor<1x2x16x16xf32>, tensor<1x2x16x16xf32>, tensor<1x2x16x16xf32>) -> tensor<1x2x16x16xf32>
  return %o : tensor<1x2x16x16xf32>
}

// -----

// No attn op, but a gpu.module the pipeline would compile for the chip.
// RUN: not attn-opt %s --split-input-file --attn-to-ptx="chip=sm_100a" 2>&1 | FileCheck %s --check-prefix=MODULE
// MODULE: attn-lower-to-gpu-options.mlir:[[@LINE+1]]:1: error: attn-lower-to-gpu: unsupported chip 'sm_100a'
gpu.module @own {
}
