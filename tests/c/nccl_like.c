/*
 * nccl_like: loads libibverbs the way NCCL's src/misc/ibvsymbols.cc does -
 * dlopen("libibverbs.so", RTLD_NOW), else "libibverbs.so.1", then every
 * function by dlvsym() with NCCL's version strings ("IBVERBS_1.1", and
 * "IBVERBS_1.8" for ibv_reg_mr_iova2) - and registers memory only through
 * the pointers it fetched. Not linked with libibverbs.
 *
 * usage: nccl_like [--device NAME | --fake-pd] [--load now|deepbind|dlmopen]
 *                  [--mdwe] [--iters N] [--rounds N] REGION... -- STEP...
 *
 *   --device NAME  open that RDMA device through the fetched pointers (guest)
 *   --fake-pd      a zeroed pd instead (host; safe only where every
 *                  registration is refused, or with DAXSPY_STUB=1 behind the shim)
 *   --load         now (NCCL, default); deepbind: dlopen(RTLD_NOW | RTLD_DEEPBIND);
 *                  dlmopen: dlmopen(LM_ID_NEWLM, "libibverbs.so.1", RTLD_NOW),
 *                  a second copy in a new link-map namespace
 *   --mdwe         prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) first (Linux 6.3+),
 *                  as systemd's MemoryDenyWriteExecute=yes does with seccomp
 *   --iters N      registrations of the `threads` step (default 200)
 *   --rounds N     dlclose + dlopen rounds of the `reopen` step (default 3)
 *
 * REGION is NAME=KIND:ARGS, mapped before any step, in order:
 *   anon:SIZE | file:PATH:SIZE (MAP_SHARED, created/extended) |
 *   devdax:PATH:SIZE | unverified:SIZE (common.h map_unverified: host, root)
 *
 * STEP, each registering every region (access LOCAL_WRITE | REMOTE_WRITE |
 * REMOTE_READ) and deregistering what succeeded:
 *   iova2   dlvsym(h, "ibv_reg_mr_iova2", "IBVERBS_1.8")   (NCCL's relaxed-ordering path)
 *   reg_mr  dlvsym(h, "ibv_reg_mr", "IBVERBS_1.1")         (NCCL's default path)
 *   iova    dlvsym(h, "ibv_reg_mr_iova", "IBVERBS_1.7")
 *   dlsym   dlsym(h, "ibv_reg_mr_iova2")                   (plain dlsym: the default version)
 *   rereg   one anonymous page registered through iova2, then
 *           dlvsym(h, "ibv_rereg_mr", "IBVERBS_1.1")(IBV_REREG_MR_CHANGE_TRANSLATION)
 *           onto the region (with --fake-pd: a fake mr)
 *   fork    fork(); the child registers every region through iova2
 *   threads one thread registers the regions round-robin through iova2
 *           (--iters times) while three threads fetch iova2, reg_mr and
 *           ibv_dereg_mr with dlvsym/dlsym from the same handle, in a loop
 *   reopen  close the device and dlclose the library, then --rounds times:
 *           dlopen, fetch, open the device, register every region through
 *           iova2 and reg_mr, close the device, dlclose
 *
 * Output:
 *   INTERCEPTION plt+dlsym|plt|none|no-daxguard   (daxguard_interception() of a preloaded daxguard)
 *   LOAD how=<load> handle=ok
 *   SYM <name>@<version> from=<object file of the pointer>   (libdaxguard.so: daxguard's export;
 *       also ibv_reg_mr@IBVERBS_1.0, fetched and never called: the old ABI)
 *   MDWE set | MDWE unavailable errno=<NAME> ; MDWE exec_gain=refused|allowed
 *   REGION <name> kind=<kind> addr=0x.. len=N
 *   REG <step> <region> ok|<ERRNO>|fail-errno-unset   (fork: step fork-child; errno unset:
 *       a dlmopen copy's libc has its own errno, which this program cannot read)
 *   FORK child_exit=<status>
 *   THREADS regs=N as_alone=N other=N lookups=N changed=N
 *   ROUND <r> unloaded=yes|no|n/a  then  REG round<r>-<step> <region> ...
 * Exit 0 after the steps; 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#define DAXGUARD_WANT_UNVERIFIED
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN (1UL << 0)
#endif

#define ACC_RW (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)
#define MAX_REGIONS 8

/* NCCL's: src/misc/ibvsymbols.cc */
#define IBVERBS_VERSION "IBVERBS_1.1"

