#!/usr/bin/env bash
# Packaging tests: a fresh CMake build with the default options, `cmake --install` with DESTDIR
# into a temporary root, and checks of what lands there:
#   - the installed tree (binary, configuration in /etc, web assets, man page, systemd unit,
#     documentation) and nothing else (no test or bench binaries, no /usr/etc);
#   - the binary runs (--version), the installed configuration passes --check-config;
#   - the man page renders without a warning (groff -man -ww, man -l) and names every option
#     and installed path;
#   - the unit file verifies (systemd-analyze verify), has the sandbox directives, and its
#     stop timeout is above the drain window of the installed configuration;
#   - the binary's hardening (readelf: PIE, BIND_NOW, RELRO, no executable stack, stack
#     protector, _FORTIFY_SOURCE), and the same check fails on an unhardened binary;
#   - the Dockerfile: copied paths exist and pass .dockerignore, the packages exist in Debian,
#     the runtime stage has the library of every NEEDED entry, OCI labels, non-root user,
#     HEALTHCHECK on the admin port, the image's configuration passes --check-config.
# Prints "N passed, N failed" last. Needs: cmake, a C compiler and the -dev packages
# (scripts/install-deps.sh), groff-base, man-db, systemd (systemd-analyze), binutils.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=/usr/bin/python3

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # description, command...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
B=$TMP/build
DEST=$TMP/root
PREFIX=/usr

