# Fails configure when include/diffscope/version.hpp disagrees with the VERSION file, the one
# version source (meson.build runs the same check).
function(diffscope_check_version_header header version)
  file(STRINGS "${header}" lines REGEX "^#define DIFFSCOPE_VERSION_(MAJOR|MINOR|PATCH|STRING) ")
  foreach(part MAJOR MINOR PATCH)
    set(value "")
    foreach(line IN LISTS lines)
      if(line MATCHES "^#define DIFFSCOPE_VERSION_${part} +([0-9]+)")
        set(value "${CMAKE_MATCH_1}")
      endif()
    endforeach()
    if(value STREQUAL "")
      message(FATAL_ERROR "diffscope: ${header} does not define DIFFSCOPE_VERSION_${part}")
    endif()
    list(APPEND header_parts "${value}")
  endforeach()
  list(JOIN header_parts "." header_version)
  set(string_version "${header_version}")
  foreach(line IN LISTS lines)
    if(line MATCHES "^#define DIFFSCOPE_VERSION_STRING +\"([^\"]*)\"")
      set(string_version "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  if(NOT header_version STREQUAL version OR NOT string_version STREQUAL version)
    message(
      FATAL_ERROR
        "diffscope: version mismatch: VERSION says ${version} but ${header} says "
        "${header_version} (DIFFSCOPE_VERSION_STRING \"${string_version}\"). "
        "Update both together.")
  endif()
endfunction()
