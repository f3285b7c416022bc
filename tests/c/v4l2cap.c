/*
 * v4l2cap: a V4L2 USERPTR capture on vivid, the way a camera program hands
 * its own memory to a driver. vivid's vb2_vmalloc_get_userptr() pins the
 * buffer with FOLL_LONGTERM at VIDIOC_QBUF (or VIDIOC_PREPARE_BUF), so the
 * kernel answers for the memory given on the command line, and the frames
 * prove the driver wrote into it. One line per step:
 *
 *   device: /dev/video0
 *   querycap: ok driver=vivid type=VIDEO_CAPTURE
 *   s_fmt: ok 320x180 YUYV planes=1 sizeimage=115200
 *   REGION kind=file addr=0x7f.. len=2097152
 *   reqbufs: ok count=3
 *   prepare_buf 0: ok                  (with --prepare)
 *   qbuf 0: EOPNOTSUPP
 *   streamon: ok
 *   dqbuf 0: ok
 *   frame 0: ok index=0 bytesused=115200 changed=115200
 *   requeue 0: ok
 *   streamoff: ok
 *   result: streamed frames=4          or  result: EOPNOTSUPP@qbuf
 *
 * See README.md for the flags. The result is "streamed" when every buffer was
 * queued and every frame landed, else ERRNO@STEP of the first failing step.
 * Exit 0 (with --expect: 0 if the result is the one expected, else 1); 2 on a
 * usage error, no vivid node, or memory that cannot be set up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libv4l2.h>
#include <linux/videodev2.h>

#include "common.h"

#define NBUF 3
#define SENTINEL 0xa5
/* Under TCG a 320x180 frame comes within a second; this is a hang bound. */
#define FRAME_TIMEOUT_MS 30000
#define DEVDAX_ALIGN (2u << 20)

/* How the program reaches the driver. */
static enum via {
	VIA_IOCTL,	/* open() + glibc ioctl() */
	VIA_LIBV4L2,	/* v4l2_open() + v4l2_ioctl(): libv4l2 with its format conversion */
	VIA_NOCONV,	/* open() + v4l2_fd_open(V4L2_DISABLE_CONVERSION) + v4l2_ioctl() */
} g_via;
static const char *const via_names[] = { "ioctl", "libv4l2", "libv4l2-noconv" };

static char g_result[64];	/* ERRNO@STEP of the first failure, or "" */
static long g_page;

__attribute__((noreturn)) static void usage(void)
{
	fprintf(stderr,
		"usage: v4l2cap [--via ioctl|libv4l2|libv4l2-noconv] [--mplane] [--device PATH]\n"
		"               [--prepare] [--frames N] [--bad] [--expect RESULT]\n"
		"               (--file PATH [--private] [--touch] | --anon | --devdax PATH)\n"
		"RESULT: streamed, or ERRNO@STEP (e.g. EOPNOTSUPP@qbuf, EINVAL@reqbufs)\n");
	exit(2);
}

/* glibc ioctl() or libv4l2's v4l2_ioctl(), each called by name so that a
 * preload sees the same calls a real program makes. */
static int xioctl(int fd, unsigned long req, void *arg)
{
	return g_via == VIA_IOCTL ? ioctl(fd, req, arg) : v4l2_ioctl(fd, req, arg);
}

/* Prints "<step>[ <idx>]: ok|ERRNO" and remembers the first failure. */
static int step(const char *name, int idx, int rc, int err)
{
	if (idx >= 0)
		printf("%s %d: %s", name, idx, rc < 0 ? errname(err) : "ok");
	else
		printf("%s: %s", name, rc < 0 ? errname(err) : "ok");
	if (rc < 0 && !g_result[0])
		snprintf(g_result, sizeof(g_result), "%s@%s", errname(err), name);
	return rc;
}

static int call(const char *name, int idx, int fd, unsigned long req, void *arg)
{
	int rc = xioctl(fd, req, arg);

	step(name, idx, rc, errno);
	putchar('\n');
	return rc;
}

/* Device caps (or the old overall caps) of an open node. */
static uint32_t node_caps(const struct v4l2_capability *cap)
{
	return cap->capabilities & V4L2_CAP_DEVICE_CAPS ? cap->device_caps : cap->capabilities;
}

