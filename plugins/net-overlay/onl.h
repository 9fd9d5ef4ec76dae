/*
 * onl: the netlink (libnl) work of net-overlay: the shared bridge and VXLAN
 * device, the head-end-replication FDB entries to the peers, the gateway
 * address, and the per-VM TAPs. Every function opens and closes its own
 * netlink socket, so nothing stays open in the daemon between jobs. All
 * return 0 (or a count/index) or a negative errno with the reason in err.
 */
#ifndef CVMM_OVERLAY_ONL_H
#define CVMM_OVERLAY_ONL_H

#include <stddef.h>
#include <stdint.h>

#define ONL_ERR 512

/* The ifindex of link name, or -ENODEV. kind (may be NULL) gets its type
 * ("bridge", "vxlan", "tun", "" for none), mtu (may be NULL) its MTU,
 * master (may be NULL) its master's ifindex or 0. */
int onl_link_info(const char *name, char *kind, size_t kind_len, uint32_t *mtu, int *master,
                  char *err);
/* The MTU of the link holding IPv4 address addr (host order), and its
 * ifindex in *ifindex; -EADDRNOTAVAIL if no link has it. */
int onl_mtu_of_addr(uint32_t addr, int *ifindex, uint32_t *mtu, char *err);

/* Creates bridge name (MTU, MAC aa:bb:.., up). -EEXIST if it exists. */
int onl_bridge_add(const char *name, uint32_t mtu, const char *mac, char *err);

struct onl_vxlan {
	const char *name;
	uint32_t vni;
	uint32_t local; /* host order */
	uint32_t port;
	int link; /* underlay ifindex, or 0 */
	uint32_t mtu;
	int master; /* bridge ifindex */
};
/* 1 if link v->name is a VXLAN device with v's VNI, local address, port
 * and underlay link; 0 if it differs; -ENODEV if absent. */
int onl_vxlan_matches(const struct onl_vxlan *v, char *err);
int onl_vxlan_add(const struct onl_vxlan *v, char *err);

/* Sets MTU (if non-zero), master (if > 0) and up on link name. */
int onl_link_set(const char *name, uint32_t mtu, int master, char *err);
/* Deletes link name; a missing link is success. */
int onl_link_del(const char *name, char *err);
/* How many links have master ifindex br, not counting ifindex except. */
int onl_count_ports(int br, int except, char *err);

/* Makes the FDB of VXLAN device ifindex hold exactly one all-zeros entry
 * per peer (host order): missing ones added, others removed. */
int onl_fdb_sync(int ifindex, const uint32_t *peers, size_t n_peers, char *err);
/* Adds addr/prefix to link ifindex; an existing one is success. */
int onl_addr_add(int ifindex, uint32_t addr, uint32_t prefix, char *err);

/* A persistent TAP (TUNSETIFF + TUNSETPERSIST), then MTU, master, up. */
int onl_tap_add(const char *name, uint32_t mtu, int master, char *err);

#endif
