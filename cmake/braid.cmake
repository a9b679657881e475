# braid_add_layer(NAME DEPS...): one static library per layer of docs/DESIGN (core, data, nn, ...).
# Sources are every .cpp below src/braid/<dir>; a layer links only the layers below it.
function(braid_add_layer name dir)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*.cpp)
  add_library(braid_${name} STATIC ${srcs})
  target_include_directories(braid_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(braid_${name} PUBLIC ${ARGN})
  target_compile_options(braid_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  set_target_properties(braid_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  braid_torch_pch(braid_${name})
endfunction()

# Precompiled torch header: a TU with <torch/torch.h> costs ~10 s and ~1 GB without it.
function(braid_torch_pch target)
  if(BRAID_USE_PCH)
    target_precompile_headers(${target} PRIVATE <torch/torch.h>)
  endif()
endfunction()
