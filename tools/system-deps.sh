#!/usr/bin/env bash
# Installs what pip cannot: Graphviz and the system libraries Qt needs (Debian/Ubuntu, via apt-get when root).
set -euo pipefail
packages=(graphviz python3-venv libgl1 libegl1 libglib2.0-0 libfontconfig1 libfreetype6 libdbus-1-3
          libxkbcommon0 libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
          libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1)
libraries=(libGL.so.1 libEGL.so.1 libfontconfig.so.1 libxkbcommon.so.0 libxkbcommon-x11.so.0 libdbus-1.so.3
           libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1)
missing=()
command -v dot >/dev/null || missing+=("dot (graphviz)")
for library in "${libraries[@]}"; do
  ldconfig -p | grep -q "$library" || missing+=("$library")
done
python3 -c "import ensurepip" 2>/dev/null || missing+=("python3-venv")
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "system-deps: missing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "system-deps: run as root, or: sudo apt-get install ${packages[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
