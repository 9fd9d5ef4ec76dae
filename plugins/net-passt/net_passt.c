/*
 * net-passt: network mode "passt". Each NIC of that mode gets its own passt
 * process, owned by the VM: started at PRE_START before QEMU, listening on
 * <run_dir>/passt-net<i>.sock, which QEMU joins as a stream netdev; stopped
 * at POST_STOP after QEMU; re-adopted after a daemon restart. passt runs
 * detached (own session), so `kill -9 cvmmd` leaves the VM's network up, and
 * with --one-off it also ends by itself once QEMU disconnects; teardown does
 * not rely on that: it finds passt by pid + start time + socket path (or, if
 * the pid was never recorded, by the socket path on its command line) and
 * ends it through a pidfd.
 *
 * Guest addressing is passt's DHCP: address, netmask, gateway and DNS from
 * plugin.net-passt (dstack's old [cvm.networking] passt defaults), each
 * overridable per NIC. Port mappings become --tcp-ports/--udp-ports.
 *
 * Files per NIC i, in the VM's run directory: passt-net<i>.sock, .pid,
 * .log (passt's own log) and .stderr (what passt says before its log is
 * open); all removed at teardown.
 *
 * State per NIC i: "nic<i>.mac", "nic<i>.address", "nic<i>.gateway",
 * "nic<i>.socket" and "nic<i>.passt_pid" are facts shown in the VM's "nics";
 * "net<i>.identity" ("pid starttime") is how teardown and adopt recognise
 * the process.
 */
#include "passt_args.h"
#include "passt_proc.h"
#include "proc.h"

#include <cvmm/plugin.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READY_TIMEOUT_S 15.0
#define TERM_WAIT_S 2.0
#define KILL_WAIT_S 5.0

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static struct {
	char binary[256]; /* absolute path of passt */
	char runas[32];
	const char *address, *netmask, *gateway, *interface;
	char dns[PASST_MAX_DNS][64];
	int n_dns;
	int ipv4_only;
	int no_map_gw;
	const char *map_host_loopback; /* NULL: not set */
	const char *map_guest_addr;    /* NULL: not set */
	/* What this passt binary understands (passt 2023 lacks both). */
	int has_map_host_loopback, has_map_guest_addr;
} conf;

/* ---- settings of one NIC ---- */

/* Locally administered, stable across boots: 52:54:00 + bytes of the id
 * (the same derivation as net-user, so a VM's NIC keeps its MAC whichever
 * of the two modes it uses). */
static void mac_for(cvmm_vm *vm, uint32_t i, char *out, size_t len)
{
	const char *id = host->vm_id(vm);
	unsigned h = 2166136261u;
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ i) * 16777619u;
	snprintf(out, len, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
}

static int add_dns(struct passt_nic *n, const char *d, const char *where, char *err, size_t errlen)
{
	int fam = passt_ip_family(d);
	if (!fam) {
		snprintf(err, errlen, "%s: '%s' is not a numeric IPv4 or IPv6 address", where, d);
		return -EINVAL;
	}
	if (fam == 6 && conf.ipv4_only) {
		snprintf(err, errlen,
		         "%s: %s is IPv6, but passt runs IPv4-only here "
		         "(plugin.net-passt.ipv4_only = true)",
		         where, d);
		return -EINVAL;
	}
	if (n->n_dns >= PASST_MAX_DNS) {
		snprintf(err, errlen, "%s: at most %d servers", where, PASST_MAX_DNS);
		return -EINVAL;
	}
	snprintf(n->dns[n->n_dns++], sizeof(n->dns[0]), "%s", d);
	return 0;
}

/*
 * How the host's loopback is seen from the guest. dstack passed
 * --map-host-loopback none and --no-map-gw; a passt without
 * --map-host-loopback (Debian 12's) has only the gateway mapping, so
 * "none" becomes --no-map-gw and the gateway's address needs nothing; any
 * other address cannot be honoured there and is refused.
 */
