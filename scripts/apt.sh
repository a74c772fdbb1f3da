# Sourced by the scripts that need Debian packages: scripts/test, scripts/deploy-tools and the
# bench/*.sh wrappers (bench/tools.sh).
# apt_install PACKAGE...: apt-get install the packages, through sudo unless root, waiting up to
# 10 minutes for another install's lock (scripts/test and scripts/deploy-tools run at once).
apt_install() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y -qq "$@" >/dev/null
}
