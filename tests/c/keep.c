/*
 * keep: a program that takes no long-term pin of fs-DAX memory must not be
 * able to tell that daxguard is loaded. Around every kind of call the shim
 * interposes, on every path (forwarded and succeeding, forwarded and
 * failing, refused, forwarded unjudged, and calls it only passes through),
 * this checks that what the program can see of its own process is as it
 * was: errno (exactly the provider's, the kernel's or the refusal's), the
 * thread's signal mask, pending signals, every signal's disposition, the
 * program's descriptors (numbers, files, FD_CLOEXEC, status flags) and the
 * number its next open() gets, the current directory, the umask and the
 * locale.
 *
 * usage: keep [--unverified DIR]
 *
 * Runs with libdaxspy.so behind the shim (LD_PRELOAD=libdaxguard.so:
 * libdaxspy.so) or alone (the control: the same calls without daxguard;
 * every check must hold there too). The spy stands in for libibverbs: this
 * program switches it per call between DAXSPY_STUB=ok (succeed, errno
 * untouched) and DAXSPY_STUB=1 (fail with ENODEV), with setenv().
 *
 * --unverified DIR: map a file created in DIR, then unlink it. Where the
 * shim can neither statx the mapped inode (path gone, /proc/self/map_files
 * refused outside the initial user namespace) nor read the block device's
 * DAX flag (/sys hidden), it cannot verify the file: refused by default.
 * That is how a refusal is reached on a host without fs-DAX; the test
 * harness runs this under `unshare -U -r -m` with a tmpfs over /sys.
 * Without it, the refusal cases are skipped (one SKIP line each).
 *
 * Then the same with stderr a pipe whose reader is gone, so every line the
 * shim writes meets EPIPE: the program must live (SIGPIPE's default action
 * would end it), and no SIGPIPE may be left pending, unless the program had
 * one pending itself, which must stay.
 *
 * Output: "CASE <name> ok", "CASE <name> FAIL: <what differs>" or
 * "SKIP <name>: <why>"; "JUDGED <n>" (calls that reach the shim's guard,
 * one audit record each); last "keep: N passed, N failed". Exit 0 when
 * nothing failed, 1 otherwise, 2 on a setup failure.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/videodev2.h>
#include <locale.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <liburing.h>

#include "common.h"

/* Below the shim's own descriptors (moved to min(512, RLIMIT_NOFILE / 2)). */
#define FD_SCAN 256
#define SENTINEL 4242 /* an errno no call here sets */
#define ACC_RW (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

struct state {
	sigset_t mask, pending;
	void *handler[65];
	int sa_flags[65];
	int fdflags[FD_SCAN], flflags[FD_SCAN];
	dev_t dev[FD_SCAN];
	ino_t ino[FD_SCAN];
	int next_fd;
	char cwd[PATH_MAX];
	mode_t umask;
	char locale[512];
	locale_t uselocale;
};

static int g_pass, g_fail, g_judged, g_shim;
static struct ibv_pd g_pd;
static size_t g_page;
static char *g_anon, *g_unverified, *g_vmas;
static size_t g_len = 16 * 4096;

static void snap(struct state *s)
{
	struct stat st;
	mode_t m;
	int fd;

	memset(s, 0, sizeof(*s));
	pthread_sigmask(SIG_BLOCK, NULL, &s->mask);
	sigpending(&s->pending);
	for (int sig = 1; sig < 65; sig++) {
		struct sigaction sa;

		if (sigaction(sig, NULL, &sa) == 0) {
			s->handler[sig] = (void *)sa.sa_handler;
			s->sa_flags[sig] = sa.sa_flags;
		}
	}
	for (fd = 0; fd < FD_SCAN; fd++) {
		s->fdflags[fd] = fcntl(fd, F_GETFD);
		s->flflags[fd] = fcntl(fd, F_GETFL);
		if (s->fdflags[fd] >= 0 && fstat(fd, &st) == 0) {
			s->dev[fd] = st.st_dev;
			s->ino[fd] = st.st_ino;
		}
	}
	fd = open("/dev/null", O_RDONLY);
	s->next_fd = fd;
	if (fd >= 0)
		close(fd);
	if (!getcwd(s->cwd, sizeof(s->cwd)))
		strcpy(s->cwd, "?");
	m = umask(0);
	umask(m);
	s->umask = m;
	snprintf(s->locale, sizeof(s->locale), "%s", setlocale(LC_ALL, NULL));
	s->uselocale = uselocale((locale_t)0);
}

