#!/usr/bin/env bash
# Install MetaInspect from this unpacked folder (the Linux tarball), for one user or for everybody.
#
#   ./install.sh                  per user:   ~/.local/opt/metainspect, ~/.local/bin, menu entry for this user
#   sudo ./install.sh --system    everybody:  /opt/metainspect, /usr/local/bin, menu entry for all users
#   ./install.sh --uninstall [--system]       remove the program (workspaces and preferences stay)
#
# Installing over an earlier version is the upgrade: the program folder is replaced whole; workspaces
# (~/.local/share/MetaInspect) and preferences (~/.config/MetaInspect) are never touched.
# Needs nothing from the network. Options: --prefix DIR (default ~/.local or /usr/local for --system).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=user action=install prefix=""
while [ $# -gt 0 ]; do
    case "$1" in
        --system) mode=system ;;
        --user) mode=user ;;
        --uninstall) action=uninstall ;;
        --prefix) prefix=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$mode" = system ]; then
    [ "$(id -u)" = 0 ] || { echo "install.sh: --system needs root (sudo ./install.sh --system)" >&2; exit 1; }
    prefix=${prefix:-/usr/local}
    appdir=/opt/metainspect
    [ "$prefix" = /usr/local ] || appdir=$prefix/opt/metainspect
    share=$prefix/share
else
    prefix=${prefix:-$HOME/.local}
    appdir=$prefix/opt/metainspect
    share=${XDG_DATA_HOME:-$HOME/.local/share}
fi
bindir=$prefix/bin
desktop=$share/applications/metainspect.desktop
icon=$share/icons/hicolor/scalable/apps/metainspect.svg

refresh_menus() {
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
}

if [ "$action" = uninstall ]; then
    rm -rf "$appdir"
    for f in "$bindir/metainspect" "$bindir/metainspect-lab" "$desktop" "$icon"; do rm -f "$f"; done
    refresh_menus
    echo "MetaInspect removed from $appdir. Workspaces and preferences were kept:"
    echo "    ~/.local/share/MetaInspect (workspaces), ~/.config/MetaInspect (preferences); delete them by hand if wanted."
    exit 0
fi

[ -x "$here/metainspect" ] && [ -d "$here/_internal" ] \
    || { echo "install.sh: run it from the unpacked metainspect folder" >&2; exit 1; }
if [ "$here" = "$appdir" ]; then
    echo "install.sh: already installed in $appdir"; exit 0
fi
mkdir -p "$(dirname "$appdir")" "$bindir" "$(dirname "$desktop")" "$(dirname "$icon")"
# Copy beside the target, then swap: a failed copy (disk full) leaves the old version working.
staging="$appdir.new.$$"
rm -rf "$staging"
cp -a "$here" "$staging"
if [ -e "$appdir" ]; then
    old="$appdir.old.$$"
    mv "$appdir" "$old"
    mv "$staging" "$appdir"
    rm -rf "$old"
    echo "Upgraded MetaInspect in $appdir"
else
    mv "$staging" "$appdir"
    echo "Installed MetaInspect in $appdir"
fi
ln -sfn "$appdir/metainspect" "$bindir/metainspect"
ln -sfn "$appdir/metainspect-lab" "$bindir/metainspect-lab"
sed "s|@APPDIR@|$appdir|g" "$here/metainspect.desktop" > "$desktop"
cp "$here/metainspect.svg" "$icon"
refresh_menus
# Qt's X11 plugin needs a few system xcb libraries (since Qt 6.5 also libxcb-cursor0) that PyInstaller leaves to the system.
xcb="$appdir/_internal/PySide6/Qt/plugins/platforms/libqxcb.so"
if [ -f "$xcb" ] && command -v ldd >/dev/null; then
    missing=$( (ldd "$xcb"; ldd "$appdir"/_internal/PySide6/Qt/lib/libQt6XcbQpa.so.6) 2>/dev/null \
        | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    if [ -n "$missing" ]; then
        echo "WARNING: the window cannot open on X11 until these system libraries are installed: $missing"
        echo "    Debian/Ubuntu: apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \\"
        echo "        libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0"
    fi
fi
echo "Start it from the applications menu or with $bindir/metainspect; check it with: $bindir/metainspect --self-test"
case ":$PATH:" in *":$bindir:"*) ;; *) echo "note: $bindir is not on PATH" ;; esac
