/*
 * life: registrations across the events of a process's life that can leave
 * a preloaded library with stale state: fork, vfork+exec, a program closing
 * every descriptor, libibverbs loaded late with dlopen(), and two threads
 * making the very first registration at the same moment.
 *
 * usage: life (--device NAME | --fake-pd) --dax PATH [--file-forwarded] CASE...
 *   fork       register; fork; the child opens its own device, registers the
 *              same ranges, then swaps them (the DAX file mapped where the
 *              anonymous pages were and vice versa) and registers again: a
 *              child answering from the parent's /proc/self/maps descriptor
 *              or cache would get the swapped pair wrong
 *   vfork      register; vfork + exec of this program (`exec-child`), which
 *              registers in a fresh image; the parent registers again
 *   closefrom  a first registration (refused fs-DAX, no provider needed) so the
 *              shim opens its descriptors; closefrom(3); reuse the lowest
 *              numbers and, with dup3, the shim's own (found in /proc/self/fd)
 *              for files of our own (read-write); register; our files must be
 *              untouched (same inode, offset 0, same size and content)
 *   dlopen     must run first: libibverbs is not loaded yet. Register through
 *              the shim's export before it is loaded (fs-DAX refused; anonymous
 *              fails, nothing to forward to), then dlopen(RTLD_LOCAL) it and
 *              register through dlvsym(ibv_reg_mr) from that handle (with
 *              the shim's dlsym wrapper: the shim's export; without it,
 *              libibverbs' own, whose inner ibv_reg_mr_iova2 call is
 *              guarded) and the shim's export
 *   race       ROUNDS (default 10) fresh processes (`race-once`), each with two
 *              threads making their first registration at the same moment
 *   mapwait    map --dax, print "READY pid=N", wait for a line on stdin (the
 *              caller renames, unlinks or over-mounts the file meanwhile),
 *              then register it and an anonymous control
 *
 * --dax PATH is an fs-DAX file (created or extended as needed); it must be
 * refused with EOPNOTSUPP, and anonymous memory registered. --fake-pd (host,
 * with libdaxspy.so's DAXSPY_STUB=1 behind the shim): anonymous registrations
 * must reach the provider (ENODEV). --file-forwarded: PATH is not DAX, it is
 * expected to get the anonymous answer.
 *
 * Not linked with libibverbs: every verbs function comes from dlopen(), and
 * registrations go through dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova2"), the
 * definition a linked program would bind to (the shim's, when preloaded).
 *
 * Prints "PASS reg <what>: <answer>" or "FAIL reg <what>: got X, want Y" per
 * registration, "PASS <what>" / "FAIL <what>: why" per other check. Exit 0
 * when nothing failed (children included), 1 otherwise, 2 on a usage error
 * or failed setup.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#define ACC_RW (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

typedef struct ibv_mr *(*reg_iova2_fn)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int);
typedef struct ibv_mr *(*reg_mr_fn)(struct ibv_pd *, void *, size_t, int);

static struct {
	void *h;
	struct ibv_device **(*get_device_list)(int *);
	void (*free_device_list)(struct ibv_device **);
	const char *(*get_device_name)(struct ibv_device *);
	struct ibv_context *(*open_device)(struct ibv_device *);
	struct ibv_pd *(*alloc_pd)(struct ibv_context *);
	int (*dereg_mr)(struct ibv_mr *);
	reg_iova2_fn reg; /* what a linked program binds to */
} v;

static struct ibv_pd fake_pd;
static const char *g_device, *g_dax;
static int g_fake, g_forwarded, g_fails, g_want_anon, g_want_dax;
static size_t g_page;
static char **g_argv;

static void usage(void)
{
	fprintf(stderr, "usage: life (--device NAME | --fake-pd) --dax PATH [--file-forwarded] CASE...\n"
			"CASE: fork vfork closefrom dlopen race [ROUNDS] mapwait\n");
	exit(2);
}

static void pass(const char *what)
{
	printf("PASS %s\n", what);
}

static void failf(const char *what, const char *why)
{
	printf("FAIL %s: %s\n", what, why);
	g_fails++;
}

