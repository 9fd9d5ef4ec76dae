/*
 * cvmmd: the daemon's main(). Parses arguments, loads the config (exit 2 on
 * any config error, with file, line and key), runs the core until a signal.
 */
#include "config.h"
#include "daemon.h"
#include "job.h"
#include "registry.h"
#include "sdnotify.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* systemd (Type=notify): READY=1 once every VM was brought back to its
 * desired state, not when the socket opens: a unit ordered after cvmmd
 * finds the VMs that should run running (or failed, with a reason). */
struct ready {
	struct cvmm_daemon *d;
	const char *notify_socket;
};

static void *ready_main(void *arg)
{
	struct ready *r = arg;
	daemon_wait_adopted(r->d);
	if (__atomic_load_n(&r->d->stopping, __ATOMIC_ACQUIRE))
		return NULL; /* a stop came first: no READY after STOPPING */
	int rc = sdnotify(r->notify_socket, "READY=1\nSTATUS=VMs re-adopted; running");
	if (rc < 0)
		log_warn("NOTIFY_SOCKET %s: %s", r->notify_socket, strerror(-rc));
	else
		log_info("re-adoption finished: READY=1 sent to systemd");
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: cvmmd [-c FILE] [--check-config] [--version]\n"
		   "  -c, --config FILE   configuration (default /etc/cvmm/cvmm.conf)\n"
		   "  --check-config      validate the configuration, plugins' sections included\n"
		   "                      (the plugins are loaded), and exit (0 valid, 2 not)\n");
}

int main(int argc, char **argv)
{
	const char *path = "/etc/cvmm/cvmm.conf";
	bool check = false;
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"check-config", optional_argument, NULL, 'k'},
		{"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = true;
			if (optarg)
				path = optarg;
			break;
		case 'V':
			printf("cvmmd %s (plugin ABI %d.%d)\n", CVMM_VERSION, CVMM_ABI_MAJOR,
			       CVMM_ABI_MINOR);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* `--check-config FILE` as two words. */
	if (check && optind < argc)
		path = argv[optind++];
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	struct cvmm_config cfg;
	char err[1024];
	memset(&cfg, 0, sizeof(cfg));
	if (config_load(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "cvmmd: %s\n", err);
		return 2;
	}
	if (check) {
		/* What the daemon would refuse at start, short of acting on the
		 * host: the plugins are loaded and check their sections (and
		 * nothing else: no API, no VMs, no DAEMON_START hooks). Their
		 * logs would repeat the one error line printed below. */
		log_set_level(-1);
		struct cvmm_daemon *d = daemon_new(&cfg, err, sizeof(err));
		int rc = d ? 0 : -ENOMEM;
		if (d) {
			d->reg->check_only = 1;
			rc = registry_load_all(d->reg, err, sizeof(err));
			daemon_free(d);
		}
		if (rc < 0) {
			fprintf(stderr, "cvmmd: %s\n", err);
			config_free(&cfg);
			return 2;
		}
		printf("%s: OK (vcpu limit %d%s, memory limit %llu MiB%s, workers %d%s)\n", path,
		       cfg.max_allocable_vcpu, cfg.vcpu_computed ? " computed" : "",
		       (unsigned long long)cfg.max_allocable_memory_mb,
		       cfg.memory_computed ? " computed" : "", cfg.workers,
		       cfg.workers_computed ? " computed" : "");
		config_free(&cfg);
		return 0;
	}
	log_set_level(log_level_from_name(cfg.log_level) < 0 ? 2 : log_level_from_name(cfg.log_level));
	signal(SIGPIPE, SIG_IGN);
	/* Kept from the VMs' processes (QEMU, passt): the socket is ours. Taken
	 * before any thread runs (setenv is not thread-safe, and the workers
	 * fork). */
	char *notify_socket = getenv("NOTIFY_SOCKET") ? strdup(getenv("NOTIFY_SOCKET")) : NULL;
	unsetenv("NOTIFY_SOCKET");
	struct cvmm_daemon *d = daemon_new(&cfg, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "cvmmd: %s\n", err);
		free(notify_socket);
		config_free(&cfg);
		return 1;
	}
	int rc = daemon_start(d, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "cvmmd: %s\n", err);
		daemon_free(d);
		free(notify_socket);
		config_free(&cfg);
		return rc == -EPROTO || rc == -EINVAL ? 2 : 1;
	}
	log_info("cvmmd %s running (config %s, %d workers)", CVMM_VERSION, path, cfg.workers);
	struct ready ready = {d, notify_socket};
	pthread_t ready_thread;
	bool ready_running = notify_socket &&
			     pthread_create(&ready_thread, NULL, ready_main, &ready) == 0;
	daemon_run(d);
	sdnotify(notify_socket, "STOPPING=1");
	if (ready_running) {
		/* A stop during re-adoption must not wait for every queued
		 * adoption (boots among them): the running ones finish, the
		 * queued ones resume at the next start, and the ready thread's
		 * waits are answered (daemon_free does the same again: no-op). */
		jobs_stop(d->jobs);
		int n = 0;
		struct cvmm_vm **vms = daemon_get_vms(d, &n);
		for (int i = 0; i < n; i++)
			jobs_drain(d->jobs, vms[i]);
		daemon_put_vms(vms, n);
		pthread_join(ready_thread, NULL);
	}
	free(notify_socket);
	daemon_free(d);
	config_free(&cfg);
	log_info("cvmmd stopped; VMs keep running");
	return 0;
}
