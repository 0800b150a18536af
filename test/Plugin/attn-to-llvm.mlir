// REQUIRES: cuda-toolkit
// Stock mlir-opt with the plugin runs the whole-program pipeline: the module
// becomes host code in the LLVM dialect with its kernels embedded, which
// stock mlir-translate turns into LLVM IR (the upstream route the plugin
// users take; attn-compile --shared adds the link).
// RUN: mlir-opt %s --load-dialect-plugin=%attn_plugin \
// RUN:   --pass-pipeline="builtin.module(attn-to-llvm{chip=sm_90a})" \
// RUN:   | mlir-translate --mlir-to-llvmir | FileCheck %s

// CHECK-DAG: define void @_mlir_ciface_attention(
// CHECK-DAG: call void @mgpuLaunchKernel(
// CHECK-DAG: call ptr @mgpuTensorMapEncodeTiledMemref(
// CHECK-DAG: @attn_bf16_d128_dv128_bshd_causal_wgmma_binary = internal constant
// CHECK-NOT: attn.attention
func.func @attention(%q: tensor<?x?x32x128xbf16>, %k: tensor<?x?x8x128xbf16>, %v: tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xbf16> {
  %o = attn.attention %q, %k, %v layout = bshd mask = <causal> scale = 0.0883883461 : (tensor<?x?x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xbf16>
  return %o : tensor<?x?x32x128xbf16>
}
