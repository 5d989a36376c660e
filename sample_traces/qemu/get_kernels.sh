#!/bin/bash
# Download and unpack the Debian kernels the debian-* samples were captured on.
#
#   ./get_kernels.sh [WORKDIR]      (default $QEMU_WORK, else ~/qemu-cap)
#
# 6.1 comes from bookworm (this machine's own apt sources); 5.10 from bullseye through a
# private apt configuration (its own sources.list and lists directory under WORKDIR,
# checked with the bookworm debian-archive-keyring, which carries bullseye's keys), so
# the system's apt state is left alone.  Unpacks each .deb under WORKDIR/x/NAME and
# prints the vmlinuz and modules paths for make_initramfs.sh / run_guest.sh.
set -euo pipefail
work=$(realpath -m "${1:-${QEMU_WORK:-$HOME/qemu-cap}}")
K61=linux-image-6.1.0-50-cloud-amd64-unsigned     # 6.1.176-1 (bookworm main)
K510=linux-image-5.10.0-46-cloud-amd64            # 5.10.262-1 (bullseye-security)
mkdir -p "$work/apt-bullseye/lists/partial" "$work/x"
cd "$work"
cat > apt-bullseye/sources.list <<'LIST'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main
LIST
bullseye=(-o "Dir::Etc::SourceList=$work/apt-bullseye/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/apt-bullseye/lists")
apt-get "${bullseye[@]}" update -q
apt-get download "$K61"
apt-get "${bullseye[@]}" download "$K510"
for pair in "k61:$K61" "k510:$K510"; do
    dir=${pair%%:*} pkg=${pair#*:}
    rm -rf "x/$dir" && mkdir -p "x/$dir"
    dpkg-deb -x "$(ls "${pkg}"_*.deb | head -1)" "x/$dir"
    echo "$dir: $(ls "$work/x/$dir"/boot/vmlinuz-*) modules $(ls -d "$work/x/$dir"/lib/modules/*)"
done
