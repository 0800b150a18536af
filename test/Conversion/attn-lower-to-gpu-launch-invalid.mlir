// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" 2>&1 | FileCheck %s
// RUN: not attn-opt %s --split-input-file --attn-to-llvm="chip=sm_90a" 2>&1 | FileCheck %s --check-prefix=PROGRAM

// The sparse ops have kernels but no host lowering yet: a located error,
// never an op left for the host to stumble on.
// CHECK: attn-lower-to-gpu-launch-invalid.mlir:[[@LINE+3]]:8: error: 'attn.lightning_indexer' op has no host lowering yet
// PROGRAM: attn-lower-to-gpu-launch-invalid.mlir:[[@LINE+2]]:8: error: 'attn.lightning_indexer' op has no host lowering yet
func.func @indexer(%q: tensor<1x4096x64x128xbf16>, %k: tensor<1x4096x128xbf16>, %w: tensor<1x4096x64xf32>) -> tensor<1x4096x2048xi32> {
  %i = attn.lightning_indexer %q, %k, %w top_k = 2048 mask = <causal> : (tensor<1x4096x64x128xbf16>, tensor<1x4096x128xbf16>, tensor<1x4096x64xf32>) -> tensor<1x4096x2048xi32>
  return %i : tensor<1x4096x2048xi32>
}

// -----

// A paged op over MLA's latent cache (values = the first columns of the key
// rows) has no host lowering yet either.
// CHECK: attn-lower-to-gpu-launch-invalid.mlir:[[@LINE+3]]:8: error: 'attn.paged_attention' op has no host lowering yet for a value cache that is the first columns of the key cache
func.func @latent(%q: tensor<2x1x128x576xbf16>, %kc: tensor<10x64x1x576xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x128x512xbf16> {
  %vc = tensor.extract_slice %kc[0, 0, 0, 0] [10, 64, 1, 512] [1, 1, 1, 1] : tensor<10x64x1x576xbf16> to tensor<10x64x1x512xbf16>
  %o = attn.paged_attention %q, %kc, %vc, %t, %l scale = 0.1352 : (tensor<2x1x128x576xbf16>, tensor<10x64x1x576xbf16>, tensor<10x64x1x512xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x128x512xbf16>
  return %o : tensor<2x1x128x512xbf16>
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