typedef struct ibv_mr *(*reg_mr_fn)(struct ibv_pd *, void *, size_t, int);
typedef struct ibv_mr *(*reg_mr_iova_fn)(struct ibv_pd *, void *, size_t, uint64_t, int);
typedef struct ibv_mr *(*reg_mr_iova2_fn)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int);
typedef int (*rereg_mr_fn)(struct ibv_mr *, int, struct ibv_pd *, void *, size_t, int);

/* The pointers NCCL keeps (struct ncclIbvSymbols), for the ones used here. */
struct syms {
	void *h;
	struct ibv_device **(*get_device_list)(int *);
	void (*free_device_list)(struct ibv_device **);
	const char *(*get_device_name)(struct ibv_device *);
	struct ibv_context *(*open_device)(struct ibv_device *);
	int (*close_device)(struct ibv_context *);
	struct ibv_pd *(*alloc_pd)(struct ibv_context *);
	int (*dealloc_pd)(struct ibv_pd *);
	int (*dereg_mr)(struct ibv_mr *);
	reg_mr_fn reg_mr;
	reg_mr_iova_fn reg_mr_iova;
	reg_mr_iova2_fn reg_mr_iova2;
	rereg_mr_fn rereg_mr;
	reg_mr_iova2_fn dlsym_iova2;
};

struct region {
	const char *name, *kind;
	void *addr;
	size_t len;
};

static struct region g_regions[MAX_REGIONS];
static int g_nregions, g_fake, g_quiet_syms;
static const char *g_device, *g_load = "now";
static struct ibv_pd fake_pd;
static struct ibv_mr fake_mr = { .pd = &fake_pd };

static void usage(void)
{
	fprintf(stderr, "usage: nccl_like [--device NAME | --fake-pd] [--load now|deepbind|dlmopen] [--mdwe]\n"
			"                 [--iters N] [--rounds N] REGION... -- STEP...\n"
			"REGION: NAME=anon:SIZE | NAME=file:PATH:SIZE | NAME=devdax:PATH:SIZE | NAME=unverified:SIZE\n"
			"STEP: iova2 reg_mr iova dlsym rereg fork threads reopen\n");
	exit(2);
}

static const char *object_of(void *fn)
{
	Dl_info info;
	const char *slash;

	if (!fn || !dladdr(fn, &info) || !info.dli_fname || !*info.dli_fname)
		return "none";
	slash = strrchr(info.dli_fname, '/');
	return slash ? slash + 1 : info.dli_fname;
}

/* NCCL's LOAD_SYM: dlvsym with IBVERBS_1.1, a miss ends the program. */
static void *load_sym(void *h, const char *name, const char *version)
{
	void *fn = dlvsym(h, name, version);

	if (!fn) {
		fprintf(stderr, "nccl_like: dlvsym failed on %s - %s version %s\n", name, dlerror(), version);
		exit(2);
	}
	if (!g_quiet_syms && (strncmp(name, "ibv_reg_mr", 10) == 0 || strcmp(name, "ibv_rereg_mr") == 0))
		printf("SYM %s@%s from=%s\n", name, version, object_of(fn));
	return fn;
}

static void *open_library(void)
{
	void *h;

	if (strcmp(g_load, "deepbind") == 0)
		h = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_DEEPBIND);
	else if (strcmp(g_load, "dlmopen") == 0)
		h = dlmopen(LM_ID_NEWLM, "libibverbs.so.1", RTLD_NOW);
	else if (!(h = dlopen("libibverbs.so", RTLD_NOW)))
		h = dlopen("libibverbs.so.1", RTLD_NOW);
	if (!h) {
		fprintf(stderr, "nccl_like: cannot load libibverbs (%s): %s\n", g_load, dlerror());
		exit(2);
	}
	return h;
}

