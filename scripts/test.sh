#!/usr/bin/env bash
# The whole test suite: `swift test`, in two runs.
#
# The watcher's suites time what happens within seconds on Swift's cooperative threads, which
# the other suites' kernel and Docker tests block while they wait for processes (the pool has
# one thread per core: two on a 2-core CI machine). They run on their own, after the rest, and
# one suite at a time: each runs a Docker daemon and watchers, and beside one another they
# starve each other's watcher of those threads.
set -euo pipefail
cd "$(dirname "$0")/.."
watch_suites='WatcherTests|DockerWatchTests|WatchCommandTests|FailClosedTests|WatchConvergenceTests'
swift test --skip "$watch_suites" "$@"
swift test --skip-build --no-parallel --filter "$watch_suites"
