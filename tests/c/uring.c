/*
 * uring: io_uring fixed-buffer registration, which pins the buffers with
 * FOLL_LONGTERM (io_pin_pages()), through each way a program can ask for it,
 * on the memory given on the command line. One line per step:
 *
 *   REGION kind=anon addr=0x7f.. len=2097152 iovecs=1
 *   register buffers: ok                 (or the errno name: EOPNOTSUPP, EFAULT)
 *   read_fixed buffers: ok bytes=4096    (with --read FILE, after a registration)
 *   unregister buffers: ok
 *   sparse sparse: ok                    (the empty table, for sparse and sys-update)
 *   register sparse: EOPNOTSUPP          (the update that pins)
 *
 * liburing 2.3 makes the system call with its own syscall instruction and
 * returns -errno without setting errno; only its exported functions and
 * syscall(SYS_io_uring_register, ...) can be interposed. See README.md.
 *
 * Exit 0 after the results; 2 on a usage error or a setup failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "common.h"

#define MAX_IOV 2

static long g_page;
static struct io_uring g_ring;
static struct iovec g_iov[MAX_IOV];
static __u64 g_tags[MAX_IOV];
static unsigned g_niov;
static int g_memfd = -1;	/* the region's file or device, -1 for anon */

static const char *const vias[] = {
	"buffers", "tags", "sparse", "register", "sys-buffers", "sys-buffers2", "sys-update", NULL,
};

__attribute__((noreturn)) static void usage(void)
{
	fprintf(stderr,
		"usage: uring [--len N] [--mixed] [--read FILE]\n"
		"             (--file PATH [--private] [--touch] | --anon | --devdax PATH) VIA...\n"
		"       uring [--len N] (--file PATH [--private] [--touch] | --anon | --devdax PATH) --bad\n"
		"VIA: buffers tags sparse register (liburing)\n"
		"     sys-buffers sys-buffers2 sys-update (syscall(SYS_io_uring_register))\n");
	exit(2);
}

/* The raw system call, through glibc's syscall() */
static int sys_register(int fd, unsigned op, const void *arg, unsigned nr)
{
	return (int)syscall(SYS_io_uring_register, fd, op, arg, nr);
}

/* liburing's convention (-errno, errno untouched) and the system call's
 * (-1, errno) both become an errno, 0 on success. */
static int lib_err(int rc)
{
	return rc < 0 ? -rc : 0;
}

static int sys_err(int rc)
{
	return rc < 0 ? errno : 0;
}

/* "<step> <via>: ok|ERRNO"; an update answering fewer than asked prints
 * "short=N/M". Returns the errno (or -1 for short), 0 on success. */
static int report(const char *step, const char *via, int e)
{
	printf("%s %s: %s\n", step, via, answer(e));
	return e;
}

static int report_update(const char *via, int rc, int e)
{
	if (e)
		return report("register", via, e);
	if ((unsigned)rc != g_niov) {
		printf("register %s: short=%d/%u\n", via, rc, g_niov);
		return -1;
	}
	return report("register", via, 0);
}

/* Registers the table through `via`. Returns 0 when buffers are registered;
 * *table is set when a (possibly empty) table exists to unregister. */
static int register_via(const char *via, int *table)
{
	struct io_uring_rsrc_register rr = { .nr = g_niov, .data = (uintptr_t)g_iov, .tags = (uintptr_t)g_tags };
	struct io_uring_rsrc_update2 up = { .offset = 0, .data = (uintptr_t)g_iov, .tags = (uintptr_t)g_tags, .nr = g_niov };
	int fd = g_ring.ring_fd, e, rc;

	*table = 0;
	if (!strcmp(via, "buffers"))
		e = report("register", via, lib_err(io_uring_register_buffers(&g_ring, g_iov, g_niov)));
	else if (!strcmp(via, "tags"))
		e = report("register", via, lib_err(io_uring_register_buffers_tags(&g_ring, g_iov, g_tags, g_niov)));
	else if (!strcmp(via, "register"))
		e = report("register", via, lib_err(io_uring_register((unsigned)fd, IORING_REGISTER_BUFFERS, g_iov, g_niov)));
	else if (!strcmp(via, "sys-buffers"))
		e = report("register", via, sys_err(sys_register(fd, IORING_REGISTER_BUFFERS, g_iov, g_niov)));
	else if (!strcmp(via, "sys-buffers2"))
		e = report("register", via, sys_err(sys_register(fd, IORING_REGISTER_BUFFERS2, &rr, sizeof(rr))));
	else if (!strcmp(via, "sparse")) {
		if (report("sparse", via, lib_err(io_uring_register_buffers_sparse(&g_ring, g_niov))))
			return -1;
		*table = 1;
		rc = io_uring_register_buffers_update_tag(&g_ring, 0, g_iov, g_tags, g_niov);
		return report_update(via, rc, lib_err(rc));
	} else if (!strcmp(via, "sys-update")) {
		struct io_uring_rsrc_register sparse = { .nr = g_niov, .flags = IORING_RSRC_REGISTER_SPARSE };

		if (report("sparse", via, sys_err(sys_register(fd, IORING_REGISTER_BUFFERS2, &sparse, sizeof(sparse)))))
			return -1;
		*table = 1;
		rc = sys_register(fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up));
		return report_update(via, rc, sys_err(rc));
	} else {
		usage(); /* main() checked every VIA */
	}
	*table = !e;
	return e;
}