static void load(struct syms *s)
{
	void *h = open_library();

	s->h = h;
	s->get_device_list = load_sym(h, "ibv_get_device_list", IBVERBS_VERSION);
	s->free_device_list = load_sym(h, "ibv_free_device_list", IBVERBS_VERSION);
	s->get_device_name = load_sym(h, "ibv_get_device_name", IBVERBS_VERSION);
	s->open_device = load_sym(h, "ibv_open_device", IBVERBS_VERSION);
	s->close_device = load_sym(h, "ibv_close_device", IBVERBS_VERSION);
	s->alloc_pd = load_sym(h, "ibv_alloc_pd", IBVERBS_VERSION);
	s->dealloc_pd = load_sym(h, "ibv_dealloc_pd", IBVERBS_VERSION);
	s->dereg_mr = load_sym(h, "ibv_dereg_mr", IBVERBS_VERSION);
	s->reg_mr = load_sym(h, "ibv_reg_mr", IBVERBS_VERSION);
	s->rereg_mr = load_sym(h, "ibv_rereg_mr", IBVERBS_VERSION);
	/* NCCL's LOAD_SYM_VERSION: cherry-picked newer versions */
	s->reg_mr_iova2 = load_sym(h, "ibv_reg_mr_iova2", "IBVERBS_1.8");
	s->reg_mr_iova = load_sym(h, "ibv_reg_mr_iova", "IBVERBS_1.7");
	if (!g_quiet_syms) {
		/* never used: the 2006 ABI (another struct ibv_pd), which daxguard must not replace */
		void *old = dlvsym(h, "ibv_reg_mr", "IBVERBS_1.0");

		printf("SYM ibv_reg_mr@IBVERBS_1.0 from=%s\n", object_of(old));
	}
	s->dlsym_iova2 = dlsym(h, "ibv_reg_mr_iova2");
	if (!s->dlsym_iova2) {
		fprintf(stderr, "nccl_like: dlsym ibv_reg_mr_iova2: %s\n", dlerror());
		exit(2);
	}
	if (!g_quiet_syms)
		printf("SYM ibv_reg_mr_iova2 (dlsym) from=%s\n", object_of((void *)s->dlsym_iova2));
}

/* A pd on the device, or the fake one; *ctx for closing. */
static struct ibv_pd *open_dev_pd(struct syms *s, struct ibv_context **ctx)
{
	struct ibv_device **list;
	struct ibv_pd *pd;
	int n = 0;

	*ctx = NULL;
	if (g_fake)
		return &fake_pd;
	list = s->get_device_list(&n);
	for (int i = 0; list && i < n && !*ctx; i++)
		if (strcmp(s->get_device_name(list[i]), g_device) == 0 && !(*ctx = s->open_device(list[i])))
			fatal("ibv_open_device");
	if (list)
		s->free_device_list(list);
	if (!*ctx) {
		fprintf(stderr, "nccl_like: RDMA device '%s' not found (%d devices)\n", g_device, n);
		exit(2);
	}
	pd = s->alloc_pd(*ctx);
	if (!pd)
		fatal("ibv_alloc_pd");
	return pd;
}

static void close_dev_pd(struct syms *s, struct ibv_pd *pd, struct ibv_context *ctx)
{
	if (ctx) {
		s->dealloc_pd(pd);
		s->close_device(ctx);
	}
}

/*
 * One registration through the pointer `step` names: 0, the errno, or -1 for
 * a failure that left errno 0 (a dlmopen copy sets the errno of its own libc).
 */
static int reg_one(struct syms *s, struct ibv_pd *pd, const char *step, struct region *r)
{
	struct ibv_mr *mr = NULL;

	errno = 0;
	if (strcmp(step, "iova2") == 0)
		mr = s->reg_mr_iova2(pd, r->addr, r->len, (uintptr_t)r->addr, ACC_RW);
	else if (strcmp(step, "reg_mr") == 0)
		mr = s->reg_mr(pd, r->addr, r->len, ACC_RW);
	else if (strcmp(step, "iova") == 0)
		mr = s->reg_mr_iova(pd, r->addr, r->len, (uintptr_t)r->addr, ACC_RW);
	else if (strcmp(step, "dlsym") == 0)
		mr = s->dlsym_iova2(pd, r->addr, r->len, (uintptr_t)r->addr, ACC_RW);
	else if (strcmp(step, "rereg") == 0) {
		long page = sysconf(_SC_PAGESIZE);
		void *anon = NULL;
		int ret, err;

		mr = &fake_mr;
		if (!g_fake) {
			anon = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (anon == MAP_FAILED)
				fatal("mmap");
			mr = s->reg_mr_iova2(pd, anon, (size_t)page, (uintptr_t)anon, ACC_RW);
			if (!mr)
				fatal("rereg: the initial anonymous registration");
		}
		errno = 0;
		ret = s->rereg_mr(mr, IBV_REREG_MR_CHANGE_TRANSLATION, pd, r->addr, r->len, ACC_RW);
		err = ret ? errno : 0;
		if (!g_fake) {
			s->dereg_mr(mr);
			munmap(anon, (size_t)page);
		}
		return err ? err : (ret ? -1 : 0);
	}
	if (!mr)
		return errno ? errno : -1;
	if (s->dereg_mr(mr))
		return EBUSY; /* registered but not deregistered: visible as a failure */
	return 0;
}

