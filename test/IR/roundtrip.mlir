// RUN: attn-opt %s | FileCheck %s
// Round-trip every attention variant; the printed form must parse again to the
// same thing.
// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

// CHECK-LABEL: func.func @mha
// CHECK-SAME: (%[[Q:.+]]: tensor<2x16x128x64xf16>, %[[K:.+]]: tensor<2x16x256x64xf16>, %[[V:.+]]: tensor<2x16x256x64xf16>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] :
// CHECK-SAME: -> tensor<2x16x128x64xf16>
// CHECK: return %[[O]]
func.func @mha(%q: tensor<2x16x128x64xf16>, %k: tensor<2x16x256x64xf16>,
               %v: tensor<2x16x256x64xf16>) -> tensor<2x16x128x64xf16> {
  %o = attn.attention %q, %k, %v
      : (tensor<2x16x128x64xf16>, tensor<2x16x256x64xf16>, tensor<2x16x256x64xf16>)
      -> tensor<2x16x128x64xf16>
  return %o : tensor<2x16x128x64xf16>
}

// The default layout and an explicit `none` mask are the same op.
// CHECK-LABEL: func.func @explicit_defaults
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} mask = <none> :
// CHECK-NOT: layout
func.func @explicit_defaults(%q: tensor<1x4x8x32xf32>, %k: tensor<1x4x8x32xf32>,
                             %v: tensor<1x4x8x32xf32>) -> tensor<1x4x8x32xf32> {
  %o = attn.attention %q, %k, %v layout = bhsd mask = <none>
      : (tensor<1x4x8x32xf32>, tensor<1x4x8x32xf32>, tensor<1x4x8x32xf32>)
      -> tensor<1x4x8x32xf32>
  return %o : tensor<1x4x8x32xf32>
}

// Multi-query attention: one KV head.
// CHECK-LABEL: func.func @mqa
// CHECK: attn.attention {{.*}} : (tensor<1x32x1x128xbf16>, tensor<1x1x4096x128xbf16>, tensor<1x1x4096x128xbf16>) -> tensor<1x32x1x128xbf16>
func.func @mqa(%q: tensor<1x32x1x128xbf16>, %k: tensor<1x1x4096x128xbf16>,
               %v: tensor<1x1x4096x128xbf16>) -> tensor<1x32x1x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal>
      : (tensor<1x32x1x128xbf16>, tensor<1x1x4096x128xbf16>, tensor<1x1x4096x128xbf16>)
      -> tensor<1x32x1x128xbf16>
  return %o : tensor<1x32x1x128xbf16>
}

// Grouped-query attention with group sizes 4, 7 and 71 (Falcon-40B style).
// CHECK-LABEL: func.func @gqa_groups
// CHECK: attn.attention {{.*}} mask = <causal> : (tensor<1x32x64x128xbf16>, tensor<1x8x64x128xbf16>
// CHECK: attn.attention {{.*}} : (tensor<1x28x64x64xf16>, tensor<1x4x64x64xf16>
// CHECK: attn.attention {{.*}} : (tensor<1x71x16x64xf16>, tensor<1x1x16x64xf16>
func.func @gqa_groups(%q4: tensor<1x32x64x128xbf16>, %k4: tensor<1x8x64x128xbf16>,
                      %q7: tensor<1x28x64x64xf16>, %k7: tensor<1x4x64x64xf16>,
                      %q71: tensor<1x71x16x64xf16>, %k71: tensor<1x1x16x64xf16>) {
  %0 = attn.attention %q4, %k4, %k4 mask = <causal>
      : (tensor<1x32x64x128xbf16>, tensor<1x8x64x128xbf16>, tensor<1x8x64x128xbf16>)
      -> tensor<1x32x64x128xbf16>
  %1 = attn.attention %q7, %k7, %k7
      : (tensor<1x28x64x64xf16>, tensor<1x4x64x64xf16>, tensor<1x4x64x64xf16>)
      -> tensor<1x28x64x64xf16>
  %2 = attn.attention %q71, %k71, %k71
      : (tensor<1x71x16x64xf16>, tensor<1x1x16x64xf16>, tensor<1x1x16x64xf16>)
      -> tensor<1x71x16x64xf16>
  return
}

