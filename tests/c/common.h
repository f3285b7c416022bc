/* Helpers shared by the daxguard C test programs. */
#ifndef DAXGUARD_TEST_COMMON_H
#define DAXGUARD_TEST_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
