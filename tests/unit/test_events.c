/*
 * Unit tests of core/events.c: the event ring and its subscribers. What a
 * client of GET /v1/events sees: events in order with increasing ids, the
 * exact SSE text, resuming after an id, a "lost" event when the ring no
 * longer has what it asked for (or the id is of another daemon run), the
 * filters, keep-alives, a reader woken by a publish, and a publisher that a
 * reader that never reads cannot hold up.
 */
#include "events.h"
#include "util.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF 65536

/* Everything a subscriber has now (no wait), as one string. */
static char *drain(struct events_sub *s)
{
	char *out = xzalloc(BUF * 4), buf[BUF];
	size_t len = 0, n;
	while ((n = events_sub_read(s, buf, sizeof(buf), 0)) > 0) {
		CU_ASSERT_FATAL(len + n < BUF * 4);
		memcpy(out + len, buf, n);
		len += n;
	}
	return out;
}

/* The data of each event in text, parsed: a JSON array. */
static json_object *events_of(const char *text)
{
	json_object *a = json_object_new_array();
	for (const char *p = text; (p = strstr(p, "data: ")); p++) {
		const char *end = strchr(p, '\n');
		char *line = strndup(p + 6, (size_t)(end - p - 6));
		json_object *o = json_tokener_parse(line);
		CU_ASSERT_PTR_NOT_NULL(o);
		json_object_array_add(a, o);
		free(line);
	}
	return a;
}