/*
 * The vivid video-capture node: single-planar (VIDEO_CAPTURE, not the touch
 * node) or multi-planar (VIDEO_CAPTURE_MPLANE). Looked up with plain
 * open()/ioctl() whatever --via says: finding the node is not under test.
 */
static void find_vivid(int mplane, char *path, size_t size)
{
	for (int n = 0; n < 64; n++) {
		struct v4l2_capability cap = { 0 };
		uint32_t caps;
		int fd;

		snprintf(path, size, "/dev/video%d", n);
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (ioctl(fd, VIDIOC_QUERYCAP, &cap) == 0 && strcmp((char *)cap.driver, "vivid") == 0) {
			caps = node_caps(&cap);
			if (mplane ? (caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE) != 0
				   : (caps & V4L2_CAP_VIDEO_CAPTURE) && !(caps & V4L2_CAP_TOUCH)) {
				close(fd);
				return;
			}
		}
		close(fd);
	}
	fprintf(stderr, "v4l2cap: no vivid %s capture node in /dev/video0..63 (modprobe vivid)\n",
		mplane ? "multi-planar" : "single-planar");
	exit(2);
}

struct region {
	const char *kind;
	char *addr;
	size_t len;
	int fd;		/* the file or device behind it, -1 for anon */
};

/*
 * Maps the memory the buffers live in, filled with SENTINEL. A file is
 * filled through its descriptor before mmap, so a MAP_PRIVATE mapping shows
 * the sentinel without a copy-on-write: only --touch writes its pages.
 */
static void map_region(struct region *r, size_t len, const char *file, int priv, int touch, const char *devdax)
{
	r->fd = -1;
	r->len = len;
	if (!file && !devdax) {
		r->kind = "anon";
		r->addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r->addr == MAP_FAILED)
			fatal("mmap");
		memset(r->addr, SENTINEL, len);
		return;
	}
	r->kind = devdax ? "devdax" : priv ? "file-private" : "file";
	r->fd = open(devdax ? devdax : file, O_RDWR | O_CLOEXEC | (file ? O_CREAT : 0), 0644);
	if (r->fd < 0)
		fatal(devdax ? devdax : file);
	if (file) {
		static char chunk[1 << 16];
		struct stat st;

		/* a mapping past EOF would SIGBUS on touch and EFAULT on pin */
		if (fstat(r->fd, &st) < 0 || ((size_t)st.st_size < len && ftruncate(r->fd, (off_t)len) < 0))
			fatal(file);
		memset(chunk, SENTINEL, sizeof(chunk));
		for (size_t off = 0; off < len; off += sizeof(chunk))
			if (pwrite(r->fd, chunk, len - off < sizeof(chunk) ? len - off : sizeof(chunk), (off_t)off) < 0)
				fatal(file);
	}
	r->addr = mmap(NULL, len, PROT_READ | PROT_WRITE, priv ? MAP_PRIVATE : MAP_SHARED, r->fd, 0);
	if (r->addr == MAP_FAILED)
		fatal("mmap");
	if (devdax)
		memset(r->addr, SENTINEL, len);
	if (touch)
		for (size_t off = 0; off < len; off += (size_t)g_page)
			((volatile char *)r->addr)[off] = SENTINEL;
}

/* What one queue needs to know to build a struct v4l2_buffer. */
struct queue {
	int fd;
	uint32_t type;
	int mplane;
	unsigned nplanes;
	uint32_t sizeimage[VIDEO_MAX_PLANES];
	size_t plane_off[VIDEO_MAX_PLANES];	/* offset inside one buffer, page-aligned */
	size_t stride;				/* bytes of the region per buffer */
	struct region mem;
	struct v4l2_plane planes[VIDEO_MAX_PLANES];
};

static size_t round_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

/* A USERPTR buffer `idx` pointing into the region (planes in q->planes). */
static struct v4l2_buffer user_buf(struct queue *q, unsigned idx)
{
	struct v4l2_buffer b = { .index = idx, .type = q->type, .memory = V4L2_MEMORY_USERPTR };
	char *base = q->mem.addr + (size_t)idx * q->stride;

