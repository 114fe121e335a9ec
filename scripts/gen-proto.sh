#!/usr/bin/env bash
# Regenerates all code from proto/ (the one schema): Python (grpc_tools'
# bundled protoc), Rust (prost-build, cargo feature regen-proto) and
# TypeScript (ts-proto, plus the few @bufbuild/protobuf wire files it needs,
# vendored so scripts run with --no-npm --no-remote). Output is committed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
PROTO=proto/coral/sdk/v1/sdk.proto
AGENT_PROTO=proto/coral/agent/v1/agent.proto
COLONY_PROTOS="proto/coral/colony/v1/query.proto proto/coral/colony/v1/colony.proto"
TS_PROTO_VERSION=2.18.0
BUFBUILD_VERSION=2.17.0

echo "== python -> coral_probe/gen"
rm -rf coral_probe/gen && mkdir -p coral_probe/gen
"$PY" -m grpc_tools.protoc -Iproto --python_out=coral_probe/gen --pyi_out=coral_probe/gen "$PROTO"
printf '"""Generated from proto/ by scripts/gen-proto.sh: do not edit."""\n' > coral_probe/gen/__init__.py
# AgentService (gRPC, Python only): messages, .pyi and the service stubs. The
# stubs import `coral.agent.v1.agent_pb2` as a top-level package; coral_probe/gen
# is a subpackage, so that import is made relative to it.
"$PY" -m grpc_tools.protoc -Iproto --python_out=coral_probe/gen --pyi_out=coral_probe/gen \
  --grpc_python_out=coral_probe/gen "$AGENT_PROTO"
sed -i 's/^from coral\.agent\.v1 import agent_pb2 as /from . import agent_pb2 as /' \
  coral_probe/gen/coral/agent/v1/agent_pb2_grpc.py
# The colony's QueryService and ColonyService, the same way; colony.proto
# imports agent.proto, whose module is reached from coral_probe.gen.
# shellcheck disable=SC2086
"$PY" -m grpc_tools.protoc -Iproto --python_out=coral_probe/gen --pyi_out=coral_probe/gen \
  --grpc_python_out=coral_probe/gen $COLONY_PROTOS
sed -i -e 's/^from coral\.colony\.v1 import \([a-z0-9_]*\) as /from . import \1 as /' \
  -e 's/^from coral\.agent\.v1 import agent_pb2 as /from ...agent.v1 import agent_pb2 as /' \
  coral_probe/gen/coral/colony/v1/*_pb2_grpc.py coral_probe/gen/coral/colony/v1/colony_pb2.py

echo "== rust -> native/src/gen"
PATH="$HOME/.cargo/bin:$PATH" PYO3_PYTHON="$PY" cargo build --release -q --features regen-proto

echo "== typescript -> sdk/typescript/gen"
TOOLS="$(mktemp -d)"
trap 'rm -rf "$TOOLS"' EXIT
npm install --silent --prefix "$TOOLS" "ts-proto@$TS_PROTO_VERSION" "@bufbuild/protobuf@$BUFBUILD_VERSION" >/dev/null
OUT=sdk/typescript/gen
rm -rf "$OUT" && mkdir -p "$OUT"
PROTOC="$("$PY" -c 'import grpc_tools, os; print(os.path.dirname(grpc_tools.__file__))')"
"$PY" -m grpc_tools.protoc -Iproto -I"$PROTOC/_proto" \
  --plugin=protoc-gen-ts_proto="$TOOLS/node_modules/.bin/protoc-gen-ts_proto" \
  --ts_proto_out="$OUT" \
  --ts_proto_opt=forceLong=bigint,importSuffix=.js,outputServices=false,esModuleInterop=true,useOptionals=messages,oneof=unions-value \
  "$PROTO"
WIRE="$TOOLS/node_modules/@bufbuild/protobuf"
VENDOR="$OUT/vendor/bufbuild-protobuf"
mkdir -p "$VENDOR/wire"
for f in wire/binary-encoding wire/varint wire/text-encoding proto-int64; do
  cp "$WIRE/dist/esm/$f.js" "$VENDOR/$f.js"
  cp "$WIRE/dist/esm/$f.d.ts" "$VENDOR/$f.d.ts"
done
cp "$WIRE/LICENSE" "$VENDOR/LICENSE" 2>/dev/null || grep -m1 '"license"' "$WIRE/package.json" > "$VENDOR/LICENSE"
echo "@bufbuild/protobuf $BUFBUILD_VERSION (wire encoding only), vendored by scripts/gen-proto.sh" > "$VENDOR/README"
echo "done"
