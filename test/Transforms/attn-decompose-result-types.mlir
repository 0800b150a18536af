// The verifiers accept result types that are only compatible with the
// operands' (static where an operand is dynamic); the decompositions build
// their values from the operands and cast them to the op's result types.
// RUN: attn-opt %s --attn-decompose-sparse | FileCheck %s
// CHECK-LABEL: func.func @indexer_static_scores
// CHECK: %[[S:.+]] = tensor.cast %{{.+}} : tensor<2x1x?xf32> to tensor<2x1x64xf32>
// CHECK: return %{{.+}}, %[[S]] : tensor<2x1x1xi32>, tensor<2x1x64xf32>
func.func @indexer_static_scores(%q: tensor<2x1x4x16xf32>, %k: tensor<2x?x16xf32>, %w: tensor<2x1x4xf32>) -> (tensor<2x1x1xi32>, tensor<2x1x64xf32>) {
  %i, %s = attn.lightning_indexer %q, %k, %w top_k = 1 mask = <causal> : (tensor<2x1x4x16xf32>, tensor<2x?x16xf32>, tensor<2x1x4xf32>) -> (tensor<2x1x1xi32>, tensor<2x1x64xf32>)
  return %i, %s : tensor<2x1x1xi32>, tensor<2x1x64xf32>
}
