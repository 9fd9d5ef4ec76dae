/*
 * registry: see registry.h. Plugins are never unloaded (RTLD_NODELETE):
 * their ops may be referenced by in-flight jobs until the process ends.
 */
#include "registry.h"
#include "chanmsg.h"
#include "daemon.h"
#include "job.h"
#include "spec.h"
#include "loopapi.h"
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct registry *registry_new(struct cvmm_daemon *d)
{
	struct registry *r = xzalloc(sizeof(*r));
	r->d = d;
	return r;
}

static void plugin_free(struct cvmm_plugin *p)
{
	if (!p)
		return;
	free(p->file);
	free(p->name);
	free(p->desc_name);
	free(p->version);
	free(p->description);
	free(p);
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->n_plugins; i++)
		plugin_free(r->plugins[i]);
	free(r->plugins);
	free(r->backends);
	free(r->netmodes);
	free(r->hooks);
	free(r->checks);
	free(r->chans);
	for (int i = 0; i < r->n_read_keys; i++)
		free(r->read_keys[i]);
	free(r->read_keys);
	free(r);
}

/* ---- who reads which key ----
 * Plugins read their settings through the host's cfg_* lookups; those made
 * while an entry point runs are recorded, and whatever no plugin read is
 * what no plugin knows: a typo, or a setting of a plugin that is not loaded.
 * This is why plugins read every setting in their entry point, never later. */

static void note_read(struct registry *r, const char *key)
{
	for (int i = 0; i < r->n_read_keys; i++)
		if (!strcmp(r->read_keys[i], key))
			return;
	r->read_keys = realloc(r->read_keys, sizeof(*r->read_keys) * (r->n_read_keys + 1));
	r->read_keys[r->n_read_keys++] = xstrdup(key);
}

static int was_read(const struct registry *r, const char *key)
{
	for (int i = 0; i < r->n_read_keys; i++)
		if (!strcmp(r->read_keys[i], key))
			return 1;
	return 0;
}

/* Whether any key at or under prefix was read. */
static int read_under(const struct registry *r, const char *prefix)
{
	size_t n = strlen(prefix);
	for (int i = 0; i < r->n_read_keys; i++)
		if (!strncmp(r->read_keys[i], prefix, n) &&
		    (!r->read_keys[i][n] || r->read_keys[i][n] == '.'))
			return 1;
	return 0;
}

/* The first setting under group g that nobody read. A group with members
 * is judged by its members; an empty group, a list or a scalar by itself. */
static config_setting_t *first_unread(const struct registry *r, config_setting_t *g)
{
	int n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(g, (unsigned)i), *u;
		char key[512];
		if (config_setting_type(e) == CONFIG_TYPE_GROUP && config_setting_length(e) > 0) {
			if ((u = first_unread(r, e)))
				return u;
			continue;
		}
		config_key(e, key, sizeof(key));
		if (!was_read(r, key))
			return e;
	}
	return NULL;
}

/* "a, b, c": the keys read under prefix, relative to it. */
static void keys_read_under(const struct registry *r, const char *prefix, char *buf, size_t len)
{
	size_t n = strlen(prefix), used = 0;
	buf[0] = '\0';
	for (int i = 0; i < r->n_read_keys && used < len; i++)
		if (!strncmp(r->read_keys[i], prefix, n) && r->read_keys[i][n] == '.')
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
						 r->read_keys[i] + n + 1);
}