	memset(q->planes, 0, sizeof(q->planes));
	if (!q->mplane) {
		b.m.userptr = (unsigned long)base;
		b.length = q->sizeimage[0];
		return b;
	}
	for (unsigned p = 0; p < q->nplanes; p++) {
		q->planes[p].m.userptr = (unsigned long)(base + q->plane_off[p]);
		q->planes[p].length = q->sizeimage[p];
	}
	b.m.planes = q->planes;
	b.length = q->nplanes;
	return b;
}

/* S_FMT 320x240 YUYV; vivid picks the nearest size it has (320x180). */
static int set_format(struct queue *q)
{
	struct v4l2_format f = { .type = q->type };
	int rc;

	if (q->mplane) {
		f.fmt.pix_mp.width = 320;
		f.fmt.pix_mp.height = 240;
		f.fmt.pix_mp.pixelformat = V4L2_PIX_FMT_YUYV;
		f.fmt.pix_mp.field = V4L2_FIELD_NONE;
		f.fmt.pix_mp.num_planes = 1;
	} else {
		f.fmt.pix.width = 320;
		f.fmt.pix.height = 240;
		f.fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
		f.fmt.pix.field = V4L2_FIELD_NONE;
	}
	rc = xioctl(q->fd, VIDIOC_S_FMT, &f);
	step("s_fmt", -1, rc, errno);
	if (rc < 0) {
		putchar('\n');
		return rc;
	}
	if (q->mplane) {
		q->nplanes = f.fmt.pix_mp.num_planes;
		if (q->nplanes < 1 || q->nplanes > VIDEO_MAX_PLANES) {
			fprintf(stderr, "v4l2cap: S_FMT gave %u planes\n", q->nplanes);
			exit(2);
		}
		for (unsigned p = 0; p < q->nplanes; p++)
			q->sizeimage[p] = f.fmt.pix_mp.plane_fmt[p].sizeimage;
		printf(" %ux%u %.4s planes=%u sizeimage=", f.fmt.pix_mp.width, f.fmt.pix_mp.height,
		       (char *)&f.fmt.pix_mp.pixelformat, q->nplanes);
	} else {
		q->nplanes = 1;
		q->sizeimage[0] = f.fmt.pix.sizeimage;
		printf(" %ux%u %.4s planes=1 sizeimage=", f.fmt.pix.width, f.fmt.pix.height,
		       (char *)&f.fmt.pix.pixelformat);
	}
	q->stride = 0;
	for (unsigned p = 0; p < q->nplanes; p++) {
		printf("%s%u", p ? "," : "", q->sizeimage[p]);
		q->plane_off[p] = q->stride;
		q->stride += round_up(q->sizeimage[p], (size_t)g_page);
	}
	putchar('\n');
	return 0;
}

/* Bytes of buffer `idx` the driver wrote (differing from the sentinel). */
static size_t changed_bytes(const struct queue *q, const struct v4l2_buffer *b, size_t *used)
{
	size_t changed = 0;

	*used = 0;
	for (unsigned p = 0; p < q->nplanes; p++) {
		const unsigned char *s = (const unsigned char *)q->mem.addr + (size_t)b->index * q->stride + q->plane_off[p];
		size_t n = q->mplane ? b->m.planes[p].bytesused : b->bytesused;

		if (n > q->sizeimage[p])
			n = q->sizeimage[p];
		*used += n;
		for (size_t i = 0; i < n; i++)
			changed += s[i] != SENTINEL;
	}
	return changed;
}

static void refill(const struct queue *q, unsigned idx)
{
	memset(q->mem.addr + (size_t)idx * q->stride, SENTINEL, q->stride);
}

/* Dequeues `frames` frames, checks each landed in the region, requeues. */
static void capture(struct queue *q, int frames)
{
	for (int k = 0; k < frames; k++) {
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		struct v4l2_plane planes[VIDEO_MAX_PLANES] = { 0 };
		struct v4l2_buffer b = { .type = q->type, .memory = V4L2_MEMORY_USERPTR };
		size_t used, changed;
		int n = poll(&pfd, 1, FRAME_TIMEOUT_MS);

		if (n <= 0) {
			step("dqbuf", k, -1, n == 0 ? ETIMEDOUT : errno);
			putchar('\n');
			return;
		}
		if (q->mplane) {
			b.m.planes = planes;
			b.length = VIDEO_MAX_PLANES;
		}
		if (call("dqbuf", k, q->fd, VIDIOC_DQBUF, &b) < 0)
			return;
		changed = changed_bytes(q, &b, &used);
		/* More than half of the frame differs from the sentinel: the
		 * driver wrote it there, not somewhere else. */
		if (used > 0 && changed * 2 > used) {
			printf("frame %d: ok", k);
		} else {
			printf("frame %d: unchanged", k);
			if (!g_result[0])
				snprintf(g_result, sizeof(g_result), "unchanged@frame");
		}
		printf(" index=%u bytesused=%zu changed=%zu\n", b.index, used, changed);
		if (g_result[0])
			return;
		refill(q, b.index);
		b = user_buf(q, b.index);
		if (call("requeue", (int)b.index, q->fd, VIDIOC_QBUF, &b) < 0)
			return;
	}
}