static void *sym(void *h, const char *name, const char *ver)
{
	void *p = ver ? dlvsym(h, name, ver) : dlsym(h, name);

	if (!p) {
		fprintf(stderr, "life: %s not found: %s\n", name, dlerror());
		exit(2);
	}
	return p;
}

/* Loads libibverbs (RTLD_GLOBAL, as if linked, unless told otherwise). */
static void verbs_load(int scope)
{
	if (v.h)
		return;
	v.h = dlopen("libibverbs.so.1", RTLD_NOW | scope);
	if (!v.h) {
		fprintf(stderr, "life: dlopen libibverbs.so.1: %s\n", dlerror());
		exit(2);
	}
	v.get_device_list = sym(v.h, "ibv_get_device_list", "IBVERBS_1.1");
	v.free_device_list = sym(v.h, "ibv_free_device_list", "IBVERBS_1.1");
	v.get_device_name = sym(v.h, "ibv_get_device_name", "IBVERBS_1.1");
	v.open_device = sym(v.h, "ibv_open_device", "IBVERBS_1.1");
	v.alloc_pd = sym(v.h, "ibv_alloc_pd", "IBVERBS_1.1");
	v.dereg_mr = sym(v.h, "ibv_dereg_mr", "IBVERBS_1.1");
	v.reg = dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova2");
	if (!v.reg) /* RTLD_LOCAL and no shim: libibverbs' own */
		v.reg = sym(v.h, "ibv_reg_mr_iova2", "IBVERBS_1.8");
}

/* A protection domain on a device context of this process's own. */
static struct ibv_pd *get_pd(void)
{
	struct ibv_context *ctx = NULL;
	struct ibv_device **list;
	struct ibv_pd *pd;
	int n;

	if (g_fake)
		return &fake_pd;
	verbs_load(RTLD_GLOBAL);
	list = v.get_device_list(&n);
	if (!list)
		fatal("ibv_get_device_list");
	for (int i = 0; i < n && !ctx; i++)
		if (strcmp(v.get_device_name(list[i]), g_device) == 0)
			ctx = v.open_device(list[i]);
	v.free_device_list(list);
	if (!ctx) {
		fprintf(stderr, "life: RDMA device '%s' not found or cannot be opened\n", g_device);
		exit(2);
	}
	pd = v.alloc_pd(ctx);
	if (!pd)
		fatal("ibv_alloc_pd");
	return pd;
}

/* One registration through `fn` (default: the bound ibv_reg_mr_iova2) and its verdict line. */
static void expect_with(const char *what, reg_mr_fn fn, struct ibv_pd *pd, void *addr, int want)
{
	struct ibv_mr *mr;
	char why[96];
	int got;

	errno = 0;
	mr = fn ? fn(pd, addr, 2 * g_page, ACC_RW) : v.reg(pd, addr, 2 * g_page, (uintptr_t)addr, ACC_RW);
	got = mr ? 0 : errno;
	if (mr && v.dereg_mr(mr) != 0)
		fatal("ibv_dereg_mr");
	if (got == want) {
		printf("PASS reg %s pid=%d: %s\n", what, (int)getpid(), answer(got));
	} else {
		snprintf(why, sizeof(why), "got %s, want %s", answer(got), answer(want));
		printf("FAIL reg %s pid=%d: %s\n", what, (int)getpid(), why);
		g_fails++;
	}
}

static void expect(const char *what, struct ibv_pd *pd, void *addr, int want)
{
	expect_with(what, NULL, pd, addr, want);
}

static char *map_anon(void *at)
{
	char *p = mmap(at, 2 * g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0),
		       -1, 0);

	if (p == MAP_FAILED)
		fatal("mmap anon");
	return p;
}

static char *map_dax(void *at)
{
	struct stat st;
	char *p;
	int fd = open(g_dax, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		fatal(g_dax);
	if (fstat(fd, &st) != 0)
		fatal("fstat");
	if ((size_t)st.st_size < 2 * g_page && ftruncate(fd, (off_t)(2 * g_page)) != 0)
		fatal("ftruncate");
	p = mmap(at, 2 * g_page, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), fd, 0);
	if (p == MAP_FAILED)
		fatal("mmap --dax");
	close(fd);
	return p;
}

