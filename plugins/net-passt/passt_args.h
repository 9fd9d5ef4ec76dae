/*
 * passt_args: the pure half of net-passt. Checks addresses, netmasks, MACs
 * and port mappings, and renders one NIC's settings into passt's command
 * line. No host API, no processes: unit-tested on its own.
 */
#ifndef NET_PASST_ARGS_H
#define NET_PASST_ARGS_H

#include <stddef.h>
#include <stdint.h>

#define PASST_MAX_DNS 8
#define PASST_MAX_PORTS 64
#define PASST_SUN_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path), with its NUL */

struct passt_port {
	int udp;
	char addr[64]; /* numeric, IPv4 or IPv6 */
	unsigned host_port, vm_port;
};

/* Everything one passt process is started with. Empty strings are left out
 * of the command line (passt then takes the value from the host). */
struct passt_nic {
	char binary[256];
	char runas[32]; /* "uid:gid" */
	char socket[PASST_SUN_PATH_MAX];
	char pidfile[512];
	char logfile[512];
	char address[16]; /* IPv4 */
	char netmask[16]; /* dot-decimal */
	char gateway[16]; /* IPv4 */
	char dns[PASST_MAX_DNS][64];
	int n_dns;
	char interface[16];
	int ipv4_only;
	int no_map_gw;
	char map_host_loopback[64]; /* passed only when non-empty */
	char map_guest_addr[64];    /* passed only when non-empty */
	int n_ports;
	struct passt_port ports[PASST_MAX_PORTS];
};

struct passt_argv {
	char **v; /* NULL-terminated */
	int n, cap;
};

/* 4 for an IPv4 literal, 6 for IPv6, 0 for anything else. */
int passt_ip_family(const char *s);

/* Prefix length of "255.255.255.0" or "24" (0..32), or -1 if not a
 * contiguous IPv4 netmask. */
int passt_netmask_prefix(const char *s);

/* Writes the dot-decimal form of a prefix length. */
void passt_netmask_from_prefix(int prefix, char *out, size_t len);

/* 1 if s is "xx:xx:xx:xx:xx:xx", unicast and not all zero. */
int passt_mac_valid(const char *s);

/*
 * Checks an IPv4 address/netmask/gateway triple (each may be "" = unset):
 * syntax, a prefix that leaves room for hosts, the gateway inside the
 * subnet and distinct from the address, neither being the network or
 * broadcast address. names[0..2] name the three settings in messages.
 */
int passt_check_l3(const char *address, const char *netmask, const char *gateway,
                   const char *const names[3], char *err, size_t errlen);

/*
 * Checks the port mappings a passt NIC will carry: address families passt
 * will bind (IPv6 refused with ipv4_only) and one guest port per host port
 * and protocol (passt keeps one translation per port number).
 */
int passt_check_ports(const struct passt_port *ports, int n, int ipv4_only, char *err,
                      size_t errlen);

/* Renders n into a->v. Returns 0, or -EINVAL without a socket path. */
int passt_build_argv(const struct passt_nic *n, struct passt_argv *a, char *err, size_t errlen);
void passt_argv_free(struct passt_argv *a);

#endif
