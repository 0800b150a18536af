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
