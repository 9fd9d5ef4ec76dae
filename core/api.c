/*
 * api: see api.h. Handlers run on the loop thread and must not block: reads
 * take d->lock briefly; anything that runs plugin code is a job, and the
 * request that waits for it (create, delete) is suspended until the job's
 * completion resumes it.
 */
#include "api.h"
#include "daemon.h"
#include "image.h"
#include "jsonw.h"
#include "job.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define FOLLOW_POLL 0.25

struct req;

struct api {
	struct cvmm_daemon *d;
	struct MHD_Daemon *mhd;
	int listen_fd;
	char sock_path[108];
	ev_io io;
	ev_timer timer;
	ev_prepare prepare;
	ev_timer follow_timer;
	ev_idle kick; /* runs MHD once more after a resume */
	struct req *followers; /* suspended log streams waiting for output */
};

struct req {
	struct api *api;
	struct MHD_Connection *conn;
	char *body;
	size_t len;
	bool too_large;
	bool suspended;
	/* Answer prepared by a job's completion while suspended. */
	bool ready;
	unsigned status;
	json_object *answer;
	/* Log stream. */
	char vm_id[37];
	char log_path[600];
	char *head; /* initial tail text */
	size_t head_len, head_off;
	uint64_t offset; /* in console.log, after head */
	bool follow;
	struct req *next_follower;
	bool is_stream;
};

/* ---- responses ---- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
				 const char *text, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", ctype);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Takes ownership of o. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	enum MHD_Result r = send_text(c, status, "application/json", s, len);
	json_object_put(o);
	return r;
}

static json_object *error_obj(const char *code, const char *msg)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", e);
	return o;
}

static const char *code_for(unsigned status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 401:
		return "unauthorized";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 409:
		return "conflict";
	case 413:
		return "too_large";
	}
	return "internal";
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_json(c, status, error_obj(code_for(status), msg));
}

/* HTTP status for a failed job or check. */
static unsigned status_for(int err)
{
	switch (err) {
	case -EINVAL:
	case -ENOENT:
	case -ERANGE:
	case -ENOTSUP:
		return 400;
	case -EBUSY:
	case -EEXIST:
	case -EADDRINUSE:
		return 409;
	}
	return 500;
}

/* ---- auth ---- */

static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Time depends on the presented length only, never on where it differs. */
	unsigned char diff = (unsigned char)(alen != blen);
	for (size_t i = 0; i < alen; i++)
		diff |= (unsigned char)(a[i] ^ (i < blen ? b[i] : 0));
	return diff == 0;
}

int api_token_ok(struct cvmm_daemon *d, const char *hdr)
{
	struct cvmm_config *c = d->cfg;
	if (!c->auth_enabled)
		return 1;
	if (!hdr || strncmp(hdr, "Bearer ", 7))
		return 0;
	const char *tok = hdr + 7;
	size_t tl = strlen(tok);
	int ok = 0;
	for (int i = 0; i < c->n_tokens; i++)
		ok |= ct_equal(tok, tl, c->tokens[i], strlen(c->tokens[i]));
	return ok;
}

/* ---- routes ---- */

