/*
 * odpwrite: real RDMA traffic into a file mapping. One process, one device,
 * two RC QPs on the same port connected to each other. QP A RDMA-WRITEs an
 * anonymous source buffer into a MAP_SHARED mapping of --dst registered by
 * QP B's side; then the destination is checked through the mapping and with
 * pread() of the file.
 *
 * The destination is registered with the verbs.h ibv_reg_mr() macro and a
 * literal access (LOCAL_WRITE | REMOTE_WRITE), never ON_DEMAND: under
 * LD_PRELOAD=libdaxguard.so with DAXGUARD_MODE=odp the shim is what adds
 * IBV_ACCESS_ON_DEMAND for fs-DAX. With --via NAME it is registered instead
 * through a pointer fetched as NCCL does (dlopen("libibverbs.so.1",
 * RTLD_NOW) + dlvsym): iova2 (ibv_reg_mr_iova2@IBVERBS_1.8), reg_mr
 * (ibv_reg_mr@IBVERBS_1.1) or iova (ibv_reg_mr_iova@IBVERBS_1.7); a line
 * "VIA name from=OBJECT" says which object the pointer is in.
 *
 * The pattern is unique per 4-byte word (word i = i ^ 0x5a5a0000 ^ salt):
 * rxe's ODP copy path in Linux 6.18 at a 1 KiB path MTU writes every packet
 * at offset 0 of its page and reports success, which a repeating pattern
 * would not show.
 *
 * usage: odpwrite --dst PATH [--device NAME] [--gid N] [--len N] [--chunk N]
 *                 [--mtu 256|512|1024|2048|4096] [--salt N] [--via iova2|reg_mr|iova]
 *        odpwrite --verify-only --dst PATH [--len N] [--salt N]
 *        odpwrite --emit-pattern [--len N] [--salt N] > FILE
 *   --dst is truncated to 0 then extended to --len (a sparse file, so every
 *   page the WRITE reaches is a fresh one); --device defaults to rxe0, --gid
 *   to 1 (rxe's IPv4-mapped RoCEv2 GID), --len to 2M, --chunk (bytes per
 *   WRITE, capped by the port's max message size) to 512K, --salt to 0.
 *   --mtu forces a path MTU; by default 4096, or the port's active MTU if lower.
 *
 * Output lines: MTU ..., REG src ok|ERRNO, [VIA ...,] REG dst ok|ERRNO, WRITE ok|<status>,
 * VERIFY ok bytes=N | VERIFY mismatch at offset X (...), TIME ....
 * Exit 0 only if everything is ok; 1 if a step failed; 2 on a usage or setup error.
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
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "common.h"

#define DEPTH 16 /* WRITEs in flight */
#define POLL_SECONDS 120 /* TCG is slow; a lost completion must not hang the run */

static size_t g_len = 2 << 20, g_chunk = 512 << 10;
static uint32_t g_salt;

