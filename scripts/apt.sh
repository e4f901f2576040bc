# Sourced by the scripts that install what they need (bash).
# apt_install PKG...: installs the packages (quietly, no prompts); nothing when none given.
apt_install() {
  [ $# -gt 0 ] || return 0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
# apt_need PKG...: installs those of the packages dpkg does not have yet.
apt_need() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  apt_install "${missing[@]}"
}
