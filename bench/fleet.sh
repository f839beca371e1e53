#!/bin/sh
# The installers' fleet view at scale: 10,000 sites, an organisation of
# 1,000, GET /api/orgs/{org}/fleet timed through the cloud's own router,
# on SQLite (the embedded default) and PostgreSQL side by side.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust on loopback).
set -eu
cd "$(dirname "$0")/.."
cargo build --release -q -p candor-cloud --example fleet_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/fleet_bench"
db="candor_fleet_bench_$$"
psql -h 127.0.0.1 -U postgres -q -c "CREATE DATABASE $db"
trap 'psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $db"' EXIT
"$bin" sqlite
"$bin" "postgres://postgres@127.0.0.1:5432/$db"
