/*
 * nb.h: what the files of the net-bridge plugin share. The plugin entry
 * (net_bridge.c) owns the configuration, the lock and the lifecycle; the
 * other files each own one concern and know nothing of the host API, so
 * that the unit tests (test_net_bridge.c) can drive them directly:
 *
 *   store.c    the plugin-level state file, names, MAC and IP allocation
 *   nft.c      nftables scripts (pure renderers) and running `nft -f -`
 *   link.c     bridges and TAP devices through netlink (libnl) and TUN ioctls
 *   dnsmasq.c  the DHCP server of a managed bridge: hosts file and leases (the
 *              process is plugins/common/dhcp.c's)
 *   spawn.c    running helper programs from a threaded daemon
 *
 * Functions return 0 (or a count) or a negative errno; where a message
 * helps, they write it into an err buffer that the caller passes on.
 */
#ifndef NB_H
#define NB_H

#include <stddef.h>
#include <stdint.h>

#define NB_IFNAMSIZ 16 /* IFNAMSIZ: 15 characters and the NUL */
#define NB_MAX_PORTS 64

/* ---- configuration (net_bridge.c fills it) ---- */

struct nb_config {
	int managed;              /* 1: cvmm makes the bridge, NAT and DHCP */
	char bridge[NB_IFNAMSIZ]; /* its name (managed) or the existing one */
	char table[64];           /* nft table (family ip) owned by this plugin */
	/* managed only; addresses in host byte order */
	uint32_t net, gateway, pool_first, pool_last;
	int prefix;
	char lease_time[32];
	int dns; /* dnsmasq answers DNS on the gateway */
	int nat; /* masquerade the subnet towards other networks */
	/* programs and files */
	char nft[256];
	char dnsmasq[256];
	char dnsmasq_user[64]; /* empty: dnsmasq's compiled-in default */
	char dnsmasq_log[256]; /* empty: no log file */
	char data_dir[512];    /* <data_dir>/net-bridge */
	char run_dir[512];     /* <run_path>/net-bridge */
	char vms_dir[512];     /* <data_dir>/vms: a VM exists iff its manifest does */
	char state_path[600];
	char hosts_path[600];
	char pid_path[600];
	char lease_path[600];
};

/* ---- addresses and names (store.c) ---- */

uint32_t nb_mask(int prefix);
void nb_ip_str(uint32_t ip, char *out, size_t len); /* host order -> dotted */
int nb_ip_parse(const char *s, uint32_t *out);      /* dotted -> host order */
/* "a.b.c.d/n" with n in 8..30, host bits zero */
int nb_net_parse(const char *s, uint32_t *net, int *prefix);
int nb_mac_parse(const char *s, uint8_t mac[6]);
void nb_mac_str(const uint8_t mac[6], char *out, size_t len);

/* TAP name: "cv" + the first 10 hex digits of the VM id + "n" + the NIC
 * index: at most 15 characters, stable for the VM, readable back to it. */
int nb_tap_name(const char *vm_id, uint32_t nic, char *out, size_t len);
/* Guest MAC: 52:54:00 + 24 bits of a hash of (VM id, NIC index, salt);
 * salt 0 is the first choice, later salts only break collisions. */
void nb_guest_mac(const char *vm_id, uint32_t nic, uint32_t salt, char *out, size_t len);
/* Host side of the TAP: the guest MAC with fe as first byte (as libvirt). */
void nb_tap_mac(const char *guest_mac, char *out, size_t len);
/* A managed bridge's own MAC: 02:63:76 ("cv") + a hash of its name, so it
 * never changes when ports come and go. */
void nb_bridge_mac(const char *name, char *out, size_t len);
/* "cvmm_" + name with anything not [A-Za-z0-9_] turned into '_'. */
void nb_table_name(const char *bridge, char *out, size_t len);

/* ---- the plugin-level state file (store.c) ---- */

/* One NIC of mode "bridge" of one VM: reserved at DEFINE, active between
 * PRE_START and POST_STOP. */
struct nb_nic {
	char vm[37];
	uint32_t idx;
	char mac[18];
	char tap[NB_IFNAMSIZ];
	uint32_t ip; /* host order; 0: none (unmanaged bridge without "ip") */
	int active;
};

/* The shared pieces, recorded before they are made so that a restarted
 * daemon tears down or re-adopts exactly what exists. */
struct nb_infra {
	int up;
	int managed;
	char bridge[NB_IFNAMSIZ];
	char table[64];
	uint32_t net, gateway; /* managed */
	int prefix;
};

struct nb_store {
	struct nb_nic *nics;
	size_t n, cap;
	uint32_t cursor; /* next address to try (round robin over the pool) */
	struct nb_infra infra;
};