/* Appends what differs between a and b to out; returns how many things. */
static int diff(const struct state *a, const struct state *b, char *out, size_t n)
{
	int k = 0;
	size_t used = strlen(out);

#define SAY(...) (k++, used += (size_t)snprintf(out + used, used < n ? n - used : 0, __VA_ARGS__))
	for (int sig = 1; sig < 65; sig++) {
		if (sigismember(&a->mask, sig) != sigismember(&b->mask, sig))
			SAY(" mask[%d] %d->%d", sig, sigismember(&a->mask, sig), sigismember(&b->mask, sig));
		if (sigismember(&a->pending, sig) != sigismember(&b->pending, sig))
			SAY(" pending[%d] %d->%d", sig, sigismember(&a->pending, sig), sigismember(&b->pending, sig));
		if (a->handler[sig] != b->handler[sig] || a->sa_flags[sig] != b->sa_flags[sig])
			SAY(" sigaction[%d]", sig);
	}
	for (int fd = 0; fd < FD_SCAN; fd++) {
		if (a->fdflags[fd] != b->fdflags[fd] || a->flflags[fd] != b->flflags[fd])
			SAY(" fd %d flags %d/%#x->%d/%#x", fd, a->fdflags[fd], a->flflags[fd], b->fdflags[fd],
			    b->flflags[fd]);
		else if (a->dev[fd] != b->dev[fd] || a->ino[fd] != b->ino[fd])
			SAY(" fd %d now names another file", fd);
	}
	if (a->next_fd != b->next_fd)
		SAY(" next fd %d->%d", a->next_fd, b->next_fd);
	if (strcmp(a->cwd, b->cwd))
		SAY(" cwd %s->%s", a->cwd, b->cwd);
	if (a->umask != b->umask)
		SAY(" umask %03o->%03o", a->umask, b->umask);
	if (strcmp(a->locale, b->locale) || a->uselocale != b->uselocale)
		SAY(" locale %s->%s", a->locale, b->locale);
#undef SAY
	return k;
}

static struct state g_before;
static const char *g_case;

/* Starts a case: state taken, errno set to `e` (what the call must keep if it succeeds). */
static void begin(const char *name, int e)
{
	g_case = name;
	snap(&g_before);
	errno = e;
}

/*
 * Ends a case: `ok` is whether the result was the expected one, `got` the
 * errno after the call, `want` the errno the caller must see.
 */
static void end(int ok, int got, int want, const char *result)
{
	struct state after;
	char what[2048] = "";

	snap(&after);
	if (!ok)
		snprintf(what, sizeof(what), " result %s", result);
	if (got != want)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), " errno %s (%d), want %s (%d)",
			 errname(got), got, errname(want), want);
	diff(&g_before, &after, what, sizeof(what));
	if (*what) {
		printf("CASE %s FAIL:%s\n", g_case, what);
		g_fail++;
	} else {
		printf("CASE %s ok\n", g_case);
		g_pass++;
	}
	fflush(stdout);
}

static void skip(const char *name, const char *why)
{
	printf("SKIP %s: %s\n", name, why);
}

static void stub(const char *how)
{
	setenv("DAXSPY_STUB", how, 1);
}

/* ---- the kernel's own answer, asked without libc (and so without us) ---- */

#if defined(__x86_64__)
static long raw_syscall(long n, long a1, long a2, long a3, long a4)
{
	long ret;
	register long r10 __asm__("r10") = a4;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10) : "rcx", "r11", "memory");
	return ret;
}
#define HAVE_RAW 1
#else
#define HAVE_RAW 0
#endif