/* "FILE:LINE: KEY: " + message, for setting s of the daemon's config. */
static int config_error(struct registry *r, config_setting_t *s, char *err, size_t errlen,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int config_error(struct registry *r, config_setting_t *s, char *err, size_t errlen,
			const char *fmt, ...)
{
	char where[PATH_MAX + 16], key[512], msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	config_where(r->d->cfg, s, where, sizeof(where));
	config_key(s, key, sizeof(key));
	snprintf(err, errlen, "%s: %s: %s", where, key, msg);
	return -EINVAL;
}

/* After a plugin's entry point: every key of plugin.<name> must have been read. */
static int check_section_read(struct registry *r, struct cvmm_plugin *p, char *err, size_t errlen)
{
	config_setting_t *sec = config_plugin_section(r->d->cfg, p->name), *u;
	char prefix[256], known[400];
	if (!sec || config_setting_type(sec) != CONFIG_TYPE_GROUP || !(u = first_unread(r, sec)))
		return 0;
	snprintf(prefix, sizeof(prefix), "plugin.%s", p->name);
	keys_read_under(r, prefix, known, sizeof(known));
	return config_error(r, u, err, errlen, "unknown key (%s reads: %s)", p->name,
			    known[0] ? known : "no settings");
}

/* Registrations made by a plugin that is then refused are dropped. */
static void drop_registrations(struct registry *r, struct cvmm_plugin *p)
{
	int j = 0;
	for (int i = 0; i < r->n_backends; i++)
		if (r->backends[i].plugin != p)
			r->backends[j++] = r->backends[i];
	r->n_backends = j;
	j = 0;
	for (int i = 0; i < r->n_netmodes; i++)
		if (r->netmodes[i].plugin != p)
			r->netmodes[j++] = r->netmodes[i];
	r->n_netmodes = j;
	j = 0;
	for (int i = 0; i < r->n_hooks; i++)
		if (r->hooks[i].plugin != p)
			r->hooks[j++] = r->hooks[i];
	r->n_hooks = j;
	j = 0;
	for (int i = 0; i < r->n_fields; i++)
		if (r->fields[i].plugin != p)
			r->fields[j++] = r->fields[i];
	r->n_fields = j;
	j = 0;
	for (int i = 0; i < r->n_infos; i++)
		if (r->infos[i].plugin != p)
			r->infos[j++] = r->infos[i];
	r->n_infos = j;
	j = 0;
	for (int i = 0; i < r->n_routes; i++)
		if (r->routes[i].plugin != p)
			r->routes[j++] = r->routes[i];
	r->n_routes = j;
	j = 0;
	for (int i = 0; i < r->n_checks; i++)
		if (r->checks[i].plugin != p)
			r->checks[j++] = r->checks[i];
	r->n_checks = j;
	j = 0;
	for (int i = 0; i < r->n_chans; i++)
		if (r->chans[i].plugin != p)
			r->chans[j++] = r->chans[i];
	r->n_chans = j;
}

int registry_load(struct registry *r, const char *path, const char *name, char *err, size_t errlen)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!h) {
		snprintf(err, errlen, "plugin %s: cannot load: %s", path, dlerror());
		return -ENOENT;
	}
	cvmm_plugin_init_fn init = (cvmm_plugin_init_fn)dlsym(h, CVMM_PLUGIN_ENTRY_NAME);
	if (!init) {
		snprintf(err, errlen, "plugin %s: no %s symbol: not a cvmm plugin", path,
			 CVMM_PLUGIN_ENTRY_NAME);
		dlclose(h);
		return -ENOEXEC;
	}
	struct cvmm_plugin *p = xzalloc(sizeof(*p));
	p->reg = r;
	p->file = xstrdup(path);
	p->name = xstrdup(name);
	p->handle = h;
	/* A zeroed descriptor sized for the biggest layout we know: fields the
	 * plugin's (older) header lacks stay zero, i.e. absent. */
	struct cvmm_plugin_desc desc;
	memset(&desc, 0, sizeof(desc));
	desc.struct_size = sizeof(desc);
	r->loading = p;
	int rc = init(CVMM_ABI_MAJOR, CVMM_ABI_MINOR, registry_host_api(), p, &desc);
	r->loading = NULL;
	if (desc.struct_size < offsetof(struct cvmm_plugin_desc, name) ||
	    desc.abi_major != CVMM_ABI_MAJOR) {
		snprintf(err, errlen,
			 "plugin %s: refused: built for cvmm plugin ABI %u.%u, this daemon has ABI %d.%d",
			 path, desc.abi_major, desc.abi_minor, CVMM_ABI_MAJOR, CVMM_ABI_MINOR);
		drop_registrations(r, p);
		plugin_free(p);
		return -EPROTO;
	}
	if (rc >= 0)
		rc = check_section_read(r, p, err, errlen);
	else if (p->init_err_is_config)
		snprintf(err, errlen, "%s", p->init_err);
	else
		snprintf(err, errlen, "plugin %s: initialisation failed: %s", path,
			 p->init_err[0] ? p->init_err : strerror(-rc));
	if (rc < 0) {
		if (p->init_err_is_config)
			rc = -EINVAL;
		drop_registrations(r, p);
		plugin_free(p);
		return rc;
	}
	p->abi_major = desc.abi_major;
	p->abi_minor = desc.abi_minor;
	p->desc_name = xstrdup(desc.name ? desc.name : name);
	p->version = xstrdup(desc.version ? desc.version : "");
	p->description = xstrdup(desc.description ? desc.description : "");
	r->plugins = realloc(r->plugins, sizeof(*r->plugins) * (r->n_plugins + 1));
	r->plugins[r->n_plugins++] = p;
	log_info("plugin %s %s loaded from %s (ABI %u.%u)", p->desc_name, p->version, path,
		 p->abi_major, p->abi_minor);
	return 0;
}

/* The setting of the i-th name in plugins, or NULL when plugins is unset. */
static config_setting_t *plugins_elem(struct cvmm_config *c, int i)
{
	config_setting_t *seq = config_lookup(&c->cfg, "plugins");
	return seq ? config_setting_get_elem(seq, (unsigned)i) : NULL;
}

