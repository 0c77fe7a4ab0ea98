# The optional CUDA backend: the extension module fusedrnn._cuda (csrc/cuda/), built beside the
# CPU module _C, which it leaves untouched.
#
#   FUSEDRNN_CUDA=AUTO (default)  build it when a CUDA compiler and cuBLAS are both found, else
#                                 skip it with a status line saying why
#   FUSEDRNN_CUDA=ON              build it or fail, saying what is missing
#   FUSEDRNN_CUDA=OFF             never build it
#
# cuBLAS comes from the CUDA toolkit (find_package(CUDAToolkit) -> CUDA::cublas) or, failing
# that, from the pip wheel `nvidia-cublas` (CUDA 13: site-packages/nvidia/cu13/{include,lib};
# CUDA 12: nvidia-cublas-cu12, site-packages/nvidia/cublas/{include,lib}). Point at one with
# -DFUSEDRNN_CUBLAS_ROOT=<dir holding include/cublas_v2.h and lib/libcublas.so*> or the
# environment variable of the same name (useful under `pip install`, whose isolated build
# environment does not see the wheels installed beside it); otherwise the Python interpreter
# of the build is asked where such a wheel is.
#
# FUSEDRNN_CUDA_ARCHITECTURES (default "90-real;90-virtual": H100 SASS plus PTX that newer GPUs
# JIT-compile) sets the architectures.

set(FUSEDRNN_CUDA "AUTO" CACHE STRING "Build the CUDA backend fusedrnn._cuda: AUTO, ON or OFF")
set_property(CACHE FUSEDRNN_CUDA PROPERTY STRINGS AUTO ON OFF)
set(FUSEDRNN_CUDA_ARCHITECTURES "90-real;90-virtual" CACHE STRING "CUDA architectures of fusedrnn._cuda")
set(FUSEDRNN_CUBLAS_ROOT "$ENV{FUSEDRNN_CUBLAS_ROOT}" CACHE PATH
    "Folder with include/cublas_v2.h and lib/libcublas.so* (e.g. a pip nvidia-cublas wheel's nvidia/cu13)")

string(TOUPPER "${FUSEDRNN_CUDA}" _fusedrnn_cuda_mode)
if(NOT _fusedrnn_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "FUSEDRNN_CUDA must be AUTO, ON or OFF, got '${FUSEDRNN_CUDA}'")
endif()

# Ends the CUDA part: fatal with ON, a status line with AUTO.
macro(_fusedrnn_cuda_skip reason)
  if(_fusedrnn_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "fusedrnn: FUSEDRNN_CUDA=ON but ${reason}")
  endif()
  message(STATUS "fusedrnn: CUDA backend skipped: ${reason} (FUSEDRNN_CUDA=AUTO; the CPU backend is built)")
  return()
endmacro()

# Looks for cuBLAS headers and library under `root`; sets _fusedrnn_cublas_inc/_lib.
function(_fusedrnn_find_cublas_in root)
  file(GLOB _libs "${root}/lib/libcublas.so" "${root}/lib/libcublas.so.[0-9]*" "${root}/lib64/libcublas.so"
       "${root}/lib64/libcublas.so.[0-9]*")
  list(SORT _libs)
  if(EXISTS "${root}/include/cublas_v2.h" AND _libs)
    list(GET _libs 0 _lib)
    set(_fusedrnn_cublas_inc "${root}/include" PARENT_SCOPE)
    set(_fusedrnn_cublas_lib "${_lib}" PARENT_SCOPE)
  endif()
endfunction()

if(_fusedrnn_cuda_mode STREQUAL "OFF")
  message(STATUS "fusedrnn: CUDA backend off (FUSEDRNN_CUDA=OFF)")
  return()
endif()

# 1. The compiler.
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  _fusedrnn_cuda_skip("no CUDA compiler (nvcc) was found; set CMAKE_CUDA_COMPILER or put nvcc on PATH")
endif()
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES ${FUSEDRNN_CUDA_ARCHITECTURES})
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit)
if(NOT CUDAToolkit_FOUND)
  _fusedrnn_cuda_skip("the CUDA toolkit (runtime headers and libcudart) was not found next to ${CMAKE_CUDA_COMPILER}")
endif()

# 2. cuBLAS: the toolkit's, an explicit root, or a pip wheel seen by the build's Python.
set(_fusedrnn_cublas_target "")
set(_fusedrnn_cublas_from "")
if(TARGET CUDA::cublas)
  foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    if(EXISTS "${_dir}/cublas_v2.h")
      set(_fusedrnn_cublas_target CUDA::cublas)
      set(_fusedrnn_cublas_from "the CUDA toolkit (${CUDAToolkit_LIBRARY_DIR})")
    endif()
  endforeach()