/* errno the kernel gives for this call (0: success); -1 when it cannot be asked. */
static int kernel_errno(long n, long a1, long a2, long a3, long a4)
{
#if HAVE_RAW
	long r = raw_syscall(n, a1, a2, a3, a4);

	return r < 0 && r > -4096 ? (int)-r : 0;
#else
	(void)n, (void)a1, (void)a2, (void)a3, (void)a4;
	return -1;
#endif
}

/* ---- verbs ---- */

struct mr_init_attr { /* upstream struct ibv_mr_init_attr (rdma-core 57+) */
	size_t length;
	int access;
	uint64_t comp_mask, iova;
	void *addr;
	int fd;
	uint64_t fd_offset;
	void *dmah;
};

typedef struct ibv_mr *(*reg_mr_ex_fn)(struct ibv_pd *, struct mr_init_attr *);

static volatile unsigned int g_access = ACC_RW;

enum entry { E_REG_MR, E_IOVA, E_IOVA2, E_REREG, E_REG_MR_EX, E_COUNT };
static const char *entry_name[E_COUNT] = { "reg_mr", "iova", "iova2", "rereg", "reg_mr_ex" };

/* Calls one entry on [addr, addr + len); returns whether it succeeded. */
static int reg(enum entry e, void *addr, size_t len, unsigned int access)
{
	static struct ibv_mr old_mr;
	struct ibv_mr *mr = NULL;

	switch (e) {
	case E_REG_MR:
		mr = (ibv_reg_mr)(&g_pd, addr, len, (int)access);
		break;
	case E_IOVA:
		mr = (ibv_reg_mr_iova)(&g_pd, addr, len, (uintptr_t)addr, (int)access);
		break;
	case E_IOVA2:
		mr = ibv_reg_mr_iova2(&g_pd, addr, len, (uintptr_t)addr, access);
		break;
	case E_REREG:
		old_mr.pd = &g_pd;
		return ibv_rereg_mr(&old_mr, IBV_REREG_MR_CHANGE_TRANSLATION | IBV_REREG_MR_CHANGE_ACCESS, NULL, addr,
				    len, (int)access) == 0;
	case E_REG_MR_EX: {
		reg_mr_ex_fn f = (reg_mr_ex_fn)dlsym(RTLD_DEFAULT, "ibv_reg_mr_ex");
		struct mr_init_attr attr = { .length = len, .access = (int)access, .comp_mask = 2, .addr = addr, .fd = -1 };

		if (!f) {
			errno = ENOSYS;
			return 0;
		}
		mr = f(&g_pd, &attr);
		break;
	}
	default:
		break;
	}
	return mr != NULL;
}

/* One case per entry: `stub_how` for the spy, the result and errno the caller must see. */
static void verbs_cases(const char *what, void *addr, size_t len, unsigned int access, const char *stub_how,
			int want_ok, int want_errno, int start_errno, int judged)
{
	char name[128];

	for (int e = 0; e < E_COUNT; e++) {
		int ok;

		snprintf(name, sizeof(name), "verbs.%s.%s", what, entry_name[e]);
		stub(stub_how);
		begin(name, start_errno);
		ok = reg((enum entry)e, addr, len, access);
		end(ok == want_ok, errno, want_ok ? start_errno : want_errno, ok ? "success" : "failure");
		g_judged += judged && g_shim;
	}
}

