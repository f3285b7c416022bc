/*
 * stress: many threads registering and deregistering anonymous and fs-DAX
 * ranges while one more thread maps, unmaps, mremaps and mprotects files and
 * anonymous memory in the pages right next to them. The shim walks VMAs that
 * are being split and merged under it; its answers must not change.
 *
 * usage: stress (--device NAME | --fake-pd) --dax-file PATH [--file-forwarded]
 *               [--threads N] [--iters N] [--churn-dir DIR]
 *
 * Each thread owns a window of 8 pages, reserved PROT_NONE:
 *
 *   [0,2) churn slot   [2,4) anonymous   [4,6) churn slot   [6,8) DAX file
 *
 * and registers, in turn, its anonymous pages and its pages of --dax-file
 * (2 pages each; every other time from an unaligned start), with the verbs.h
 * ibv_reg_mr() macro (non-constant access: ibv_reg_mr_iova2), deregistering
 * what succeeds. The churn thread only ever touches churn slots: the
 * registered ranges stay what they are, their neighbours keep changing
 * (files from --churn-dir, the DAX file, anonymous memory, holes). A hole it
 * left is refilled with MAP_FIXED_NOREPLACE, so memory someone else mapped
 * there meanwhile is never clobbered (that slot is then given up: "lost").
 *
 * Expected: anonymous registrations succeed (with --fake-pd, they reach the
 * provider: ENODEV from libdaxspy.so's stub); DAX ones are refused with
 * EOPNOTSUPP (with --file-forwarded, for a file that is not DAX on the host:
 * the anonymous answer).
 *
 * Prints one line:
 *   STRESS threads=.. iters=.. registrations=.. anon_good=.. anon_bad=..
 *          dax_good=.. dax_bad=.. churn_ops=.. maps=.. unmaps=.. mremaps=..
 *          mprotects=.. lost=.. seconds=..
 * and a BAD line for the first few wrong answers. Exit 0 when every answer
 * was the expected one, 1 otherwise, 2 on a usage error or failed setup.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#define WIN_PAGES 8
#define CHURN_FILES 8
#define CHURN_FILE_PAGES 16

/* Read through a volatile so the macro takes ibv_reg_mr_iova2 (see entrypoints.c). */
static volatile unsigned int g_access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;

static struct ibv_pd fake_pd;
static struct ibv_pd *g_pd;
static size_t g_page;
static int g_iters = 200;
static int g_want_anon, g_want_dax; /* 0 = success, else the errno */
static pthread_barrier_t g_start;
static atomic_int g_running;
static atomic_int g_bad_lines;

struct worker {
	pthread_t tid;
	char *win;
	unsigned long anon_good, anon_bad, dax_good, dax_bad;
};

/* Churn slot states. */
enum { S_RESERVED, S_ANON, S_FILE, S_HOLE, S_LOST };

static struct {
	unsigned long maps, unmaps, mremaps, mprotects, lost;
} g_churn;

static void usage(void)
{
	fprintf(stderr, "usage: stress (--device NAME | --fake-pd) --dax-file PATH [--file-forwarded]\n"
			"              [--threads N] [--iters N] [--churn-dir DIR]\n");
	exit(2);
}

static void check(struct worker *w, int dax, void *addr, size_t len, int got)
{
	int want = dax ? g_want_dax : g_want_anon;

	if (got == want) {
		if (dax)
			w->dax_good++;
		else
			w->anon_good++;
		return;
	}
	if (dax)
		w->dax_bad++;
	else
		w->anon_bad++;
	if (atomic_fetch_add(&g_bad_lines, 1) < 10)
		printf("BAD %s addr=%p len=%zu got=%s want=%s\n", dax ? "dax" : "anon", addr, len, answer(got),
		       answer(want));
}

static void *work(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&g_start);
	for (int i = 0; i < g_iters; i++) {
		int dax = i & 1;
		size_t skew = (i & 2) ? 100 : 0; /* an unaligned start within the same pages */
		char *addr = w->win + (dax ? 6 : 2) * g_page + skew;
		size_t len = 2 * g_page - skew;
		struct ibv_mr *mr;
		int got;

		errno = 0;
		mr = ibv_reg_mr(g_pd, addr, len, g_access);
		got = mr ? 0 : errno;
		if (mr && ibv_dereg_mr(mr) != 0)
			got = -1;
		check(w, dax, addr, len, got);
	}
	return NULL;
}

