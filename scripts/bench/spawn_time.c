/* spawn_time — times whole processes, several commands in alternating rounds.
 *
 *   spawn_time ROUNDS OUTDIR  NAME UID GID ENVFILE CMD [ARG...] ::: NAME ...
 *
 * Every round runs each command once, in the order given, so that background
 * load hits all of them alike.  One run = fork, (in the child: drop to
 * UID:GID with no supplementary groups and the environment of ENVFILE, when
 * UID is not "-"; stdin, stdout and stderr on /dev/null), exec, wait4.  The
 * clock (CLOCK_MONOTONIC) is read just before the fork and just after wait4
 * returns; the process's own CPU time (user + system) comes from wait4's
 * rusage, with its minor page faults.  Appends "WALL_MS CPU_MS STATUS MINFLT"
 * to OUTDIR/NAME, one line a run.
 *
 * Why not bash's $EPOCHREALTIME around the command: bash's fork of itself
 * and the clock's formatting add a millisecond or more to every run on this
 * host, the same for every command, which hides the difference between two
 * small ones.  Here the harness's share is one fork of a small process. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct cmd {
	const char *name;
	const char *uid, *gid, *envfile;
	char **argv;
	char **env; /* NULL: inherit */
	FILE *out;
};

static char **read_env(const char *path)
{
	FILE *f = fopen(path, "r");
	char **v = NULL, *line = NULL;
	size_t n = 0, cap = 0;
	if (!f) {
		perror(path);
		exit(2);
	}
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = 0;
		if (!*line)
			continue;
		v = realloc(v, (n + 2) * sizeof(*v));
		v[n++] = strdup(line);
		v[n] = NULL;
	}
	free(line);
	fclose(f);
	if (!v)
		v = calloc(1, sizeof(*v));
	return v;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void run(struct cmd *c, int devnull)
{
	struct rusage ru;
	int st = 0;
	double t0 = now_ms(), t1;
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (strcmp(c->uid, "-")) {
			uid_t u = (uid_t)atol(c->uid);
			gid_t g = (gid_t)atol(c->gid);
			if (setgroups(0, NULL) || setresgid(g, g, g) || setresuid(u, u, u))
				_exit(126);
		}
		if (c->env)
			execvpe(c->argv[0], c->argv, c->env);
		else
			execvp(c->argv[0], c->argv);
		_exit(127);
	}
	while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
		;
	t1 = now_ms();
	fprintf(c->out, "%.3f %.3f %d %ld\n", t1 - t0,
		ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
			ru.ru_stime.tv_usec / 1e3,
		WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), ru.ru_minflt);
}

int main(int argc, char **argv)
{
	struct cmd cmds[32];
	int n = 0, rounds, devnull, i = 3;
	if (argc < 9) {
		fprintf(stderr, "usage: %s ROUNDS OUTDIR NAME UID GID ENVFILE CMD [ARG...] [::: ...]\n", argv[0]);
		return 2;
	}
	rounds = atoi(argv[1]);
	while (i < argc) {
		struct cmd *c = &cmds[n];
		char path[4096];
		if (n == 32 || argc - i < 5) {
			fprintf(stderr, "spawn_time: bad command list\n");
			return 2;
		}
		c->name = argv[i];
		c->uid = argv[i + 1];
		c->gid = argv[i + 2];
		c->envfile = argv[i + 3];
		c->env = strcmp(c->envfile, "-") ? read_env(c->envfile) : NULL;
		c->argv = &argv[i + 4];
		for (i += 4; i < argc && strcmp(argv[i], ":::"); i++)
			;
		if (i < argc)
			argv[i++] = NULL; /* ends this command's argv */
		snprintf(path, sizeof(path), "%s/%s", argv[2], c->name);
		c->out = fopen(path, "a");
		if (!c->out) {
			perror(path);
			return 2;
		}
		n++;
	}
	devnull = open("/dev/null", O_RDWR);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < n; k++)
			run(&cmds[k], devnull);
	for (int k = 0; k < n; k++)
		fclose(cmds[k].out);
	return 0;
}
