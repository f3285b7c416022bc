/*
 * libdaxspy.so: a pass-through spy for the memory-registration entry points.
 *
 * Preload it AFTER the shim: LD_PRELOAD=libdaxguard.so:libdaxspy.so. The shim
 * forwards to the next definition, which is this one, so a line in the log
 * proves the shim forwarded; no line proves it refused before the provider
 * was reached.
 *
 *   DAXSPY_LOG=/path  append "<entry> addr=0x.. len=.. access=0x..\n" per call
 *                     (one write(2) on an O_APPEND fd, so lines never interleave)
 *   DAXSPY_STUB=1     do not forward: return NULL (int entries: -1) with
 *                     errno ENODEV. For hosts without a device, where the real
 *                     function would dereference a fake pd.
 *   DAXSPY_STUB=ok    do not forward: succeed, errno untouched (a
 *                     thread's own fake struct ibv_mr, never to be
 *                     deregistered; ibv_rereg_mr: 0). Read at every call, so
 *                     a program can switch between the two with setenv().
 *
 * The exports are plain (unversioned) so they satisfy any versioned reference.
 * Note: libibverbs' own ibv_reg_mr and ibv_reg_mr_iova call ibv_reg_mr_iova2
 * through its PLT, so when forwarding, one ibv_reg_mr call logs two lines
 * (ibv_reg_mr, then ibv_reg_mr_iova2). With DAXSPY_STUB=1 only the first.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <infiniband/verbs.h>

static void spy_log(const char *entry, uint64_t addr, size_t len, int access)
{
	const char *path = getenv("DAXSPY_LOG");
	char line[192];
	int saved = errno, n, fd;

	if (!path || !*path)
		return;
	n = snprintf(line, sizeof(line), "%s addr=0x%" PRIx64 " len=%zu access=0x%x\n",
		     entry, addr, len, (unsigned int)access);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			fprintf(stderr, "daxspy: short write to %s\n", path);
		close(fd);
	}
	errno = saved;
}

static int stubbed(void)
{
	const char *s = getenv("DAXSPY_STUB");

	return s && strcmp(s, "1") == 0;
}

static int stubbed_ok(void)
{
	const char *s = getenv("DAXSPY_STUB");

	return s && strcmp(s, "ok") == 0;
}

/* DAXSPY_STUB=ok's answer: an MR that looks registered, errno untouched. */
static struct ibv_mr *fake_mr(struct ibv_pd *pd, void *addr, size_t length)
{
	static __thread struct ibv_mr mr;

	mr.pd = pd;
	mr.addr = addr;
	mr.length = length;
	return &mr;
}

/*
 * The next definition after us (libibverbs, normally). RTLD_NEXT misses it
 * when the program dlopen()ed libibverbs RTLD_LOCAL, hence the NOLOAD
 * fallback. Cached; a racing second lookup finds the same pointer.
 */
static void *real_fn(void **cache, const char *name, const char *version)
{
	void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
	void *lib;

	if (fn)
		return fn;
	fn = dlvsym(RTLD_NEXT, name, version);
	if (!fn) {
		lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_NOLOAD);
		if (lib) {
			fn = dlvsym(lib, name, version);
			dlclose(lib); /* NOLOAD took a reference; the library stays */
		}
	}
	if (!fn)
		fprintf(stderr, "daxspy: cannot find %s@%s\n", name, version);
	__atomic_store_n(cache, fn, __ATOMIC_RELEASE);
	return fn;
}

/* Parenthesised names: verbs.h defines ibv_reg_mr and ibv_reg_mr_iova as macros. */

struct ibv_mr *(ibv_reg_mr)(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	static void *cache;
	struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t, int);

	spy_log("ibv_reg_mr", (uintptr_t)addr, length, access);
	if (stubbed_ok())
		return fake_mr(pd, addr, length);
	if (stubbed()) {
		errno = ENODEV;
		return NULL;
	}
	real = real_fn(&cache, "ibv_reg_mr", "IBVERBS_1.1");
	if (!real) {
		errno = ENOSYS;
		return NULL;
	}
	return real(pd, addr, length, access);
}

