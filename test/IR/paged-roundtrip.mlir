// RUN: attn-opt %s | FileCheck %s
// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

// Decode with GQA over an NHD cache of 16-token pages (the default layout,
// not printed).
// CHECK-LABEL: func.func @decode
// CHECK: %[[O:.+]] = attn.paged_attention %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} mask = <causal> : (tensor<8x1x32x128xbf16>, tensor<4096x16x8x128xbf16>, tensor<4096x16x8x128xbf16>, tensor<8x512xi32>, tensor<8xi32>) -> tensor<8x1x32x128xbf16>
// CHECK: return %[[O]]
func.func @decode(%q: tensor<8x1x32x128xbf16>, %kc: tensor<4096x16x8x128xbf16>, %vc: tensor<4096x16x8x128xbf16>, %t: tensor<8x512xi32>, %l: tensor<8xi32>) -> tensor<8x1x32x128xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l mask = <causal> : (tensor<8x1x32x128xbf16>, tensor<4096x16x8x128xbf16>, tensor<4096x16x8x128xbf16>, tensor<8x512xi32>, tensor<8xi32>) -> tensor<8x1x32x128xbf16>
  return %o : tensor<8x1x32x128xbf16>
}

// MLA-style absorbed decode: one KV head, D = 576, Dv = 512, HND cache of
// 64-token pages, i64 tables, sinks, window, scale, softcap and the LSE.
// CHECK-LABEL: func.func @mla
// CHECK: %[[O:.+]], %[[L:.+]] = attn.paged_attention %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} sinks(%{{.+}}) cache_layout = hnd mask = <window, left = 127, right = 0> scale = 1.352000e-01 softcap = 3.000000e+01
// CHECK-SAME: -> (tensor<4x2x128x512xbf16>, tensor<4x128x2xf32>)
func.func @mla(%q: tensor<4x2x128x576xbf16>, %c: tensor<1000x1x64x576xbf16>, %v: tensor<1000x1x64x512xbf16>, %t: tensor<4x100xi64>, %l: tensor<4xi64>, %s: tensor<128xf32>) -> (tensor<4x2x128x512xbf16>, tensor<4x128x2xf32>) {
  %o, %lse = attn.paged_attention %q, %c, %v, %t, %l sinks(%s) cache_layout = hnd mask = <window, left = 127, right = 0> scale = 0.1352 softcap = 30.0 : (tensor<4x2x128x576xbf16>, tensor<1000x1x64x576xbf16>, tensor<1000x1x64x512xbf16>, tensor<4x100xi64>, tensor<4xi64>, tensor<128xf32>) -> (tensor<4x2x128x512xbf16>, tensor<4x128x2xf32>)
  return %o, %lse : tensor<4x2x128x512xbf16>, tensor<4x128x2xf32>
}

// An odd page size (61), dynamic batch and page count.
// CHECK-LABEL: func.func @dynamic
// CHECK: attn.paged_attention {{.*}} : (tensor<?x3x8x64xf16>, tensor<?x61x2x64xf16>, tensor<?x61x2x64xf16>, tensor<?x17xi32>, tensor<?xi32>) -> tensor<?x3x8x64xf16>
func.func @dynamic(%q: tensor<?x3x8x64xf16>, %kc: tensor<?x61x2x64xf16>, %t: tensor<?x17xi32>, %l: tensor<?xi32>) -> tensor<?x3x8x64xf16> {
  %o = attn.paged_attention %q, %kc, %kc, %t, %l : (tensor<?x3x8x64xf16>, tensor<?x61x2x64xf16>, tensor<?x61x2x64xf16>, tensor<?x17xi32>, tensor<?xi32>) -> tensor<?x3x8x64xf16>
  return %o : tensor<?x3x8x64xf16>
}
