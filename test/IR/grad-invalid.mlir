// RUN: attn-opt %s -split-input-file -verify-diagnostics
// One case per diagnostic of attn.attention_grad of its own; the checks it
// shares with attn.attention (test/IR/invalid.mlir) are one function.

func.func @shared_checks(%q: tensor<1x4x8x32xf16>, %k: tensor<1x3x8x32xf16>, %o: tensor<1x4x8x32xf16>, %lse: tensor<1x4x8xf32>) {
  // expected-error @+1 {{query head count (4) must be a multiple of the key/value head count (3)}}
  %dq, %dk, %dv = attn.attention_grad %q, %k, %k, %o, %o, %lse : (tensor<1x4x8x32xf16>, tensor<1x3x8x32xf16>, tensor<1x3x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x3x8x32xf16>, tensor<1x3x8x32xf16>)
  return
}

// -----

func.func @lse_operand(%q: tensor<1x4x8x32xf16>, %lse: tensor<1x8x4xf32>) {
  // expected-error @+1 {{lse operand must be 'tensor<1x4x8xf32>' ([B, Hq, Sq], f32), got 'tensor<1x8x4xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x8x4xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>)
  return
}

// -----

func.func @grad_output_type(%q: tensor<1x4x8x32xf16>, %do: tensor<1x4x8x16xf16>, %lse: tensor<1x4x8xf32>) {
  // expected-error @+1 {{grad_output must have the type of output ('tensor<1x4x8x32xf16>'), got 'tensor<1x4x8x16xf16>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %do, %lse : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x16xf16>, tensor<1x4x8xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>)
  return
}

// -----

func.func @grad_key_is_summed_over_groups(%q: tensor<1x4x8x32xf16>, %k: tensor<1x2x8x32xf16>, %lse: tensor<1x4x8xf32>) {
  // expected-error @+1 {{grad_key must have the type of key ('tensor<1x2x8x32xf16>'), got 'tensor<1x4x8x32xf16>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %k, %k, %q, %q, %lse : (tensor<1x4x8x32xf16>, tensor<1x2x8x32xf16>, tensor<1x2x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x2x8x32xf16>)
  return
}

// -----

func.func @grad_query_type(%q: tensor<1x4x8x32xf16>, %lse: tensor<1x4x8xf32>) {
  // expected-error @+1 {{grad_query must have the type of query ('tensor<1x4x8x32xf16>'), got 'tensor<1x4x8x32xf32>'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8xf32>) -> (tensor<1x4x8x32xf32>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>)
  return
}

// -----

func.func @sinks_without_gradient(%q: tensor<1x4x8x32xf16>, %lse: tensor<1x4x8xf32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{sinks are given but there is no grad_sinks result}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse sinks(%s) : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8xf32>, tensor<4xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>)
  return
}

// -----

func.func @gradient_without_sinks(%q: tensor<1x4x8x32xf16>, %lse: tensor<1x4x8xf32>) {
  // expected-error @+1 {{a grad_sinks result needs sinks}}
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %q, %q, %q, %q, %lse : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<4xf32>)
  return
}

// -----

func.func @grad_sinks_type(%q: tensor<1x4x8x32xf16>, %lse: tensor<1x4x8xf32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{grad_sinks must have the type of sinks ('tensor<4xf32>'), got 'tensor<4xf16>'}}
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %q, %q, %q, %q, %lse sinks(%s) : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8xf32>, tensor<4xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<4xf16>)
  return
}

// -----

func.func @segments(%q: tensor<1x4x8x32xf16>, %lse: tensor<1x4x8xf32>) {
  // expected-error @+1 {{operandSegmentSizes gives lse 0 operands, expected 1}}
  %dq, %dk, %dv = "attn.attention_grad"(%q, %q, %q, %q, %q, %lse) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 1, 0>}> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8xf32>) -> (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>)
  return
}
