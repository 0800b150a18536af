// RUN: not attn-opt %s --attn-tile 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: attn-opt %s --attn-decompose-gated-delta | FileCheck %s --check-prefix=DECOMPOSE

// attn.gated_delta_rule has no tiled lowering (its GPU kernels come from
// attn-lower-to-gpu, attn-lower-to-gpu-gated-delta.mlir): attn-tile says so
// at the op (not a crash, not an unbufferized-op error). The CPU pipeline
// runs attn-decompose-gated-delta first: the recurrence as loops over batch,
// value head, token and value column, each column of the state decayed and
// corrected in one pass over the key channels and read out in a second.
// TILE: attn-decompose-gated-delta.mlir:[[@LINE+16]]:12: error: 'attn.gated_delta_rule' op is not supported by attn-tile yet (only attn.attention and attn.attention_grad are tiled)
// DECOMPOSE-LABEL: func.func @gdn
// DECOMPOSE: linalg.copy ins(%{{.+}} : tensor<1x4x16x8xf32>)
// DECOMPOSE: scf.for
// DECOMPOSE:   scf.for
// DECOMPOSE:     arith.divui %{{.+}}, %c2
// DECOMPOSE:     scf.for
// DECOMPOSE:       math.rsqrt
// DECOMPOSE:       scf.for
// DECOMPOSE:         scf.for
// DECOMPOSE:           tensor.insert %{{.+}} into %{{.+}} : tensor<1x4x16x8xf32>
// DECOMPOSE:         scf.for
// DECOMPOSE:           tensor.insert %{{.+}} into %{{.+}} : tensor<1x4x16x8xf32>
// DECOMPOSE:         tensor.insert %{{.+}} into %{{.+}} : tensor<1x8x4x8xf32>
// DECOMPOSE-NOT: attn.gated_delta_rule
func.func @gdn(%q: tensor<1x8x2x16xf32>, %k: tensor<1x8x2x16xf32>, %v: tensor<1x8x4x8xf32>, %g: tensor<1x8x4xf32>, %b: tensor<1x8x4xf32>, %s0: tensor<1x4x16x8xf32>) -> (tensor<1x8x4x8xf32>, tensor<1x4x16x8xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b initial_state(%s0) qk_l2norm : (tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x4x8xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x4x16x8xf32>) -> (tensor<1x8x4x8xf32>, tensor<1x4x16x8xf32>)
  return %o, %s : tensor<1x8x4x8xf32>, tensor<1x4x16x8xf32>
}
