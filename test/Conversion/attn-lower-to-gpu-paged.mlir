// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s
// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s --check-prefix=MANIFEST
// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s --check-prefix=MLA
// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s --check-prefix=TABLE64

// Paged decode (ineligible variants: attn-lower-to-gpu-paged-invalid.mlir): a split kernel per (dtype, head dims, page size, cache
// layout, mask, scale, softcap) and a combine kernel per (dtype, Dv, sinks,
// LSE), each in its own gpu.module. The split kernel gathers key rows
// through the block table (cp.async, zero-filled past the split's keys)
// into three stages, runs Q·Kᵀ and P·V as mma.sync and writes f32 partials.
// CHECK-LABEL: gpu.module @attn_paged_bf16_d128_dv128_nhd_p61_causal_s3db504f3
// CHECK: gpu.func @attn_paged_bf16_d128_dv128_nhd_p61_causal_s3db504f3(%{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xi32>, %{{.+}}: memref<?xi32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: memref.view {{.+}} to memref<3x64x128xbf16, #gpu.address_space<workgroup>>
// The length, clamped to [0, MaxPages * 61] (what the table row can name).
// CHECK: %[[LEN:.+]] = memref.load %{{.+}} : memref<?xi32>
// CHECK: %[[LENI:.+]] = arith.index_cast %[[LEN]]
// CHECK: %[[CAP:.+]] = arith.muli %{{.+}}, %c61
// CHECK: %[[MIN:.+]] = arith.minsi %[[LENI]], %[[CAP]]
// CHECK: arith.maxsi %{{.+}}, %[[MIN]]
// CHECK: arith.divui %{{.+}}, %c61
// CHECK: nvgpu.device_async_copy
// CHECK: nvgpu.device_async_create_group
// CHECK: scf.for
// CHECK:   nvgpu.device_async_wait %{{.+}} {numGroups = 2 : i32}
// CHECK:   nvgpu.ldmatrix
// CHECK:   nvvm.mma.sync
// CHECK:   nvgpu.ldmatrix {{.+}} {numTiles = 4 : i32, transpose = true}
// CHECK: gpu.shuffle xor
// CHECK-LABEL: gpu.module @attn_paged_combine_bf16_dv128_sinksf32_lse
// CHECK: gpu.func @attn_paged_combine_bf16_dv128_sinksf32_lse(%{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xf32>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK: math.exp
// MANIFEST: attn.kernels = {
// MANIFEST-SAME: attn_paged_bf16_d128_dv128_nhd_p61_causal_s3db504f3 = {block = [128, 1, 1], dynamic_shared_memory = 102400 : i64,
// The grid: row tiles of the packed query rows x splits, KV heads x value
// chunks, sequences (Splits is the host's choice).
// MANIFEST-SAME: grid = [{mul = [{ceil_div = [{mul = [{div = ["Hq", "Hkv"]}, "Sq"]}, 16]}, "Splits"]}, {mul = ["Hkv", 1]}, "B"]
// MANIFEST-SAME: variant = {cache_layout = "nhd", dtype = "bf16", head_dim = 128 : i64, lens_dtype = "i32", mask = "causal", op = "paged_attention", page_size = 61 : i64,
// MANIFEST-SAME: attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de = {block = [128, 1, 1], dynamic_shared_memory = 198656 : i64,
// MANIFEST-SAME: grid = [{mul = [{ceil_div = [{mul = [{div = ["Hq", "Hkv"]}, "Sq"]}, 16]}, "Splits"]}, {mul = ["Hkv", 4]}, "B"]
// MANIFEST-SAME: value_chunks = 4 : i64,
// MANIFEST-SAME: attn_paged_combine_bf16_dv128_sinksf32_lse = {block = [256, 1, 1], dynamic_shared_memory = 0 : i64, entry = "attn_paged_combine_bf16_dv128_sinksf32_lse", grid = [{ceil_div = [{mul = ["B", "Sq", "Hq", 1]}, 8]}, 1, 1],
func.func @decode(%q: tensor<4x1x32x128xbf16>, %kc: tensor<100x61x8x128xbf16>, %vc: tensor<100x61x8x128xbf16>, %t: tensor<4x40xi32>, %l: tensor<4xi32>, %s: tensor<32xf32>) -> (tensor<4x1x32x128xbf16>, tensor<4x32x1xf32>) {
  %o, %lse = attn.paged_attention %q, %kc, %vc, %t, %l sinks(%s) mask = <causal> : (tensor<4x1x32x128xbf16>, tensor<100x61x8x128xbf16>, tensor<100x61x8x128xbf16>, tensor<4x40xi32>, tensor<4xi32>, tensor<32xf32>) -> (tensor<4x1x32x128xbf16>, tensor<4x32x1xf32>)
  return %o, %lse : tensor<4x1x32x128xbf16>, tensor<4x32x1xf32>
}

// DeepSeek MLA's absorbed decode: one latent KV head of 576 (512 + 64 rope),
// values its first 512 columns, 128 query heads, pages of 64. The value
// columns are split over 4 blocks of 128 (grid y = Hkv * 4); Q is re-read from
// shared memory at every step; two stages.
// MLA-LABEL: gpu.module @attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de
// MLA: memref.view {{.+}} to memref<16x576xbf16, #gpu.address_space<workgroup>>
// MLA: memref.view {{.+}} to memref<2x64x576xbf16, #gpu.address_space<workgroup>>
// MLA: memref.view {{.+}} to memref<2x64x128xbf16, #gpu.address_space<workgroup>>
// MLA: gpu.block_id  y
// MLA: arith.remui %{{.+}}, %c4
// MLA: gpu.module @attn_paged_combine_bf16_dv512
func.func @mla(%q: tensor<2x1x128x576xbf16>, %kc: tensor<10x64x1x576xbf16>, %vc: tensor<10x64x1x512xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x128x512xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l scale = 0.1352 : (tensor<2x1x128x576xbf16>, tensor<10x64x1x576xbf16>, tensor<10x64x1x512xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x128x512xbf16>
  return %o : tensor<2x1x128x512xbf16>
}

// The same variant with i64 tables and lengths is another kernel (it reads
// them as i64), named with the index type.
// TABLE64-LABEL: gpu.module @attn_paged_bf16_d128_dv128_nhd_p61_causal_s3db504f3 {
// TABLE64: gpu.func @attn_paged_bf16_d128_dv128_nhd_p61_causal_s3db504f3({{.+}}memref<?xi32>, %{{.+}}: memref<?xi32>,
// TABLE64-LABEL: gpu.module @attn_paged_bf16_d128_dv128_nhd_p61_causal_s3db504f3_i64 {
// TABLE64: gpu.func @attn_paged_bf16_d128_dv128_nhd_p61_causal_s3db504f3_i64({{.+}}memref<?xi64>, %{{.+}}: memref<?xi64>,
func.func @decode_i64(%q: tensor<4x1x32x128xbf16>, %kc: tensor<100x61x8x128xbf16>, %vc: tensor<100x61x8x128xbf16>, %t: tensor<4x40xi64>, %l: tensor<4xi64>) -> tensor<4x1x32x128xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l mask = <causal> : (tensor<4x1x32x128xbf16>, tensor<100x61x8x128xbf16>, tensor<100x61x8x128xbf16>, tensor<4x40xi64>, tensor<4xi64>) -> tensor<4x1x32x128xbf16>
  return %o : tensor<4x1x32x128xbf16>
}
