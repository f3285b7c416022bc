/*
 * regmatrix: the kernel oracle. Maps every region described on the command
 * line, keeps them all alive, registers each with the verbs.h ibv_reg_mr()
 * macro on a real device, and prints what the kernel answered:
 *
 *   <NAME> ok
 *   <NAME> <ERRNO_NAME>          e.g. EOPNOTSUPP for fs-DAX, EFAULT, EINVAL
 *
 * usage: regmatrix --device NAME [--odp] [--ro] [--hold] SPEC...
 *   SPEC is NAME=KIND:ARGS, sizes take K/M/G suffixes, paths must not contain ':'
 *     anon:SIZE                       private anonymous mapping
 *     heap:SIZE                       malloc()ed, page-aligned inside the block
 *     file:PATH:SIZE[:private][:touch] file created/extended to SIZE, MAP_SHARED
 *                                     (or MAP_PRIVATE); touch writes a byte per page
 *     devdax:PATH:SIZE                device-DAX character device, MAP_SHARED
 *     memfd:SIZE                      memfd_create() + MAP_SHARED
 *     span:PATH:SIZE                  one anonymous page directly followed
 *                                     (MAP_FIXED) by SIZE of the file; the
 *                                     registration covers both VMAs
 *     deleted:PATH:SIZE               file mapped MAP_SHARED, then unlinked
 *   --hold: after the results print "READY pid=<pid>" and wait until stdin
 *           closes or SIGTERM/SIGINT, keeping regions and MRs alive.
 *
 * Exit 0 after printing results; 2 on a usage error, a missing device, or a
 * region that cannot be set up (message on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

struct region {
	const char *spec;	/* for messages */
	char *name;
	void *addr;		/* what is registered */
	size_t len;
	void *map;		/* what to munmap (span: the whole reservation) */
	size_t map_len;
	void *heap;		/* what to free() */
	struct ibv_mr *mr;
	int err;
};

/* volatile: keep the ibv_reg_mr() macro on its non-constant path
 * (ibv_reg_mr_iova2), the path most programs take. */
static volatile unsigned int g_access;
static volatile sig_atomic_t g_stop;
static long g_page;

static void usage(void)
{
	fprintf(stderr,
		"usage: regmatrix --device NAME [--odp] [--ro] [--hold] NAME=KIND:ARGS...\n"
		"KIND: anon:SIZE heap:SIZE file:PATH:SIZE[:private][:touch] devdax:PATH:SIZE\n"
		"      memfd:SIZE span:PATH:SIZE deleted:PATH:SIZE\n");
	exit(2);
}

static void fail(const struct region *r, const char *what)
{
	fprintf(stderr, "regmatrix: %s: %s: %s\n", r->spec, what, strerror(errno));
	exit(2);
}

/* open PATH and make it at least `size` bytes long */
static int open_sized(const struct region *r, const char *path, size_t size)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		fail(r, path);
	if (fstat(fd, &st) < 0 || ((size_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0))
		fail(r, path);
	return fd;
}

static void *map_fd(const struct region *r, int fd, size_t size, int flags)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		fail(r, "mmap");
	return p;
}

