// RUN: attn-opt %s -split-input-file -verify-diagnostics
// One case per diagnostic of attn.sparse_attention, attn.lightning_indexer
// and attn.nsa.

func.func @query_element_type(%q: tensor<2x5x8x16xf64>, %k: tensor<2x9x2x16xf64>, %v: tensor<2x9x2x8xf64>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{query element type must be f16, bf16 or f32, got 'f64'}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf64>, tensor<2x9x2x16xf64>, tensor<2x9x2x8xf64>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf64>
  return
}

// -----

func.func @key_rank(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{key must be a rank-4 tensor [B, Sk, Hkv, D], got rank 3}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @value_element_type(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xbf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{value element type 'bf16' does not match query element type 'f16'}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xbf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @indices_type(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xf32>) {
  // expected-error @+1 {{indices must be a rank-4 tensor [B, Sq, Hkv, N] of i32 or i64, got 'tensor<2x5x2x3xf32>'}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xf32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @indices_rank(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x3xi32>) {
  // expected-error @+1 {{indices must be a rank-4 tensor [B, Sq, Hkv, N] of i32 or i64, got 'tensor<2x5x3xi32>'}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @key_batch(%q: tensor<2x5x8x16xf16>, %k: tensor<3x9x2x16xf16>, %v: tensor<3x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{key batch size (3) must equal query batch size (2)}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<3x9x2x16xf16>, tensor<3x9x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @indices_seq(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x4x2x3xi32>) {
  // expected-error @+1 {{indices sequence length (4) must equal query sequence length (5)}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x4x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @value_seq(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x7x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{value sequence length (7) must equal key sequence length (9)}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x7x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @indices_heads(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x1x3xi32>) {
  // expected-error @+1 {{indices head count (1) must equal key head count (2)}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x1x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @head_dim(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x32xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{key head dim (32) must equal query head dim (16)}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x32xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @group(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x3x16xf16>, %v: tensor<2x9x3x8xf16>, %i: tensor<2x5x3x3xi32>) {
  // expected-error @+1 {{query head count (8) must be a multiple of the key/value head count (3)}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x3x16xf16>, tensor<2x9x3x8xf16>, tensor<2x5x3x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @empty_index_list(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x0xi32>) {
  // expected-error @+1 {{indices must hold at least one index per row}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x0xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @block_size(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{block_size must be in [1, 2^31 - 1], got 0}}
  %o = attn.sparse_attention %q, %k, %v, %i block_size = 0 : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @negative_block_size(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{block_size must be in [1, 2^31 - 1], got -64}}
  %o = attn.sparse_attention %q, %k, %v, %i block_size = -64 : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @output_shape(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{output shape 'tensor<2x5x8x16xf16>' is incompatible with the expected 'tensor<2x5x8x8xf16>' (query shape with the value head dim)}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x16xf16>
  return
}

// -----

func.func @sinks(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{sinks must be a rank-1 tensor of the query head count (8), got 'tensor<4xf32>'}}
  %o = attn.sparse_attention %q, %k, %v, %i sinks(%s) : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>, tensor<4xf32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @lse(%q: tensor<2x5x8x16xf16>, %k: tensor<2x9x2x16xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{lse result must be 'tensor<2x8x5xf32>'}}
  %o, %l = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x16xf16>, tensor<2x9x2x16xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>) -> (tensor<2x5x8x8xf16>, tensor<2x5x8xf32>)
  return
}

// -----

func.func @scale(%q: tensor<2x5x8x?xf16>, %k: tensor<2x9x2x?xf16>, %v: tensor<2x9x2x8xf16>, %i: tensor<2x5x2x3xi32>) {
  // expected-error @+1 {{needs an explicit scale when the head dim is dynamic}}
  %o = attn.sparse_attention %q, %k, %v, %i : (tensor<2x5x8x?xf16>, tensor<2x9x2x?xf16>, tensor<2x9x2x8xf16>, tensor<2x5x2x3xi32>) -> tensor<2x5x8x8xf16>
  return
}

// -----

func.func @indexer_query_type(%q: tensor<2x5x4x16xi8>, %k: tensor<2x9x16xi8>, %w: tensor<2x5x4xf32>) {
  // expected-error @+1 {{query element type must be f16, bf16 or f32, got 'i8'}}
  %r = attn.lightning_indexer %q, %k, %w top_k = 3 : (tensor<2x5x4x16xi8>, tensor<2x9x16xi8>, tensor<2x5x4xf32>) -> tensor<2x5x3xi32>
  return
}

// -----

func.func @indexer_key_rank(%q: tensor<2x5x4x16xf16>, %k: tensor<2x9x1x16xf16>, %w: tensor<2x5x4xf32>) {
  // expected-error @+1 {{key must be a rank-3 tensor [B, Sk, Di], got rank 4}}
  %r = attn.lightning_indexer %q, %k, %w top_k = 3 : (tensor<2x5x4x16xf16>, tensor<2x9x1x16xf16>, tensor<2x5x4xf32>) -> tensor<2x5x3xi32>
  return
}

// -----

func.func @indexer_weights(%q: tensor<2x5x4x16xf16>, %k: tensor<2x9x16xf16>, %w: tensor<2x5x4xbf16>) {
  // expected-error @+1 {{weights must be a rank-3 tensor [B, Sq, Hi] of the query element type ('f16') or f32, got 'tensor<2x5x4xbf16>'}}
  %r = attn.lightning_indexer %q, %k, %w top_k = 3 : (tensor<2x5x4x16xf16>, tensor<2x9x16xf16>, tensor<2x5x4xbf16>) -> tensor<2x5x3xi32>
  return
}

// -----

func.func @indexer_key_dim(%q: tensor<2x5x4x16xf16>, %k: tensor<2x9x8xf16>, %w: tensor<2x5x4xf32>) {
  // expected-error @+1 {{key head dim (8) must equal query head dim (16)}}
  %r = attn.lightning_indexer %q, %k, %w top_k = 3 : (tensor<2x5x4x16xf16>, tensor<2x9x8xf16>, tensor<2x5x4xf32>) -> tensor<2x5x3xi32>
  return
}

// -----

func.func @indexer_weights_heads(%q: tensor<2x5x4x16xf16>, %k: tensor<2x9x16xf16>, %w: tensor<2x5x2xf32>) {
  // expected-error @+1 {{weights head count (2) must equal query head count (4)}}
  %r = attn.lightning_indexer %q, %k, %w top_k = 3 : (tensor<2x5x4x16xf16>, tensor<2x9x16xf16>, tensor<2x5x2xf32>) -> tensor<2x5x3xi32>
  return
}

// -----

func.func @indexer_top_k(%q: tensor<2x5x4x16xf16>, %k: tensor<2x9x16xf16>, %w: tensor<2x5x4xf32>) {
  // expected-error @+1 {{top_k must be in [1, 2^31 - 1], got 0}}
  %r = attn.lightning_indexer %q, %k, %w top_k = 0 : (tensor<2x5x4x16xf16>, tensor<2x9x16xf16>, tensor<2x5x4xf32>) -> tensor<2x5x0xi32>
  return
}

// -----

func.func @indexer_indices(%q: tensor<2x5x4x16xf16>, %k: tensor<2x9x16xf16>, %w: tensor<2x5x4xf32>) {
  // expected-error @+1 {{indices result must be 'tensor<2x5x3xi32>' ([B, Sq, top_k] i32), got 'tensor<2x5x3xi64>'}}
  %r = attn.lightning_indexer %q, %k, %w top_k = 3 : (tensor<2x5x4x16xf16>, tensor<2x9x16xf16>, tensor<2x5x4xf32>) -> tensor<2x5x3xi64>
  return
}

// -----

func.func @indexer_scores(%q: tensor<2x5x4x16xf16>, %k: tensor<2x9x16xf16>, %w: tensor<2x5x4xf32>) {
  // expected-error @+1 {{scores result must be 'tensor<2x5x9xf32>' ([B, Sq, Sk] f32), got 'tensor<2x5x8xf32>'}}
  %r, %s = attn.lightning_indexer %q, %k, %w top_k = 3 : (tensor<2x5x4x16xf16>, tensor<2x9x16xf16>, tensor<2x5x4xf32>) -> (tensor<2x5x3xi32>, tensor<2x5x8xf32>)
  return
}

// -----

func.func @nsa_key_cmp_rank(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{key_cmp must be a rank-4 tensor [B, Tc, Hkv, D], got rank 3}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_gates_type(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xi32>) {
  // expected-error @+1 {{gates must be a rank-4 tensor [B, Sq, Hq, 3] of the query element type ('f32') or f32, got 'tensor<1x40x4x3xi32>'}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xi32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_gates_branches(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x2xf32>) {
  // expected-error @+1 {{gates last dim (2) must equal the branch count (3)}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x2xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_value_cmp_len(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x8x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{value_cmp length (8) must equal key_cmp length (9)}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x8x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_key_cmp_heads(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x1x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{key_cmp head count (1) must equal key head count (2)}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x1x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_value_cmp_dim(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x16xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{value_cmp head dim (16) must equal value head dim (8)}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x16xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_dynamic_heads(%a0: tensor<1x40x?x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x?x3xf32>) {
  // expected-error @+1 {{needs static head counts}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x?x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x?x3xf32>) -> tensor<1x40x?x8xf32>
  return
}

// -----

func.func @nsa_group(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x3x16xf32>, %a2: tensor<1x40x3x8xf32>, %a3: tensor<1x9x3x16xf32>, %a4: tensor<1x9x3x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{query head count (4) must be a positive multiple of the key/value head count (3)}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x3x16xf32>, tensor<1x40x3x8xf32>, tensor<1x9x3x16xf32>, tensor<1x9x3x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_block(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{cmp_stride must be in [1, 2^31 - 1], got 0}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 0 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_window(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{window must be in [1, 2^31 - 1], got -1}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = -1 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_forced(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{the always-selected blocks (initial_blocks + local_blocks = 3) exceed num_selected (2)}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 2 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_negative_forced(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{initial_blocks must be in [0, 2^31 - 1], got -1}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 initial_blocks = -1 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return
}

// -----

func.func @nsa_output(%a0: tensor<1x40x4x16xf32>, %a1: tensor<1x40x2x16xf32>, %a2: tensor<1x40x2x8xf32>, %a3: tensor<1x9x2x16xf32>, %a4: tensor<1x9x2x8xf32>, %a5: tensor<1x40x4x3xf32>) {
  // expected-error @+1 {{output shape 'tensor<1x40x4x16xf32>' is incompatible with the expected 'tensor<1x40x4x8xf32>'}}
  %o = attn.nsa %a0, %a1, %a2, %a3, %a4, %a5 cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x16xf32>
  return
}
