# shellcheck shell=bash
# Builds the guest's initramfs in two layers, concatenated into one file
# (the kernel unpacks concatenated newc archives in order, later files win):
#   base    - busybox, the host's tools with their libraries, the kernel's
#             modules; cached in $CACHE/initramfs, keyed on its inputs.
#   overlay - /init, lib.sh, scenarios and project artifacts; rebuilt every
#             run (small), so a rebuilt libdaxguard.so is always picked up.
# Sourced by run and shell after common.sh.

# Tools copied from the host with their libraries (ldd). Busybox supplies the
# rest, from a directory that comes last in the guest's PATH, so these win.
GUEST_TOOLS=(
	bash kmod
	ibv_devices ibv_devinfo ibv_rc_pingpong ibv_ud_pingpong ibv_uc_pingpong ibv_srq_pingpong
	rping ucmatose
	ib_write_bw ib_read_bw ib_send_bw ib_write_lat ib_read_lat ib_send_lat
	rdma ip ndctl daxctl
	mke2fs mkfs.ext4 e2fsck tune2fs dumpe2fs mkfs.xfs xfs_io chattr lsattr
	mount umount findmnt prlimit stat timeout strace getfattr setfattr ldconfig setpriv unshare
	# The real journal for tests/scenarios/journal.sh, started there by hand (no systemd as PID 1).
	/lib/systemd/systemd-journald journalctl
)
# container.sh reads the CDI spec's edits with it.
GUEST_TOOLS+=(jq)
# Modules the init loads; their dependencies come along. Whole crypto/lib
# directories are added too, because the kernel loads crc32c & co on demand.
# vfio-pci and vfio_iommu_type1 are loaded by the scenarios that use them
# (tests/scenarios/vfio.sh, on the iommu machine).
GUEST_MODULES=(nfit nd_pmem dax_pmem device_dax ext4 xfs brd veth rdma_rxe ib_uverbs rdma_ucm vivid
	vfio-pci vfio_iommu_type1)
# The disk "# guest-drive:" attaches (qemu.sh); scenarios that use it load them.
GUEST_MODULES+=(virtio_pci virtio_blk)
GUEST_MODULE_DIRS=(crypto lib arch/x86/crypto)

# Extra layers, cached like the base and put between it and the overlay only
# for a scenario that asks with a line "# guest-layer: NAME" (guest_layers).
# Each is every file of its Debian packages (dpkg -L, less docs, man pages
# and init scripts) with the libraries ldd lists for each ELF file among
# them; what the base already has is skipped.
#   mpi  Open MPI over UCX (and its MCA components, PMIx, hwloc, libfabric,
#        help texts), UCX's tools, and Slurm (slurmctld, slurmd, srun and its
#        plugins) with munge: tests/scenarios/mpi.sh and slurm.sh. ssh too:
#        mpirun's launcher looks for it even when every rank is local (and
#        never runs it then). Not libhwloc-plugins: its plugins are optional
#        and drag in X11, libxml2 and ICU's 30 MB of data.
GUEST_LAYERS=(mpi)
# shellcheck disable=SC2034 # read through namerefs (_stage_layer), as are the next two
GUEST_LAYER_mpi_PACKAGES=(
	openmpi-bin libopenmpi3 openmpi-common libpmix2 libhwloc15 libfabric1
	libucx0 ucx-utils
	slurmctld slurmd slurm-client slurm-wlm-basic-plugins libslurm38 munge libmunge2
	openssh-client
)
# Commands Debian installs as alternatives (/etc/alternatives is not in any
# package's file list): each becomes a symlink to what it resolves to here.
# shellcheck disable=SC2034
GUEST_LAYER_mpi_COMMANDS=(
	mpirun mpiexec slurmctld slurmd slurmstepd
)
# Single files from other packages. Slurm's mpi/pmix dlopen()s PMIx by its
# development link, pmix2/lib/libpmix.so, which is in libpmix-dev.
# shellcheck disable=SC2034
GUEST_LAYER_mpi_FILES=(
	/usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so
)

