#!/usr/bin/env bash
# Quick start, part 1: set up (once) and run the demo end to end. Extra arguments go to `revise-prep demo`.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec revise-prep demo "$@"
