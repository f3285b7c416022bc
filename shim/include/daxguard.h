/* daxguard: ask whether memory can be registered for RDMA before registering it.
 *
 * Link with -ldaxguard (libdaxguard.so), or preload it. Linux refuses long-term
 * pins (ibv_reg_mr) of filesystem-DAX memory with EOPNOTSUPP; daxguard_check()
 * answers the same question up front and says which file and mount are the cause.
 */
#ifndef DAXGUARD_H
#define DAXGUARD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum daxguard_result {
	DAXGUARD_ERROR = -1,     /* could not judge; errno says why (EINVAL, ENOENT: no /proc) */
	DAXGUARD_OK = 0,         /* no page of the range is filesystem-DAX */
	DAXGUARD_FSDAX = 1,      /* part of the range is filesystem-DAX: ibv_reg_mr would fail */
	DAXGUARD_UNVERIFIED = 2, /* part of the range may be filesystem-DAX; could not verify */
};

/* Classify [addr, addr + len) (widened to whole pages). When why is not NULL,
 * writes a one-line explanation (empty for DAXGUARD_OK), NUL-terminated and
 * truncated to why_len - 1 bytes. addr is never dereferenced. Thread-safe. */
int daxguard_check(const void *addr, size_t len, char *why, size_t why_len);

/* The library version, e.g. "0.1.0". */
const char *daxguard_version(void);

/*
 * Which interception this copy of the library runs: "plt+dlsym" (the
 * preloaded exports, and pointers fetched with dlsym/dlvsym from a library
 * handle), "plt" (exports only: not x86_64, or glibc's dlsym not found) or
 * "none". Static storage. A program started by `daxguard run` can ask the
 * preloaded copy with dlsym(RTLD_DEFAULT, "daxguard_interception").
 */
const char *daxguard_interception(void);

/*
 * How this copy of the library finds the VMAs a registration spans:
 * "procmap_query" (the PROCMAP_QUERY ioctl, Linux 6.11+) or "maps"
 * (/proc/self/maps read as text), as DAXGUARD_LOOKUP and the kernel decide.
 * Static storage.
 */
const char *daxguard_lookup(void);

#ifdef __cplusplus
}
#endif

#endif /* DAXGUARD_H */
