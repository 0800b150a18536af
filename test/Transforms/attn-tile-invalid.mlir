// RUN: attn-opt %s --attn-tile -split-input-file -verify-diagnostics
// RUN: not attn-opt %s --attn-tile=block-q=0 -split-input-file 2>&1 | FileCheck %s --check-prefix=BLOCK
// BLOCK: error: attn-tile: block sizes must be positive

func.func @dynamic_head_dim_without_scale(%q: tensor<1x4x8x?xf32>, %k: tensor<1x4x8x?xf32>, %v: tensor<1x4x8x?xf32>) -> tensor<1x4x8x?xf32> {
  // expected-error @+1 {{attn-tile: cannot tile this attention: a dynamic head dim needs an explicit scale}}
  %o = attn.attention %q, %k, %v : (tensor<1x4x8x?xf32>, tensor<1x4x8x?xf32>, tensor<1x4x8x?xf32>) -> tensor<1x4x8x?xf32>
  return %o : tensor<1x4x8x?xf32>
}

// -----

// With an explicit scale a dynamic head dim tiles.
func.func @dynamic_head_dim_with_scale(%q: tensor<1x4x8x?xf32>, %k: tensor<1x4x8x?xf32>, %v: tensor<1x4x8x?xf32>) -> tensor<1x4x8x?xf32> {
  %o = attn.attention %q, %k, %v scale = 0.125 : (tensor<1x4x8x?xf32>, tensor<1x4x8x?xf32>, tensor<1x4x8x?xf32>) -> tensor<1x4x8x?xf32>
  return %o : tensor<1x4x8x?xf32>
}
