/*
 * mapscost: what a full read of /proc/self/maps and a listing of
 * /proc/self/map_files cost in a process with many VMAs (docs/benchmarks.md).
 * Grows to about VMAS VMAs, every other page of a reservation made
 * PROT_READ, or with "file" each such page a MAP_SHARED page of a file in
 * the current directory (mapscost.tmp, removed at exit), then times three
 * rounds of one maps read (64 KiB reads) and one map_files listing
 * (getdents64 into 1 MiB), printing bytes, entries and milliseconds.
 *
 * usage: mapscost VMAS [file]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 20];

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long read_maps(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	long n, total = 0;

	while (fd >= 0 && (n = read(fd, buf, 65536)) > 0)
		total += n;
	close(fd);
	return total;
}

static long list_map_files(void)
{
	int fd = open("/proc/self/map_files", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n, entries = 0;

	while (fd >= 0 && (n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0)
		for (long at = 0; at < n; entries++)
			at += *(uint16_t *)(buf + at + 16); /* d_reclen */
	close(fd);
	return entries - 2; /* . and .. */
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE), vmas = argc > 1 ? atol(argv[1]) : -1;
	int files = argc > 2 && !strcmp(argv[2], "file"), fd = -1;
	char *base;

	if (vmas < 0 || (argc > 2 && !files)) {
		fprintf(stderr, "usage: mapscost VMAS [file]\n");
		return 2;
	}
	base = mmap(NULL, (size_t)(vmas + 2) * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (files && ((fd = open("mapscost.tmp", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
		      unlink("mapscost.tmp") || ftruncate(fd, (vmas + 2) * page))) {
		perror("mapscost: file");
		return 2;
	}
	for (long i = 1; i < vmas; i += 2) {
		void *p = base + i * page;
		int bad = files ? mmap(p, page, PROT_READ, MAP_SHARED | MAP_FIXED, fd, i * page) == MAP_FAILED
				: mprotect(p, page, PROT_READ) != 0;

		if (bad) {
			perror("mapscost: grow (vm.max_map_count?)");
			return 2;
		}
	}
	for (int round = 1; round <= 3; round++) {
		double t0 = now_ms();
		long bytes = read_maps();
		double t1 = now_ms();
		long entries = list_map_files();
		double t2 = now_ms();

		printf("round %d: maps %ld bytes %.3f ms; map_files %ld entries %.3f ms\n", round, bytes, t1 - t0,
		       entries, t2 - t1);
	}
	return 0;
}
