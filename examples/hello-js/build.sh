#!/usr/bin/env bash
# Builds hello_js.wasm from app.js. Needs Node.js >= 18 and npm; installs the pinned toolchain
# (package.json + package-lock.json) into ./node_modules on first run.
#
# `npm install` rather than `npm ci`: with npm 11, `npm ci` rejects this lock file because of the
# platform-specific optional packages of jco's dependencies ("Missing: ...-win32-x64-msvc@ from
# lock file") although `npm install` wrote it. `npm install` still installs the locked versions.
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x node_modules/.bin/componentize-js ]]; then
  npm install --no-audit --no-fund
fi
node_modules/.bin/componentize-js app.js --wit wit --world-name hello --out hello_js.wasm
echo "built $(pwd)/hello_js.wasm"