static json_object *host_json(struct cvmm_daemon *d)
{
	struct cvmm_config *c = d->cfg;
	struct registry *r = d->reg;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_string(CVMM_VERSION));
	char abi[16];
	snprintf(abi, sizeof(abi), "%d.%d", CVMM_ABI_MAJOR, CVMM_ABI_MINOR);
	json_object_object_add(o, "abi", json_object_new_string(abi));
	json_object_object_add(o, "node_name", json_object_new_string(c->node_name ? c->node_name : ""));
	json_object *lim = json_object_new_object();
	json_object_object_add(lim, "vcpu", json_object_new_int(c->max_allocable_vcpu));
	json_object_object_add(lim, "memory_mb", json_object_new_int64((int64_t)c->max_allocable_memory_mb));
	json_object_object_add(lim, "vcpu_computed", json_object_new_boolean(c->vcpu_computed));
	json_object_object_add(lim, "memory_computed", json_object_new_boolean(c->memory_computed));
	json_object_object_add(o, "limits", lim);
	pthread_mutex_lock(&d->lock);
	json_object *use = json_object_new_object();
	json_object_object_add(use, "vcpu", json_object_new_int64(d->used_vcpu));
	json_object_object_add(use, "memory_mb", json_object_new_int64((int64_t)d->used_memory_mb));
	json_object_object_add(use, "vms", json_object_new_int(d->n_vms));
	int running = 0;
	for (int i = 0; i < d->n_vms; i++)
		running += d->vms[i]->state == VM_RUNNING;
	json_object_object_add(use, "running", json_object_new_int(running));
	json_object_object_add(o, "usage", use);
	json_object *cid = json_object_new_object();
	json_object_object_add(cid, "start", json_object_new_int64(c->cid_start));
	json_object_object_add(cid, "size", json_object_new_int64(c->cid_pool_size));
	json_object_object_add(cid, "used", json_object_new_int64(d->cids_in_use));
	json_object_object_add(o, "cid_pool", cid);
	pthread_mutex_unlock(&d->lock);
	json_object *bs = json_object_new_array();
	const char *accel = "";
	char descs[8][256];
	for (int i = 0; i < r->n_backends && i < 8; i++) {
		struct reg_backend *b = &r->backends[i];
		json_object *bo = json_object_new_object();
		descs[i][0] = 0;
		if (b->ops.describe)
			b->ops.describe(b->data, descs[i], sizeof(descs[i]));
		json_object_object_add(bo, "name", json_object_new_string(b->name));
		json_object_object_add(bo, "default",
				       json_object_new_boolean(!strcmp(b->name, c->default_backend)));
		json_object_object_add(bo, "description", json_object_new_string(descs[i]));
		json_object_array_add(bs, bo);
		if (!strcmp(b->name, c->default_backend))
			accel = descs[i];
	}
	json_object_object_add(o, "backends", bs);
	json_object_object_add(o, "accelerator", json_object_new_string(accel));
	json_object *nm = json_object_new_array();
	for (int i = 0; i < r->n_netmodes; i++) {
		json_object *m = json_object_new_object();
		json_object_object_add(m, "name", json_object_new_string(r->netmodes[i].name));
		json_object_object_add(m, "ports", json_object_new_boolean(r->netmodes[i].ops.can_map_ports));
		json_object_object_add(m, "default", json_object_new_boolean(
			!strcmp(r->netmodes[i].name, c->net_mode)));
		json_object_array_add(nm, m);
	}
	json_object_object_add(o, "network_modes", nm);
	json_object *pm = json_object_new_object();
	json_object_object_add(pm, "enabled", json_object_new_boolean(c->pm_enabled));
	json_object_object_add(pm, "address", json_object_new_string(c->pm_address));
	json_object_object_add(o, "port_mapping", pm);
	json_object_object_add(o, "uptime", json_object_new_double(now_real() - d->started_at));
	return o;
}

/* The list is written as text into one buffer that MHD frees after
 * sending: no object tree, no copy. */
static enum MHD_Result send_vm_list(struct cvmm_daemon *d, struct MHD_Connection *c)
{
	const char *fields = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fields");
	char err[160];
	if (fields && vm_check_fields(fields, err, sizeof(err)) < 0)
		return send_error(c, 400, "%s", err);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "vms");
	jw_arr(&w);
	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < d->n_vms; i++)
		vm_write_api(d->vms[i], &w, fields);
	pthread_mutex_unlock(&d->lock);
	jw_end_arr(&w);
	jw_end_obj(&w);
	size_t len;
	char *text = jw_take(&w, &len);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* Parses the request body as a JSON object; NULL body counts as {}. */