/* Fills or replaces a churn slot. A hole is refilled without MAP_FIXED so
 * that a mapping someone else placed there meanwhile survives. */
static void churn_map(char *slot, int *state, int fd, off_t off)
{
	int flags = (fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS);
	void *p;

	flags |= *state == S_HOLE ? MAP_FIXED_NOREPLACE : MAP_FIXED;
	p = mmap(slot, 2 * g_page, PROT_READ | PROT_WRITE, flags, fd, off);
	if (p == MAP_FAILED || p != slot) {
		if (p != MAP_FAILED) /* an old kernel took NOREPLACE as a hint */
			munmap(p, 2 * g_page);
		*state = S_LOST;
		g_churn.lost++;
		return;
	}
	*state = fd >= 0 ? S_FILE : S_ANON;
	g_churn.maps++;
}

/* What the churn thread works on. */
struct churn_args {
	struct worker *ws;
	int nthreads;
	int fds[CHURN_FILES + 1]; /* churn files, then the DAX file */
	off_t dax_off;            /* where the DAX file's churn pages start */
};

static void *churn(void *arg)
{
	struct churn_args *a = arg;
	int nslots = 2 * a->nthreads;
	int *state = calloc((size_t)nslots, sizeof(int));
	unsigned int seed = 12345;

	if (!state)
		fatal("calloc");
	pthread_barrier_wait(&g_start);
	while (atomic_load(&g_running)) {
		int i = rand_r(&seed) % nslots, op = rand_r(&seed) % 10;
		char *s = a->ws[i / 2].win + (i % 2 ? 4 : 0) * g_page;

		if (state[i] == S_LOST)
			continue;
		if (op < 3) { /* a churn file, or the DAX file, at a random offset */
			int f = rand_r(&seed) % (CHURN_FILES + 1);
			off_t off = (off_t)(rand_r(&seed) % (CHURN_FILE_PAGES - 1)) * (off_t)g_page;

			if (f == CHURN_FILES)
				off += a->dax_off;
			churn_map(s, &state[i], a->fds[f], off);
		} else if (op < 5) {
			churn_map(s, &state[i], -1, 0);
		} else if (op < 7) {
			if (state[i] != S_HOLE) {
				if (munmap(s, 2 * g_page) != 0)
					fatal("munmap");
				state[i] = S_HOLE;
				g_churn.unmaps++;
			}
		} else if (op < 9) {
			/* Move slot i's mapping onto another slot we hold (never onto a
			 * hole: that address may be someone else's by now). */
			int j = rand_r(&seed) % nslots;
			char *d = a->ws[j / 2].win + (j % 2 ? 4 : 0) * g_page;

			if (j == i || state[i] == S_HOLE || state[j] == S_HOLE || state[j] == S_LOST)
				continue;
			if (mremap(s, 2 * g_page, 2 * g_page, MREMAP_MAYMOVE | MREMAP_FIXED, d) != d)
				fatal("mremap");
			state[j] = state[i];
			state[i] = S_HOLE;
			g_churn.mremaps++;
		} else if (state[i] != S_HOLE) {
			if (mprotect(s, 2 * g_page, rand_r(&seed) % 2 ? PROT_NONE : PROT_READ) != 0)
				fatal("mprotect");
			g_churn.mprotects++;
		}
	}
	free(state);
	return NULL;
}

static int open_sized(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		fatal(path);
	if (ftruncate(fd, size) != 0)
		fatal("ftruncate");
	return fd;
}