static int check_plugin_dir(struct registry *r, char *err, size_t errlen)
{
	struct cvmm_config *c = r->d->cfg;
	config_setting_t *s = config_lookup(&c->cfg, "plugin_dir");
	struct stat st;
	errno = 0;
	if (stat(c->plugin_dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (s)
		return config_error(r, s, err, errlen, "\"%s\" is not a directory of plugins: %s",
				    c->plugin_dir, errno ? strerror(errno) : "not a directory");
	snprintf(err, errlen,
		 "%s: plugin_dir: not set, and the default \"%s\" is not a directory: %s (set "
		 "plugin_dir to where the plugins are installed)",
		 c->path, c->plugin_dir, errno ? strerror(errno) : "not a directory");
	return -EINVAL;
}

/* The keys of a section no plugin read: cvm.networking (but its mode), and
 * the sections owned by plugins that may not be loaded (cvm.gpu, ...). */
static int check_owned_sections(struct registry *r, char *err, size_t errlen)
{
	struct cvmm_config *c = r->d->cfg;
	config_setting_t *g, *u;
	char known[400];

	g = config_lookup(&c->cfg, "cvm.networking");
	note_read(r, "cvm.networking.mode"); /* the core's */
	if (g && config_setting_type(g) == CONFIG_TYPE_GROUP && (u = first_unread(r, g))) {
		const char *k = config_setting_name(u);
		int user = k && (!strcmp(k, "net") || !strcmp(k, "dhcp_start") ||
				 !strcmp(k, "restrict"));
		keys_read_under(r, "cvm.networking", known, sizeof(known));
		if (user && !registry_netmode(r, "user"))
			return config_error(r, u, err, errlen,
					    "belongs to network mode \"user\", whose plugin "
					    "net-user is not in plugins");
		return config_error(r, u, err, errlen,
				    "unknown key (the loaded plugins read: %s)", known);
	}
	for (int i = 0; config_plugin_owned[i]; i += 2) {
		const char *sec = config_plugin_owned[i], *owner = config_plugin_owned[i + 1];
		g = config_lookup(&c->cfg, sec);
		if (!g)
			continue;
		if (!read_under(r, sec))
			return config_error(r, g, err, errlen,
					    "no loaded plugin handles %s (add \"%s\" to plugins, "
					    "if this host has it)",
					    sec, owner);
		if (config_setting_type(g) == CONFIG_TYPE_GROUP && (u = first_unread(r, g))) {
			keys_read_under(r, sec, known, sizeof(known));
			return config_error(r, u, err, errlen,
					    "unknown key (the loaded plugins read: %s)", known);
		}
	}
	return 0;
}

static int check_provided(struct registry *r, char *err, size_t errlen)
{
	struct cvmm_config *c = r->d->cfg;
	config_setting_t *s;
	char have[256] = "";
	size_t n = 0;

	if (!registry_backend(r, c->default_backend)) {
		for (int i = 0; i < r->n_backends && n < sizeof(have); i++)
			n += (size_t)snprintf(have + n, sizeof(have) - n, "%s%s", n ? ", " : "",
					      r->backends[i].name);
		if ((s = config_lookup(&c->cfg, "cvm.backend")))
			return config_error(r, s, err, errlen,
					    "no loaded plugin provides backend \"%s\" (loaded "
					    "backends: %s; add its plugin to plugins)",
					    c->default_backend, n ? have : "none");
		snprintf(err, errlen,
			 "%s: cvm.backend: not set, and no loaded plugin provides the default "
			 "backend \"%s\" (loaded backends: %s)",
			 c->path, c->default_backend, n ? have : "none");
		return -EINVAL;
	}
	/* Unset, the default "user" may be missing: VMs then name their networks. */
	s = config_lookup(&c->cfg, "cvm.networking.mode");
	if (s && !registry_netmode(r, c->net_mode)) {
		for (int i = 0; i < r->n_netmodes && n < sizeof(have); i++)
			n += (size_t)snprintf(have + n, sizeof(have) - n, "%s%s", n ? ", " : "",
					      r->netmodes[i].name);
		return config_error(r, s, err, errlen,
				    "no loaded plugin provides network mode \"%s\" (loaded "
				    "modes: %s; add its plugin to plugins)",
				    c->net_mode, n ? have : "none");
	}
	return 0;
}

/* Where plugins act on the host: not at load, which --check-config also does. */
static int run_daemon_start(struct registry *r, char *err, size_t errlen)
{
	struct reg_hook *hooks[64];
	int n = registry_hooks(r, CVMM_EV_DAEMON_START, hooks, 64);
	for (int i = 0; i < n; i++) {
		struct cvmm_plugin *p = hooks[i]->plugin;
		p->init_err[0] = '\0';
		r->starting = p;
		int rc = hooks[i]->fn(hooks[i]->data, NULL, CVMM_EV_DAEMON_START, NULL);
		r->starting = NULL;
		if (rc < 0) {
			snprintf(err, errlen, "plugin %s: at daemon start: %s", p->file,
				 p->init_err[0] ? p->init_err : strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int registry_load_all(struct registry *r, char *err, size_t errlen)
{
	struct cvmm_config *c = r->d->cfg;
	int rc;
	if ((rc = check_plugin_dir(r, err, errlen)) < 0)
		return rc;
	for (int i = 0; i < c->n_plugins; i++) {
		char path[1024];
		if (str_printf(path, sizeof(path), "%s/%s.so", c->plugin_dir, c->plugins[i]) < 0) {
			snprintf(err, errlen, "plugin %s: path too long", c->plugins[i]);
			return -ENAMETOOLONG;
		}
		if (access(path, F_OK) < 0) {
			config_setting_t *s = plugins_elem(c, i);
			if (s)
				return config_error(r, s, err, errlen,
						    "no plugin \"%s\" in plugin_dir %s (%s: %s)",
						    c->plugins[i], c->plugin_dir, path,
						    strerror(errno));
			snprintf(err, errlen,
				 "%s: plugins: not set, and the default plugin \"%s\" is not in "
				 "plugin_dir %s (%s: %s)",
				 c->path, c->plugins[i], c->plugin_dir, path, strerror(errno));
			return -EINVAL;
		}
		rc = registry_load(r, path, c->plugins[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	if ((rc = check_owned_sections(r, err, errlen)) < 0 ||
	    (rc = check_provided(r, err, errlen)) < 0)
		return rc;
	return r->check_only ? 0 : run_daemon_start(r, err, errlen);
}

struct reg_backend *registry_backend(struct registry *r, const char *name)
{
	for (int i = 0; i < r->n_backends; i++)
		if (!strcmp(r->backends[i].name, name))
			return &r->backends[i];
	return NULL;
}

struct reg_netmode *registry_netmode(struct registry *r, const char *name)
{
	for (int i = 0; i < r->n_netmodes; i++)
		if (!strcmp(r->netmodes[i].name, name))
			return &r->netmodes[i];
	return NULL;
}

int registry_hooks(struct registry *r, uint32_t event, struct reg_hook **out, int max)
{
	int n = 0;
	for (int i = 0; i < r->n_hooks && n < max; i++)
		if (r->hooks[i].event == event)
			out[n++] = &r->hooks[i];
	/* Stable insertion sort by priority, then registration order. */
	for (int i = 1; i < n; i++) {
		struct reg_hook *h = out[i];
		int j = i - 1;
		while (j >= 0 && (out[j]->priority > h->priority ||
				  (out[j]->priority == h->priority && out[j]->order > h->order))) {
			out[j + 1] = out[j];
			j--;
		}
		out[j + 1] = h;
	}
	return n;
}

json_object *registry_plugins_json(struct registry *r)
{
	json_object *a = json_object_new_array();
	for (int i = 0; i < r->n_plugins; i++) {
		struct cvmm_plugin *p = r->plugins[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(p->desc_name));
		json_object_object_add(o, "version", json_object_new_string(p->version));
		json_object_object_add(o, "description", json_object_new_string(p->description));
		json_object_object_add(o, "file", json_object_new_string(p->file));
		char abi[32];
		snprintf(abi, sizeof(abi), "%u.%u", p->abi_major, p->abi_minor);
		json_object_object_add(o, "abi", json_object_new_string(abi));
		json_object *provides = json_object_new_array();
		char what[64];
		for (int k = 0; k < r->n_backends; k++)
			if (r->backends[k].plugin == p) {
				snprintf(what, sizeof(what), "backend:%s", r->backends[k].name);
				json_object_array_add(provides, json_object_new_string(what));
			}
		for (int k = 0; k < r->n_netmodes; k++)
			if (r->netmodes[k].plugin == p) {
				snprintf(what, sizeof(what), "network:%s", r->netmodes[k].name);
				json_object_array_add(provides, json_object_new_string(what));
			}
		json_object_object_add(o, "provides", provides);
		json_object_array_add(a, o);
	}
	return a;
}

/* ---- The host API table ---- */

/* Records msg as the plugin's error at load or daemon start, located. */
static void set_init_err(cvmm_plugin *p, int is_config, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_init_err(cvmm_plugin *p, int is_config, const char *fmt, ...)
{
	va_list ap;
	if ((p->reg->loading != p && p->reg->starting != p) || p->init_err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->init_err, sizeof(p->init_err), fmt, ap);
	va_end(ap);
	p->init_err_is_config = is_config;
}

/*
 * A plugin's message about one of its settings starts with the key
 * ("plugin.net-overlay.vni: required"); at load it becomes the config error
 * "FILE:LINE: plugin.net-overlay.vni: required", at the key's line, or at its
 * closest ancestor's when the key is unset. Other messages stay as they are.
 */
static int locate_message(cvmm_plugin *p, const char *msg, char *out, size_t len)
{
	struct cvmm_config *c = p->reg->d->cfg;
	char key[256], where[PATH_MAX + 16];
	size_t n = strspn(msg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
	if (!n || n >= sizeof(key) || (msg[n] != ':' && msg[n] != ' ') || !strchr(msg, '.'))
		return 0;
	memcpy(key, msg, n);
	key[n] = '\0';
	const char *top_end = strchr(key, '.');
	size_t top = top_end ? (size_t)(top_end - key) : n;
	if (!(top == 6 && !strncmp(key, "plugin", 6)) && !(top == 3 && !strncmp(key, "cvm", 3)))
		return 0;
	config_setting_t *s = NULL;
	for (char *dot; !(s = config_lookup(&c->cfg, key)) && (dot = strrchr(key, '.'));)
		*dot = '\0';
	config_where(c, s, where, sizeof(where));
	snprintf(out, len, "%s: %s", where, msg);
	return 1;
}

static void h_log(cvmm_plugin *p, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, p ? p->name : "plugin", fmt, ap);
	va_end(ap);
}

/* Where host->error(p, NULL, ...) lands while a route or info call runs on
 * this thread (registry_call_begin). */
static __thread char *call_err;
static __thread size_t call_errlen;

static int h_error(cvmm_plugin *p, cvmm_vm *vm, int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (vm) {
		/* The first error of a job is the cause; later ones are fallout. */
		vm_lock(vm);
		bool job = vm->errbuf != NULL;
		if (job && !vm->errbuf[0])
			str_copy(vm->errbuf, VM_ERRBUF_LEN, msg);
		vm_unlock(vm);
		/* Outside a job (a guest channel request): to the caller's buffer. */
		if (!job && call_err && !call_err[0])
			str_copy(call_err, call_errlen, msg);
		log_error("%s: VM '%s': %s", p ? p->name : "plugin", vm->name, msg);
	} else if (call_err) {
		if (!call_err[0])
			str_copy(call_err, call_errlen, msg);
		log_warn("%s: %s", p ? p->name : "plugin", msg);
	} else if (p) {
		char located[sizeof(p->init_err)];
		int is_config = locate_message(p, msg, located, sizeof(located));
		set_init_err(p, is_config, "%s", is_config ? located : msg);
		log_error("%s: %s", p->name, is_config ? located : msg);
	} else {
		log_error("plugin: %s", msg);
	}
	return err < 0 ? err : -EIO;
}

static int h_register_backend(cvmm_plugin *p, const char *name, const struct cvmm_backend_ops *ops,
			      void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!name || !ops || strlen(name) >= 32)
		return -EINVAL;
	if (registry_backend(r, name))
		return -EEXIST;
	r->backends = realloc(r->backends, sizeof(*r->backends) * (r->n_backends + 1));
	struct reg_backend *b = &r->backends[r->n_backends++];
	memset(b, 0, sizeof(*b));
	str_copy(b->name, sizeof(b->name), name);
	memcpy(&b->ops, ops, ops->struct_size < sizeof(b->ops) ? ops->struct_size : sizeof(b->ops));
	b->data = data;
	b->plugin = p;
	return 0;
}

static int h_register_netmode(cvmm_plugin *p, const char *mode, const struct cvmm_netmode_ops *ops,
			      void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!mode || !ops || strlen(mode) >= 32)
		return -EINVAL;
	if (registry_netmode(r, mode))
		return -EEXIST;
	r->netmodes = realloc(r->netmodes, sizeof(*r->netmodes) * (r->n_netmodes + 1));
	struct reg_netmode *m = &r->netmodes[r->n_netmodes++];
	memset(m, 0, sizeof(*m));
	str_copy(m->name, sizeof(m->name), mode);
	memcpy(&m->ops, ops, ops->struct_size < sizeof(m->ops) ? ops->struct_size : sizeof(m->ops));
	m->data = data;
	m->plugin = p;
	return 0;
}

static int h_register_hook(cvmm_plugin *p, uint32_t event, int32_t priority, cvmm_hook_fn fn,
			   void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!fn || event < CVMM_EV_DEFINE || event > CVMM_EV_PLAN)
		return -EINVAL;
	r->hooks = realloc(r->hooks, sizeof(*r->hooks) * (r->n_hooks + 1));
	r->hooks[r->n_hooks] = (struct reg_hook){event, priority, fn, data, p, r->n_hooks};
	r->n_hooks++;
	return 0;
}

/* ---- plugin-owned parts of the API (1.2) ---- */

/* Fields the core's create body has: a plugin may not claim them. */
static const char *const core_fields[] = {"name", "image", "vcpu", "memory_mb", "disk_gb", "networks",
					  "ports", "backend", "start", NULL};

static bool ident_ok(const char *s, size_t max)
{
	size_t l = s ? strlen(s) : 0;
	if (!l || l >= max)
		return false;
	for (size_t i = 0; i < l; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-' || (s[i] == '/' && i > 0)))
			return false;
	return true;
}

static int h_register_request_field(cvmm_plugin *p, const char *field, reg_validate_fn validate,
				    void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!validate || !ident_ok(field, sizeof(r->fields[0].name)) || strchr(field, '/'))
		return -EINVAL;
	for (int i = 0; core_fields[i]; i++)
		if (!strcmp(core_fields[i], field))
			return -EEXIST;
	if (registry_field(r, field))
		return -EEXIST;
	r->fields = realloc(r->fields, sizeof(*r->fields) * (r->n_fields + 1));
	struct reg_field *f = &r->fields[r->n_fields++];
	*f = (struct reg_field){.validate = validate, .data = data, .plugin = p};
	str_copy(f->name, sizeof(f->name), field);
	return 0;
}

struct reg_field *registry_field(struct registry *r, const char *name)
{
	for (int i = 0; i < r->n_fields; i++)
		if (!strcmp(r->fields[i].name, name))
			return &r->fields[i];
	return NULL;
}

static const char *h_vm_request_field(cvmm_vm *vm, const char *field)
{
	return vm_field_get(vm, field);
}

static int h_register_info(cvmm_plugin *p, const char *key, reg_host_info_fn host_info,
			   reg_vm_info_fn vm_info, void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if ((!host_info && !vm_info) || !ident_ok(key, sizeof(r->infos[0].key)) || strchr(key, '/'))
		return -EINVAL;
	for (int i = 0; i < r->n_infos; i++)
		if (!strcmp(r->infos[i].key, key))
			return -EEXIST;
	r->infos = realloc(r->infos, sizeof(*r->infos) * (r->n_infos + 1));
	struct reg_info *f = &r->infos[r->n_infos++];
	*f = (struct reg_info){.host_info = host_info, .vm_info = vm_info, .data = data, .plugin = p};
	str_copy(f->key, sizeof(f->key), key);
	return 0;
}

static int h_register_check(cvmm_plugin *p, reg_check_fn fn, void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!fn)
		return -EINVAL;
	struct reg_check *n = realloc(r->checks, sizeof(*r->checks) * (size_t)(r->n_checks + 1));
	if (!n)
		return -ENOMEM;
	r->checks = n;
	n[r->n_checks++] = (struct reg_check){.fn = fn, .data = data, .plugin = p};
	return 0;
}

/* Paths the core serves: a plugin's route may not shadow them. */
static const char *const core_routes[] = {"host", "plugins", "images", "vms", "events",
					  "openapi.json", "routes", NULL};

static int h_register_route(cvmm_plugin *p, const char *method, const char *path, reg_route_fn fn,
			    void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!fn || !method || (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "DELETE")) ||
	    !ident_ok(path, sizeof(r->routes[0].path)))
		return -EINVAL;
	for (int i = 0; core_routes[i]; i++) {
		size_t l = strlen(core_routes[i]);
		if (!strncmp(path, core_routes[i], l) && (path[l] == 0 || path[l] == '/'))
			return -EEXIST;
	}
	if (registry_route(r, method, path))
		return -EEXIST;
	r->routes = realloc(r->routes, sizeof(*r->routes) * (r->n_routes + 1));
	struct reg_route *rt = &r->routes[r->n_routes++];
	*rt = (struct reg_route){.fn = fn, .data = data, .plugin = p};
	str_copy(rt->method, sizeof(rt->method), method);
	str_copy(rt->path, sizeof(rt->path), path);
	return 0;
}

static int h_register_channel_handler(cvmm_plugin *p, const char *request, reg_chan_fn fn,
				      void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!fn || !request)
		return -EINVAL;
	/* Only requests the channel's reader passes on can reach a handler
	 * (Info and Notify are the core's own). */
	bool known = !strcmp(request, "GetSealingKey");
	for (int i = 0; chanmsg_plugin_calls[i] && !known; i++)
		known = !strcmp(request, chanmsg_plugin_calls[i]);
	if (!known)
		return -ENOTSUP;
	if (registry_channel_handler(r, request))
		return -EEXIST;
	r->chans = realloc(r->chans, sizeof(*r->chans) * (r->n_chans + 1));
	struct reg_chan_handler *h = &r->chans[r->n_chans++];
	*h = (struct reg_chan_handler){.fn = fn, .data = data, .plugin = p};
	str_copy(h->request, sizeof(h->request), request);
	return 0;
}

struct reg_chan_handler *registry_channel_handler(struct registry *r, const char *request)
{
	for (int i = 0; i < r->n_chans; i++)
		if (!strcmp(r->chans[i].request, request))
			return &r->chans[i];
	return NULL;
}

struct reg_route *registry_route(struct registry *r, const char *method, const char *path)
{
	for (int i = 0; i < r->n_routes; i++)
		if (!r->routes[i].vmfn && !strcmp(r->routes[i].method, method) &&
		    !strcmp(r->routes[i].path, path))
			return &r->routes[i];
	return NULL;
}

struct reg_route *registry_vm_route(struct registry *r, const char *method, const char *sub)
{
	for (int i = 0; i < r->n_routes; i++)
		if (r->routes[i].vmfn && !strcmp(r->routes[i].method, method) &&
		    !strcmp(r->routes[i].path, sub))
			return &r->routes[i];
	return NULL;
}

/* Sub-paths of a VM the core serves (route_vm in api.c). */
static const char *const core_vm_routes[] = {"events", "logs",   "start",  "stop",
					     "restart", "kill",  "console", "pause",
					     "resume",  "resize", "snapshots", NULL};

static int h_register_vm_route(cvmm_plugin *p, const char *method, const char *sub,
			       reg_vm_route_fn fn, void *data)
{
	struct registry *r = p->reg;
	if (r->loading != p)
		return -EPERM;
	if (!fn || !method || (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "DELETE")) ||
	    !ident_ok(sub, sizeof(r->routes[0].path)) || strchr(sub, '/'))
		return -EINVAL;
	for (int i = 0; core_vm_routes[i]; i++)
		if (!strcmp(sub, core_vm_routes[i]))
			return -EEXIST;
	if (registry_vm_route(r, method, sub))
		return -EEXIST;
	r->routes = realloc(r->routes, sizeof(*r->routes) * (r->n_routes + 1));
	struct reg_route *rt = &r->routes[r->n_routes++];
	*rt = (struct reg_route){.vmfn = fn, .data = data, .plugin = p};
	str_copy(rt->method, sizeof(rt->method), method);
	str_copy(rt->path, sizeof(rt->path), sub);
	return 0;
}

static void h_vm_event(cvmm_plugin *p, cvmm_vm *vm, const char *type, const char *fmt, ...)
{
	(void)p;
	char msg[1024];
	va_list ap;
	if (!vm || !type || !fmt)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line: a message from a remote peer must not forge a second. */
	for (char *c = msg; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	vm_event(vm, type, "%s", msg);
}

void registry_call_begin(char *err, size_t errlen)
{
	call_err = err;
	call_errlen = errlen;
	if (err && errlen)
		err[0] = 0;
}

void registry_call_end(void)
{
	call_err = NULL;
	call_errlen = 0;
}

void registry_notify(struct registry *r, uint32_t event)
{
	struct reg_hook *hooks[64];
	int n = registry_hooks(r, event, hooks, 64);
	for (int i = 0; i < n; i++)
		hooks[i]->fn(hooks[i]->data, NULL, event, NULL);
}

/* Config lookups: relative paths live under plugin.<name>. A lookup made
 * while the plugin's entry point runs marks the key as known. */
static config_setting_t *cfg_find(cvmm_plugin *p, const char *path)
{
	config_t *cfg = &p->reg->d->cfg->cfg;
	char full[512];
	if (path[0] == '.') {
		if (str_printf(full, sizeof(full), "%s", path + 1) < 0)
			return NULL;
	} else if (str_printf(full, sizeof(full), "plugin.%s.%s", p->name, path) < 0) {
		return NULL;
	}
	if (p->reg->loading == p)
		note_read(p->reg, full);
	return config_lookup(cfg, full);
}

static int cfg_type_error(cvmm_plugin *p, config_setting_t *s, const char *path, const char *want)
{
	char where[PATH_MAX + 16], key[512];
	config_where(p->reg->d->cfg, s, where, sizeof(where));
	config_key(s, key, sizeof(key));
	set_init_err(p, 1, "%s: %s: must be %s", where, key, want);
	log_error("%s: %s: must be %s", where, key, want);
	return -EINVAL;
}


static int h_cfg_string(cvmm_plugin *p, const char *path, const char **out)
{
	config_setting_t *s = cfg_find(p, path);
	if (!s)
		return -ENOENT;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return cfg_type_error(p, s, path, "a string");
	*out = config_setting_get_string(s);
	return 0;
}

static int h_cfg_int(cvmm_plugin *p, const char *path, int64_t *out)
{
	config_setting_t *s = cfg_find(p, path);
	if (!s)
		return -ENOENT;
	int t = config_setting_type(s);
	if (t == CONFIG_TYPE_INT)
		*out = config_setting_get_int(s);
	else if (t == CONFIG_TYPE_INT64)
		*out = config_setting_get_int64(s);
	else
		return cfg_type_error(p, s, path, "an integer");
	return 0;
}

static int h_cfg_bool(cvmm_plugin *p, const char *path, int32_t *out)
{
	config_setting_t *s = cfg_find(p, path);
	if (!s)
		return -ENOENT;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return cfg_type_error(p, s, path, "true or false");
	*out = config_setting_get_bool(s);
	return 0;
}

static int h_cfg_count(cvmm_plugin *p, const char *path)
{
	config_setting_t *s = cfg_find(p, path);
	if (!s)
		return -ENOENT;
	if (!config_setting_is_aggregate(s))
		return cfg_type_error(p, s, path, "a list or an array");
	return config_setting_length(s);
}

static int h_cfg_string_at(cvmm_plugin *p, const char *path, uint32_t i, const char **out)
{
	config_setting_t *s = cfg_find(p, path);
	if (!s)
		return -ENOENT;
	config_setting_t *e = config_setting_get_elem(s, i);
	if (!e)
		return -ENOENT;
	if (config_setting_type(e) != CONFIG_TYPE_STRING)
		return cfg_type_error(p, e, path, "a list of strings");
	*out = config_setting_get_string(e);
	return 0;
}

static const char *h_vm_id(cvmm_vm *vm)
{
	return vm->id;
}
static const char *h_vm_name(cvmm_vm *vm)
{
	return vm->name;
}
static uint32_t h_vm_vcpus(cvmm_vm *vm)
{
	return vm->vcpu;
}
static uint64_t h_vm_memory_mb(cvmm_vm *vm)
{
	return vm->memory_mb;
}
static uint32_t h_vm_cid(cvmm_vm *vm)
{
	return vm->cid;
}
static const char *h_vm_run_dir(cvmm_vm *vm)
{
	return vm->run_dir;
}
static const char *h_vm_data_dir(cvmm_vm *vm)
{
	return vm->data_dir;
}
static uint32_t h_vm_nic_count(cvmm_vm *vm)
{
	return (uint32_t)vm->n_nics;
}
static const char *h_vm_nic_param(cvmm_vm *vm, uint32_t i, const char *key)
{
	return vm_nic_param(vm, (int)i, key);
}

static const char *h_vm_nic_param_at(cvmm_vm *vm, uint32_t i, uint32_t k, const char **value)
{
	if (i >= (uint32_t)vm->n_nics || k >= (uint32_t)vm->nics[i].n)
		return NULL;
	if (value)
		*value = vm->nics[i].vals[k];
	return vm->nics[i].keys[k];
}

static int h_state_set(cvmm_plugin *p, cvmm_vm *vm, const char *key, const char *value)
{
	if (!key || !*key || strlen(key) > 128 || (value && strlen(value) > 4096))
		return -EINVAL;
	/* Kept in memory; written with the job's next manifest write (a start
	 * writes it when the VM runs), so a start costs two fsyncs, not one per
	 * key. Plugins find their runtime objects again by name after a crash. */
	vm_lock(vm);
	vm_kv_set(vm, p->name, key, value);
	vm_unlock(vm);
	return 0;
}

static int h_state_get(cvmm_plugin *p, cvmm_vm *vm, const char *key, char *buf, size_t len)
{
	int r;
	vm_lock(vm);
	const char *v = vm_kv_get(vm, p->name, key);
	if (!v)
		r = -ENOENT;
	else if (str_copy(buf, len, v) < 0)
		r = -ENOSPC;
	else
		r = (int)strlen(v);
	vm_unlock(vm);
	return r;
}

/* "nic<i>.<what>" from whichever plugin published it: the NIC's own mode's
 * plugin in practice, and the key names are the convention the API's "nics"
 * already shows. */
static void nic_kv(struct cvmm_vm *vm, uint32_t i, const char *what, char *out, size_t len)
{
	char key[48];
	snprintf(key, sizeof(key), "nic%u.%s", i, what);
	out[0] = 0;
	for (int k = 0; k < vm->n_kv; k++)
		if (!strcmp(vm->kv[k].key, key)) {
			str_copy(out, len, vm->kv[k].value);
			return;
		}
}

static int h_vm_nic_info(cvmm_vm *vm, uint32_t i, struct cvmm_nic_info *info)
{
	if (!info || info->struct_size < sizeof(*info))
		return -EINVAL; /* every field is 1.2's: a smaller struct is no 1.2 caller */
	if (i >= (uint32_t)vm->n_nics)
		return -ENOENT;
	vm_lock(vm);
	const char *mode = vm_nic_param(vm, (int)i, "mode");
	str_copy(info->mode, sizeof(info->mode), mode ? mode : "");
	nic_kv(vm, i, "mac", info->mac, sizeof(info->mac));
	if (!info->mac[0]) {
		const char *asked = vm_nic_param(vm, (int)i, "mac");
		str_copy(info->mac, sizeof(info->mac), asked ? asked : "");
	}
	nic_kv(vm, i, "address", info->addr, sizeof(info->addr));
	nic_kv(vm, i, "gateway", info->gateway, sizeof(info->gateway));
	nic_kv(vm, i, "dns", info->dns, sizeof(info->dns));
	vm_unlock(vm);
	return 0;
}

static int h_spec_add_nic(cvmm_spec *s, const struct cvmm_spec_nic *nic)
{
	return spec_add_nic(s, nic);
}
static int h_spec_add_disk(cvmm_spec *s, const struct cvmm_spec_disk *disk)
{
	return spec_add_disk(s, disk);
}
static int h_spec_add_arg(cvmm_spec *s, const char *backend, const char *value)
{
	return spec_add_arg(s, backend, value);
}
static int h_spec_append_cmdline(cvmm_spec *s, const char *text)
{
	return spec_append_cmdline(s, text);
}

static int h_spec_add_hostdev(cvmm_spec *s, const struct cvmm_spec_hostdev *dev)
{
	return spec_add_hostdev(s, dev);
}
static int h_spec_set_topology(cvmm_spec *s, uint32_t sockets, uint32_t cores, uint32_t threads)
{
	return spec_set_topology(s, sockets, cores, threads);
}
static int h_spec_add_numa(cvmm_spec *s, const struct cvmm_spec_numa *cell)
{
	return spec_add_numa(s, cell);
}
static int h_spec_add_pin(cvmm_spec *s, const struct cvmm_spec_pin *pin)
{
	return spec_add_pin(s, pin);
}
static int h_spec_set_emulator_cpus(cvmm_spec *s, const char *host_cpus)
{
	return spec_set_emulator_cpus(s, host_cpus);
}
static int h_spec_add_pcie(cvmm_spec *s, const struct cvmm_spec_pcie *elem)
{
	return spec_add_pcie(s, elem);
}
static int h_spec_set_confidential(cvmm_spec *s, const struct cvmm_spec_confidential *cc)
{
	return spec_set_confidential(s, cc);
}

static int h_vm_watch_pid(cvmm_vm *vm, int32_t pid)
{
	return daemon_watch_pid(vm->d, vm, pid);
}

/* May come on the loop thread (libvirt's events): no I/O here; the EXITED
 * job records the reason. */
static void h_vm_exited(cvmm_vm *vm, const char *reason)
{
	vm_lock(vm);
	free(vm->exit_reason);
	vm->exit_reason = xstrdup(reason ? reason : "unknown");
	vm_unlock(vm);
	jobs_process_gone(vm->d, vm);
}

static void *h_alloc(size_t n)
{
	return xzalloc(n);
}
static void h_free(void *p)
{
	free(p);
}

static const char *h_run_dir(cvmm_plugin *p)
{
	return p->reg->d->cfg->run_path;
}
static const char *h_data_dir(cvmm_plugin *p)
{
	return p->reg->d->cfg->data_dir;
}

static int h_io_add(cvmm_plugin *p, int fd, uint32_t events, cvmm_io_fn fn, void *data)
{
	return loopapi_io_add(p->reg->d, fd, events, fn, data);
}
static int h_io_update(cvmm_plugin *p, int watch, uint32_t events)
{
	return loopapi_io_update(p->reg->d, watch, events);
}
static int h_io_remove(cvmm_plugin *p, int watch)
{
	return loopapi_io_remove(p->reg->d, watch);
}
static int h_timer_add(cvmm_plugin *p, int64_t period_ms, cvmm_timer_fn fn, void *data)
{
	return loopapi_timer_add(p->reg->d, period_ms, fn, data);
}
static int h_timer_update(cvmm_plugin *p, int timer, int64_t period_ms)
{
	return loopapi_timer_update(p->reg->d, timer, period_ms);
}
static int h_timer_remove(cvmm_plugin *p, int timer)
{
	return loopapi_timer_remove(p->reg->d, timer);
}

static const struct cvmm_host_api host_api = {
	.struct_size = sizeof(struct cvmm_host_api),
	.abi_major = CVMM_ABI_MAJOR,
	.abi_minor = CVMM_ABI_MINOR,
	.log = h_log,
	.error = h_error,
	.register_backend = h_register_backend,
	.register_netmode = h_register_netmode,
	.register_hook = h_register_hook,
	.cfg_string = h_cfg_string,
	.cfg_int = h_cfg_int,
	.cfg_bool = h_cfg_bool,
	.cfg_count = h_cfg_count,
	.cfg_string_at = h_cfg_string_at,
	.vm_id = h_vm_id,
	.vm_name = h_vm_name,
	.vm_vcpus = h_vm_vcpus,
	.vm_memory_mb = h_vm_memory_mb,
	.vm_cid = h_vm_cid,
	.vm_run_dir = h_vm_run_dir,
	.vm_data_dir = h_vm_data_dir,
	.vm_nic_count = h_vm_nic_count,
	.vm_nic_param = h_vm_nic_param,
	.vm_nic_param_at = h_vm_nic_param_at,
	.state_set = h_state_set,
	.state_get = h_state_get,
	.spec_add_nic = h_spec_add_nic,
	.spec_add_disk = h_spec_add_disk,
	.spec_add_arg = h_spec_add_arg,
	.spec_append_cmdline = h_spec_append_cmdline,
	.vm_watch_pid = h_vm_watch_pid,
	.vm_exited = h_vm_exited,
	.alloc = h_alloc,
	.free = h_free,
	.run_dir = h_run_dir,
	.data_dir = h_data_dir,
	.io_add = h_io_add,
	.io_update = h_io_update,
	.io_remove = h_io_remove,
	.timer_add = h_timer_add,
	.timer_update = h_timer_update,
	.timer_remove = h_timer_remove,
	.spec_add_hostdev = h_spec_add_hostdev,
	.spec_set_topology = h_spec_set_topology,
	.spec_add_numa = h_spec_add_numa,
	.spec_add_pin = h_spec_add_pin,
	.spec_set_emulator_cpus = h_spec_set_emulator_cpus,
	.spec_add_pcie = h_spec_add_pcie,
	.register_request_field = h_register_request_field,
	.vm_request_field = h_vm_request_field,
	.register_info = h_register_info,
	.register_route = h_register_route,
	.vm_event = h_vm_event,
	.register_vm_route = h_register_vm_route,
	.spec_set_confidential = h_spec_set_confidential,
	.register_check = h_register_check,
	.vm_nic_info = h_vm_nic_info,
	.register_channel_handler = h_register_channel_handler,
};

const struct cvmm_host_api *registry_host_api(void)
{
	return &host_api;
}