static json_object *parse_body(struct req *q, char *err, size_t errlen)
{
	if (!q->len)
		return json_object_new_object();
	struct json_tokener *tok = json_tokener_new_ex(16);
	/* Only JSON: no single quotes, comments, trailing commas or 01. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, q->body, (int)q->len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	if (!o || e != json_tokener_success) {
		snprintf(err, errlen, "body: invalid JSON at byte %zu: %s", end,
			 json_tokener_error_desc(e == json_tokener_success ? json_tokener_continue : e));
		json_object_put(o);
		o = NULL;
	} else {
		while (end < q->len && strchr(" \t\r\n", q->body[end]))
			end++;
		if (end != q->len) {
			snprintf(err, errlen, "body: unexpected data after the JSON value at byte %zu", end);
			json_object_put(o);
			o = NULL;
		} else if (!json_object_is_type(o, json_type_object)) {
			snprintf(err, errlen, "body: must be a JSON object");
			json_object_put(o);
			o = NULL;
		}
	}
	json_tokener_free(tok);
	return o;
}

static void resume_with(struct req *q, unsigned status, json_object *answer)
{
	q->status = status;
	q->answer = answer;
	q->ready = true;
	q->suspended = false;
	MHD_resume_connection(q->conn);
	/* MHD (0.9.75, external epoll) notices a resume only on its next run;
	 * nothing else may wake it, so make that run happen. */
	ev_idle_start(q->api->d->loop, &q->api->kick);
}

static void create_done(struct cvmm_daemon *d, struct job *j)
{
	struct req *q = j->ctx;
	struct cvmm_vm *vm = j->vm;
	if (j->result < 0) {
		char msg[1200];
		snprintf(msg, sizeof(msg), "VM '%s': %s", vm->name, j->err);
		unsigned st = status_for(j->result);
		resume_with(q, st, error_obj(code_for(st), msg));
		return;
	}
	pthread_mutex_lock(&d->lock);
	bool start = vm->want_running;
	if (start)
		vm->state = VM_STARTING; /* the job is queued; say so at once */
	json_object *o = vm_to_api(vm);
	pthread_mutex_unlock(&d->lock);
	if (start)
		jobs_submit(d, job_new(JOB_START, vm));
	resume_with(q, 201, o);
}

static enum MHD_Result vm_create(struct api *a, struct req *q)
{
	struct cvmm_daemon *d = a->d;
	char err[1024];
	json_object *body = parse_body(q, err, sizeof(err));
	if (!body)
		return send_error(q->conn, 400, "%s", err);
	struct cvmm_vm *vm = NULL;
	bool start = true;
	int r = vm_from_request(d, body, &vm, &start, err, sizeof(err));
	json_object_put(body);
	if (r < 0)
		return send_error(q->conn, 400, "%s", err);
	pthread_mutex_lock(&d->lock);
	if (daemon_find_vm(d, vm->name)) {
		pthread_mutex_unlock(&d->lock);
		enum MHD_Result ret = send_error(q->conn, 409, "name: a VM named '%s' exists already", vm->name);
		vm_free(vm);
		return ret;
	}
	r = daemon_check_ports(d, vm, err, sizeof(err));
	if (r == 0)
		r = daemon_reserve(d, vm, false, err, sizeof(err));
	if (r < 0) {
		pthread_mutex_unlock(&d->lock);
		vm_free(vm);
		return send_error(q->conn, status_for(r), "%s", err);
	}
	vm->want_running = start;
	daemon_add_vm(d, vm);
	pthread_mutex_unlock(&d->lock);
	struct job *j = job_new(JOB_DEFINE, vm);
	j->done = create_done;
	j->ctx = q;
	q->suspended = true;
	MHD_suspend_connection(q->conn);
	jobs_submit(d, j);
	return MHD_YES;
}

static void remove_done(struct cvmm_daemon *d, struct job *j)
{
	struct req *q = j->ctx;
	if (j->result < 0) {
		char msg[1200];
		snprintf(msg, sizeof(msg), "VM '%s': %s", j->vm->name, j->err);
		resume_with(q, 500, error_obj("internal", msg));
		return;
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "removed", json_object_new_string(j->vm->id));
	resume_with(q, 200, o);
}

static bool active(enum vm_state s)
{
	return s == VM_STARTING || s == VM_RUNNING || s == VM_STOPPING;
}

