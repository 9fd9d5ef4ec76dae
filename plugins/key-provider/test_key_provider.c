/*
 * test_key_provider: dstack's key-provider framing and the client against
 * real TCP servers on loopback (threads of this test) that answer, answer
 * slowly, wrongly, too much, close early, or are not there.
 */
#include "kp_client.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <json-c/json.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { ANSWER, SLOW, WRONG, CLOSE, HUGE, SILENT, BADBYTE };

static int lfd = -1;
static uint16_t port;
static enum mode mode;
static char got[256]; /* the request's JSON as the server read it */
static uint32_t got_len;
static double took; /* seconds kp_get_key took in the last run */

static void *serve(void *arg)
{
	(void)arg;
	int c = accept(lfd, NULL, NULL);
	if (c < 0)
		return NULL;
	uint8_t h[4];
	if (recv(c, h, 4, MSG_WAITALL) == 4) {
		got_len = kp_frame_length(h);
		size_t want = got_len < sizeof(got) - 1 ? got_len : sizeof(got) - 1;
		ssize_t k = recv(c, got, want, MSG_WAITALL);
		got[k > 0 ? k : 0] = 0;
	}
	const char *body = "{\"encrypted_key\":[1,2,255],\"provider_quote\":[9]}";
	if (mode == WRONG)
		body = "{\"encrypted_key\":\"not bytes\"}";
	if (mode == BADBYTE)
		body = "{\"encrypted_key\":[1,256],\"provider_quote\":[]}";
	uint32_t n = (uint32_t)strlen(body);
	if (mode == HUGE)
		n = 100u * 1024 * 1024;
	uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	if (mode == SLOW)
		usleep(600 * 1000);
	if (mode == SILENT) {
		usleep(600 * 1000);
		close(c);
		return NULL;
	}
	if (mode != CLOSE) {
		send(c, hdr, 4, MSG_NOSIGNAL);
		if (mode != HUGE)
			send(c, body, strlen(body), MSG_NOSIGNAL);
	} else {
		send(c, hdr, 4, MSG_NOSIGNAL); /* a length, then nothing */
	}
	usleep(50 * 1000);
	close(c);
	return NULL;
}

static int run(enum mode m, int timeout_ms, struct kp_key *key, char *err, size_t errlen)
{
	pthread_t t;
	mode = m;
	got[0] = 0;
	pthread_create(&t, NULL, serve, NULL);
	struct kp_opts o = {.address = "127.0.0.1", .port = port, .connect_timeout_ms = 1000,
			    .timeout_ms = timeout_ms, .max_answer = 4096};
	const uint8_t quote[] = {0, 1, 254, 255};
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int r = kp_get_key(&o, quote, sizeof(quote), key, err, errlen);
	clock_gettime(CLOCK_MONOTONIC, &b);
	took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	pthread_join(t, NULL);
	return r;
}

static void test_frame(void)
{
	uint8_t *f;
	size_t n;
	const uint8_t q[] = {7, 0, 255};
	CU_ASSERT_EQUAL_FATAL(kp_frame_request(q, 3, &f, &n), 0);
	const char *want = "{\"quote\":[7,0,255]}";
	CU_ASSERT_EQUAL(n, 4 + strlen(want));
	CU_ASSERT_EQUAL(kp_frame_length(f), strlen(want));
	CU_ASSERT_EQUAL(f[0], 0);
	CU_ASSERT_EQUAL(memcmp(f + 4, want, strlen(want)), 0);
	free(f);
	/* A length over 2^24 keeps its byte order. */
	const uint8_t h[4] = {0x01, 0x02, 0x03, 0x04};
	CU_ASSERT_EQUAL(kp_frame_length(h), 0x01020304u);
	CU_ASSERT_EQUAL(kp_frame_request(q, KP_QUOTE_MAX + 1, &f, &n), -E2BIG);
}

static void test_parse(void)
{
	struct kp_key k;
	char err[256];
	const char *ok = "{\"encrypted_key\":[],\"provider_quote\":[0,255]}";
	CU_ASSERT_EQUAL(kp_parse_answer(ok, strlen(ok), &k, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(k.encrypted_key_len, 0);
	CU_ASSERT_EQUAL(k.provider_quote_len, 2);
	CU_ASSERT_EQUAL(k.provider_quote[1], 255);
	kp_key_free(&k);
	const char *bad[] = {"", "[]", "{\"encrypted_key\":[1]}", "{\"encrypted_key\":[-1],\"provider_quote\":[]}",
			     "{\"encrypted_key\":[1.5],\"provider_quote\":[]}",
			     "{\"encrypted_key\":[],\"provider_quote\":[]} trailing"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(kp_parse_answer(bad[i], strlen(bad[i]), &k, err, sizeof(err)), -EBADMSG);
}

static void test_answers(void)
{
	struct kp_key k;
	char err[512] = "";
	CU_ASSERT_EQUAL(run(ANSWER, 2000, &k, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(got, "{\"quote\":[0,1,254,255]}");
	CU_ASSERT_EQUAL(got_len, strlen("{\"quote\":[0,1,254,255]}"));
	CU_ASSERT_EQUAL(k.encrypted_key_len, 3);
	CU_ASSERT_EQUAL(k.encrypted_key[2], 255);
	CU_ASSERT_EQUAL(k.provider_quote_len, 1);
	kp_key_free(&k);
}

static void test_failures(void)
{
	struct kp_key k;
	char err[512];
	CU_ASSERT_EQUAL(run(SLOW, 300, &k, err, sizeof(err)), -ETIMEDOUT);
	/* the client gave up at its timeout, not at the server's pace */
	CU_ASSERT(took >= 0.29 && took < 0.55);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no answer within"));
	CU_ASSERT_EQUAL(run(SLOW, 2000, &k, err, sizeof(err)), 0); /* slow but in time */
	kp_key_free(&k);
	CU_ASSERT_EQUAL(run(SILENT, 300, &k, err, sizeof(err)), -ETIMEDOUT);
	CU_ASSERT_EQUAL(run(WRONG, 2000, &k, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "encrypted_key"));
	CU_ASSERT_EQUAL(run(BADBYTE, 2000, &k, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_EQUAL(run(CLOSE, 2000, &k, err, sizeof(err)), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "closed the connection"));
	CU_ASSERT_EQUAL(run(HUGE, 2000, &k, err, sizeof(err)), -EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 4096"));
}

static void test_refused(void)
{
	/* A port nobody listens on. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &l);
	close(s);
	struct kp_opts o = {.address = "127.0.0.1", .port = ntohs(a.sin_port),
			    .connect_timeout_ms = 500, .timeout_ms = 1000, .max_answer = 4096};
	struct kp_key k;
	char err[256];
	const uint8_t q[] = {1};
	CU_ASSERT_EQUAL(kp_get_key(&o, q, 1, &k, err, sizeof(err)), -ECONNREFUSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "Connection refused"));
	o.address = "localhost";
	CU_ASSERT_EQUAL(kp_get_key(&o, q, 1, &k, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 8) ||
	    getsockname(lfd, (struct sockaddr *)&a, &l))
		return 1;
	port = ntohs(a.sin_port);
	CU_initialize_registry();
	CU_pSuite s = CU_add_suite("key_provider", NULL, NULL);
	CU_add_test(s, "request framing", test_frame);
	CU_add_test(s, "answer parsing", test_parse);
	CU_add_test(s, "a key provider that answers", test_answers);
	CU_add_test(s, "slow, silent, wrong, short, oversized answers", test_failures);
	CU_add_test(s, "nobody listening", test_refused);
	return unit_run();
}