/* This program's path, for exec. */
static const char *self_exe(void)
{
	static char buf[PATH_MAX];
	ssize_t n;

	if (strchr(g_argv[0], '/'))
		return g_argv[0];
	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		fatal("readlink /proc/self/exe");
	buf[n] = 0;
	return buf;
}

/* vfork + exec of this program with the same options and one CASE; its exit status. */
static int run_self(const char *kase)
{
	char *args[8];
	int n = 0, status;
	pid_t pid;

	args[n++] = g_argv[0];
	if (g_fake) {
		args[n++] = "--fake-pd";
	} else {
		args[n++] = "--device";
		args[n++] = (char *)g_device;
	}
	args[n++] = "--dax";
	args[n++] = (char *)g_dax;
	if (g_forwarded)
		args[n++] = "--file-forwarded";
	args[n++] = (char *)kase;
	args[n] = NULL;
	fflush(stdout);
	pid = vfork();
	if (pid < 0)
		fatal("vfork");
	if (pid == 0) {
		execv(self_exe(), args);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		fatal("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void case_fork(void)
{
	struct ibv_pd *pd = get_pd();
	char *anon = map_anon(NULL), *dax = map_dax(NULL);
	int status;
	pid_t child;

	expect("fork: parent anon", pd, anon, g_want_anon);
	expect("fork: parent dax", pd, dax, g_want_dax);
	fflush(stdout);
	child = fork();
	if (child < 0)
		fatal("fork");
	if (child == 0) {
		struct ibv_pd *cpd = get_pd(); /* the parent's context is the parent's */

		g_fails = 0;
		expect("fork: child anon", cpd, anon, g_want_anon);
		expect("fork: child dax", cpd, dax, g_want_dax);
		map_dax(anon);
		map_anon(dax);
		expect("fork: child dax where the parent has anon", cpd, anon, g_want_dax);
		expect("fork: child anon where the parent has dax", cpd, dax, g_want_anon);
		fflush(stdout);
		_exit(g_fails ? 1 : 0);
	}
	if (waitpid(child, &status, 0) < 0)
		fatal("waitpid");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		pass("fork: child exited 0");
	else
		failf("fork: child", "did not exit 0");
	expect("fork: parent anon after the child swapped its copy", pd, anon, g_want_anon);
	expect("fork: parent dax after the child swapped its copy", pd, dax, g_want_dax);
}

static void case_exec_child(void)
{
	struct ibv_pd *pd = get_pd();

	expect("vfork: exec'd child anon", pd, map_anon(NULL), g_want_anon);
	expect("vfork: exec'd child dax", pd, map_dax(NULL), g_want_dax);
}

static void case_vfork(void)
{
	struct ibv_pd *pd = get_pd();
	char *anon = map_anon(NULL), *dax = map_dax(NULL);
	int rc;

	expect("vfork: parent anon", pd, anon, g_want_anon);
	expect("vfork: parent dax", pd, dax, g_want_dax);
	rc = run_self("exec-child");
	if (rc == 0)
		pass("vfork: exec'd child exited 0");
	else
		failf("vfork: exec'd child", "did not exit 0");
	expect("vfork: parent anon after", pd, anon, g_want_anon);
	expect("vfork: parent dax after", pd, dax, g_want_dax);
}

#define OURS 8
#define SHIMS 8

/* The descriptors the shim keeps (links to /proc/<pid>/maps or mountinfo),
 * wherever it put them; returns how many, at most SHIMS. */
static int shim_fds(int *out)
{
	char link[64], target[PATH_MAX];
	int n = 0;

	for (int fd = 3; fd < 4096 && n < SHIMS; fd++) {
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = 0;
		if (strncmp(target, "/proc/", 6) == 0 &&
		    (strstr(target, "/maps") || strstr(target, "/mountinfo")))
			out[n++] = fd;
	}
	return n;
}

static void case_closefrom(void)
{
	static const char text[] = "life: closefrom: this file is ours; nobody else may read or write it\n";
	char *anon = map_anon(NULL), *dax = map_dax(NULL), path[64], buf[sizeof(text)], what[80];
	struct stat before[OURS + SHIMS], after;
	struct ibv_pd *pd;
	int fds[OURS + SHIMS], shim[SHIMS], nshim, nfds;

	/* No device needed: the shim refuses fs-DAX before any provider. */
	if (!g_forwarded)
		expect("closefrom: first registration (before closefrom)", &fake_pd, dax, g_want_dax);
	else
		expect("closefrom: first registration (before closefrom)", get_pd(), dax, g_want_dax);
	nshim = shim_fds(shim);
	if (nshim == 0)
		failf("closefrom: the shim keeps descriptors", "none found in /proc/self/fd");
	nfds = OURS + nshim;
	closefrom(3);
	/* The lowest free numbers, and (with dup3) the very numbers the shim's
	 * descriptors had: a shim that trusted a number would now use our files. */
	for (int i = 0; i < nfds; i++) {
		snprintf(path, sizeof(path), "/tmp/life-closefrom.%d.%d", (int)getpid(), i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fds[i] >= 0 && i >= OURS && fds[i] != shim[i - OURS]) {
			if (dup3(fds[i], shim[i - OURS], O_CLOEXEC) < 0)
				fatal("dup3");
			close(fds[i]);
			fds[i] = shim[i - OURS];
		}
		if (fds[i] < 0 || write(fds[i], text, sizeof(text)) != (ssize_t)sizeof(text) ||
		    lseek(fds[i], 0, SEEK_SET) != 0 || fstat(fds[i], &before[i]) != 0)
			fatal(path);
		unlink(path);
	}
	pd = get_pd();
	for (int round = 0; round < 3; round++) {
		expect("closefrom: anon", pd, anon, g_want_anon);
		expect("closefrom: dax", pd, dax, g_want_dax);
	}
	for (int i = 0; i < nfds; i++) {
		snprintf(what, sizeof(what), "closefrom: our fd %d untouched", fds[i]);
		if (fstat(fds[i], &after) != 0)
			failf(what, "closed behind our back");
		else if (after.st_ino != before[i].st_ino || after.st_dev != before[i].st_dev)
			failf(what, "now another file");
		else if (after.st_size != (off_t)sizeof(text))
			failf(what, "its size changed (something wrote into it)");
		else if (lseek(fds[i], 0, SEEK_CUR) != 0)
			failf(what, "its offset moved (something read or wrote it)");
		else if (pread(fds[i], buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) || memcmp(buf, text, sizeof(buf)))
			failf(what, "its content changed");
		else
			pass(what);
	}
}

static void case_dlopen(void)
{
	reg_iova2_fn shim_reg = dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova2");
	char *anon = map_anon(NULL), *dax = map_dax(NULL);
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	reg_mr_fn own;

	if (dlopen("libibverbs.so.1", RTLD_NOW | RTLD_NOLOAD)) {
		failf("dlopen", "libibverbs is already loaded (run this case first, without linking it)");
		return;
	}
	if (!shim_reg) {
		failf("dlopen", "no ibv_reg_mr_iova2 before libibverbs is loaded: is the shim preloaded?");
		return;
	}
	pass("dlopen: libibverbs not loaded yet; ibv_reg_mr_iova2 is the shim's");
	/* Before libibverbs exists: fs-DAX is refused without it; anonymous has nowhere to go. */
	if (!g_forwarded) {
		errno = 0;
		mr = shim_reg(&fake_pd, dax, 2 * g_page, (uintptr_t)dax, ACC_RW);
		printf("%s reg dlopen: dax before libibverbs is loaded pid=%d: %s\n",
		       !mr && errno == EOPNOTSUPP ? "PASS" : "FAIL", (int)getpid(), mr ? "ok" : errname(errno));
		g_fails += !(!mr && errno == EOPNOTSUPP);
	}
	errno = 0;
	mr = shim_reg(&fake_pd, anon, 2 * g_page, (uintptr_t)anon, ACC_RW);
	printf("%s reg dlopen: anon before libibverbs is loaded (must fail) pid=%d: %s\n", mr ? "FAIL" : "PASS",
	       (int)getpid(), mr ? "ok" : errname(errno));
	g_fails += !!mr;
	verbs_load(RTLD_LOCAL);
	v.reg = shim_reg;
	pd = get_pd();
	own = sym(v.h, "ibv_reg_mr", "IBVERBS_1.1");
	expect_with("dlopen: anon through libibverbs' own ibv_reg_mr", own, pd, anon, g_want_anon);
	expect_with("dlopen: dax through libibverbs' own ibv_reg_mr", own, pd, dax, g_want_dax);
	expect("dlopen: anon through the shim's export", pd, anon, g_want_anon);
	expect("dlopen: dax through the shim's export", pd, dax, g_want_dax);
}

static pthread_barrier_t g_race;
static struct ibv_pd *g_race_pd;
static char *g_race_mem[2];

static void *race_thread(void *arg)
{
	int first = (int)(intptr_t)arg; /* thread 0 starts with anon, thread 1 with dax */

	pthread_barrier_wait(&g_race);
	for (int k = 0; k < 2; k++) {
		int dax = (first + k) % 2;

		expect(dax ? "race: dax" : "race: anon", g_race_pd, g_race_mem[dax], dax ? g_want_dax : g_want_anon);
	}
	return NULL;
}

static void case_race_once(void)
{
	pthread_t t[2];

	g_race_pd = get_pd();
	verbs_load(RTLD_GLOBAL); /* dereg_mr (also with --fake-pd) */
	g_race_mem[0] = map_anon(NULL);
	g_race_mem[1] = map_dax(NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pthread_barrier_init(&g_race, NULL, 2) != 0)
		fatal("pthread_barrier_init");
	for (intptr_t i = 0; i < 2; i++)
		if ((errno = pthread_create(&t[i], NULL, race_thread, (void *)i)) != 0)
			fatal("pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

static void case_race(int rounds)
{
	char what[64];

	for (int r = 0; r < rounds; r++) {
		int rc = run_self("race-once");

		snprintf(what, sizeof(what), "race: round %d exited 0", r);
		if (rc == 0)
			pass(what);
		else
			failf(what, "a thread got a wrong answer, or it crashed");
	}
}

static void case_mapwait(void)
{
	char *dax = map_dax(NULL), *anon = map_anon(NULL), line[16];
	struct ibv_pd *pd = get_pd();

	printf("READY pid=%d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		fprintf(stderr, "life: mapwait: stdin closed; registering anyway\n");
	expect("mapwait: dax", pd, dax, g_want_dax);
	expect("mapwait: anon", pd, anon, g_want_anon);
}

int main(int argc, char **argv)
{
	int i;

	g_argv = argv;
	g_page = (size_t)sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--fake-pd") == 0)
			g_fake = 1;
		else if (strcmp(argv[i], "--file-forwarded") == 0)
			g_forwarded = 1;
		else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			g_device = argv[++i];
		else if (strcmp(argv[i], "--dax") == 0 && i + 1 < argc)
			g_dax = argv[++i];
		else
			usage();
	}
	if (i == argc || !g_dax || g_fake == !!g_device)
		usage();
	g_want_anon = g_fake ? ENODEV : 0;
	g_want_dax = g_forwarded ? g_want_anon : EOPNOTSUPP;
	/* dlopen must see libibverbs unloaded; every other case loads it on first use. */
	if (strcmp(argv[i], "dlopen") != 0)
		verbs_load(RTLD_GLOBAL);
	for (; i < argc; i++) {
		if (strcmp(argv[i], "fork") == 0) {
			case_fork();
		} else if (strcmp(argv[i], "vfork") == 0) {
			case_vfork();
		} else if (strcmp(argv[i], "exec-child") == 0) {
			case_exec_child();
		} else if (strcmp(argv[i], "closefrom") == 0) {
			case_closefrom();
		} else if (strcmp(argv[i], "dlopen") == 0) {
			case_dlopen();
		} else if (strcmp(argv[i], "race") == 0) {
			int rounds = 10;

			if (i + 1 < argc && argv[i + 1][0] >= '1' && argv[i + 1][0] <= '9')
				rounds = atoi(argv[++i]);
			case_race(rounds);
		} else if (strcmp(argv[i], "race-once") == 0) {
			case_race_once();
		} else if (strcmp(argv[i], "mapwait") == 0) {
			case_mapwait();
		} else {
			usage();
		}
	}
	fflush(stdout);
	return g_fails ? 1 : 0;
}
