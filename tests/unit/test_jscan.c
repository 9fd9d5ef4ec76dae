/*
 * jscan (core/cli/jscan.c): the CLI's in-place JSON tokenizer for the VM
 * list. Tokens agree with the text (and with json-c, which reads the same
 * texts), escapes decode to UTF-8, and whatever it does not take is refused
 * rather than misread: the CLI then falls back to json-c.
 */
#include "jscan.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static int scan(const char *text, char **buf, struct jtok **t)
{
	*buf = strdup(text);
	return jscan(*buf, strlen(*buf), t);
}

static void test_list_shape(void)
{
	char *buf;
	struct jtok *t;
	int n = scan("{\"vms\": [ {\"id\":\"a1\",\"name\":\"web1\",\"vcpu\":2,\"ports\":[{\"host_port\":8080}]},"
	             " {\"name\":\"db\",\"vcpu\":-1.5e3,\"ok\":true,\"x\":null} ] }",
	             &buf, &t);

	CU_ASSERT_FATAL(n > 0);
	int vms = jscan_get(t, 0, "vms");
	CU_ASSERT_FATAL(vms > 0);
	CU_ASSERT_EQUAL(t[vms].type, J_ARR);
	CU_ASSERT_EQUAL(t[vms].count, 2);
	int v0 = vms + 1, v1 = t[v0].next;
	CU_ASSERT_STRING_EQUAL(t[jscan_get(t, v0, "name")].s, "web1");
	CU_ASSERT_STRING_EQUAL(t[jscan_get(t, v0, "vcpu")].s, "2");
	int ports = jscan_get(t, v0, "ports");
	CU_ASSERT_EQUAL(t[ports].type, J_ARR);
	CU_ASSERT_STRING_EQUAL(t[jscan_get(t, ports + 1, "host_port")].s, "8080");
	CU_ASSERT_STRING_EQUAL(t[jscan_get(t, v1, "name")].s, "db");
	CU_ASSERT_STRING_EQUAL(t[jscan_get(t, v1, "vcpu")].s, "-1.5e3");
	CU_ASSERT_EQUAL(t[jscan_get(t, v1, "ok")].type, J_BOOL);
	CU_ASSERT_EQUAL(t[jscan_get(t, v1, "x")].type, J_NULL);
	CU_ASSERT_EQUAL(jscan_get(t, v1, "missing"), -1);
	CU_ASSERT_EQUAL(t[vms].next, n); /* the last value ends the tokens */
	free(t);
	free(buf);
}

static void test_escapes(void)
{
	char *buf;
	struct jtok *t;

	CU_ASSERT_FATAL(scan("[\"a\\\"b\\\\c\\/d\\n\\u00e9\\u20ac\\ud83d\\ude00\"]", &buf, &t) == 2);
	CU_ASSERT_STRING_EQUAL(t[1].s, "a\"b\\c/d\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	free(t);
	free(buf);
}

static void test_refused(void)
{
	static const char *const bad[] = {
	    "",           "   ",          "42",        "\"top\"",      "{",
	    "[1,]",       "{\"a\" 1}",    "{\"a\":}",  "[\"\\u0000\"]", "[\"\\ud800\"]",
	    "[\"\\udc00\"]", "[\"\x01\"]", "[tru]",     "[1] x",        "{\"a\":1,}",
	    "[\"\\x\"]",   "[\"abc",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *buf;
		struct jtok *t = (struct jtok *)1;

		CU_ASSERT_EQUAL(scan(bad[i], &buf, &t), -1);
		CU_ASSERT_PTR_NULL(t);
		free(buf);
	}
}

/* Deep nesting is refused, not a stack overflow. */
static void test_depth(void)
{
	char deep[4001];
	char *buf;
	struct jtok *t;

	memset(deep, '[', 2000);
	memset(deep + 2000, ']', 2000);
	deep[4000] = '\0';
	CU_ASSERT_EQUAL(scan(deep, &buf, &t), -1);
	free(buf);
}

/* Every string and number of a real list reply reads as json-c reads it. */
static void test_agrees_with_json_c(void)
{
	const char *text =
	    "{\"vms\":[{\"id\":\"5f0c2a1e-8d3b\",\"name\":\"n\\u00e4me\",\"state\":\"running\","
	    "\"vcpu\":1,\"memory_mb\":256,\"backend\":\"qemu\",\"ports\":[{\"protocol\":\"udp\","
	    "\"host_address\":\"::1\",\"host_port\":53,\"vm_port\":5353}]}]}";
	json_object *o = json_tokener_parse(text), *vm, *v;
	char *buf;
	struct jtok *t;

	CU_ASSERT_FATAL(o != NULL);
	CU_ASSERT_FATAL(scan(text, &buf, &t) > 0);
	vm = json_object_array_get_idx(json_object_object_get(o, "vms"), 0);
	int jv = jscan_get(t, 0, "vms") + 1;
	json_object_object_foreach(vm, key, val)
	{
		if (json_object_is_type(val, json_type_array))
			continue;
		CU_ASSERT_STRING_EQUAL(t[jscan_get(t, jv, key)].s, json_object_get_string(val));
	}
	v = json_object_array_get_idx(json_object_object_get(vm, "ports"), 0);
	int jp = jscan_get(t, jv, "ports") + 1;
	CU_ASSERT_STRING_EQUAL(t[jscan_get(t, jp, "host_address")].s,
	                       json_object_get_string(json_object_object_get(v, "host_address")));
	CU_ASSERT_STRING_EQUAL(t[jscan_get(t, jp, "vm_port")].s, "5353");
	json_object_put(o);
	free(t);
	free(buf);
}

int main(void)
{
	static const struct unit_test tests[] = {
	    {"the list's shape", test_list_shape},
	    {"escapes decode to UTF-8", test_escapes},
	    {"what it does not take is refused", test_refused},
	    {"nesting depth bounded", test_depth},
	    {"agrees with json-c", test_agrees_with_json_c},
	};
	return unit_main("jscan", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
