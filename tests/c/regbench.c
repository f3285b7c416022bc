/*
 * regbench: registration latency in a process with many VMAs, for comparing
 * runs with and without LD_PRELOAD=libdaxguard.so (tests/bench/guest-reg.sh).
 *
 * usage: regbench [--paired] [--step] --device NAME [--vmas N] [--iters N] SIZE...
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
 * With --paired the process runs under LD_PRELOAD=libdaxguard.so and times
 * both sides itself, interleaved, so the TCG guest's drift between (and
 * within) processes hits them alike: "with" is the same macro call as above,
 * which binds to the shim; "without" is libibverbs' own ibv_reg_mr_iova2,
 * looked up through a dlopen handle, whose scope leaves LD_PRELOAD objects
 * out. Pairs run in ABBA order (with, without, without, with, ...) so neither
 * side always goes first; 5 untimed pairs first. Per SIZE it prints
 *
 *   REGBENCH-PAIRED vmas=<count> size=<bytes> iters=<n> with_median_ns=<ns> without_median_ns=<ns> ratio=<with/without>
 *
 * Without --step, before the sizes, one line for the cold cost: the very
 * first registration and deregistration of the process, of the first SIZE
 * (through the macro: with the shim, its set-up and first lookup), the
 * second (where the shim sets up its mmap-events map on kernels without
 * PROCMAP_QUERY), and one full read of /proc/self/maps (counting its lines):
 *
 *   REGBENCH-COLD vmas=<count> first_ns=<ns> second_ns=<ns> maps_read_ns=<ns>
 *
 * With --step, each SIZE first waits for a line on stdin, so the caller can
 * change something between sizes in this one process (tests/bench/guest-watch.sh
 * attaches and detaches `daxguard watch`; it repeats one SIZE for rounds).
 *
 * Exit 0; 1 if a registration fails; 2 on a usage error, a missing device or
 * (--paired) no shim in front of libibverbs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
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

#define MAX_SIZES 32

/* volatile: keep the ibv_reg_mr() macro on its non-constant path. */
static volatile unsigned int g_access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
					IBV_ACCESS_REMOTE_READ;

typedef struct ibv_mr *(*reg_mr_iova2_fn)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int);

static void usage(void)
{
	fprintf(stderr, "usage: regbench [--paired] [--step] --device NAME [--vmas N] [--iters N] SIZE...\n");
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

/*
 * libibverbs' own ibv_reg_mr_iova2, bypassing any preloaded definition. Exits
 * if that is the one a plain call binds to: then the "with" side would not go
 * through the shim either, and the ratio would be a quiet 1.000.
 */
typedef void *(*dlvsym_fn)(void *, const char *, const char *);

static reg_mr_iova2_fn real_reg_mr_iova2(void)
{
	/*
	 * Through glibc's own dlvsym: the shim wraps dlsym and dlvsym (x86_64)
	 * and answers a guarded name with its export, which is the "with" side.
	 * Asking libc's handle for "dlvsym" is not a guarded name, so that
	 * lookup comes back unchanged.
	 */
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	dlvsym_fn libc_dlvsym = libc ? (dlvsym_fn)dlsym(libc, "dlvsym") : NULL;
	void *lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_NOLOAD);
	void *real = lib && libc_dlvsym ? libc_dlvsym(lib, "ibv_reg_mr_iova2", "IBVERBS_1.8") : NULL;

	if (!real) {
		fprintf(stderr, "regbench: no ibv_reg_mr_iova2@IBVERBS_1.8 in libibverbs.so.1: %s\n", dlerror());
		exit(2);
	}
	if (real == dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova2")) {
		fprintf(stderr, "regbench: --paired: ibv_reg_mr_iova2 is libibverbs' own; "
				"run it under LD_PRELOAD=libdaxguard.so\n");
		exit(2);
	}
	return (reg_mr_iova2_fn)real;
}

