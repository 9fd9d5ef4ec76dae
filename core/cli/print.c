/*
 * print: turns the daemon's JSON into what a person reads. The VM is the one
 * shape the CLI knows field by field (README "A VM object"); host, plugins
 * and images are rendered generically so that fields the daemon adds later
 * show up without a CLI change. Cells are measured in bytes, which aligns
 * ASCII names and is merely untidy otherwise.
 */
#include "print.h"
#include "jscan.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small helpers -------------------------------------------------------- */

static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_is_type(v, json_type_null) ? NULL : v;
}

static const char *field_str(json_object *o, const char *key)
{
	json_object *v = field(o, key);

	return v ? json_object_get_string(v) : NULL;
}

static int is_scalar(json_object *v)
{
	return !json_object_is_type(v, json_type_object) &&
	       !json_object_is_type(v, json_type_array);
}

/* A value as one line of text: scalars as themselves (doubles keep the text
 * the daemon sent), arrays of scalars joined by ", ", the rest as compact
 * JSON. Never NULL unless out of memory. */
static char *format_value(json_object *v)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f;

	if (!v)
		return strdup("-");
	if (is_scalar(v))
		return strdup(json_object_get_string(v));
	f = open_memstream(&s, &len);
	if (!f)
		return NULL;
	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		int plain = 1;

		for (size_t i = 0; i < n; i++)
			plain &= is_scalar(json_object_array_get_idx(v, i));
		for (size_t i = 0; plain && i < n; i++)
			fprintf(f, "%s%s", i ? ", " : "",
			        json_object_get_string(json_object_array_get_idx(v, i)));
		if (!plain)
			fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE), f);
	} else {
		fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE), f);
	}
	fclose(f);
	return s;
}

static char *format_time(json_object *v)
{
	time_t t = v ? (time_t)json_object_get_double(v) : 0;
	char buf[64];
	struct tm tm;

	if (t <= 0 || !localtime_r(&t, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm))
		return strdup("-");
	return strdup(buf);
}

/* "127.0.0.1:18080->8080/tcp", "18080->8080/udp", "[::1]:80->80/tcp" */
static void fput_port(FILE *f, json_object *p)
{
	const char *addr = field_str(p, "host_address");
	const char *proto = field_str(p, "protocol");

	if (addr && *addr)
		fprintf(f, strchr(addr, ':') ? "[%s]:" : "%s:", addr);
	fprintf(f, "%s->%s/%s", field_str(p, "host_port") ?: "?", field_str(p, "vm_port") ?: "?",
	        proto ?: "tcp");
}

/* Called once per row of `cvmm list`: most VMs map no port, and a memstream
 * per row (a zeroed buffer each) was a sixth of listing 1000 VMs. */
static char *format_ports(json_object *ports)
{
	size_t n =
	    json_object_is_type(ports, json_type_array) ? json_object_array_length(ports) : 0;
	char *s = NULL;
	size_t len = 0;
	FILE *f;

	if (n == 0)
		return strdup("");
	if (!(f = open_memstream(&s, &len)))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ", " : "", f);
		fput_port(f, json_object_array_get_idx(ports, i));
	}
	fclose(f);
	return s;
}

/* Networks in the syntax --net takes: "user bridge,bridge=br0". */
static char *format_networks(json_object *nets)
{
	size_t n = json_object_is_type(nets, json_type_array) ? json_object_array_length(nets) : 0;
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		json_object *net = json_object_array_get_idx(nets, i);

		fprintf(f, "%s%s", i ? " " : "", field_str(net, "mode") ?: "?");
		if (!json_object_is_type(net, json_type_object))
			continue;
		json_object_object_foreach(net, key, val)
		{
			char *v;

			if (!strcmp(key, "mode"))
				continue;
			v = format_value(val);
			fprintf(f, ",%s=%s", key, v ? v : "");
			free(v);
		}
	}
	fclose(f);
	return s;
}

/* ---- tables --------------------------------------------------------------- */

struct table {
	size_t ncols, ncells, cap;
	char **cells;   /* row-major; a NULL cell is shown as "-" */
	bool *borrowed; /* cells[i] belongs to the reply, not to the table */
};

static void table_put(struct table *t, char *cell, bool borrowed)
{
	if (t->ncells == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		char **p = realloc(t->cells, cap * sizeof(*p));
		bool *b = p ? realloc(t->borrowed, cap * sizeof(*b)) : NULL;

		if (p)
			t->cells = p;
		if (!p || !b) {
			/* Out of memory while printing: drop the cell; the
			 * table comes out ragged but the command still ends. */
			if (!borrowed)
				free(cell);
			return;
		}
		t->borrowed = b;
		t->cap = cap;
	}
	t->borrowed[t->ncells] = borrowed;
	t->cells[t->ncells++] = cell;
}

