/*
 * burst: the ioctl and syscall exports under load from many threads while
 * other threads register through the verbs exports, and fork from a
 * registering thread with the child registering at once.
 *
 * usage: burst [--ioctl-threads N] [--reg-threads N] [--iters N]
 *              [--fork-every N] [--unverified DIR]
 *
 * Run with libdaxspy.so behind the shim and DAXSPY_STUB=1, so every
 * forwarded registration answers ENODEV.
 *
 * - ioctl threads (16): each, --iters times, in a burst: ioctl(FIONREAD)
 *   on a pipe holding 7 bytes (0, n = 7), ioctl(VIDIOC_QBUF) on /dev/null
 *   (a request the shim looks at, on a descriptor that is no V4L2 device:
 *   the kernel's ENOTTY), syscall(SYS_getpid), syscall(SYS_gettid),
 *   syscall(SYS_ioctl, FIONREAD) and syscall(SYS_io_uring_register) on the
 *   pipe (not a ring: the kernel's EOPNOTSUPP); errno must stay what the
 *   thread set before each call that succeeds.
 * - registering threads (4): ibv_reg_mr_iova2 on their own anonymous pages
 *   (NULL, ENODEV from the spy), and with --unverified, on a file mapping
 *   the shim cannot verify (NULL, EOPNOTSUPP: refused; see keep.c).
 * - registering thread 0 forks every --fork-every registrations; the child
 *   registers at once (anonymous, and the unverified mapping), checks
 *   getpid through syscall(), and exits 0 if every answer was right; the
 *   parent waits for it.
 *
 * Prints "BAD ..." for the first wrong answers, then
 *   BURST ioctl_threads=.. reg_threads=.. ioctl_calls=.. registrations=..
 *         forks=.. child_registrations=.. wrong=.. seconds=..
 *   JUDGED n          (registrations, parents' and children's: one audit record each)
 * Exit 0 when nothing was wrong, 1 otherwise, 2 on a setup failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#define SENTINEL 4242
#define LEN (4 * 4096)

static int g_iters = 2000, g_fork_every = 50;
static int g_pipe[2], g_devnull;
static char *g_unverified;
static struct ibv_pd g_pd;
static pthread_barrier_t g_start;
static atomic_ulong g_ioctl_calls, g_regs, g_forks, g_child_regs, g_wrong;
static atomic_int g_bad_lines;
static volatile unsigned int g_access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;

static void bad(const char *what, long got, int e, int want_e)
{
	atomic_fetch_add(&g_wrong, 1);
	if (atomic_fetch_add(&g_bad_lines, 1) < 10)
		printf("BAD pid=%d tid=%d %s: got %ld errno=%s want errno=%s\n", getpid(), gettid(), what, got,
		       errname(e), errname(want_e));
}

/* A success that must keep errno, or a failure with the kernel's errno. */
static void expect(const char *what, long got, long want, int want_errno)
{
	int e = errno;

	if (got != want || e != want_errno)
		bad(what, got, e, want_errno);
}

static void *ioctl_thread(void *arg)
{
	struct v4l2_buffer b = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_USERPTR };
	struct iovec iov = { arg, LEN };
	pid_t pid = getpid(), tid = gettid();

	b.m.userptr = (unsigned long)arg;
	b.length = LEN;
	pthread_barrier_wait(&g_start);
	for (int i = 0; i < g_iters; i++) {
		int n = -1;
		long r;

		errno = SENTINEL;
		r = ioctl(g_pipe[0], FIONREAD, &n);
		expect("ioctl FIONREAD", r == 0 ? n : r, 7, SENTINEL);
		errno = 0;
		r = ioctl(g_devnull, VIDIOC_QBUF, &b);
		expect("ioctl VIDIOC_QBUF /dev/null", r, -1, ENOTTY);
		errno = SENTINEL;
		r = syscall(SYS_getpid);
		expect("syscall getpid", r, pid, SENTINEL);
		errno = SENTINEL;
		r = syscall(SYS_gettid);
		expect("syscall gettid", r, tid, SENTINEL);
		errno = SENTINEL;
		n = -1;
		r = syscall(SYS_ioctl, g_pipe[0], FIONREAD, &n);
		expect("syscall ioctl FIONREAD", r == 0 ? n : r, 7, SENTINEL);
		errno = 0;
		r = syscall(SYS_io_uring_register, g_pipe[0], 0 /* IORING_REGISTER_BUFFERS */, &iov, 1);
		expect("syscall io_uring_register on a pipe", r, -1, EOPNOTSUPP);
		atomic_fetch_add(&g_ioctl_calls, 6);
	}
	return NULL;
}

