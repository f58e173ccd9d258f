# shellcheck shell=bash
# Sourced by scripts/setup.sh: `need TOOL "apt packages" "what it is for"` makes sure a real component the tests
# run is installed. Present: one line. Missing: installed with apt when run as root (unless SIGMAWATCH_NO_APT=1);
# if that is not possible, a WARNING on a developer's machine (the tests that need it skip with the reason) and
# an error in CI (SIGMAWATCH_CI=1, set by .ci/run): CI must not go green without running them.
CI=${SIGMAWATCH_CI:-0}
APT_UPDATED=0
apt_install() {       # apt_install PACKAGE...: as root with apt, else return 1
  [ "${SIGMAWATCH_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq || return 1; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
need() {              # need TOOL "apt packages" "what it is for"
  local tool=$1 packages=$2 why=$3
  if have "$tool"; then
    echo "$tool present ($(command -v "$tool" || echo "/usr/sbin/$tool"))"
  elif apt_install $packages && have "$tool"; then
    echo "installed $tool (apt-get install $packages)"
  elif [ "$CI" = 1 ]; then
    printf '\nERROR: %s\n' "$tool is missing and could not be installed: $why. Install it (sudo apt-get install $packages) and re-run; in CI (SIGMAWATCH_CI=1) a missing component is an error, not a skip" >&2
    exit 1
  else
    echo "WARNING: $tool is not installed: $why; those tests skip with the reason. Install: sudo apt-get install $packages"
  fi
}

