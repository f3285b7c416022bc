/*
 * devx: libmlx5's DevX UMEM registration reached the ways DPDK's mlx5 PMD
 * and UCX reach it, against a library given by path (on the host, the
 * counting stub target/c/mlx5stub/libmlx5.so.1, see mlx5stub.c). One line
 * per VIA:
 *
 *   VIA <via> result=ok calls=<N> from=<object the pointer is in>
 *   VIA <via> result=fail errno=<NAME> (<num>) calls=<N> from=<object>
 *
 * `calls` is the stub's own count after the call (mlx5stub_calls; -1 when
 * the library has no such counter): a refusal before the provider leaves
 * it unchanged. `from` is dladdr()'s file name for the function pointer
 * used: libdaxguard.so when daxguard's dlsym wrapper handed out its export.
 *
 * usage: devx --lib PATH [--global] [--access rw|ro] [--len N]
 *             (--anon | --file PATH | --unverified) VIA...
 *   --lib      the libmlx5 to dlopen (RTLD_NOW | RTLD_LOCAL, or RTLD_GLOBAL with --global)
 *   --access   rw (default): IBV_ACCESS_LOCAL_WRITE | REMOTE_WRITE | REMOTE_READ; ro: 0
 *   --unverified  a mapping daxguard cannot verify (common.h map_unverified; root)
 *
 * | VIA | pointer |
 * |---|---|
 * | reg | dlvsym(h, "mlx5dv_devx_umem_reg", "MLX5_1.7") |
 * | reg-ex | dlvsym(h, "mlx5dv_devx_umem_reg_ex", "MLX5_1.19"), user memory |
 * | dlsym | dlsym(h, "mlx5dv_devx_umem_reg") |
 * | default | dlsym(RTLD_DEFAULT, "mlx5dv_devx_umem_reg"): the binding a PLT slot gets (with --global) |
 * | dmabuf | reg-ex with MLX5DV_UMEM_MASK_DMABUF, dmabuf_fd -1: no user memory, forwarded unchecked |
 *
 * Exit 0 after the results; 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#define DAXGUARD_WANT_UNVERIFIED
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <infiniband/mlx5dv.h>

#include "common.h"

typedef struct mlx5dv_devx_umem *(*reg_fn)(struct ibv_context *, void *, size_t, uint32_t);
typedef struct mlx5dv_devx_umem *(*reg_ex_fn)(struct ibv_context *, struct mlx5dv_devx_umem_in *);
typedef int (*dereg_fn)(struct mlx5dv_devx_umem *);

static void usage(void)
{
	fprintf(stderr, "usage: devx --lib PATH [--global] [--access rw|ro] [--len N]\n"
			"            (--anon | --file PATH | --unverified) VIA...\n"
			"VIA: reg reg-ex dlsym default dmabuf\n");
	exit(2);
}

static const char *object_of(void *fn)
{
	Dl_info info;

	if (!fn || !dladdr(fn, &info) || !info.dli_fname)
		return "none";
	return strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
}

int main(int argc, char **argv)
{
	const char *lib_path = NULL, *file = NULL, *kind;
	int global = 0, anon = 0, unverified = 0, i, *calls;
	uint32_t access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	size_t len = 2 << 20;
	dereg_fn dereg;
	void *lib, *addr;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--global") == 0) global = 1;
		else if (strcmp(o, "--anon") == 0) anon = 1;
		else if (strcmp(o, "--unverified") == 0) unverified = 1;
		else if (!arg) usage();
		else if (strcmp(o, "--lib") == 0) lib_path = argv[++i];
		else if (strcmp(o, "--file") == 0) file = argv[++i];
		else if (strcmp(o, "--len") == 0) {
			len = parse_size(argv[++i]);
			if (!len) usage();
		} else if (strcmp(o, "--access") == 0) {
			i++;
			if (strcmp(arg, "rw") == 0) ;
			else if (strcmp(arg, "ro") == 0) access = 0;
			else usage();
		} else usage();
	}
	if (!lib_path || anon + unverified + !!file != 1 || i == argc)
		usage();

	lib = dlopen(lib_path, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
	if (!lib) {
		fprintf(stderr, "devx: dlopen %s: %s\n", lib_path, dlerror());
		exit(2);
	}
	calls = dlsym(lib, "mlx5stub_calls");
	dereg = (dereg_fn)dlvsym(lib, "mlx5dv_devx_umem_dereg", "MLX5_1.7");
	if (!dereg) {
		fprintf(stderr, "devx: no mlx5dv_devx_umem_dereg@MLX5_1.7 in %s\n", lib_path);
		exit(2);
	}

	if (anon) {
		kind = "anon";
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	} else if (unverified) {
		kind = "unverified";
		addr = map_unverified(len);
	} else {
		int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

		kind = "file";
		if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
			fatal(file);
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
	}
	if (addr == MAP_FAILED)
		fatal(kind);
	printf("REGION kind=%s addr=%p len=%zu access=0x%x\n", kind, addr, len, access);
	fflush(stdout);

	for (; i < argc; i++) {
		const char *via = argv[i];
		struct mlx5dv_devx_umem_in in = { .addr = addr, .size = len, .access = access, .pgsz_bitmap = ~0xfffULL };
		struct mlx5dv_devx_umem *u = NULL;
		void *fn;

		errno = 0;
		if (strcmp(via, "reg") == 0 || strcmp(via, "dlsym") == 0 || strcmp(via, "default") == 0) {
			fn = strcmp(via, "reg") == 0 ? dlvsym(lib, "mlx5dv_devx_umem_reg", "MLX5_1.7")
			   : strcmp(via, "dlsym") == 0 ? dlsym(lib, "mlx5dv_devx_umem_reg")
			   : dlsym(RTLD_DEFAULT, "mlx5dv_devx_umem_reg");
			if (fn)
				u = ((reg_fn)fn)(NULL, addr, len, access);
		} else if (strcmp(via, "reg-ex") == 0 || strcmp(via, "dmabuf") == 0) {
			fn = dlvsym(lib, "mlx5dv_devx_umem_reg_ex", "MLX5_1.19");
			if (strcmp(via, "dmabuf") == 0) {
				in.addr = 0;
				in.comp_mask = MLX5DV_UMEM_MASK_DMABUF;
				in.dmabuf_fd = -1;
			}
			if (fn)
				u = ((reg_ex_fn)fn)(NULL, &in);
		} else {
			fprintf(stderr, "devx: unknown VIA %s\n", via);
			usage();
		}
		if (!fn) {
			fprintf(stderr, "devx: %s: no such function in %s: %s\n", via, lib_path, dlerror());
			exit(2);
		}
		if (u)
			printf("VIA %s result=ok calls=%d from=%s\n", via, calls ? *calls : -1, object_of(fn));
		else
			printf("VIA %s result=fail errno=%s (%d) calls=%d from=%s\n", via, errname(errno), errno,
			       calls ? *calls : -1, object_of(fn));
		fflush(stdout);
		if (u)
			dereg(u);
	}
	munmap(addr, len);
	return 0;
}