/*
 * IORING_OP_READ_FIXED of FILE's first bytes into buffer 0, compared with
 * what pread() returns: the registered pages are the ones the program sees.
 */
static void read_fixed(const char *via, const char *file)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	size_t n = g_iov[0].iov_len;
	char *want = malloc(n);
	ssize_t got;
	int fd = open(file, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0 || !want)
		fatal(file);
	got = pread(fd, want, n, 0);
	if (got <= 0)
		fatal("pread");
	n = (size_t)got;
	memset(g_iov[0].iov_base, 0, n);
	sqe = io_uring_get_sqe(&g_ring);
	io_uring_prep_read_fixed(sqe, fd, g_iov[0].iov_base, (unsigned)n, 0, 0);
	rc = io_uring_submit_and_wait(&g_ring, 1);
	if (rc < 0) {
		report("read_fixed", via, -rc);
	} else if ((rc = io_uring_wait_cqe(&g_ring, &cqe)) < 0) {
		report("read_fixed", via, -rc);
	} else {
		int res = cqe->res;

		io_uring_cqe_seen(&g_ring, cqe);
		if (res < 0) {
			report("read_fixed", via, -res);
		} else if ((size_t)res != n) {
			printf("read_fixed %s: short=%d/%zu\n", via, res, n);
		} else {
			size_t i = 0;

			while (i < n && ((char *)g_iov[0].iov_base)[i] == want[i])
				i++;
			if (i == n)
				printf("read_fixed %s: ok bytes=%zu\n", via, n);
			else
				printf("read_fixed %s: mismatch at=%zu\n", via, i);
		}
	}
	close(fd);
	free(want);
}

/*
 * Bad input, for a preload that inspects the registration: each case once
 * through syscall() and once through liburing's io_uring_register(), as
 * "bad <case> sys|lib: <ERRNO|ok>", with what the kernel answered.
 */
static void bad_case(const char *name, int fd, unsigned op, const void *arg, unsigned nr)
{
	int rc = sys_register(fd, op, arg, nr);

	printf("bad %s sys: %s\n", name, answer(sys_err(rc)));
	/* a case the kernel accepts leaves the table empty again */
	if (rc >= 0)
		io_uring_unregister_buffers(&g_ring);
	rc = io_uring_register((unsigned)fd, op, arg, nr);
	printf("bad %s lib: %s\n", name, answer(lib_err(rc)));
	if (rc >= 0)
		io_uring_unregister_buffers(&g_ring);
}

static void bad_inputs(void)
{
	int ring = g_ring.ring_fd, closed = dup(ring), other;
	struct iovec iov;
	char *hole;

	close(closed);
	bad_case("badfd", closed, IORING_REGISTER_BUFFERS, g_iov, 1);
	other = g_memfd >= 0 ? g_memfd : open("/dev/null", O_RDWR | O_CLOEXEC);
	bad_case("notring", other, IORING_REGISTER_BUFFERS, g_iov, 1);
	if (other != g_memfd)
		close(other);

	iov = (struct iovec){ .iov_base = g_iov[0].iov_base, .iov_len = 0 };
	bad_case("len0", ring, IORING_REGISTER_BUFFERS, &iov, 1);
	iov = (struct iovec){ .iov_base = NULL, .iov_len = g_iov[0].iov_len };
	bad_case("null", ring, IORING_REGISTER_BUFFERS, &iov, 1);
	iov = (struct iovec){ .iov_base = NULL, .iov_len = 0 };
	bad_case("null0", ring, IORING_REGISTER_BUFFERS, &iov, 1);

	hole = mmap(NULL, g_iov[0].iov_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hole == MAP_FAILED || munmap(hole, g_iov[0].iov_len) < 0)
		fatal("mmap hole");
	iov = (struct iovec){ .iov_base = hole, .iov_len = g_iov[0].iov_len };
	bad_case("unmapped", ring, IORING_REGISTER_BUFFERS, &iov, 1);
	iov = (struct iovec){ .iov_base = (void *)-(uintptr_t)g_page, .iov_len = 2 * (size_t)g_page };
	bad_case("wrap", ring, IORING_REGISTER_BUFFERS, &iov, 1);
	bad_case("nr0", ring, IORING_REGISTER_BUFFERS, g_iov, 0);
	/* the iovec array itself unreadable: a preload must not read it blindly */
	bad_case("badarray", ring, IORING_REGISTER_BUFFERS, (void *)(uintptr_t)g_page, 1);
}

