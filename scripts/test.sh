#!/usr/bin/env bash
# npm test: the whole suite, once on SQLite and once on PostgreSQL (SPEC §1, DESIGN §4).
# Without PostgreSQL the second pass is skipped with a line saying so, unless COMPUTALOT_REQUIRE_ALL=1,
# under which a missing component fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."

mapfile -t files < <(find test -name '*.test.ts' | sort)
if [ $# -gt 0 ]; then files=("$@"); fi
export COMPUTALOT_TEST_PG_URL="${COMPUTALOT_TEST_PG_URL:-postgres://computalot:computalot@127.0.0.1:5432/postgres}"
# Statements compiled once (src/store/pg-template.ts) are compared with a fresh compile on every call.
export COMPUTALOT_CHECK_TEMPLATES=1
log=$(mktemp)
# The images test servers built (test/helpers/oci.ts, recordBuiltImages), untagged once every test has
# ended, so runs do not pile them up in podman's storage.
export COMPUTALOT_TEST_IMAGES
COMPUTALOT_TEST_IMAGES=$(mktemp)
untag_test_images() {
  if [ -s "$COMPUTALOT_TEST_IMAGES" ] && command -v podman >/dev/null; then
    sort -u "$COMPUTALOT_TEST_IMAGES" | xargs -r podman rmi --ignore >/dev/null 2>&1 || true
  fi
  rm -f "$log" "$COMPUTALOT_TEST_IMAGES"
}
trap untag_test_images EXIT
status=0

run_pass() {
  local store=$1
  echo "=== test pass: $store ==="
  # --test-timeout: a safety net (10 min per test), so a hang fails its test instead of the whole run.
  COMPUTALOT_TEST_STORE=$store node --import tsx --test --test-concurrency=2 --test-timeout=600000 --test-reporter=spec "${files[@]}" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}

run_pass sqlite
if node -e "const pg=require('pg');const c=new pg.Client(process.env.COMPUTALOT_TEST_PG_URL);c.connect().then(()=>c.end()).catch(()=>process.exit(1))" 2>/dev/null; then
  run_pass postgres
elif [ "${COMPUTALOT_REQUIRE_ALL:-0}" = "1" ]; then
  echo "FAIL: PostgreSQL is not reachable at $COMPUTALOT_TEST_PG_URL and COMPUTALOT_REQUIRE_ALL=1; run npm run setup"
  status=1
else
  echo "SKIP: the PostgreSQL pass (PostgreSQL is not reachable at $COMPUTALOT_TEST_PG_URL); run npm run setup"
fi

passed=$(grep -E '^ℹ pass [0-9]+' "$log" | awk '{s+=$3} END {print s+0}')
failed=$(grep -E '^ℹ fail [0-9]+' "$log" | awk '{s+=$3} END {print s+0}')
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "tests: $passed passed, $failed failed"
exit $status
