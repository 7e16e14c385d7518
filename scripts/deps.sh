#!/bin/sh
# Installs the Debian packages the build, the tests and the fuzzers need,
# only those that are missing. As root it runs apt-get; otherwise it prints
# the command to run.
set -e
PKGS="gcc make libc6-dev libyaml-dev libxxhash-dev libssl-dev libcmocka-dev libcurl4-openssl-dev libjansson-dev libnghttp2-dev pkg-config clang libclang-rt-14-dev python3 python3-pytest python3-yaml curl openssl"
missing=""
# protobuf-c and grpc_tools: the ext_proc messages (proto/, src/extproc/).
PKGS="$PKGS protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev python3-grpcio python3-grpc-tools"
# python3-h2: the h2c model server of tests/integration/h2pod.py (appProtocol kubernetes.io/h2c).
PKGS="$PKGS python3-h2"
# python3-pytest-xdist: the integration suite runs two test files at a time (scripts/run-tests.sh).
PKGS="$PKGS python3-pytest-xdist"
# chromium: the admin page's browser tests (tests/integration/test_admin_page.py, skipped
# without it). Large: about 155 MB to download, 480 MB installed, ~40 s to install.
PKGS="$PKGS chromium"
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq $missing >/dev/null
else
  echo "deps: missing packages:$missing"
  echo "deps: run: sudo apt-get install -y$missing"
  exit 1
fi
