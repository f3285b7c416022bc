// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * daxguard watch: every long-term pin the kernel refuses, as it happens.
 *
 * Every long-term pin goes through GUP with FOLL_LONGTERM, and the refusal
 * is check_vma_flags() in mm/gup.c: -EOPNOTSUPP for fs-DAX, and from 6.5
 * -EFAULT for a writable pin of a shared file mapping that needs dirty
 * tracking. check_vma_flags() is static and may be inlined, so this program
 * waits at the exported entry points instead, with fexit (BPF trampolines):
 *
 *   pin_user_pages_fast()      RDMA ib_umem_get(), V4L2 get_vaddr_frames(),
 *                              io_uring io_pin_pages() (6.3+)
 *   pin_user_pages()           io_uring io_pin_pages() (6.1), XDP umem
 *   pin_user_pages_remote()    VFIO type1 vaddr_get_pfns(), iommufd
 *   pin_user_pages_unlocked()  the remaining FOLL_LONGTERM callers
 *
 * Where no trampoline can take a function (pin_user_pages_remote() on 6.1:
 * 7 arguments), a kprobe and kretprobe pair does the same (at the end).
 *
 * A successful pin costs the trampoline and the first test below: the
 * return value is not negative, and nothing else is read. A refusal is
 * recognised by its errno and FOLL_LONGTERM in the call's flags, then
 * described in a per-CPU scratch record: who (pid, tid, uid, comm), the
 * kernel stack (the loader names the consumer from it), and, under the
 * mmap lock bpf_find_vma() takes, the VMA at the refused address with its
 * file: device, inode, mount and the path, walked up the dentry tree here
 * in the kernel, so it is right even if the process unmaps or exits before
 * the loader reads it. The record goes to the ring buffer; when that is
 * full, a per-CPU counter says so (`dropped N`), so nothing is lost silently.
 *
 * The kernel types are in kernel.h (hand-written, CO-RE), the record in
 * watch.h (shared with the loader).
 */
#include "kernel.h"
#define offsetof(type, member) __builtin_offsetof(type, member)
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "watch.h"

/* GPL-compatible: bpf_probe_read_kernel() and bpf_get_stack() are GPL-only helpers. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * Set by the loader before the program is loaded. FOLL_* values changed
 * (an enum since 6.3, FOLL_LONGTERM 0x10000 before, 0x100 after): the
 * loader reads them from the running kernel's BTF.
 */
const volatile __u32 foll_longterm = 0;
const volatile __u32 foll_write = 1;
/* Filters (0: any). */
const volatile __u32 targ_tgid = 0;
const volatile __s32 targ_errno = 0;
const volatile bool filter_comm = false;
const volatile char targ_comm[WATCH_COMM_LEN] = {};
/* Count every hooked call in WATCH_STAT_CALLS (benchmarks prove the hook ran). */
const volatile bool count_calls = false;

/*
 * 4 MiB: about 7,000 refusals (a record is some 600 bytes with a short
 * path) before the loader must have read any. Pages are touched only as
 * records land, so a quiet host keeps little of it resident.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* One record being filled per CPU: too big for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct watch_event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WATCH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Never used: makes `struct watch_event` part of the skeleton's types. */
struct watch_event watch_event_layout = {};

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &stat);

	if (n)
		*n += 1;
}

