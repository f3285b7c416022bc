/*
 * vfiomap: a VFIO type1 DMA mapping of the memory given on the command line,
 * the way a userspace driver (DPDK, SPDK, QEMU) maps its buffers for a device:
 * the PCI device's IOMMU group joins a container, the container gets the
 * type1 IOMMU, and VFIO_IOMMU_MAP_DMA pins the range long-term
 * (vaddr_get_pfns() -> pin_user_pages_remote(FOLL_LONGTERM)). One line per step:
 *
 *   GROUP 3 device=0000:00:03.0
 *   REGION kind=file addr=0x7f.. len=2097152
 *   map: ok                 (or the errno name: EOPNOTSUPP for fs-DAX)
 *   unmap: ok               (after a successful map)
 *
 * The device must be bound to vfio-pci and vfio_iommu_type1 loaded (with
 * allow_unsafe_interrupts=1 where the IOMMU has no interrupt remapping).
 *
 * usage: vfiomap BDF (--file PATH | --anon) [--len N]
 * Exit 0 after the results; 2 on a usage error or a setup failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "common.h"

/* Any address the IOMMU can translate; the device never uses it. */
#define IOVA 0x100000ULL

__attribute__((noreturn)) static void usage(void)
{
	fprintf(stderr, "usage: vfiomap BDF (--file PATH | --anon) [--len N]\n");
	exit(2);
}

/* The IOMMU group of PCI device BDF: the last part of its iommu_group link. */
static int iommu_group(const char *bdf)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		fatal(link);
	target[n] = 0;
	return atoi(basename(target));
}

/* A container with the type1 IOMMU, holding the group of BDF. */
static int open_container(const char *bdf)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[64];
	int container, group, n = iommu_group(bdf);

	printf("GROUP %d device=%s\n", n, bdf);
	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		fatal("/dev/vfio/vfio");
	if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		fatal("VFIO_GET_API_VERSION: not VFIO_API_VERSION");
	if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1)
		fatal("VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)");
	snprintf(path, sizeof(path), "/dev/vfio/%d", n);
	group = open(path, O_RDWR);
	if (group < 0)
		fatal(path);
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &status))
		fatal("VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		fatal("the group is not viable (a device in it is not bound to vfio-pci)");
	}
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
		fatal("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		fatal("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)");
	return container;
}

int main(int argc, char **argv)
{
	const char *bdf, *file = NULL;
	size_t len = 2 << 20;
	int anon = 0, fd = -1, container, i;
	void *addr;

	if (argc < 3)
		usage();
	bdf = argv[1];
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--file") && i + 1 < argc)
			file = argv[++i];
		else if (!strcmp(argv[i], "--anon"))
			anon = 1;
		else if (!strcmp(argv[i], "--len") && i + 1 < argc)
			len = parse_size(argv[++i]);
		else
			usage();
	}
	if (!!file == anon || !len || len % (size_t)sysconf(_SC_PAGESIZE))
		usage();

	container = open_container(bdf);
	if (file) {
		fd = open(file, O_RDWR | O_CREAT, 0600);
		if (fd < 0)
			fatal(file);
		if (ftruncate(fd, (off_t)len))
			fatal("ftruncate");
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (addr == MAP_FAILED)
		fatal("mmap");
	memset(addr, 0x5a, len);
	printf("REGION kind=%s addr=%p len=%zu\n", file ? "file" : "anon", addr, len);

	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)addr,
		.iova = IOVA,
		.size = len,
	};
	int e = ioctl(container, VFIO_IOMMU_MAP_DMA, &map) ? errno : 0;

	printf("map: %s\n", answer(e));
	if (!e) {
		struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap), .iova = IOVA, .size = len };

		e = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) ? errno : 0;
		printf("unmap: %s\n", answer(e));
	}
	munmap(addr, len);
	if (fd >= 0)
		close(fd);
	close(container);
	return 0;
}
