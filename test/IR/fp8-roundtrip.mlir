// RUN: attn-opt %s | FileCheck %s
// FP8 (f8E4M3FN) attn.attention: descales per tensor and per KV head; the
// printed form parses again to the same op.
// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

// Per-tensor descales, bf16 output (FlashAttention-3's).
// CHECK-LABEL: func.func @per_tensor
// CHECK-SAME: (%[[Q:.+]]: tensor<2x8x128x64xf8E4M3FN>, %[[K:.+]]: tensor<2x8x256x64xf8E4M3FN>, %[[V:.+]]: tensor<2x8x256x64xf8E4M3FN>, %[[DQ:.+]]: tensor<f32>, %[[DK:.+]]: tensor<f32>, %[[DV:.+]]: tensor<f32>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] descale(%[[DQ]], %[[DK]], %[[DV]]) :
// CHECK-SAME: -> tensor<2x8x128x64xbf16>
// CHECK: return %[[O]]
func.func @per_tensor(%q: tensor<2x8x128x64xf8E4M3FN>, %k: tensor<2x8x256x64xf8E4M3FN>,
                      %v: tensor<2x8x256x64xf8E4M3FN>, %dq: tensor<f32>, %dk: tensor<f32>,
                      %dv: tensor<f32>) -> tensor<2x8x128x64xbf16> {
  %o = attn.attention %q, %k, %v descale(%dq, %dk, %dv)
      : (tensor<2x8x128x64xf8E4M3FN>, tensor<2x8x256x64xf8E4M3FN>, tensor<2x8x256x64xf8E4M3FN>,
         tensor<f32>, tensor<f32>, tensor<f32>)
      -> tensor<2x8x128x64xbf16>
  return %o : tensor<2x8x128x64xbf16>
}

// GQA with FlashAttention-3's [B, Hkv] descales, causal, bshd, with every
// other operand and attribute FP8 takes: f32 bias and sinks, softcap,
// scale, the LSE, a position offset, and an f32 output.
// CHECK-LABEL: func.func @per_head_everything
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} bias(%{{.+}}) sinks(%{{.+}}) position_offset(%{{.+}}) descale(%[[DQ:.+]], %[[DK:.+]], %[[DV:.+]]) layout = bshd mask = <causal> scale = 1.250000e-01 softcap = 3.000000e+01 :
// CHECK-SAME: tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>) -> (tensor<2x16x32x64xf32>, tensor<2x32x16xf32>)
func.func @per_head_everything(%q: tensor<2x16x32x64xf8E4M3FN>, %k: tensor<2x64x4x64xf8E4M3FN>,
                               %v: tensor<2x64x4x64xf8E4M3FN>, %b: tensor<1x1x16x64xf32>,
                               %s: tensor<32xf32>, %off: index, %dq: tensor<2x4xf32>,
                               %dk: tensor<2x4xf32>, %dv: tensor<2x4xf32>) {
  %o, %lse = attn.attention %q, %k, %v bias(%b) sinks(%s) position_offset(%off)
      descale(%dq, %dk, %dv) layout = bshd mask = <causal> scale = 0.125 softcap = 30.0
      : (tensor<2x16x32x64xf8E4M3FN>, tensor<2x64x4x64xf8E4M3FN>, tensor<2x64x4x64xf8E4M3FN>,
         tensor<1x1x16x64xf32>, tensor<32xf32>, index, tensor<2x4xf32>, tensor<2x4xf32>,
         tensor<2x4xf32>)
      -> (tensor<2x16x32x64xf32>, tensor<2x32x16xf32>)
  return
}

// Dynamic sizes: the [B, Hkv] descales may be dynamic where B and Hkv are.
// CHECK-LABEL: func.func @dynamic
// CHECK: attn.attention {{.*}} descale({{.*}}) : (tensor<?x4x?x64xf8E4M3FN>, tensor<?x2x?x64xf8E4M3FN>, tensor<?x2x?x64xf8E4M3FN>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>) -> tensor<?x4x?x64xf16>
func.func @dynamic(%q: tensor<?x4x?x64xf8E4M3FN>, %k: tensor<?x2x?x64xf8E4M3FN>,
                   %v: tensor<?x2x?x64xf8E4M3FN>, %d: tensor<?x2xf32>) -> tensor<?x4x?x64xf16> {
  %o = attn.attention %q, %k, %v descale(%d, %d, %d)
      : (tensor<?x4x?x64xf8E4M3FN>, tensor<?x2x?x64xf8E4M3FN>, tensor<?x2x?x64xf8E4M3FN>,
         tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>)
      -> tensor<?x4x?x64xf16>
  return %o : tensor<?x4x?x64xf16>
}