static __always_inline bool comm_matches(const char *comm)
{
	for (int i = 0; i < WATCH_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

/* struct mount embeds struct vfsmount as `mnt` (fs/mount.h: real_mount()). */
static __always_inline struct mount *real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

/*
 * Where the path walk stands. It lives in a map, not in registers: what
 * the verifier reads back from a map is an unknown value, so every step of
 * the loop below looks the same to it and is checked once, not once per
 * path through the steps before (6.1's verifier gave up at 1M
 * instructions on the register version).
 */
struct walk {
	__u64 dentry; /* struct dentry *: the next component to name */
	__u64 vfsmnt; /* struct vfsmount *: the mount it belongs to */
	__u64 root;   /* the process's root (fs->root): where d_path() stops */
	__u64 root_mnt;
	__u32 crossed; /* left the file's own mount */
	__u32 done;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk);
} walks SEC(".maps");

/*
 * One step up from w->dentry, like prepend_path() behind d_path(): at the
 * root of a mount, cross to its mount point in the parent mount (naming
 * nothing); else name the dentry and go to its d_parent. Components are
 * stored leaf first, each NUL-terminated; the loader joins them in
 * reverse. mnt_parts counts those inside the file's own mount, so the
 * rest name its mount point. bpf_d_path() would do all of this in one
 * call, but the verifier allows it only in a few hooks, not here.
 */
static __always_inline void walk_step(struct watch_event *e, struct walk *w)
{
	struct dentry *dentry = (void *)w->dentry;
	struct vfsmount *vfsmnt = (void *)w->vfsmnt;
	struct mount *mnt = real_mount(vfsmnt);
	struct dentry *parent;
	const unsigned char *name;
	__u32 off = e->path_len;
	long n;

	if (w->dentry == w->root && w->vfsmnt == w->root_mnt) {
		e->path_complete = 1;
		w->done = 1;
		return;
	}
	if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (!w->crossed) {
			e->mnt_parts = e->path_parts;
			w->crossed = 1;
		}
		if (up == mnt) { /* the namespace's root mount */
			e->path_complete = 1;
			w->done = 1;
			return;
		}
		w->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		w->vfsmnt = (__u64)up + bpf_core_field_offset(struct mount, mnt);
		return;
	}
	parent = BPF_CORE_READ(dentry, d_parent);
	if (parent == dentry) { /* a root that is no mount's: a detached tree */
		e->path_complete = 1;
		w->done = 1;
		return;
	}
	if (off > WATCH_PATH_LEN - WATCH_NAME_LEN) { /* too long: path_complete stays 0 */
		w->done = 1;
		return;
	}
	name = BPF_CORE_READ(dentry, d_name.name);
	/*
	 * The mask changes nothing (off <= 3840 here) but bounds the register
	 * clang indexes with, which need not be the one it compared (the
	 * barrier keeps clang from dropping the mask as redundant); path has
	 * WATCH_NAME_LEN bytes of room past WATCH_PATH_LEN for that.
	 */
	barrier_var(off);
	off &= WATCH_PATH_LEN - 1;
	n = bpf_probe_read_kernel_str(&e->path[off], WATCH_NAME_LEN, name);
	if (n <= 0 || n > WATCH_NAME_LEN) {
		w->done = 1;
		return;
	}
	e->path_len = off + n;
	e->path_parts += 1;
	w->dentry = (__u64)parent;
}

/* The file's path as the process sees it, its mount and whether it was unlinked. */
static __always_inline void walk_path(struct watch_event *e, struct task_struct *task, struct file *file)
{
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(file, f_path.mnt);
	__u32 zero = 0;
	struct walk *w = bpf_map_lookup_elem(&walks, &zero);

	if (!w)
		return;
	e->mnt_id = BPF_CORE_READ(real_mount(vfsmnt), mnt_id);
	/* d_unlinked(): unhashed and not a root. */
	e->deleted = !BPF_CORE_READ(dentry, d_hash.pprev) && BPF_CORE_READ(dentry, d_parent) != dentry;
	w->dentry = (__u64)dentry;
	w->vfsmnt = (__u64)vfsmnt;
	w->root = (__u64)BPF_CORE_READ(task, fs, root.dentry);
	w->root_mnt = (__u64)BPF_CORE_READ(task, fs, root.mnt);
	w->crossed = 0;
	w->done = 0;
	for (int i = 0; i < WATCH_PATH_DEPTH; i++) {
		walk_step(e, w);
		if (w->done)
			break;
	}
	/* Ended inside the file's own mount (the root file system, a chroot). */
	if (!w->crossed)
		e->mnt_parts = e->path_parts;
}