static void setup(struct region *r, char *spec)
{
	char *save, *kind, *path = NULL, *opt;
	char *eq = strchr(spec, '=');
	size_t size;
	int fd = -1, priv = 0, touch = 0;

	r->spec = strdup(spec);
	if (!eq || eq == spec)
		usage();
	*eq = '\0';
	r->name = spec;
	kind = strtok_r(eq + 1, ":", &save);
	if (!kind)
		usage();
	if (!strcmp(kind, "file") || !strcmp(kind, "devdax") || !strcmp(kind, "span") ||
	    !strcmp(kind, "deleted")) {
		path = strtok_r(NULL, ":", &save);
		if (!path)
			usage();
	}
	size = parse_size(strtok_r(NULL, ":", &save));
	if (!size)
		usage();
	while ((opt = strtok_r(NULL, ":", &save))) {
		if (strcmp(kind, "file"))
			usage();
		else if (!strcmp(opt, "private"))
			priv = 1;
		else if (!strcmp(opt, "touch"))
			touch = 1;
		else
			usage();
	}
	r->len = size;

	if (!strcmp(kind, "anon")) {
		r->addr = map_fd(r, -1, size, MAP_PRIVATE | MAP_ANONYMOUS);
	} else if (!strcmp(kind, "heap")) {
		r->heap = malloc(size + (size_t)g_page);
		if (!r->heap)
			fail(r, "malloc");
		r->addr = (void *)(((uintptr_t)r->heap + (uintptr_t)g_page - 1) & ~((uintptr_t)g_page - 1));
	} else if (!strcmp(kind, "file")) {
		fd = open_sized(r, path, size);
		r->addr = map_fd(r, fd, size, priv ? MAP_PRIVATE : MAP_SHARED);
	} else if (!strcmp(kind, "devdax")) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fail(r, path);
		r->addr = map_fd(r, fd, size, MAP_SHARED);
	} else if (!strcmp(kind, "memfd")) {
		fd = memfd_create("regmatrix", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
			fail(r, "memfd");
		r->addr = map_fd(r, fd, size, MAP_SHARED);
	} else if (!strcmp(kind, "span")) {
		/* reserve page+size anonymously, then put the file over all but the
		 * first page: two adjacent VMAs, one registration */
		char *base = map_fd(r, -1, (size_t)g_page + size, MAP_PRIVATE | MAP_ANONYMOUS);

		fd = open_sized(r, path, size);
		if (mmap(base + g_page, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
			fail(r, "mmap MAP_FIXED");
		r->addr = base;
		r->len = (size_t)g_page + size;
	} else if (!strcmp(kind, "deleted")) {
		fd = open_sized(r, path, size);
		r->addr = map_fd(r, fd, size, MAP_SHARED);
		if (unlink(path) < 0)
			fail(r, "unlink");
	} else {
		usage();
	}
	if (!r->heap) {
		r->map = r->addr;
		r->map_len = r->len;
	}
	if (fd >= 0)
		close(fd); /* the mapping keeps the file */
	if (touch)
		for (size_t off = 0; off < r->len; off += (size_t)g_page)
			((volatile char *)r->addr)[off] = 0x5a;
}

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* Wait for EOF on stdin or SIGTERM/SIGINT. The signals stay blocked except
 * inside ppoll(), so one arriving before the wait is not lost. */
static void hold(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, orig;
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	char buf[256];

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	printf("READY pid=%d\n", (int)getpid());
	fflush(stdout);
	while (!g_stop) {
		int n = ppoll(&pfd, 1, NULL, &orig);

		if (n < 0 && errno != EINTR)
			break;
		if (n > 0) {
			ssize_t got = read(0, buf, sizeof(buf));

			if (got <= 0 && !(got < 0 && errno == EINTR))
				break;
		}
	}
	sigprocmask(SIG_SETMASK, &orig, NULL);
}

int main(int argc, char **argv)
{
	const char *device = NULL;
	int odp = 0, ro = 0, do_hold = 0, i, nreg;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct region *regs;

	g_page = sysconf(_SC_PAGESIZE);
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (!strcmp(argv[i], "--odp"))
			odp = 1;
		else if (!strcmp(argv[i], "--ro"))
			ro = 1;
		else if (!strcmp(argv[i], "--hold"))
			do_hold = 1;
		else if (!strcmp(argv[i], "--device") && i + 1 < argc)
			device = argv[++i];
		else
			usage();
	}
	if (!device || i == argc)
		usage();
	/* --ro: no write and no remote access; local read is always granted */
	g_access = (ro ? 0 : IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ) |
		   (odp ? IBV_ACCESS_ON_DEMAND : 0);

	ctx = open_device(device);
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		fatal("ibv_alloc_pd");

	/* every mapping exists before the first registration */
	nreg = argc - i;
	regs = calloc((size_t)nreg, sizeof(*regs));
	if (!regs)
		return 2;
	for (int j = 0; j < nreg; j++)
		setup(&regs[j], argv[i + j]);

	for (int j = 0; j < nreg; j++) {
		unsigned int access = g_access;

		errno = 0;
		regs[j].mr = ibv_reg_mr(pd, regs[j].addr, regs[j].len, access);
		regs[j].err = errno;
	}
	for (int j = 0; j < nreg; j++)
		printf("%s %s\n", regs[j].name, regs[j].mr ? "ok" : errname(regs[j].err));
	fflush(stdout);

	if (do_hold)
		hold();

	for (int j = 0; j < nreg; j++) {
		if (regs[j].mr)
			ibv_dereg_mr(regs[j].mr);
		if (regs[j].map)
			munmap(regs[j].map, regs[j].map_len);
		free(regs[j].heap);
	}
	free(regs);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	return 0;
}
