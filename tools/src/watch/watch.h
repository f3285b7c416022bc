/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The one record watch.bpf.c sends and the loader decodes (decode.rs reads
 * it through the skeleton's generated `types::watch_event`, which is this
 * struct as the BPF object's BTF describes it). Fixed-width fields only.
 *
 * A record is sent without the unused tail of `path`: userspace copies what
 * arrived into a zeroed struct, so a short record is a valid one.
 */
#ifndef DAXGUARD_WATCH_H
#define DAXGUARD_WATCH_H

#define WATCH_COMM_LEN 16
#define WATCH_FSTYPE_LEN 16
#define WATCH_SOURCE_LEN 32	/* super_block.s_id */
#define WATCH_STACK_DEPTH 16	/* kernel return addresses kept */
#define WATCH_PATH_LEN 4096	/* where the last component may start (a power of 2) */
#define WATCH_NAME_LEN 256	/* NAME_MAX + NUL: the most one component takes */
#define WATCH_PATH_DEPTH 40	/* components and mount crossings walked */

/* Which GUP entry point returned the refusal. */
enum watch_hook {
	WATCH_HOOK_FAST = 0,	 /* pin_user_pages_fast() */
	WATCH_HOOK_PIN = 1,	 /* pin_user_pages() */
	WATCH_HOOK_REMOTE = 2,	 /* pin_user_pages_remote() */
	WATCH_HOOK_UNLOCKED = 3, /* pin_user_pages_unlocked() */
};

/* What bpf_find_vma() found at the refused address. */
enum watch_vma {
	WATCH_VMA_FOUND = 0,	/* the VMA: vm_* and the file fields are set */
	WATCH_VMA_NONE = 1,	/* nothing mapped there any more */
	WATCH_VMA_BUSY = 2,	/* the mmap lock was contended (trylock) */
	WATCH_VMA_OTHER_MM = 3, /* a remote pin of another process's memory */
};

/* Why the refusal is one: the rule of check_vma_flags() it matches. */
enum watch_reason {
	WATCH_REASON_FSDAX = 0,		/* -EOPNOTSUPP: FOLL_LONGTERM on fs-DAX */
	WATCH_REASON_WRITABLE_FILE = 1, /* -EFAULT: 6.5+, writable shared file mapping */
};

/* Per-CPU counters (the `stats` map), summed by the loader. */
enum watch_stat {
	WATCH_STAT_SENT = 0,	   /* records put in the ring buffer */
	WATCH_STAT_DROPPED = 1,	   /* refusals the ring buffer had no room for */
	WATCH_STAT_UNRESOLVED = 2, /* long-term EFAULTs whose VMA could not be examined */
	WATCH_STAT_CALLS = 3,	   /* every hooked call (only with count_calls) */
	WATCH_STAT_MAX = 4,
};

struct watch_event {
	__u64 boot_ns;	/* bpf_ktime_get_boot_ns() at the refusal */
	__u64 start;	/* the refused call's first address */
	__u64 nr_pages; /* pages asked for in that call */
	__u64 vm_start; /* the VMA at `start` (vma == WATCH_VMA_FOUND) */
	__u64 vm_end;
	__u64 vm_flags;
	__u64 vm_pgoff;
	__u64 ino;
	__u64 stack[WATCH_STACK_DEPTH]; /* bpf_get_stack(): innermost first */
	__s32 ret;			/* the negative errno returned */
	__u32 gup_flags;
	__u32 tgid; /* the process */
	__u32 tid;
	__u32 uid;
	__u32 hook;   /* enum watch_hook */
	__u32 vma;    /* enum watch_vma */
	__u32 reason; /* enum watch_reason */
	__u32 dev;    /* super_block.s_dev, the kernel's encoding (major << 20 | minor) */
	__u32 i_mode;
	__u32 i_flags;
	__s32 stack_bytes; /* bpf_get_stack()'s answer: bytes, or -errno */
	__s32 mnt_id;
	__u16 path_len;	  /* bytes used in path */
	__u16 path_parts; /* components in path */
	__u16 mnt_parts;  /* of those, how many lie inside the file's mount */
	__u8 path_complete;
	__u8 deleted; /* the file was unlinked (d_unlinked) */
	char comm[WATCH_COMM_LEN];
	char fstype[WATCH_FSTYPE_LEN];
	char source[WATCH_SOURCE_LEN];
	/* Path components, leaf first, each NUL-terminated: path_len bytes. */
	char path[WATCH_PATH_LEN + WATCH_NAME_LEN];
};

#endif
