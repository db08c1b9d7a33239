#!/usr/bin/env bash
# Installs what the tests need, idempotently: SIP peers (SIPp, pjsua2 in a venv),
# audio tools. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_packages=()
command -v sipp >/dev/null 2>&1 || apt_packages+=(sip-tester)
command -v sox >/dev/null 2>&1 || apt_packages+=(sox)
command -v espeak-ng >/dev/null 2>&1 || apt_packages+=(espeak-ng)
command -v python3 >/dev/null 2>&1 || apt_packages+=(python3 python3-venv)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "deps: installing ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# pjsua2 (PJSIP's Python binding) as a binary wheel, in the project's own venv.
if ! .venv/bin/python -c 'import pjsua2' >/dev/null 2>&1; then
  echo "deps: creating .venv with pjsua2-python"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'pjsua2-python==2.15.1.post1'
fi
# zeep, a real SOAP client for the SOAP services (tests/soap.rs), in the same venv.
if ! .venv/bin/python -c 'import zeep' >/dev/null 2>&1; then
  echo "deps: installing zeep in .venv"
  .venv/bin/pip install -q --disable-pip-version-check 'zeep==4.3.3'
fi
echo "deps: ok (sipp $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1), pjsua2 and zeep in .venv)"
