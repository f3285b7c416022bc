/*
 * capi: the daxguard_check() C API from a C program linked with -ldaxguard.
 * Prints one line per check, then the version:
 *
 *   CHECK <name> rc=<rc> errno=<NAME> why=<text to end of line>
 *   VERSION <daxguard_version()>
 *   INTERCEPTION <daxguard_interception()>
 *
 * Checks: `anon` (private anonymous pages), `shm` (a MAP_SHARED file in
 * /dev/shm, tmpfs), `overflow` (addr 0xffffffffffff0000, len 0x20000).
 * errno is printed as 0 unless rc is DAXGUARD_ERROR.
 * Exit 0; 2 when a setup call fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daxguard.h"

#include "common.h"

static void check(const char *name, const void *addr, size_t len)
{
	char why[512];
	int rc, err;

	/* Poison both so the test sees that daxguard_check() set them. */
	memset(why, 'X', sizeof(why));
	why[sizeof(why) - 1] = 0;
	errno = 0;
	rc = daxguard_check(addr, len, why, sizeof(why));
	err = rc == DAXGUARD_ERROR ? errno : 0;
	printf("CHECK %s rc=%d errno=%s why=%s\n", name, rc, err ? errname(err) : "0", why);
}

int main(void)
{
	size_t len = 2 * (size_t)sysconf(_SC_PAGESIZE);
	char path[] = "/dev/shm/daxguard-capi-XXXXXX";
	void *anon, *shm;
	int fd;

	anon = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		fatal("mmap anon");
	fd = mkstemp(path);
	if (fd < 0)
		fatal(path);
	if (ftruncate(fd, (off_t)len) < 0)
		fatal("ftruncate");
	shm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (shm == MAP_FAILED)
		fatal("mmap shm");

	check("anon", anon, len);
	check("shm", shm, len);
	check("overflow", (const void *)(uintptr_t)0xffffffffffff0000ULL, 0x20000);
	printf("VERSION %s\n", daxguard_version());
	printf("INTERCEPTION %s\n", daxguard_interception());

	munmap(shm, len);
	close(fd);
	unlink(path);
	munmap(anon, len);
	return 0;
}
