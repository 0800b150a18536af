// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s --check-prefix=BASELINE
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_80 kernel=auto" 2>&1 | FileCheck %s --check-prefix=SM80
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=auto" 2>&1 | FileCheck %s --check-prefix=SM90A

// FP8 (f8E4M3FN) attention runs on the sm_90a wgmma kernel alone
// (attn-lower-to-gpu-fp8.mlir): any other body or chip, or a variant that
// kernel does not take, is a located error at the op, from the kernel
// generator (every path to a kernel goes through it), and no kernel is
// generated.
// BASELINE: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+4]]:8: error: 'attn.attention' op FP8 (f8E4M3FN) attention runs on the sm_90a wgmma kernel only
// SM80: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+3]]:8: error: 'attn.attention' op FP8 (f8E4M3FN) attention needs the sm_90a wgmma kernel (chip sm_80)
// SM90A: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+2]]:8: error: 'attn.attention' op the FP8 wgmma kernel needs head dims of 128 or 256 (whole 128-byte panels of e4m3)
func.func @head_dim_64(%q: tensor<1x4x64x64xf8E4M3FN>, %d: tensor<f32>) -> tensor<1x4x64x64xf32> {
  %o = attn.attention %q, %q, %q descale(%d, %d, %d) : (tensor<1x4x64x64xf8E4M3FN>, tensor<1x4x64x64xf8E4M3FN>, tensor<1x4x64x64xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x64x64xf32>
  return %o : tensor<1x4x64x64xf32>
}

// -----

// DeepSeek's MLA prefill head dim (192) is one and a half 128-byte panels
// of e4m3: no FP8 kernel takes it yet.
// BASELINE: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+4]]:8: error: 'attn.attention' op FP8 (f8E4M3FN) attention runs on the sm_90a wgmma kernel only
// SM80: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+3]]:8: error: 'attn.attention' op FP8 (f8E4M3FN) attention needs the sm_90a wgmma kernel (chip sm_80)
// SM90A: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+2]]:8: error: 'attn.attention' op the FP8 wgmma kernel needs head dims of 128 or 256
func.func @mla_192(%q: tensor<2x8x128x192xf8E4M3FN>, %k: tensor<2x2x128x192xf8E4M3FN>, %v: tensor<2x2x128x128xf8E4M3FN>, %dq: tensor<2x2xf32>, %dk: tensor<2x2xf32>, %dv: tensor<2x2xf32>) -> tensor<2x8x128x128xbf16> {
  %o = attn.attention %q, %k, %v descale(%dq, %dk, %dv) mask = <causal> : (tensor<2x8x128x192xf8E4M3FN>, tensor<2x2x128x192xf8E4M3FN>, tensor<2x2x128x128xf8E4M3FN>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x8x128x128xbf16>
  return %o : tensor<2x8x128x128xbf16>
}
