/*
 * entrypoints: reach each libibverbs registration entry point the way real
 * programs do, on one memory region, and print one result line per ENTRY:
 *
 *   ENTRY <name> result=ok
 *   ENTRY <name> result=fail errno=<NAME> (<num>)
 *
 * Built twice from this file: `entrypoints` links libibverbs (all entries);
 * `dlopen_local` (-DDLOPEN_ONLY) does not link it and only offers the dlopen
 * entries, to show what happens when the program loads libibverbs itself
 * with RTLD_LOCAL. Device setup always goes through dlvsym() so both builds
 * share it. See README.md for the flags.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#ifdef DLOPEN_ONLY
#define PROG "dlopen_local"
#else
#define PROG "entrypoints"
#endif

#define ACC_RW (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

/*
 * volatile: the verbs.h ibv_reg_mr() macro picks ibv_reg_mr@IBVERBS_1.1 when
 * __builtin_constant_p() proves the access has no optional bits. Reading a
 * volatile keeps the compiler from proving anything, so `macro` really
 * takes the non-constant path (ibv_reg_mr_iova2).
 */
static volatile unsigned int g_access;

/* Zeroed stand-ins for hosts without a device (only safe with DAXSPY_STUB=1
 * or when the shim refuses: the real functions would dereference them). */
static struct ibv_pd fake_pd;
#ifndef DLOPEN_ONLY
static struct ibv_mr fake_mr = { .pd = &fake_pd };
#endif

/* Setup functions, from dlvsym() so dlopen_local needs no link. */
static struct {
	struct ibv_device **(*get_device_list)(int *);
	void (*free_device_list)(struct ibv_device **);
	const char *(*get_device_name)(struct ibv_device *);
	struct ibv_context *(*open_device)(struct ibv_device *);
	int (*close_device)(struct ibv_context *);
	struct ibv_pd *(*alloc_pd)(struct ibv_context *);
	int (*dealloc_pd)(struct ibv_pd *);
	int (*dereg_mr)(struct ibv_mr *);
} v;

static void usage(void)
{
	fprintf(stderr,
		"usage: " PROG " [--device NAME|--fake-pd] [--odp] [--access rw|ro]\n"
		"         (--file PATH [--private] | --anon | --devdax PATH) [--len N] [--touch]\n"
		"         ENTRY...\n"
#ifdef DLOPEN_ONLY
		"ENTRY: dlopen dlopen-iova2\n");
#else
		"ENTRY: macro const iova iova2 rereg dlopen dlopen-iova2 dmabuf\n");
#endif
	exit(2);
}

static void *sym(void *lib, const char *name)
{
	void *fn = dlvsym(lib, name, "IBVERBS_1.1");

	if (!fn) {
		fprintf(stderr, PROG ": dlvsym %s@IBVERBS_1.1: %s\n", name, dlerror());
		exit(2);
	}
	return fn;
}

static void load_setup_functions(void)
{
	void *lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		fprintf(stderr, PROG ": dlopen libibverbs.so.1: %s\n", dlerror());
		exit(2);
	}
	v.get_device_list = sym(lib, "ibv_get_device_list");
	v.free_device_list = sym(lib, "ibv_free_device_list");
	v.get_device_name = sym(lib, "ibv_get_device_name");
	v.open_device = sym(lib, "ibv_open_device");
	v.close_device = sym(lib, "ibv_close_device");
	v.alloc_pd = sym(lib, "ibv_alloc_pd");
	v.dealloc_pd = sym(lib, "ibv_dealloc_pd");
	v.dereg_mr = sym(lib, "ibv_dereg_mr");
}

static void report(const char *name, int ok, int err)
{
	if (ok)
		printf("ENTRY %s result=ok\n", name);
	else
		printf("ENTRY %s result=fail errno=%s (%d)\n", name, errname(err), err);
	fflush(stdout);
}

/* Registration through a handle from dlopen(RTLD_LOCAL) + dlvsym(). */
static struct ibv_mr *reg_dlopen(struct ibv_pd *pd, void *addr, size_t len, int iova2)
{
	void *lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
	struct ibv_mr *mr = NULL;