/* bpf_find_vma()'s callback: runs with the mmap lock held, vma covers the address. */
static long read_vma(struct task_struct *task, struct vm_area_struct *vma, void *unused)
{
	__u32 zero = 0;
	struct watch_event *e = bpf_map_lookup_elem(&scratch, &zero);
	struct super_block *sb;
	struct inode *inode;
	struct file *file;

	if (!e)
		return 1;
	e->vm_start = BPF_CORE_READ(vma, vm_start);
	e->vm_end = BPF_CORE_READ(vma, vm_end);
	e->vm_flags = BPF_CORE_READ(vma, vm_flags);
	e->vm_pgoff = BPF_CORE_READ(vma, vm_pgoff);
	file = BPF_CORE_READ(vma, vm_file);
	if (!file)
		return 0;
	inode = BPF_CORE_READ(file, f_inode);
	sb = BPF_CORE_READ(inode, i_sb);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->i_mode = BPF_CORE_READ(inode, i_mode);
	e->i_flags = BPF_CORE_READ(inode, i_flags);
	e->dev = BPF_CORE_READ(sb, s_dev);
	bpf_core_read_str(e->source, sizeof(e->source), &sb->s_id);
	bpf_probe_read_kernel_str(e->fstype, sizeof(e->fstype), BPF_CORE_READ(sb, s_type, name));
	walk_path(e, task, file);
	return 0;
}

/*
 * The refusal check_vma_flags() made, as far as the VMA shows it: -EFAULT
 * is also GUP's answer for a hole or a read-only mapping, so only a
 * writable pin of a shared, writable file mapping (not I/O memory) is the
 * 6.5+ dirty-tracking rule. -EOPNOTSUPP has no other cause in GUP.
 */
static __always_inline bool is_writable_file_refusal(struct watch_event *e, __u32 gup_flags)
{
	if (!(gup_flags & foll_write) || !e->i_mode)
		return false;
	if (!(e->vm_flags & VM_SHARED) || !(e->vm_flags & VM_WRITE))
		return false;
	return !(e->vm_flags & (VM_IO | VM_PFNMAP));
}

/*
 * A call that returned ret < 0: a refusal if the errno is one of
 * check_vma_flags()'s and the call was long-term. ctx is the fexit's or the
 * kretprobe's, for bpf_get_stack(); mm matters only for remote pins.
 */
static __always_inline int refused(void *ctx, enum watch_hook hook, int ret, __u64 start, __u64 nr, __u64 flags,
				   __u64 mm)
{
	struct task_struct *task;
	struct watch_event *e;
	__u64 pid_tgid, size;
	__u32 zero = 0;
	long found;
	int err;

	err = -ret;
	if (err != EOPNOTSUPP && err != EFAULT)
		return 0;
	if (!(flags & foll_longterm))
		return 0;
	if (targ_errno && err != targ_errno)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (targ_tgid && (pid_tgid >> 32) != targ_tgid)
		return 0;

	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (filter_comm && !comm_matches(e->comm))
		return 0;
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->start = start;
	e->nr_pages = nr;
	e->ret = ret;
	e->gup_flags = flags;
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->hook = hook;
	/* Cleared here: read_vma() fills them only when there is a file. */
	e->vm_start = e->vm_end = e->vm_flags = e->vm_pgoff = e->ino = 0;
	e->dev = e->i_mode = e->i_flags = 0;
	e->mnt_id = 0;
	e->path_len = e->path_parts = e->mnt_parts = 0;
	e->path_complete = e->deleted = 0;
	e->fstype[0] = e->source[0] = 0;

	task = bpf_get_current_task_btf();
	if (hook == WATCH_HOOK_REMOTE && mm != (__u64)BPF_CORE_READ(task, mm)) {
		e->vma = WATCH_VMA_OTHER_MM;
		goto classify;
	}
	found = bpf_find_vma(task, start, read_vma, &zero, 0);
	e->vma = found == 0 ? WATCH_VMA_FOUND : found == -16 /* EBUSY */ ? WATCH_VMA_BUSY : WATCH_VMA_NONE;

classify:
	if (err == EOPNOTSUPP) {
		e->reason = WATCH_REASON_FSDAX;
	} else if (e->vma != WATCH_VMA_FOUND && e->vma != WATCH_VMA_NONE) {
		/* An EFAULT whose VMA cannot be seen: counted, never guessed. */
		count(WATCH_STAT_UNRESOLVED);
		return 0;
	} else if (e->vma == WATCH_VMA_FOUND && is_writable_file_refusal(e, flags)) {
		e->reason = WATCH_REASON_WRITABLE_FILE;
	} else {
		return 0;
	}

	e->stack_bytes = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	size = offsetof(struct watch_event, path) + e->path_len;
	if (size > sizeof(*e))
		size = sizeof(*e);
	if (bpf_ringbuf_output(&events, e, size, 0))
		count(WATCH_STAT_DROPPED);
	else
		count(WATCH_STAT_SENT);
	return 0;
}

