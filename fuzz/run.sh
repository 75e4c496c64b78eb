#!/usr/bin/env bash
# Run every cargo-fuzz target of both fuzz crates, one after the other, for $SECS
# seconds each (default 10), on the pinned stable toolchain.
#
#   fuzz/run.sh                      # every target, 10 s each
#   SECS=60 fuzz/run.sh              # longer
#   SECS=60 fuzz/run.sh hls_filter   # some targets only (names as below)
#
# Environment:
#   SECS              seconds per target (libFuzzer -max_total_time), default 10
#   FUZZ_SANITIZER    cargo-fuzz sanitizer, default `none`: the fuzzed code is safe
#                     Rust, and without ASan libFuzzer runs about twice as many
#                     inputs. `address` works too (it needs -Zsanitizer, so the
#                     script sets RUSTC_BOOTSTRAP=1); changing it rebuilds everything.
#   FUZZ_TIMEOUT      seconds one input may take before it counts as a hang (10)
#   FUZZ_ARGS         extra libFuzzer arguments
#
# Seeds live in <crate>/corpus/<target> (committed, never written). libFuzzer writes
# the inputs it finds to <crate>/scratch/corpus/<target> (git-ignored, kept between
# runs so coverage accumulates); logs go to <crate>/scratch/<target>.log, crashes to
# <crate>/artifacts/<target>/. Exits non-zero when any target crashed (or failed to
# build); the other targets still run.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${SECS:-10}"
sanitizer="${FUZZ_SANITIZER:-none}"
timeout="${FUZZ_TIMEOUT:-10}"
# shellcheck disable=SC2206 # word splitting of FUZZ_ARGS is intended
extra=(${FUZZ_ARGS:-})

if [ "$sanitizer" != "none" ]; then
    # cargo-fuzz passes -Zsanitizer=…, a nightly flag; the pinned stable rustc
    # accepts it with RUSTC_BOOTSTRAP.
    export RUSTC_BOOTSTRAP=1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || exit 1
fi

# crate directory, then its targets
crates=(
    "fuzz:canon_path config traffic"
    "guests/fuzz:cmcd hls_filter dash_filter rewrite_rules"
)

wanted=("$@")
want() {
    [ ${#wanted[@]} -eq 0 ] && return 0
    local w
    for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

failed=()
summary=()
for entry in "${crates[@]}"; do
    dir="$root/${entry%%:*}"
    read -r -a targets <<<"${entry#*:}"
    selected=()
    for t in "${targets[@]}"; do want "$t" && selected+=("$t"); done
    [ ${#selected[@]} -eq 0 ] && continue

    echo "== building ${entry%%:*} (sanitizer: $sanitizer)"
    if ! (cd "$dir" && cargo fuzz build -s "$sanitizer"); then
        failed+=("${entry%%:*} (build)")
        continue
    fi
    mkdir -p "$dir/scratch/corpus"
    for t in "${selected[@]}"; do
        scratch="$dir/scratch/corpus/$t"
        log="$dir/scratch/$t.log"
        mkdir -p "$scratch"
        echo "== $t: ${secs}s (log: ${log#"$root"/})"
        # The scratch dir comes first: libFuzzer writes new inputs only there; the
        # seed dir is read.
        (cd "$dir" && cargo fuzz run -s "$sanitizer" "$t" "$scratch" "corpus/$t" -- \
            -max_total_time="$secs" -timeout="$timeout" -print_final_stats=1 \
            "${extra[@]}") >"$log" 2>&1
        rc=$?
        done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
        units="$(grep -E '^stat::number_of_executed_units:' "$log" | tail -n 1)"
        echo "   ${done_line:-(no DONE line)}"
        echo "   ${units:-(no final stats)}"
        if [ $rc -ne 0 ]; then
            failed+=("$t")
            echo "   FAILED (exit $rc); the end of the log:"
            grep -E "panicked at|^SUMMARY|Test unit written to|ERROR: libFuzzer|error(\[|:)" "$log" | head -n 20 | sed 's/^/   | /'
            summary+=("$t: FAILED (exit $rc) ${units#stat::number_of_executed_units: } execs")
        else
            summary+=("$t: ok, ${units#stat::number_of_executed_units: } execs in ${secs}s")
        fi
    done
done

echo "== summary"
printf '   %s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "== failed: ${failed[*]}"
    exit 1
fi