/* One registration; right if NULL with `want`. */
static int reg_right(void *addr, int want)
{
	struct ibv_mr *mr;
	int e;

	errno = SENTINEL;
	mr = ibv_reg_mr_iova2(&g_pd, addr, LEN, (uintptr_t)addr, g_access);
	e = errno;
	if (mr || e != want) {
		bad(want == EOPNOTSUPP ? "register unverified" : "register anon", (long)(uintptr_t)mr, e, want);
		return 0;
	}
	return 1;
}

/* The child of a fork from a registering thread: registers at once. */
static void child(char *anon)
{
	int right = reg_right(anon, ENODEV);

	if (g_unverified)
		right &= reg_right(g_unverified, EOPNOTSUPP);
	errno = SENTINEL;
	right &= syscall(SYS_getpid) == getpid() && errno == SENTINEL;
	fflush(stdout);
	_exit(right ? 0 : 1);
}

static void *reg_thread(void *arg)
{
	int index = (int)(intptr_t)arg;
	char *anon = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (anon == MAP_FAILED)
		fatal("mmap");
	pthread_barrier_wait(&g_start);
	for (int i = 0; i < g_iters; i++) {
		reg_right(anon, ENODEV);
		atomic_fetch_add(&g_regs, 1);
		if (g_unverified) {
			reg_right(g_unverified, EOPNOTSUPP);
			atomic_fetch_add(&g_regs, 1);
		}
		if (index == 0 && g_fork_every > 0 && i % g_fork_every == 0) {
			int status;
			pid_t pid;

			fflush(stdout);
			pid = fork();
			if (pid < 0)
				fatal("fork");
			if (pid == 0)
				child(anon);
			if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
				bad("forked child", status, 0, 0);
			atomic_fetch_add(&g_forks, 1);
			atomic_fetch_add(&g_child_regs, g_unverified ? 2 : 1);
		}
	}
	munmap(anon, LEN);
	return NULL;
}

static char *map_unverified(const char *dir)
{
	char path[4096];
	int fd;
	void *p;

	snprintf(path, sizeof(path), "%s/burst-unverified.%d", dir, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, LEN))
		fatal(path);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		fatal("mmap --unverified");
	close(fd);
	unlink(path);
	return p;
}

int main(int argc, char **argv)
{
	int nioctl = 16, nreg = 4;
	pthread_t *tids;
	char *scratch;
	struct timespec t0, t1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			goto usage;
		if (!strcmp(a, "--ioctl-threads"))
			nioctl = atoi(v);
		else if (!strcmp(a, "--reg-threads"))
			nreg = atoi(v);
		else if (!strcmp(a, "--iters"))
			g_iters = atoi(v);
		else if (!strcmp(a, "--fork-every"))
			g_fork_every = atoi(v);
		else if (!strcmp(a, "--unverified"))
			g_unverified = map_unverified(v);
		else
			goto usage;
		i++;
	}
	if (nioctl < 0 || nreg < 1 || nioctl + nreg > 256 || g_iters < 1)
		goto usage;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe2(g_pipe, O_CLOEXEC) || write(g_pipe[1], "7 bytes", 7) != 7)
		fatal("pipe");
	g_devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	scratch = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	tids = calloc((size_t)(nioctl + nreg), sizeof(*tids));
	if (g_devnull < 0 || scratch == MAP_FAILED || !tids)
		fatal("setup");
	if (pthread_barrier_init(&g_start, NULL, (unsigned int)(nioctl + nreg + 1)))
		fatal("pthread_barrier_init");
	for (int t = 0; t < nreg; t++)
		if ((errno = pthread_create(&tids[t], NULL, reg_thread, (void *)(intptr_t)t)))
			fatal("pthread_create");
	for (int t = 0; t < nioctl; t++)
		if ((errno = pthread_create(&tids[nreg + t], NULL, ioctl_thread, scratch)))
			fatal("pthread_create");
	pthread_barrier_wait(&g_start);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int t = 0; t < nioctl + nreg; t++)
		pthread_join(tids[t], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("BURST ioctl_threads=%d reg_threads=%d ioctl_calls=%lu registrations=%lu forks=%lu "
	       "child_registrations=%lu wrong=%lu seconds=%.1f\n",
	       nioctl, nreg, atomic_load(&g_ioctl_calls), atomic_load(&g_regs), atomic_load(&g_forks),
	       atomic_load(&g_child_regs), atomic_load(&g_wrong),
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	printf("JUDGED %lu\n", atomic_load(&g_regs) + atomic_load(&g_child_regs));
	free(tids);
	return atomic_load(&g_wrong) ? 1 : 0;

usage:
	fprintf(stderr, "usage: burst [--ioctl-threads N] [--reg-threads N] [--iters N] [--fork-every N] "
			"[--unverified DIR]\n");
	return 2;
}
