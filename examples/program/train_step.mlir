// One attention layer's training step as a program: the forward with its
// LSE, then the backward for an upstream gradient (Llama-3.1-8B's GQA, 32
// query heads over 8 KV heads, head dim 128, causal, bf16; batch and
// sequence length dynamic):
//
//   build/bin/attn-compile --shared examples/program/train_step.mlir -o build/programs/train_step.so
//
// The host code runs the forward kernel, then the backward's kernels in
// their order: dQ (which also writes Delta = rowsum(dO * O) to a workspace
// sized from the run-time lengths), then dK/dV summed over each KV head's
// query heads (no atomics).
func.func @train_step(%q: tensor<?x32x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>, %do: tensor<?x32x?x128xbf16>)
    -> (tensor<?x32x?x128xbf16>, tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask = <causal> scale = 0.0883883461 : (tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) -> (tensor<?x32x?x128xbf16>, tensor<?x32x?xf32>)
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do, %lse mask = <causal> scale = 0.0883883461 : (tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x32x?x128xbf16>, tensor<?x32x?x128xbf16>, tensor<?x32x?xf32>) -> (tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>)
  return %o, %dq, %dk, %dv : tensor<?x32x?x128xbf16>, tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>
}

// The same with attention sinks (gpt-oss's learned per-head logit): the
// program also returns their gradient, from the third backward kernel.
func.func @train_step_sinks(%q: tensor<?x8x?x64xbf16>, %k: tensor<?x2x?x64xbf16>, %v: tensor<?x2x?x64xbf16>, %sinks: tensor<8xf32>, %do: tensor<?x8x?x64xbf16>)
    -> (tensor<?x8x?x64xbf16>, tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<8xf32>) {
  %o, %lse = attn.attention %q, %k, %v sinks(%sinks) mask = <window, left = 127, right = 0> scale = 0.125 : (tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<8xf32>) -> (tensor<?x8x?x64xbf16>, tensor<?x8x?xf32>)
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %do, %lse sinks(%sinks) mask = <window, left = 127, right = 0> scale = 0.125 : (tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x8x?x64xbf16>, tensor<?x8x?x64xbf16>, tensor<?x8x?xf32>, tensor<8xf32>) -> (tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<8xf32>)
  return %o, %dq, %dk, %dv, %ds : tensor<?x8x?x64xbf16>, tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<8xf32>
}
