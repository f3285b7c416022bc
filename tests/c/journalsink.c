/*
 * journalsink: stands in for journald in the guest, which has no systemd,
 * so `daxguard watch --journal` can be checked end to end
 * (tests/scenarios/watch.sh).
 *
 * usage: journalsink PATH
 *
 * Binds a datagram socket at PATH (/run/systemd/journal/socket), prints
 * READY, then for every datagram received prints each field as one line,
 * FIELD=value, and an empty line after the entry; a newline inside a value
 * is printed as \n. Fields follow the native protocol
 * (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): "KEY=value\n", or
 * "KEY\n", a little-endian 64-bit length, the bytes and "\n". Runs until
 * killed. Exit 2 on a setup error.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

static void print_value(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\n')
			fputs("\\n", stdout);
		else
			putchar(v[i]);
	}
	putchar('\n');
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: journalsink PATH\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	unlink(argv[1]);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		fatal(argv[1]);
	puts("READY");
	fflush(stdout);
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		size_t at = 0;

		if (n < 0)
			fatal("recv");
		while (at < (size_t)n) {
			char *nl = memchr(buf + at, '\n', (size_t)n - at);
			char *eq = memchr(buf + at, '=', nl ? (size_t)(nl - buf - at) : (size_t)n - at);
			uint64_t len;

			if (!nl)
				break;
			if (eq) { /* KEY=value\n */
				fwrite(buf + at, 1, (size_t)(nl - buf - at), stdout);
				putchar('\n');
				at = (size_t)(nl - buf) + 1;
				continue;
			}
			/* KEY\n<len><value>\n */
			fwrite(buf + at, 1, (size_t)(nl - buf - at), stdout);
			putchar('=');
			at = (size_t)(nl - buf) + 1;
			if (at + 8 > (size_t)n)
				break;
			memcpy(&len, buf + at, 8);
			at += 8;
			if (len > (size_t)n - at)
				break;
			print_value(buf + at, (size_t)len);
			at += (size_t)len + 1;
		}
		putchar('\n');
		fflush(stdout);
	}
}
