// RUN: attn-opt %s | FileCheck %s
// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

// NSA's selection branch: 16 query heads per KV head, 16 selected blocks of
// 64 keys per token, causal.
// CHECK-LABEL: func.func @nsa_selection
// CHECK: %[[O:.+]] = attn.sparse_attention %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} block_size = 64 mask = <causal> : (tensor<1x4096x64x128xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x4096x4x16xi32>) -> tensor<1x4096x64x128xbf16>
// CHECK: return %[[O]]
func.func @nsa_selection(%q: tensor<1x4096x64x128xbf16>, %k: tensor<1x4096x4x128xbf16>, %v: tensor<1x4096x4x128xbf16>, %idx: tensor<1x4096x4x16xi32>) -> tensor<1x4096x64x128xbf16> {
  %o = attn.sparse_attention %q, %k, %v, %idx block_size = 64 mask = <causal> : (tensor<1x4096x64x128xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x4096x4x16xi32>) -> tensor<1x4096x64x128xbf16>
  return %o : tensor<1x4096x64x128xbf16>
}

// DSA: the lightning indexer's top-2048 tokens, then token-sparse MLA
// attention over the latent cache (D = 576, Dv = 512, one KV head; the
// value the key's first 512 columns), with sinks, scale, softcap and the
// LSE. block_size = 1 is the default and is not printed.
// CHECK-LABEL: func.func @dsa
// CHECK: %[[I:.+]], %[[S:.+]] = attn.lightning_indexer %{{.+}}, %{{.+}}, %{{.+}} top_k = 2048 mask = <causal> : (tensor<2x4096x64x128xbf16>, tensor<2x4096x128xbf16>, tensor<2x4096x64xf32>) -> (tensor<2x4096x2048xi32>, tensor<2x4096x4096xf32>)
// CHECK: %[[O:.+]], %[[L:.+]] = attn.sparse_attention %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} sinks(%{{.+}}) mask = <causal> scale = 1.352000e-01 softcap = 3.000000e+01 : (tensor<2x4096x128x576xbf16>, tensor<2x4096x1x576xbf16>, tensor<2x4096x1x512xbf16>, tensor<2x4096x1x2048xi32>, tensor<128xf32>) -> (tensor<2x4096x128x512xbf16>, tensor<2x128x4096xf32>)
func.func @dsa(%qi: tensor<2x4096x64x128xbf16>, %ki: tensor<2x4096x128xbf16>, %w: tensor<2x4096x64xf32>, %q: tensor<2x4096x128x576xbf16>, %c: tensor<2x4096x1x576xbf16>, %s: tensor<128xf32>) -> (tensor<2x4096x128x512xbf16>, tensor<2x128x4096xf32>, tensor<2x4096x4096xf32>) {
  %idx, %scores = attn.lightning_indexer %qi, %ki, %w top_k = 2048 mask = <causal> : (tensor<2x4096x64x128xbf16>, tensor<2x4096x128xbf16>, tensor<2x4096x64xf32>) -> (tensor<2x4096x2048xi32>, tensor<2x4096x4096xf32>)
  %idx4 = tensor.expand_shape %idx [[0], [1], [2, 3]] output_shape [2, 4096, 1, 2048] : tensor<2x4096x2048xi32> into tensor<2x4096x1x2048xi32>
  %v = tensor.extract_slice %c[0, 0, 0, 0] [2, 4096, 1, 512] [1, 1, 1, 1] : tensor<2x4096x1x576xbf16> to tensor<2x4096x1x512xbf16>
  %o, %lse = attn.sparse_attention %q, %c, %v, %idx4 sinks(%s) block_size = 1 mask = <causal> scale = 0.1352 softcap = 30.0 : (tensor<2x4096x128x576xbf16>, tensor<2x4096x1x576xbf16>, tensor<2x4096x1x512xbf16>, tensor<2x4096x1x2048xi32>, tensor<128xf32>) -> (tensor<2x4096x128x512xbf16>, tensor<2x128x4096xf32>)
  return %o, %lse, %scores : tensor<2x4096x128x512xbf16>, tensor<2x128x4096xf32>, tensor<2x4096x4096xf32>
}

