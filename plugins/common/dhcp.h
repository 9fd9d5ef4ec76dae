/*
 * dhcp: a static-lease DHCP server (dnsmasq) on one interface, for network
 * plugins that choose their guests' addresses: every guest, not only one
 * that reads cvmm's kernel command line, then gets the address chosen for
 * it. One file per NIC in a hosts directory ("MAC,ADDRESS"), passed to
 * dnsmasq as --dhcp-host arguments (it drops root and could not read files
 * under a 0700 run_path), so a changed set restarts it; only MACs listed are
 * answered (a "static" range), so servers of several hosts on one segment
 * (an overlay) each answer their own guests only.
 *
 * dnsmasq runs daemonised in its own session (it outlives a killed daemon,
 * as the guests do) and is found again by its --pid-file argument.
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
};

/* Starts the server unless it runs (dir is made 0700). */
int cp_dhcp_ensure(const struct cp_dhcp *c, char *err, size_t errlen);
/* Adds (mac and addr set) or removes (addr NULL) the lease of one NIC,
 * restarting a running server when the set changed (one that does not run
 * is started by an add); name is unique per NIC (a TAP name). */
int cp_dhcp_host(const struct cp_dhcp *c, const char *name, const char *mac, const char *addr);
/* Stops the server and removes dir. Idempotent. */
int cp_dhcp_stop(const struct cp_dhcp *c);
/* Pids of the server's processes (at most max); -errno. */
int cp_dhcp_pids(const struct cp_dhcp *c, int *pids, int max);

#endif