static void verbs(void)
{
	/* Forwarded, the provider succeeds and leaves errno alone: 0 and a sentinel. */
	verbs_cases("ok.anon.errno0", g_anon, g_len, g_access, "ok", 1, 0, 0, 1);
	verbs_cases("ok.anon.sentinel", g_anon, g_len, g_access, "ok", 1, 0, SENTINEL, 1);
	/* The ranges: many VMAs, and outside user space (the kernel judges those). */
	verbs_cases("ok.many-vmas", g_vmas, 64 * g_page, g_access, "ok", 1, 0, 0, 1);
	/* [4096, 2^47 - 4096) holds every mapping of the process, the unverifiable one too. */
	if (g_unverified && g_shim)
		verbs_cases("refused.all-of-user-space", (void *)4096, ((size_t)1 << 47) - 8192, g_access, "ok", 0,
			    EOPNOTSUPP, 0, 1);
	else
		verbs_cases("ok.all-of-user-space", (void *)4096, ((size_t)1 << 47) - 8192, g_access, "ok", 1, 0, 0, 1);
	verbs_cases("ok.kernel-half", (void *)0xffff800000000000ul, 4096, g_access, "ok", 1, 0, 0, 1);
	verbs_cases("ok.past-47-bits", (void *)0x0000800000000000ul, 4096, g_access, "ok", 1, 0, SENTINEL, 1);
	/* Forwarded, the provider fails. */
	verbs_cases("fail.anon", g_anon, g_len, g_access, "1", 0, ENODEV, SENTINEL, 1);
	/* Forwarded unjudged: on-demand pins nothing. */
	verbs_cases("odp.ok", g_anon, g_len, g_access | IBV_ACCESS_ON_DEMAND, "ok", 1, 0, SENTINEL, 1);
	verbs_cases("odp.fail", g_anon, g_len, g_access | IBV_ACCESS_ON_DEMAND, "1", 0, ENODEV, 0, 1);
	/* Refused (the spy must not be reached: it would answer ENODEV). */
	if (!g_unverified)
		skip("verbs.refused", "no --unverified mapping");
	else if (g_shim)
		verbs_cases("refused", g_unverified, g_len, g_access, "1", 0, EOPNOTSUPP, SENTINEL, 1);
	else
		verbs_cases("refused(control)", g_unverified, g_len, g_access, "1", 0, ENODEV, SENTINEL, 0);
}

/* ---- ioctl and syscall on descriptors that are not V4L2 devices ---- */

static void ioctls(void)
{
	int p[2], n = -1, rc, devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), want;
	struct v4l2_buffer b = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_USERPTR };
	long r;

	if (pipe(p))
		fatal("pipe");
	b.m.userptr = (unsigned long)(g_unverified ? g_unverified : g_anon);
	b.length = (unsigned int)g_len;

	begin("ioctl.pipe.FIONREAD", SENTINEL);
	rc = ioctl(p[0], FIONREAD, &n);
	end(rc == 0 && n == 0, errno, SENTINEL, "FIONREAD failed");

	want = kernel_errno(SYS_ioctl, p[0], VIDIOC_QBUF, (long)&b, 0);
	begin("ioctl.pipe.VIDIOC_QBUF", SENTINEL);
	rc = ioctl(p[0], VIDIOC_QBUF, &b);
	end(rc == -1 && want != 0, errno, want < 0 ? ENOTTY : want, "QBUF on a pipe did not fail");

	want = kernel_errno(SYS_ioctl, devnull, VIDIOC_PREPARE_BUF, 0, 0);
	begin("ioctl.devnull.VIDIOC_PREPARE_BUF.NULL", 0);
	rc = ioctl(devnull, VIDIOC_PREPARE_BUF, NULL);
	end(rc == -1, errno, want < 0 ? ENOTTY : want, "PREPARE_BUF on /dev/null did not fail");

	begin("ioctl.badfd.VIDIOC_QBUF", 0);
	rc = ioctl(-1, VIDIOC_QBUF, &b);
	end(rc == -1, errno, EBADF, "QBUF on -1 did not fail");

	begin("syscall.getpid", SENTINEL);
	r = syscall(SYS_getpid);
	end(r == getpid(), errno, SENTINEL, "wrong pid");

	begin("syscall.ioctl.pipe.FIONREAD", 0);
	r = syscall(SYS_ioctl, p[0], FIONREAD, &n);
	end(r == 0, errno, 0, "FIONREAD failed");

	want = kernel_errno(SYS_ioctl, p[0], VIDIOC_QBUF, (long)&b, 0);
	begin("syscall.ioctl.pipe.VIDIOC_QBUF", SENTINEL);
	r = syscall(SYS_ioctl, p[0], VIDIOC_QBUF, &b);
	end(r == -1, errno, want < 0 ? ENOTTY : want, "QBUF on a pipe did not fail");

	{
		struct iovec iov = { g_unverified ? g_unverified : g_anon, g_len };

		want = kernel_errno(SYS_io_uring_register, p[0], 0 /* IORING_REGISTER_BUFFERS */, (long)&iov, 1);
		begin("syscall.io_uring_register.pipe", SENTINEL);
		r = syscall(SYS_io_uring_register, p[0], 0, &iov, 1);
		end(r == -1, errno, want < 0 ? EOPNOTSUPP : want, "registering on a pipe did not fail");
	}

	begin("syscall.getppid.six-args", SENTINEL);
	r = syscall(SYS_getppid, 1, 2, 3, 4, 5, 6);
	end(r == getppid(), errno, SENTINEL, "wrong ppid");
	close(p[0]);
	close(p[1]);
	close(devnull);
}

