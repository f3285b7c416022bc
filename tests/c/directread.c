/*
 * directread: the latency of a 4 KiB O_DIRECT read, in rounds, for the
 * cost of `daxguard watch` on a successful pin_user_pages_fast()
 * (tests/bench/guest-watch.sh). From Linux 6.3 the block layer pins the
 * user buffer of every O_DIRECT read with pin_user_pages_fast() (without
 * FOLL_LONGTERM); 6.1 still takes page references with get_user_pages_fast().
 *
 * usage: directread --device PATH [--iters N] [--rounds R] [--step]
 *
 * Opens PATH (a block device such as /dev/ram0) O_RDONLY | O_DIRECT and
 * reads its first 4 KiB into an aligned buffer: per round, 100 untimed reads
 * and then N (default 20000) timed ones. With --step, each round first reads
 * a line from stdin and uses it as the round's label, so the caller can
 * change something between rounds (attach or detach a BPF program) while
 * this one process keeps running. Per round it prints
 *
 *   DIRECTREAD round=<k> label=<label> iters=<n> median_ns=<ns> p10_ns=<ns> p90_ns=<ns>
 *
 * Exit 0; 1 if a read fails; 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

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

static void usage(void)
{
	fprintf(stderr, "usage: directread --device PATH [--iters N] [--rounds R] [--step]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *device = NULL;
	long iters = 20000, rounds = 1;
	int i, fd, step = 0;
	char label[64] = "-";
	uint64_t *ns;
	void *buf;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = argv[++i];
		else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atol(argv[++i]);
		else if (strcmp(argv[i], "--step") == 0)
			step = 1;
		else
			usage();
	}
	if (!device || iters < 1 || rounds < 1)
		usage();
	fd = open(device, O_RDONLY | O_DIRECT);
	if (fd < 0)
		fatal(device);
	if (posix_memalign(&buf, 4096, 4096) || !(ns = calloc((size_t)iters, sizeof(*ns))))
		fatal("allocate");
	for (long r = 1; r <= rounds; r++) {
		if (step) {
			if (!fgets(label, sizeof(label), stdin))
				break;
			label[strcspn(label, "\n")] = 0;
		}
		for (long k = -100; k < iters; k++) {
			uint64_t t0 = now_ns();

			if (pread(fd, buf, 4096, 0) != 4096) {
				fprintf(stderr, "directread: pread: %s\n", errname(errno));
				return 1;
			}
			if (k >= 0)
				ns[k] = now_ns() - t0;
		}
		qsort(ns, (size_t)iters, sizeof(*ns), cmp_u64);
		printf("DIRECTREAD round=%ld label=%s iters=%ld median_ns=%llu p10_ns=%llu p90_ns=%llu\n", r, label,
		       iters, (unsigned long long)ns[iters / 2], (unsigned long long)ns[iters / 10],
		       (unsigned long long)ns[iters * 9 / 10]);
		fflush(stdout);
	}
	return 0;
}
