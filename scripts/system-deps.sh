#!/usr/bin/env bash
# System packages the project needs (Debian). Idempotent: installs only what is missing, and
# only as root; otherwise it prints what to install and carries on (the tests that need a
# package skip with a reason).
set -uo pipefail

# One line per package, with the reason.
PACKAGES=(
  chromium   # headless browser for the report viewer test (tests/test_view.py)
  bubblewrap   # sandbox isolation for the code env (agentgym/sandbox.py)
  cmake        # builds fast-downward-textworld (the [envs] extra: TextWorld PDDL, ALFWorld)
  g++          # idem
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]}; the tests that need them will skip" >&2
else
  echo "warning: missing system packages ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
fi
exit 0
