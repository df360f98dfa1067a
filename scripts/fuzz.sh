#!/usr/bin/env bash
# Runs the libFuzzer harnesses of Fuzz/ against the three parsers that read untrusted text: the
# policy parser and checker, the iptables-save reader and the libnftables JSON reader (each
# reader's result is audited too), and against import of what the readers read. Seeds come
# from policies/, golden/ and the test fixtures.
# A crash, a trap, an input that runs longer than 10 s or takes more than 2 GB is a failure: its
# input is kept and the script exits 1. See docs/fuzzing.md.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  how long each target runs (default 60)
#   TARGET   policy, iptables-save or nft-json (default: these three, one after another), or
#            import (import of what the readers read; not in the default while it still crashes)
# Environment:
#   FUZZ_CONFIG  release (default) or debug: debug builds faster, release runs faster
#   FUZZ_WORK    where corpora, logs and crashing inputs go (default: a temporary directory,
#                removed after a clean run); give the same one again to go on from its corpus
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(policy iptables-save nft-json); fi
config="${FUZZ_CONFIG:-release}"
work="${FUZZ_WORK:-$(mktemp -d -t portcullis-fuzz.XXXXXX)}"
fixtures=Tests/PortcullisTests/Fixtures

mkdir -p "$work"
# Each harness alone: import's pulls in the Engine API client, which the others do not need.
for target in "${targets[@]}"; do
    if ! swift build --package-path Fuzz --sanitize=fuzzer -c "$config" --product "fuzz-$target" \
        >>"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        exit 2
    fi
done
bin=$(swift build --package-path Fuzz --sanitize=fuzzer -c "$config" --show-bin-path)

# Copies the seed files of one target into $2, one file per seed, named after its path.
seed() {
    local target=$1 dir=$2 file
    mkdir -p "$dir"
    case $target in
    policy)
        find policies "$fixtures" -name '*.policy' -print0 ;;
    iptables-save)
        find golden "$fixtures" \( -name '*.iptables' -o -name '*.ip6tables' \) -print0 ;;
    nft-json)
        find golden "$fixtures" -name '*.json' -print0 ;;
    import)
        find golden "$fixtures" \( -name '*.iptables' -o -name '*.ip6tables' -o -name '*.json' \) -print0 ;;
    esac | while IFS= read -r -d '' file; do cp "$file" "$dir/${file//\//_}"; done
    if [ "$target" = iptables-save ] || [ "$target" = import ]; then
        # Captures hold iptables-save output, then ip6tables-save output after a marker line.
        find "$fixtures" -name '*.rules' -print0 | while IFS= read -r -d '' file; do
            awk -v out="$dir/${file//\//_}" '/^#### ip6tables/ { part++; next } { print > (out "." part+0) }' "$file"
        done
    fi
}

failed=0
for target in "${targets[@]}"; do
    harness="$bin/fuzz-$target"
    [ -x "$harness" ] || { echo "unknown target '$target' (policy, iptables-save, nft-json, import)" >&2; exit 2; }
    mkdir -p "$work/$target/corpus" "$work/$target/crashes"
    seed "$target" "$work/$target/seeds"
    log="$work/$target/log"
    touch "$work/$target/started"  # crashes of earlier runs in the same FUZZ_WORK do not count
    start=$(date +%s)
    status=0
    # Swift's own backtracer would take a trap's signal first and exit before libFuzzer keeps the input.
    SWIFT_BACKTRACE=enable=no "$harness" "$work/$target/corpus" "$work/$target/seeds" -max_total_time="$seconds" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/$target/crashes/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    inputs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    crashes=$(find "$work/$target/crashes" -type f -newer "$work/$target/started" | wc -l)
    echo "fuzz-$target: $inputs inputs in ${elapsed} s, $crashes crashes"
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        echo "log and corpus in $work/$target" >&2
        tail -n 40 "$log" >&2
        find "$work/$target/crashes" -type f -newer "$work/$target/started" -exec echo "crashing input: {}" \; >&2
    fi
done
# A temporary directory goes when the run is clean; one given in FUZZ_WORK, or a failure's, stays.
if [ -z "${FUZZ_WORK:-}" ] && [ "$failed" -eq 0 ]; then rm -rf "$work"; fi
exit "$failed"
