/*
 * daxguard_spank: a Slurm SPANK plugin that turns daxguard on for one job
 * step on request:
 *
 *   srun --daxguard=enforce|warn|audit|odp [...] PROG
 *
 * sets, in the environment of each task of the step (slurmstepd, just
 * before exec; slurm_spank_task_init), LD_PRELOAD to the library (put in
 * front of an LD_PRELOAD the task already has, unless it is there) and
 * DAXGUARD_MODE to the mode. Without the option nothing is touched. The
 * option also works with sbatch and salloc (registered in slurm_spank_init,
 * so allocators see it) and then applies to every step of the job.
 *
 * plugstack.conf (or a file in plugstack.conf.d/):
 *   optional /usr/lib/x86_64-linux-gnu/daxguard/daxguard_spank.so [lib=PATH] [default=MODE]
 * lib=PATH   the library the tasks preload (default: the Debian package's,
 *            /usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so); it must exist
 *            on the compute nodes. A task asking for daxguard where it is
 *            missing fails rather than run unguarded.
 * default=MODE  turns it on for every step that does not say otherwise;
 *            --daxguard=off then turns it off for one step.
 *
 * Built per Slurm release against that release's <slurm/spank.h>
 * (libslurm-dev): `make -C tools/dist/spank`. Not linked with libslurm: the
 * spank_* functions come from the srun or slurmstepd that loads it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/spank.h>

SPANK_PLUGIN(daxguard, 1);

#ifndef DAXGUARD_DEFAULT_LIB
#define DAXGUARD_DEFAULT_LIB "/usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so"
#endif

static const char *const modes[] = { "enforce", "warn", "audit", "odp", "off", NULL };

/* The mode asked for with --daxguard, or by default=; "" for none. */
static char mode[16];
static char lib[4096] = DAXGUARD_DEFAULT_LIB;

static int known_mode(const char *m)
{
	for (int i = 0; modes[i]; i++)
		if (!strcmp(m, modes[i]))
			return 1;
	return 0;
}

static int opt_daxguard(int val, const char *optarg, int remote)
{
	(void)val;
	(void)remote;
	if (!optarg || !known_mode(optarg)) {
		slurm_error("daxguard: --daxguard wants enforce, warn, audit, odp or off, not '%s'",
			    optarg ? optarg : "");
		return -1;
	}
	snprintf(mode, sizeof(mode), "%s", optarg);
	return 0;
}

static struct spank_option daxguard_option = {
	"daxguard", "MODE",
	"Preload daxguard into every task, in MODE: enforce (refuse fs-DAX pins), warn, audit, "
	"odp or off",
	1, 0, opt_daxguard,
};

static int parse_args(int ac, char **av)
{
	for (int i = 0; i < ac; i++) {
		if (!strncmp(av[i], "lib=", 4) && av[i][4] == '/') {
			snprintf(lib, sizeof(lib), "%s", av[i] + 4);
		} else if (!strncmp(av[i], "default=", 8) && known_mode(av[i] + 8)) {
			snprintf(mode, sizeof(mode), "%s", av[i] + 8);
		} else {
			slurm_error("daxguard: unknown plugstack.conf argument '%s' "
				    "(lib=/ABSOLUTE/PATH, default=enforce|warn|audit|odp|off)",
				    av[i]);
			return -1;
		}
	}
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	if (parse_args(ac, av))
		return -1;
	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_REMOTE:
	case S_CTX_ALLOCATOR:
		return spank_option_register(sp, &daxguard_option) == ESPANK_SUCCESS ? 0 : -1;
	default:
		return 0;
	}
}

/* In the task, after the user's identity is taken and before exec. */
int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	char cur[8192], val[sizeof(cur) + sizeof(lib) + 2];
	spank_err_t rc;

	(void)ac;
	(void)av;
	if (!spank_remote(sp) || !mode[0] || !strcmp(mode, "off"))
		return 0;
	if (access(lib, R_OK)) {
		slurm_error("daxguard: --daxguard=%s, but %s is not readable on this node: %s; "
			    "not running the task unguarded",
			    mode, lib, strerror(errno));
		return -1;
	}
	rc = spank_getenv(sp, "LD_PRELOAD", cur, sizeof(cur));
	if (rc == ESPANK_SUCCESS && cur[0]) {
		/* Already there (the user preloaded it by hand): keep the list. */
		size_t n = strlen(lib);
		const char *p = cur;
		int found = 0;
		while ((p = strstr(p, lib))) {
			if ((p == cur || p[-1] == ':' || p[-1] == ' ') && (p[n] == 0 || p[n] == ':' || p[n] == ' '))
				found = 1;
			p += n;
		}
		if (found)
			snprintf(val, sizeof(val), "%s", cur);
		else
			snprintf(val, sizeof(val), "%s:%s", lib, cur);
	} else if (rc == ESPANK_SUCCESS || rc == ESPANK_ENV_NOEXIST) {
		snprintf(val, sizeof(val), "%s", lib);
	} else {
		slurm_error("daxguard: cannot read the task's LD_PRELOAD: %s", spank_strerror(rc));
		return -1;
	}
	if (spank_setenv(sp, "LD_PRELOAD", val, 1) != ESPANK_SUCCESS ||
	    spank_setenv(sp, "DAXGUARD_MODE", mode, 1) != ESPANK_SUCCESS) {
		slurm_error("daxguard: cannot set the task's environment");
		return -1;
	}
	return 0;
}