static enum MHD_Result vm_action(struct api *a, struct req *q, struct cvmm_vm *vm, const char *action)
{
	struct cvmm_daemon *d = a->d;
	char err[1024];
	json_object *body = parse_body(q, err, sizeof(err)), *v;
	if (!body)
		return send_error(q->conn, 400, "%s", err);
	uint32_t timeout = 30;
	bool force = !strcmp(action, "kill");
	enum MHD_Result ret = MHD_YES;
	json_object_object_foreach(body, k, val)
	{
		(void)val;
		if (strcmp(action, "stop") || (strcmp(k, "timeout") && strcmp(k, "force"))) {
			ret = send_error(q->conn, 400, "%s: unknown field", k);
			goto out;
		}
	}
	if (json_object_object_get_ex(body, "timeout", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) > 3600) {
			ret = send_error(q->conn, 400, "timeout: must be an integer between 0 and 3600 (seconds)");
			goto out;
		}
		timeout = (uint32_t)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(body, "force", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			ret = send_error(q->conn, 400, "force: must be true or false");
			goto out;
		}
		force = json_object_get_boolean(v);
	}
	pthread_mutex_lock(&d->lock);
	enum vm_state st = vm->state;
	if (st == VM_REMOVING) {
		pthread_mutex_unlock(&d->lock);
		ret = send_error(q->conn, 409, "VM '%s' is being removed", vm->name);
		goto out;
	}
	enum job_op op;
	if (!strcmp(action, "start")) {
		if (active(st) && vm->want_running) {
			pthread_mutex_unlock(&d->lock);
			ret = send_error(q->conn, 409, "VM '%s' is already %s", vm->name,
					 vm_state_name(st));
			goto out;
		}
		op = JOB_START;
		vm->want_running = true;
		vm->restarts = 0;
	} else if (!strcmp(action, "restart")) {
		op = active(st) ? JOB_RESTART : JOB_START;
		vm->want_running = true;
	} else {
		if (!active(st) && !vm->want_running) {
			pthread_mutex_unlock(&d->lock);
			ret = send_error(q->conn, 409, "VM '%s' is not running (%s)", vm->name,
					 vm_state_name(st));
			goto out;
		}
		op = JOB_STOP;
		vm->want_running = false;
	}
	vm->next_restart = 0;
	json_object *o = vm_to_api(vm);
	pthread_mutex_unlock(&d->lock);
	ev_timer_stop(d->loop, &vm->restart_timer);
	struct job *j = job_new(op, vm);
	j->timeout = timeout;
	j->force = force;
	jobs_submit(d, j);
	ret = send_json(q->conn, 202, o);
out:
	json_object_put(body);
	return ret;
}

/* ---- logs ---- */

static bool vm_still_live(struct cvmm_daemon *d, const char *id)
{
	pthread_mutex_lock(&d->lock);
	struct cvmm_vm *vm = daemon_find_vm(d, id);
	bool live = vm && (active(vm->state) || (vm->want_running && vm->state != VM_FAILED));
	pthread_mutex_unlock(&d->lock);
	return live;
}

static ssize_t log_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *q = cls;
	struct api *a = q->api;
	if (q->head_off < q->head_len) {
		size_t n = q->head_len - q->head_off < max ? q->head_len - q->head_off : max;
		memcpy(buf, q->head + q->head_off, n);
		q->head_off += n;
		return (ssize_t)n;
	}
	if (!q->follow)
		return MHD_CONTENT_READER_END_OF_STREAM;
	int fd = open(q->log_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = 0;
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < q->offset)
			q->offset = 0; /* rotated */
		n = pread(fd, buf, max, (off_t)q->offset);
		close(fd);
	}
	if (n > 0) {
		q->offset += (uint64_t)n;
		return n;
	}
	if (!vm_still_live(a->d, q->vm_id))
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing yet: park the connection; the follow timer wakes it. */
	q->suspended = true;
	q->next_follower = a->followers;
	a->followers = q;
	MHD_suspend_connection(q->conn);
	return 0;
}

static void follow_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct api *a = w->data;
	struct req *q = a->followers;
	a->followers = NULL;
	while (q) {
		struct req *n = q->next_follower;
		q->suspended = false;
		MHD_resume_connection(q->conn);
		q = n;
	}
	ev_idle_start(loop, &a->kick);
}

