# install() rules (GNUInstallDirs), used by `cmake --install` and by distribution packaging:
#
#   ${CMAKE_INSTALL_BINDIR}/jobwire                    the daemon
#   ${CMAKE_INSTALL_FULL_SYSCONFDIR}/jobwire/jobwire.conf conf/jobwire.conf, web_root ""
#   ${CMAKE_INSTALL_DATADIR}/jobwire/web/              dashboard and jobwire.js (web/)
#   ${CMAKE_INSTALL_MANDIR}/man8/jobwire.8             packaging/jobwire.8
#   ${JW_SYSTEMD_UNITDIR}/jobwire.service              packaging/jobwire.service
#   ${CMAKE_INSTALL_DOCDIR}/                           LICENSE, README.md, CHANGELOG.md
#
# The configuration goes to the FULL sysconfdir: /etc for the /usr prefix (not /usr/etc), and
# PREFIX/etc otherwise. The unit file and the man page name /usr/bin, /etc/jobwire and
# /usr/share/jobwire; for another prefix the installed copies name the real paths.
#
#   cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build
#   DESTDIR=/tmp/stage cmake --install build          # or: cmake --install build --strip

include(GNUInstallDirs)

option(JW_INSTALL_SYSTEMD "Install the systemd unit" ON)
set(JW_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Directory of the systemd unit, relative to CMAKE_INSTALL_PREFIX or absolute")

set(_jw_stage ${PROJECT_BINARY_DIR}/packaging)

if(IS_ABSOLUTE "${JW_SYSTEMD_UNITDIR}")
  set(_jw_unitdir_full "${JW_SYSTEMD_UNITDIR}")
else()
  set(_jw_unitdir_full "${CMAKE_INSTALL_PREFIX}/${JW_SYSTEMD_UNITDIR}")
endif()

# Writes FILE only when CONTENT differs from what it holds (no needless reinstall).
function(_jw_write_if_changed file content)
  set(old "")
  if(EXISTS ${file})
    file(READ ${file} old)
  endif()
  if(NOT old STREQUAL content)
    file(WRITE ${file} "${content}")
  endif()
endfunction()

# Copies IN to OUT with the paths of a /usr installation replaced by this build's; a change of
# IN reruns the configure step.
function(_jw_install_copy in out)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${in})
  file(READ ${in} content)
  string(REPLACE "/usr/bin/jobwire" "${CMAKE_INSTALL_FULL_BINDIR}/jobwire" content "${content}")
  string(REPLACE "/etc/jobwire" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/jobwire" content "${content}")
  string(REPLACE "/etc/default/jobwire" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/default/jobwire"
         content "${content}")
  string(REPLACE "/usr/share/jobwire" "${CMAKE_INSTALL_FULL_DATADIR}/jobwire" content
         "${content}")
  string(REPLACE "/lib/systemd/system/jobwire.service" "${_jw_unitdir_full}/jobwire.service"
         content "${content}")
  string(REPLACE "jobwire 0.1.0" "jobwire ${PROJECT_VERSION}" content "${content}")
  _jw_write_if_changed(${out} "${content}")
endfunction()

install(TARGETS jobwire RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The packaged configuration: conf/jobwire.conf, every default spelled out, with the dashboard
# off (web_root "") and a pointer to where its files are.
set(_jw_conf ${_jw_stage}/jobwire.conf)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/conf/jobwire.conf)
file(READ ${PROJECT_SOURCE_DIR}/conf/jobwire.conf _jw_conf_text)
string(REGEX REPLACE "\nweb_root [^\n]*\n"
       "\n# Installed dashboard: web_root ${CMAKE_INSTALL_FULL_DATADIR}/jobwire/web serves it.\nweb_root \"\"\n"
       _jw_conf_text "${_jw_conf_text}")
if(NOT _jw_conf_text MATCHES "\nweb_root \"\"\n")
  message(FATAL_ERROR "conf/jobwire.conf has no web_root line to set for the installed copy")
endif()
_jw_write_if_changed(${_jw_conf} "${_jw_conf_text}")
install(FILES ${_jw_conf} DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/jobwire)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/jobwire/web)

_jw_install_copy(${PROJECT_SOURCE_DIR}/packaging/jobwire.8 ${_jw_stage}/jobwire.8)
install(FILES ${_jw_stage}/jobwire.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)

if(JW_INSTALL_SYSTEMD)
  _jw_install_copy(${PROJECT_SOURCE_DIR}/packaging/jobwire.service
                   ${_jw_stage}/jobwire.service)
  install(FILES ${_jw_stage}/jobwire.service DESTINATION ${JW_SYSTEMD_UNITDIR})
endif()

foreach(_jw_doc LICENSE README.md CHANGELOG.md)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${_jw_doc})
    install(FILES ${PROJECT_SOURCE_DIR}/${_jw_doc} DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
endforeach()
