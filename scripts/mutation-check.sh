#!/usr/bin/env bash
# Mutation check of the hostile-server matrix (tests/trust/hostile_servers.rs):
# turns each authentication guard off in turn, in a scratch copy of the
# committed tree, and shows that the matching rows of the matrix fail with
# the fake server recovering the password. Slow (one rebuild of dbfleet per
# mutation, ~2 min each), so it is not part of scripts/test.sh; run it after
# changing a guard. Needs the test environment: eval "$(scripts/test-env.sh)".
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$scratch" >/dev/null 2>&1 || rm -rf "$scratch"' EXIT
git -C "$repo" worktree add --detach --force "$scratch" HEAD >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbfleet/mutation-target}

# name ^ file ^ Python expression applied to the file's text ^ a row that must then leak
mutations=(
    "relay allow-list off^src/probe/mysql_relay.rs^s.replace('if self.policy.verified {\n            return self.judge_verified', 'if true {\n            return self.judge_verified')^MyFullAuthTrailing under Prefer: the fake server recovered"
    "relay acts on 01 04 only when exact (the old bug)^src/probe/mysql_relay.rs^s.replace('[0x01, PERFORM_FULL_AUTHENTICATION, ..] if', '[0x01, PERFORM_FULL_AUTHENTICATION] if').replace('            _ => Err(unexpected(describe_packet(payload))),\n        }\n    }', '            _ => Ok(Verdict::Forward { reply: true }),\n        }\n    }')^MyFullAuthTrailing under Require: the fake server recovered"
    "PostgreSQL guard off^src/probe/pg_guard.rs^s.replace('if policy.verified {', 'if true {')^PgCleartext under Prefer: the fake server recovered"
    "MD5 allowed^src/probe/auth_policy.rs^s.replace('self.verified || self.md5_opted_in', 'true')^PgMd5 under Prefer: the fake server recovered"
    "any SCRAM iteration count^src/probe/auth_policy.rs^s.replace('self.verified || iterations >= MIN_SCRAM_ITERATIONS', 'true')^PgScramOneIteration under Prefer: the fake server recovered"
    "no channel binding under require^src/probe/pg_guard.rs^s.replace('if policy.channel_binding && !mechanisms', 'if false && !mechanisms')^PgScramWithoutPlus under Require: the fake server recovered"
)

failed=0
for mutation in "${mutations[@]}"; do
    IFS='^' read -r name file edit expected <<<"$mutation"
    git -C "$scratch" checkout -q -- .
    python3 - "$scratch/$file" "$edit" <<'PY'
import sys
path, edit = sys.argv[1], sys.argv[2]
s = open(path).read()
mutated = eval(edit, {"s": s})
if mutated == s:
    sys.exit(f"the mutation does not apply to {path}: the guard changed, update scripts/mutation-check.sh")
open(path, "w").write(mutated)
PY
    # The driver's own channel-binding rule is a second line: switch it off too.
    if [ "$name" = "no channel binding under require" ]; then
        sed -i 's/if policy.channel_binding \&\& !policy.md5_opted_in {/if false {/' "$scratch/src/probe/postgres.rs"
    fi
    log=$(mktemp)
    if (cd "$scratch" && cargo test -q --test trust -- hostile_servers::no_hostile_server >"$log" 2>&1); then
        echo "SURVIVED: $name (the matrix still passes with this guard off)"
        failed=1
    elif grep -qF "$expected" "$log"; then
        echo "killed:   $name ($expected)"
    else
        echo "FAILED DIFFERENTLY: $name (no \"$expected\"); output in $log"
        failed=1
        continue
    fi
    rm -f "$log"
done
exit $failed
