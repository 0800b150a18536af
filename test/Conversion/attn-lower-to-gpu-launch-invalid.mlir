// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" 2>&1 | FileCheck %s
// RUN: not attn-opt %s --split-input-file --attn-to-llvm="chip=sm_90a" 2>&1 | FileCheck %s --check-prefix=PROGRAM

// The paged, gated-delta and sparse ops have kernels but no host lowering
// yet: a located error, never an op left for the host to stumble on.
// CHECK: attn-lower-to-gpu-launch-invalid.mlir:[[@LINE+3]]:8: error: 'attn.paged_attention' op has no host lowering yet
// PROGRAM: attn-lower-to-gpu-launch-invalid.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op has no host lowering yet
func.func @paged(%q: tensor<4x1x32x128xbf16>, %kc: tensor<100x61x8x128xbf16>, %vc: tensor<100x61x8x128xbf16>, %t: tensor<4x40xi32>, %l: tensor<4xi32>) -> tensor<4x1x32x128xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l mask = <causal> : (tensor<4x1x32x128xbf16>, tensor<100x61x8x128xbf16>, tensor<100x61x8x128xbf16>, tensor<4x40xi32>, tensor<4xi32>) -> tensor<4x1x32x128xbf16>
  return %o : tensor<4x1x32x128xbf16>
}

// -----

// A linalg op with no parallel dim (a rank-0 fill, a full reduction) would
// run as loops on the host over device memory: rejected at the op.
// PROGRAM: attn-lower-to-gpu-launch-invalid.mlir:[[@LINE+4]]:11: error: 'memref.store' op would access device memory on the host
func.func @full_reduction(%x: tensor<1024xf32>) -> tensor<f32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<f32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<f32>) -> tensor<f32>
  %r = linalg.reduce ins(%x : tensor<1024xf32>) outs(%init : tensor<f32>) dimensions = [0]
    (%a: f32, %b: f32) {
      %s = arith.addf %a, %b : f32
      linalg.yield %s : f32
    }
  return %r : tensor<f32>
}
