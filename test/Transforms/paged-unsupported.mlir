// RUN: not attn-opt %s --attn-tile 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: attn-opt %s --attn-decompose-paged | FileCheck %s --check-prefix=DECOMPOSE

// attn-tile does not take paged attention: it says so at the op (not an
// unbufferized-op error, not a crash). (The GPU kernels of paged attention:
// test/Conversion/attn-lower-to-gpu-paged.mlir.) attn-decompose-paged
// (which the CPU pipeline runs first) rewrites it into a gather of the pages
// (no read past a sequence's length), a 0/-inf bias carrying the lengths and
// the per-sequence bottom-right causal mask, and one attn.attention.
// DECOMPOSE-LABEL: func.func @decode
// DECOMPOSE: linalg.generic {{.*}} outs(%{{.+}} : tensor<2x64x2x64xf16>)
// DECOMPOSE:   %[[LEN:.+]] = tensor.extract %{{.+}}[%{{.+}}] : tensor<2xi32>
// DECOMPOSE:   arith.cmpi slt
// DECOMPOSE:   scf.if
// DECOMPOSE:     tensor.extract %{{.+}}[%{{.+}}, %{{.+}}] : tensor<2x4xi32>
// DECOMPOSE:     tensor.extract %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : tensor<10x16x2x64xf16>
// DECOMPOSE:   } else {
// DECOMPOSE: linalg.generic {{.*}} outs(%{{.+}} : tensor<2x1x1x64xf32>)
// DECOMPOSE:   arith.select %{{.+}}, %{{.+}}, %{{.+}} : f32
// DECOMPOSE: attn.attention %{{.+}}, %{{.+}}, %{{.+}} bias(%{{.+}}) layout = bshd : (tensor<2x1x8x64xf16>, tensor<2x64x2x64xf16>, tensor<2x64x2x64xf16>, tensor<2x1x1x64xf32>) -> tensor<2x1x8x64xf16>
// TILE: paged-unsupported.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op is not supported by attn-tile yet (only attn.attention and attn.attention_grad are tiled)
func.func @decode(%q: tensor<2x1x8x64xf16>, %kc: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x8x64xf16> {
  %o = attn.paged_attention %q, %kc, %kc, %t, %l mask = <causal> : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return %o : tensor<2x1x8x64xf16>
}
