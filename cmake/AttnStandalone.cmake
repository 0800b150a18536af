# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# ATTN_STANDALONE_COMPILER: attn-compile linked against the static LLVM/MLIR
# archives Debian ships (/usr/lib/llvm-22/lib/lib{MLIR,LLVM}*.a), so that it
# runs where no LLVM/MLIR is installed. Included by the top-level
# CMakeLists.txt after find_package(MLIR); sets ATTN_MLIR_LIBS/ATTN_LLVM_LIBS,
# which attn's libraries link in place of the MLIR and LLVM dylib targets.
#
# Debian builds LLVM with LLVM_LINK_LLVM_DYLIB=ON, so the exported static MLIR
# targets name the libLLVM.so target `LLVM` among their link interfaces
# (MLIRNVVMTarget: "...;MLIRNVVMToLLVMIRTranslation;LLVM"). Linking them as they
# are would still load libLLVM.so; below, `LLVM` is replaced by the static LLVM
# component archives. The linker takes from an archive only the members that
# resolve a symbol, so naming every component costs link time, not size.

if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
  message(FATAL_ERROR "ATTN_STANDALONE_COMPILER is for Linux (ELF, glibc)")
endif()

# add_llvm_executable / llvm_add_library: static LLVM components, not LLVM.
set(LLVM_LINK_LLVM_DYLIB OFF)
set(MLIR_LINK_MLIR_DYLIB OFF)

# LLVMSupport's link interface names libz3.so (by path), ZLIB::ZLIB and
# zstd::libzstd_shared. Z3 is for the static analyzer; --as-needed (below)
# drops it. zlib and zstd compress/decompress sections, and live code keeps
# calls to them: link their static archives where they are installed (zlib1g-dev,
# libzstd-dev), else the shared libraries (libz.so.1, libzstd.so.1).
# LLVMConfig's find_package(zstd) defines zstd::libzstd_shared only where
# libzstd-dev is installed; without it, name the runtime library.
find_library(ATTN_ZLIB_STATIC NAMES libz.a)
find_library(ATTN_ZSTD_STATIC NAMES libzstd.a)
if(NOT TARGET zstd::libzstd_shared)
  find_library(ATTN_ZSTD_LIBRARY NAMES libzstd.so.1 zstd)
  add_library(zstd::libzstd_shared INTERFACE IMPORTED)
  if(ATTN_ZSTD_LIBRARY)
    set_target_properties(zstd::libzstd_shared PROPERTIES
      INTERFACE_LINK_LIBRARIES "${ATTN_ZSTD_LIBRARY}")
  endif()
endif()
get_target_property(_deps LLVMSupport INTERFACE_LINK_LIBRARIES)
if(ATTN_ZLIB_STATIC)
  list(TRANSFORM _deps REPLACE "^ZLIB::ZLIB$" "${ATTN_ZLIB_STATIC}")
endif()
if(ATTN_ZSTD_STATIC)
  list(TRANSFORM _deps REPLACE "^zstd::libzstd_shared$" "${ATTN_ZSTD_STATIC}")
endif()
set_target_properties(LLVMSupport PROPERTIES INTERFACE_LINK_LIBRARIES "${_deps}")

# Whether the static library target `lib` can be linked here: its archive
# exists and so does everything its link interface names, recursively. Debian
# exports targets for archives it does not ship (LLVMExtensions names Polly,
# whose libPolly.a is absent) and for libraries whose -dev package may be
# missing (LLVMExegesis: -lpfm; LLVMDebuginfod: CURL::libcurl; LLVMLineEditor:
# LibEdit::LibEdit), and for tools' libraries that link libLLVM.so itself
# (LLVMOptDriver, LLVMDiff, LLVMCFIVerify). MLIR needs none of those.
function(_attn_linkable lib out)
  if(lib STREQUAL "LLVM")
    set(${out} OFF PARENT_SCOPE)
    return()
  endif()
  get_property(_known GLOBAL PROPERTY _ATTN_LINKABLE_${lib} SET)
  if(_known)
    get_property(_ok GLOBAL PROPERTY _ATTN_LINKABLE_${lib})
    set(${out} ${_ok} PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL PROPERTY _ATTN_LINKABLE_${lib} ON) # cycles: assume yes
  set(_ok ON)
  if(TARGET ${lib})
    get_target_property(_imported ${lib} IMPORTED)
    get_target_property(_type ${lib} TYPE)
    if(_imported AND _type STREQUAL "STATIC_LIBRARY")
      set(_location)
      foreach(_config RELEASE RELWITHDEBINFO MINSIZEREL DEBUG NOCONFIG)
        if(NOT _location)
          get_target_property(_location ${lib} IMPORTED_LOCATION_${_config})
        endif()
      endforeach()
      if(NOT _location OR NOT EXISTS "${_location}")
        set(_ok OFF)
      endif()
    endif()
    get_target_property(_deps ${lib} INTERFACE_LINK_LIBRARIES)
    if(_deps)
      foreach(_dep ${_deps})
        if(_ok AND NOT _dep MATCHES "^\\$<")
          _attn_linkable(${_dep} _dep_ok)
          if(NOT _dep_ok)
            set(_ok OFF)
          endif()
        endif()
      endforeach()
    endif()
  elseif(lib MATCHES "::")
    set(_ok OFF) # a package target nobody defined
  elseif(IS_ABSOLUTE "${lib}")
    if(NOT EXISTS "${lib}")
      set(_ok OFF)
    endif()
  elseif(NOT lib MATCHES "^-")
    find_library(_attn_lib_${lib} ${lib})
    if(NOT _attn_lib_${lib} AND NOT lib MATCHES "^(c|m|dl|rt|pthread)$")
      set(_ok OFF)
    endif()
  endif()
  set_property(GLOBAL PROPERTY _ATTN_LINKABLE_${lib} ${_ok})
  set(${out} ${_ok} PARENT_SCOPE)
