// BERT-base encoder self-attention in TOSA, as the TFLite/ONNX importers emit
// it: 12 heads of 64 over a hidden size of 768, 512 tokens, bidirectional,
// with an additive padding mask over the keys (f32).
//
//   build/bin/attn-opt --attn-fuse --canonicalize examples/frontend/bert_base_attention_tosa.mlir
//
// turns the reshapes, transposes, matmuls and the decomposed softmax into one
// attn.attention that reads Q, K and V in their [B, S, H, D] layout and keeps
// the padding mask as its bias.
func.func @attention(%q: tensor<1x512x768xf32>, %k: tensor<1x512x768xf32>, %v: tensor<1x512x768xf32>, %padding: tensor<1x1x512xf32>) -> tensor<1x512x768xf32> {
  %heads = tosa.const_shape {values = dense<[1, 512, 12, 64]> : tensor<4xindex>} : () -> !tosa.shape<4>
  %flat = tosa.const_shape {values = dense<[12, 512, 64]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %back = tosa.const_shape {values = dense<[1, 512, 768]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %unflat = tosa.const_shape {values = dense<[1, 12, 512, 64]> : tensor<4xindex>} : () -> !tosa.shape<4>
  %zp = "tosa.const"() <{values = dense<0.0> : tensor<1xf32>}> : () -> tensor<1xf32>
  %shift = "tosa.const"() <{values = dense<0> : tensor<1xi8>}> : () -> tensor<1xi8>
  %scale = "tosa.const"() <{values = dense<0.125> : tensor<1x1x1xf32>}> : () -> tensor<1x1x1xf32>
  // [B, S, H*D] -> [B, S, H, D] -> [B, H, S, D] -> [B*H, S, D]
  %q4 = tosa.reshape %q, %heads : (tensor<1x512x768xf32>, !tosa.shape<4>) -> tensor<1x512x12x64xf32>
  %k4 = tosa.reshape %k, %heads : (tensor<1x512x768xf32>, !tosa.shape<4>) -> tensor<1x512x12x64xf32>
  %v4 = tosa.reshape %v, %heads : (tensor<1x512x768xf32>, !tosa.shape<4>) -> tensor<1x512x12x64xf32>
  %qt = tosa.transpose %q4 {perms = array<i32: 0, 2, 1, 3>} : (tensor<1x512x12x64xf32>) -> tensor<1x12x512x64xf32>
  %kt = tosa.transpose %k4 {perms = array<i32: 0, 2, 1, 3>} : (tensor<1x512x12x64xf32>) -> tensor<1x12x512x64xf32>
  %vt = tosa.transpose %v4 {perms = array<i32: 0, 2, 1, 3>} : (tensor<1x512x12x64xf32>) -> tensor<1x12x512x64xf32>
  %q3 = tosa.reshape %qt, %flat : (tensor<1x12x512x64xf32>, !tosa.shape<3>) -> tensor<12x512x64xf32>
  %k3 = tosa.reshape %kt, %flat : (tensor<1x12x512x64xf32>, !tosa.shape<3>) -> tensor<12x512x64xf32>
  %v3 = tosa.reshape %vt, %flat : (tensor<1x12x512x64xf32>, !tosa.shape<3>) -> tensor<12x512x64xf32>
  // scores = Q K^T / sqrt(64) + padding
  %kT = tosa.transpose %k3 {perms = array<i32: 0, 2, 1>} : (tensor<12x512x64xf32>) -> tensor<12x64x512xf32>
  %s = tosa.matmul %q3, %kT, %zp, %zp : (tensor<12x512x64xf32>, tensor<12x64x512xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<12x512x512xf32>
  %ss = tosa.mul %s, %scale, %shift : (tensor<12x512x512xf32>, tensor<1x1x1xf32>, tensor<1xi8>) -> tensor<12x512x512xf32>
  %sb = tosa.add %ss, %padding : (tensor<12x512x512xf32>, tensor<1x1x512xf32>) -> tensor<12x512x512xf32>
  // softmax over the keys
  %mx = tosa.reduce_max %sb {axis = 2 : i32} : (tensor<12x512x512xf32>) -> tensor<12x512x1xf32>
  %d = tosa.sub %sb, %mx : (tensor<12x512x512xf32>, tensor<12x512x1xf32>) -> tensor<12x512x512xf32>
  %e = tosa.exp %d : (tensor<12x512x512xf32>) -> tensor<12x512x512xf32>
  %sum = tosa.reduce_sum %e {axis = 2 : i32} : (tensor<12x512x512xf32>) -> tensor<12x512x1xf32>
  %r = tosa.reciprocal %sum : (tensor<12x512x1xf32>) -> tensor<12x512x1xf32>
  %p = tosa.mul %e, %r, %shift : (tensor<12x512x512xf32>, tensor<12x512x1xf32>, tensor<1xi8>) -> tensor<12x512x512xf32>
  // context = P V, back to [B, S, H*D]
  %o3 = tosa.matmul %p, %v3, %zp, %zp : (tensor<12x512x512xf32>, tensor<12x512x64xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<12x512x64xf32>
  %o4 = tosa.reshape %o3, %unflat : (tensor<12x512x64xf32>, !tosa.shape<4>) -> tensor<1x12x512x64xf32>
  %ot = tosa.transpose %o4 {perms = array<i32: 0, 2, 1, 3>} : (tensor<1x12x512x64xf32>) -> tensor<1x512x12x64xf32>
  %o = tosa.reshape %ot, %back : (tensor<1x512x12x64xf32>, !tosa.shape<3>) -> tensor<1x512x768xf32>
  return %o : tensor<1x512x768xf32>
}
