/*
 * Unit tests of core/chanmsg.c: what the guest channel's reader lets through
 * (Info, Notify with its known events, GetSealingKey), re-serialized with
 * only the fields the daemon reads (a VM id a guest claims is dropped), and
 * what it refuses, with a reason: malformed JSON, unknown methods and events,
 * oversized messages (4 KiB for notifications, 1 MiB for a quote), deep
 * nesting, bad ids and quotes.
 */
#include "chanmsg.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[CHAN_OUT_MAX];
static char why[160];

static int check(const char *line)
{
	return chanmsg_validate(line, strlen(line), out, sizeof(out), why, sizeof(why));
}

static void test_info(void)
{
	CU_ASSERT(check("{\"method\":\"Info\",\"id\":7}") > 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"m\":\"Info\",\"id\":7}");
	CU_ASSERT(check("  {\"method\":\"Info\"}\r") > 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"m\":\"Info\",\"id\":0}");
}

static void test_notify_events(void)
{
	CU_ASSERT(check("{\"method\":\"Notify\",\"params\":{\"event\":\"boot.progress\","
			"\"payload\":\"mounting data disk\"}}") > 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"m\":\"Notify\",\"event\":\"boot.progress\","
				    "\"payload\":\"mounting data disk\"}");
	for (int i = 0; chanmsg_events[i]; i++) {
		char line[256];
		snprintf(line, sizeof(line),
			 "{\"method\":\"Notify\",\"params\":{\"event\":\"%s\",\"payload\":\"x\"}}",
			 chanmsg_events[i]);
		CU_ASSERT(check(line) > 0);
	}
	CU_ASSERT_EQUAL(check("{\"method\":\"Notify\",\"params\":{\"event\":\"vm.delete\"}}"),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown event"));
}

static void test_spoofed_fields_dropped(void)
{
	CU_ASSERT(check("{\"method\":\"Notify\",\"vm_id\":\"other\",\"name\":\"other\","
			"\"params\":{\"event\":\"boot.progress\",\"payload\":\"hi\",\"vm\":\"o\"}}") > 0);
	CU_ASSERT_PTR_NULL(strstr(out, "other"));
	CU_ASSERT_PTR_NULL(strstr(out, "\"vm\""));
}

/* GetKmsConfig / GetGatewayConfig: only the request id passes; whatever
 * VM the guest names (beside or in params) is gone, so the daemon can only
 * answer about the channel's VM. */
static void test_plugin_calls(void)
{
	CU_ASSERT(check("{\"method\":\"GetKmsConfig\",\"id\":3}") > 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"m\":\"GetKmsConfig\",\"id\":3}");
	CU_ASSERT(check("{\"method\":\"GetGatewayConfig\",\"id\":4,\"vm_id\":\"other\","
			"\"name\":\"other\",\"params\":{\"vm_id\":\"other\",\"name\":\"other\"}}") > 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"m\":\"GetGatewayConfig\",\"id\":4}");
	CU_ASSERT_EQUAL(check("{\"method\":\"GetKmsConfig\",\"id\":\"x\"}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"GetkmsConfig\",\"id\":1}"), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown method"));
	/* Bounded like any message other than GetSealingKey. */
	static char big[CHAN_NOTIFY_MAX + 64];
	int n = snprintf(big, sizeof(big), "{\"method\":\"GetKmsConfig\",\"id\":1,\"pad\":\"");
	memset(big + n, 'a', CHAN_NOTIFY_MAX);
	strcpy(big + n + CHAN_NOTIFY_MAX, "\"}");
	CU_ASSERT_EQUAL(check(big), -EMSGSIZE);
}

static void test_heartbeat_filtered(void)
{
	CU_ASSERT(check("{\"method\":\"Notify\",\"params\":{\"event\":\"agent.heartbeat\",\"payload\":"
			"{\"seq\":3,\"load1\":0.25,\"evil\":\"x\"}}}") > 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"m\":\"Notify\",\"event\":\"agent.heartbeat\","
				    "\"payload\":{\"seq\":3,\"load1\":0.25}}");
	CU_ASSERT_EQUAL(check("{\"method\":\"Notify\",\"params\":{\"event\":\"agent.heartbeat\","
			      "\"payload\":{\"seq\":\"three\"}}}"),
			-EINVAL);
	/* A string payload where only objects make sense stays a string. */
	CU_ASSERT(check("{\"method\":\"Notify\",\"params\":{\"event\":\"agent.heartbeat\","
			"\"payload\":\"up\"}}") > 0);
}

static void test_malformed(void)
{
	CU_ASSERT_EQUAL(check("{not json"), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "not JSON"));
	CU_ASSERT_EQUAL(check("[1,2]"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"Info\"} {\"method\":\"Info\"}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"Reboot\"}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":7}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"Info\",\"id\":-1}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"Info\",\"id\":\"1\"}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"Info\",\"x\":[[[[[[[[[[1]]]]]]]]]]}"), -EINVAL);
	CU_ASSERT_EQUAL(chanmsg_validate("{\"method\":\"Info\"}\0x", 19, out, sizeof(out), why,
					 sizeof(why)),
			-EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"Notify\",\"params\":{\"event\":\"boot.progress\","
			      "\"payload\":\"\xff\xfe\"}}"),
			-EINVAL);
}