	if (!lib) {
		fprintf(stderr, PROG ": dlopen: %s\n", dlerror());
		errno = ENOENT;
		return NULL;
	}
	if (iova2) {
		struct ibv_mr *(*fn)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int) =
			dlvsym(lib, "ibv_reg_mr_iova2", "IBVERBS_1.8");
		if (fn)
			mr = fn(pd, addr, len, (uintptr_t)addr, g_access);
	} else {
		struct ibv_mr *(*fn)(struct ibv_pd *, void *, size_t, int) =
			dlvsym(lib, "ibv_reg_mr", "IBVERBS_1.1");
		if (fn)
			mr = fn(pd, addr, len, (int)g_access);
	}
	/* the library stays loaded: it is linked, or mr->context points into it */
	return mr;
}

#ifndef DLOPEN_ONLY
/* The macro with literal access values: __builtin_constant_p() holds and
 * verbs.h calls ibv_reg_mr@IBVERBS_1.1. */
static struct ibv_mr *reg_const(struct ibv_pd *pd, void *addr, size_t len)
{
	switch (g_access) {
	case ACC_RW:
		return ibv_reg_mr(pd, addr, len, ACC_RW);
	case ACC_RW | IBV_ACCESS_ON_DEMAND:
		return ibv_reg_mr(pd, addr, len, ACC_RW | IBV_ACCESS_ON_DEMAND);
	case IBV_ACCESS_ON_DEMAND:
		return ibv_reg_mr(pd, addr, len, IBV_ACCESS_ON_DEMAND);
	default:
		return ibv_reg_mr(pd, addr, len, 0);
	}
}

/* Register one anonymous page (or take the fake mr), then move it onto the
 * region with IBV_REREG_MR_CHANGE_TRANSLATION. */
static int rereg(struct ibv_pd *pd, void *addr, size_t len, int fake)
{
	long page = sysconf(_SC_PAGESIZE);
	struct ibv_mr *mr = &fake_mr;
	void *anon = NULL;
	int ret, err;

	if (!fake) {
		anon = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (anon == MAP_FAILED)
			fatal("mmap");
		mr = ibv_reg_mr_iova2(pd, anon, (size_t)page, (uintptr_t)anon, g_access);
		if (!mr) {
			err = errno;
			fprintf(stderr, PROG ": rereg: the initial anonymous registration failed\n");
			munmap(anon, (size_t)page);
			errno = err;
			return -1;
		}
	}
	ret = ibv_rereg_mr(mr, IBV_REREG_MR_CHANGE_TRANSLATION, pd, addr, len, (int)g_access);
	err = errno;
	if (!fake) {
		v.dereg_mr(mr);
		munmap(anon, (size_t)page);
	}
	errno = err;
	return ret;
}
#endif

static void run_entry(const char *name, struct ibv_pd *pd, void *addr, size_t len, int fake)
{
	struct ibv_mr *mr = NULL;
	int err;

	errno = 0;
	if (strcmp(name, "dlopen") == 0) {
		mr = reg_dlopen(pd, addr, len, 0);
	} else if (strcmp(name, "dlopen-iova2") == 0) {
		if (fake) {
			/* without daxguard's dlsym wrapper this is libibverbs' own
			 * function, which would dereference the fake pd */
			printf("ENTRY %s result=skip reason=fake-pd\n", name);
			fflush(stdout);
			return;
		}
		mr = reg_dlopen(pd, addr, len, 1);
#ifndef DLOPEN_ONLY
	} else if (strcmp(name, "macro") == 0) {
		unsigned int access = g_access;

		mr = ibv_reg_mr(pd, addr, len, access);
	} else if (strcmp(name, "const") == 0) {
		mr = reg_const(pd, addr, len);
	} else if (strcmp(name, "iova") == 0) {
		/* (name) bypasses the verbs.h macro: the real ibv_reg_mr_iova@IBVERBS_1.7 */
		mr = (ibv_reg_mr_iova)(pd, addr, len, (uintptr_t)addr, (int)g_access);
	} else if (strcmp(name, "iova2") == 0) {
		mr = ibv_reg_mr_iova2(pd, addr, len, (uintptr_t)addr, g_access);
	} else if (strcmp(name, "dmabuf") == 0) {
		mr = ibv_reg_dmabuf_mr(pd, 0, len, (uintptr_t)addr, -1, (int)g_access);
	} else if (strcmp(name, "rereg") == 0) {
		int ok = rereg(pd, addr, len, fake) == 0;

		report(name, ok, errno);
		return;
#endif
	} else {
		fprintf(stderr, PROG ": unknown ENTRY %s\n", name);
		usage();
	}
	err = errno;
	report(name, mr != NULL, err);
	if (mr)
		v.dereg_mr(mr);
}