// Sliding windows: left only (Mistral) and left + right (FlashAttention's
// window_size=(L, R)), in the [B, S, H, D] layout.
// CHECK-LABEL: func.func @windows
// CHECK: attn.attention {{.*}} layout = bshd mask = <window, left = 4095, right = 0> :
// CHECK: attn.attention {{.*}} layout = bshd mask = <window, left = 256, right = 128> :
func.func @windows(%q: tensor<1x8192x32x128xbf16>, %k: tensor<1x8192x8x128xbf16>,
                   %v: tensor<1x8192x8x128xbf16>) {
  %0 = attn.attention %q, %k, %v layout = bshd mask = <window, left = 4095, right = 0>
      : (tensor<1x8192x32x128xbf16>, tensor<1x8192x8x128xbf16>, tensor<1x8192x8x128xbf16>)
      -> tensor<1x8192x32x128xbf16>
  %1 = attn.attention %q, %k, %v layout = bshd mask = <window, left = 256, right = 128>
      : (tensor<1x8192x32x128xbf16>, tensor<1x8192x8x128xbf16>, tensor<1x8192x8x128xbf16>)
      -> tensor<1x8192x32x128xbf16>
  return
}

// Causal with Sq != Sk both ways (bottom-right aligned).
// CHECK-LABEL: func.func @causal_rectangular
// CHECK: attn.attention {{.*}} mask = <causal> : (tensor<1x8x16x64xf16>, tensor<1x8x512x64xf16>
// CHECK: attn.attention {{.*}} mask = <causal> : (tensor<1x8x512x64xf16>, tensor<1x8x16x64xf16>
func.func @causal_rectangular(%qs: tensor<1x8x16x64xf16>, %kl: tensor<1x8x512x64xf16>,
                              %ql: tensor<1x8x512x64xf16>, %ks: tensor<1x8x16x64xf16>) {
  %0 = attn.attention %qs, %kl, %kl mask = <causal>
      : (tensor<1x8x16x64xf16>, tensor<1x8x512x64xf16>, tensor<1x8x512x64xf16>)
      -> tensor<1x8x16x64xf16>
  %1 = attn.attention %ql, %ks, %ks mask = <causal>
      : (tensor<1x8x512x64xf16>, tensor<1x8x16x64xf16>, tensor<1x8x16x64xf16>)
      -> tensor<1x8x512x64xf16>
  return
}

// Scale, softcap (Gemma 2), bias broadcast over batch and heads, per-head
// sinks (GPT-OSS) and the LSE result.
// CHECK-LABEL: func.func @everything
// CHECK-SAME: %[[B:[a-z0-9]+]]: tensor<1x1x128x128xf32>, %[[S:[a-z0-9]+]]: tensor<32xbf16>
// CHECK: %[[O:.+]], %[[L:.+]] = attn.attention %{{.+}}, %{{.+}}, %{{.+}} bias(%[[B]]) sinks(%[[S]]) mask = <window, left = 127, right = 0> scale = 6.250000e-02 softcap = 5.000000e+01 :
// CHECK-SAME: -> (tensor<2x32x128x128xbf16>, tensor<2x32x128xf32>)
// CHECK: return %[[O]], %[[L]]
func.func @everything(%q: tensor<2x32x128x128xbf16>, %k: tensor<2x8x128x128xbf16>,
                      %v: tensor<2x8x128x128xbf16>, %bias: tensor<1x1x128x128xf32>,
                      %sinks: tensor<32xbf16>)
    -> (tensor<2x32x128x128xbf16>, tensor<2x32x128xf32>) {
  %o, %lse = attn.attention %q, %k, %v bias(%bias) sinks(%sinks)
      mask = <window, left = 127, right = 0> scale = 0.0625 softcap = 50.0
      : (tensor<2x32x128x128xbf16>, tensor<2x8x128x128xbf16>, tensor<2x8x128x128xbf16>,
         tensor<1x1x128x128xf32>, tensor<32xbf16>)
      -> (tensor<2x32x128x128xbf16>, tensor<2x32x128xf32>)
  return %o, %lse : tensor<2x32x128x128xbf16>, tensor<2x32x128xf32>
}