/* Takes ownership of cell, which may be NULL. */
static void table_add(struct table *t, char *cell)
{
	table_put(t, cell, false);
}

static void table_add_copy(struct table *t, const char *cell)
{
	table_put(t, cell ? strdup(cell) : NULL, false);
}

/* cell (may be NULL) outlives the table: the reply it points into is put
 * after printing. 7000 cells of a 1000-VM list are not copied. */
static void table_add_ref(struct table *t, const char *cell)
{
	table_put(t, (char *)cell, true);
}

/* Columns are two spaces apart; padding is only written before text, so no
 * line ends in blanks when its last cells are empty. */
static void table_print(const struct table *t)
{
	size_t *width = calloc(t->ncols, sizeof(*width)), pad = 0;

	if (!width)
		return;
	for (size_t i = 0; i < t->ncells; i++) {
		size_t w = strlen(t->cells[i] ? t->cells[i] : "-");

		if (w > width[i % t->ncols])
			width[i % t->ncols] = w;
	}
	for (size_t i = 0; i < t->ncells; i++) {
		size_t col = i % t->ncols;
		const char *cell = t->cells[i] ? t->cells[i] : "-";

		size_t len = strlen(cell);

		pad += col ? 2 : 0;
		if (len) {
			/* fwrite, not printf("%*s%s"): a list of 1000 VMs has
			 * 7000 cells, and the format parser was a sixth of it. */
			while (pad) {
				static const char spaces[] = "                                ";
				size_t k = pad < sizeof(spaces) - 1 ? pad : sizeof(spaces) - 1;

				fwrite(spaces, 1, k, stdout);
				pad -= k;
			}
			fwrite(cell, 1, len, stdout);
		}
		pad += width[col] - len;
		if (col == t->ncols - 1 || i == t->ncells - 1) {
			putchar('\n');
			pad = 0;
		}
	}
	free(width);
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->ncells; i++)
		if (!t->borrowed[i])
			free(t->cells[i]);
	free(t->cells);
	free(t->borrowed);
}

/* ---- public renderings ------------------------------------------------------ */

void print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                           JSON_C_TO_STRING_NOSLASHESCAPE));
}

void print_vm_table(json_object *vms)
{
	static const char *const head[] = {"NAME",    "ID",      "STATE", "VCPU",
	                                   "MEM(MB)", "BACKEND", "PORTS"};
	struct table t = {.ncols = sizeof(head) / sizeof(head[0])};
	size_t n = json_object_is_type(vms, json_type_array) ? json_object_array_length(vms) : 0;

	for (size_t i = 0; i < t.ncols; i++)
		table_add_copy(&t, head[i]);
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *id = field_str(vm, "id");

		table_add_ref(&t, field_str(vm, "name"));
		table_add(&t, id ? strndup(id, 8) : NULL);
		table_add_ref(&t, field_str(vm, "state"));
		table_add_ref(&t, field_str(vm, "vcpu"));
		table_add_ref(&t, field_str(vm, "memory_mb"));
		table_add_ref(&t, field_str(vm, "backend"));
		table_add(&t, format_ports(field(vm, "ports")));
	}
	table_print(&t);
	table_free(&t);
}

static void kv_add(struct table *t, const char *label, char *value)
{
	char *l = NULL;

	if (asprintf(&l, "%s:", label) < 0)
		l = NULL;
	table_add(t, l);
	table_add(t, value);
}

static char *with_unit(json_object *v, const char *unit)
{
	char *s = NULL;

	if (!v || asprintf(&s, "%s %s", json_object_get_string(v), unit) < 0)
		return NULL;
	return s;
}