/* Appends up to the last `lines` lines (0: everything) of path to buf. */
static void read_tail(const char *path, char **buf, size_t *len, size_t lines, uint64_t *size)
{
	char *text = NULL;
	size_t tl = 0;
	if (read_file(path, &text, &tl, 64 << 20) < 0)
		return;
	if (size)
		*size = tl;
	size_t start = 0;
	if (lines) {
		size_t seen = 0;
		for (size_t i = tl; i > 0; i--)
			if (text[i - 1] == '\n' && i != tl && ++seen == lines) {
				start = i;
				break;
			}
	}
	*buf = realloc(*buf, *len + (tl - start) + 1);
	memcpy(*buf + *len, text + start, tl - start);
	*len += tl - start;
	free(text);
}

static size_t count_lines(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	return n;
}

static enum MHD_Result vm_logs(struct api *a, struct req *q, struct cvmm_vm *vm)
{
	const char *tail = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "tail");
	const char *follow = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "follow");
	long n = 0;
	if (tail) {
		char *end;
		n = strtol(tail, &end, 10);
		if (*end || n < 0 || n > 1000000)
			return send_error(q->conn, 400, "tail: must be a number of lines from 0 to 1000000");
	}
	q->follow = follow && (!strcmp(follow, "1") || !strcmp(follow, "true"));
	str_copy(q->vm_id, sizeof(q->vm_id), vm->id);
	snprintf(q->log_path, sizeof(q->log_path), "%s/console.log", vm->data_dir);
	char old[620];
	snprintf(old, sizeof(old), "%s.0", q->log_path);
	/* Current file first to learn its size; the rotated half goes before it. */
	char *cur = NULL, *prev = NULL;
	size_t cur_len = 0, prev_len = 0;
	read_tail(q->log_path, &cur, &cur_len, (size_t)n, &q->offset);
	if (!n || count_lines(cur, cur_len) < (size_t)n)
		read_tail(old, &prev, &prev_len, n ? (size_t)n - count_lines(cur, cur_len) : 0, NULL);
	q->head = xzalloc(prev_len + cur_len + 1);
	if (prev_len)
		memcpy(q->head, prev, prev_len);
	if (cur_len)
		memcpy(q->head + prev_len, cur, cur_len);
	q->head_len = prev_len + cur_len;
	free(cur);
	free(prev);
	q->is_stream = true;
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
								   log_reader, q, NULL);
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(q->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- dispatch ---- */

static enum MHD_Result route(struct api *a, struct req *q, const char *url, const char *method)
{
	struct cvmm_daemon *d = a->d;
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"),
	     del = !strcmp(method, "DELETE");
	if (strncmp(url, "/v1/", 4))
		return send_error(q->conn, 404, "no such endpoint: %s (the API lives under /v1)", url);
	const char *p = url + 4;
	if (!strcmp(p, "host"))
		return get ? send_json(q->conn, 200, host_json(d))
			   : send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(p, "plugins")) {
		if (!get)
			return send_error(q->conn, 405, "%s %s: use GET", method, url);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "plugins", registry_plugins_json(d->reg));
		return send_json(q->conn, 200, o);
	}
	if (!strcmp(p, "images")) {
		if (!get)
			return send_error(q->conn, 405, "%s %s: use GET", method, url);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "images", image_list_json(d->cfg->image_path));
		return send_json(q->conn, 200, o);
	}
	if (!strcmp(p, "vms") || !strcmp(p, "vms/")) {
		if (get)
			return send_vm_list(d, q->conn);
		if (post)
			return vm_create(a, q);
		return send_error(q->conn, 405, "%s %s: use GET or POST", method, url);
	}
	if (strncmp(p, "vms/", 4))
		return send_error(q->conn, 404, "no such endpoint: %s", url);
	char key[128];
	const char *rest = p + 4, *slash = strchr(rest, '/');
	size_t kl = slash ? (size_t)(slash - rest) : strlen(rest);
	if (kl == 0 || kl >= sizeof(key))
		return send_error(q->conn, 404, "no such VM");
	memcpy(key, rest, kl);
	key[kl] = 0;
	const char *sub = slash ? slash + 1 : "";
	pthread_mutex_lock(&d->lock);
	struct cvmm_vm *vm = daemon_find_vm(d, key);
	json_object *snapshot = NULL;
	if (vm && !*sub && get)
		snapshot = vm_to_api(vm);
	pthread_mutex_unlock(&d->lock);
	/* The VM cannot go away before this handler returns: removal completes
	 * on this (the loop) thread. Its data_dir never changes. */
	if (vm && !strcmp(sub, "events") && get)
		snapshot = vm_events_json(vm, VM_EVENTS_KEPT);
	if (!vm)
		return send_error(q->conn, 404, "no VM with id or name '%s'", key);
	if (snapshot)
		return send_json(q->conn, 200, snapshot);
	if (!*sub) {
		if (!del)
			return send_error(q->conn, 405, "%s %s: use GET or DELETE", method, url);
		pthread_mutex_lock(&d->lock);
		bool removing = vm->state == VM_REMOVING;
		vm->want_running = false;
		pthread_mutex_unlock(&d->lock);
		if (removing)
			return send_error(q->conn, 409, "VM '%s' is being removed", vm->name);
		ev_timer_stop(d->loop, &vm->restart_timer);
		struct job *j = job_new(JOB_REMOVE, vm);
		j->done = remove_done;
		j->ctx = q;
		q->suspended = true;
		MHD_suspend_connection(q->conn);
		jobs_submit(d, j);
		return MHD_YES;
	}
	if (!strcmp(sub, "logs"))
		return get ? vm_logs(a, q, vm) : send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(sub, "events"))
		return send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(sub, "start") || !strcmp(sub, "stop") || !strcmp(sub, "restart") ||
	    !strcmp(sub, "kill"))
		return post ? vm_action(a, q, vm, sub)
			    : send_error(q->conn, 405, "%s %s: use POST", method, url);
	return send_error(q->conn, 404, "no such endpoint: %s", url);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *version, const char *upload_data,
			       size_t *upload_data_size, void **con_cls)
{
	struct api *a = cls;
	struct req *q = *con_cls;
	if (!q) {
		q = xzalloc(sizeof(*q));
		q->api = a;
		q->conn = conn;
		*con_cls = q;
		/* Refuse early, before reading a body we will not use. */
		const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
		if (!api_token_ok(a->d, auth))
			return send_error(conn, 401,
					  "missing or wrong bearer token (Authorization: Bearer <token>)");
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > API_MAX_BODY)
			return send_error(conn, 413, "body: larger than %d bytes", API_MAX_BODY);
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!q->too_large && q->len + *upload_data_size <= API_MAX_BODY) {
			q->body = realloc(q->body, q->len + *upload_data_size + 1);
			memcpy(q->body + q->len, upload_data, *upload_data_size);
			q->len += *upload_data_size;
			q->body[q->len] = 0;
		} else {
			q->too_large = true;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->ready) {
		json_object *o = q->answer;
		q->answer = NULL;
		q->ready = false;
		return send_json(conn, q->status, o);
	}
	if (q->suspended)
		return MHD_YES;
	if (q->too_large)
		return send_error(conn, 413, "body: larger than %d bytes", API_MAX_BODY);
	return route(a, q, url, method);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct api *a = cls;
	struct req *q = *con_cls;
	if (!q)
		return;
	/* A stream that ends while parked must leave the follower list. */
	for (struct req **pp = &a->followers; *pp; pp = &(*pp)->next_follower)
		if (*pp == q) {
			*pp = q->next_follower;
			break;
		}
	json_object_put(q->answer);
	free(q->body);
	free(q->head);
	free(q);
	*con_cls = NULL;
}

