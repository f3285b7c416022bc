/* Helpers shared by the daxguard C test programs. */
#ifndef DAXGUARD_TEST_COMMON_H
#define DAXGUARD_TEST_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Ends the program on a failure of its own setup (not a registration being
 * judged): "<program>: <what>: <strerror>", exit status 2. The including file
 * defines _GNU_SOURCE, for program_invocation_short_name.
 */
static inline void fatal(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(2);
}

/*
 * errno -> "EOPNOTSUPP". Our own table rather than strerrorname_np() (glibc
 * 2.32+) so binaries built on the host also run in an older guest. Only one
 * name per value: EOPNOTSUPP == ENOTSUP and EAGAIN == EWOULDBLOCK on Linux.
 */
static inline const char *errname(int e)
{
	static char unknown[16];

	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG)
	E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST)
	E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE)
	E(ENOTTY) E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(ERANGE) E(ENOSYS)
	E(EOVERFLOW) E(EOPNOTSUPP) E(EPROTONOSUPPORT) E(ENOBUFS) E(ETIMEDOUT)
	E(EHWPOISON)
#undef E
	}
	snprintf(unknown, sizeof(unknown), "E%d", e);
	return unknown;
}

/* "4096", "64K", "2M", "1G" (powers of 1024) -> bytes; 0 on a bad string. */
static inline size_t parse_size(const char *s)
{
	char *end;
	unsigned long long n;

	if (!s || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	n = strtoull(s, &end, 0);
	if (errno)
		return 0;
	switch (*end) {
	case 'K': case 'k': n <<= 10; end++; break;
	case 'M': case 'm': n <<= 20; end++; break;
	case 'G': case 'g': n <<= 30; end++; break;
	}
	return *end ? 0 : (size_t)n;
}

/* A registration's outcome as the programs print it: "ok" or the errno name. */
static inline const char *answer(int e)
{
	return e ? errname(e) : "ok";
}

#ifdef DAXGUARD_WANT_UNVERIFIED
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * A MAP_SHARED file mapping daxguard cannot verify, for hosts without
 * fs-DAX: a file on a tmpfs mounted in a private mount namespace, then
 * lazily unmounted (its path names nothing, its device is in no mountinfo
 * line), with CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE dropped from the
 * effective set (no /proc/self/map_files). daxguard's verdict is
 * "unverified", refused by default like fs-DAX ("could not verify"), before
 * the provider is called. Needs root; the whole process stays in the new
 * namespace without those two capabilities. MAP_FAILED with errno on failure.
 */
static inline void *map_unverified(size_t len)
{
	char dir[] = "/tmp/daxguard-unverified.XXXXXX", path[64];
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2];
	void *p;
	int fd;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return MAP_FAILED;
	if (!mkdtemp(dir) || mount("none", dir, "tmpfs", 0, "size=64m") < 0)
		return MAP_FAILED;
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		return MAP_FAILED;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED || umount2(dir, MNT_DETACH) < 0 || rmdir(dir) < 0)
		return MAP_FAILED;
	if (syscall(SYS_capget, &hdr, caps) < 0)
		return MAP_FAILED;
	caps[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
	caps[CAP_CHECKPOINT_RESTORE / 32].effective &= ~(1u << (CAP_CHECKPOINT_RESTORE % 32));
	if (syscall(SYS_capset, &hdr, caps) < 0)
		return MAP_FAILED;
	return p;
}
#endif

#ifdef INFINIBAND_VERBS_H
/* Opens the RDMA device called `name`; exit 2 if there is none. */
static inline struct ibv_context *open_device(const char *name)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	struct ibv_context *ctx = NULL;

	for (int i = 0; list && i < n && !ctx; i++)
		if (strcmp(ibv_get_device_name(list[i]), name) == 0 && !(ctx = ibv_open_device(list[i])))
			fatal("ibv_open_device");
	if (list)
		ibv_free_device_list(list); /* an open context keeps its device */
	if (!ctx) {
		fprintf(stderr, "%s: RDMA device '%s' not found (%d devices)\n", program_invocation_short_name, name, n);
		exit(2);
	}
	return ctx;
}

/* A protection domain on the RDMA device called `name`; exit 2 on failure. */
static inline struct ibv_pd *open_pd(const char *name)
{
	struct ibv_pd *pd = ibv_alloc_pd(open_device(name));

	if (!pd)
		fatal("ibv_alloc_pd");
	return pd;
}
#endif

#endif