static int loopback_options(struct passt_nic *n, const char *where_gw, char *err, size_t errlen)
{
	n->no_map_gw = conf.no_map_gw;
	const char *mhl = conf.map_host_loopback;
	if (mhl && strcmp(mhl, "none")) {
		if (conf.no_map_gw) {
			snprintf(err, errlen,
			         "plugin.net-passt.map_host_loopback = \"%s\" contradicts "
			         "no_map_gw = true (which means \"none\")",
			         mhl);
			return -EINVAL;
		}
		if (conf.has_map_host_loopback) {
			snprintf(n->map_host_loopback, sizeof(n->map_host_loopback), "%s", mhl);
		} else if (strcmp(mhl, n->gateway)) {
			snprintf(err, errlen,
			         "plugin.net-passt.map_host_loopback = \"%s\": %s has no "
			         "--map-host-loopback option; it maps the host's loopback to the "
			         "gateway only (%s = %s), so use \"none\" or the gateway's address",
			         mhl, conf.binary, where_gw,
			         n->gateway[0] ? n->gateway : "the host's");
			return -EINVAL;
		}
	} else if (mhl) { /* "none" */
		if (conf.has_map_host_loopback)
			snprintf(n->map_host_loopback, sizeof(n->map_host_loopback), "none");
		else
			n->no_map_gw = 1;
	}
	const char *mga = conf.map_guest_addr;
	if (mga && conf.has_map_guest_addr)
		snprintf(n->map_guest_addr, sizeof(n->map_guest_addr), "%s", mga);
	/* Without the option, passt maps no address to the host: "none". */
	return 0;
}

/*
 * Resolves NIC i's passt settings (config plus per-NIC overrides) and checks
 * them. The runtime paths are left empty.
 */
static int resolve_nic(cvmm_vm *vm, uint32_t i, const struct cvmm_port_map *const *ports,
                       uint32_t n_ports, struct passt_nic *n, char *err, size_t errlen)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->binary, sizeof(n->binary), "%s", conf.binary);
	snprintf(n->runas, sizeof(n->runas), "%s", conf.runas);
	char names[3][48];
	const char *keys[3] = {"address", "netmask", "gateway"};
	const char *dflt[3] = {conf.address, conf.netmask, conf.gateway};
	const char *vals[3];
	for (int k = 0; k < 3; k++) {
		const char *v = host->vm_nic_param(vm, i, keys[k]);
		if (v)
			snprintf(names[k], sizeof(names[k]), "networks[%u].%s", i, keys[k]);
		else
			snprintf(names[k], sizeof(names[k]), "plugin.net-passt.%s", keys[k]);
		vals[k] = v ? v : dflt[k];
	}
	const char *const pnames[3] = {names[0], names[1], names[2]};
	int r = passt_check_l3(vals[0], vals[1], vals[2], pnames, err, errlen);
	if (r < 0)
		return r;
	snprintf(n->address, sizeof(n->address), "%s", vals[0]);
	if (vals[1][0])
		passt_netmask_from_prefix(passt_netmask_prefix(vals[1]), n->netmask,
		                          sizeof(n->netmask));
	snprintf(n->gateway, sizeof(n->gateway), "%s", vals[2]);

	const char *dns = host->vm_nic_param(vm, i, "dns");
	if (dns) {
		/* Per NIC: a comma-separated list; "" leaves DNS to passt. */
		char buf[256], where[48];
		snprintf(buf, sizeof(buf), "%s", dns);
		snprintf(where, sizeof(where), "networks[%u].dns", i);
		for (char *save = NULL, *d = strtok_r(buf, ", ", &save); d;
		     d = strtok_r(NULL, ", ", &save))
			if ((r = add_dns(n, d, where, err, errlen)) < 0)
				return r;
	} else {
		for (int k = 0; k < conf.n_dns; k++)
			snprintf(n->dns[n->n_dns++], sizeof(n->dns[0]), "%s", conf.dns[k]);
	}
	if (conf.interface)
		snprintf(n->interface, sizeof(n->interface), "%s", conf.interface);
	n->ipv4_only = conf.ipv4_only;
	if ((r = loopback_options(n, names[2], err, errlen)) < 0)
		return r;

	const char *mac = host->vm_nic_param(vm, i, "mac");
	if (mac && !passt_mac_valid(mac)) {
		snprintf(
		    err, errlen,
		    "networks[%u].mac: must be a unicast MAC address xx:xx:xx:xx:xx:xx, got '%s'",
		    i, mac);
		return -EINVAL;
	}
	if (n_ports > PASST_MAX_PORTS) {
		snprintf(err, errlen, "ports: mode 'passt' carries at most %d mappings",
		         PASST_MAX_PORTS);
		return -EINVAL;
	}
	for (uint32_t k = 0; k < n_ports; k++) {
		struct passt_port *p = &n->ports[n->n_ports++];
		p->udp = ports[k]->protocol == CVMM_PROTO_UDP;
		snprintf(p->addr, sizeof(p->addr), "%s", ports[k]->host_address);
		p->host_port = ports[k]->host_port;
		p->vm_port = ports[k]->vm_port;
	}
	return passt_check_ports(n->ports, n->n_ports, n->ipv4_only, err, errlen);
}

