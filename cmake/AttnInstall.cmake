# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# Installs attn as a CMake package:
#   cmake --install build --prefix <prefix>
# then, in another project:
#   find_package(Attn 0.1 REQUIRED CONFIG)   # -DAttn_DIR=<prefix>/lib/cmake/attn
#   target_link_libraries(mytool PRIVATE Attn::AttnPipelines)
# test/install.test installs to a temporary prefix and checks all of it: the
# installed tools and plugin run, and examples/embed builds against the prefix.
include(CMakePackageConfigHelpers)

set(ATTN_LIBRARIES AttnIR AttnTransforms AttnConversion AttnPipelines AttnProgram)
foreach(lib ${ATTN_LIBRARIES})
  target_include_directories(${lib} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:include>)
  # attn's headers include MLIR's and LLVM's, which need C++17.
  target_compile_features(${lib} PUBLIC cxx_std_17)
endforeach()
# The include directories, definitions and flags of MLIR and LLVM themselves
# are added to the imported targets by AttnConfig.cmake, from the MLIR the
# consumer's find_package finds, rather than frozen here as this machine's
# absolute paths (see cmake/AttnConfig.cmake.in).

# The installed tools and plugin link libMLIR.so.22.1 and libLLVM.so.22.1.
# llvm_setup_rpath gives them an INSTALL_RPATH of $ORIGIN/../lib only, which
# finds those only when attn is installed into LLVM's own prefix; Debian's are
# in /usr/lib/llvm-22/lib, off the loader's search path, so an installed
# attn-opt would not start. Add LLVM's library directory (unless it is one the
# loader searches anyway). A CMAKE_INSTALL_RPATH given by whoever configures
# (a distribution package, say) makes llvm_setup_rpath step aside and wins here
# too.
set(ATTN_INSTALLED_BINARIES attn-opt attn-compile AttnPlugin)
if(NOT CMAKE_INSTALL_RPATH AND
   NOT LLVM_LIBRARY_DIR IN_LIST CMAKE_PLATFORM_IMPLICIT_LINK_DIRECTORIES)
  set_property(TARGET ${ATTN_INSTALLED_BINARIES} APPEND
    PROPERTY INSTALL_RPATH "${LLVM_LIBRARY_DIR}")
endif()

install(TARGETS ${ATTN_LIBRARIES} EXPORT AttnTargets
  ARCHIVE DESTINATION lib
  LIBRARY DESTINATION lib)
install(TARGETS attn-opt attn-compile RUNTIME DESTINATION bin)
# AttnConfig.cmake's ATTN_PLUGIN names this file: keep the two in step.
install(TARGETS AttnPlugin LIBRARY DESTINATION lib)

# Headers: the checked-in ones, then the generated ones (TableGen's .inc and
# attn/Version.h). The build tree's include/attn also holds CMake's
# CMakeFiles/ bookkeeping, which FILES_MATCHING alone would install as empty
# directories.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/attn DESTINATION include
  FILES_MATCHING PATTERN "*.h" PATTERN "*.td")
install(DIRECTORY ${PROJECT_BINARY_DIR}/include/attn DESTINATION include
  FILES_MATCHING PATTERN "*.inc" PATTERN "*.h"
  PATTERN "CMakeFiles" EXCLUDE)

set(ATTN_CMAKE_INSTALL_DIR lib/cmake/attn)
install(EXPORT AttnTargets NAMESPACE Attn:: DESTINATION ${ATTN_CMAKE_INSTALL_DIR})

# AttnConfig.cmake.in pins the MLIR it finds to the one attn was built with:
# same major.minor (libMLIR.so's soname), any patch.
set(ATTN_MLIR_VERSION "${LLVM_VERSION_MAJOR}.${LLVM_VERSION_MINOR}")
# Paths the config hands out, relative to the prefix (PATH_VARS makes them
# absolute wherever the package is installed or moved to).
set(ATTN_INCLUDE_INSTALL_DIR include)
set(ATTN_TOOLS_INSTALL_DIR bin)
set(ATTN_PLUGIN_INSTALL_PATH lib/AttnPlugin${CMAKE_SHARED_MODULE_SUFFIX})
# The config and version files are written under CMakeFiles/ (as LLVM does
# its own): they describe the install, and at the top of the build tree,
# whose bin/ is on PATH in the test suite, find_package would consider them.
set(ATTN_CMAKE_STAGING_DIR ${PROJECT_BINARY_DIR}/${CMAKE_FILES_DIRECTORY})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/AttnConfig.cmake.in
  ${ATTN_CMAKE_STAGING_DIR}/AttnConfig.cmake
  INSTALL_DESTINATION ${ATTN_CMAKE_INSTALL_DIR}
  PATH_VARS ATTN_INCLUDE_INSTALL_DIR ATTN_TOOLS_INSTALL_DIR
            ATTN_PLUGIN_INSTALL_PATH)
# SameMinorVersion, not SameMajorVersion: while attn is 0.x, a minor release
# may break the API (semantic versioning's rule for 0.y.z), so a request for
# 0.1 accepts 0.1.z with z >= the requested patch and refuses 0.2; 1.0 will
# be refused by 0.x either way. Revisit at 1.0 (SameMajorVersion).
write_basic_package_version_file(
  ${ATTN_CMAKE_STAGING_DIR}/AttnConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${ATTN_CMAKE_STAGING_DIR}/AttnConfig.cmake
  ${ATTN_CMAKE_STAGING_DIR}/AttnConfigVersion.cmake
  DESTINATION ${ATTN_CMAKE_INSTALL_DIR})