static void usage(void)
{
	fprintf(stderr, "usage: odpwrite --dst PATH [--device NAME] [--gid N] [--len N] [--chunk N]\n"
			"                [--mtu 256|512|1024|2048|4096] [--salt N] [--via iova2|reg_mr|iova]\n"
			"       odpwrite --verify-only --dst PATH [--len N] [--salt N]\n"
			"       odpwrite --emit-pattern [--len N] [--salt N] > FILE\n");
	exit(2);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint32_t word(size_t i)
{
	return (uint32_t)i ^ 0x5a5a0000u ^ g_salt;
}

static void fill(uint32_t *p, size_t len)
{
	for (size_t i = 0; i < len / 4; i++)
		p[i] = word(i);
}

/* Where a copy of the destination first differs from the pattern, and how much. */
struct diff {
	size_t bad, first;
	uint32_t got;
};

/* Compares `len` bytes at p, which are bytes [base, base + len) of the destination. */
static void compare(struct diff *d, const uint32_t *p, size_t base, size_t len)
{
	for (size_t i = 0; i < len / 4; i++) {
		size_t w = base / 4 + i;

		if (p[i] == word(w))
			continue;
		if (!d->bad++) {
			d->first = w * 4;
			d->got = p[i];
		}
	}
}

static void report(const char *how, const struct diff *d)
{
	if (d->bad)
		printf("VERIFY mismatch at offset %zu (%s: got 0x%08x, want 0x%08x; %zu of %zu words differ)\n",
		       d->first, how, d->got, word(d->first / 4), d->bad, g_len / 4);
}

/* The mapping (if given), then pread() of the file: both must hold the pattern. */
static int verify(const char *path, const uint32_t *map)
{
	struct diff m = { 0 }, f = { 0 };
	size_t step = 1 << 20;
	uint32_t *buf = malloc(step);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (!buf || fd < 0)
		fatal(path);
	if (map)
		compare(&m, map, 0, g_len);
	for (size_t off = 0; off < g_len; off += step) {
		size_t want = g_len - off < step ? g_len - off : step;

		if (pread(fd, buf, want, (off_t)off) != (ssize_t)want) {
			printf("VERIFY short read at offset %zu\n", off);
			return 0;
		}
		compare(&f, buf, off, want);
	}
	close(fd);
	free(buf);
	report("mapping", &m);
	report("pread", &f);
	if (m.bad || f.bad)
		return 0;
	printf("VERIFY ok bytes=%zu\n", g_len);
	return 1;
}

static int modify(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask, const char *what)
{
	int rc = ibv_modify_qp(qp, a, mask);

	if (rc)
		fprintf(stderr, "odpwrite: ibv_modify_qp %s: %s\n", what, strerror(rc));
	return rc;
}

/* RESET -> INIT -> RTR -> RTS, connected to `dest_qpn` through our own GID. */
static void connect_qp(struct ibv_qp *qp, uint32_t dest_qpn, const union ibv_gid *gid, int gid_idx,
		       enum ibv_mtu mtu)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT,
		.port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE,
	};

	if (modify(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT"))
		exit(2);
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = mtu;
	a.dest_qp_num = dest_qpn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = *gid;
	a.ah_attr.grh.sgid_index = (uint8_t)gid_idx;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = 1;
	if (modify(qp, &a,
		   IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			   IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
		   "RTR"))
		exit(2);
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 17; /* ~0.5 s: ODP faults under TCG take a while */
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	if (modify(qp, &a,
		   IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			   IBV_QP_MAX_QP_RD_ATOMIC,
		   "RTS"))
		exit(2);
}

static enum ibv_mtu mtu_enum(int bytes)
{
	switch (bytes) {
	case 256: return IBV_MTU_256;
	case 512: return IBV_MTU_512;
	case 1024: return IBV_MTU_1024;
	case 2048: return IBV_MTU_2048;
	case 4096: return IBV_MTU_4096;
	}
	usage();
	return IBV_MTU_4096;
}

/* Posts WRITEs of g_chunk bytes (DEPTH in flight) and waits for each. */
static int write_all(struct ibv_qp *qp, struct ibv_cq *cq, struct ibv_mr *src, struct ibv_mr *dst)
{
	size_t posted = 0, done = 0, n = (g_len + g_chunk - 1) / g_chunk;
	double deadline = now_ms() + POLL_SECONDS * 1e3;

	while (done < n) {
		struct ibv_wc wc;
		int got;

		while (posted < n && posted - done < DEPTH) {
			size_t off = posted * g_chunk;
			struct ibv_sge sge = {
				.addr = (uintptr_t)src->addr + off,
				.length = (uint32_t)(g_len - off < g_chunk ? g_len - off : g_chunk),
				.lkey = src->lkey,
			};
			struct ibv_send_wr wr = {
				.wr_id = posted,
				.sg_list = &sge,
				.num_sge = 1,
				.opcode = IBV_WR_RDMA_WRITE,
				.send_flags = IBV_SEND_SIGNALED,
				.wr.rdma = { .remote_addr = (uintptr_t)dst->addr + off, .rkey = dst->rkey },
			}, *bad;
			int rc = ibv_post_send(qp, &wr, &bad);

			if (rc) {
				printf("WRITE post %s\n", errname(rc));
				return 0;
			}
			posted++;
		}
		got = ibv_poll_cq(cq, 1, &wc);
		if (got < 0) {
			printf("WRITE poll failed\n");
			return 0;
		}
		if (got == 0) {
			if (now_ms() > deadline) {
				printf("WRITE timeout (%zu of %zu completions)\n", done, n);
				return 0;
			}
			usleep(200); /* let the emulated CPUs run rxe's tasks */
			continue;
		}
		if (wc.status != IBV_WC_SUCCESS) {
			printf("WRITE %s (wr %llu)\n", ibv_wc_status_str(wc.status), (unsigned long long)wc.wr_id);
			return 0;
		}
		done++;
	}
	printf("WRITE ok writes=%zu chunk=%zu\n", n, g_chunk);
	return 1;
}

/*
 * The destination registered through a pointer fetched as NCCL fetches it
 * (src/misc/ibvsymbols.cc): the same libibverbs this program links, opened
 * again by name.
 */
static struct ibv_mr *reg_via(const char *via, struct ibv_pd *pd, void *addr, size_t len, int access)
{
	void *h = dlopen("libibverbs.so.1", RTLD_NOW), *fn;
	Dl_info info;

	if (!h) {
		fprintf(stderr, "odpwrite: dlopen libibverbs.so.1: %s\n", dlerror());
		exit(2);
	}
	if (strcmp(via, "iova2") == 0)
		fn = dlvsym(h, "ibv_reg_mr_iova2", "IBVERBS_1.8");
	else if (strcmp(via, "reg_mr") == 0)
		fn = dlvsym(h, "ibv_reg_mr", "IBVERBS_1.1");
	else
		fn = dlvsym(h, "ibv_reg_mr_iova", "IBVERBS_1.7");
	if (!fn) {
		fprintf(stderr, "odpwrite: dlvsym for --via %s: %s\n", via, dlerror());
		exit(2);
	}
	printf("VIA %s from=%s\n", via, dladdr(fn, &info) && info.dli_fname ? info.dli_fname : "none");
	errno = 0;
	if (strcmp(via, "iova2") == 0)
		return ((struct ibv_mr * (*)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int)) fn)(
			pd, addr, len, (uintptr_t)addr, (unsigned int)access);
	if (strcmp(via, "reg_mr") == 0)
		return ((struct ibv_mr * (*)(struct ibv_pd *, void *, size_t, int)) fn)(pd, addr, len, access);
	return ((struct ibv_mr * (*)(struct ibv_pd *, void *, size_t, uint64_t, int)) fn)(pd, addr, len,
											(uintptr_t)addr, access);
}

