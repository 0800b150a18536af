// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s --check-prefix=MANIFEST

// NSA's block selection (the paper's 27B configuration: 4 KV heads, GQA
// groups of 16, l = 32, d = 16, l' = 64, 16 blocks). A block of 8 warps
// takes 8 consecutive tokens of one KV head; each warp's 16 rows are the
// group's heads (one m16 tile), Q's fragments loaded once (4-byte aligned
// pairs). The block copies the tiles of 64 compressed keys into a ring of
// two in shared memory (16-byte cp.async, rows padded to 136 elements; the
// next tile in flight while the current one is scored), and each warp
// takes its B fragments by ldmatrix: S = Q·K_cmpᵀ as m16n8k16 mma.sync,
// P = exp2(S·scale·log2 e - lse·log2 e) summed over the rows by shuffles
// (lanes 4, 8, 16 apart), staged in shared memory and added into the block
// scores; forced blocks +inf; 16 rounds of a warp arg-max (5 shuffle steps,
// value and index).
// CHECK-LABEL: gpu.module @attn_nsa_select_bf16_d128_h64_4_l32_d16_sel64_n16_i1_w2_s3db504f3
// CHECK: gpu.func @attn_nsa_select_bf16_d128_h64_4_l32_d16_sel64_n16_i1_w2_s3db504f3(%{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xi32>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK: memref.view {{.+}} to memref<2x64x136xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<8x2048xf32, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<8x64xf32, #gpu.address_space<workgroup>>
// CHECK: nvvm.bar.warp.sync
// CHECK-COUNT-32: vector.load %arg0[%{{.+}}] {alignment = 4 : i64} : memref<?xbf16>, vector<2xbf16>
// CHECK: nvgpu.device_async_copy %arg1[%{{.+}}], %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1}
// CHECK: scf.for
// CHECK:   nvgpu.device_async_copy %arg1
// CHECK:   nvgpu.device_async_wait %{{.+}} {numGroups = 1 : i32}
// CHECK:   gpu.barrier
// CHECK:   nvgpu.ldmatrix
// CHECK:   nvvm.mma.sync {{.+}} multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>
// CHECK:   math.exp2
// CHECK:   gpu.shuffle xor %{{.+}}, %c4_i32
// CHECK:   gpu.shuffle xor %{{.+}}, %c8_i32
// CHECK:   gpu.shuffle xor %{{.+}}, %c16_i32
// CHECK:   arith.floordivsi
// CHECK: arith.constant 0x7F800000 : f32
// CHECK: gpu.shuffle xor %{{.+}} : i32
// CHECK: memref.store %{{.+}}, %arg3[%{{.+}}] : memref<?xi32>
// CHECK-LABEL: gpu.module @attn_nsa_attend_bf16_d128_h64_4_l32_d16_sel64_n16_i1_w2_s3db504f3
// CHECK: gpu.func @attn_nsa_attend_bf16_d128_h64_4_l32_d16_sel64_n16_i1_w2_s3db504f3(%{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xi32>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xbf16>, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: memref.view {{.+}} to memref<16x128xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<2x64x128xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<2x64x128xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.load %arg3[%{{.+}}] : memref<?xi32>
// CHECK: nvgpu.device_async_copy %arg1[%{{.+}}], %{{.+}}, 8, %{{.+}} {bypassL1}
// CHECK: nvgpu.device_async_copy %arg2[%{{.+}}], %{{.+}}, 8, %{{.+}} {bypassL1}
// CHECK: scf.for
// CHECK:   memref.load %arg3[%{{.+}}] : memref<?xi32>
// CHECK:   nvvm.mma.sync
// CHECK:   math.exp2
// CHECK: memref.load %arg6[%{{.+}}] : memref<?xf32>
// CHECK: memref.load %arg4[%{{.+}}] : memref<?xbf16>
// CHECK: memref.load %arg5[%{{.+}}] : memref<?xbf16>
// CHECK: memref.store %{{.+}}, %arg7[%{{.+}}] : memref<?xbf16>
// The selected branch with the gated sum ("nsa.attend"; it comes first in
// the sorted manifests): a block of 4 warps per (token, KV head, sequence),
// the group's 16 heads as one m16 tile, the token's 16 entries read as pages
// of 64 keys of the dense K and V (cp.async in two stages), and the gates
// (f32) applied to the three branches as the output is written.
// MANIFEST: dynamic_shared_memory = 69632 : i64, entry = "attn_nsa_attend_bf16_d128_h64_4_l32_d16_sel64_n16_i1_w2_s3db504f3", grid = ["Sq", 4, "B"], kernel = "nsa.attend"
// MANIFEST-SAME: name = "indices", role = "indices", shape = ["B", "Sq", 4, 16]
// MANIFEST-SAME: name = "gates", role = "gates", shape = ["B", "Sq", 64, 3]
// MANIFEST-SAME: name = "Sk", role = "size"
// MANIFEST-SAME: op = "nsa"
// MANIFEST: grid = [{ceil_div = ["Sq", 8]}, 4, "B"]
// MANIFEST-SAME: kernel = "nsa.select", max_key_blocks = 2048 : i64
// MANIFEST-SAME: name = "lse_cmp", role = "workspace", shape = ["B", "Sq", 64]
// MANIFEST-SAME: variant = {cmp_block = 32 : i64, cmp_stride = 16 : i64, dtype = "bf16", head_dim = 128 : i64, initial_blocks = 1 : i64, kv_heads = 4 : i64, local_blocks = 2 : i64, num_selected = 16 : i64, op = "nsa", q_heads = 64 : i64, scale = 0.088388346135616302 : f64, sel_block = 64 : i64, value_head_dim = 128 : i64}
func.func @nsa(%q: tensor<1x4096x64x128xbf16>, %k: tensor<1x4096x4x128xbf16>, %v: tensor<1x4096x4x128xbf16>, %kc: tensor<1x255x4x128xbf16>, %vc: tensor<1x255x4x128xbf16>, %g: tensor<1x4096x64x3xbf16>) -> tensor<1x4096x64x128xbf16> {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 16 window = 512
      : (tensor<1x4096x64x128xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x4096x4x128xbf16>, tensor<1x255x4x128xbf16>, tensor<1x255x4x128xbf16>, tensor<1x4096x64x3xbf16>) -> tensor<1x4096x64x128xbf16>
  return %o : tensor<1x4096x64x128xbf16>
}