int main(int argc, char **argv)
{
	const char *device = NULL, *dax_path = NULL, *churn_dir = "/tmp";
	int fake = 0, forwarded = 0, nthreads = 16, rc = 0;
	struct churn_args ca;
	struct timespec t0, t1;
	pthread_t churner;
	struct worker *ws;
	unsigned long ag = 0, ab = 0, dg = 0, db = 0;
	char path[4096];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--fake-pd") == 0)
			fake = 1;
		else if (strcmp(a, "--file-forwarded") == 0)
			forwarded = 1;
		else if (!v)
			usage();
		else if (strcmp(a, "--device") == 0)
			device = v, i++;
		else if (strcmp(a, "--dax-file") == 0)
			dax_path = v, i++;
		else if (strcmp(a, "--threads") == 0)
			nthreads = atoi(v), i++;
		else if (strcmp(a, "--iters") == 0)
			g_iters = atoi(v), i++;
		else if (strcmp(a, "--churn-dir") == 0)
			churn_dir = v, i++;
		else
			usage();
	}
	if (!dax_path || fake == !!device || nthreads < 1 || nthreads > 1024 || g_iters < 1)
		usage();
	g_page = (size_t)sysconf(_SC_PAGESIZE);
	g_pd = fake ? &fake_pd : open_pd(device);
	g_want_anon = fake ? ENODEV : 0;
	g_want_dax = forwarded ? g_want_anon : EOPNOTSUPP;

	/* The DAX file: 2 pages per thread, then CHURN_FILE_PAGES for the churner. */
	ca.dax_off = (off_t)(2 * nthreads) * (off_t)g_page;
	ca.fds[CHURN_FILES] = open_sized(dax_path, ca.dax_off + CHURN_FILE_PAGES * (off_t)g_page);
	for (int f = 0; f < CHURN_FILES; f++) {
		snprintf(path, sizeof(path), "%s/stress-churn.%d", churn_dir, f);
		ca.fds[f] = open_sized(path, CHURN_FILE_PAGES * (off_t)g_page);
		unlink(path); /* mapped while deleted: "(deleted)" neighbours too */
	}
	ws = calloc((size_t)nthreads, sizeof(*ws));
	if (!ws)
		fatal("calloc");
	for (int t = 0; t < nthreads; t++) {
		char *w = mmap(NULL, WIN_PAGES * g_page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (w == MAP_FAILED)
			fatal("mmap window");
		if (mmap(w + 2 * g_page, 2 * g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == MAP_FAILED)
			fatal("mmap anon");
		if (mmap(w + 6 * g_page, 2 * g_page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 ca.fds[CHURN_FILES], (off_t)(2 * t) * (off_t)g_page) == MAP_FAILED)
			fatal("mmap dax file");
		ws[t].win = w;
	}
	ca.ws = ws;
	ca.nthreads = nthreads;
	atomic_store(&g_running, 1);
	if (pthread_barrier_init(&g_start, NULL, (unsigned int)nthreads + 2) != 0)
		fatal("pthread_barrier_init");
	for (int t = 0; t < nthreads; t++)
		if ((errno = pthread_create(&ws[t].tid, NULL, work, &ws[t])) != 0)
			fatal("pthread_create");
	if ((errno = pthread_create(&churner, NULL, churn, &ca)) != 0)
		fatal("pthread_create");
	pthread_barrier_wait(&g_start);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int t = 0; t < nthreads; t++) {
		pthread_join(ws[t].tid, NULL);
		ag += ws[t].anon_good, ab += ws[t].anon_bad, dg += ws[t].dax_good, db += ws[t].dax_bad;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	atomic_store(&g_running, 0);
	pthread_join(churner, NULL);
	printf("STRESS threads=%d iters=%d registrations=%lu anon_good=%lu anon_bad=%lu dax_good=%lu dax_bad=%lu "
	       "churn_ops=%lu maps=%lu unmaps=%lu mremaps=%lu mprotects=%lu lost=%lu seconds=%.1f\n",
	       nthreads, g_iters, ag + ab + dg + db, ag, ab, dg, db,
	       g_churn.maps + g_churn.unmaps + g_churn.mremaps + g_churn.mprotects, g_churn.maps, g_churn.unmaps,
	       g_churn.mremaps, g_churn.mprotects, g_churn.lost,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(ws);
	if (ab || db)
		rc = 1;
	return rc;
}
