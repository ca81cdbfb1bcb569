#!/bin/sh
# Sets keys in a jobwire.conf: prints FILE with the line of each KEY replaced by "KEY VALUE",
# or the line appended when the file has none. The file syntax forbids a key twice, so
# appending an override is not an option.
#   packaging/conf-set.sh conf/jobwire.conf listen_address 0.0.0.0 web_root '""' > out.conf
# Used by the Dockerfile (the image's /etc/jobwire/jobwire.conf) and tests/packaging.
set -eu
[ $# -ge 3 ] && [ $(( ($# - 1) % 2 )) -eq 0 ] || {
    echo "usage: conf-set.sh FILE KEY VALUE [KEY VALUE]..." >&2
    exit 2
}
file=$1
shift
awk '
    BEGIN {
        for (i = 1; i < ARGC; i += 2) { val[ARGV[i]] = ARGV[i + 1]; order[++n] = ARGV[i] }
        ARGC = 1
    }
    $1 in val && $0 !~ /^[ \t]*#/ { print $1 " " val[$1]; done[$1] = 1; next }
    { print }
    END {
        for (i = 1; i <= n; i++)
            if (!(order[i] in done)) print order[i] " " val[order[i]]
    }
' "$@" <"$file"