/* ---- io_uring on a real ring ---- */

static void uring(void)
{
	struct io_uring ring;
	struct iovec anon = { g_anon, g_len }, bad = { NULL, 0 }, unv = { g_unverified, g_len };
	char *none = mmap(NULL, g_page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec noaccess = { none, g_page };
	__u64 tag = 0;
	int rc, fd;
	long r;

	rc = io_uring_queue_init(8, &ring, 0);
	if (rc < 0) {
		skip("uring", "io_uring_queue_init failed (io_uring disabled here?)");
		return;
	}
	fd = ring.ring_fd;

	begin("uring.lib.register_buffers.ok", SENTINEL);
	rc = io_uring_register_buffers(&ring, &anon, 1);
	end(rc == 0, errno, SENTINEL, "register failed");
	g_judged += g_shim;
	io_uring_unregister_buffers(&ring);

	begin("uring.lib.register_buffers_tags.ok", 0);
	rc = io_uring_register_buffers_tags(&ring, &anon, &tag, 1);
	end(rc == 0, errno, 0, "register failed");
	g_judged += g_shim;
	io_uring_unregister_buffers(&ring);

	if (io_uring_register_buffers_sparse(&ring, 2) == 0) {
		begin("uring.lib.update_tag.ok", SENTINEL);
		rc = io_uring_register_buffers_update_tag(&ring, 0, &anon, &tag, 1);
		end(rc == 1, errno, SENTINEL, "update failed");
		g_judged += g_shim;
		io_uring_unregister_buffers(&ring);
	}

	begin("uring.lib.register.ok", SENTINEL);
	rc = io_uring_register(fd, IORING_REGISTER_BUFFERS, &anon, 1);
	end(rc == 0, errno, SENTINEL, "register failed");
	g_judged += g_shim;
	io_uring_unregister_buffers(&ring);

	begin("uring.syscall.register.ok", SENTINEL);
	r = syscall(SYS_io_uring_register, fd, IORING_REGISTER_BUFFERS, &anon, 1);
	end(r == 0, errno, SENTINEL, "register failed");
	g_judged += g_shim;
	begin("uring.syscall.unregister", 0);
	r = syscall(SYS_io_uring_register, fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
	end(r == 0, errno, 0, "unregister failed");

	/* Forwarded and failing: the kernel cannot pin PROT_NONE pages (EFAULT). */
	begin("uring.lib.register_buffers.fail", SENTINEL);
	rc = io_uring_register_buffers(&ring, &noaccess, 1);
	end(rc < 0, errno, SENTINEL, "registering PROT_NONE pages succeeded");
	g_judged += g_shim;
	if (rc == 0)
		io_uring_unregister_buffers(&ring);
	begin("uring.syscall.register.fail", 0);
	r = syscall(SYS_io_uring_register, fd, IORING_REGISTER_BUFFERS, &noaccess, 1);
	end(r == -1, errno, EFAULT, "registering PROT_NONE pages succeeded");
	g_judged += g_shim;
	if (r == 0)
		syscall(SYS_io_uring_register, fd, IORING_UNREGISTER_BUFFERS, NULL, 0);

	/* Nothing to judge (one empty iovec): forwarded untouched, the kernel answers. */
	begin("uring.lib.register_buffers.empty", SENTINEL);
	rc = io_uring_register_buffers(&ring, &bad, 1);
	end(1, errno, SENTINEL, "");
	if (rc == 0)
		io_uring_unregister_buffers(&ring);

	if (!g_unverified) {
		skip("uring.refused", "no --unverified mapping");
	} else if (g_shim) {
		begin("uring.lib.register_buffers.refused", SENTINEL);
		rc = io_uring_register_buffers(&ring, &unv, 1);
		end(rc == -EOPNOTSUPP, errno, SENTINEL, "not refused with -EOPNOTSUPP");
		g_judged++;
		begin("uring.lib.register.refused", 0);
		rc = io_uring_register(fd, IORING_REGISTER_BUFFERS, &unv, 1);
		end(rc == -EOPNOTSUPP, errno, 0, "not refused with -EOPNOTSUPP");
		g_judged++;
		begin("uring.syscall.register.refused", SENTINEL);
		r = syscall(SYS_io_uring_register, fd, IORING_REGISTER_BUFFERS, &unv, 1);
		end(r == -1, errno, EOPNOTSUPP, "not refused");
		g_judged++;
	}
	io_uring_queue_exit(&ring);
	munmap(none, g_page);
}

/* ---- stderr a pipe with no reader ---- */

static int sigpipe_pending(void)
{
	sigset_t p;

	return sigpending(&p) == 0 && sigismember(&p, SIGPIPE) == 1;
}

/* Calls that make the shim write a line: a refusal if it can, else a provider failure. */
static void noisy_calls(const char *how)
{
	char name[128];
	int ok;

	snprintf(name, sizeof(name), "sigpipe.%s.verbs-fail", how);
	stub("1");
	begin(name, SENTINEL);
	ok = reg(E_IOVA2, g_anon, g_len, g_access);
	end(!ok, errno, ENODEV, "succeeded");
	g_judged += g_shim;
	if (g_unverified) {
		snprintf(name, sizeof(name), "sigpipe.%s.verbs-refused", how);
		begin(name, SENTINEL);
		ok = reg(E_REG_MR, g_unverified, g_len, g_access);
		end(!ok, errno, g_shim ? EOPNOTSUPP : ENODEV, "succeeded");
		g_judged += g_shim;
	}
}

static void sigpipe(void)
{
	int p[2], saved = dup(2);
	sigset_t pipe_set;
	struct timespec zero = { 0, 0 };

	if (saved < 0 || pipe(p))
		fatal("pipe");
	close(p[0]);
	dup2(p[1], 2);
	close(p[1]);
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);

	/* Default disposition, not blocked: a SIGPIPE would end the program here. */
	signal(SIGPIPE, SIG_DFL);
	noisy_calls("default");

	/* Blocked by the program, none pending: none may be left pending. */
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	noisy_calls("blocked");

	/* Blocked, and the program's own pending: it must stay. */
	raise(SIGPIPE);
	noisy_calls("own-pending");
	begin("sigpipe.own-pending.still-there", 0);
	end(sigpipe_pending(), errno, 0, "the program's own SIGPIPE was taken");
	sigtimedwait(&pipe_set, NULL, &zero);
	pthread_sigmask(SIG_UNBLOCK, &pipe_set, NULL);

	/* Ignored. */
	signal(SIGPIPE, SIG_IGN);
	noisy_calls("ignored");
	signal(SIGPIPE, SIG_DFL);

	dup2(saved, 2);
	close(saved);
}

/* The checker itself: each kind of change it claims to see, it sees. */
static void self_test(void)
{
	struct state a, b;
	char what[2048];
	sigset_t set;
	int fd, flags;
	mode_t m;

#define EXPECT_SEEN(label, change, undo)                                       \
	do {                                                                   \
		snap(&a);                                                      \
		change;                                                        \
		snap(&b);                                                      \
		undo;                                                          \
		what[0] = 0;                                                   \
		if (diff(&a, &b, what, sizeof(what)) == 0) {                   \
			printf("CASE selftest.%s FAIL: change not seen\n", label); \
			g_fail++;                                              \
		} else {                                                       \
			printf("CASE selftest.%s ok\n", label);                \
			g_pass++;                                              \
		}                                                              \
	} while (0)

	sigemptyset(&set);
	sigaddset(&set, SIGURG);
	EXPECT_SEEN("mask", pthread_sigmask(SIG_BLOCK, &set, NULL), pthread_sigmask(SIG_UNBLOCK, &set, NULL));
	EXPECT_SEEN("pending", (pthread_sigmask(SIG_BLOCK, &set, NULL), raise(SIGURG)),
		    (sigwaitinfo(&set, NULL), pthread_sigmask(SIG_UNBLOCK, &set, NULL)));
	EXPECT_SEEN("disposition", signal(SIGURG, SIG_IGN), signal(SIGURG, SIG_DFL));
	EXPECT_SEEN("next-fd", fd = open("/dev/null", O_RDONLY), close(fd));
	fd = open("/dev/null", O_RDONLY);
	flags = fcntl(fd, F_GETFD);
	EXPECT_SEEN("cloexec", fcntl(fd, F_SETFD, flags | FD_CLOEXEC), fcntl(fd, F_SETFD, flags));
	close(fd);
	EXPECT_SEEN("cwd", if (chdir("/")) fatal("chdir /"), if (chdir(a.cwd)) fatal("chdir back"));
	EXPECT_SEEN("umask", m = umask(0777), umask(m));
	EXPECT_SEEN("locale", setlocale(LC_ALL, "C"), setlocale(LC_ALL, a.locale));
#undef EXPECT_SEEN
}

/* ---- setup ---- */

static char *map_unverified(const char *dir)
{
	char path[PATH_MAX];
	int fd;
	void *p;

	snprintf(path, sizeof(path), "%s/keep-unverified.%d", dir, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)g_len))
		fatal(path);
	p = mmap(NULL, g_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		fatal("mmap --unverified");
	close(fd);
	unlink(path);
	return p;
}

