/*
 * jscan: see jscan.h. Recursive descent with a depth limit; \u escapes are
 * decoded to UTF-8 (surrogate pairs joined), and a number's text is
 * NUL-terminated by moving it one byte back over its opening delimiter's
 * slack, which a number always has (it follows ':' , '[' or ',').
 */
#include "jscan.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct scan {
	char *p, *end;
	struct jtok *t;
	int n, cap, hint;
};

static void ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static int add(struct scan *s, int type)
{
	if (s->n == s->cap) {
		int cap = s->cap ? s->cap * 2 : s->hint;
		struct jtok *t = realloc(s->t, (size_t)cap * sizeof(*t));

		if (!t)
			return -1;
		s->t = t;
		s->cap = cap;
	}
	memset(&s->t[s->n], 0, sizeof(s->t[0]));
	s->t[s->n].type = type;
	return s->n++;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static char *utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* At the opening quote; decodes in place (the text only shrinks). */
static int string(struct scan *s)
{
	char *o = ++s->p, *start = o;
	int i = add(s, J_STR);

	if (i < 0)
		return -1;
	while (s->p < s->end && *s->p != '"') {
		unsigned cp, lo;
		char c = *s->p++;

		if ((unsigned char)c < 0x20)
			return -1;
		if (c != '\\') {
			*o++ = c;
			continue;
		}
		if (s->p >= s->end)
			return -1;
		c = *s->p++;
		switch (c) {
		case '"': case '\\': case '/': *o++ = c; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (s->end - s->p < 4 || hex4(s->p, &cp) < 0)
				return -1;
			s->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
				    hex4(s->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					return -1;
				s->p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				return -1;
			}
			if (cp == 0)
				return -1; /* a NUL would cut the string short */
			o = utf8(o, cp);
			break;
		default:
			return -1;
		}
	}
	if (s->p >= s->end)
		return -1;
	s->p++; /* the closing quote */
	*o = '\0';
	s->t[i].s = start;
	s->t[i].next = s->n;
	return 0;
}

static int value(struct scan *s, int depth);

static int container(struct scan *s, int depth, int obj)
{
	int i = add(s, obj ? J_OBJ : J_ARR);

	if (i < 0 || depth > MAX_DEPTH)
		return -1;
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == (obj ? '}' : ']')) {
		s->p++;
		s->t[i].next = s->n;
		return 0;
	}
	for (;;) {
		ws(s);
		if (obj) {
			if (s->p >= s->end || *s->p != '"' || string(s) < 0)
				return -1;
			ws(s);
			if (s->p >= s->end || *s->p++ != ':')
				return -1;
		}
		if (value(s, depth + 1) < 0 || s->t[i].count == 0xffffff)
			return -1;
		s->t[i].count++;
		ws(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (*s->p++ != (obj ? '}' : ']'))
			return -1;
		s->t[i].next = s->n;
		return 0;
	}
}

static int literal(struct scan *s, const char *word, int type)
{
	size_t n = strlen(word);
	int i;

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
		return -1;
	if ((i = add(s, type)) < 0)
		return -1;
	s->t[i].s = (char *)word;
	s->t[i].next = s->n;
	s->p += n;
	return 0;
}

static int number(struct scan *s)
{
	char *start = s->p;
	int i;

	if (s->p < s->end && *s->p == '-')
		s->p++;
	while (s->p < s->end && ((*s->p >= '0' && *s->p <= '9') || *s->p == '.' || *s->p == 'e' ||
	                         *s->p == 'E' || *s->p == '+' || *s->p == '-'))
		s->p++;
	if (s->p == start || (i = add(s, J_NUM)) < 0)
		return -1;
	/* NUL-terminated one byte back: the byte before a number is its
	 * delimiter (':', '[', ',' or blank), consumed already. */
	memmove(start - 1, start, (size_t)(s->p - start));
	s->p[-1] = '\0';
	s->t[i].s = start - 1;
	s->t[i].next = s->n;
	return 0;
}

static int value(struct scan *s, int depth)
{
	ws(s);
	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '{': return container(s, depth, 1);
	case '[': return container(s, depth, 0);
	case '"': return string(s);
	case 't': return literal(s, "true", J_BOOL);
	case 'f': return literal(s, "false", J_BOOL);
	case 'n': return literal(s, "null", J_NULL);
	default: return number(s);
	}
}

int jscan(char *text, size_t len, struct jtok **out)
{
	/* A list of VMs has a token per 5 to 6 bytes: one allocation. */
	struct scan s = {.p = text, .end = text + len, .hint = len / 5 > 1024 ? (int)(len / 5) : 1024};

	*out = NULL;
	ws(&s);
	/* A top-level number would have no byte before it to spare. */
	if (s.p >= s.end || (*s.p != '{' && *s.p != '[') || value(&s, 0) < 0)
		goto fail;
	ws(&s);
	if (s.p != s.end)
		goto fail;
	*out = s.t;
	return s.n;

fail:
	free(s.t);
	return -1;
}

int jscan_get(const struct jtok *t, int obj, const char *key)
{
	int i = obj + 1;

	if (obj < 0 || t[obj].type != J_OBJ)
		return -1;
	for (int k = 0; k < t[obj].count; k++) {
		int v = t[i].next;

		if (!strcmp(t[i].s, key))
			return v;
		i = t[v].next;
	}
	return -1;
}
