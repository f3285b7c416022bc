/*
 * callcount: the shim's own work per registration, counted in instructions
 * (docs/benchmarks.md). Loads a do-nothing ibv_reg_mr_iova2 (the bench stub,
 * target/tmp/libdaxbench-stub.so from `cargo bench -p daxguard --bench cold`),
 * grows to about VMAS VMAs below one registered page, then registers it CALLS
 * times through whatever LD_PRELOAD puts in front of the stub, printing each
 * of the first three calls' time. Calls from the fourth on go through
 * warm_call(), for callgrind to count alone:
 *
 *   LD_PRELOAD=target/release/libdaxguard.so valgrind --tool=callgrind \
 *     --collect-atstart=no --toggle-collect=warm_call \
 *     target/c/callcount target/tmp/libdaxbench-stub.so 200 23
 *
 * (20 warm calls: divide the total by 20.) With DENY_QUERY=1 a seccomp
 * filter answers ENOTTY to PROCMAP_QUERY first, as a kernel before 6.11
 * does, so the shim takes the mmap-events map.
 *
 * usage: callcount STUB VMAS CALLS
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef void *(*reg_fn)(void *, void *, size_t, uint64_t, unsigned int);

/* PROCMAP_QUERY = _IOWR('f', 17, struct procmap_query) */
#define PROCMAP_QUERY_NR 0xc0686611u

static void deny_query(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROCMAP_QUERY_NR, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTTY),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("callcount: seccomp");
		exit(2);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

__attribute__((noinline)) void *warm_call(reg_fn reg, void *pd, char *buf)
{
	return reg(pd, buf, 4096, (uint64_t)(uintptr_t)buf, 1);
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE), vmas, calls;
	char pd[256], *base, *buf;
	reg_fn reg;

	if (argc != 4 || (vmas = atol(argv[2])) < 0 || (calls = atol(argv[3])) < 1) {
		fprintf(stderr, "usage: callcount STUB VMAS CALLS\n");
		return 2;
	}
	if (!dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)) {
		fprintf(stderr, "callcount: %s\n", dlerror());
		return 2;
	}
	/* The first ibv_reg_mr_iova2 in search order: the preloaded shim's, else the stub's. */
	reg = (reg_fn)dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova2");
	base = mmap(NULL, (size_t)(vmas + 3) * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!reg || base == MAP_FAILED) {
		perror("callcount: set-up");
		return 2;
	}
	for (long i = 1; i < vmas; i += 2)
		if (mprotect(base + i * page, page, PROT_READ)) {
			perror("callcount: mprotect (vm.max_map_count?)");
			return 2;
		}
	buf = base + (vmas + 1) * page;
	if (mprotect(buf, page, PROT_READ | PROT_WRITE))
		return 2;
	buf[0] = 1;
	if (getenv("DENY_QUERY"))
		deny_query();
	for (long k = 0; k < calls; k++) {
		uint64_t t = now_ns();
		void *mr = k >= 3 ? warm_call(reg, pd, buf) : reg(pd, buf, 4096, (uint64_t)(uintptr_t)buf, 1);

		if (!mr) {
			perror("callcount: registration");
			return 1;
		}
		if (k < 3)
			printf("call %ld: %llu ns\n", k, (unsigned long long)(now_ns() - t));
	}
	return 0;
}