static void mac_of(cvmm_vm *vm, uint32_t i, char *out, size_t len)
{
	const char *mac = host->vm_nic_param(vm, i, "mac");
	if (mac)
		snprintf(out, len, "%s", mac);
	else
		mac_for(vm, i, out, len);
}

/* Returns -ENAMETOOLONG when the socket path would not fit a sockaddr_un. */
static int paths(cvmm_vm *vm, uint32_t i, struct passt_nic *n)
{
	const char *rd = host->vm_run_dir(vm);
	int l = snprintf(n->socket, sizeof(n->socket), "%s/passt-net%u.sock", rd, i);
	snprintf(n->pidfile, sizeof(n->pidfile), "%s/passt-net%u.pid", rd, i);
	snprintf(n->logfile, sizeof(n->logfile), "%s/passt-net%u.log", rd, i);
	return l < 0 || (size_t)l >= sizeof(n->socket) ? -ENAMETOOLONG : 0;
}

/* passt's stderr: what it prints before it opens its log file (option
 * errors) and syslog complaints; kept apart so that the log stays clean. */
static void stderr_path(const struct passt_nic *n, char *out, size_t len)
{
	snprintf(out, len, "%.*s.stderr", (int)(strlen(n->logfile) - 4), n->logfile);
}

/* ---- plugin state ---- */

static void skey(char *out, size_t len, const char *pfx, uint32_t i, const char *field)
{
	snprintf(out, len, "%s%u.%s", pfx, i, field);
}

/* Sets a state key only when it changes: every set rewrites the manifest. */
static int state_put(cvmm_vm *vm, const char *key, const char *value)
{
	char cur[512];
	int r = host->state_get(self, vm, key, cur, sizeof(cur));
	if (value ? (r >= 0 && !strcmp(cur, value)) : r < 0)
		return 0;
	return host->state_set(self, vm, key, value);
}

static void publish_static(cvmm_vm *vm, uint32_t i, const struct passt_nic *n)
{
	char key[64], mac[18], addr[40];
	mac_of(vm, i, mac, sizeof(mac));
	skey(key, sizeof(key), "nic", i, "mac");
	state_put(vm, key, mac);
	addr[0] = 0;
	if (n->address[0] && n->netmask[0])
		snprintf(addr, sizeof(addr), "%s/%d", n->address, passt_netmask_prefix(n->netmask));
	else if (n->address[0])
		snprintf(addr, sizeof(addr), "%s", n->address);
	skey(key, sizeof(key), "nic", i, "address");
	state_put(vm, key, addr[0] ? addr : NULL);
	skey(key, sizeof(key), "nic", i, "gateway");
	state_put(vm, key, n->gateway[0] ? n->gateway : NULL);
}

/* ---- the passt process ---- */

/* The recorded passt of NIC i if it still is that process, else 0. */
static int recorded_pid(cvmm_vm *vm, uint32_t i, const char *socket, uint64_t *st_out)
{
	char key[64], buf[64];
	skey(key, sizeof(key), "net", i, "identity");
	if (host->state_get(self, vm, key, buf, sizeof(buf)) < 0)
		return 0;
	int pid = 0;
	unsigned long long st = 0;
	if (sscanf(buf, "%d %llu", &pid, &st) != 2 || pid <= 0 || !st)
		return 0;
	if (cp_start_time(pid) != st || !pp_has_socket_arg(pid, socket))
		return 0;
	*st_out = st;
	return pid;
}

