/*
 * jsonw: writes JSON text straight into one growing buffer. The API's VM
 * list is a thousand objects: built as json-c trees it cost ~18 us and
 * dozens of small allocations per VM (and left the heap fragmented); text
 * written once costs a fraction and one buffer.
 */
#ifndef CVMM_JSONW_H
#define CVMM_JSONW_H

#include <stddef.h>
#include <stdint.h>

struct jw {
	char *buf;
	size_t len, cap;
	uint64_t first; /* bit n: nothing written yet at nesting depth n */
	int depth;
};

void jw_init(struct jw *w);
char *jw_take(struct jw *w, size_t *len); /* the text (malloc'd); w is reset */
void jw_free(struct jw *w);

void jw_obj(struct jw *w);          /* { */
void jw_arr(struct jw *w);          /* [ */
void jw_end_obj(struct jw *w);      /* } */
void jw_end_arr(struct jw *w);      /* ] */
void jw_key(struct jw *w, const char *k);
void jw_str(struct jw *w, const char *s); /* NULL writes "" */
void jw_int(struct jw *w, int64_t v);
void jw_double(struct jw *w, double v);
void jw_bool(struct jw *w, int v);
void jw_raw(struct jw *w, const char *json, size_t len); /* a complete value */

/* key + value shorthands */
void jw_kstr(struct jw *w, const char *k, const char *s);
void jw_kint(struct jw *w, const char *k, int64_t v);
void jw_kdouble(struct jw *w, const char *k, double v);
void jw_kbool(struct jw *w, const char *k, int v);

#endif
