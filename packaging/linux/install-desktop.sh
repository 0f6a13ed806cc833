#!/bin/sh
# Desktop integration for the current user (no root): after this, Keras Explorer is in the application menu and
# double-clicking a .keras (or Keras .h5) file opens it.
#
#   make install-desktop                        # runs this checkout's .venv/bin/keras-explorer
#   make install-desktop DESKTOP_APP=$PWD/dist/keras-explorer/keras-explorer     # the PyInstaller build instead
#   make uninstall-desktop
#
# Installs (XDG_DATA_HOME defaults to ~/.local/share):
#   ~/.local/bin/keras-explorer                                    launcher script: exec "$app" "$@"
#   $XDG_DATA_HOME/applications/keras-explorer.desktop             Exec= the launcher's absolute path
#   $XDG_DATA_HOME/mime/packages/keras-explorer.xml                then update-mime-database
#   $XDG_DATA_HOME/icons/hicolor/{16..256}x../apps/keras-explorer.png, scalable/apps/keras-explorer.svg
# and, when the tools exist: update-desktop-database, gtk-update-icon-cache, and makes Keras Explorer the default
# application for application/x-keras and application/x-hdf5-keras (gio mime, else xdg-mime).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
bindir=$HOME/.local/bin
launcher=$bindir/keras-explorer
icons=$data/icons/hicolor
sizes="16 32 48 64 128 256"
types="application/x-keras application/x-hdf5-keras"

have() { command -v "$1" >/dev/null 2>&1; }
note() { echo "install-desktop: $*"; }

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$launcher" "$data/applications/keras-explorer.desktop" "$data/mime/packages/keras-explorer.xml" \
        "$icons/scalable/apps/keras-explorer.svg"
  for size in $sizes; do rm -f "$icons/${size}x${size}/apps/keras-explorer.png"; done
  if have update-mime-database; then update-mime-database "$data/mime"; fi
  if have update-desktop-database; then update-desktop-database -q "$data/applications" || true; fi
  if have gtk-update-icon-cache && [ -d "$icons" ]; then gtk-update-icon-cache -q -f -t "$icons" || true; fi
  mimeapps=${XDG_CONFIG_HOME:-$HOME/.config}/mimeapps.list  # the defaults set below, nothing else
  if [ -f "$mimeapps" ]; then
    sed -i -E '/^application\/x-(hdf5-)?keras=keras-explorer\.desktop;?$/d' "$mimeapps"
  fi
  note "removed"
  exit 0
fi

app=${DESKTOP_APP:-$root/.venv/bin/keras-explorer}
case $app in /*) ;; *) app=$PWD/$app ;; esac  # the launcher runs from anywhere
if [ ! -x "$app" ]; then
  note "warning: $app does not exist yet (run 'make setup' or 'make package'); the launcher will fail until it does" >&2
fi

# Launcher
mkdir -p "$bindir"
cat > "$launcher" <<EOF
#!/bin/sh
# Keras Explorer launcher, written by make install-desktop from $root
exec "$app" "\$@"
EOF
chmod 755 "$launcher"

# Menu entry: the same file, with Exec pointing at the launcher (~/.local/bin is not always on a session's PATH)
mkdir -p "$data/applications"
sed "s|^Exec=keras-explorer |Exec=$launcher |" "$here/keras-explorer.desktop" > "$data/applications/keras-explorer.desktop"
chmod 644 "$data/applications/keras-explorer.desktop"

# File types
mkdir -p "$data/mime/packages"
cp "$here/keras-explorer.xml" "$data/mime/packages/keras-explorer.xml"

# Icons
for size in $sizes; do
  mkdir -p "$icons/${size}x${size}/apps"
  cp "$root/resources/icons/keras-explorer-$size.png" "$icons/${size}x${size}/apps/keras-explorer.png"
done
mkdir -p "$icons/scalable/apps"
cp "$root/resources/icons/keras-explorer.svg" "$icons/scalable/apps/keras-explorer.svg"

# Caches and defaults, each only if its tool is there
if have update-mime-database; then
  update-mime-database "$data/mime"
else
  note "update-mime-database not found (package shared-mime-info): .keras files are not recognised until it runs"
fi
if have update-desktop-database; then update-desktop-database -q "$data/applications" || true; fi
# A user icon folder without index.theme needs no cache (and gtk-update-icon-cache refuses it without -t).
if have gtk-update-icon-cache; then gtk-update-icon-cache -q -f -t "$icons" || true; fi
if have gio; then
  for type in $types; do gio mime "$type" keras-explorer.desktop >/dev/null || true; done
elif have xdg-mime; then
  xdg-mime default keras-explorer.desktop $types || true
fi
note "Keras Explorer installed for $(id -un): $launcher -> $app"
