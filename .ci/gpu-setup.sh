#!/usr/bin/env bash
# Builds the native `gl` module (headless WebGL, an optional dependency of gpu.js) from source so that the
# qkvflow gpu backend can run in `headlessgl` mode, and checks that a WebGL context opens under Xvfb.
# Usage: .ci/gpu-setup.sh            (run from anywhere; needs root or sudo for apt-get)
# Env:   QKVFLOW_SKIP_APT=1          skip the apt-get step (packages already present)
#        QKVFLOW_WITH_CHROMIUM=1     also apt-get install chromium (for test/browser-*.test.ts)
# Exit status is non-zero, with a loud message, when any step fails.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
START=$(date +%s)

fail() {
  echo "" >&2
  echo "################################################################################" >&2
  echo "### gpu-setup FAILED: $*" >&2
  echo "### headless-gl is NOT available; gpu-headlessgl tests will skip (or fail when" >&2
  echo "### QKVFLOW_REQUIRE_HEADLESSGL=1)." >&2
  echo "################################################################################" >&2
  exit 1
}
step() { echo "==> [$(( $(date +%s) - START ))s] $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and sudo is missing (apt-get needs one of them)"
  SUDO="sudo"
fi

if [ "${QKVFLOW_SKIP_APT:-0}" != "1" ]; then
  step "apt-get update"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q || fail "apt-get update"
  step "apt-get install build tools, X11/GL headers, Xvfb"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    build-essential python3 pkg-config libxi-dev libglu1-mesa-dev libglew-dev libx11-dev libxext-dev \
    xvfb xauth || fail "apt-get install"
  if [ "${QKVFLOW_WITH_CHROMIUM:-0}" = "1" ]; then
    step "apt-get install chromium"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium || fail "apt-get install chromium"
  fi
fi

step "npm install (lockfile, optional dependencies included, install scripts skipped)"
npm install --include=optional --ignore-scripts --no-save --no-audit --no-fund || fail "npm install of gl and its build dependencies"
[ -f node_modules/gl/package.json ] || fail "node_modules/gl is missing after npm install"
[ -f node_modules/node-gyp/bin/node-gyp.js ] || fail "node_modules/node-gyp is missing after npm install"

# Node headers: use npm's nodedir if configured, else the headers beside the node binary; node-gyp would
# otherwise download them (needs network access to nodejs.org).
NODEDIR="$(npm config get nodedir 2>/dev/null || true)"
if [ -z "$NODEDIR" ] || [ "$NODEDIR" = "undefined" ] || [ "$NODEDIR" = "null" ]; then
  NODEDIR="$(dirname "$(dirname "$(command -v node)")")"
fi
GYP_ARGS=()
if [ -f "$NODEDIR/include/node/node.h" ]; then GYP_ARGS+=("--nodedir=$NODEDIR"); fi

step "node-gyp rebuild in node_modules/gl (${GYP_ARGS[*]:-downloading headers}); this compiles ANGLE and takes minutes"
(cd node_modules/gl && JOBS="$(nproc 2>/dev/null || echo 2)" node ../node-gyp/bin/node-gyp.js rebuild -j "$(nproc 2>/dev/null || echo 2)" "${GYP_ARGS[@]}") \
  || fail "node-gyp rebuild of gl"

step "checking that gl opens a WebGL context under Xvfb"
xvfb-run -a -s "-ac -screen 0 1280x1024x24" node -e '
  const ctx = require("gl")(4, 4, { preserveDrawingBuffer: true });
  if (!ctx) { console.error("gl returned no context"); process.exit(1); }
  console.log("gl OK:", ctx.getParameter(ctx.VERSION), "|", ctx.getParameter(ctx.RENDERER));
  const ext = ctx.getExtension("OES_texture_float");
  console.log("OES_texture_float:", ext ? "yes" : "no");
' || fail "require(\"gl\") or context creation under xvfb-run"

step "done in $(( $(date +%s) - START ))s"