void print_vm_info(json_object *vm)
{
	/* The fields shown with a label of their own; anything else the
	 * daemon sends follows under its JSON name. */
	static const char *const known[] = {
	    "name",     "id",       "state",     "reason",  "desired", "image",
	    "backend",  "vcpu",     "memory_mb", "disk_gb", "cid",     "pid",
	    "restarts", "networks", "ports",     "created", "started", "guest",   "job",
	    NULL};
	struct table t = {.ncols = 2};
	const char *reason = field_str(vm, "reason");
	char *state = NULL;

	if (reason && *reason) {
		if (asprintf(&state, "%s (%s)", field_str(vm, "state") ?: "-", reason) < 0)
			state = NULL;
	} else {
		state = format_value(field(vm, "state"));
	}
	kv_add(&t, "Name", format_value(field(vm, "name")));
	kv_add(&t, "ID", format_value(field(vm, "id")));
	kv_add(&t, "State", state);
	kv_add(&t, "Desired", format_value(field(vm, "desired")));
	kv_add(&t, "Image", format_value(field(vm, "image")));
	kv_add(&t, "Backend", format_value(field(vm, "backend")));
	kv_add(&t, "vCPUs", format_value(field(vm, "vcpu")));
	kv_add(&t, "Memory", with_unit(field(vm, "memory_mb"), "MB"));
	kv_add(&t, "Disk", with_unit(field(vm, "disk_gb"), "GB"));
	kv_add(&t, "CID", format_value(field(vm, "cid")));
	kv_add(&t, "PID", format_value(field(vm, "pid")));
	kv_add(&t, "Restarts", format_value(field(vm, "restarts")));
	kv_add(&t, "Networks", format_networks(field(vm, "networks")));
	kv_add(&t, "Ports", format_ports(field(vm, "ports")));
	kv_add(&t, "Created", format_time(field(vm, "created")));
	kv_add(&t, "Started", format_time(field(vm, "started")));
	json_object *job = field(vm, "job");
	if (job && json_object_is_type(job, json_type_object)) {
		char *line = NULL;
		const char *op = field_str(job, "op");
		json_object *w = field(job, "waiting");
		if (asprintf(&line, "%s, %lld waiting", op ?: "none running",
			     w ? (long long)json_object_get_int64(w) : 0LL) < 0)
			line = NULL;
		kv_add(&t, "Job", line);
	} else if (job) {
		kv_add(&t, "Job", strdup("none"));
	}
	json_object *g = field(vm, "guest");
	if (g) {
		char *line = NULL;
		json_object *hb = field(g, "heartbeats");
		const char *bp = field_str(g, "boot_progress");
		if (asprintf(&line, "agent %s, %lld heartbeats, channel %s%s%s", field_str(g, "agent") ?: "-",
			     hb ? (long long)json_object_get_int64(hb) : 0LL,
			     json_object_get_boolean(field(g, "channel")) ? "connected" : "closed",
			     bp ? ", boot: " : "", bp ?: "") < 0)
			line = NULL;
		kv_add(&t, "Guest", line);
	}
	if (json_object_is_type(vm, json_type_object)) {
		json_object_object_foreach(vm, key, val)
		{
			size_t i = 0;

			while (known[i] && strcmp(known[i], key))
				i++;
			if (!known[i])
				kv_add(&t, key, format_value(val));
		}
	}
	table_print(&t);
	table_free(&t);
}

static void print_object_at(json_object *o, int indent)
{
	int width = 0;

	json_object_object_foreach(o, k, v)
	{
		(void)v;
		if ((int)strlen(k) > width)
			width = (int)strlen(k);
	}
	json_object_object_foreach(o, key, val)
	{
		size_t n =
		    json_object_is_type(val, json_type_array) ? json_object_array_length(val) : 0;
		int objects = n > 0 && json_object_is_type(json_object_array_get_idx(val, 0),
		                                           json_type_object);
		char *s;

		if (json_object_is_type(val, json_type_object) && json_object_object_length(val)) {
			printf("%*s%s:\n", indent, "", key);
			print_object_at(val, indent + 2);
		} else if (objects) {
			printf("%*s%s:\n", indent, "", key);
			for (size_t i = 0; i < n; i++) {
				s = format_value(json_object_array_get_idx(val, i));
				printf("%*s- %s\n", indent + 2, "", s ? s : "");
				free(s);
			}
		} else {
			s = format_value(val);
			printf("%*s%s:%*s %s\n", indent, "", key, width - (int)strlen(key), "",
			       s ? s : "");
			free(s);
		}
	}
}

void print_object(json_object *o)
{
	if (json_object_is_type(o, json_type_object))
		print_object_at(o, 0);
	else if (o)
		print_json(o);
}