version=$(sed -nE 's/^project\(jobwire VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)
[[ -n $version ]] || { bad "project(jobwire VERSION ...) found in CMakeLists.txt"; finish; }

# --- configure, build, install ---------------------------------------------------------------
if cmake -S . -B "$B" -DCMAKE_INSTALL_PREFIX=$PREFIX >"$TMP/configure.log" 2>&1; then
    ok "cmake configure with the default options"
else
    bad "cmake configure with the default options"; tail -n 30 "$TMP/configure.log"; finish
fi
cache() { sed -nE "s/^$1:[A-Z]+=(.*)/\1/p" "$B/CMakeCache.txt"; }
for opt in JW_TESTS JW_BENCH JW_WERROR JW_SANITIZE; do
    check "default $opt=OFF (got $(cache $opt))" test "$(cache $opt)" = OFF
done
check "default JW_HARDENING=ON (got $(cache JW_HARDENING))" test "$(cache JW_HARDENING)" = ON

if cmake --build "$B" -j"$(nproc 2>/dev/null || echo 2)" >"$TMP/build.log" 2>&1; then
    ok "cmake --build (default target)"
else
    bad "cmake --build (default target)"; tail -n 40 "$TMP/build.log"; finish
fi
if DESTDIR=$DEST cmake --install "$B" >"$TMP/install.log" 2>&1; then
    ok "DESTDIR=... cmake --install"
else
    bad "DESTDIR=... cmake --install"; cat "$TMP/install.log"; finish
fi

# --- the installed tree ----------------------------------------------------------------------
BIN=$DEST$PREFIX/bin/jobwire
CONF=$DEST/etc/jobwire/jobwire.conf
WEB=$DEST$PREFIX/share/jobwire/web
MAN=$DEST$PREFIX/share/man/man8/jobwire.8
UNIT=$DEST$PREFIX/lib/systemd/system/jobwire.service
DOC=$DEST$PREFIX/share/doc/jobwire
check "binary in bin/ and executable" test -x "$BIN"
check "configuration in /etc/jobwire (the full sysconfdir of /usr, not /usr/etc)" test -f "$CONF"
check "no /usr/etc" test ! -e "$DEST$PREFIX/etc"
check "web assets in share/jobwire/web (index.html, jobwire.js)" \
    test -f "$WEB/index.html" -a -f "$WEB/jobwire.js"
check "web assets complete (same files as web/)" \
    diff -r "$ROOT/web" "$WEB"
check "man page in share/man/man8" test -f "$MAN"
check "systemd unit in lib/systemd/system" test -f "$UNIT"
check "LICENSE in share/doc/jobwire" test -f "$DOC/LICENSE"
(cd "$DEST" && find . -type f | sed 's|^\./|/|' | sort) >"$TMP/files.txt"
unexpected=$(grep -vE "^($PREFIX/bin/jobwire|/etc/jobwire/jobwire\.conf|$PREFIX/share/jobwire/web/.*|$PREFIX/share/man/man8/jobwire\.8|$PREFIX/lib/systemd/system/jobwire\.service|$PREFIX/share/doc/jobwire/[A-Za-z.]+)$" "$TMP/files.txt")
check "nothing else installed${unexpected:+: $(echo $unexpected)}" test -z "$unexpected"

# --- the binary and the installed configuration ----------------------------------------------
out=$("$BIN" --version 2>&1)
check "installed binary runs: '$out' is 'jobwire $version'" test "$out" = "jobwire $version"
if env -i PATH=/usr/bin:/bin "$BIN" --check-config --config "$CONF" >"$TMP/check.txt" 2>&1; then
    ok "installed jobwire.conf passes --check-config"
else
    bad "installed jobwire.conf passes --check-config"; sed 's/^/    /' "$TMP/check.txt"
fi
check "installed jobwire.conf: dashboard off (web_root \"\")" grep -qx 'web_root ""' "$CONF"
check "installed jobwire.conf names the installed web directory" \
    grep -q "web_root $PREFIX/share/jobwire/web" "$CONF"
# Apart from web_root, the installed file is conf/jobwire.conf.
check "installed jobwire.conf is conf/jobwire.conf apart from web_root" \
    diff <(grep -v '^web_root ' conf/jobwire.conf) \
    <(grep -v -e '^web_root ' -e '^# Installed dashboard:' "$CONF")

# --- the man page --------------------------------------------------------------------------------
if groff -man -Tutf8 -ww -z "$MAN" >"$TMP/groff.txt" 2>&1 && [[ ! -s $TMP/groff.txt ]]; then
    ok "man page: groff -man -Tutf8 -ww without warnings"
else
    bad "man page: groff -man -Tutf8 -ww without warnings"; cat "$TMP/groff.txt"
fi
# The same check must reject a page with a broken request.
printf '.TH X 8\n.SH NAME\nx \\- y\n.BOGUSMACRO\n.ft Q\n' >"$TMP/bad.8"
groff -man -Tutf8 -ww -z "$TMP/bad.8" >"$TMP/groff-bad.txt" 2>&1
check "man page check rejects a page with warnings (self-test)" test -s "$TMP/groff-bad.txt"
if LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$MAN" >"$TMP/man.txt" 2>"$TMP/man.err" &&
    [[ ! -s $TMP/man.err && -s $TMP/man.txt ]]; then
    ok "man -l renders the page"
else
    bad "man -l renders the page"; cat "$TMP/man.err"
fi
for section in NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS "EXIT STATUS" ENVIRONMENT FILES; do
    check "man page has section $section" grep -qx "$section" "$TMP/man.txt"
done
# Every option of the usage line (and --health) is documented.
mapfile -t opts < <("$BIN" --help | head -n 1 | grep -oE -- '--[a-z-]+' | sort -u)
opts+=(--health)
for o in "${opts[@]}"; do
    check "man page documents $o" grep -qE -- "^ +$o( |$)" "$TMP/man.txt"
done
check "man page states version $version" grep -q "jobwire $version" "$TMP/man.txt"
for f in /etc/jobwire/jobwire.conf $PREFIX/share/jobwire/web $PREFIX/lib/systemd/system/jobwire.service; do
    check "man page FILES names installed path $f" grep -qE "^ +$f\$" "$TMP/man.txt"
    check "  ... and $f is installed" test -e "$DEST$f"
done
for sig in SIGTERM SIGINT; do
    check "man page documents $sig" grep -qE "^ +$sig( |\$)" "$TMP/man.txt"
done

# --- the systemd unit ----------------------------------------------------------------------------
exec_start=$(sed -nE 's/^ExecStart=([^ ]+).*/\1/p' "$UNIT")
check "unit ExecStart is the installed binary ($exec_start)" test "$exec_start" = "$PREFIX/bin/jobwire"
check "unit --config is the installed configuration" \
    grep -qE "^ExecStart=.* --config /etc/jobwire/jobwire\.conf\$" "$UNIT"
# systemd-analyze verify wants the binary at the ExecStart path and man:jobwire(8) in the
# manual path: point both into the DESTDIR root.
sed "s|^ExecStart=$PREFIX/bin/jobwire|ExecStart=$BIN|" "$UNIT" >"$TMP/jobwire.service"
verify() { # unit file
    (cd "$TMP" && MANPATH=$DEST$PREFIX/share/man: SYSTEMD_LOG_LEVEL=notice \
        systemd-analyze verify "$1") >"$TMP/verify.txt" 2>&1 && [[ ! -s $TMP/verify.txt ]]
}
if verify "$TMP/jobwire.service"; then
    ok "systemd-analyze verify (no warnings)"
else
    bad "systemd-analyze verify (no warnings)"; cat "$TMP/verify.txt"
fi
mkdir -p "$TMP/neg"
sed -e 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' "$TMP/jobwire.service" >"$TMP/neg/jobwire.service"
if verify "$TMP/neg/jobwire.service"; then
    bad "systemd-analyze verify rejects a misspelt directive (self-test)"
else
    ok "systemd-analyze verify rejects a misspelt directive (self-test)"
fi
for d in Type=simple LimitNOFILE=1048576 NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
    PrivateTmp=yes PrivateDevices=yes "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
    DynamicUser=yes CapabilityBoundingSet= SystemCallFilter=@system-service KillSignal=SIGTERM; do
    check "unit sets $d" grep -qx "$d" "$UNIT"
done
stop=$(sed -nE 's/^TimeoutStopSec=([0-9]+)s?$/\1/p' "$UNIT")
drain=$(sed -nE 's/^drain_window_ms ([0-9]+)$/\1/p' "$CONF")
check "unit TimeoutStopSec (${stop:-?} s) above the drain window (${drain:-?} ms)" \
    test -n "$stop" -a -n "$drain" -a "$((${stop:-0} * 1000))" -gt "${drain:-0}"
if out=$(systemd-analyze security --offline=true --threshold=30 "$TMP/jobwire.service" 2>&1); then
    ok "systemd-analyze security: $(echo "$out" | grep -o 'exposure level.*' | head -n 1)"
else
    bad "systemd-analyze security --offline (threshold 3.0)"; echo "$out" | tail -n 20
fi

# --- hardening of the binary ---------------------------------------------------------------------
hardened() { # binary; prints what is missing
    local b=$1 missing=() h d l s
    # Read each table once: `readelf | grep -q` under pipefail fails when grep quits early.
    h=$(readelf -hW "$b") d=$(readelf -dW "$b") l=$(readelf -lW "$b") s=$(readelf --dyn-syms -W "$b")
    grep -qE 'Type: +DYN' <<<"$h" || missing+=(PIE)
    grep -qE '\(FLAGS_1\).*PIE' <<<"$d" || missing+=(PIE-flag)
    grep -qE '\(BIND_NOW\)|\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' <<<"$d" || missing+=(BIND_NOW)
    grep -q GNU_RELRO <<<"$l" || missing+=(RELRO)
    grep -E 'GNU_STACK' <<<"$l" | grep -q 'RWE' && missing+=(NX-stack)
    grep -q ' __stack_chk_fail@' <<<"$s" || missing+=(stack-protector)
    grep -qE ' __[a-z_]+_chk@' <<<"$s" || missing+=(fortify)
    echo "${missing[*]}"
}
missing=$(hardened "$BIN")
check "binary hardened: PIE, BIND_NOW, RELRO, NX stack, stack protector, fortify${missing:+ (missing: $missing)}" \
    test -z "$missing"
# Self-test: the same check on a deliberately unhardened binary must find every gap.
printf '#include <stdio.h>\n#include <string.h>\nint main(int c, char **v) { char b[64]; strcpy(b, v[0]); printf("%%s %%d\\n", b, c); return 0; }\n' >"$TMP/plain.c"
if cc -O2 -U_FORTIFY_SOURCE -fno-stack-protector -no-pie -fno-pie -Wl,-z,norelro -Wl,-z,lazy \
    -o "$TMP/plain" "$TMP/plain.c" 2>/dev/null; then
    missing=$(hardened "$TMP/plain")
    check "hardening check flags an unhardened binary (self-test: $missing)" \
        test "$missing" = "PIE PIE-flag BIND_NOW RELRO stack-protector fortify"
else
    bad "cannot compile the unhardened self-test binary"
fi

# --- Dockerfile ----------------------------------------------------------------------------------
# Debian's package lists (apt-cache) are needed to check the package names.
if ! apt-cache show libc6 >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
    apt-get update -q >/dev/null 2>&1 || true
fi
"$PY" - "$ROOT" "$BIN" >"$TMP/docker.txt" 2>&1 <<'PY'
import fnmatch, os, re, shlex, subprocess, sys

root, binary = sys.argv[1:3]
def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + "Dockerfile: " + name + ("" if cond else f"  [{detail}]"))