/* One timed ibv_reg_mr + ibv_dereg_mr: through the macro (real == NULL) or real. */
static uint64_t reg_dereg(struct ibv_pd *pd, void *addr, size_t size, reg_mr_iova2_fn real)
{
	uint64_t t0 = now_ns();
	struct ibv_mr *mr = real ? real(pd, addr, size, (uintptr_t)addr, g_access)
				 : ibv_reg_mr(pd, addr, size, g_access);

	if (!mr) {
		fprintf(stderr, "regbench: %s(%zu): %s\n", real ? "ibv_reg_mr_iova2 (real)" : "ibv_reg_mr", size,
			errname(errno));
		exit(1);
	}
	if (ibv_dereg_mr(mr)) {
		fprintf(stderr, "regbench: ibv_dereg_mr: %s\n", errname(errno));
		exit(1);
	}
	return now_ns() - t0;
}

int main(int argc, char **argv)
{
	const char *device = NULL;
	size_t sizes[MAX_SIZES], total = 0, bulk_pages, page = (size_t)sysconf(_SC_PAGESIZE);
	long want = 10000, iters = 200, have;
	int nsizes = 0, i, paired = 0, step = 0;
	uint64_t *ns, *ns_without;
	reg_mr_iova2_fn real = NULL;
	char *base, *at;
	struct ibv_pd *pd;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--paired") == 0)
			paired = 1;
		else if (strcmp(argv[i], "--step") == 0)
			step = 1;
		else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
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
	if (paired)
		real = real_reg_mr_iova2();
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

	if (!step) {
		uint64_t t0 = now_ns(), first, second, maps;

		reg_dereg(pd, base + (bulk_pages + 1) * page, sizes[0], NULL);
		first = now_ns() - t0;
		t0 = now_ns();
		reg_dereg(pd, base + (bulk_pages + 1) * page, sizes[0], NULL);
		second = now_ns() - t0;
		t0 = now_ns();
		vma_count();
		maps = now_ns() - t0;
		printf("REGBENCH-COLD vmas=%ld first_ns=%llu second_ns=%llu maps_read_ns=%llu\n", have,
		       (unsigned long long)first, (unsigned long long)second, (unsigned long long)maps);
	}
	ns = calloc((size_t)iters, sizeof(*ns));
	ns_without = calloc((size_t)iters, sizeof(*ns_without));
	if (!ns || !ns_without)
		return 2;
	at = base + (bulk_pages + 1) * page;
	for (i = 0; i < nsizes; i++) {
		char line[64];

		if (step && !fgets(line, sizeof(line), stdin))
			break;
		for (long k = -5; k < iters; k++) {
			uint64_t t, t_without;

			if (!paired) {
				t = reg_dereg(pd, at, sizes[i], NULL);
				if (k >= 0)
					ns[k] = t;
				continue;
			}
			/* ABBA: odd pairs run "without" first. */
			if (k & 1) {
				t_without = reg_dereg(pd, at, sizes[i], real);
				t = reg_dereg(pd, at, sizes[i], NULL);
			} else {
				t = reg_dereg(pd, at, sizes[i], NULL);
				t_without = reg_dereg(pd, at, sizes[i], real);
			}
			if (k >= 0) {
				ns[k] = t;
				ns_without[k] = t_without;
			}
		}
		qsort(ns, (size_t)iters, sizeof(*ns), cmp_u64);
		if (paired) {
			qsort(ns_without, (size_t)iters, sizeof(*ns_without), cmp_u64);
			printf("REGBENCH-PAIRED vmas=%ld size=%zu iters=%ld with_median_ns=%llu without_median_ns=%llu "
			       "ratio=%.3f\n",
			       have, sizes[i], iters, (unsigned long long)ns[iters / 2],
			       (unsigned long long)ns_without[iters / 2],
			       (double)ns[iters / 2] / (double)ns_without[iters / 2]);
		} else {
			printf("REGBENCH vmas=%ld size=%zu iters=%ld median_ns=%llu p10_ns=%llu p90_ns=%llu\n", have,
			       sizes[i], iters, (unsigned long long)ns[iters / 2], (unsigned long long)ns[iters / 10],
			       (unsigned long long)ns[iters * 9 / 10]);
		}
		fflush(stdout);
		at += sizes[i] + page;
	}
	return 0;
}