/* ---- libev glue ---- */

static void mhd_run(struct api *a)
{
	MHD_run(a->mhd);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	mhd_run(w->data);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	mhd_run(w->data);
}

static void kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	ev_idle_stop(loop, w);
	mhd_run(w->data);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct api *a = w->data;
	MHD_UNSIGNED_LONG_LONG to;
	ev_timer_stop(loop, &a->timer);
	if (MHD_get_timeout(a->mhd, &to) == MHD_YES) {
		ev_timer_set(&a->timer, (double)to / 1000.0, 0.);
		ev_timer_start(loop, &a->timer);
	}
	/* Parked log streams are polled only while there are any. */
	if (a->followers && !ev_is_active(&a->follow_timer)) {
		ev_timer_set(&a->follow_timer, FOLLOW_POLL, 0.);
		ev_timer_start(loop, &a->follow_timer);
	}
}

static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "address: socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	char dir[sizeof(sa.sun_path)];
	str_copy(dir, sizeof(dir), path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir_p(dir, 0755);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A live daemon answers on the socket; a stale file from a crash does not. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
		close(fd);
		snprintf(err, errlen, "address: %s: another cvmmd is listening there", path);
		return -EADDRINUSE;
	}
	close(fd);
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0117);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, 0660) < 0 || listen(fd, 128) < 0) {
		int e = errno;
		snprintf(err, errlen, "address: cannot listen on %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

static int listen_tcp(const char *spec, char *err, size_t errlen)
{
	char host[256];
	str_copy(host, sizeof(host), spec);
	char *colon = strrchr(host, ':');
	if (!colon) {
		snprintf(err, errlen, "address: tcp:%s: expected tcp:HOST:PORT", spec);
		return -EINVAL;
	}
	*colon = 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE},
			*res;
	char *h = host;
	if (h[0] == '[') {
		h++;
		h[strlen(h) - 1] = 0;
	}
	if (getaddrinfo(h, colon + 1, &hints, &res) != 0) {
		snprintf(err, errlen, "address: tcp:%s: not a numeric address and port", spec);
		return -EINVAL;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int r = fd < 0 ? -1 : bind(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (r < 0 || listen(fd, 128) < 0) {
		int e = errno;
		snprintf(err, errlen, "address: cannot listen on tcp:%s: %s", spec, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

int api_open(struct cvmm_daemon *d, char *err, size_t errlen)
{
	struct api *a = xzalloc(sizeof(*a));
	a->d = d;
	const char *addr = d->cfg->address;
	if (!strncmp(addr, "unix:", 5)) {
		a->listen_fd = listen_unix(addr + 5, err, errlen);
		str_copy(a->sock_path, sizeof(a->sock_path), addr + 5);
	} else if (!strncmp(addr, "tcp:", 4)) {
		a->listen_fd = listen_tcp(addr + 4, err, errlen);
	} else {
		snprintf(err, errlen, "address: %s: expected unix:PATH or tcp:HOST:PORT", addr);
		a->listen_fd = -EINVAL;
	}
	if (a->listen_fd < 0) {
		int r = a->listen_fd;
		free(a);
		return r;
	}
	a->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, handler, a,
				  MHD_OPTION_LISTEN_SOCKET, a->listen_fd, MHD_OPTION_NOTIFY_COMPLETED,
				  completed, a, MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
	if (!a->mhd) {
		snprintf(err, errlen, "cannot start the HTTP server on %s", addr);
		close(a->listen_fd);
		free(a);
		return -EIO;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	ev_io_init(&a->io, io_cb, info->epoll_fd, EV_READ);
	a->io.data = a;
	ev_io_start(d->loop, &a->io);
	ev_init(&a->timer, timer_cb);
	a->timer.data = a;
	ev_init(&a->follow_timer, follow_timer_cb);
	a->follow_timer.data = a;
	ev_idle_init(&a->kick, kick_cb);
	a->kick.data = a;
	ev_prepare_init(&a->prepare, prepare_cb);
	a->prepare.data = a;
	ev_prepare_start(d->loop, &a->prepare);
	d->api = a;
	log_info("API listening on %s", addr);
	return 0;
}

void api_close(struct cvmm_daemon *d)
{
	struct api *a = d->api;
	if (!a)
		return;
	ev_io_stop(d->loop, &a->io);
	ev_timer_stop(d->loop, &a->timer);
	ev_timer_stop(d->loop, &a->follow_timer);
	ev_idle_stop(d->loop, &a->kick);
	ev_prepare_stop(d->loop, &a->prepare);
	/* Parked streams must be resumed before MHD can close them. */
	for (struct req *q = a->followers; q; q = q->next_follower)
		MHD_resume_connection(q->conn);
	a->followers = NULL;
	MHD_stop_daemon(a->mhd);
	close(a->listen_fd);
	if (a->sock_path[0])
		unlink(a->sock_path);
	free(a);
	d->api = NULL;
}
