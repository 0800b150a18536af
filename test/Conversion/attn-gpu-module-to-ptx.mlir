// RUN: attn-opt %s --split-input-file --verify-diagnostics --attn-gpu-module-to-ptx | FileCheck %s

// A gpu.module with an NVVM target becomes a gpu.binary holding its PTX
// (the assembly format), one object per target, at the target's chip.
// CHECK-LABEL: gpu.binary @kernels
// CHECK-SAME: [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, properties = {O = 3 : i32}, assembly = "
// CHECK-SAME: .target sm_90a
// CHECK-SAME: .visible .entry scale(
// CHECK-SAME: fma.rn.f32
// CHECK-NOT: gpu.module
gpu.module @kernels [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">] {
  llvm.func @scale(%p: !llvm.ptr, %a: f32, %b: f32) attributes {nvvm.kernel} {
    %x = llvm.load %p : !llvm.ptr -> f32
    %y = llvm.intr.fma(%x, %a, %b) : (f32, f32, f32) -> f32
    llvm.store %y, %p : f32, !llvm.ptr
    llvm.return
  }
}

// -----

// expected-error @below {{the gpu.module has no target; run nvvm-attach-target first}}
gpu.module @untargeted {
}

// -----

// expected-error @below {{attn-gpu-module-to-ptx compiles NVVM targets only, not #rocdl.target}}
gpu.module @amd [#rocdl.target] {
}