static char *map_anon(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("mmap");
	return p;
}

int main(int argc, char **argv)
{
	const char *file = NULL, *devdax = NULL, *readfile = NULL, *kind;
	int anon = 0, priv = 0, touch = 0, mixed = 0, bad = 0, i, rc;
	size_t len = 2u << 20;
	char *addr;

	g_page = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
		const char *o = argv[i];
		int takes = !strcmp(o, "--len") || !strcmp(o, "--read") || !strcmp(o, "--file") || !strcmp(o, "--devdax");

		if (takes && i + 1 >= argc)
			usage();
		if (!strcmp(o, "--len")) {
			len = parse_size(argv[i + 1]);
			if (!len)
				usage();
		} else if (!strcmp(o, "--read")) readfile = argv[i + 1];
		else if (!strcmp(o, "--file")) file = argv[i + 1];
		else if (!strcmp(o, "--devdax")) devdax = argv[i + 1];
		else if (!strcmp(o, "--anon")) anon = 1;
		else if (!strcmp(o, "--private")) priv = 1;
		else if (!strcmp(o, "--touch")) touch = 1;
		else if (!strcmp(o, "--mixed")) mixed = 1;
		else if (!strcmp(o, "--bad")) bad = 1;
		else usage();
		i += takes;
	}
	if (!!file + anon + !!devdax != 1 || ((priv || touch) && !file) || (bad ? i != argc : i == argc))
		usage();
	for (int j = i; j < argc; j++) {
		int k = 0;

		while (vias[k] && strcmp(vias[k], argv[j]))
			k++;
		if (!vias[k]) {
			fprintf(stderr, "uring: unknown VIA %s\n", argv[j]);
			usage();
		}
	}

	if (anon) {
		kind = "anon";
		addr = map_anon(len);
	} else {
		struct stat st;

		kind = devdax ? "devdax" : priv ? "file-private" : "file";
		g_memfd = open(devdax ? devdax : file, O_RDWR | O_CLOEXEC | (file ? O_CREAT : 0), 0644);
		if (g_memfd < 0)
			fatal(devdax ? devdax : file);
		/* a mapping past EOF would SIGBUS on touch and EFAULT on pin */
		if (file && (fstat(g_memfd, &st) < 0 || ((size_t)st.st_size < len && ftruncate(g_memfd, (off_t)len) < 0)))
			fatal(file);
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, priv ? MAP_PRIVATE : MAP_SHARED, g_memfd, 0);
		if (addr == MAP_FAILED)
			fatal("mmap");
	}
	if (touch)
		for (size_t off = 0; off < len; off += (size_t)g_page)
			((volatile char *)addr)[off] = 0x5a;
	/* --mixed: an anonymous buffer first, so only iovec 1 is the region */
	if (mixed)
		g_iov[g_niov++] = (struct iovec){ .iov_base = map_anon(len), .iov_len = len };
	g_iov[g_niov++] = (struct iovec){ .iov_base = addr, .iov_len = len };
	printf("REGION kind=%s addr=%p len=%zu iovecs=%u\n", kind, (void *)addr, len, g_niov);

	rc = io_uring_queue_init(8, &g_ring, 0);
	if (rc < 0) {
		errno = -rc;
		fatal("io_uring_queue_init");
	}
	if (bad) {
		bad_inputs();
		return 0;
	}
	for (; i < argc; i++) {
		int table;

		if (register_via(argv[i], &table) == 0 && readfile)
			read_fixed(argv[i], readfile);
		if (table)
			report("unregister", argv[i], lib_err(io_uring_unregister_buffers(&g_ring)));
	}
	io_uring_queue_exit(&g_ring);
	return 0;
}
