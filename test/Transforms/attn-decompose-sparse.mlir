// RUN: attn-opt %s --split-input-file --attn-decompose-sparse | FileCheck %s

// Block-sparse attention (NSA selection): the bias starts at -inf and loops
// over batch, query row, query head and index list set 0 at the keys of each
// valid block (negative indices and blocks at or past ceil(Sk / 4) = 5
// skipped, keys past Sk = 19 too); then dense attention with that bias, the
// mask and the scalars unchanged.
// CHECK-LABEL: func.func @blocks
// CHECK-DAG: %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK-DAG: %[[C5:.+]] = arith.constant 5 : index
// CHECK: %[[FILL:.+]] = linalg.fill ins(%[[NINF]] : f32) outs(%{{.+}} : tensor<2x8x5x19xf32>)
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for
// CHECK: %[[RAW:.+]] = tensor.extract %{{.+}} : tensor<2x5x2x3xi64>
// CHECK: arith.cmpi sge, %[[RAW]]
// CHECK: arith.cmpi ult, %{{.+}}, %[[C5]] : index
// CHECK: scf.if
// CHECK: tensor.insert
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} bias(%{{.+}}) layout = bshd mask = <causal> scale = 2.500000e-01 softcap = 3.000000e+01 : (tensor<2x5x8x16xf16>, tensor<2x19x2x16xf16>, tensor<2x19x2x8xf16>, tensor<2x8x5x19xf32>) -> (tensor<2x5x8x8xf16>, tensor<2x8x5xf32>)
// CHECK-NOT: attn.sparse_attention
func.func @blocks(%q: tensor<2x5x8x16xf16>, %k: tensor<2x19x2x16xf16>, %v: tensor<2x19x2x8xf16>, %i: tensor<2x5x2x3xi64>) -> (tensor<2x5x8x8xf16>, tensor<2x8x5xf32>) {
  %o, %l = attn.sparse_attention %q, %k, %v, %i block_size = 4 mask = <causal> scale = 0.25 softcap = 30.0 : (tensor<2x5x8x16xf16>, tensor<2x19x2x16xf16>, tensor<2x19x2x8xf16>, tensor<2x5x2x3xi64>) -> (tensor<2x5x8x8xf16>, tensor<2x8x5xf32>)
  return %o, %l : tensor<2x5x8x8xf16>, tensor<2x8x5xf32>
}

// -----

// The lightning indexer: per-head logits q·k in f32, the ReLU'd weighted
// head sum, -inf outside the causal band, and a top-3 per row by repeated
// argmax (strictly greater: ties to the lower key; taken scores become NaN).
// CHECK-LABEL: func.func @indexer
// CHECK-DAG: %[[NAN:.+]] = arith.constant 0x7FC00000 : f32
// CHECK: linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK: arith.extf %{{.+}} : bf16 to f32
// CHECK: linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK: arith.maximumf
// CHECK: linalg.generic
// CHECK: arith.cmpi sle
// CHECK: arith.select
// CHECK: scf.for
// CHECK: scf.for
// CHECK: arith.cmpf ogt
// CHECK: tensor.insert %[[NAN]]
// CHECK: return %{{.+}}, %{{.+}} : tensor<1x4x3xi32>, tensor<1x4x6xf32>
func.func @indexer(%q: tensor<1x4x2x8xbf16>, %k: tensor<1x6x8xbf16>, %w: tensor<1x4x2xf32>) -> (tensor<1x4x3xi32>, tensor<1x4x6xf32>) {
  %t, %s = attn.lightning_indexer %q, %k, %w top_k = 3 mask = <causal> : (tensor<1x4x2x8xbf16>, tensor<1x6x8xbf16>, tensor<1x4x2xf32>) -> (tensor<1x4x3xi32>, tensor<1x4x6xf32>)
  return %t, %s : tensor<1x4x3xi32>, tensor<1x4x6xf32>
}

// -----

// NSA: compressed attention with a visibility bias (compressed token c
// visible once c·4 + 8 <= p + 1) and its LSE; the probabilities recomputed
// from the LSE; block scores summed over the group's heads and the
// compressed tokens overlapping each block; forced and future blocks; the
// top 3 per (token, KV head) into attn.sparse_attention; a window of 6;
// the gated sum.
// CHECK-LABEL: func.func @nsa
// CHECK: %{{.+}}, %{{.+}} = attn.attention %{{.+}}, %{{.+}}, %{{.+}} bias(%{{.+}}) layout = bshd mask = <none> scale = 2.500000e-01 : (tensor<1x40x4x16xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x1x40x9xf32>) -> (tensor<1x40x4x8xf32>, tensor<1x4x40xf32>)
// CHECK: math.exp
// CHECK: tensor.expand_shape %{{.+}} {{\[\[}}0], [1, 2], [3], [4]] output_shape [1, 2, 2, 40, 9] : tensor<1x4x40x9xf32> into tensor<1x2x2x40x9xf32>
// CHECK: linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0], [1, 2], [3]] : tensor<1x40x2x5xf32> into tensor<1x80x5xf32>
// CHECK: tensor.expand_shape %{{.+}} output_shape [1, 40, 2, 3] : tensor<1x80x3xi32> into tensor<1x40x2x3xi32>
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} bias(%{{.+}}) layout = bshd mask = <causal> scale = 2.500000e-01
// CHECK: attn.attention %{{.+}}, %{{.+}}, %{{.+}} layout = bshd mask = <window, left = 5, right = 0> scale = 2.500000e-01
// CHECK: math.fma
// CHECK-NOT: attn.nsa
// CHECK-NOT: attn.sparse_attention
func.func @nsa(%q: tensor<1x40x4x16xf32>, %k: tensor<1x40x2x16xf32>, %v: tensor<1x40x2x8xf32>, %kc: tensor<1x9x2x16xf32>, %vc: tensor<1x9x2x8xf32>, %g: tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32> {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return %o : tensor<1x40x4x8xf32>
}