/*
 * Bad input, for a preload that inspects QBUF: each case prints
 * "bad <case>: <ERRNO|ok>" with what the kernel (or libv4l2) answered.
 */
static void bad_inputs(struct queue *q)
{
	struct v4l2_buffer b;
	int closed = dup(q->fd), other;
	char *hole;

	/* EBADF: a descriptor number that was just closed */
	close(closed);
	b = user_buf(q, 0);
	call("bad badfd", -1, closed, VIDIOC_QBUF, &b);

	/* ENOTTY: the memory's own file (fs-DAX, say) is no V4L2 device */
	other = q->mem.fd >= 0 ? q->mem.fd : open("/dev/null", O_RDWR | O_CLOEXEC);
	b = user_buf(q, 0);
	call("bad notv4l2", -1, other, VIDIOC_QBUF, &b);
	if (other != q->mem.fd)
		close(other);

	/* length 0 at a valid address */
	b = user_buf(q, 0);
	if (q->mplane)
		q->planes[0].length = 0;
	else
		b.length = 0;
	call("bad len0", -1, q->fd, VIDIOC_QBUF, &b);

	/* address 0 with the right length */
	b = user_buf(q, 0);
	if (q->mplane)
		q->planes[0].m.userptr = 0;
	else
		b.m.userptr = 0;
	call("bad null", -1, q->fd, VIDIOC_QBUF, &b);

	/* an address range with nothing mapped */
	hole = mmap(NULL, q->stride, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hole == MAP_FAILED || munmap(hole, q->stride) < 0)
		fatal("mmap hole");
	b = user_buf(q, 0);
	if (q->mplane)
		q->planes[0].m.userptr = (unsigned long)hole;
	else
		b.m.userptr = (unsigned long)hole;
	call("bad unmapped", -1, q->fd, VIDIOC_QBUF, &b);

	/* addr + length wraps past the top of the address space */
	b = user_buf(q, 0);
	if (q->mplane)
		q->planes[0].m.userptr = -(unsigned long)g_page;
	else
		b.m.userptr = -(unsigned long)g_page;
	call("bad wrap", -1, q->fd, VIDIOC_QBUF, &b);

	/* an index past the buffers REQBUFS made */
	b = user_buf(q, 0);
	b.index = 99;
	call("bad index", -1, q->fd, VIDIOC_QBUF, &b);
}