void nb_store_free(struct nb_store *s);
/* A missing file is an empty store. */
int nb_store_load(struct nb_store *s, const char *path, char *err, size_t errlen);
/* Atomic: temp file, fsync, rename, fsync of the directory. An empty store
 * (no NIC, nothing up) removes the file instead. */
int nb_store_save(const struct nb_store *s, const char *path);
struct nb_nic *nb_store_find(struct nb_store *s, const char *vm, uint32_t idx);
struct nb_nic *nb_store_add(struct nb_store *s, const char *vm, uint32_t idx);
void nb_store_remove(struct nb_store *s, struct nb_nic *n);
size_t nb_store_active(const struct nb_store *s);
/* Picks an address for nic: want (if non-zero) or the next free one of the
 * pool after the cursor. Returns -EADDRINUSE / -ERANGE / -ENOSPC. */
int nb_alloc_ip(struct nb_store *s, const struct nb_config *c, const struct nb_nic *nic,
		uint32_t want, uint32_t *out);
/* A MAC not used by another NIC of the store (want: a requested one). */
int nb_alloc_mac(const struct nb_store *s, const struct nb_nic *nic, const char *want, char *out,
		 size_t len);

/* ---- port mappings (nft.c) ---- */

struct nb_port {
	int udp;
	uint32_t addr; /* host order; 0 = every local address */
	uint32_t host_port, vm_port;
};

/* "tcp:127.0.0.1:18080:8080,udp:0.0.0.0:5353:53" <-> ports */
int nb_ports_format(const struct nb_port *p, size_t n, char *out, size_t len);
int nb_ports_parse(const char *s, struct nb_port *p, size_t max);

/* Scripts for `nft -f -`; each returns its length or -ENOSPC. */
int nb_nft_base(const struct nb_config *c, char *buf, size_t len);
int nb_nft_vm(const char *table, const char *tap, const char *vm_id, uint32_t vm_ip,
	      const struct nb_port *p, size_t n, char *buf, size_t len);
int nb_nft_vm_delete(const char *table, const char *tap, char *buf, size_t len);
int nb_nft_table_delete(const char *table, char *buf, size_t len);
/* Runs one script as one transaction; on failure err holds nft's words. */
int nb_nft_run(const char *nft, const char *script, char *err, size_t errlen);

/* ---- links (link.c) ---- */

#define NB_LINK_NONE 0
#define NB_LINK_BRIDGE 1
#define NB_LINK_TUN 2
#define NB_LINK_OTHER 3
/* What the link called name is (NB_LINK_*), or a negative errno. */
int nb_link_kind(const char *name, int *ifindex, int *master);
int nb_bridge_create(const char *name, const char *mac, uint32_t gw, int prefix, char *err,
		     size_t errlen);
int nb_bridge_delete(const char *name, char *err, size_t errlen);
/* Creates (or takes back) a persistent TAP, sets its MAC, enslaves it to
 * bridge and sets it up. */
int nb_tap_create(const char *name, const char *mac, const char *bridge, char *err,
		  size_t errlen);
int nb_tap_delete(const char *name, char *err, size_t errlen);

/* ---- dnsmasq (dnsmasq.c) ---- */

int nb_dns_write_hosts(const struct nb_config *c, const struct nb_store *s);
/* Live dnsmasq processes started with our pid file; returns how many. */
int nb_dns_pids(const struct nb_config *c, int *pids, int max);
int nb_dns_start(const struct nb_config *c, const struct nb_store *s, char *err, size_t errlen);
/* Hosts file rewritten, then SIGHUP; a restart when the lease file still
 * gives an address of an active NIC to another MAC (a lease of a removed
 * VM that dnsmasq would otherwise keep honouring). */
int nb_dns_reload(const struct nb_config *c, const struct nb_store *s, char *err, size_t errlen);
int nb_dns_stop(const struct nb_config *c);
/* 1 if the lease file gives an address of the store to another MAC. */
int nb_dns_lease_conflict(const struct nb_config *c, const struct nb_store *s);
/* Drops lease-file lines that no NIC of the store owns (file removed when
 * none is left). Only while dnsmasq is stopped. */
int nb_dns_purge_leases(const struct nb_config *c, const struct nb_store *s);

/* ---- helpers (spawn.c) ---- */

/* Runs argv with input on stdin; stdout and stderr go to out. Returns the
 * exit status (0..255) or a negative errno. */
int nb_run(char *const argv[], const char *input, char *out, size_t outlen);
/* Writes data to path atomically (temp, fsync, rename, fsync dir). */
int nb_write_atomic(const char *path, const char *data, size_t len, int mode);
/* Removes path and the temp file an interrupted nb_write_atomic() left. */
int nb_unlink(const char *path);
int nb_mkdir_p(const char *path, int mode);

#endif