/* fexit, past the return-value test: the arguments, read from the trampoline's frame. */
static __always_inline int on_failure(void *ctx, enum watch_hook hook, int ret, __u32 arg_start, __u32 arg_nr,
				      __u32 arg_flags)
{
	__u64 start = 0, nr = 0, flags = 0, mm = 0;

	bpf_get_func_arg(ctx, arg_flags, &flags);
	bpf_get_func_arg(ctx, arg_start, &start);
	bpf_get_func_arg(ctx, arg_nr, &nr);
	if (hook == WATCH_HOOK_REMOTE)
		bpf_get_func_arg(ctx, 0, &mm);
	return refused(ctx, hook, ret, start, nr, flags, mm);
}

/*
 * fexit: every successful pin ends at the sign test, before anything else
 * is read or zeroed (the argument slots are on_failure()'s). int:
 * pin_user_pages_fast() returns int.
 */
static __always_inline int on_return(void *ctx, enum watch_hook hook, __u32 arg_start, __u32 arg_nr,
				     __u32 arg_flags)
{
	__u64 ret = 0;

	if (count_calls)
		count(WATCH_STAT_CALLS);
	bpf_get_func_ret(ctx, &ret);
	if ((int)ret >= 0)
		return 0;
	return on_failure(ctx, hook, (int)ret, arg_start, arg_nr, arg_flags);
}

/* Argument positions are stable across 6.1-6.18; only trailing ones (vmas) went. */
SEC("fexit/pin_user_pages_fast")
int watch_fast(void *ctx)
{
	return on_return(ctx, WATCH_HOOK_FAST, 0, 1, 2);
}

SEC("fexit/pin_user_pages")
int watch_pin(void *ctx)
{
	return on_return(ctx, WATCH_HOOK_PIN, 0, 1, 2);
}

SEC("fexit/pin_user_pages_remote")
int watch_remote(void *ctx)
{
	return on_return(ctx, WATCH_HOOK_REMOTE, 1, 2, 3);
}

SEC("fexit/pin_user_pages_unlocked")
int watch_unlocked(void *ctx)
{
	return on_return(ctx, WATCH_HOOK_UNLOCKED, 0, 1, 3);
}

/*
 * Where a trampoline cannot reach: pin_user_pages_remote() takes 7
 * arguments before 6.5 (mm, start, nr_pages, gup_flags, pages, vmas,
 * locked) and x86's trampolines at most 6 before 6.6, so on 6.1 the loader
 * attaches this kprobe and kretprobe pair instead. The kprobe keeps the
 * arguments of the call under way, by thread; the kretprobe takes them
 * back with the return value. Every call leaves its arguments, long-term
 * or not, so a kretprobe that missed a return cannot pair a later call
 * with stale ones.
 */
struct remote_call {
	__u64 mm;
	__u64 start;
	__u64 nr;
	__u64 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* threads inside pin_user_pages_remote() at once */
	__type(key, __u32);
	__type(value, struct remote_call);
} remote_calls SEC(".maps");

SEC("kprobe/pin_user_pages_remote")
int watch_remote_entry(struct pt_regs *ctx)
{
	struct remote_call c = { .mm = ctx->di, .start = ctx->si, .nr = ctx->dx, .flags = ctx->cx };
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (count_calls)
		count(WATCH_STAT_CALLS);
	bpf_map_update_elem(&remote_calls, &tid, &c, BPF_ANY);
	return 0;
}

SEC("kretprobe/pin_user_pages_remote")
int watch_remote_return(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct remote_call *p = bpf_map_lookup_elem(&remote_calls, &tid);
	struct remote_call c;
	long ret = ctx->ax;

	if (!p)
		return 0;
	c = *p;
	bpf_map_delete_elem(&remote_calls, &tid);
	if (ret >= 0)
		return 0;
	return refused(ctx, WATCH_HOOK_REMOTE, (int)ret, c.start, c.nr, c.flags, c.mm);
}
