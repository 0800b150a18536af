// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s

// Heads wider than the kernels' tilings (D up to 576; Dv up to 128 or a
// multiple of 128 up to 512; values in the key rows within shared memory):
// a located diagnostic, nothing half-built.
// CHECK: attn-lower-to-gpu-paged-invalid.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op the paged GPU kernel needs head dims that are multiples of 16, D = Dv up to 256, D up to 576 with Dv up to 128 or a multiple of 128 up to 512 (MLA: 576 / 512), or values that are the first Dv columns of the key rows (Dv a multiple of 128, D of 32); got D = 640, Dv = 512
func.func @too_wide(%q: tensor<2x1x16x640xbf16>, %kc: tensor<10x64x1x640xbf16>, %vc: tensor<10x64x1x512xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x16x512xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l scale = 0.1352 : (tensor<2x1x16x640xbf16>, tensor<10x64x1x640xbf16>, tensor<10x64x1x512xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x16x512xbf16>
  return %o : tensor<2x1x16x512xbf16>
}

// -----

// Values in the key rows, but a Q tile and two 64-key stages of 640 columns
// overflow shared memory (the latent kernel's limit).
// CHECK: attn-lower-to-gpu-paged-invalid.mlir:[[@LINE+3]]:8: error: 'attn.paged_attention' op the paged GPU kernel needs head dims that are multiples of 16, D = Dv up to 256, D up to 576 with Dv up to 128 or a multiple of 128 up to 512 (MLA: 576 / 512), or values that are the first Dv columns of the key rows (Dv a multiple of 128, D of 32); got D = 640, Dv = 512
func.func @latent_too_wide(%q: tensor<2x1x16x640xbf16>, %kc: tensor<10x64x1x640xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x16x512xbf16> {
  %vc = tensor.extract_slice %kc[0, 0, 0, 0] [10, 64, 1, 512] [1, 1, 1, 1] : tensor<10x64x1x640xbf16> to tensor<10x64x1x512xbf16>
  %o = attn.paged_attention %q, %kc, %vc, %t, %l scale = 0.1352 : (tensor<2x1x16x640xbf16>, tensor<10x64x1x640xbf16>, tensor<10x64x1x512xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x16x512xbf16>
  return %o : tensor<2x1x16x512xbf16>
}

// -----

// CHECK: attn-lower-to-gpu-paged-invalid.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op the paged GPU kernel needs head dims that are multiples of 16, D = Dv up to 256, D up to 576 with Dv up to 128 or a multiple of 128 up to 512 (MLA: 576 / 512), or values that are the first Dv columns of the key rows (Dv a multiple of 128, D of 32); got D = 320, Dv = 320
func.func @d320(%q: tensor<2x1x4x320xbf16>, %kc: tensor<10x16x2x320xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x4x320xbf16> {
  %o = attn.paged_attention %q, %kc, %kc, %t, %l : (tensor<2x1x4x320xbf16>, tensor<10x16x2x320xbf16>, tensor<10x16x2x320xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x4x320xbf16>
  return %o : tensor<2x1x4x320xbf16>
}

// -----

// CHECK: attn-lower-to-gpu-paged-invalid.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op the paged GPU kernel takes f16 or bf16 (got f32)
func.func @f32(%q: tensor<2x1x4x64xf32>, %kc: tensor<10x16x2x64xf32>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x4x64xf32> {
  %o = attn.paged_attention %q, %kc, %kc, %t, %l : (tensor<2x1x4x64xf32>, tensor<10x16x2x64xf32>, tensor<10x16x2x64xf32>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x4x64xf32>
  return %o : tensor<2x1x4x64xf32>
}
