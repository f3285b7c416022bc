/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The few kernel types watch.bpf.c reads, written by hand instead of a
 * generated vmlinux.h, so the build does not depend on the build host's
 * kernel. Each struct lists only the fields used, and carries
 * preserve_access_index: clang records every access as a CO-RE relocation,
 * and libbpf resolves the offsets against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) at load time. Fields that moved into anonymous
 * unions (vm_start, vm_flags, f_path in 6.x) still match by name.
 */
#ifndef DAXGUARD_WATCH_KERNEL_H
#define DAXGUARD_WATCH_KERNEL_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* include/uapi/linux/bpf.h: the values bpf_helpers.h and the maps use. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

#define BPF_ANY 0

/* uapi errno values (include/uapi/asm-generic/errno*.h). */
#define EFAULT 14
#define EOPNOTSUPP 95

/* include/linux/mm.h: VMA flags (#defines, stable since 2.6). */
#define VM_WRITE 0x00000002UL
#define VM_SHARED 0x00000008UL
#define VM_PFNMAP 0x00000400UL
#define VM_IO 0x00004000UL

/* include/linux/fs.h: inode flag for DAX (1 << 13 since 4.0, a #define). */
#define S_DAX 8192
#define S_IFMT 00170000
#define S_IFCHR 0020000

struct qstr {
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct hlist_bl_node {
	struct hlist_bl_node **pprev;
} __attribute__((preserve_access_index));

struct dentry {
	struct hlist_bl_node d_hash;
	struct dentry *d_parent;
	struct qstr d_name;
} __attribute__((preserve_access_index));

struct file_system_type {
	const char *name;
} __attribute__((preserve_access_index));

struct super_block {
	__u32 s_dev;
	char s_id[32];
	struct file_system_type *s_type;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct dentry *mnt_root;
	struct super_block *mnt_sb;
} __attribute__((preserve_access_index));

/* fs/mount.h: struct vfsmount is embedded in it as `mnt`. */
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
	int mnt_id;
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct inode {
	unsigned short i_mode;
	unsigned int i_flags;
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_end;
	unsigned long vm_flags;
	unsigned long vm_pgoff;
	struct file *vm_file;
} __attribute__((preserve_access_index));

struct mm_struct {
	int map_count;
} __attribute__((preserve_access_index));

struct fs_struct {
	struct path root;
} __attribute__((preserve_access_index));

struct task_struct {
	struct mm_struct *mm;
	struct fs_struct *fs;
} __attribute__((preserve_access_index));

/*
 * arch/x86/include/asm/ptrace.h: a kprobe's context. x86-64 passes the
 * first arguments in di, si, dx, cx (then r8, r9, the stack) and returns
 * in ax.
 */
struct pt_regs {
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
} __attribute__((preserve_access_index));

#endif