endfunction()

# Every static LLVM component library that can be linked here (the
# LLVM_AVAILABLE_LIBS that are imported STATIC targets: not tools, not the
# LTO/gold plugins).
set(_attn_llvm_static)
set(_attn_llvm_skipped)
foreach(_lib ${LLVM_AVAILABLE_LIBS})
  if(TARGET ${_lib} AND _lib MATCHES "^LLVM")
    get_target_property(_type ${_lib} TYPE)
    if(_type STREQUAL "STATIC_LIBRARY")
      _attn_linkable(${_lib} _ok)
      if(_ok)
        list(APPEND _attn_llvm_static ${_lib})
      else()
        list(APPEND _attn_llvm_skipped ${_lib})
      endif()
    endif()
  endif()
endforeach()
message(STATUS "attn standalone compiler: LLVM components not linkable here "
               "(unused by MLIR): ${_attn_llvm_skipped}")
add_library(attn_llvm_static INTERFACE)
target_link_libraries(attn_llvm_static INTERFACE ${_attn_llvm_static})

# The static MLIR targets: `LLVM` (libLLVM.so) -> attn_llvm_static (plain, or
# $<LINK_ONLY:LLVM> as MLIRWasmSSADialect has it).
foreach(_lib ${MLIR_EXPORTED_TARGETS})
  if(TARGET ${_lib})
    get_target_property(_type ${_lib} TYPE)
    if(_type STREQUAL "STATIC_LIBRARY")
      get_target_property(_deps ${_lib} INTERFACE_LINK_LIBRARIES)
      if(_deps MATCHES "(^|;|:)LLVM(;|>|$)")
        list(TRANSFORM _deps REPLACE "^LLVM$" attn_llvm_static)
        list(TRANSFORM _deps REPLACE "^\\$<LINK_ONLY:LLVM>$"
                                     "$<LINK_ONLY:attn_llvm_static>")
        set_target_properties(${_lib} PROPERTIES INTERFACE_LINK_LIBRARIES "${_deps}")
      endif()
    endif()
  endif()
endforeach()

# What attn's code calls: every dialect, extension, pass and LLVM IR
# translation (attn-compile's registerAll*), the NVVM target and serializer,
# and the rest through these targets' link interfaces.
set(ATTN_MLIR_LIBS
  MLIRRegisterAllDialects
  MLIRRegisterAllExtensions
  MLIRRegisterAllPasses
  MLIRToLLVMIRTranslationRegistration
  MLIRTargetLLVMIRExport
  MLIRNVVMTarget
  MLIRTargetLLVM
  MLIRExecutionEngineUtils
  MLIRParser
  MLIRPass
  MLIRTransforms
  MLIRIR
  MLIRSupport)
set(ATTN_LLVM_LIBS attn_llvm_static)

# Size: a section per function/object so that --gc-sections drops what no
# live code reaches (LLVM's archives are built that way too).
add_compile_options(-ffunction-sections -fdata-sections)
# Portability: libstdc++ and libgcc linked in (the GPU machine's libstdc++ may
# be older than this one's); glibc stays dynamic. --as-needed drops the shared
# libraries the LLVM targets name (libz3, libffi, libxml2) when nothing that is
# kept calls into them: the result needs libc.so.6 and libm.so.6 only.
set(ATTN_STANDALONE_LINK_OPTIONS
  -static-libstdc++ -static-libgcc
  LINKER:--gc-sections LINKER:--as-needed)
