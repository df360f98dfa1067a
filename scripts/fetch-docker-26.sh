#!/usr/bin/env bash
# Fetch Debian 13 (trixie)'s Docker 26.1 (docker.io, docker-cli, containerd 1.7) and unpack it
# into a private directory, for the oracle (docs/oracle.md, "Docker 26.1"):
#
#   bash scripts/fetch-docker-26.sh [DIR]   (default ${XDG_CACHE_HOME:-~/.cache}/portcullis/docker-26.1)
#   sudo python3 scripts/docker-oracle.py --dockerd DIR/usr/sbin/dockerd --docker DIR/usr/bin/docker
#
# Nothing is installed: apt-get runs under a private APT_CONFIG whose only source is trixie's
# main (signed with the trixie keys of debian-archive-keyring), downloads the pinned versions
# with `apt-get download`, and `dpkg-deb -x` unpacks them into DIR. The system's runc is used
# (trixie's needs a newer glibc): the oracle puts DIR's bin directories before the system's
# on the daemon's PATH, and DIR has no runc. Running it again with the same versions gives
# the same DIR; DIR/VERSIONS lists what it holds. Override the versions with
# DOCKER_VERSION and CONTAINERD_VERSION when trixie has moved on.
set -euo pipefail

DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis/docker-26.1}
DOCKER_VERSION=${DOCKER_VERSION:-26.1.5+dfsg1-9+deb13u1+b1}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-1.7.24~ds1-6+deb13u1}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PACKAGES=("docker.io=$DOCKER_VERSION" "docker-cli=$DOCKER_VERSION" "containerd=$CONTAINERD_VERSION")

if [ -x "$DIR/usr/sbin/dockerd" ] && [ "$(cat "$DIR/VERSIONS" 2>/dev/null)" = "${PACKAGES[*]}" ]; then
    echo "fetch-docker-26: $DIR already holds ${PACKAGES[*]}"
    exit 0
fi
[ -r "$KEYRING" ] || { echo "fetch-docker-26: $KEYRING missing (debian-archive-keyring)" >&2; exit 1; }

apt_dir=$(mktemp -d /tmp/fetch-docker-26.XXXXXX)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial,etc/apt.conf.d,etc/preferences.d,etc/sources.list.d,debs}
touch "$apt_dir/status"
echo "deb [signed-by=$KEYRING] $MIRROR trixie main" >"$apt_dir/etc/sources.list"
cat >"$apt_dir/apt.conf" <<CONF
Dir::State "$apt_dir";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir/cache";
Dir::Etc::SourceList "$apt_dir/etc/sources.list";
Dir::Etc::SourceParts "$apt_dir/etc/sources.list.d";
Dir::Etc::Parts "$apt_dir/etc/apt.conf.d";
Dir::Etc::Preferences "$apt_dir/etc/preferences";
Dir::Etc::PreferencesParts "$apt_dir/etc/preferences.d";
APT::Architecture "amd64";
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
export APT_CONFIG=$apt_dir/apt.conf
apt-get -q update >/dev/null
(cd "$apt_dir/debs" && apt-get -q download "${PACKAGES[@]}" >/dev/null)

rm -rf "$DIR.new"
mkdir -p "$DIR.new"
for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$DIR.new"
    echo "$(basename "$deb") $(sha256sum "$deb" | cut -d' ' -f1)"
done
rm -f "$DIR.new/usr/sbin/runc" "$DIR.new/usr/bin/runc"
echo "${PACKAGES[*]}" >"$DIR.new/VERSIONS"
rm -rf "$DIR"
mv "$DIR.new" "$DIR"
"$DIR/usr/sbin/dockerd" --version
"$DIR/usr/bin/docker" --version