text = open(os.path.join(root, "Dockerfile")).read()
logical = re.sub(r"\\\n", " ", text)  # join continuation lines
lines = [l.strip() for l in logical.splitlines() if l.strip() and not l.strip().startswith("#")]
stages, cur = [], None
for l in lines:
    word = l.split()[0].upper()
    if word == "FROM":
        cur = {"from": l, "lines": []}
        stages.append(cur)
    elif cur is not None:
        cur["lines"].append(l)
check("two stages (build, runtime)", len(stages) == 2, [s["from"] for s in stages])
build, runtime = stages[0], stages[-1]

# .dockerignore, Docker's rules: patterns match the path or a parent directory, `*` does not
# cross `/`, `**` does, a leading `!` re-includes, the last matching pattern wins.
patterns = []
for p in open(os.path.join(root, ".dockerignore")).read().splitlines():
    p = p.strip()
    if not p or p.startswith("#"):
        continue
    neg = p.startswith("!")
    p = os.path.normpath(p.lstrip("!").strip("/"))
    rx = ""
    i = 0
    while i < len(p):
        if p.startswith("**", i):
            rx += ".*"; i += 2
        elif p[i] == "*":
            rx += "[^/]*"; i += 1
        elif p[i] == "?":
            rx += "[^/]"; i += 1
        else:
            rx += re.escape(p[i]); i += 1
    patterns.append((neg, re.compile(rx + "$")))