/* Ends one process known by pid and start time. 0 once it is gone. */
static int end_process(cvmm_vm *vm, uint32_t i, int pid, uint64_t st)
{
	int pfd = cp_pidfd_open(pid);
	if (pfd < 0)
		return 0; /* already gone */
	/* Under the pidfd the pid cannot be reused: check it is still ours. */
	if (cp_start_time(pid) != st) {
		close(pfd);
		return 0;
	}
	cp_pidfd_kill(pfd, SIGTERM);
	if (cp_pidfd_wait(pfd, TERM_WAIT_S) != 1) {
		host->log(self, CVMM_LOG_WARN,
		          "VM '%s': networks[%u]: passt (pid %d) ignored SIGTERM; killing it",
		          host->vm_name(vm), i, pid);
		cp_pidfd_kill(pfd, SIGKILL);
		if (cp_pidfd_wait(pfd, KILL_WAIT_S) != 1) {
			close(pfd);
			return host->error(
			    self, vm, -ETIMEDOUT,
			    "networks[%u]: passt (pid %d) did not exit after SIGKILL", i, pid);
		}
	}
	close(pfd);
	host->log(self, CVMM_LOG_DEBUG, "VM '%s': networks[%u]: passt (pid %d) stopped",
	          host->vm_name(vm), i, pid);
	return 0;
}

/*
 * Ends NIC i's passt wherever it is in its life and removes its files and
 * runtime state. Idempotent; also the undo of a setup that failed half-way
 * or was cut short by a daemon crash before the pid was recorded.
 */
static int nic_stop(cvmm_vm *vm, uint32_t i)
{
	struct passt_nic n;
	memset(&n, 0, sizeof(n));
	paths(vm, i, &n);
	int r = 0;
	uint64_t st = 0;
	int pid = recorded_pid(vm, i, n.socket, &st);
	/* Bounded: a passt that will not die is reported, not waited on forever. */
	for (int round = 0; round < 4; round++) {
		if (!pid) {
			pid = pp_find_by_socket(n.socket);
			st = pid ? cp_start_time(pid) : 0;
			if (!pid || !st)
				break;
		}
		if ((r = end_process(vm, i, pid, st)) < 0)
			return r; /* keep the state: a later teardown retries */
		pid = 0;
	}
	unlink(n.socket);
	unlink(n.pidfile);
	unlink(n.logfile);
	char errlog[600];
	stderr_path(&n, errlog, sizeof(errlog));
	unlink(errlog);
	char key[64];
	skey(key, sizeof(key), "net", i, "identity");
	state_put(vm, key, NULL);
	skey(key, sizeof(key), "nic", i, "passt_pid");
	state_put(vm, key, NULL);
	skey(key, sizeof(key), "nic", i, "socket");
	state_put(vm, key, NULL);
	return 0;
}

/* ---- network-mode ops ---- */

static const char *const known_params[] = {"mode", "address", "netmask", "gateway",
                                           "dns",  "mac",     NULL};

static int np_define(void *data, cvmm_vm *vm, uint32_t i, const struct cvmm_port_map *const *ports,
                     uint32_t n_ports)
{
	const char *key, *value;
	for (uint32_t k = 0; (key = host->vm_nic_param_at(vm, i, k, &value)); k++) {
		int ok = 0;
		for (int m = 0; known_params[m]; m++)
			ok |= !strcmp(key, known_params[m]);
		if (!ok)
			return host->error(self, vm, -EINVAL,
			                   "networks[%u].%s: not a parameter of mode 'passt' "
			                   "(known: address, netmask, gateway, dns, mac)",
			                   i, key);
	}
	struct passt_nic *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	char err[512];
	int r = resolve_nic(vm, i, ports, n_ports, n, err, sizeof(err));
	if (r < 0)
		r = host->error(self, vm, r, "%s", err);
	else if (paths(vm, i, n) < 0)
		r = host->error(self, vm, -ENAMETOOLONG,
		                "networks[%u]: the socket path %s/passt-net%u.sock is longer than "
		                "the %d bytes a unix socket address holds (shorten run_path)",
		                i, host->vm_run_dir(vm), i, PASST_SUN_PATH_MAX - 1);
	else
		publish_static(vm, i, n);
	free(n);
	return r;
}

