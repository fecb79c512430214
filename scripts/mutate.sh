#!/bin/sh
# make mutate: a small mutation check. Each mutant in scripts/mutants.txt (a
# one-line change to src/) is applied in a scratch copy of the tree, the
# copy is rebuilt and only the mutant's tests run; a mutant whose tests all
# pass "survived": the suite would not notice that bug. Prints a table and
# exits non-zero when a mutant survived or could not be tried.
#
# Usage: scripts/mutate.sh [NAME...]        (default: every mutant)
#   MUTATE_TIMEOUT=600   seconds per mutant's tests (a hang counts as killed)
#   MUTATE_BASELINE=0    skip the first run of every selection on the
#                        unchanged tree (which must pass)
#   MUTANTS=FILE         another list
# Logs: build/mutate/NAME.log. Not part of `make test` or CI: run it before
# a release and record the result in docs/security.md.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
list=${MUTANTS:-$root/scripts/mutants.txt}
per=${MUTATE_TIMEOUT:-600}
python=${PYTHON:-/usr/bin/python3}
logs=$root/build/mutate
mkdir -p "$logs"

work=$(mktemp -d /tmp/mailedge-mutate.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# The scratch copy: every file git knows or would add (no build/, no .git),
# as it is in the working tree now.
(cd "$root" && git ls-files -z -c -o --exclude-standard | xargs -0 cp --parents -t "$work")

# The mutants, one per line: name<TAB>file<TAB>nth<TAB>from<TAB>to<TAB>test;test...
records=$work/.mutants
awk '
function flush() {
    if (name != "")
        printf "%s\t%s\t%s\t%s\t%s\t%s\n", name, file, nth, from, to, tests
    name = file = from = to = tests = ""; nth = 0
}
BEGIN { nth = 0 }
/^#/ { next }
/^[ \t]*$/ { flush(); next }
{
    key = $1
    val = $0; sub(/^[^ \t]+[ \t]+/, "", val); sub(/[ \t]+$/, "", val)
    if (key == "name") name = val
    else if (key == "file") file = val
    else if (key == "nth") nth = val
    else if (key == "from") from = val
    else if (key == "to") to = val
    else if (key == "test") tests = (tests == "" ? val : tests ";" val)
    else { printf "%s:%d: unknown key %s\n", FILENAME, FNR, key > "/dev/stderr"; bad = 1 }
}
END { flush(); exit bad }' "$list" > "$records"

# Builds in the scratch copy. Warnings off: a mutant only has to compile
# (removing a call may leave a function unused, which -Werror refuses).
mk() {
    make -s -C "$work" WARN=-w "$@"
}

# apply FILE NTH FROM TO: replaces FROM on the one line holding it (or the
# NTH such line). Exit status 3 when FROM is on no line, or on several and
# no NTH is given.
apply() {
    FROM=$3 TO=$4 awk -v nth="$2" '
    BEGIN { nth += 0 }
    { lines[NR] = $0; if (index($0, ENVIRON["FROM"])) hits[++n] = NR }
    END {
        if (n == 0 || (nth == 0 && n > 1) || nth > n) exit 3
        at = hits[nth == 0 ? 1 : nth]
        for (i = 1; i <= NR; i++) {
            l = lines[i]
            if (i == at) {
                p = index(l, ENVIRON["FROM"])
                l = substr(l, 1, p - 1) ENVIRON["TO"] substr(l, p + length(ENVIRON["FROM"]))
            }
            print l
        }
    }' "$1" > "$1.mutant" && mv "$1.mutant" "$1"
}

# run_test SPEC: 0 all passed, 1 a test failed (or timed out), 5 none selected.
run_test() {
    kind=${1%%:*}
    sel=$(echo "${1#*:}" | sed 's/^ *//')
    case $kind in
    unit)
        mk "build/tests/$sel" >/dev/null || return 1
        timeout "$per" "$work/build/tests/$sel" || return 1 ;;
    integration)
        rc=0
        (cd "$work" && MAILEDGE_BIN=$work/build/mailedge MAILEDGE_SAN=0 timeout "$per" \
            "$python" -m pytest -q -x -p no:cacheprovider tests/integration -k "$sel") || rc=$?
        case $rc in
        0) return 0 ;;
        5) return 5 ;;
        *) return 1 ;;
        esac ;;
    *)
        echo "unknown test kind: $1" >&2
        return 1 ;;
    esac
}

echo "mutate: building the scratch copy in $work"
rm -f "$logs"/*.log
mk -j2 all >"$logs/build.log" 2>&1 || { cat "$logs/build.log"; exit 2; }

# Baseline: every selection passes on the tree as it is, or a "killed"
# would say nothing. MUTATE_BASELINE=0 skips it.
if [ "${MUTATE_BASELINE:-1}" = 1 ]; then
    cut -f6 "$records" | tr ';' '\n' | sort -u | while read -r spec; do
        rc=0
        echo "== $spec" >>"$logs/baseline.log"
        run_test "$spec" >>"$logs/baseline.log" 2>&1 || rc=$?
        if [ $rc -eq 1 ]; then
            echo "mutate: '$spec' fails without any mutant (build/mutate/baseline.log)" >&2
            exit 2
        fi
    done || exit 2
    echo "mutate: baseline passed"
fi

tried=0 killed=0 survived=0 other=0
table=$work/.table
: > "$table"
tab=$(printf '\t')
while IFS=$tab read -r name file nth from to tests; do
    if [ $# -gt 0 ]; then
        case " $* " in *" $name "*) ;; *) continue ;; esac
    fi
    tried=$((tried + 1))
    log=$logs/$name.log
    cp "$work/$file" "$work/.orig"
    result=""
    if ! apply "$work/$file" "$nth" "$from" "$to" 2>"$log"; then
        result="bad-pattern"
    elif cmp -s "$work/$file" "$work/.orig"; then
        result="no-change"
    elif ! mk -j2 all >>"$log" 2>&1; then
        result="build-failed"
    else
        result="survived"
        none=1
        rest=$tests
        while [ -n "$rest" ]; do
            spec=${rest%%;*}
            if [ "$rest" = "$spec" ]; then rest=""; else rest=${rest#*;}; fi
            rc=0
            echo "== $spec" >>"$log"
            run_test "$spec" >>"$log" 2>&1 || rc=$?
            [ $rc -ne 5 ] && none=0
            if [ $rc -eq 1 ]; then
                result="killed"
                break
            fi
        done
        [ "$result" = survived ] && [ $none -eq 1 ] && result="no-tests"
    fi
    # Restore with a fresh mtime so the next build recompiles the file.
    cp "$work/.orig" "$work/$file"
    case $result in
    killed) killed=$((killed + 1)) ;;
    survived|no-tests) survived=$((survived + 1)) ;;
    *) other=$((other + 1)) ;;
    esac
    line=$(printf '%-34s %-12s %s' "$name" "$result" "$tests")
    echo "$line"
    echo "$line" >>"$table"
done < "$records"

echo
echo "mutate: $tried mutants: $killed killed, $survived survived, $other could not be tried"
echo "(survived: the tests passed; no-tests: the selection matched no test; logs in $logs)"
cp "$table" "$logs/result.txt"
[ $survived -eq 0 ] && [ $other -eq 0 ]