static void test_bounds(void)
{
	size_t n = 5000;
	char *line = malloc(CHAN_QUOTE_MAX + 200);
	int k = snprintf(line, 200, "{\"method\":\"Notify\",\"params\":{\"event\":\"boot.progress\","
				    "\"payload\":\"");
	memset(line + k, 'a', n);
	strcpy(line + k + n, "\"}}");
	CU_ASSERT_EQUAL(check(line), -EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "4 KiB"));
	/* A quote may be larger, up to 1 MiB for the whole message. */
	k = snprintf(line, 200, "{\"method\":\"GetSealingKey\",\"id\":1,\"params\":{\"quote\":\"");
	memset(line + k, 'a', 500000);
	strcpy(line + k + 500000, "\"}}");
	CU_ASSERT(check(line) > 500000);
	memset(line + k, 'b', CHAN_QUOTE_MAX);
	strcpy(line + k + CHAN_QUOTE_MAX, "\"}}");
	CU_ASSERT_EQUAL(check(line), -EMSGSIZE);
	free(line);
}

static void test_quote(void)
{
	CU_ASSERT(check("{\"method\":\"GetSealingKey\",\"id\":2,\"params\":{\"quote\":\"00ff\"}}") > 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"m\":\"GetSealingKey\",\"id\":2,\"quote\":\"00ff\"}");
	CU_ASSERT_EQUAL(check("{\"method\":\"GetSealingKey\",\"params\":{\"quote\":\"0g\"}}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"GetSealingKey\",\"params\":{\"quote\":\"abc\"}}"), -EINVAL);
	CU_ASSERT_EQUAL(check("{\"method\":\"GetSealingKey\"}"), -EINVAL);
}

static void test_out_too_small(void)
{
	char small[8];
	CU_ASSERT_EQUAL(chanmsg_validate("{\"method\":\"Info\"}", 17, small, sizeof(small), why,
					 sizeof(why)),
			-ENOSPC);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("chanmsg", NULL, NULL);
	if (!s || !CU_add_test(s, "Info", test_info) ||
	    !CU_add_test(s, "Notify: known events only", test_notify_events) ||
	    !CU_add_test(s, "a VM id the guest claims is dropped", test_spoofed_fields_dropped) ||
	    !CU_add_test(s, "heartbeat payload: known numbers only", test_heartbeat_filtered) ||
	    !CU_add_test(s, "malformed messages refused", test_malformed) ||
	    !CU_add_test(s, "bounds: 4 KiB notification, 1 MiB quote", test_bounds) ||
	    !CU_add_test(s, "GetSealingKey quote", test_quote) ||
	    !CU_add_test(s, "GetKmsConfig, GetGatewayConfig: the id only", test_plugin_calls) ||
	    !CU_add_test(s, "output buffer too small", test_out_too_small)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
