#!/usr/bin/env bash
# The browser test's browser: Debian's Chromium and its driver (and CJK fonts, so the Korean pages
# render in screenshots), installed with apt-get when /usr/bin/chromium or /usr/bin/chromedriver
# is missing. Nothing is downloaded at test time. Safe to run again: does nothing when both exist.
set -euo pipefail

[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && exit 0

packages=(chromium chromium-driver fonts-noto-cjk)
fail() {
  echo "setup-browser: could not install ${packages[*]} with apt-get ($1); install them by hand (Debian: apt-get install ${packages[*]}) for the browser test." >&2
  exit 1
}
command -v apt-get >/dev/null 2>&1 || fail "no apt-get on this machine"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and no sudo"
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
install() { "${sudo[@]}" apt-get install -y -q "${packages[@]}" >"$log" 2>&1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "setup-browser: installing ${packages[*]} with apt-get"
# A fresh machine's package lists may be empty or stale: update them once if the install fails.
if ! install; then
  "${sudo[@]}" apt-get update -q >"$log" 2>&1 || { tail -n 5 "$log" >&2; fail "apt-get update failed"; }
  install || { tail -n 5 "$log" >&2; fail "apt-get install failed"; }
fi
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || fail "the packages installed no /usr/bin/chromium or /usr/bin/chromedriver"
