# Install the reference configuration as SYSCONFDIR/starttls-proxy/
# starttls-proxy.conf, never over an existing file.
#
# The reference config (config/starttls-proxy.conf) is the one scripts/run
# uses in the source tree; an installed proxy differs in a few settings,
# replaced here so that the key list and its comments have one source:
# listen on port 25 in front of the MTA moved to 127.0.0.1:2525, run as
# the user starttls-proxy, and serve Debian's snake-oil certificate
# (package ssl-cert) until a real one is configured.  A setting that is
# not found fails the install, so the reference cannot drift silently.
#
# Inputs: SRC (the reference config), DEST (the directory, without
# DESTDIR).

cmake_policy(SET CMP0007 NEW)
set(dir "$ENV{DESTDIR}${DEST}")
set(out "${dir}/starttls-proxy.conf")
if(EXISTS "${out}")
  message(STATUS "Keeping existing: ${out}")
  return()
endif()
file(READ "${SRC}" text)
set(pairs
  "user = \"\"" "user = \"starttls-proxy\""
  "listen = \"127.0.0.1:2525\"" "listen = \"0.0.0.0:25\""
  "address = \"127.0.0.1:25\"" "address = \"127.0.0.1:2525\""
  "cert = \"../certs/local/mx.pem\""
  "cert = \"/etc/ssl/certs/ssl-cert-snakeoil.pem\""
  "key = \"../certs/local/mx.key\""
  "key = \"/etc/ssl/private/ssl-cert-snakeoil.key\"")
list(LENGTH pairs n)
math(EXPR last "${n} - 1")
foreach(i RANGE 0 ${last} 2)
  math(EXPR j "${i} + 1")
  list(GET pairs ${i} from)
  list(GET pairs ${j} to)
  string(FIND "${text}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${SRC}: '${from}' not found; update "
      "cmake/InstallConfig.cmake")
  endif()
  string(REPLACE "${from}" "${to}" text "${text}")
endforeach()
set(head "# Installed configuration of starttls-proxy: the reference config with
# listen 0.0.0.0:25, backend 127.0.0.1:2525 (move the MTA there), user
# starttls-proxy and Debian's snake-oil certificate (replace it with one for
# your MX host name).  See starttls-proxy.conf(5).
#
")
file(MAKE_DIRECTORY "${dir}")
file(WRITE "${out}" "${head}${text}")
file(CHMOD "${out}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
message(STATUS "Installing: ${out}")