int main(int argc, char **argv)
{
	const char *device = "rxe0", *dst_path = NULL, *via = NULL;
	int gid_idx = 1, want_mtu = 0, verify_only = 0, emit = 0, fd, okall;
	long page = sysconf(_SC_PAGESIZE);
	struct ibv_context *ctx;
	struct ibv_port_attr port;
	union ibv_gid gid;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qa, *qb;
	struct ibv_mr *src_mr, *dst_mr;
	enum ibv_mtu mtu;
	uint32_t *src, *dst;
	double t0, t_reg, t_write, t_verify;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--verify-only"))
			verify_only = 1;
		else if (!strcmp(a, "--emit-pattern"))
			emit = 1;
		else if (!v)
			usage();
		else if (!strcmp(a, "--dst"))
			dst_path = v, i++;
		else if (!strcmp(a, "--device"))
			device = v, i++;
		else if (!strcmp(a, "--gid"))
			gid_idx = atoi(v), i++;
		else if (!strcmp(a, "--len"))
			g_len = parse_size(v), i++;
		else if (!strcmp(a, "--chunk"))
			g_chunk = parse_size(v), i++;
		else if (!strcmp(a, "--mtu"))
			want_mtu = atoi(v), i++;
		else if (!strcmp(a, "--salt"))
			g_salt = (uint32_t)strtoul(v, NULL, 0), i++;
		else if (!strcmp(a, "--via") && (!strcmp(v, "iova2") || !strcmp(v, "reg_mr") || !strcmp(v, "iova")))
			via = v, i++;
		else
			usage();
	}
	/* page multiples keep every WRITE page-aligned, which rxe's ODP path needs */
	if (!g_len || !g_chunk || g_len % (size_t)page || g_chunk % (size_t)page)
		usage();

	if (emit) {
		uint32_t *p = malloc(g_len);

		if (!p)
			fatal("malloc");
		fill(p, g_len);
		if (fwrite(p, 1, g_len, stdout) != g_len || fflush(stdout))
			fatal("stdout");
		return 0;
	}
	if (!dst_path)
		usage();
	if (verify_only)
		return verify(dst_path, NULL) ? 0 : 1;

	ctx = open_device(device);
	if (ibv_query_port(ctx, 1, &port) || ibv_query_gid(ctx, 1, gid_idx, &gid))
		fatal("ibv_query_port/gid");
	if (port.max_msg_sz && g_chunk > port.max_msg_sz)
		g_chunk = port.max_msg_sz & ~((size_t)page - 1);
	mtu = want_mtu ? mtu_enum(want_mtu) : IBV_MTU_4096;
	if (!want_mtu && port.active_mtu < mtu) {
		printf("MTU port active_mtu %d is below 4096: using it (rxe's ODP path wants 4096)\n",
		       128 << port.active_mtu);
		mtu = port.active_mtu;
	}
	printf("MTU path=%d active=%d gid=%d\n", 128 << mtu, 128 << port.active_mtu, gid_idx);

	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 2 * DEPTH, NULL, NULL, 0);
	if (!pd || !cq)
		fatal("ibv_alloc_pd/ibv_create_cq");
	{
		struct ibv_qp_init_attr ia = {
			.send_cq = cq,
			.recv_cq = cq,
			.cap = { .max_send_wr = DEPTH, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1 },
			.qp_type = IBV_QPT_RC,
		};

		qa = ibv_create_qp(pd, &ia);
		qb = ibv_create_qp(pd, &ia);
		if (!qa || !qb)
			fatal("ibv_create_qp");
	}
	connect_qp(qa, qb->qp_num, &gid, gid_idx, mtu);
	connect_qp(qb, qa->qp_num, &gid, gid_idx, mtu);

	src = mmap(NULL, g_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		fatal("mmap source");
	fill(src, g_len);
	/* Fresh, sparse destination: stale content from an earlier run cannot pass. */
	fd = open(dst_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)g_len) < 0)
		fatal(dst_path);
	dst = mmap(NULL, g_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (dst == MAP_FAILED)
		fatal("mmap destination");
	close(fd);

	t0 = now_ms();
	src_mr = ibv_reg_mr(pd, src, g_len, IBV_ACCESS_LOCAL_WRITE);
	printf("REG src %s\n", src_mr ? "ok" : errname(errno));
	if (!src_mr)
		return 1;
	errno = 0;
	if (via)
		dst_mr = reg_via(via, pd, dst, g_len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	else
		dst_mr = ibv_reg_mr(pd, dst, g_len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	printf("REG dst %s\n", dst_mr ? "ok" : errname(errno));
	fflush(stdout);
	if (!dst_mr)
		return 1;
	t_reg = now_ms();

	okall = write_all(qa, cq, src_mr, dst_mr);
	fflush(stdout);
	t_write = now_ms();
	if (okall) {
		if (msync(dst, g_len, MS_SYNC) < 0)
			fatal("msync");
		okall = verify(dst_path, dst);
	}
	t_verify = now_ms();
	printf("TIME reg_ms=%.0f write_ms=%.0f verify_ms=%.0f\n", t_reg - t0, t_write - t_reg, t_verify - t_write);

	ibv_dereg_mr(dst_mr);
	ibv_dereg_mr(src_mr);
	ibv_destroy_qp(qa);
	ibv_destroy_qp(qb);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	munmap(dst, g_len);
	munmap(src, g_len);
	return okall ? 0 : 1;
}