static char *upper(const char *s)
{
	char *u = strdup(s);

	for (char *p = u; p && *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return u;
}

void print_listing(json_object *reply)
{
	json_object *items = json_object_is_type(reply, json_type_array) ? reply : NULL;
	const char *what = "items";
	const char **cols = NULL;
	struct table t = {0};
	size_t n;

	if (json_object_is_type(reply, json_type_object) && json_object_object_length(reply) == 1) {
		json_object_object_foreach(reply, key, val)
		{
			if (json_object_is_type(val, json_type_array)) {
				items = val;
				what = key;
			}
		}
	}
	n = items ? json_object_array_length(items) : 0;
	for (size_t i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(items, i), json_type_object))
			items = NULL;
	if (!items) {
		print_object(reply);
		return;
	}
	if (n == 0) {
		printf("no %s\n", what);
		return;
	}

	/* Columns: every key in the order first seen, "name" moved first. */
	for (size_t i = 0; i < n; i++) {
		json_object_object_foreach(json_object_array_get_idx(items, i), key, val)
		{
			size_t c = 0;
			const char **p;

			(void)val;
			while (c < t.ncols && strcmp(cols[c], key))
				c++;
			if (c < t.ncols || !(p = realloc(cols, (t.ncols + 1) * sizeof(*p))))
				continue;
			cols = p;
			if (!strcmp(key, "name")) {
				memmove(cols + 1, cols, t.ncols * sizeof(*cols));
				cols[0] = key;
			} else {
				cols[t.ncols] = key;
			}
			t.ncols++;
		}
	}
	if (t.ncols == 0) {
		printf("no %s\n", what);
		free(cols);
		return;
	}
	for (size_t c = 0; c < t.ncols; c++)
		table_add(&t, upper(cols[c]));
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < t.ncols; c++)
			table_add(
			    &t, format_value(field(json_object_array_get_idx(items, i), cols[c])));
	table_print(&t);
	table_free(&t);
	free(cols);
}

/* ---- the list, from jscan's tokens ------------------------------------------- */

static const char *tok_text(const struct jtok *t, int i)
{
	return i < 0 || t[i].type == J_NULL || t[i].type == J_ARR || t[i].type == J_OBJ ? NULL
	                                                                                  : t[i].s;
}

/* As format_ports(), from tokens. */
static char *tok_ports(const struct jtok *t, int ports)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f;
	int p;

	if (ports < 0 || t[ports].type != J_ARR || t[ports].count == 0)
		return strdup("");
	if (!(f = open_memstream(&s, &len)))
		return NULL;
	p = ports + 1;
	for (int k = 0; k < t[ports].count; k++, p = t[p].next) {
		const char *addr = tok_text(t, jscan_get(t, p, "host_address"));
		const char *proto = tok_text(t, jscan_get(t, p, "protocol"));

		fputs(k ? ", " : "", f);
		if (addr && *addr)
			fprintf(f, strchr(addr, ':') ? "[%s]:" : "%s:", addr);
		fprintf(f, "%s->%s/%s", tok_text(t, jscan_get(t, p, "host_port")) ?: "?",
		        tok_text(t, jscan_get(t, p, "vm_port")) ?: "?", proto ?: "tcp");
	}
	fclose(f);
	return s;
}

int print_vm_table_text(char *body, size_t len)
{
	static const char *const head[] = {"NAME",    "ID",      "STATE", "VCPU",
	                                   "MEM(MB)", "BACKEND", "PORTS"};
	struct table t = {.ncols = sizeof(head) / sizeof(head[0])};
	struct jtok *tok = NULL;
	int vms, v;

	if (jscan(body, len, &tok) < 0 || (vms = jscan_get(tok, 0, "vms")) < 0 ||
	    tok[vms].type != J_ARR) {
		free(tok);
		return -1;
	}
	for (size_t i = 0; i < t.ncols; i++)
		table_add_ref(&t, head[i]);
	v = vms + 1;
	for (int k = 0; k < tok[vms].count; k++, v = tok[v].next) {
		const char *id = tok_text(tok, jscan_get(tok, v, "id"));

		table_add_ref(&t, tok_text(tok, jscan_get(tok, v, "name")));
		table_add(&t, id ? strndup(id, 8) : NULL);
		table_add_ref(&t, tok_text(tok, jscan_get(tok, v, "state")));
		table_add_ref(&t, tok_text(tok, jscan_get(tok, v, "vcpu")));
		table_add_ref(&t, tok_text(tok, jscan_get(tok, v, "memory_mb")));
		table_add_ref(&t, tok_text(tok, jscan_get(tok, v, "backend")));
		table_add(&t, tok_ports(tok, jscan_get(tok, v, "ports")));
	}
	table_print(&t);
	table_free(&t);
	free(tok);
	return 0;
}
