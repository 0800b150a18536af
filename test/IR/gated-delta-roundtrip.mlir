// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

// Gated DeltaNet as in Qwen3-Next: 16 key heads shared by 32 value heads,
// head dim 128, per-head gates, L2-normalized q and k.
// CHECK-LABEL: func.func @gdn
// CHECK: %delta, %state = attn.gated_delta_rule %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} qk_l2norm : (tensor<1x4096x16x128xbf16>, tensor<1x4096x16x128xbf16>, tensor<1x4096x32x128xbf16>, tensor<1x4096x32xf32>, tensor<1x4096x32xf32>) -> (tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>)
func.func @gdn(%q: tensor<1x4096x16x128xbf16>, %k: tensor<1x4096x16x128xbf16>, %v: tensor<1x4096x32x128xbf16>, %g: tensor<1x4096x32xf32>, %b: tensor<1x4096x32xf32>) -> (tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b qk_l2norm : (tensor<1x4096x16x128xbf16>, tensor<1x4096x16x128xbf16>, tensor<1x4096x32x128xbf16>, tensor<1x4096x32xf32>, tensor<1x4096x32xf32>) -> (tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>)
  return %o, %s : tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>
}

// Kimi Delta Attention: per-channel gates, an initial state (decode: T = 1),
// explicit scale and chunk size, dynamic batch.
// CHECK-LABEL: func.func @kda_decode
// CHECK: attn.gated_delta_rule %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} initial_state(%{{.+}}) gate_kind = channel scale = 1.250000e-01 chunk_size = 32 : (tensor<?x1x8x64xf16>, tensor<?x1x8x64xf16>, tensor<?x1x8x96xf16>, tensor<?x1x8x64xf16>, tensor<?x1x8xf16>, tensor<?x8x64x96xf32>) -> (tensor<?x1x8x96xf16>, tensor<?x8x64x96xf32>)
func.func @kda_decode(%q: tensor<?x1x8x64xf16>, %k: tensor<?x1x8x64xf16>, %v: tensor<?x1x8x96xf16>, %g: tensor<?x1x8x64xf16>, %b: tensor<?x1x8xf16>, %s0: tensor<?x8x64x96xf32>) -> (tensor<?x1x8x96xf16>, tensor<?x8x64x96xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b initial_state(%s0) gate_kind = channel scale = 0.125 chunk_size = 32 : (tensor<?x1x8x64xf16>, tensor<?x1x8x64xf16>, tensor<?x1x8x96xf16>, tensor<?x1x8x64xf16>, tensor<?x1x8xf16>, tensor<?x8x64x96xf32>) -> (tensor<?x1x8x96xf16>, tensor<?x8x64x96xf32>)
  return %o, %s : tensor<?x1x8x96xf16>, tensor<?x8x64x96xf32>
}