// Dynamic sizes, i64 indices, a window, no mask on the indexer.
// CHECK-LABEL: func.func @dynamic
// CHECK: attn.lightning_indexer %{{.+}}, %{{.+}}, %{{.+}} top_k = 8 : (tensor<?x?x4x16xf32>, tensor<?x?x16xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xi32>
// CHECK: attn.sparse_attention %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} block_size = 4 mask = <window, left = 7, right = 0> scale = 2.500000e-01 : (tensor<?x?x8x16xf16>, tensor<?x?x2x16xf16>, tensor<?x?x2x8xf16>, tensor<?x?x2x3xi64>) -> tensor<?x?x8x8xf16>
func.func @dynamic(%qi: tensor<?x?x4x16xf32>, %ki: tensor<?x?x16xf32>, %w: tensor<?x?x4xf32>, %q: tensor<?x?x8x16xf16>, %k: tensor<?x?x2x16xf16>, %v: tensor<?x?x2x8xf16>, %idx: tensor<?x?x2x3xi64>) -> (tensor<?x?x8xi32>, tensor<?x?x8x8xf16>) {
  %t = attn.lightning_indexer %qi, %ki, %w top_k = 8 : (tensor<?x?x4x16xf32>, tensor<?x?x16xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xi32>
  %o = attn.sparse_attention %q, %k, %v, %idx block_size = 4 mask = <window, left = 7, right = 0> scale = 0.25 : (tensor<?x?x8x16xf16>, tensor<?x?x2x16xf16>, tensor<?x?x2x8xf16>, tensor<?x?x2x3xi64>) -> tensor<?x?x8x8xf16>
  return %t, %o : tensor<?x?x8xi32>, tensor<?x?x8x8xf16>
}

// NSA with the NSA paper's 27B configuration; the defaults (one initial and
// two local blocks always selected) are not printed.
// CHECK-LABEL: func.func @nsa
// CHECK: attn.nsa %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 16 window = 512 : (tensor<1x4096x64x192xbf16>, tensor<1x4096x4x192xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x255x4x192xbf16>, tensor<1x255x4x128xbf16>, tensor<1x4096x64x3xbf16>) -> tensor<1x4096x64x128xbf16>
// CHECK: attn.nsa {{.+}} window = 8 initial_blocks = 0 local_blocks = 1 scale = 1.250000e-01 : {{.+}} -> tensor<?x?x8x16xf32>
func.func @nsa(%q: tensor<1x4096x64x192xbf16>, %k: tensor<1x4096x4x192xbf16>, %v: tensor<1x4096x4x128xbf16>, %kc: tensor<1x255x4x192xbf16>, %vc: tensor<1x255x4x128xbf16>, %g: tensor<1x4096x64x3xbf16>, %q2: tensor<?x?x8x16xf32>, %k2: tensor<?x?x2x16xf32>, %v2: tensor<?x?x2x16xf32>, %kc2: tensor<?x?x2x16xf32>, %vc2: tensor<?x?x2x16xf32>, %g2: tensor<?x?x8x3xf32>) -> (tensor<1x4096x64x128xbf16>, tensor<?x?x8x16xf32>) {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 16 window = 512 : (tensor<1x4096x64x192xbf16>, tensor<1x4096x4x192xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x255x4x192xbf16>, tensor<1x255x4x128xbf16>, tensor<1x4096x64x3xbf16>) -> tensor<1x4096x64x128xbf16>
  %o2 = attn.nsa %q2, %k2, %v2, %kc2, %vc2, %g2 cmp_block = 4 cmp_stride = 2 sel_block = 4 num_selected = 2 window = 8 initial_blocks = 0 local_blocks = 1 scale = 0.125 : (tensor<?x?x8x16xf32>, tensor<?x?x2x16xf32>, tensor<?x?x2x16xf32>, tensor<?x?x2x16xf32>, tensor<?x?x2x16xf32>, tensor<?x?x8x3xf32>) -> tensor<?x?x8x16xf32>
  return %o, %o2 : tensor<1x4096x64x128xbf16>, tensor<?x?x8x16xf32>
}
