// RUN: attn-opt %s --attn-lower-all-slice | FileCheck %s
// shard.all_slice (what shard-partition makes of a replicated value that a
// split op consumes) becomes the process's block: no communication, and an
// op convert-shard-to-mpi then converts (the process index).

shard.grid @grid(shape = 4)

// CHECK-LABEL: func.func @slice
// CHECK-SAME: (%[[X:.+]]: tensor<2x8xf32>)
// CHECK-NOT: shard.all_slice
// CHECK: %[[R:.+]] = shard.process_multi_index on @grid axes = [0] : index
// CHECK: %[[START:.+]] = arith.muli %[[R]], %{{.+}} : index
// CHECK: %[[S:.+]] = tensor.extract_slice %[[X]][0, %[[START]]]
// CHECK: %[[C:.+]] = tensor.cast %[[S]] : tensor<?x?xf32> to tensor<2x2xf32>
// CHECK: return %[[C]]
func.func @slice(%x: tensor<2x8xf32>) -> tensor<2x2xf32> {
  %s = shard.all_slice %x on @grid grid_axes = [0] slice_axis = 1 : tensor<2x8xf32> -> tensor<2x2xf32>
  return %s : tensor<2x2xf32>
}

// Must not fire: other shard ops stay.
// CHECK-LABEL: func.func @all_reduce
// CHECK: shard.all_reduce
func.func @all_reduce(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %r = shard.all_reduce %x on @grid grid_axes = [0] : tensor<2x8xf32> -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}
