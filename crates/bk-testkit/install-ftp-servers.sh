#!/usr/bin/env bash
# Installs the FTP servers that bk-testkit can run, on Debian 12, as root.
#
#   bash crates/bk-testkit/install-ftp-servers.sh DIR
#
# - pure-ftpd (and openssl, used to hash test passwords) is installed with apt.
# - vsftpd and proftpd-core conflict with pure-ftpd as Debian packages
#   (all of them "Conflicts: ftp-server"), so they are downloaded with
#   `apt-get download` and unpacked with `dpkg -x` into DIR, together with the
#   libraries they need that are not installed. No daemon is started.
#
# Then run the tests with
#   BK_FTP_SERVERS_ROOT=DIR BK_FTP_SERVERS=embedded,pure-ftpd,vsftpd,proftpd cargo test
#
# Idempotent: a second run with everything in place does nothing but check.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR   (DIR receives the unpacked vsftpd and proftpd)" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: must run as root (apt-get install)" >&2
    exit 2
fi
mkdir -p "$1"
root="$(cd "$1" && pwd)"
export DEBIAN_FRONTEND=noninteractive

unpacked_ok() {
    local libdir
    libdir="$(ls -d "$root"/usr/lib/*-linux-gnu 2>/dev/null | head -n1 || true)"
    for bin in "$root/usr/sbin/vsftpd" "$root/usr/sbin/proftpd"; do
        [ -x "$bin" ] || return 1
        if LD_LIBRARY_PATH="$libdir" ldd "$bin" | grep -q 'not found'; then
            return 1
        fi
    done
}

need_apt=0
command -v openssl >/dev/null || need_apt=1
[ -x /usr/sbin/pure-ftpd ] && command -v pure-pw >/dev/null || need_apt=1
unpacked_ok || need_apt=1
if [ "$need_apt" -eq 0 ]; then
    echo "install-ftp-servers: pure-ftpd installed, vsftpd and proftpd unpacked in $root: nothing to do"
    exit 0
fi

apt-get update -q

# Keep apt from starting the daemon (a container usually has this already).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

if ! [ -x /usr/sbin/pure-ftpd ] || ! command -v pure-pw >/dev/null || ! command -v openssl >/dev/null; then
    apt-get install -y -q --no-install-recommends pure-ftpd openssl
fi

if ! unpacked_ok; then
    debs="$root/debs"
    mkdir -p "$debs"
    # The packages, plus each library they need (recursively) that is not installed.
    pkgs=(vsftpd proftpd-core)
    queue=(vsftpd proftpd-core)
    while [ ${#queue[@]} -gt 0 ]; do
        next=()
        for dep in $(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                         --no-replaces --no-enhances "${queue[@]}" |
                     awk '($1 == "Depends:" || $1 == "PreDepends:") && $2 ~ /^lib/ { print $2 }' | sort -u); do
            case " ${pkgs[*]} " in *" $dep "*) continue ;; esac
            if ! dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q 'install ok installed'; then
                pkgs+=("$dep")
                next+=("$dep")
            fi
        done
        queue=("${next[@]+"${next[@]}"}")
    done
    echo "install-ftp-servers: downloading ${pkgs[*]}"
    (cd "$debs" && rm -f ./*.deb && apt-get download "${pkgs[@]}")
    for deb in "$debs"/*.deb; do
        dpkg -x "$deb" "$root"
    done
    if ! unpacked_ok; then
        libdir="$(ls -d "$root"/usr/lib/*-linux-gnu 2>/dev/null | head -n1 || true)"
        for bin in "$root/usr/sbin/vsftpd" "$root/usr/sbin/proftpd"; do
            echo "== $bin"
            LD_LIBRARY_PATH="$libdir" ldd "$bin" | grep 'not found' || true
        done
        echo "install-ftp-servers: unpacked servers are missing libraries" >&2
        exit 1
    fi
fi

echo "install-ftp-servers: done"
echo "  pure-ftpd: $(command -v pure-ftpd || echo /usr/sbin/pure-ftpd)"
echo "  vsftpd:    $root/usr/sbin/vsftpd"
echo "  proftpd:   $root/usr/sbin/proftpd"
echo "  run tests with BK_FTP_SERVERS_ROOT=$root BK_FTP_SERVERS=embedded,pure-ftpd,vsftpd,proftpd"
