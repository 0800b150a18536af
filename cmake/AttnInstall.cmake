# Installs attn as a CMake package:
#   cmake --install build --prefix <prefix>
# then, in another project:
#   find_package(Attn REQUIRED CONFIG)   # with -DAttn_DIR=<prefix>/lib/cmake/attn
#   target_link_libraries(mytool PRIVATE Attn::AttnPipelines)
include(CMakePackageConfigHelpers)

set(ATTN_LIBRARIES AttnIR AttnTransforms AttnConversion AttnPipelines)
foreach(lib ${ATTN_LIBRARIES})
  target_include_directories(${lib} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:include>)
endforeach()

install(TARGETS ${ATTN_LIBRARIES} EXPORT AttnTargets
  ARCHIVE DESTINATION lib
  LIBRARY DESTINATION lib)
install(TARGETS attn-opt attn-compile RUNTIME DESTINATION bin)
install(TARGETS AttnPlugin LIBRARY DESTINATION lib)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/attn DESTINATION include
  FILES_MATCHING PATTERN "*.h" PATTERN "*.td")
install(DIRECTORY ${PROJECT_BINARY_DIR}/include/attn DESTINATION include
  FILES_MATCHING PATTERN "*.inc")
install(EXPORT AttnTargets NAMESPACE Attn:: DESTINATION lib/cmake/attn)

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/AttnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/AttnConfig.cmake
  INSTALL_DESTINATION lib/cmake/attn)
install(FILES ${PROJECT_BINARY_DIR}/AttnConfig.cmake DESTINATION lib/cmake/attn)