static void reg_all(struct syms *s, struct ibv_pd *pd, const char *step, const char *label)
{
	for (int i = 0; i < g_nregions; i++)
	{
		int e = reg_one(s, pd, step, &g_regions[i]);

		printf("REG %s %s %s\n", label, g_regions[i].name, e == -1 ? "fail-errno-unset" : answer(e));
	}
	fflush(stdout);
}

static void step_fork(struct syms *s, struct ibv_pd *pd)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		reg_all(s, pd, "iova2", "fork-child");
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0)
		fatal("waitpid");
	printf("FORK child_exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fflush(stdout);
}

/* --- threads ------------------------------------------------------------ */

static struct {
	struct syms *s;
	struct ibv_pd *pd;
	int iters, alone[MAX_REGIONS];
	int done, regs, as_alone, other;
	long lookups, changed;
	void *first[3];
} T;

static void *registrar(void *arg)
{
	(void)arg;
	for (int i = 0; i < T.iters; i++) {
		int r = i % g_nregions, e = reg_one(T.s, T.pd, "iova2", &g_regions[r]);

		T.regs++;
		if (e == T.alone[r])
			T.as_alone++;
		else
			T.other++;
	}
	__atomic_store_n(&T.done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *fetcher(void *arg)
{
	long k = (long)(intptr_t)arg;

	while (!__atomic_load_n(&T.done, __ATOMIC_ACQUIRE)) {
		void *p = k == 0 ? dlvsym(T.s->h, "ibv_reg_mr_iova2", "IBVERBS_1.8")
			: k == 1 ? dlsym(T.s->h, "ibv_reg_mr")
			: dlvsym(T.s->h, "ibv_dereg_mr", IBVERBS_VERSION);

		__atomic_add_fetch(&T.lookups, 1, __ATOMIC_RELAXED);
		if (p != T.first[k])
			__atomic_add_fetch(&T.changed, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void step_threads(struct syms *s, struct ibv_pd *pd, int iters)
{
	pthread_t reg, fetch[3];

	T.s = s;
	T.pd = pd;
	T.iters = iters;
	T.first[0] = dlvsym(s->h, "ibv_reg_mr_iova2", "IBVERBS_1.8");
	T.first[1] = dlsym(s->h, "ibv_reg_mr");
	T.first[2] = dlvsym(s->h, "ibv_dereg_mr", IBVERBS_VERSION);
	for (int r = 0; r < g_nregions; r++)
		T.alone[r] = reg_one(s, pd, "iova2", &g_regions[r]);
	for (long k = 0; k < 3; k++)
		if (pthread_create(&fetch[k], NULL, fetcher, (void *)(intptr_t)k))
			fatal("pthread_create");
	if (pthread_create(&reg, NULL, registrar, NULL))
		fatal("pthread_create");
	pthread_join(reg, NULL);
	for (int k = 0; k < 3; k++)
		pthread_join(fetch[k], NULL);
	printf("THREADS regs=%d as_alone=%d other=%d lookups=%ld changed=%ld\n", T.regs, T.as_alone, T.other,
	       T.lookups, T.changed);
	fflush(stdout);
}

/* --- reopen ------------------------------------------------------------- */

static void step_reopen(struct syms *s, struct ibv_pd **pd, struct ibv_context **ctx, int rounds)
{
	char label[32];

	close_dev_pd(s, *pd, *ctx);
	dlclose(s->h);
	g_quiet_syms = 1;
	for (int r = 1; r <= rounds; r++) {
		/* Is libibverbs still mapped after the last dlclose? (daxguard keeps it.) */
		void *still = strcmp(g_load, "dlmopen") ? dlopen("libibverbs.so.1", RTLD_NOW | RTLD_NOLOAD) : NULL;

		printf("ROUND %d unloaded=%s\n", r, still ? "no" : strcmp(g_load, "dlmopen") ? "yes" : "n/a");
		if (still)
			dlclose(still);
		load(s);
		*pd = open_dev_pd(s, ctx);
		snprintf(label, sizeof(label), "round%d-iova2", r);
		reg_all(s, *pd, "iova2", label);
		snprintf(label, sizeof(label), "round%d-reg_mr", r);
		reg_all(s, *pd, "reg_mr", label);
		close_dev_pd(s, *pd, *ctx);
		dlclose(s->h);
	}
	/* leave the program as the other steps expect it: loaded, with a pd */
	load(s);
	*pd = open_dev_pd(s, ctx);
	g_quiet_syms = 0;
}

/* --- setup -------------------------------------------------------------- */

static void map_region(char *spec)
{
	struct region *r = &g_regions[g_nregions];
	char *eq = strchr(spec, '='), *kind, *a1, *a2;

	if (g_nregions == MAX_REGIONS || !eq)
		usage();
	*eq = 0;
	r->name = spec;
	kind = eq + 1;
	a1 = strchr(kind, ':');
	if (!a1)
		usage();
	*a1++ = 0;
	a2 = strchr(a1, ':');
	if (a2)
		*a2++ = 0;
	r->kind = kind;
	if (strcmp(kind, "anon") == 0 || strcmp(kind, "unverified") == 0) {
		if (!(r->len = parse_size(a1)))
			usage();
		r->addr = kind[0] == 'a' ? mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
					 : map_unverified(r->len);
	} else if (strcmp(kind, "file") == 0 || strcmp(kind, "devdax") == 0) {
		struct stat st;
		int fd;

		if (!a2 || !(r->len = parse_size(a2)))
			usage();
		fd = open(a1, O_RDWR | O_CLOEXEC | (kind[0] == 'f' ? O_CREAT : 0), 0644);
		if (fd < 0)
			fatal(a1);
		if (kind[0] == 'f' && (fstat(fd, &st) < 0 || ((size_t)st.st_size < r->len && ftruncate(fd, (off_t)r->len) < 0)))
			fatal(a1);
		r->addr = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
	} else {
		usage();
	}
	if (r->addr == MAP_FAILED)
		fatal(r->name);
	printf("REGION %s kind=%s addr=%p len=%zu\n", r->name, r->kind, r->addr, r->len);
	g_nregions++;
}

static void set_mdwe(void)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) < 0) {
		printf("MDWE unavailable errno=%s\n", errname(errno));
		return;
	}
	printf("MDWE set\n");
	/* what it forbids: making writable memory executable */
	p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("mmap");
	printf("MDWE exec_gain=%s\n", mprotect(p, (size_t)page, PROT_READ | PROT_EXEC) ? "refused" : "allowed");
	munmap(p, (size_t)page);
}

int main(int argc, char **argv)
{
	int i, mdwe = 0, iters = 200, rounds = 3;
	struct ibv_context *ctx = NULL;
	struct ibv_pd *pd;
	struct syms s;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]; i++) {
		const char *o = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--fake-pd") == 0) g_fake = 1;
		else if (strcmp(o, "--mdwe") == 0) mdwe = 1;
		else if (!arg) usage();
		else if (strcmp(o, "--device") == 0) g_device = argv[++i];
		else if (strcmp(o, "--load") == 0) g_load = argv[++i];
		else if (strcmp(o, "--iters") == 0) iters = atoi(argv[++i]);
		else if (strcmp(o, "--rounds") == 0) rounds = atoi(argv[++i]);
		else usage();
	}
	if (!!g_device + g_fake != 1 || iters <= 0 || rounds <= 0)
		usage();
	if (strcmp(g_load, "now") && strcmp(g_load, "deepbind") && strcmp(g_load, "dlmopen"))
		usage();
	if (mdwe)
		set_mdwe();
	for (; i < argc && strcmp(argv[i], "--") != 0; i++)
		map_region(argv[i]);
	if (i == argc || !g_nregions)
		usage();
	i++;

	{
		/* what `daxguard doctor` asks a preloaded daxguard (daxguard.h) */
		const char *(*interception)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "daxguard_interception");

		printf("INTERCEPTION %s\n", interception ? interception() : "no-daxguard");
	}
	load(&s);
	printf("LOAD how=%s handle=ok\n", g_load);
	pd = open_dev_pd(&s, &ctx);
	fflush(stdout);
	for (; i < argc; i++) {
		const char *step = argv[i];

		if (!strcmp(step, "iova2") || !strcmp(step, "reg_mr") || !strcmp(step, "iova") || !strcmp(step, "dlsym") ||
		    !strcmp(step, "rereg"))
			reg_all(&s, pd, step, step);
		else if (!strcmp(step, "fork"))
			step_fork(&s, pd);
		else if (!strcmp(step, "threads"))
			step_threads(&s, pd, iters);
		else if (!strcmp(step, "reopen"))
			step_reopen(&s, &pd, &ctx, rounds);
		else {
			fprintf(stderr, "nccl_like: unknown STEP %s\n", step);
			usage();
		}
	}
	close_dev_pd(&s, pd, ctx);
	return 0;
}