# Copies one library or binary to the same (canonical, merged-/usr) path.
# With SKIP_LIST set (a file of ./paths), files already in the base are skipped.
_copy_file() {
	local src=$1 root=$2 dir
	dir=$(realpath "$(dirname "$src")")
	[[ -e $root$dir/$(basename "$src") ]] && return 0
	if [[ -n ${SKIP_LIST:-} ]] && grep -qxF ".$dir/$(basename "$src")" "$SKIP_LIST"; then
		return 0
	fi
	mkdir -p "$root$dir"
	cp -L "$src" "$root$dir/"
}

# Copies the shared libraries an ELF file needs. Prints missing ones to
# stderr and returns 1 so the caller decides how loud to be.
_copy_libs() {
	local f=$1 root=$2 line lib rc=0
	while IFS= read -r line; do
		case $line in
		*'=> not found'*)
			echo "guest: $f needs ${line%% *}, which is not found on the host" >&2
			rc=1
			;;
		*'=> /'*)
			lib=${line#*=> }
			_copy_file "${lib%% (*}" "$root"
			;;
		/*) _copy_file "${line%% (*}" "$root" ;;
		esac
	done < <(ldd "$f" 2>/dev/null | sed 's/^[[:space:]]*//')
	return "$rc"
}

# Inputs that decide the base layer's content.
_base_key() {
	local k=$1
	{
		cat "$(kernel_dir "$k")/package" "$(kernel_dir "$k")/release"
		cat "$GUEST_DIR/initramfs.sh"
		# Every installed package: a library update anywhere shows up.
		# shellcheck disable=SC2016 # dpkg's format, not a shell expansion
		dpkg-query -W -f '${Package} ${Version}\n'
	} | sha256sum | cut -c1-16
}

_stage_modules() {
	local k=$1 root=$2 rel src dst m f relpath
	local -a files=()
	rel=$(kernel_release "$k")
	src=$(kernel_dir "$k")/root/lib/modules/$rel
	dst=$root/usr/lib/modules/$rel
	local deps
	for m in "${GUEST_MODULES[@]}"; do
		# -C /dev/null: the host's modprobe.d (ndctl's "install libnvdimm"
		# rule) would hide modules behind install commands.
		deps=$(modprobe -C /dev/null -d "$(kernel_dir "$k")/root" -S "$rel" --show-depends "$m") ||
			die "kernel $k has no module '$m'"
		mapfile -t -O "${#files[@]}" files < <(awk '$1 == "insmod" { print $2 }' <<<"$deps")
	done
	for m in "${GUEST_MODULE_DIRS[@]}"; do
		[[ -d $src/kernel/$m ]] || continue
		mapfile -t -O "${#files[@]}" files < <(find "$src/kernel/$m" -name '*.ko*')
	done
	for f in "${files[@]}"; do
		relpath=${f#"$src"/}
		mkdir -p "$dst/$(dirname "$relpath")"
		# Decompressed on the host: xz under TCG in the guest is slow.
		case $f in
		*.ko.xz) xz -dc "$f" >"$dst/${relpath%.xz}" ;;
		*.ko.zst) zstd -qdc "$f" >"$dst/${relpath%.zst}" ;;
		*) cp "$f" "$dst/$relpath" ;;
		esac
	done
	cp "$src"/modules.{order,builtin,builtin.modinfo} "$dst/"
	depmod -b "$root" "$rel" || die "depmod for the guest's modules failed"
}

