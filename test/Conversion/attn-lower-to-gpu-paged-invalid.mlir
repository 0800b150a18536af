// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s

// DeepSeek MLA's latent decode (D = 576, Dv = 512) has no paged kernel yet:
// a located diagnostic, nothing half-built.
// CHECK: attn-lower-to-gpu-paged-invalid.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op the paged GPU kernel needs D = Dv, a multiple of 16 up to 256 (got D = 576, Dv = 512; MLA's latent decode is not supported yet)
func.func @mla(%q: tensor<2x1x16x576xbf16>, %kc: tensor<10x64x1x576xbf16>, %vc: tensor<10x64x1x512xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x16x512xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l scale = 0.1352 : (tensor<2x1x16x576xbf16>, tensor<10x64x1x576xbf16>, tensor<10x64x1x512xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x16x512xbf16>
  return %o : tensor<2x1x16x512xbf16>
}

// -----

// CHECK: attn-lower-to-gpu-paged-invalid.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op the paged GPU kernel takes f16 or bf16 (got f32)
func.func @f32(%q: tensor<2x1x4x64xf32>, %kc: tensor<10x16x2x64xf32>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x4x64xf32> {
  %o = attn.paged_attention %q, %kc, %kc, %t, %l : (tensor<2x1x4x64xf32>, tensor<10x16x2x64xf32>, tensor<10x16x2x64xf32>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x4x64xf32>
  return %o : tensor<2x1x4x64xf32>
}
