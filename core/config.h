/*
 * config: reads and validates the daemon's libconfig file into struct
 * cvmm_config. Owns the libconfig tree (plugins look their sections up in it).
 */
#ifndef CVMM_CONFIG_H
#define CVMM_CONFIG_H

#include <stdint.h>
#include <stdbool.h>
#include <libconfig.h>

#define CVMM_MAX_PORT_RANGES 32
#define CVMM_MAX_TOKENS 32
#define CVMM_MAX_PLUGINS 64

struct cvmm_port_range {
	int protocol; /* CVMM_PROTO_TCP / CVMM_PROTO_UDP (plugin.h) */
	uint32_t from, to;
};

struct cvmm_config {
	config_t cfg; /* the parsed tree; plugin sections are looked up here */
	char *path;   /* the file it came from */
	char *dir;    /* absolute directory of path: @include and relative paths */

	/* top-level server keys */
	char *address;   /* "unix:/run/cvmm/cvmm.sock" or "tcp:127.0.0.1:8080";
			    default unix:<run_path>/cvmm.sock; a relative unix path is
			    made absolute like the paths below */
	char *run_path;  /* runtime dir: sockets, pid files, logs */
	char *data_dir;  /* persistent: <data_dir>/vms/<id>/manifest.json */
	char *image_path; /* image.path: <image_path>/<name>/metadata.json; default <data_dir>/images */
	char *plugin_dir; /* where plugin .so files are looked up */
	char *log_level;  /* debug, info, warn, error */
	char *node_name;
	int workers;       /* computed if unset: nproc/8 within 4..32 */
	uint64_t serial_log_max; /* console log bytes kept per VM, default 1 MiB */

	/* cvm */
	char *default_backend; /* cvm.backend, default "qemu" */
	double hook_timeout;   /* cvm.hook_timeout: a lifecycle step may take this long, default 300 s */
	int max_allocable_vcpu;          /* computed if unset: nproc - 4 (min 1) */
	uint64_t max_allocable_memory_mb; /* computed if unset: RAM MiB - 16384 (min 512) */
	uint32_t cid_start;     /* default 1000 */
	uint32_t cid_pool_size; /* default 1000 */
	bool metrics_public;    /* cvm.metrics_public: GET /metrics without a token, default false */
	bool vcpu_computed, memory_computed, workers_computed;

	/* cvm.networking: the core owns only the default mode. The other keys
	 * belong to the plugin of a mode (net, dhcp_start, restrict: net-user),
	 * which reads and validates them; the registry refuses any key no
	 * loaded plugin read. */
	char *net_mode;       /* default "user" */

	/* cvm.port_mapping */
	bool pm_enabled;   /* default false */
	/* ranges: default tcp and udp 1024-65535 when "range" is unset */
	char *pm_address;  /* default "127.0.0.1" */
	int n_pm_ranges;
	struct cvmm_port_range pm_ranges[CVMM_MAX_PORT_RANGES];

	/* cvm.auto_restart */
	bool ar_enabled;        /* default true */
	double ar_interval;     /* seconds between supervision checks, default 20 */
	int ar_max_retries;     /* default 5 */
	double ar_initial_backoff; /* default 1 s */
	double ar_max_backoff;     /* default 60 s */
	double ar_reset_window;    /* default 300 s: running this long resets the count */

	/* cvm.tls_cert, cvm.tls_key: the TCP listener speaks TLS (both or
	 * neither; plain TCP only on a loopback address). Paths made absolute,
	 * and the PEM texts read at load. */
	char *tls_cert, *tls_key;
	char *tls_cert_pem, *tls_key_pem;
	/* cvm.unix_sock_group (name or gid; -1: the daemon's own) and
	 * cvm.unix_sock_mode (default 0660), applied to the socket at bind. */
	long unix_sock_gid;
	unsigned unix_sock_mode;
	/* cvm.channel and cvm.agent (the guest channel, channel.c) */
	bool chan_enabled;          /* default true */
	char *chan_reader;          /* cvm.channel.reader; NULL: cvmm-chanreader beside cvmmd */
	double agent_unresponsive;  /* cvm.agent.unresponsive_after, default 30 s */
	bool agent_restart;         /* cvm.agent.restart_unresponsive, default false */

	/* auth */
	bool auth_enabled;
	int n_tokens;
	char *tokens[CVMM_MAX_TOKENS];

	/* plugins = ["backend-qemu", "net-user", ...]; that pair when unset */
	int n_plugins;
	char *plugins[CVMM_MAX_PLUGINS];
};

/*
 * Reads and validates path. On error returns a negative errno and writes one
 * line "FILE:LINE: KEY: what is wrong" into err (the daemon prints it and
 * exits 2). On success the config owns everything it points to.
 */
int config_load(struct cvmm_config *c, const char *path, char *err, size_t errlen);
/* Same, from a string (tests); file name in messages is "<string>". */
int config_load_string(struct cvmm_config *c, const char *text, char *err, size_t errlen);
void config_free(struct cvmm_config *c);

/*
 * The section plugin.<name> of a loaded config (a group owned by that plugin),
 * or NULL when there is none. Borrowed from c->cfg.
 */
config_setting_t *config_plugin_section(const struct cvmm_config *c, const char *plugin);

/*
 * Where setting s is written, as "FILE:LINE" (the file an @include names,
 * resolved like libconfig does), for messages of the form
 * "FILE:LINE: KEY: what is wrong". s NULL (a key left unset): "FILE".
 */
void config_where(const struct cvmm_config *c, const config_setting_t *s, char *buf, size_t len);
/* Dotted key of s, list elements as [i]: "cvm.port_mapping.range[0].to". */
void config_key(const config_setting_t *s, char *buf, size_t len);

/* Plugin-owned sections outside plugin.<name> (dstack's vmm.toml layout):
 * each must be read by a loaded plugin, or the registry refuses it. NULL-
 * terminated pairs {section, the plugin that will own it}. */
extern const char *const config_plugin_owned[];

/* Host figures used for computed defaults; overridable for tests. */
struct config_host {
	int ncpus;
	uint64_t mem_mb;
};
void config_set_host_override(const struct config_host *h); /* NULL: real host */

#endif