static int np_setup(void *data, cvmm_vm *vm, uint32_t i, cvmm_spec *spec,
                    const struct cvmm_port_map *const *ports, uint32_t n_ports)
{
	struct passt_nic *n = calloc(1, sizeof(*n));
	struct passt_argv a = {0};
	char err[512], key[64], val[64];
	int r, pfd = -1;
	if (!n)
		return -ENOMEM;
	if ((r = resolve_nic(vm, i, ports, n_ports, n, err, sizeof(err))) < 0) {
		r = host->error(self, vm, r, "%s", err);
		goto out;
	}
	if (paths(vm, i, n) < 0) {
		r = host->error(self, vm, -ENAMETOOLONG,
		                "networks[%u]: the socket path %s/passt-net%u.sock is longer than "
		                "the %d bytes a unix socket address holds (shorten run_path)",
		                i, host->vm_run_dir(vm), i, PASST_SUN_PATH_MAX - 1);
		goto out;
	}
	if ((r = passt_build_argv(n, &a, err, sizeof(err))) < 0) {
		r = host->error(self, vm, r, "networks[%u]: %s", i, err);
		goto out;
	}
	/* A passt left from an earlier boot of this VM would hold the socket. */
	if ((r = nic_stop(vm, i)) < 0)
		goto out;
	publish_static(vm, i, n);

	char errlog[600];
	stderr_path(n, errlog, sizeof(errlog));
	int pid = cp_spawn_detached(a.v, errlog, NULL, 0, 0);
	if (pid < 0) {
		r = host->error(self, vm, pid, "networks[%u]: cannot start %s: %s", i, n->binary,
		                strerror(-pid));
		goto out;
	}
	/* Recorded before anything else can fail, so that the undo finds it. */
	uint64_t st = cp_start_time(pid);
	skey(key, sizeof(key), "net", i, "identity");
	snprintf(val, sizeof(val), "%d %llu", pid, (unsigned long long)st);
	host->state_set(self, vm, key, val);
	skey(key, sizeof(key), "nic", i, "passt_pid");
	snprintf(val, sizeof(val), "%d", pid);
	host->state_set(self, vm, key, val);
	skey(key, sizeof(key), "nic", i, "socket");
	host->state_set(self, vm, key, n->socket);

	pfd = cp_pidfd_open(pid);
	double end = cp_mono() + READY_TIMEOUT_S;
	int ready = 0, gone = pfd < 0 || !st;
	while (!ready && !gone && cp_mono() < end) {
		/* Not connect(): with --one-off the first client is the one
		 * passt serves, and then it exits when that client leaves. */
		ready = pp_socket_listening(n->socket);
		if (!ready)
			gone = cp_pidfd_wait(pfd, 0.02) == 1;
	}
	if (!ready) {
		char why[400];
		int is_error = pp_last_error(n->logfile, why, sizeof(why));
		if (!why[0])
			is_error = pp_last_error(errlog, why, sizeof(why));
		/* passt 2023 reports a failed bind() of its socket as success
		 * and leaves when its epoll sees the hangup: say what it means. */
		const char *hint = is_error || access(n->socket, F_OK) == 0
		                       ? ""
		                       : " (its socket was never created: may passt write to the "
		                         "run directory? an AppArmor profile can forbid it)";
		if (gone)
			r = host->error(self, vm, -EIO,
			                "networks[%u]: passt exited during start: %s%s", i,
			                why[0] ? why : "no message", hint);
		else
			r = host->error(self, vm, -ETIMEDOUT,
			                "networks[%u]: passt (pid %d) did not listen on %s within "
			                "%.0f s%s%s%s",
			                i, pid, n->socket, READY_TIMEOUT_S, why[0] ? ": " : "", why,
			                hint);
		nic_stop(vm, i);
		goto out;
	}

	struct cvmm_spec_nic nic;
	memset(&nic, 0, sizeof(nic));
	nic.struct_size = sizeof(nic);
	nic.kind = CVMM_NIC_STREAM;
	snprintf(nic.id, sizeof(nic.id), "net%u", i);
	mac_of(vm, i, nic.mac, sizeof(nic.mac));
	snprintf(nic.socket, sizeof(nic.socket), "%s", n->socket);
	/* The ports are passt's (its --tcp-ports/--udp-ports), not QEMU's. */
	if ((r = host->spec_add_nic(spec, &nic)) < 0) {
		r = host->error(self, vm, r, "networks[%u]: cannot add the NIC: %s", i,
		                strerror(-r));
		nic_stop(vm, i);
		goto out;
	}
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: passt pid %d on %s (%s%s%s)",
	          host->vm_name(vm), i, pid, n->socket, n->address[0] ? n->address : "host address",
	          n->n_ports ? ", ports " : "", n->n_ports ? "mapped" : "");
	r = 0;