// -----

// The NSA paper's 192 / 128 heads: the selection reads keys only; the
// selected branch's kernel takes the wide paged tiling (Q re-read from shared
// memory, one chunk of 128 value columns), its values and output of 128.
// CHECK-LABEL: gpu.module @attn_nsa_select_bf16_d192_dv128_h64_4_l32_d16_sel64_n16_i1_w2_s3d93cd3a
// CHECK-LABEL: gpu.module @attn_nsa_attend_bf16_d192_dv128_h64_4_l32_d16_sel64_n16_i1_w2_s3d93cd3a
// CHECK: memref.view {{.+}} to memref<16x192xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<2x64x192xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<2x64x128xbf16, #gpu.address_space<workgroup>>
// MANIFEST: grid = ["Sq", 4, "B"], kernel = "nsa.attend"
// MANIFEST-SAME: name = "v", role = "value", shape = ["B", "Sk", 4, 128]
// MANIFEST-SAME: name = "out", role = "output", shape = ["B", "Sq", 64, 128]
func.func @nsa_d192_dv128(%q: tensor<1x64x64x192xbf16>, %k: tensor<1x64x4x192xbf16>, %v: tensor<1x64x4x128xbf16>, %kc: tensor<1x3x4x192xbf16>, %vc: tensor<1x3x4x128xbf16>, %g: tensor<1x64x64x3xbf16>) -> tensor<1x64x64x128xbf16> {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 16 window = 512 : (tensor<1x64x64x192xbf16>, tensor<1x64x4x192xbf16>, tensor<1x64x4x128xbf16>, tensor<1x3x4x192xbf16>, tensor<1x3x4x128xbf16>, tensor<1x64x64x3xbf16>) -> tensor<1x64x64x128xbf16>
  return %o : tensor<1x64x64x128xbf16>
}

// -----

