/*
 * dhcp: a static-lease DHCP server (dnsmasq) on one interface, for network
 * plugins that choose their guests' addresses: every guest, not only one
 * that reads cvmm's kernel command line, then gets the address chosen for
 * it. Only MACs listed are answered (a "static" range).
 *
 * The hosts ("MAC,ADDRESS") come one of two ways:
 *  - one file per NIC in <dir>/hosts (cp_dhcp_host), passed to dnsmasq as
 *    --dhcp-host arguments (it drops root and could not read files under a
 *    0700 run_path), so a changed set restarts it; not authoritative, so
 *    servers of several hosts on one segment (an overlay) each answer their
 *    own guests only (net-overlay);
 *  - one hosts file the caller writes (hosts_file, --dhcp-hostsfile),
 *    re-read on SIGHUP (cp_dhcp_reload); the caller makes it readable by
 *    dnsmasq's user and owns its directory (net-bridge).
 *
 * dnsmasq runs daemonised in its own session (it outlives a killed daemon,
 * as the guests do) and is found again by its --pid-file argument, never
 * trusted from the pid file alone: a stale pid file never makes us signal a
 * stranger, and a dnsmasq whose pid file is missing is still found.
 */
#ifndef CVMM_PLUGIN_COMMON_DHCP_H
#define CVMM_PLUGIN_COMMON_DHCP_H

#include <stddef.h>

struct cp_dhcp {
	char dir[512];      /* everything of this server: pid, hosts dir, leases */
	char interface[32]; /* where it answers */
	char range[160];    /* --dhcp-range value, e.g. "10.200.0.0,static,255.255.0.0,infinite" */
	char dnsmasq[256];  /* program ("dnsmasq": PATH, /usr/sbin, /sbin) */
	char user[64];      /* --user; "" = dnsmasq's default (nobody) */
	/* Optional; "" and 0 keep the defaults. */
	char pid_file[600];   /* "" = <dir>/dnsmasq.pid */
	char lease_file[600]; /* "" = <dir>/leases */
	char hosts_file[600]; /* set: the caller's hosts file (see above); dir unused */
	char log_file[256];   /* --log-facility, with --log-dhcp */
	unsigned lease_max;   /* --dhcp-lease-max */
	int authoritative;    /* the only server on its segment */
	int dns;              /* also answer DNS; 0: --port=0 */
};

/* Starts the server unless it runs (dir is made 0700). */
int cp_dhcp_ensure(const struct cp_dhcp *c, char *err, size_t errlen);
/* Starts the server (whether or not one runs: see cp_dhcp_pids); err says
 * why it did not come up (dnsmasq's own words). */
int cp_dhcp_start(const struct cp_dhcp *c, char *err, size_t errlen);
/* Adds (mac and addr set) or removes (addr NULL) the lease of one NIC,
 * restarting a running server when the set changed (one that does not run
 * is started by an add); name is unique per NIC (a TAP name). */
int cp_dhcp_host(const struct cp_dhcp *c, const char *name, const char *mac, const char *addr);
/* SIGHUP: dnsmasq re-reads hosts_file. How many got it, or -errno. */
int cp_dhcp_reload(const struct cp_dhcp *c);
/* Ends the server's processes (SIGTERM, SIGKILL after 3 s); files stay. */
void cp_dhcp_kill(const struct cp_dhcp *c);
/* Stops the server and removes dir. Idempotent. */
int cp_dhcp_stop(const struct cp_dhcp *c);
/* Pids of the server's processes (at most max); -errno. */
int cp_dhcp_pids(const struct cp_dhcp *c, int *pids, int max);

#endif
