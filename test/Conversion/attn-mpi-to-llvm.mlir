// RUN: attn-opt %s --split-input-file --attn-mpi-to-llvm | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-mpi-to-llvm=implementation=openmpi \
// RUN:   | FileCheck %s --check-prefix=OMPI
// RUN: not attn-opt %s --split-input-file --attn-mpi-to-llvm=implementation=lam 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BAD
// mpi ops become calls of the MPI C API of the chosen implementation; the
// DLTI entry that chooses it and the shard grids are consumed.

shard.grid @grid(shape = 2)

// MPICH's ABI: integer handles (MPI_COMM_WORLD 0x44000000, MPI_FLOAT
// 0x4c00040a, MPI_SUM 0x58000003), MPI_IN_PLACE for an in-place reduction.
// CHECK-NOT: dlti.map
// CHECK-NOT: shard.grid
// CHECK-DAG: llvm.func @MPI_Init(!llvm.ptr, !llvm.ptr) -> i32
// CHECK-DAG: llvm.func @MPI_Allreduce(!llvm.ptr, !llvm.ptr, i32, i32, i32, i32) -> i32
// CHECK-LABEL: func.func @allreduce
// CHECK: llvm.call @MPI_Init
// CHECK: llvm.mlir.constant(1140850688 : i64)
// CHECK: llvm.call @MPI_Comm_rank
// CHECK: llvm.mlir.constant(1275069450 : i32)
// CHECK: llvm.mlir.constant(1476395011 : i32)
// CHECK: llvm.call @MPI_Allreduce
// CHECK: llvm.call @MPI_Finalize
// CHECK-NOT: mpi.
// OMPI-DAG: llvm.mlir.global external @ompi_mpi_comm_world()
// OMPI-DAG: llvm.mlir.global external @ompi_mpi_float()
// OMPI-DAG: llvm.mlir.global external @ompi_mpi_sum()
// OMPI-DAG: llvm.func @MPI_Allreduce(!llvm.ptr, !llvm.ptr, i32, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
// OMPI-LABEL: func.func @allreduce
// OMPI: llvm.call @MPI_Allreduce
// BAD: error: unknown MPI implementation 'lam': expected MPICH or OpenMPI
func.func @allreduce(%buf: memref<8xf32>) -> i32 {
  mpi.init
  %comm = mpi.comm_world : !mpi.comm
  %rank = mpi.comm_rank(%comm) : i32
  mpi.allreduce(%buf, %buf, MPI_SUM, %comm) : memref<8xf32>, memref<8xf32>
  mpi.finalize
  return %rank : i32
}

// -----

// The module's own entry wins over the option; its other entries stay.
// CHECK: module attributes {dlti.map = #dlti.map<"other" = 1 : i32>}
// CHECK: llvm.mlir.global external @ompi_mpi_comm_world()
// CHECK-LABEL: func.func @module_says_openmpi
// OMPI: module attributes {dlti.map = #dlti.map<"other" = 1 : i32>}
module attributes {dlti.map = #dlti.map<"MPI:Implementation" = "OpenMPI", "other" = 1 : i32>} {
  func.func @module_says_openmpi() -> i32 {
    %comm = mpi.comm_world : !mpi.comm
    %rank = mpi.comm_rank(%comm) : i32
    return %rank : i32
  }
}