# Debian's python3 with just the modules its start-up imports (a few hundred
# KiB, not the 40 MiB standard library): enough for install.sh to show that a
# whole-host preload leaves an interpreter as it was. Listed by the host's own
# python3 started as the guest starts it (empty environment).
_stage_python() {
	local root=$1 f
	local -a mods
	_copy_file /usr/bin/python3 "$root"
	_copy_libs /usr/bin/python3 "$root" || die "libraries for python3 missing"
	mapfile -t mods < <(env -i /usr/bin/python3 -c 'import sys
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if f and f.startswith("/usr/"): print(f)')
	((${#mods[@]})) || die "python3 on the host cannot list its start-up modules"
	for f in "${mods[@]}"; do
		_copy_file "$f" "$root"
	done
	# Its start-up looks for this directory (the exec_prefix landmark).
	mkdir -p "$root$(env -i /usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("platstdlib"))')/lib-dynload"
}

# systemd, for service.sh: booted as the first process of a PID namespace
# (as a container runs it), it manages units the scenario writes, so `daxguard
# enable --unit` is seen working through systemctl. No unit files are needed:
# the scenario boots into a target of its own, and the slices are built in.
_stage_systemd() {
	local root=$1 f
	for f in /usr/lib/systemd/systemd /usr/bin/systemctl; do
		_copy_file "$f" "$root"
		_copy_libs "$f" "$root" || die "libraries for $f missing (systemd)"
	done
}

# Fills the empty directory $2 with the base layer for kernel $1.
_stage_base() {
	local k=$1 root=$2 tool path lib

	mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,tmp,run,root,etc,mnt/pmem,mnt/ext4}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	# The kernel opens /dev/console for init's stdio before init mounts devtmpfs.
	mknod -m 600 "$root/dev/console" c 5 1
	mknod -m 666 "$root/dev/null" c 1 3

	mkdir -p "$root/usr/libexec/busybox"
	cp /usr/bin/busybox "$root/usr/libexec/busybox/"
	for tool in $(/usr/bin/busybox --list); do
		[[ $tool == busybox ]] || ln -s busybox "$root/usr/libexec/busybox/$tool"
	done

	for tool in "${GUEST_TOOLS[@]}"; do
		path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$tool") ||
			die "host tool '$tool' missing (run tests/guest/prepare)"
		# Copied under its own name even where the host's is a symlink (mkfs.ext4).
		_copy_file "$path" "$root"
		_copy_libs "$path" "$root" || die "libraries for $tool missing"
	done
	ln -sf bash "$root/usr/bin/sh"
	for tool in modprobe insmod rmmod lsmod depmod modinfo; do
		ln -sf ../bin/kmod "$root/usr/sbin/$tool"
	done

	# What ldd cannot see: the verbs provider is dlopen()ed through a driver
	# file, and glibc dlopen()s libgcc_s for pthread_cancel (rping aborts).
	mkdir -p "$root/etc/libibverbs.d"
	cp /etc/libibverbs.d/rxe.driver "$root/etc/libibverbs.d/" ||
		die "/etc/libibverbs.d/rxe.driver missing (ibverbs-providers)"
	for lib in /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so \
		/usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
		[[ -e $lib ]] || die "$lib missing on the host"
		_copy_file "$lib" "$root"
		_copy_libs "$lib" "$root" || die "libraries for $lib missing"
	done

	# libv4l2 dlopen()s every plugin in this directory on v4l2_open();
	# libv4l-mplane.so shows a multi-planar-only device (vivid
	# multiplanar=2) through the single-planar API, as on any Debian host.
	for lib in /usr/lib/x86_64-linux-gnu/libv4l/plugins/libv4l-mplane.so; do
		[[ -e $lib ]] || die "$lib missing on the host (libv4l-0)"
		_copy_file "$lib" "$root"
		_copy_libs "$lib" "$root" || die "libraries for $lib missing"
	done

	_stage_python "$root"
	_stage_systemd "$root"

	cp /etc/mke2fs.conf "$root/etc/"
	printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
	# The init reruns ldconfig so project libraries (/opt/daxguard) resolve too.
	printf '%s\n' /usr/lib/x86_64-linux-gnu /usr/lib /opt/daxguard/lib /opt/daxguard/bin >"$root/etc/ld.so.conf"
	ldconfig -r "$root" || die "ldconfig for the guest failed"

	_stage_modules "$k" "$root"
}

# Prints the path of the base layer for kernel K, building it if needed.
base_initramfs() {
	local k=$1 key out
	mkdir -p "$CACHE/initramfs"
	key=$(_base_key "$k")
	out=$CACHE/initramfs/base-$k-$key.cpio
	(
		flock 9
		if [[ -s $out && -s ${out%.cpio}.list ]]; then
			touch "$out" "${out%.cpio}.list" # in use: see the clean-up below
			exit 0
		fi
		note "building the base initramfs for $k (once per kernel and host packages)"
		stage=$(mktemp -d "$CACHE/initramfs/stage.XXXXXX")
		trap 'rm -rf "$stage"' EXIT
		_stage_base "$k" "$stage"
		chmod 755 "$stage" # mktemp's 0700 would become the guest's /
		(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
			cpio --null -o -H newc --owner=0:0 --quiet) >"$out.tmp" ||
			die "cpio of the base initramfs failed"
		# The overlay skips libraries listed here.
		(cd "$stage" && find . ! -type d) >"${out%.cpio}.list"
		mv "$out.tmp" "$out"
		# Other keys for this kernel unused for a day are stale. Not at once:
		# work trees sharing the cache (DAXGUARD_TEST_CACHE) may differ in
		# their inputs and use theirs between building and booting it.
		find "$CACHE/initramfs" -maxdepth 1 -name "base-$k-*" ! -name "base-$k-$key.*" -mtime +0 -delete
	) 9>"$CACHE/initramfs/lock" >&2 || die "building the base initramfs for $k failed"
	echo "$out"
}

# The layers scenario $1 asks for, one name a line, in the order given.
guest_layers() { # scenario
	local name known
	while read -r name; do
		for known in "${GUEST_LAYERS[@]}"; do
			[[ $name == "$known" ]] && continue 2
		done
		die "$1: unknown guest-layer '$name' (known: ${GUEST_LAYERS[*]})"
	done < <(sed -n 's/^# guest-layer: *\([a-z0-9]*\) *$/\1/p' "$1")
	sed -n 's/^# guest-layer: *\([a-z0-9]*\) *$/\1/p' "$1"
}

# Inputs that decide layer $1's content on kernel $2: the base's (its file
# list decides what is skipped) and the layer's name.
_layer_key() { # name kernel
	{
		echo "layer $1"
		_base_key "$2"
	} | sha256sum | cut -c1-16
}

# Fills the empty directory $2 with layer $1's files; $3 is the base's list.
_stage_layer() { # name root base-list
	local name=$1 root=$2 f dir dst cmd path target missing deps
	local -n pkgs=GUEST_LAYER_${name}_PACKAGES cmds=GUEST_LAYER_${name}_COMMANDS
	local -n extra=GUEST_LAYER_${name}_FILES
	local -a elves=() libs=()
	local -A have=()
	for f in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$f" 2>/dev/null | grep -q 'install ok installed' ||
			die "layer $name needs the host package $f (run tests/guest/prepare)"
	done
	# What the base has (./usr/lib/...), and then what this layer has.
	while IFS= read -r f; do have[${f#.}]=1; done <"$3"
	# Copies $1 to its canonical (merged-/usr) path unless there already.
	_layer_put() {
		dir=$(realpath "$(dirname "$1")")
		dst=$dir/${1##*/}
		[[ -z ${have[$dst]:-} ]] || return 1
		have[$dst]=1
		mkdir -p "$root$dir"
	}
	while IFS= read -r f; do
		case $f in
		/usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/* | /usr/share/bug/* | \
			/lib/systemd/* | /usr/lib/systemd/* | /etc/init.d/* | /etc/logrotate.d/* | /etc/default/*) continue ;;
		esac
		[[ -L $f || -f $f ]] || continue
		# An alternative's link would dangle: GUEST_LAYER_*_COMMANDS.
		[[ -L $f && $(readlink "$f") == /etc/alternatives/* ]] && continue
		_layer_put "$f" || continue
		if [[ -L $f ]]; then
			cp -P "$f" "$root$dst"
		else
			cp "$f" "$root$dst"
			[[ $(head -c 4 "$f") == $'\x7fELF' ]] && elves+=("$f")
		fi
	done < <(dpkg -L "${pkgs[@]}" | LC_ALL=C sort -u)
	for f in "${extra[@]}"; do
		[[ -e $f ]] || die "layer $name needs $f on the host (run tests/guest/prepare)"
		_layer_put "$f" || continue
		cp -P "$f" "$root$dst"
	done
	for cmd in "${cmds[@]}"; do
		path=$(PATH=/usr/sbin:/usr/bin command -v "$cmd") || die "layer $name: no command $cmd on the host"
		target=$(realpath "$path")
		[[ -e $root$target ]] || die "layer $name: $cmd resolves to $target, which no package of the layer has"
		mkdir -p "$root$(dirname "$path")"
		ln -sfn "$target" "$root$path"
	done
	# Every library the ELF files need, resolved by the host's ldd in one
	# pass. Plugins needing a library the host lacks (Slurm's GPU, Lua and
	# Cray ones, say) stay unloadable, as on the host.
	deps=$(ldd "${elves[@]}" 2>/dev/null)
	mapfile -t libs < <(sed -n 's/^[[:space:]]*[^ ]* => \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' <<<"$deps" |
		LC_ALL=C sort -u)
	for f in "${libs[@]}"; do
		_layer_put "$f" || continue
		cp -L "$f" "$root$dst"
	done
	missing=$(grep -c '=> not found' <<<"$deps")
	((missing == 0)) || note "layer $name: $missing libraries of its ${#elves[@]} ELF files are not on the host (plugins left unloadable)"
	unset -f _layer_put
}

# Prints the path of layer NAME for kernel K, building it if needed. Its
# file list (beside it, .list) holds the base's files and its own.
layer_initramfs() { # name kernel base
	local name=$1 k=$2 base=$3 key out
	key=$(_layer_key "$name" "$k")
	out=$CACHE/initramfs/layer-$name-$k-$key.cpio
	(
		flock 9
		if [[ -s $out && -s ${out%.cpio}.list ]]; then
			touch "$out" "${out%.cpio}.list"
			exit 0
		fi
		note "building the $name layer for $k (once per kernel and host packages)"
		stage=$(mktemp -d "$CACHE/initramfs/stage.XXXXXX")
		trap 'rm -rf "$stage"' EXIT
		_stage_layer "$name" "$stage" "${base%.cpio}.list"
		chmod 755 "$stage"
		(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
			cpio --null -o -H newc --owner=0:0 --quiet) >"$out.tmp" ||
			die "cpio of the $name layer failed"
		{
			cat "${base%.cpio}.list"
			(cd "$stage" && find . ! -type d)
		} >"${out%.cpio}.list"
		mv "$out.tmp" "$out"
		find "$CACHE/initramfs" -maxdepth 1 -name "layer-$name-$k-*" ! -name "layer-$name-$k-$key.*" -mtime +0 -delete
	) 9>"$CACHE/initramfs/lock" >&2 || die "building the $name layer for $k failed"
	echo "$out"
}

# Builds the overlay layer into $2 for mode $1 (run|shell). For run, $3 is the
# scenario and the rest its arguments. BASE_LIST names the base's file list.
overlay_initramfs() {
	local mode=$1 out=$2 root f
	shift 2
	root=$(mktemp -d "${out%/*}/overlay.XXXXXX")
	mkdir -p "$root"/opt/daxguard/{bin,lib,guest,run}
	install -m 755 "$GUEST_DIR/init" "$root/init"
	install -m 644 "$GUEST_DIR/lib.sh" "$root/opt/daxguard/guest/lib.sh"
	if [[ -d $REPO_ROOT/tests/scenarios ]]; then
		cp -r "$REPO_ROOT/tests/scenarios" "$root/opt/daxguard/scenarios"
	fi

	# Project artifacts, when built; scenarios check for what they need.
	local -a artifacts=()
	if [[ -f $REPO_ROOT/target/release/libdaxguard.so ]]; then
		install -m 755 "$REPO_ROOT/target/release/libdaxguard.so" "$root/opt/daxguard/lib/"
		artifacts+=("$root/opt/daxguard/lib/libdaxguard.so")
	fi
	if [[ -f $REPO_ROOT/target/release/daxguard ]]; then
		install -m 755 "$REPO_ROOT/target/release/daxguard" "$root/opt/daxguard/bin/"
		artifacts+=("$root/opt/daxguard/bin/daxguard")
	fi
	for f in "$REPO_ROOT"/target/c/* "$REPO_ROOT"/target/guest-extra/*; do
		[[ -f $f ]] || continue
		case $f in
		*/target/c/*) [[ -x $f || $f == *.so ]] || continue ;;
		esac
		install -m 755 "$f" "$root/opt/daxguard/bin/"
		artifacts+=("$root/opt/daxguard/bin/${f##*/}")
	done
	# The Slurm SPANK plugin and TaskProlog (tools/dist/spank), for
	# slurm.sh. The plugin's spank_* symbols come from slurmstepd and srun.
	for f in "$REPO_ROOT"/target/spank/*; do
		[[ -f $f ]] || continue
		install -m 755 "$f" "$root/opt/daxguard/lib/"
	done
	# The Debian package (tools/dist/build-deb), for install.sh: the .deb,
	# dpkg to install it (GNU tar: dpkg-deb's options are not busybox's), and
	# the host's dpkg records of the packages it depends on, whose libraries
	# the base layer copied from the host (so dpkg -i needs no --force).
	local -a debs=("$REPO_ROOT"/target/debian/daxguard_*.deb)
	if [[ -f ${debs[-1]} ]]; then
		mkdir -p "$root/opt/daxguard/deb"
		cp "${debs[-1]}" "$root/opt/daxguard/deb/"
		local tool dep
		for tool in dpkg dpkg-deb dpkg-split dpkg-query tar; do
			f=$(realpath "$(command -v "$tool")") || die "host tool '$tool' missing (dpkg)"
			_copy_file "$f" "$root"
			artifacts+=("$root$f")
		done
		# Their file lists too: they own /lib, /usr/share... as on any Debian
		# system, so removing daxguard does not take those away.
		mkdir -p "$root/opt/daxguard/deb/info"
		for dep in $(dpkg-deb -f "${debs[-1]}" Depends | tr ',' '\n' | awk '{ print $1 }'); do
			dpkg-query -s "$dep" || die "the package depends on $dep, which the host lacks"
			echo
			for f in /var/lib/dpkg/info/"$dep".list /var/lib/dpkg/info/"$dep":*.list; do
				if [[ -f $f ]]; then cp "$f" "$root/opt/daxguard/deb/info/"; fi
			done
		done >"$root/opt/daxguard/deb/status"
	fi
	for f in "${artifacts[@]}"; do
		# Non-ELF files (scripts) have no libraries; a missing one is only
		# a warning here, the scenario using the file will fail visibly.
		SKIP_LIST=${BASE_LIST:-} _copy_libs "$f" "$root" || true
	done

	echo "$mode" >"$root/opt/daxguard/run/mode"
	if [[ $mode == run ]]; then
		local scenario=$1 abs
		shift
		abs=$(realpath "$scenario")
		# Scenarios from tests/scenarios run from their copy there, so
		# `source "$(dirname "$0")/../guest/lib.sh"` works in and out of the guest.
		if [[ $abs == "$REPO_ROOT/tests/scenarios/"* ]]; then
			echo "/opt/daxguard/scenarios/${abs#"$REPO_ROOT/tests/scenarios/"}" >"$root/opt/daxguard/run/scenario"
		else
			install -m 755 "$abs" "$root/opt/daxguard/run/${abs##*/}"
			echo "/opt/daxguard/run/${abs##*/}" >"$root/opt/daxguard/run/scenario"
		fi
		# One argument per NUL-terminated record, read back with mapfile -d ''.
		if (($#)); then printf '%s\0' "$@"; fi >"$root/opt/daxguard/run/args"
	fi
	# Extra settings for the init, written by the caller (timeout, tty size).
	if [[ -n ${OVERLAY_ENV:-} ]]; then
		printf '%s\n' "$OVERLAY_ENV" >"$root/opt/daxguard/run/env"
	fi

	chmod 755 "$root" # the overlay's "." entry sets the guest's / mode
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) >"$out" ||
		die "cpio of the overlay failed"
	rm -rf "$root"
}