static const char *str_at(json_object *a, size_t i, const char *key)
{
	json_object *v;
	json_object *o = json_object_array_get_idx(a, i);
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int64_t int_at(json_object *a, size_t i, const char *key)
{
	json_object *v;
	json_object *o = json_object_array_get_idx(a, i);
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

static struct events_sub *sub(struct events *ev, const char *last, const char *vms,
                              const char *types)
{
	struct events_sub *s = NULL;
	char err[256];
	CU_ASSERT_EQUAL(events_sub_new(ev, last, vms, types, &s, err, sizeof(err)), 0);
	return s;
}

static void test_format(void)
{
	char buf[1024];
	size_t n =
	    events_format(buf, sizeof(buf), 7, 1.5, "1111", "web1", "state", "stopped -> starting");
	const char *want =
	    "id: 7\ndata: {\"id\":7,\"time\":1.500000,\"vm\":\"1111\",\"name\":\"web1\","
	    "\"type\":\"state\",\"message\":\"stopped -> starting\"}\n\n";
	CU_ASSERT_STRING_EQUAL(buf, want);
	CU_ASSERT_EQUAL(n, strlen(want));
	/* Quotes, a newline (which would end an SSE data line) and bytes that
	 * are not UTF-8 come out as one line of valid JSON. */
	n = events_format(buf, sizeof(buf), 8, 2, "x", "y", "exit",
	                  "said \"no\"\nthen \xff\xc3\xa9");
	CU_ASSERT(n > 0);
	CU_ASSERT_PTR_EQUAL(strchr(strstr(buf, "data: "), '\n'), buf + n - 2); /* one data line */
	json_object *a = events_of(buf);
	CU_ASSERT_STRING_EQUAL(str_at(a, 0, "message"), "said \"no\"\nthen ?\xc3\xa9");
	json_object_put(a);
	/* Too small: nothing, not half an event. */
	CU_ASSERT_EQUAL(events_format(buf, 40, 9, 3, "x", "y", "t", "m"), 0);
}

static void test_order_and_ids(void)
{
	struct events *ev = events_new(16, 100);
	struct events_sub *s = sub(ev, NULL, NULL, NULL);
	CU_ASSERT_EQUAL(events_last_id(ev), 0);
	CU_ASSERT_EQUAL(events_publish(ev, "id-a", "a", "created", "one"), 100);
	CU_ASSERT_EQUAL(events_publish(ev, "id-a", "a", "state", "two"), 101);
	CU_ASSERT_EQUAL(events_publish(ev, "id-b", "b", "state", "three"), 102);
	CU_ASSERT_EQUAL(events_last_id(ev), 102);
	CU_ASSERT_EQUAL(events_published(ev), 3);
	char *text = drain(s);
	/* The opening comment names where the stream starts. */
	CU_ASSERT_EQUAL(strncmp(text, ": cvmm events from id 100\n\n", 27), 0);
	json_object *a = events_of(text);
	CU_ASSERT_EQUAL(json_object_array_length(a), 3);
	for (size_t i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(int_at(a, i, "id"), (int64_t)(100 + i));
	CU_ASSERT_STRING_EQUAL(str_at(a, 0, "message"), "one");
	CU_ASSERT_STRING_EQUAL(str_at(a, 2, "name"), "b");
	CU_ASSERT_STRING_EQUAL(str_at(a, 2, "vm"), "id-b");
	CU_ASSERT(strstr(text, "id: 102\n") != NULL);
	json_object_put(a);
	free(text);
	/* Nothing new: nothing at all. */
	char buf[4096];
	CU_ASSERT_EQUAL(events_sub_read(s, buf, sizeof(buf), 0), 0);
	events_sub_free(s);
	events_free(ev);
}

static void test_resume(void)
{
	struct events *ev = events_new(16, 1);
	for (int i = 0; i < 5; i++)
		events_publish(ev, "i", "v", "state", "x");
	/* Saw 3: gets 4 and 5, nothing lost. */
	struct events_sub *s = sub(ev, "3", NULL, NULL);
	char *text = drain(s);
	json_object *a = events_of(text);
	CU_ASSERT_EQUAL(json_object_array_length(a), 2);
	CU_ASSERT_EQUAL(int_at(a, 0, "id"), 4);
	CU_ASSERT_EQUAL(int_at(a, 1, "id"), 5);
	json_object_put(a);
	free(text);
	events_sub_free(s);
	/* Saw everything: gets only what comes next. */
	s = sub(ev, "5", NULL, NULL);
	events_publish(ev, "i", "v", "state", "y");
	text = drain(s);
	a = events_of(text);
	CU_ASSERT_EQUAL(json_object_array_length(a), 1);
	CU_ASSERT_EQUAL(int_at(a, 0, "id"), 6);
	json_object_put(a);
	free(text);
	events_sub_free(s);
	events_free(ev);
}

static void test_lost_when_older_than_the_ring(void)
{
	struct events *ev = events_new(8, 1);
	for (int i = 0; i < 20; i++)
		events_publish(ev, "i", "v", "state", "x");
	/* The ring holds 13..20; the client saw 2, so 3..12 (10) are gone. */
	struct events_sub *s = sub(ev, "2", NULL, NULL);
	char *text = drain(s);
	json_object *a = events_of(text);
	CU_ASSERT_EQUAL(json_object_array_length(a), 9);
	CU_ASSERT_STRING_EQUAL(str_at(a, 0, "type"), "lost");
	CU_ASSERT_EQUAL(int_at(a, 0, "lost"), 10);
	CU_ASSERT(strstr(str_at(a, 0, "message"), "starts at id 13") != NULL);
	CU_ASSERT_EQUAL(int_at(a, 1, "id"), 13);
	CU_ASSERT_EQUAL(int_at(a, 8, "id"), 20);
	/* The lost event has no id: a client resuming after it resumes from
	 * the last event it really got. */
	CU_ASSERT_EQUAL(strncmp(strstr(text, "data: {\"type\":\"lost\"") - 2, "\n\n", 2), 0);
	json_object_put(a);
	free(text);
	events_sub_free(s);
	events_free(ev);
}

static void test_lost_across_runs(void)
{
	/* A client of an earlier run (smaller ids) and one whose id this run
	 * never gave (a later run's, or made up): both learn they lost events,
	 * how many unknown, then get the whole ring. */
	uint64_t first = events_first_id(2000000000.0);
	CU_ASSERT(first < (1ull << 53));
	/* A run that started 5 ms earlier and published 1000 events ends
	 * below this one's first id: a restart within one second too. */
	CU_ASSERT(events_first_id(2000000000.0 - 0.005) + 1000 < first);
	struct events *ev = events_new(8, first);
	events_publish(ev, "i", "v", "state", "a");
	events_publish(ev, "i", "v", "state", "b");
	const char *ids[] = {"5", "99999999999999999"};
	for (size_t k = 0; k < 2; k++) {
		struct events_sub *s = sub(ev, ids[k], NULL, NULL);
		char *text = drain(s);
		json_object *a = events_of(text);
		CU_ASSERT_EQUAL(json_object_array_length(a), 3);
		CU_ASSERT_STRING_EQUAL(str_at(a, 0, "type"), "lost");
		CU_ASSERT(strstr(str_at(a, 0, "message"), "not of this daemon run") != NULL);
		CU_ASSERT_EQUAL(int_at(a, 1, "id"), (int64_t)first);
		json_object_put(a);
		free(text);
		events_sub_free(s);
	}
	events_free(ev);
}

static void test_overtaken_reader(void)
{
	/* A reader that stops reading never holds the publisher up: the ring
	 * overwrites its slots, and it is told what it missed. */
	struct events *ev = events_new(8, 1);
	struct events_sub *s = sub(ev, NULL, NULL, NULL);
	char buf[4096];
	CU_ASSERT(events_sub_read(s, buf, sizeof(buf), 0) > 0); /* the opening comment */
	for (int i = 0; i < 100000; i++)
		events_publish(ev, "i", "v", "state", "x");
	char *text = drain(s);
	json_object *a = events_of(text);
	CU_ASSERT_EQUAL(json_object_array_length(a), 9);
	CU_ASSERT_STRING_EQUAL(str_at(a, 0, "type"), "lost");
	CU_ASSERT_EQUAL(int_at(a, 0, "lost"), 100000 - 8);
	CU_ASSERT_EQUAL(int_at(a, 1, "id"), 100000 - 7);
	json_object_put(a);
	free(text);
	events_sub_free(s);
	events_free(ev);
}

static void test_filters(void)
{
	struct events *ev = events_new(64, 1);
	struct events_sub *by_name = sub(ev, NULL, "web1", NULL);
	struct events_sub *by_id = sub(ev, NULL, "id-2,nothing", NULL);
	struct events_sub *by_type = sub(ev, NULL, NULL, "exit,removed");
	struct events_sub *both = sub(ev, NULL, "web2", "state");
	events_publish(ev, "id-1", "web1", "state", "a");
	events_publish(ev, "id-2", "web2", "state", "b");
	events_publish(ev, "id-1", "web1", "exit", "c");
	events_publish(ev, "id-2", "web2", "removed", "d");
	struct {
		struct events_sub *s;
		const char *want;
	} cases[] = {{by_name, "ac"}, {by_id, "bd"}, {by_type, "cd"}, {both, "b"}};
	for (size_t i = 0; i < 4; i++) {
		char *text = drain(cases[i].s);
		json_object *a = events_of(text);
		char got[8] = "";
		for (size_t k = 0; k < json_object_array_length(a) && k < 7; k++)
			got[k] = str_at(a, k, "message")[0];
		CU_ASSERT_STRING_EQUAL(got, cases[i].want);
		json_object_put(a);
		free(text);
		events_sub_free(cases[i].s);
	}
	events_free(ev);
}

static void test_bad_arguments(void)
{
	struct events *ev = events_new(8, 1);
	struct events_sub *s = NULL;
	char err[256];
	struct {
		const char *last, *vms, *types, *frag;
	} bad[] = {
	    {"abc", NULL, NULL, "Last-Event-ID"},
	    {"-1", NULL, NULL, "Last-Event-ID"},
	    {"12x", NULL, NULL, "Last-Event-ID"},
	    {" 1", NULL, NULL, "Last-Event-ID"},
	    {NULL, "a b", NULL, "vm"},
	    {NULL, "a,", NULL, "vm"},
	    {NULL, ",a", NULL, "vm"},
	    {NULL, NULL, "state;exit", "type"},
	    {NULL, NULL, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "at most"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		CU_ASSERT_EQUAL(
		    events_sub_new(ev, bad[i].last, bad[i].vms, bad[i].types, &s, err, sizeof(err)),
		    -EINVAL);
		CU_ASSERT_PTR_NULL(s);
		CU_ASSERT(strstr(err, bad[i].frag) != NULL);
	}
	events_free(ev);
}

static void test_keepalive(void)
{
	struct events *ev = events_new(8, 1);
	struct events_sub *s = sub(ev, NULL, NULL, NULL);
	events_sub_set_keepalive(s, 0.05);
	char buf[4096];
	CU_ASSERT(events_sub_read(s, buf, sizeof(buf), 0) > 0); /* opening comment */
	size_t n = events_sub_read(s, buf, sizeof(buf), 200);
	CU_ASSERT_EQUAL(n, strlen(": keep-alive\n\n"));
	CU_ASSERT_EQUAL(memcmp(buf, ": keep-alive\n\n", n), 0);
	events_sub_free(s);
	events_free(ev);
}

struct later {
	struct events *ev;
	double at;
};

static void *publish_later(void *arg)
{
	struct later *l = arg;
	usleep(100000);
	l->at = now_mono();
	events_publish(l->ev, "i", "v", "state", "woken");
	return NULL;
}

static void test_reader_woken_by_publish(void)
{
	struct events *ev = events_new(8, 1);
	struct events_sub *s = sub(ev, NULL, NULL, NULL);
	char buf[4096];
	CU_ASSERT(events_sub_read(s, buf, sizeof(buf), 0) > 0);
	struct later l = {.ev = ev};
	pthread_t t;
	pthread_create(&t, NULL, publish_later, &l);
	size_t n = events_sub_read(s, buf, sizeof(buf), 10000);
	double got = now_mono();
	pthread_join(t, NULL);
	CU_ASSERT(n > 0);
	buf[n < sizeof(buf) ? n : sizeof(buf) - 1] = 0;
	CU_ASSERT(strstr(buf, "woken") != NULL);
	CU_ASSERT(got - l.at < 2.0); /* woken, not timed out after 10 s */
	events_sub_free(s);
	events_free(ev);
}

static void test_small_buffer_keeps_events_whole(void)
{
	/* A buffer that holds a few events takes whole ones and leaves the
	 * rest for the next read. */
	struct events *ev = events_new(64, 1);
	struct events_sub *s = sub(ev, NULL, NULL, NULL);
	char msg[400];
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = 0;
	for (int i = 0; i < 30; i++)
		events_publish(ev, "i", "v", "state", msg);
	char buf[4096], all[65536];
	size_t len = 0, n;
	int reads = 0;
	while ((n = events_sub_read(s, buf, sizeof(buf), 0)) > 0) {
		CU_ASSERT_EQUAL(memcmp(buf + n - 2, "\n\n", 2), 0);
		memcpy(all + len, buf, n);
		len += n;
		reads++;
	}
	all[len] = 0;
	CU_ASSERT(reads > 1);
	json_object *a = events_of(all);
	CU_ASSERT_EQUAL(json_object_array_length(a), 30);
	CU_ASSERT_EQUAL(int_at(a, 29, "id"), 30);
	json_object_put(a);
	events_sub_free(s);
	events_free(ev);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	log_set_level(0);
	CU_pSuite s = CU_add_suite("events", NULL, NULL);
	if (!s || !CU_add_test(s, "SSE text of one event", test_format) ||
	    !CU_add_test(s, "events in order, increasing ids", test_order_and_ids) ||
	    !CU_add_test(s, "resume after an id", test_resume) ||
	    !CU_add_test(s, "lost: older than the ring", test_lost_when_older_than_the_ring) ||
	    !CU_add_test(s, "lost: an id of another run", test_lost_across_runs) ||
	    !CU_add_test(s, "a reader that does not read is overtaken", test_overtaken_reader) ||
	    !CU_add_test(s, "filters by VM and type", test_filters) ||
	    !CU_add_test(s, "malformed arguments", test_bad_arguments) ||
	    !CU_add_test(s, "keep-alive after a silence", test_keepalive) ||
	    !CU_add_test(s, "a waiting reader is woken by a publish",
	                 test_reader_woken_by_publish) ||
	    !CU_add_test(s, "small buffers keep events whole",
	                 test_small_buffer_keeps_events_whole)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
