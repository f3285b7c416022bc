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