int main(int argc, char **argv)
{
	const char *file = NULL, *devdax = NULL, *device = NULL, *expect = NULL;
	int anon = 0, priv = 0, touch = 0, mplane = 0, prepare = 0, bad = 0, frames = 4, queued = 0, i;
	char found[64];
	struct v4l2_capability cap = { 0 };
	struct v4l2_requestbuffers req = { 0 };
	struct queue q = { 0 };
	uint32_t caps;
	size_t len;

	g_page = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		const char *o = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = !strcmp(o, "--via") || !strcmp(o, "--device") || !strcmp(o, "--frames") ||
			    !strcmp(o, "--expect") || !strcmp(o, "--file") || !strcmp(o, "--devdax");

		if (takes && !arg)
			usage();
		if (!strcmp(o, "--via")) {
			if (!strcmp(arg, "ioctl"))
				g_via = VIA_IOCTL;
			else if (!strcmp(arg, "libv4l2"))
				g_via = VIA_LIBV4L2;
			else if (!strcmp(arg, "libv4l2-noconv"))
				g_via = VIA_NOCONV;
			else
				usage();
		} else if (!strcmp(o, "--device")) device = arg;
		else if (!strcmp(o, "--frames")) {
			frames = atoi(arg);
			if (frames < 1)
				usage();
		} else if (!strcmp(o, "--expect")) expect = arg;
		else if (!strcmp(o, "--file")) file = arg;
		else if (!strcmp(o, "--devdax")) devdax = arg;
		else if (!strcmp(o, "--mplane")) mplane = 1;
		else if (!strcmp(o, "--prepare")) prepare = 1;
		else if (!strcmp(o, "--bad")) bad = 1;
		else if (!strcmp(o, "--anon")) anon = 1;
		else if (!strcmp(o, "--private")) priv = 1;
		else if (!strcmp(o, "--touch")) touch = 1;
		else usage();
		i += takes;
	}
	if (!!file + anon + !!devdax != 1 || ((priv || touch) && !file))
		usage();

	if (!device) {
		find_vivid(mplane, found, sizeof(found));
		device = found;
	}
	printf("device: %s via=%s\n", device, via_names[g_via]);
	/* Non-blocking: DQBUF waits in poll(), bounded. */
	if (g_via == VIA_LIBV4L2) {
		q.fd = v4l2_open(device, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	} else {
		q.fd = open(device, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (q.fd >= 0 && g_via == VIA_NOCONV && v4l2_fd_open(q.fd, V4L2_DISABLE_CONVERSION) < 0)
			fatal("v4l2_fd_open");
	}
	if (q.fd < 0)
		fatal(device);

	/*
	 * The buffer type is what the API shows: libv4l2's mplane plugin, where
	 * installed, presents a multi-planar-only device as single-planar and
	 * converts each call, as it does for the programs that use it.
	 */
	if (xioctl(q.fd, VIDIOC_QUERYCAP, &cap) < 0)
		fatal("VIDIOC_QUERYCAP");
	caps = node_caps(&cap);
	q.mplane = !(caps & V4L2_CAP_VIDEO_CAPTURE) && (caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE);
	q.type = q.mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
	printf("querycap: ok driver=%s type=%s\n", (char *)cap.driver,
	       q.mplane ? "VIDEO_CAPTURE_MPLANE" : "VIDEO_CAPTURE");

	if (set_format(&q) < 0)
		goto out;
	/* 2 MiB: the device-DAX alignment, and whole huge pages on fs-DAX */
	len = round_up((size_t)NBUF * q.stride, DEVDAX_ALIGN);
	map_region(&q.mem, len, file, priv, touch, devdax);
	printf("REGION kind=%s addr=%p len=%zu\n", q.mem.kind, (void *)q.mem.addr, q.mem.len);

	req.count = NBUF;
	req.type = q.type;
	req.memory = V4L2_MEMORY_USERPTR;
	if (xioctl(q.fd, VIDIOC_REQBUFS, &req) < 0) {
		step("reqbufs", -1, -1, errno);
		putchar('\n');
		if (!bad)
			goto out;
	} else {
		printf("reqbufs: ok count=%u\n", req.count);
	}
	if (bad) {
		bad_inputs(&q);
		g_result[0] = '\0'; /* each case is judged by its line */
		printf("result: bad-inputs\n");
		return 0;
	}

	for (unsigned j = 0; j < NBUF; j++) {
		struct v4l2_buffer b = user_buf(&q, j);

		if (prepare) {
			call("prepare_buf", (int)j, q.fd, VIDIOC_PREPARE_BUF, &b);
			b = user_buf(&q, j);
		}
		if (call("qbuf", (int)j, q.fd, VIDIOC_QBUF, &b) == 0)
			queued++;
	}
	{
		int type = (int)q.type;

		/* vb2 accepts STREAMON with nothing queued; vivid starts once two are */
		call("streamon", -1, q.fd, VIDIOC_STREAMON, &type);
		if (queued == NBUF && !g_result[0])
			capture(&q, frames);
		call("streamoff", -1, q.fd, VIDIOC_STREAMOFF, &type);
	}
out:
	if (!g_result[0])
		printf("result: streamed frames=%d\n", frames);
	else
		printf("result: %s\n", g_result);
	if (!g_result[0])
		snprintf(g_result, sizeof(g_result), "streamed");
	if (expect && strcmp(expect, g_result) != 0) {
		fprintf(stderr, "v4l2cap: expected %s, got %s\n", expect, g_result);
		return 1;
	}
	return 0;
}
