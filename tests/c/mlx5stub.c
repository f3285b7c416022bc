/*
 * A stand-in libmlx5.so.1 for hosts without a ConnectX (build output:
 * target/c/mlx5stub/libmlx5.so.1, kept out of target/c itself so the
 * guest's library search never sees it). It defines only the DevX UMEM
 * calls daxguard guards, at libmlx5's versions (mlx5stub.map: MLX5_1.7,
 * MLX5_1.19), and counts every call that reaches it:
 *
 *   mlx5stub_calls     calls of mlx5dv_devx_umem_reg and _reg_ex so far
 *   mlx5stub_last      "<function> addr=0x.. size=N access=0x.. comp_mask=0x.."
 *
 * A registration succeeds (a fake umem, id = the call count) unless `size`
 * is 0 (EINVAL), so "forwarded" and "refused before the provider" differ
 * both in the answer and in the count. mlx5dv_devx_umem_dereg frees it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <infiniband/mlx5dv.h>

int mlx5stub_calls;
char mlx5stub_last[160];

static struct mlx5dv_devx_umem *reached(const char *fn, void *addr, size_t size, uint32_t access, uint64_t comp_mask)
{
	struct mlx5dv_devx_umem *u;

	__atomic_add_fetch(&mlx5stub_calls, 1, __ATOMIC_SEQ_CST);
	snprintf(mlx5stub_last, sizeof(mlx5stub_last), "%s addr=%p size=%zu access=0x%x comp_mask=0x%llx", fn, addr,
		 size, access, (unsigned long long)comp_mask);
	if (!size) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		errno = ENOMEM;
		return NULL;
	}
	u->umem_id = (uint32_t)mlx5stub_calls;
	return u;
}

struct mlx5dv_devx_umem *mlx5dv_devx_umem_reg(struct ibv_context *ctx, void *addr, size_t size, uint32_t access)
{
	(void)ctx;
	return reached("mlx5dv_devx_umem_reg", addr, size, access, 0);
}

struct mlx5dv_devx_umem *mlx5dv_devx_umem_reg_ex(struct ibv_context *ctx, struct mlx5dv_devx_umem_in *in)
{
	(void)ctx;
	if (!in) {
		errno = EINVAL;
		return NULL;
	}
	return reached("mlx5dv_devx_umem_reg_ex", in->addr, in->size, in->access, in->comp_mask);
}

int mlx5dv_devx_umem_dereg(struct mlx5dv_devx_umem *umem)
{
	free(umem);
	return 0;
}
