/*
 * mpiwin: an MPI one-sided window over anonymous memory or over a file
 * mapping, the way an application puts a window on persistent memory.
 * Every rank maps its own memory, creates the window over it with
 * MPI_Win_create (Open MPI's osc ucx registers it with ucp_mem_map, hence
 * ibv_reg_mr, right there), then MPI_Puts a pattern into the next rank's
 * window and MPI_Gets it back, between fences, and checks both: what
 * arrived in its own window and what it read back. Over a file, the
 * file's bytes are checked too, with pread().
 *
 * usage: mpiwin anon [--size N]
 *        mpiwin fsdax [DIR] [--size N]     (DIR defaults to /mnt/pmem)
 *   fsdax maps DIR/mpiwin.rankN (N: the rank), made SIZE bytes long and
 *   mapped MAP_SHARED; SIZE defaults to 1M.
 *
 * The communicator's error handler is MPI_ERRORS_RETURN, so a refused
 * registration comes back as an error code and the program says so:
 *   "rank N: MPI_Win_create over PATH (SIZE bytes) failed: <MPI's string>"
 * then finalizes and exits 3. On success every rank prints
 *   "rank N: window over PATH: put/get of SIZE bytes ok[, file ok]".
 * Exit 0: every check passed; 1: wrong data; 2: usage or setup; 3: the
 * window could not be created.
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

#include <mpi.h>

#include "common.h"

static int rank, nranks;

/* Word i of the pattern rank R puts: unique per word and per rank. */
static uint32_t word(int r, size_t i)
{
	return ((uint32_t)(r + 1) << 24) ^ (uint32_t)i ^ 0x005a0000u;
}

static void usage(void)
{
	fprintf(stderr, "usage: mpiwin anon [--size N] | mpiwin fsdax [DIR] [--size N]\n");
	exit(2);
}

/* The first word of BUF (N words) that differs from rank R's pattern, or -1. */
static long mismatch(const uint32_t *buf, size_t n, int r)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != word(r, i))
			return (long)i;
	return -1;
}

int main(int argc, char **argv)
{
	const char *kind, *dir = "/mnt/pmem";
	char path[4096] = "anonymous memory";
	size_t size = 1 << 20, n;
	int fd = -1, rc, bad = 0, i;

	if (argc < 2)
		usage();
	kind = argv[1];
	if (strcmp(kind, "anon") && strcmp(kind, "fsdax"))
		usage();
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			size = parse_size(argv[++i]);
			if (!size || size % 4096)
				usage();
		} else if (argv[i][0] != '-' && !strcmp(kind, "fsdax")) {
			dir = argv[i];
		} else {
			usage();
		}
	}
	n = size / sizeof(uint32_t);

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);

	uint32_t *mem;
	if (!strcmp(kind, "anon")) {
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	} else {
		snprintf(path, sizeof(path), "%s/mpiwin.rank%d", dir, rank);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			fatal(path);
		if (ftruncate(fd, (off_t)size))
			fatal("ftruncate");
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	}
	if (mem == MAP_FAILED)
		fatal("mmap");
	memset(mem, 0, size);

	MPI_Win win;
	rc = MPI_Win_create(mem, (MPI_Aint)size, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &win);
	if (rc != MPI_SUCCESS) {
		char msg[MPI_MAX_ERROR_STRING];
		int len = 0, class = 0;

		MPI_Error_string(rc, msg, &len);
		MPI_Error_class(rc, &class);
		printf("rank %d: MPI_Win_create over %s (%zu bytes) failed: %s (error class %d)\n", rank, path,
		       size, msg, class);
		fflush(stdout);
		MPI_Finalize();
		return 3;
	}

	/* Put our pattern into the next rank's window; get it back after. */
	int peer = (rank + 1) % nranks, from = (rank + nranks - 1) % nranks;
	uint32_t *src = malloc(size), *back = malloc(size);
	if (!src || !back)
		fatal("malloc");
	for (size_t k = 0; k < n; k++)
		src[k] = word(rank, k);
	memset(back, 0, size);

	MPI_Win_fence(0, win);
	rc = MPI_Put(src, (int)size, MPI_BYTE, peer, 0, (int)size, MPI_BYTE, win);
	MPI_Win_fence(0, win);
	if (rc == MPI_SUCCESS)
		rc = MPI_Get(back, (int)size, MPI_BYTE, peer, 0, (int)size, MPI_BYTE, win);
	MPI_Win_fence(0, win);
	if (rc != MPI_SUCCESS) {
		char msg[MPI_MAX_ERROR_STRING];
		int len = 0;

		MPI_Error_string(rc, msg, &len);
		printf("rank %d: MPI_Put/MPI_Get failed: %s\n", rank, msg);
		bad = 1;
	}

	long at;
	char extra[160] = "";
	if (!bad && (at = mismatch(mem, n, from)) >= 0) {
		printf("rank %d: window word %ld is 0x%08x, rank %d put 0x%08x\n", rank, at, mem[at], from,
		       word(from, (size_t)at));
		bad = 1;
	}
	if (!bad && (at = mismatch(back, n, rank)) >= 0) {
		printf("rank %d: MPI_Get word %ld is 0x%08x, wanted 0x%08x\n", rank, at, back[at],
		       word(rank, (size_t)at));
		bad = 1;
	}
	if (!bad && fd >= 0) {
		/* The file itself, through the filesystem, not the mapping. */
		memset(back, 0, size);
		if (pread(fd, back, size, 0) != (ssize_t)size)
			fatal("pread");
		if ((at = mismatch(back, n, from)) >= 0) {
			printf("rank %d: %s word %ld is 0x%08x, rank %d put 0x%08x\n", rank, path, at, back[at],
			       from, word(from, (size_t)at));
			bad = 1;
		} else {
			snprintf(extra, sizeof(extra), ", file ok");
		}
	}
	if (!bad)
		printf("rank %d: window over %s: put/get of %zu bytes ok%s\n", rank, path, size, extra);
	fflush(stdout);

	MPI_Win_free(&win);
	MPI_Finalize();
	return bad;
}
