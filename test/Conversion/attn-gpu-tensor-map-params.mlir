// RUN: attn-opt %s --split-input-file --attn-gpu-tensor-map-params --verify-diagnostics | FileCheck %s

// The manifest's by-value tensor maps become byval, 64-byte aligned,
// grid_constant arguments; the one passed in global memory stays a plain
// pointer. The memref parameter is its five expanded arguments.
// CHECK-LABEL: llvm.func @k(
// CHECK-SAME: %arg0: !llvm.ptr, %arg1: !llvm.ptr, %arg2: i64, %arg3: i64, %arg4: i64, %arg5: i64,
// CHECK-SAME: %arg6: !llvm.ptr {llvm.align = 64 : i64, llvm.byval = !llvm.array<128 x i8>, nvvm.grid_constant},
// CHECK-SAME: %arg7: !llvm.ptr)
module attributes {attn.kernels = {k = {entry = "k", params = [
    {kind = "memref", name = "q", expands_to = ["allocated_ptr", "aligned_ptr", "offset", "size", "stride"]},
    {kind = "scalar", name = "B"},
    {kind = "tensormap", name = "q_tma", tensor = "q", passing = "param"},
    {kind = "tensormap", name = "k_tma", tensor = "q", passing = "global"}]}}} {
  gpu.module @k {
    llvm.func @k(%a: !llvm.ptr, %b: !llvm.ptr, %c: i64, %d: i64, %e: i64, %n: i64, %t0: !llvm.ptr, %t1: !llvm.ptr) attributes {nvvm.kernel} {
      llvm.return
    }
  }
}

// -----

// A manifest that does not describe its kernel is an error at the kernel.
module attributes {attn.kernels = {k = {entry = "k", params = [
    {kind = "scalar", name = "B"},
    {kind = "tensormap", name = "q_tma", tensor = "q", passing = "param"}]}}} {
  gpu.module @k {
    // expected-error @below {{the manifest's parameters make 2 kernel arguments, the kernel has 3}}
    llvm.func @k(%n: i64, %t0: !llvm.ptr, %t1: !llvm.ptr) attributes {nvvm.kernel} {
      llvm.return
    }
  }
}

// -----

module attributes {attn.kernels = {k = {entry = "k", params = [
    {kind = "tensormap", name = "q_tma", tensor = "q", passing = "param"}]}}} {
  gpu.module @k {
    // expected-error @below {{tensor map argument 0 is 'i64', not a pointer}}
    llvm.func @k(%n: i64) attributes {nvvm.kernel} {
      llvm.return
    }
  }
}

// -----

// Kernels not yet in the LLVM dialect are left alone.
// CHECK-LABEL: gpu.func @k(
// CHECK-SAME: %arg0: !llvm.ptr) kernel
module attributes {attn.kernels = {k = {entry = "k", params = [
    {kind = "tensormap", name = "q_tma", tensor = "q", passing = "param"}]}}} {
  gpu.module @k {
    gpu.func @k(%t: !llvm.ptr) kernel {
      gpu.return
    }
  }
}
