# Hardening flags, the set Debian's dpkg-buildflags gives with hardening=+all:
#   -D_FORTIFY_SOURCE=2 (optimised builds only: glibc needs -O1 or more)
#   -fstack-protector-strong -fstack-clash-protection (-fcf-protection on x86)
#   -Wformat -Werror=format-security
#   position-independent executables (PIE) and -Wl,-z,relro -Wl,-z,now (full RELRO)
#
# Include it from CMakeLists.txt before the first target is defined. Option JW_HARDENING
# (default ON) turns all of it off, e.g. for profiling builds. Under JW_SANITIZE or JW_FUZZ
# _FORTIFY_SOURCE is left out: ASan intercepts the plain functions, not the __*_chk ones.
#
# Flags already present in CMAKE_C_FLAGS / CMAKE_EXE_LINKER_FLAGS (a distribution's
# dpkg-buildflags, rpm's %optflags) are not added a second time, and a _FORTIFY_SOURCE level
# chosen there (e.g. 3) is kept.

option(JW_HARDENING "Build with the hardening flags of Debian's dpkg-buildflags" ON)

include(CheckCCompilerFlag)
include(CheckPIESupported)

if(JW_HARDENING)
  set(_jw_hardening_summary "")

  # PIE: POSITION_INDEPENDENT_CODE adds -fPIE/-fPIC; CheckPIESupported (policy CMP0083) makes
  # executables link with -pie.
  check_pie_supported(OUTPUT_VARIABLE _jw_pie_output LANGUAGES C)
  if(CMAKE_C_LINK_PIE_SUPPORTED)
    set(CMAKE_POSITION_INDEPENDENT_CODE ON)
    list(APPEND _jw_hardening_summary "PIE")
  else()
    message(WARNING "JW_HARDENING: the linker cannot build PIE executables: ${_jw_pie_output}")
  endif()

  # _FORTIFY_SOURCE: only where it works (optimised, not under the sanitizers) and where the
  # caller did not choose a level already. -U first: some toolchains predefine it.
  if(NOT JW_SANITIZE AND NOT JW_FUZZ AND NOT CMAKE_C_FLAGS MATCHES "_FORTIFY_SOURCE")
    add_compile_options(
      "$<$<NOT:$<CONFIG:Debug>>:-U_FORTIFY_SOURCE;-D_FORTIFY_SOURCE=2>")
    list(APPEND _jw_hardening_summary "_FORTIFY_SOURCE=2 (not in Debug)")
  endif()

  # -Werror=format-security is only accepted together with -Wformat: checked as one item.
  foreach(_jw_flag -fstack-protector-strong -fstack-clash-protection -fcf-protection
                   "-Wformat -Werror=format-security")
    string(MAKE_C_IDENTIFIER "JW_HAS ${_jw_flag}" _jw_var)
    separate_arguments(_jw_flag_list UNIX_COMMAND "${_jw_flag}")
    list(GET _jw_flag_list -1 _jw_last)
    string(FIND " ${CMAKE_C_FLAGS} " " ${_jw_last} " _jw_present)
    if(NOT _jw_present EQUAL -1)
      continue()
    endif()
    check_c_compiler_flag("${_jw_flag}" ${_jw_var})
    if(${_jw_var})
      add_compile_options(${_jw_flag_list})
      list(APPEND _jw_hardening_summary ${_jw_flag_list})
    endif()
  endforeach()

  # Full RELRO: the GOT is read-only after start-up, every symbol resolved at load time.
  if(NOT CMAKE_EXE_LINKER_FLAGS MATCHES "-z,now")
    add_link_options("LINKER:-z,relro" "LINKER:-z,now")
    list(APPEND _jw_hardening_summary "-Wl,-z,relro,-z,now")
  endif()

  list(JOIN _jw_hardening_summary " " _jw_hardening_summary)
  message(STATUS "jobwire hardening: ${_jw_hardening_summary}")
else()
  message(STATUS "jobwire hardening: off (JW_HARDENING=OFF)")
endif()