out:
	if (pfd >= 0)
		close(pfd);
	passt_argv_free(&a);
	free(n);
	return r;
}

static int np_teardown(void *data, cvmm_vm *vm, uint32_t i)
{
	return nic_stop(vm, i);
}

static int np_adopt(void *data, cvmm_vm *vm, uint32_t i)
{
	struct passt_nic n;
	memset(&n, 0, sizeof(n));
	paths(vm, i, &n);
	uint64_t st = 0;
	int pid = recorded_pid(vm, i, n.socket, &st);
	if (!pid && (pid = pp_find_by_socket(n.socket)) > 0) {
		/* Started, but the daemon died before the pid was saved. */
		char key[64], val[64];
		skey(key, sizeof(key), "net", i, "identity");
		snprintf(val, sizeof(val), "%d %llu", pid, (unsigned long long)cp_start_time(pid));
		host->state_set(self, vm, key, val);
		skey(key, sizeof(key), "nic", i, "passt_pid");
		snprintf(val, sizeof(val), "%d", pid);
		host->state_set(self, vm, key, val);
	}
	if (!pid)
		return host->error(self, vm, -ESRCH,
		                   "networks[%u]: passt is gone (socket %s); the VM has no network "
		                   "on net%u until it is restarted",
		                   i, n.socket, i);
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: re-adopted passt pid %d",
	          host->vm_name(vm), i, pid);
	return 0;
}

static const struct cvmm_netmode_ops ops = {
    .struct_size = sizeof(struct cvmm_netmode_ops),
    .can_map_ports = 1,
    .define = np_define,
    .setup = np_setup,
    .teardown = np_teardown,
    .adopt = np_adopt,
};

/* ---- configuration ---- */

/* A string setting; *present counts it. -EINVAL: reported by the host. */
static int cfg_str(const char *key, const char **out, const char *dflt, int *present)
{
	int r = host->cfg_string(self, key, out);
	if (r == 0)
		(*present)++;
	else if (r == -ENOENT)
		*out = dflt;
	return r == -ENOENT ? 0 : r;
}

static int cfg_flag(const char *key, int *out, int dflt, int *present)
{
	int32_t b = dflt;
	int r = host->cfg_bool(self, key, &b);
	if (r == 0)
		(*present)++;
	*out = b;
	return r == -ENOENT ? 0 : r;
}