def in_context(path):
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for neg, rx in patterns:
        if any(rx.match(x) for x in prefixes):
            included = neg
    return included
tracked = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True).stdout.split()
if not tracked:  # not a git checkout: walk the tree
    tracked = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)
               if "/.git" not in d for f in fs]
# Untracked but present files the build needs (new files) count too.
needed_roots = ["CMakeLists.txt", "cmake", "src", "include", "conf", "web", "packaging", "LICENSE"]
needed = [f for f in tracked if f.split("/")[0] in needed_roots]
for extra in ("LICENSE", "cmake/JobwireHardening.cmake", "cmake/JobwireInstall.cmake",
              "packaging/jobwire.8", "packaging/conf-set.sh"):
    if os.path.exists(os.path.join(root, extra)) and extra not in needed:
        needed.append(extra)
left_out = [f for f in needed if not in_context(f)]
check(f"the {len(needed)} files the build reads are in the context", not left_out, left_out[:10])
for junk in ("build/jobwire", ".cache/helm/x", "tests/unit/test_log.c", "helm/jobwire/values.yaml",
             "node_modules/x/y.js", ".git/HEAD", "docs/OPERATIONS.md"):
    check(f".dockerignore keeps {junk.split('/')[0]}/ out of the context", not in_context(junk))
check(".dockerignore check can fail (self-test: src/main.c is in)", in_context("src/main.c"))

# COPY sources from the context exist and are not ignored.
for st in stages:
    for l in st["lines"]:
        w = shlex.split(l)
        if w[0].upper() != "COPY" or any(x.startswith("--from") for x in w[1:]):
            continue
        srcs = [x for x in w[1:-1] if not x.startswith("--")]
        for s in srcs:
            path = os.path.normpath(os.path.join(root, s))
            check(f"COPY source {s} exists", os.path.exists(path))
            if s not in (".", "./"):
                check(f"COPY source {s} passes .dockerignore", in_context(os.path.normpath(s)))

# Packages of each apt-get install exist in this (Debian 12) archive.
def apt_packages(stage):
    pk = []
    for l in stage["lines"]:
        m = re.search(r"apt-get install ([^&;|]*)", l)
        if m:
            pk += [x for x in m.group(1).split() if not x.startswith("-")]
    return pk
os_release = open("/etc/os-release").read()
debian12 = 'VERSION_CODENAME=bookworm' in os_release
for name, st in (("build", build), ("runtime", runtime)):
    pkgs = apt_packages(st)
    check(f"{name} stage installs packages", bool(pkgs))
    unknown = [p for p in pkgs if subprocess.run(["apt-cache", "show", "--no-all-versions", p],
               capture_output=True).returncode != 0]
    check(f"{name} stage: every package exists in Debian{' 12' if debian12 else ''} ({len(pkgs)})",
          not unknown, unknown)
build_pkgs, run_pkgs = apt_packages(build), apt_packages(runtime)
for heavy in ("chromium", "nodejs", "npm", "valgrind", "redis-server", "python3", "clang-format"):
    check(f"build stage does not install {heavy}", heavy not in build_pkgs)