static int is_entry(const char *s)
{
	static const char *const names[] = {
		"dlopen", "dlopen-iova2",
#ifndef DLOPEN_ONLY
		"macro", "const", "iova", "iova2", "rereg", "dmabuf",
#endif
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *device = NULL, *file = NULL, *devdax = NULL, *kind;
	int fake = 0, odp = 0, ro = 0, anon = 0, priv = 0, touch = 0, fd = -1, i;
	size_t len = 2 << 20;
	long page = sysconf(_SC_PAGESIZE);
	struct ibv_device **list = NULL;
	struct ibv_context *ctx = NULL;
	struct ibv_pd *pd = &fake_pd;
	void *addr;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--fake-pd") == 0) fake = 1;
		else if (strcmp(o, "--odp") == 0) odp = 1;
		else if (strcmp(o, "--anon") == 0) anon = 1;
		else if (strcmp(o, "--private") == 0) priv = 1;
		else if (strcmp(o, "--touch") == 0) touch = 1;
		else if (!arg) usage();
		else if (strcmp(o, "--device") == 0) device = argv[++i];
		else if (strcmp(o, "--file") == 0) file = argv[++i];
		else if (strcmp(o, "--devdax") == 0) devdax = argv[++i];
		else if (strcmp(o, "--len") == 0) {
			len = parse_size(argv[++i]);
			if (!len) usage();
		} else if (strcmp(o, "--access") == 0) {
			i++;
			if (strcmp(arg, "rw") == 0) ro = 0;
			else if (strcmp(arg, "ro") == 0) ro = 1;
			else usage();
		} else usage();
	}
	if (!!device + fake != 1 || !!file + anon + !!devdax != 1 || (priv && !file) || i == argc)
		usage();
	for (int j = i; j < argc; j++)
		if (!is_entry(argv[j])) {
			fprintf(stderr, PROG ": unknown ENTRY %s\n", argv[j]);
			usage();
		}
	g_access = (ro ? 0 : ACC_RW) | (odp ? IBV_ACCESS_ON_DEMAND : 0);

	load_setup_functions();
	if (device) {
		int n = 0;
		struct ibv_device *dev = NULL;

		list = v.get_device_list(&n);
		for (int j = 0; list && j < n; j++)
			if (strcmp(v.get_device_name(list[j]), device) == 0)
				dev = list[j];
		if (!dev) {
			fprintf(stderr, PROG ": RDMA device '%s' not found (%d devices)\n", device, n);
			exit(2);
		}
		ctx = v.open_device(dev);
		if (!ctx)
			fatal("ibv_open_device");
		pd = v.alloc_pd(ctx);
		if (!pd)
			fatal("ibv_alloc_pd");
	}

	if (anon) {
		kind = "anon";
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	} else {
		struct stat st;

		kind = devdax ? "devdax" : priv ? "file-private" : "file";
		fd = open(devdax ? devdax : file, O_RDWR | O_CLOEXEC | (file ? O_CREAT : 0), 0644);
		if (fd < 0)
			fatal(devdax ? devdax : file);
		/* a mapping past EOF would SIGBUS on touch and EFAULT on pin */
		if (file && (fstat(fd, &st) < 0 || ((size_t)st.st_size < len && ftruncate(fd, (off_t)len) < 0)))
			fatal(file);
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, priv ? MAP_PRIVATE : MAP_SHARED, fd, 0);
	}
	if (addr == MAP_FAILED)
		fatal("mmap");
	if (touch)
		for (size_t off = 0; off < len; off += (size_t)page)
			((volatile char *)addr)[off] = 0x5a;
	printf("REGION kind=%s addr=%p len=%zu access=0x%x\n", kind, addr, len, g_access);
	fflush(stdout);

	for (; i < argc; i++)
		run_entry(argv[i], pd, addr, len, fake);

	munmap(addr, len);
	if (fd >= 0)
		close(fd);
	if (ctx) {
		v.dealloc_pd(pd);
		v.close_device(ctx);
	}
	if (list)
		v.free_device_list(list);
	return 0;
}
