// REQUIRES: cuda-toolkit
// RUN: attn-opt %s --attn-to-llvm="chip=sm_90a" | FileCheck %s
// RUN: attn-opt %s --attn-to-llvm="chip=sm_90a" | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVM

// A whole module to a GPU program: the function survives with the C
// interface, attention runs on its wgmma kernel (TMA descriptors made on
// the host), the transpose after it on a kernel of its own (linalg ->
// parallel loops -> gpu.launch), every buffer in device memory and freed
// on the stream, and the kernels are embedded as gpu.binary.

// CHECK: llvm.func @attention(
// CHECK: llvm.call @mgpuStreamCreate()
// CHECK: llvm.call @mgpuMemAlloc(
// CHECK: llvm.call @mgpuTensorMapEncodeTiledMemref(
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @attn_bf16_d128_dv128_bhsd_causal_wgmma::@attn_bf16
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @attention_kernel::@attention_kernel
// CHECK: llvm.call @mgpuMemFree(
// CHECK: llvm.call @mgpuStreamSynchronize(
// CHECK: llvm.func @_mlir_ciface_attention(
// CHECK-DAG: gpu.binary @attn_bf16_d128_dv128_bhsd_causal_wgmma
// CHECK-DAG: gpu.binary @attention_kernel
// CHECK-NOT: attn.attention
// CHECK-NOT: func.func

// The PTX is loaded once, when the program is (a global constructor), and
// each launch goes through the runtime's mgpu* ABI.
// LLVM-DAG: @llvm.global_ctors
// LLVM-DAG: call ptr @mgpuModuleLoadJIT(
// LLVM-DAG: call void @mgpuLaunchKernel(
// LLVM-DAG: define void @_mlir_ciface_attention(ptr %0, ptr %1, ptr %2, ptr %3)
func.func @attention(%q: tensor<?x32x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>) -> tensor<?x?x4096xbf16> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %o = attn.attention %q, %k, %v mask = <causal> scale = 0.0883883461 : (tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) -> tensor<?x32x?x128xbf16>
  %b = tensor.dim %q, %c0 : tensor<?x32x?x128xbf16>
  %s = tensor.dim %q, %c2 : tensor<?x32x?x128xbf16>
  %e = tensor.empty(%b, %s) : tensor<?x?x32x128xbf16>
  %t = linalg.transpose ins(%o : tensor<?x32x?x128xbf16>) outs(%e : tensor<?x?x32x128xbf16>) permutation = [0, 2, 1, 3]
  %r = tensor.collapse_shape %t [[0], [1], [2, 3]] : tensor<?x?x32x128xbf16> into tensor<?x?x4096xbf16>
  return %r : tensor<?x?x4096xbf16>
}
