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