// DeepSeek MLA prefill: D = 192 (128 + 64 rope), Dv = 128, explicit scale.
// CHECK-LABEL: func.func @mla_prefill
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.352000e-01 : (tensor<1x128x1024x192xbf16>, tensor<1x128x1024x192xbf16>, tensor<1x128x1024x128xbf16>) -> tensor<1x128x1024x128xbf16>
func.func @mla_prefill(%q: tensor<1x128x1024x192xbf16>, %k: tensor<1x128x1024x192xbf16>,
                       %v: tensor<1x128x1024x128xbf16>) -> tensor<1x128x1024x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> scale = 0.1352
      : (tensor<1x128x1024x192xbf16>, tensor<1x128x1024x192xbf16>, tensor<1x128x1024x128xbf16>)
      -> tensor<1x128x1024x128xbf16>
  return %o : tensor<1x128x1024x128xbf16>
}

// Dynamic batch and sequence lengths.
// CHECK-LABEL: func.func @dynamic
// CHECK: attn.attention {{.*}} : (tensor<?x8x?x64xf16>, tensor<?x2x?x64xf16>, tensor<?x2x?x64xf16>, tensor<1x8x?x?xf16>) -> (tensor<?x8x?x64xf16>, tensor<?x8x?xf32>)
func.func @dynamic(%q: tensor<?x8x?x64xf16>, %k: tensor<?x2x?x64xf16>,
                   %v: tensor<?x2x?x64xf16>, %b: tensor<1x8x?x?xf16>) {
  %o, %lse = attn.attention %q, %k, %v bias(%b)
      : (tensor<?x8x?x64xf16>, tensor<?x2x?x64xf16>, tensor<?x2x?x64xf16>, tensor<1x8x?x?xf16>)
      -> (tensor<?x8x?x64xf16>, tensor<?x8x?xf32>)
  return
}

// The attribute forms on their own.
// CHECK-LABEL: func.func @attrs
// CHECK-SAME: attn.masks = [#attn.mask<none>, #attn.mask<causal>, #attn.mask<window, left = 0, right = 0>]
func.func @attrs() attributes {attn.masks = [#attn.mask<none>, #attn.mask<causal>, #attn.mask<window, left = 0, right = 0>]} {
  return
}

// A block of a sharded sequence: its mask shifted by a run-time offset.
// CHECK-LABEL: func.func @position_offset
// CHECK-SAME: (%[[Q:.+]]: tensor<1x4x8x32xf32>, %[[K:.+]]: tensor<1x4x32x32xf32>, %[[V:.+]]: tensor<1x4x32x32xf32>, %[[OFF:.+]]: index)
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] position_offset(%[[OFF]]) mask = <causal> :
// CHECK-SAME: (tensor<1x4x8x32xf32>, tensor<1x4x32x32xf32>, tensor<1x4x32x32xf32>, index)
func.func @position_offset(%q: tensor<1x4x8x32xf32>, %k: tensor<1x4x32x32xf32>,
                           %v: tensor<1x4x32x32xf32>, %off: index) -> tensor<1x4x8x32xf32> {
  %o = attn.attention %q, %k, %v position_offset(%off) mask = <causal>
      : (tensor<1x4x8x32xf32>, tensor<1x4x32x32xf32>, tensor<1x4x32x32xf32>, index)
      -> tensor<1x4x8x32xf32>
  return %o : tensor<1x4x8x32xf32>
}
