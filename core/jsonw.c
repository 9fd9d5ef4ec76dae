/* jsonw: see jsonw.h. Strings are escaped per RFC 8259; bytes >= 0x80 pass
 * through (the daemon's strings are UTF-8 or ASCII). */
#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
	w->first = 1;
}

void jw_free(struct jw *w)
{
	free(w->buf);
	jw_init(w);
}

char *jw_take(struct jw *w, size_t *len)
{
	char *b = w->buf ? w->buf : calloc(1, 1);
	if (len)
		*len = w->len;
	jw_init(w);
	return b;
}

static void need(struct jw *w, size_t n)
{
	if (w->len + n + 1 <= w->cap)
		return;
	size_t cap = w->cap ? w->cap * 2 : 4096;
	while (cap < w->len + n + 1)
		cap *= 2;
	w->buf = realloc(w->buf, cap);
	if (!w->buf)
		abort();
	w->cap = cap;
}

static void put(struct jw *w, const char *s, size_t n)
{
	need(w, n);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = 0;
}

/* A comma before every value but the first of its container; none after a key. */
static void sep(struct jw *w)
{
	uint64_t bit = 1ull << w->depth;
	if (w->first & bit)
		w->first &= ~bit;
	else
		put(w, ",", 1);
}

static void open_(struct jw *w, char c)
{
	sep(w);
	put(w, &c, 1);
	w->depth++;
	w->first |= 1ull << w->depth;
}

static void close_(struct jw *w, char c)
{
	w->first &= ~(1ull << w->depth);
	w->depth--;
	put(w, &c, 1);
}

void jw_obj(struct jw *w)
{
	open_(w, '{');
}
void jw_arr(struct jw *w)
{
	open_(w, '[');
}
void jw_end_obj(struct jw *w)
{
	close_(w, '}');
}
void jw_end_arr(struct jw *w)
{
	close_(w, ']');
}

static void quoted(struct jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	put(w, "\"", 1);
	const char *run = s;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *esc = NULL;
		char u[7];
		if (*p == '"')
			esc = "\\\"";
		else if (*p == '\\')
			esc = "\\\\";
		else if (*p == '\n')
			esc = "\\n";
		else if (*p == '\t')
			esc = "\\t";
		else if (*p == '\r')
			esc = "\\r";
		else if (*p < 0x20) {
			u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0', u[4] = hex[*p >> 4],
			u[5] = hex[*p & 15], u[6] = 0;
			esc = u;
		}
		if (!esc)
			continue;
		put(w, run, (size_t)((const char *)p - run));
		put(w, esc, strlen(esc));
		run = (const char *)p + 1;
	}
	put(w, run, strlen(run));
	put(w, "\"", 1);
}

void jw_key(struct jw *w, const char *k)
{
	sep(w);
	quoted(w, k);
	put(w, ":", 1);
	/* The value that follows takes no comma. */
	w->first |= 1ull << w->depth;
}

void jw_str(struct jw *w, const char *s)
{
	sep(w);
	quoted(w, s ? s : "");
}

void jw_int(struct jw *w, int64_t v)
{
	char b[24];
	sep(w);
	put(w, b, (size_t)snprintf(b, sizeof(b), "%lld", (long long)v));
}

void jw_double(struct jw *w, double v)
{
	char b[40];
	sep(w);
	/* JSON has no inf or NaN: one (a manifest's "created": 1e999 read
	 * back) would make the whole document unreadable, the manifest on the
	 * next start included. */
	if (!isfinite(v))
		v = 0;
	int n = snprintf(b, sizeof(b), "%.17g", v);
	/* Keep it a JSON number that reads back as a double. */
	if (!strpbrk(b, ".eEn"))
		n += snprintf(b + n, sizeof(b) - (size_t)n, ".0");
	put(w, b, (size_t)n);
}

void jw_bool(struct jw *w, int v)
{
	sep(w);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_raw(struct jw *w, const char *json, size_t len)
{
	sep(w);
	put(w, json, len);
}

void jw_kstr(struct jw *w, const char *k, const char *s)
{
	jw_key(w, k);
	jw_str(w, s);
}
void jw_kint(struct jw *w, const char *k, int64_t v)
{
	jw_key(w, k);
	jw_int(w, v);
}
void jw_kdouble(struct jw *w, const char *k, double v)
{
	jw_key(w, k);
	jw_double(w, v);
}
void jw_kbool(struct jw *w, const char *k, int v)
{
	jw_key(w, k);
	jw_bool(w, v);
}
