/*
 * A do-nothing ibv_reg_mr_iova2 for the host benchmarks (no RDMA device here).
 * It stands where libibverbs' function would: the shim, in a bench binary,
 * finds it with dlvsym(RTLD_NEXT, "ibv_reg_mr_iova2", "IBVERBS_1.8") once the
 * bench has dlopen()ed it RTLD_GLOBAL. It returns a fake, non-NULL MR so the
 * shim takes its success path (a NULL would make it explain a failure).
 * Built at bench start-up by support/stub.rs; never linked into anything.
 */
#include <stddef.h>
#include <stdint.h>

static char fake_mr[256];

/* How many calls reached the stub: proves the shim forwarded. */
unsigned long daxbench_stub_calls;

static void *reg(void *pd, void *addr, size_t length, uint64_t iova, unsigned int access)
{
	(void)pd;
	(void)addr;
	(void)length;
	(void)iova;
	(void)access;
	daxbench_stub_calls++;
	return fake_mr;
}

void *ibv_reg_mr_iova2(void *pd, void *addr, size_t length, uint64_t iova, unsigned int access)
{
	return reg(pd, addr, length, iova, access);
}

/*
 * The stub itself, for the direct-call baseline. Not dlvsym("ibv_reg_mr_iova2"):
 * in a bench binary that links daxguard, its dlsym wrapper answers that with
 * daxguard's export. A static function, so no symbol lookup can replace it.
 */
void *(*const daxbench_stub_reg)(void *, void *, size_t, uint64_t, unsigned int) = reg;
