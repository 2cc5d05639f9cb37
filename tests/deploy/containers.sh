# tests/deploy/containers.sh - sourced by the deployment tests' shell
# helpers: private podman/buildah configuration and the image cache.
#
# Everything lives under $STP_CACHE (default /var/cache/starttls-proxy-test):
# the debootstrap rootfs tarball and a private containers storage (vfs), so
# that the host's own containers configuration is never touched and a warm
# machine rebuilds nothing.  podman runs with runc and explicit ulimits
# (crun fails on setrlimit and on hybrid cgroups on these machines).

STP_CACHE=${STP_CACHE:-/var/cache/starttls-proxy-test}
STP_RUN=${STP_RUN:-/run/starttls-proxy-test}
mkdir -p "$STP_CACHE/storage" "$STP_RUN/storage" "$STP_CACHE/tmp"

cat >"$STP_CACHE/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$STP_CACHE/storage"
runroot = "$STP_RUN/storage"
CONF
cat >"$STP_CACHE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[network]
network_backend = "netavark"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_STORAGE_CONF="$STP_CACHE/storage.conf"
export CONTAINERS_CONF="$STP_CACHE/containers.conf"
export TMPDIR="$STP_CACHE/tmp"
