#!/bin/sh
# Multi-turn conversations through one batcher with and without the prefix
# cache (bench/prefix_cache.c): wall time and prompt tokens prefilled.
# Usage: bench/prefix_cache.sh [SHAPE TYPE CONVERSATIONS TURNS SYSTEM USER REPLY]
set -e
cd "$(dirname "$0")/.."
make -j2 build/bench/prefix_cache >/dev/null
uptime
build/bench/prefix_cache "${1:-qwen2.5-0.5b}" "${2:-q8_0}" "${3:-4}" "${4:-4}" "${5:-600}" "${6:-60}" "${7:-80}"
