# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# Build options shared by every attn target.

# Use ccache when it is installed; it makes rebuilds after a branch switch cheap.
find_program(ATTN_CCACHE ccache)
if(ATTN_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_C_COMPILER_LAUNCHER "${ATTN_CCACHE}")
  set(CMAKE_CXX_COMPILER_LAUNCHER "${ATTN_CCACHE}")
endif()

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

# A self-contained attn-compile, for machines without LLVM/MLIR (the GPU
# machine the Python package JIT-compiles kernel variants on): link it against
# the static LLVM/MLIR archives instead of libMLIR.so/libLLVM.so. Off by
# default; .ci/standalone-compiler builds it into build-standalone/. Only
# attn-compile is built that way (see cmake/AttnStandalone.cmake).
option(ATTN_STANDALONE_COMPILER
  "Build only attn-compile, linked statically against LLVM/MLIR" OFF)
