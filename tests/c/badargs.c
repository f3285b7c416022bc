/*
 * badargs: registrations with arguments a careless or hostile program might
 * pass, to show the shim neither crashes nor swallows them. Every CASE calls
 * ibv_reg_mr_iova2() once (fork: once in the parent, once in the child) and
 * prints
 *
 *   CASE <name> pid=<pid> addr=0x.. len=.. access=0x.. result=ok
 *   CASE <name> pid=<pid> addr=0x.. len=.. access=0x.. result=fail errno=<NAME> (<num>)
 *
 * Host only: the pd is a zeroed static struct (or NULL for `nullpd`), so run
 * it with libdaxspy.so and DAXSPY_STUB=1 behind the shim; the real function
 * would dereference the pd.
 *
 * usage: badargs [--device NAME] CASE...
 *   nullpd    NULL pd, two anonymous pages
 *   nulladdr  addr NULL, len 4096
 *   len0      an anonymous page, len 0
 *   overflow  addr 0xffffffffffff0000, len 0x20000 (addr + len wraps)
 *   protnone  two PROT_NONE anonymous pages
 *   unmapped  two pages that were mapped and then unmapped
 *   absurd    two anonymous pages, access 0xffffffff (includes ON_DEMAND)
 *   fork      register in the parent, fork, register in the child
 *             (the parent prints its line before forking)
 * Exit 0; 2 on a usage error or a failed setup call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#define ACC_RW (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

static struct ibv_pd fake_pd_storage;
/* The pd every case but nullpd uses: a zeroed fake on the host, a real one
 * with --device NAME (guest), where the kernel's own answer comes back. */
static struct ibv_pd *pd_ = &fake_pd_storage;
#define fake_pd (*pd_)

static void *map(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("mmap");
	return p;
}

/* One registration and its result line; a successful MR is deregistered. */
static void reg(const char *name, struct ibv_pd *pd, void *addr, size_t len, unsigned int access)
{
	struct ibv_mr *mr;
	int err;

	errno = 0;
	mr = ibv_reg_mr_iova2(pd, addr, len, (uintptr_t)addr, access);
	err = errno;
	printf("CASE %s pid=%d addr=%p len=%zu access=0x%x ", name, (int)getpid(), addr, len, access);
	if (mr)
		printf("result=ok\n");
	else
		printf("result=fail errno=%s (%d)\n", errname(err), err);
	fflush(stdout);
	if (mr)
		ibv_dereg_mr(mr);
}

static void run(const char *name, size_t page)
{
	void *p;

	if (strcmp(name, "nullpd") == 0) {
		reg(name, NULL, map(2 * page, PROT_READ | PROT_WRITE), 2 * page, ACC_RW);
	} else if (strcmp(name, "nulladdr") == 0) {
		reg(name, &fake_pd, NULL, 4096, ACC_RW);
	} else if (strcmp(name, "len0") == 0) {
		reg(name, &fake_pd, map(page, PROT_READ | PROT_WRITE), 0, ACC_RW);
	} else if (strcmp(name, "overflow") == 0) {
		reg(name, &fake_pd, (void *)(uintptr_t)0xffffffffffff0000ULL, 0x20000, ACC_RW);
	} else if (strcmp(name, "protnone") == 0) {
		reg(name, &fake_pd, map(2 * page, PROT_NONE), 2 * page, ACC_RW);
	} else if (strcmp(name, "unmapped") == 0) {
		p = map(2 * page, PROT_READ | PROT_WRITE);
		if (munmap(p, 2 * page) < 0)
			fatal("munmap");
		reg(name, &fake_pd, p, 2 * page, ACC_RW);
	} else if (strcmp(name, "absurd") == 0) {
		reg(name, &fake_pd, map(2 * page, PROT_READ | PROT_WRITE), 2 * page, 0xffffffffu);
	} else if (strcmp(name, "fork") == 0) {
		int status;
		pid_t child;

		p = map(2 * page, PROT_READ | PROT_WRITE);
		reg("fork-parent", &fake_pd, p, 2 * page, ACC_RW);
		child = fork();
		if (child < 0)
			fatal("fork");
		if (child == 0) {
			reg("fork-child", &fake_pd, p, 2 * page, ACC_RW);
			_exit(0);
		}
		if (waitpid(child, &status, 0) < 0)
			fatal("waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "badargs: fork child ended with status 0x%x\n", status);
			exit(2);
		}
	} else {
		fprintf(stderr, "badargs: unknown CASE %s\n", name);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "--device") == 0) {
		pd_ = open_pd(argv[2]);
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: badargs [--device NAME] nullpd|nulladdr|len0|overflow|protnone|unmapped|absurd|fork...\n");
		return 2;
	}
	for (; i < argc; i++)
		run(argv[i], page);
	return 0;
}