endif()
if(NOT _fusedrnn_cublas_target)
  set(_fusedrnn_cublas_roots "")
  if(FUSEDRNN_CUBLAS_ROOT)
    list(APPEND _fusedrnn_cublas_roots "${FUSEDRNN_CUBLAS_ROOT}")
  endif()
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
            "import os, sys\nfor p in sys.path:\n    for sub in ('cu13', 'cublas', 'cu12'):\n        d = os.path.join(p or '.', 'nvidia', sub)\n        if os.path.isfile(os.path.join(d, 'include', 'cublas_v2.h')):\n            print(os.path.abspath(d))"
    OUTPUT_VARIABLE _fusedrnn_wheel_roots
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _fusedrnn_probe_rc)
  if(_fusedrnn_probe_rc EQUAL 0 AND _fusedrnn_wheel_roots)
    string(REPLACE "\n" ";" _fusedrnn_wheel_roots "${_fusedrnn_wheel_roots}")
    list(APPEND _fusedrnn_cublas_roots ${_fusedrnn_wheel_roots})
  endif()
  foreach(_root IN LISTS _fusedrnn_cublas_roots)
    unset(_fusedrnn_cublas_inc)
    unset(_fusedrnn_cublas_lib)
    _fusedrnn_find_cublas_in("${_root}")
    if(_fusedrnn_cublas_inc)
      add_library(fusedrnn_cublas SHARED IMPORTED)
      set_target_properties(fusedrnn_cublas PROPERTIES
        IMPORTED_LOCATION "${_fusedrnn_cublas_lib}"
        INTERFACE_INCLUDE_DIRECTORIES "${_fusedrnn_cublas_inc}")
      set(_fusedrnn_cublas_target fusedrnn_cublas)
      set(_fusedrnn_cublas_from "${_fusedrnn_cublas_lib}")
      get_filename_component(_fusedrnn_cublas_libdir "${_fusedrnn_cublas_lib}" DIRECTORY)
      break()
    endif()
  endforeach()
endif()
if(NOT _fusedrnn_cublas_target)
  _fusedrnn_cuda_skip("cuBLAS was not found: the CUDA toolkit at '${CUDAToolkit_LIBRARY_ROOT}' has no cuBLAS and no nvidia-cublas wheel was found (pip install nvidia-cublas, then pass -DFUSEDRNN_CUBLAS_ROOT=<site-packages>/nvidia/cu13 or set that environment variable)")
endif()

message(STATUS "fusedrnn: CUDA backend on: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, cuBLAS from ${_fusedrnn_cublas_from}")

# 3. The kernels (CUDA only, no cuBLAS headers) and the module (C++: cuBLAS, orchestration, pybind11).
file(GLOB FUSEDRNN_CUDA_KERNEL_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda/*.cu)
file(GLOB FUSEDRNN_CUDA_HOST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda/*.cpp)

add_library(fusedrnn_cuda_kernels STATIC ${FUSEDRNN_CUDA_KERNEL_SOURCES})
target_include_directories(fusedrnn_cuda_kernels PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include
                                                         ${CMAKE_CURRENT_SOURCE_DIR}/csrc)
set_target_properties(fusedrnn_cuda_kernels PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}"
  CUDA_VISIBILITY_PRESET hidden
  CUDA_RUNTIME_LIBRARY Static)
target_compile_options(fusedrnn_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -Xcompiler=-Wall>)

pybind11_add_module(_cuda MODULE NO_EXTRAS ${FUSEDRNN_CUDA_HOST_SOURCES})
target_include_directories(_cuda PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include ${CMAKE_CURRENT_SOURCE_DIR}/csrc)
# Static CUDA runtime: the module needs only the driver and cuBLAS at run time.
target_link_libraries(_cuda PRIVATE fusedrnn_cuda_kernels CUDA::cudart_static ${_fusedrnn_cublas_target})
target_compile_options(_cuda PRIVATE -O2 -Wall -Wextra)
set_target_properties(_cuda PROPERTIES CUDA_RUNTIME_LIBRARY Static)

# Run-time search path for cuBLAS: next to an installed nvidia-cublas wheel
# (site-packages/fusedrnn/../nvidia/cu13/lib), and where it was found at build time.
set(_fusedrnn_cuda_rpath "$ORIGIN/../nvidia/cu13/lib;$ORIGIN/../nvidia/cublas/lib")
if(_fusedrnn_cublas_libdir)
  list(APPEND _fusedrnn_cuda_rpath "${_fusedrnn_cublas_libdir}")
elseif(CUDAToolkit_LIBRARY_DIR)
  list(APPEND _fusedrnn_cuda_rpath "${CUDAToolkit_LIBRARY_DIR}")
endif()
set_target_properties(_cuda PROPERTIES INSTALL_RPATH "${_fusedrnn_cuda_rpath}" BUILD_WITH_INSTALL_RPATH ON)

install(TARGETS _cuda LIBRARY DESTINATION fusedrnn)
