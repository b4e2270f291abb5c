# Sourced by scripts/install-*.sh (not run by itself): what every installer repeats.
#
# already_installed LABEL WHERE: say where LABEL is and end the calling script (exit 0).
# After sourcing: $SUDO is "sudo" unless we are root, and apt-get runs non-interactively.

already_installed() {
    echo "$1 already installed: $2"
    exit 0
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# apt_get ARGS: apt-get that waits up to 5 min for the dpkg lock instead of failing at once.
# A fresh machine often runs unattended-upgrades at boot, and parallel installs (several
# checkouts running ./run test) collide on the lock; without the wait the second one fails.
apt_get() {
    $SUDO apt-get -o DPkg::Lock::Timeout=300 "$@"
}
