/*
 * atlimit: registrations in a process at its VMA limit (vm.max_map_count),
 * for counting what the shim adds there (shim/tests/vma_limit.rs, with
 * strace; issue 17: fork detection must not cost a getpid per call).
 *
 * usage: atlimit [--fill] N
 *
 * Maps one 4 KiB page of private anonymous memory, then with --fill grows
 * the process to its limit: one PROT_NONE reservation of vm.max_map_count
 * pages with every other page made PROT_READ (alternating protections never
 * merge) until mprotect fails with ENOMEM. It then checks it is really there:
 * splitting a fresh anonymous VMA (madvise MADV_WIPEONFORK on its middle
 * page) must fail (ENOMEM; madvise says EAGAIN on recent kernels). Then N
 * rounds of ibv_reg_mr() (the verbs.h macro) of the page on a fake pd,
 * before any other registration; the provider is expected to be the
 * stubbing spy, so each fails (ENODEV).
 * Prints
 *
 *   ATLIMIT filled=<0|1> split_fails=<0|1> regs=<N>
 *
 * Exit 0; 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

static struct ibv_pd fake_pd;

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long n = -1;

	if (!f)
		fatal("open /proc/sys/vm/max_map_count");
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/* Whether splitting one more VMA fails (the process is at its limit). */
static int split_fails(long page)
{
	char *p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fails;

	if (p == MAP_FAILED)
		return 1; /* not even a new VMA */
	fails = madvise(p + page, page, MADV_WIPEONFORK) != 0 && (errno == ENOMEM || errno == EAGAIN);
	munmap(p, 3 * page);
	return fails;
}

static void fill(long page)
{
	long max = max_map_count(), i;
	char *r;

	if (max <= 0)
		fatal("vm.max_map_count");
	r = mmap(NULL, (size_t)max * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		fatal("mmap reservation");
	for (i = 1; i < max; i += 2)
		if (mprotect(r + i * page, page, PROT_READ) != 0) {
			if (errno != ENOMEM)
				fatal("mprotect");
			return;
		}
	errno = 0;
	fatal("the reservation did not reach the limit");
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE), n, i;
	int filled = 0, at = 1, fails;
	char *buf;

	if (at < argc && strcmp(argv[at], "--fill") == 0) {
		filled = 1;
		at++;
	}
	if (at + 1 != argc || (n = atol(argv[at])) <= 0) {
		fprintf(stderr, "usage: atlimit [--fill] N\n");
		return 2;
	}
	buf = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fatal("mmap");
	memset(buf, 1, page);
	if (filled)
		fill(page);
	fails = split_fails(page);

	for (i = 0; i < n; i++) {
		struct ibv_mr *mr = ibv_reg_mr(&fake_pd, buf, page, IBV_ACCESS_LOCAL_WRITE);

		if (mr)
			ibv_dereg_mr(mr);
	}
	printf("ATLIMIT filled=%d split_fails=%d regs=%ld\n", filled, fails, n);
	return 0;
}