struct ibv_mr *(ibv_reg_mr_iova)(struct ibv_pd *pd, void *addr, size_t length,
				 uint64_t iova, int access)
{
	static void *cache;
	struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t, uint64_t, int);

	spy_log("ibv_reg_mr_iova", (uintptr_t)addr, length, access);
	if (stubbed_ok())
		return fake_mr(pd, addr, length);
	if (stubbed()) {
		errno = ENODEV;
		return NULL;
	}
	real = real_fn(&cache, "ibv_reg_mr_iova", "IBVERBS_1.7");
	if (!real) {
		errno = ENOSYS;
		return NULL;
	}
	return real(pd, addr, length, iova, access);
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
				uint64_t iova, unsigned int access)
{
	static void *cache;
	struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int);

	spy_log("ibv_reg_mr_iova2", (uintptr_t)addr, length, (int)access);
	if (stubbed_ok())
		return fake_mr(pd, addr, length);
	if (stubbed()) {
		errno = ENODEV;
		return NULL;
	}
	real = real_fn(&cache, "ibv_reg_mr_iova2", "IBVERBS_1.8");
	if (!real) {
		errno = ENOSYS;
		return NULL;
	}
	return real(pd, addr, length, iova, access);
}

int ibv_rereg_mr(struct ibv_mr *mr, int flags, struct ibv_pd *pd, void *addr,
		 size_t length, int access)
{
	static void *cache;
	int (*real)(struct ibv_mr *, int, struct ibv_pd *, void *, size_t, int);

	spy_log("ibv_rereg_mr", (uintptr_t)addr, length, access);
	if (stubbed_ok())
		return 0;
	if (stubbed()) {
		errno = ENODEV;
		return -1;
	}
	real = real_fn(&cache, "ibv_rereg_mr", "IBVERBS_1.1");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(mr, flags, pd, addr, length, access);
}

/* dma-buf registrations have no address: the log shows the iova as addr. */
struct ibv_mr *ibv_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t offset, size_t length,
				 uint64_t iova, int fd, int access)
{
	static void *cache;
	struct ibv_mr *(*real)(struct ibv_pd *, uint64_t, size_t, uint64_t, int, int);

	spy_log("ibv_reg_dmabuf_mr", iova, length, access);
	if (stubbed_ok())
		return fake_mr(pd, NULL, length);
	if (stubbed()) {
		errno = ENODEV;
		return NULL;
	}
	real = real_fn(&cache, "ibv_reg_dmabuf_mr", "IBVERBS_1.12");
	if (!real) {
		errno = ENOSYS;
		return NULL;
	}
	return real(pd, offset, length, iova, fd, access);
}

/*
 * ibv_reg_mr_ex@IBVERBS_1.15 (rdma-core 57+). Older verbs.h do not declare
 * it, newer ones do with struct ibv_mr_init_attr: the C name is our own and
 * the symbol is set with an asm label, so either header compiles. The
 * fields read are upstream's layout: length @0, access @8, comp_mask @16,
 * addr @32 (valid with IBV_REG_MR_MASK_ADDR, 1 << 1).
 */
struct spy_mr_init_attr {
	size_t length;
	int access;
	uint64_t comp_mask, iova;
	void *addr;
	int fd;
	uint64_t fd_offset;
	void *dmah;
};

struct ibv_mr *spy_reg_mr_ex(struct ibv_pd *pd, struct spy_mr_init_attr *attr) __asm__("ibv_reg_mr_ex");

struct ibv_mr *spy_reg_mr_ex(struct ibv_pd *pd, struct spy_mr_init_attr *attr)
{
	static void *cache;
	struct ibv_mr *(*real)(struct ibv_pd *, struct spy_mr_init_attr *);
	void *addr = attr && (attr->comp_mask & 2) ? attr->addr : NULL;

	spy_log("ibv_reg_mr_ex", (uintptr_t)addr, attr ? attr->length : 0, attr ? attr->access : 0);
	if (stubbed_ok())
		return fake_mr(pd, addr, attr ? attr->length : 0);
	if (stubbed()) {
		errno = ENODEV;
		return NULL;
	}
	real = real_fn(&cache, "ibv_reg_mr_ex", "IBVERBS_1.15");
	if (!real) {
		errno = ENOSYS;
		return NULL;
	}
	return real(pd, attr);
}
