#!/usr/bin/env bash
# Sets up vmpack on a fresh Debian 12 machine (as root, or with sudo): system packages,
# a virtual environment in .venv, and vmpack with its test tools installed into it.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv python3-pip)
command -v gcc >/dev/null || need_apt+=(gcc)
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
  || need_apt+=(python3-dev)
# libvirt-python builds against libvirt's headers; the lab (and its tests) runs libvirtd and
# QEMU guests, and fetches a kernel and busybox with apt-get download. The dashboard tests run
# Prometheus and promtool; the store tests run a PostgreSQL server of their own.
for package in libvirt-dev pkg-config libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
               qemu-system-x86 iproute2 prometheus postgresql; do
  dpkg -s "$package" >/dev/null 2>&1 || need_apt+=("$package")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/vmpack --help >/dev/null
# The packing searches compile their inner loops once per machine; do it now, not in the
# first plan's time limit.
.venv/bin/python -c 'from scheduler.solver.closing import steps; from scheduler.solver.dive import pricing; steps.warm_up(); pricing.warm_up()'
echo "vmpack is installed in .venv (run .venv/bin/vmpack)"
