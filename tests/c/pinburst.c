/*
 * pinburst: many long-term pins from one process, refused and successful,
 * for `daxguard watch`'s burst test (tests/scenarios/watch.sh).
 *
 * usage: pinburst --file PATH [--refused N] [--ok N]
 *
 * Each pin is an io_uring IORING_REGISTER_BUFFERS_UPDATE of slot 0 of a
 * sparse one-slot buffer table, with one page (io_pin_pages():
 * pin_user_pages(FOLL_LONGTERM) on 6.1, pin_user_pages_fast() from 6.3),
 * made with the raw system call on one ring. An update, not a register and
 * unregister: on 6.1 every unregister waits for an RCU grace period, which
 * makes 100,000 of them take many minutes in the TCG guest. A refused pin
 * offers the first page of PATH (mapped MAP_SHARED; on fs-DAX the kernel
 * answers EOPNOTSUPP); a successful one a page of private anonymous memory,
 * which replaces the slot's previous buffer. The two kinds alternate until
 * both counts (default 100000 each) are done. Prints
 *
 *   PINBURST pid=<pid> refused=<n> ok=<n> other=<n> seconds=<s>
 *
 * where refused counts EOPNOTSUPP answers, ok successful registrations and
 * other anything else (it should be 0). Exit 0; 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static long ring_register(int fd, unsigned int op, void *arg, unsigned int nr)
{
	return syscall(SYS_io_uring_register, fd, op, arg, nr);
}

/* Slot 0 gets `iov`: 1 on success, else -1 and errno. */
static long update(int ring, struct iovec *iov)
{
	struct io_uring_rsrc_update2 up;

	memset(&up, 0, sizeof(up));
	up.offset = 0;
	up.data = (uintptr_t)iov;
	up.nr = 1;
	return ring_register(ring, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up));
}

static void usage(void)
{
	fprintf(stderr, "usage: pinburst --file PATH [--refused N] [--ok N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	long refused_want = 100000, ok_want = 100000, refused = 0, ok = 0, other = 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct io_uring_params params;
	struct io_uring_rsrc_register table;
	struct timespec t0, t1;
	struct iovec dax, anon;
	int i, fd, ring;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--refused") == 0 && i + 1 < argc)
			refused_want = atol(argv[++i]);
		else if (strcmp(argv[i], "--ok") == 0 && i + 1 < argc)
			ok_want = atol(argv[++i]);
		else
			usage();
	}
	if (!path || refused_want < 0 || ok_want < 0)
		usage();

	fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)page))
		fatal(path);
	dax.iov_base = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	anon.iov_base = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dax.iov_base == MAP_FAILED || anon.iov_base == MAP_FAILED)
		fatal("mmap");
	dax.iov_len = anon.iov_len = page;
	memset(anon.iov_base, 1, page);
	memset(&params, 0, sizeof(params));
	ring = (int)syscall(SYS_io_uring_setup, 8, &params);
	if (ring < 0)
		fatal("io_uring_setup");
	memset(&table, 0, sizeof(table));
	table.nr = 1;
	table.flags = IORING_RSRC_REGISTER_SPARSE;
	if (ring_register(ring, IORING_REGISTER_BUFFERS2, &table, sizeof(table)))
		fatal("IORING_REGISTER_BUFFERS2 (sparse)");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (refused + other < refused_want || ok < ok_want) {
		if (refused + other < refused_want) {
			if (update(ring, &dax) == 1)
				other++;
			else if (errno == EOPNOTSUPP)
				refused++;
			else
				other++;
		}
		if (ok < ok_want) {
			if (update(ring, &anon) != 1) {
				fprintf(stderr, "pinburst: anonymous buffer: %s\n", errname(errno));
				other++;
				ok_want--;
				continue;
			}
			ok++;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("PINBURST pid=%d refused=%ld ok=%ld other=%ld seconds=%.2f\n", (int)getpid(), refused, ok, other,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