static int read_config(void)
{
	int present = 0, r;
	const char *bin, *mhl, *mga;
	if ((r = cfg_str("passt", &bin, "passt", &present)) < 0 ||
	    (r = cfg_str("address", &conf.address, "10.0.2.10", &present)) < 0 ||
	    (r = cfg_str("netmask", &conf.netmask, "255.255.255.0", &present)) < 0 ||
	    (r = cfg_str("gateway", &conf.gateway, "10.0.2.2", &present)) < 0 ||
	    (r = cfg_str("interface", &conf.interface, NULL, &present)) < 0 ||
	    (r = cfg_str("map_host_loopback", &mhl, NULL, &present)) < 0 ||
	    (r = cfg_str("map_guest_addr", &mga, NULL, &present)) < 0 ||
	    (r = cfg_flag("no_map_gw", &conf.no_map_gw, 1, &present)) < 0 ||
	    (r = cfg_flag("ipv4_only", &conf.ipv4_only, 1, &present)) < 0)
		return r;
	conf.map_host_loopback = mhl;
	conf.map_guest_addr = mga;

	int n = host->cfg_count(self, "dns");
	if (n == -ENOENT) {
		snprintf(conf.dns[0], sizeof(conf.dns[0]), "1.1.1.1");
		snprintf(conf.dns[1], sizeof(conf.dns[1]), "1.0.0.1");
		conf.n_dns = 2;
	} else if (n < 0) {
		return n;
	} else {
		present++;
		struct passt_nic tmp;
		memset(&tmp, 0, sizeof(tmp));
		char err[256];
		for (int k = 0; k < n; k++) {
			const char *d;
			if ((r = host->cfg_string_at(self, "dns", (uint32_t)k, &d)) < 0)
				return r;
			if ((r = add_dns(&tmp, d, "plugin.net-passt.dns", err, sizeof(err))) < 0)
				return host->error(self, NULL, r, "%s", err);
		}
		memcpy(conf.dns, tmp.dns, sizeof(conf.dns));
		conf.n_dns = tmp.n_dns;
	}
	/* Keys of the section this plugin did not read are refused by the host. */
	if ((r = cp_find_program(bin, conf.binary, sizeof(conf.binary))) < 0)
		return host->error(self, NULL, r,
		                   "plugin.net-passt.passt: cannot find an executable '%s': %s "
		                   "(install the passt package)",
		                   bin, strerror(-r));
	static char help[32768];
	char *argv[] = {conf.binary, "--help", NULL};
	cp_run_capture(argv, help, sizeof(help));
	if (!strstr(help, "--socket") || !strstr(help, "--one-off"))
		return host->error(self, NULL, -EINVAL,
		                   "plugin.net-passt.passt: %s does not look like passt (no "
		                   "--socket/--one-off in its --help)",
		                   conf.binary);
	conf.has_map_host_loopback = strstr(help, "--map-host-loopback") != NULL;
	conf.has_map_guest_addr = strstr(help, "--map-guest-addr") != NULL;
	/* As root, passt switches to "nobody" before it binds its socket,
	 * and nobody cannot enter the VM's run directory: run it as the
	 * daemon's own user instead (it still drops every capability and
	 * sandboxes itself). */
	snprintf(conf.runas, sizeof(conf.runas), "%u:%u", (unsigned)geteuid(), (unsigned)getegid());

	const char *const names[3] = {"plugin.net-passt.address", "plugin.net-passt.netmask",
	                              "plugin.net-passt.gateway"};
	char err[512];
	if ((r = passt_check_l3(conf.address, conf.netmask, conf.gateway, names, err,
	                        sizeof(err))) < 0)
		return host->error(self, NULL, r, "%s", err);
	if (conf.interface && (!conf.interface[0] || strlen(conf.interface) > 15 ||
	                       strpbrk(conf.interface, "/ \t,=:%")))
		return host->error(self, NULL, -EINVAL,
		                   "plugin.net-passt.interface: must be a network interface name "
		                   "(1-15 characters), got '%s'",
		                   conf.interface);
	if (mhl && strcmp(mhl, "none") && !passt_ip_family(mhl))
		return host->error(self, NULL, -EINVAL,
		                   "plugin.net-passt.map_host_loopback: must be \"none\" or an IP "
		                   "address, got '%s'",
		                   mhl);
	if (mga && strcmp(mga, "none")) {
		if (!passt_ip_family(mga))
			return host->error(self, NULL, -EINVAL,
			                   "plugin.net-passt.map_guest_addr: must be \"none\" or "
			                   "an IP address, got '%s'",
			                   mga);
		if (!conf.has_map_guest_addr)
			return host->error(
			    self, NULL, -EINVAL,
			    "plugin.net-passt.map_guest_addr = \"%s\": %s has no --map-guest-addr "
			    "option (added to passt in 2024); only \"none\" is possible with it",
			    mga, conf.binary);
	}
	/* The same check define() makes per NIC, once for the defaults. */
	struct passt_nic tmp;
	memset(&tmp, 0, sizeof(tmp));
	snprintf(tmp.gateway, sizeof(tmp.gateway), "%s", conf.gateway);
	if ((r = loopback_options(&tmp, "plugin.net-passt.gateway", err, sizeof(err))) < 0)
		return host->error(self, NULL, r, "%s", err);
	host->log(self, CVMM_LOG_INFO, "%s: guests get %s/%s via %s%s%s%s", conf.binary,
	          conf.address[0] ? conf.address : "(host's)", conf.netmask[0] ? conf.netmask : "-",
	          conf.gateway[0] ? conf.gateway : "(host's)", conf.ipv4_only ? ", IPv4 only" : "",
	          conf.has_map_host_loopback ? "" : ", no --map-host-loopback",
	          conf.has_map_guest_addr ? "" : ", no --map-guest-addr");
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "net-passt", "0.1.0",
	                     "one passt process per NIC (stream socket), with port forwarding");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	int r = read_config();
	if (r < 0)
		return r;
	return host->register_netmode(self, "passt", &ops, NULL);
}