int main(int argc, char **argv)
{
	const char *unverified_dir = NULL;
	sigset_t odd;
	int keep_plain[2];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--unverified") && i + 1 < argc)
			unverified_dir = argv[++i];
		else {
			fprintf(stderr, "usage: keep [--unverified DIR]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	g_page = (size_t)sysconf(_SC_PAGESIZE);
	g_shim = dlsym(RTLD_DEFAULT, "daxguard_version") != NULL;
	printf("SHIM %s\n", g_shim ? "loaded" : "absent");

	/* State worth keeping, unlike the defaults: odd signals blocked, a
	 * handler, a umask, a locale, descriptors with and without FD_CLOEXEC. */
	sigemptyset(&odd);
	sigaddset(&odd, SIGUSR2);
	sigaddset(&odd, SIGRTMIN + 3);
	pthread_sigmask(SIG_BLOCK, &odd, NULL);
	signal(SIGUSR1, SIG_IGN);
	umask(027);
	if (!setlocale(LC_ALL, "C.UTF-8"))
		setlocale(LC_ALL, "C");
	if (pipe(keep_plain) || fcntl(keep_plain[0], F_SETFD, FD_CLOEXEC))
		fatal("pipe");
	if (unverified_dir && chdir(unverified_dir))
		fatal("chdir");

	g_anon = mmap(NULL, g_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g_vmas = mmap(NULL, 64 * g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g_anon == MAP_FAILED || g_vmas == MAP_FAILED)
		fatal("mmap");
	memset(g_anon, 0xa5, g_len);
	for (int i = 0; i < 64; i += 2) /* 64 VMAs: every other page read-only */
		mprotect(g_vmas + (size_t)i * g_page, g_page, PROT_READ);
	if (unverified_dir)
		g_unverified = map_unverified(unverified_dir);

	self_test();
	verbs();
	ioctls();
	uring();
	sigpipe();

	printf("JUDGED %d\n", g_judged);
	printf("keep: %d passed, %d failed\n", g_pass, g_fail);
	return g_fail ? 1 : 0;
}