// DeepSeek-V3.2's indexer (64 heads x 128, causal prefill): the token's
// query in shared memory (rows padded to 136 elements), per warp 16 keys a
// step, 4 head tiles x 8 k-steps x 2 key tiles of mma.sync, relu, the head
// weights and the sum over heads (shuffles); -inf for keys the mask leaves
// out, written by the four lanes of row 0.
// CHECK-LABEL: gpu.module @attn_indexer_scores_bf16_h64_d128_wf32_causal
// CHECK: gpu.func @attn_indexer_scores_bf16_h64_d128_wf32_causal(%{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: memref.view {{.+}} to memref<64x136xbf16, #gpu.address_space<workgroup>>
// CHECK: vector.load %arg0[%{{.+}}] {alignment = 16 : i64} : memref<?xbf16>, vector<8xbf16>
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: scf.if
// CHECK-COUNT-64: nvvm.mma.sync
// CHECK: arith.maximumf
// CHECK: gpu.shuffle xor %{{.+}}, %c4_i32
// CHECK: arith.constant 0xFF800000 : f32
// CHECK: memref.store %{{.+}}, %arg3[%{{.+}}] : memref<?xf32>
// MANIFEST: grid = [{ceil_div = ["Sk", 256]}, "Sq", "B"], kernel = "indexer.scores"
// MANIFEST-SAME: variant = {dtype = "bf16", head_dim = 128 : i64, heads = 64 : i64, mask = "causal", op = "lightning_indexer", weights_dtype = "f32"}
func.func @indexer(%q: tensor<1x4096x64x128xbf16>, %k: tensor<1x4096x128xbf16>, %w: tensor<1x4096x64xf32>) -> tensor<1x4096x2048xi32> {
  %i = attn.lightning_indexer %q, %k, %w top_k = 2048 mask = <causal>
      : (tensor<1x4096x64x128xbf16>, tensor<1x4096x128xbf16>, tensor<1x4096x64xf32>) -> tensor<1x4096x2048xi32>
  return %i : tensor<1x4096x2048xi32>
}

// -----

// DSA's token-sparse MLA (one latent KV head, values the keys' first 512
// columns, LSE): attn.sparse_attention's lowering is the paged kernels the
// host runs with the compacted index lists as page tables: the latent split
// kernel for pages of one key (row tiles of 16 and 64), no mask (causality
// goes into each row's length), and the combine kernel with the LSE.
// CHECK-LABEL: gpu.module @attn_paged_bf16_d576_dv512_nhd_p1_none_s3e0a71de_vk_r16
// CHECK-LABEL: gpu.module @attn_paged_bf16_d576_dv512_nhd_p1_none_s3e0a71de_vk_r64
// CHECK-LABEL: gpu.module @attn_paged_combine_bf16_dv512_lse
// MANIFEST: op = "paged_attention", page_size = 1 : i64
// MANIFEST-SAME: values = "key_prefix"
func.func @dsa(%q: tensor<1x64x16x576xbf16>, %kv: tensor<1x4096x1x576xbf16>, %i: tensor<1x64x1x2048xi32>) -> (tensor<1x64x16x512xbf16>, tensor<1x16x64xf32>) {
  %v = tensor.extract_slice %kv[0, 0, 0, 0] [1, 4096, 1, 512] [1, 1, 1, 1] : tensor<1x4096x1x576xbf16> to tensor<1x4096x1x512xbf16>
  %o, %l = attn.sparse_attention %q, %kv, %v, %i mask = <causal> scale = 0.1352
      : (tensor<1x64x16x576xbf16>, tensor<1x4096x1x576xbf16>, tensor<1x4096x1x512xbf16>, tensor<1x64x1x2048xi32>) -> (tensor<1x64x16x512xbf16>, tensor<1x16x64xf32>)
  return %o, %l : tensor<1x64x16x512xbf16>, tensor<1x16x64xf32>
}

// -----

// Block-sparse attention shaped like NSA's selected branch (4 KV heads,
// blocks of 64, separate values) as an op of its own: the narrow paged split
// kernel for pages of 64 and its combine (attn.nsa runs its selected branch
// on nsa.attend instead, above).
// CHECK-LABEL: gpu.module @attn_paged_bf16_d128_dv128_nhd_p64_none_s3db504f3
// CHECK-LABEL: gpu.module @attn_paged_combine_bf16_dv128
// MANIFEST: page_size = 64 : i64
// MANIFEST-SAME: values = "separate"
func.func @nsa_selected(%q: tensor<1x64x64x128xbf16>, %k: tensor<1x512x4x128xbf16>, %v: tensor<1x512x4x128xbf16>, %i: tensor<1x64x4x16xi32>) -> tensor<1x64x64x128xbf16> {
  %o = attn.sparse_attention %q, %k, %v, %i block_size = 64 mask = <causal>
      : (tensor<1x64x64x128xbf16>, tensor<1x512x4x128xbf16>, tensor<1x512x4x128xbf16>, tensor<1x64x4x16xi32>) -> tensor<1x64x64x128xbf16>
  return %o : tensor<1x64x64x128xbf16>
}
