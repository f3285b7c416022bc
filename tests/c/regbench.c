/*
 * regbench: registration latency in a process with many VMAs, for comparing
 * runs with and without LD_PRELOAD=libdaxguard.so (tests/bench/guest-reg.sh).
 *
 * usage: regbench --device NAME [--vmas N] [--iters N] SIZE...
 *
 * Makes the process hold at least N VMAs (default 10000): one PROT_NONE
 * reservation with every other page of its lower part made PROT_READ
 * (alternating protections never merge). The regions to register sit in the
 * same reservation ABOVE those pages, so a lookup that reads /proc/self/maps
 * text has to read past all of them first (its worst case). Each region is
 * private anonymous read-write memory, touched once. Then, per SIZE, times
 * --iters (default 200) rounds of ibv_reg_mr() + ibv_dereg_mr() after 5
 * untimed ones, with the verbs.h macro and non-constant access flags
 * (ibv_reg_mr_iova2, as most programs), and prints
 *
 *   REGBENCH vmas=<count> size=<bytes> iters=<n> median_ns=<ns> p10_ns=<ns> p90_ns=<ns>
 *
 * Exit 0; 1 if a registration fails; 2 on a usage error or a missing device.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#define MAX_SIZES 8

/* volatile: keep the ibv_reg_mr() macro on its non-constant path. */
static volatile unsigned int g_access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
					IBV_ACCESS_REMOTE_READ;

static void usage(void)
{
	fprintf(stderr, "usage: regbench --device NAME [--vmas N] [--iters N] SIZE...\n");
	exit(2);
}

static long vma_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (!f) {
		perror("regbench: /proc/self/maps");
		exit(2);
	}
	while ((c = getc_unlocked(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static struct ibv_pd *open_pd(const char *device)
{
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct ibv_pd *pd;
	int i, n = 0;

	list = ibv_get_device_list(&n);
	for (i = 0; list && i < n; i++)
		if (strcmp(ibv_get_device_name(list[i]), device) == 0)
			ctx = ibv_open_device(list[i]);
	if (!ctx) {
		fprintf(stderr, "regbench: RDMA device '%s' not found or not openable (%d devices)\n", device, n);
		exit(2);
	}
	pd = ibv_alloc_pd(ctx);
	if (!pd) {
		fprintf(stderr, "regbench: ibv_alloc_pd: %s\n", strerror(errno));
		exit(2);
	}
	return pd;
}

int main(int argc, char **argv)
{
	const char *device = NULL;
	size_t sizes[MAX_SIZES], total = 0, bulk_pages, page = (size_t)sysconf(_SC_PAGESIZE);
	long want = 10000, iters = 200, have;
	int nsizes = 0, i;
	uint64_t *ns;
	char *base, *at;
	struct ibv_pd *pd;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = argv[++i];
		else if (strcmp(argv[i], "--vmas") == 0 && i + 1 < argc)
			want = atol(argv[++i]);
		else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (argv[i][0] != '-' && nsizes < MAX_SIZES && parse_size(argv[i]))
			sizes[nsizes++] = (parse_size(argv[i]) + page - 1) / page * page;
		else
			usage();
	}
	if (!device || !nsizes || iters < 1 || want < 0)
		usage();
	pd = open_pd(device);

	/* Reservation: [bulk: 2 pages per split][guard][region][guard]... */
	bulk_pages = 2 * ((size_t)want / 2 + 1);
	for (i = 0; i < nsizes; i++)
		total += sizes[i] + page;
	base = mmap(NULL, (bulk_pages + 1) * page + total, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		perror("regbench: reserve");
		return 2;
	}
	at = base + (bulk_pages + 1) * page;
	for (i = 0; i < nsizes; i++) {
		char *r = at;

		if (mprotect(r, sizes[i], PROT_READ | PROT_WRITE)) {
			perror("regbench: mprotect region");
			return 2;
		}
		memset(r, 1, sizes[i]);
		at += sizes[i] + page;
	}
	/* Split from the bottom, two VMAs per PROT_READ page, until there are enough. */
	for (size_t p = 0; (have = vma_count()) < want;) {
		long more = (want - have + 1) / 2;

		for (; more > 0 && p < bulk_pages; more--, p += 2) {
			if (mprotect(base + p * page, page, PROT_READ)) {
				perror("regbench: mprotect (vm.max_map_count?)");
				return 2;
			}
		}
		if (p >= bulk_pages && vma_count() < want) {
			fprintf(stderr, "regbench: cannot reach %ld VMAs\n", want);
			return 2;
		}
	}

	ns = calloc((size_t)iters, sizeof(*ns));
	if (!ns)
		return 2;
	at = base + (bulk_pages + 1) * page;
	for (i = 0; i < nsizes; i++) {
		for (long k = -5; k < iters; k++) {
			uint64_t t0 = now_ns();
			struct ibv_mr *mr = ibv_reg_mr(pd, at, sizes[i], g_access);

			if (!mr) {
				fprintf(stderr, "regbench: ibv_reg_mr(%zu): %s\n", sizes[i], errname(errno));
				return 1;
			}
			if (ibv_dereg_mr(mr)) {
				fprintf(stderr, "regbench: ibv_dereg_mr: %s\n", errname(errno));
				return 1;
			}
			if (k >= 0)
				ns[k] = now_ns() - t0;
		}
		qsort(ns, (size_t)iters, sizeof(*ns), cmp_u64);
		printf("REGBENCH vmas=%ld size=%zu iters=%ld median_ns=%llu p10_ns=%llu p90_ns=%llu\n", have,
		       sizes[i], iters, (unsigned long long)ns[iters / 2], (unsigned long long)ns[iters / 10],
		       (unsigned long long)ns[iters * 9 / 10]);
		fflush(stdout);
		at += sizes[i] + page;
	}
	return 0;
}
