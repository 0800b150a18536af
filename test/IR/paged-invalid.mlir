// RUN: attn-opt %s -split-input-file -verify-diagnostics
// One case per diagnostic of attn.paged_attention.

func.func @query_element_type(%q: tensor<2x1x8x64xf64>, %k: tensor<10x16x2x64xf64>, %v: tensor<10x16x2x64xf64>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{query element type must be f16, bf16 or f32, got 'f64'}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf64>, tensor<10x16x2x64xf64>, tensor<10x16x2x64xf64>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf64>
  return
}

// -----

func.func @query_rank(%q: tensor<2x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{query must be a rank-4 tensor [B, Sq, Hq, D], got rank 3}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x8x64xf16>
  return
}

// -----

func.func @cache_rank_hnd(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x64xf16>, %v: tensor<10x2x16x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{key_cache must be a rank-4 tensor [P, Hkv, page_size, D], got rank 3}}
  %o = attn.paged_attention %q, %k, %v, %t, %l cache_layout = hnd : (tensor<2x1x8x64xf16>, tensor<10x16x64xf16>, tensor<10x2x16x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @cache_element_type(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{value_cache element type 'bf16' does not match query element type 'f16'}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @table_type(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xf32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{block_table must be a rank-2 tensor [B, max_pages] of i32 or i64, got 'tensor<2x4xf32>'}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @lens_type(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi64>) {
  // expected-error @+1 {{seq_lens must be a rank-1 tensor [B] of the block_table element type ('i32'), got 'tensor<2xi64>'}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi64>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @table_batch(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<3x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{block_table batch size (3) must equal query batch size (2)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<3x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @lens_batch(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<4xi32>) {
  // expected-error @+1 {{seq_lens batch size (4) must equal query batch size (2)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<4xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @page_count(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<11x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{value_cache page count (11) must equal key_cache page count (10)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<11x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @page_size_mismatch(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x32x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{value_cache page size (32) must equal key_cache page size (16)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x32x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @heads_mismatch(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x4x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{value_cache head count (4) must equal key_cache head count (2)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x4x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @head_dim(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x32xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{key_cache head dim (32) must equal query head dim (64)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x32xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @page_size_range(%q: tensor<2x1x8x64xf16>, %k: tensor<10x512x2x64xf16>, %v: tensor<10x512x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{page size must be between 1 and 256, got 512}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x512x2x64xf16>, tensor<10x512x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @page_size_zero(%q: tensor<2x1x8x64xf16>, %k: tensor<10x0x2x64xf16>, %v: tensor<10x0x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{page size must be between 1 and 256, got 0}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x0x2x64xf16>, tensor<10x0x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @group(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x3x64xf16>, %v: tensor<10x16x3x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{query head count (8) must be a multiple of the key/value head count (3)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x3x64xf16>, tensor<10x16x3x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @no_heads(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x0x64xf16>, %v: tensor<10x16x0x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{key_cache must have at least one head}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x0x64xf16>, tensor<10x16x0x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @output_shape(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{output shape 'tensor<2x1x8x32xf16>' is incompatible with the expected 'tensor<2x1x8x64xf16>' (query shape with the value head dim)}}
  %o = attn.paged_attention %q, %k, %v, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x32xf16>
  return
}

// -----

func.func @scale(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{scale must be a positive finite number, got -1}}
  %o = attn.paged_attention %q, %k, %v, %t, %l scale = -1.0 : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @softcap(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %v: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{softcap must be a positive finite number, got 0}}
  %o = attn.paged_attention %q, %k, %v, %t, %l softcap = 0.0 : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @sinks_shape(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{sinks must be a rank-1 tensor of the query head count (8), got 'tensor<4xf32>'}}
  %o = attn.paged_attention %q, %k, %k, %t, %l sinks(%s) : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>, tensor<4xf32>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @sinks_type(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>, %s: tensor<8xbf16>) {
  // expected-error @+1 {{sinks element type 'bf16' must be the query element type ('f16') or f32}}
  %o = attn.paged_attention %q, %k, %k, %t, %l sinks(%s) : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>, tensor<8xbf16>) -> tensor<2x1x8x64xf16>
  return
}

// -----

func.func @lse(%q: tensor<2x1x8x64xf16>, %k: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{lse result must be 'tensor<2x8x1xf32>' ([B, Hq, Sq], f32), got 'tensor<2x1x8xf32>'}}
  %o, %lse = attn.paged_attention %q, %k, %k, %t, %l : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> (tensor<2x1x8x64xf16>, tensor<2x1x8xf32>)
  return
}