check("build stage does not run scripts/install-deps.sh", "install-deps.sh" not in " ".join(build["lines"]))
check("runtime stage installs no -dev package", not [p for p in run_pkgs if p.endswith("-dev")])

# Every NEEDED library of the binary comes from a package the runtime stage installs (or one
# that is in every Debian image: libc6).
needed_libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                         subprocess.run(["readelf", "-dW", binary], capture_output=True, text=True).stdout)
essential = {"libc6", "libgcc-s1", "zlib1g", "libzstd1", "liblzma5", "libselinux1", "libcap2"}
missing = []
for lib in needed_libs:
    r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
    owners = {line.split(":")[0] for line in r.stdout.splitlines() if "/" + lib in line}
    if not owners & (set(run_pkgs) | essential):
        missing.append(f"{lib} ({','.join(sorted(owners)) or 'no package'})")
check(f"runtime stage has the package of each of the {len(needed_libs)} NEEDED libraries",
      bool(needed_libs) and not missing, missing)
check("runtime stage has the lws libev plugin and libev (loaded at run time)",
      "libwebsockets-evlib-ev" in run_pkgs and "libev4" in run_pkgs)

rt = "\n".join(runtime["lines"])
user = re.findall(r"^USER\s+(\S+)", rt, re.M)
check("runtime runs as a numeric non-root user", bool(user) and re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user[-1]) is not None, user)
hc = re.findall(r"^HEALTHCHECK.*", rt, re.M)
check("HEALTHCHECK runs jobwire --health on the admin port's /readyz",
      bool(hc) and '"--health", "http://127.0.0.1:9090/readyz"' in hc[-1], hc)
labels = set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", rt))
want = {"title", "description", "version", "revision", "created", "source", "licenses"}
check("OCI labels " + ", ".join(sorted(want)),
      {"org.opencontainers.image." + w for w in want} <= labels, sorted(labels))
cmake_version = re.search(r"project\(jobwire VERSION ([0-9.]+)", open(os.path.join(root, "CMakeLists.txt")).read()).group(1)
check(f"ARG VERSION defaults to the project version {cmake_version}",
      re.search(rf"^ARG VERSION={re.escape(cmake_version)}$", rt, re.M) is not None)
lic = re.search(r'org\.opencontainers\.image\.licenses="([^"]+)"', rt)
license_text = open(os.path.join(root, "LICENSE")).read() if os.path.exists(os.path.join(root, "LICENSE")) else ""
check("licenses label matches LICENSE", lic is not None and lic.group(1) == "MIT" and "MIT License" in license_text)
ep = re.findall(r"^ENTRYPOINT\s+(.*)", rt, re.M)
check("ENTRYPOINT is the installed binary (exec form)", ep == ['["/usr/bin/jobwire"]'], ep)
check("EXPOSE 8080 and 9090", re.search(r"^EXPOSE\s+8080\s+9090$", rt, re.M) is not None)
check("image config: web_root \"\" and admin_port 9090 are set",
      "web_root '\"\"'" in text and "admin_port 9090" in text)
PY
cat "$TMP/docker.txt"
passed=$((passed + $(grep -c '^ok ' "$TMP/docker.txt")))
failed=$((failed + $(grep -c '^FAIL ' "$TMP/docker.txt")))
grep -qv -e '^ok ' -e '^FAIL ' "$TMP/docker.txt" && bad "the Dockerfile check script itself failed (see above)"

# The image's configuration, made as the Dockerfile makes it, loads in the real parser. Needs
# the server's admin_port (protocol-changes.md): fails with a binary that predates it.
cmd=$(sed -n '/packaging\/conf-set.sh/,/>/p' Dockerfile | tr -d '\\\n' | sed -E 's/.*conf-set\.sh +[^ ]+ +//; s/ *>.*//')
eval "set -- $cmd"
if packaging/conf-set.sh "$CONF" "$@" >"$TMP/image.conf" &&
    env -i PATH=/usr/bin:/bin "$BIN" --check-config --config "$TMP/image.conf" >"$TMP/image.txt" 2>&1; then
    ok "the image's jobwire.conf ($*) passes --check-config"
else
    bad "the image's jobwire.conf ($*) passes --check-config (needs admin_port in the server)"
    sed 's/^/    /' "$TMP/image.txt"
fi

finish
