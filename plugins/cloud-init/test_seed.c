/* Unit tests of seed.c: the three files of a NoCloud seed, compared with the
 * exact text cloud-init will read. */
#include "seed.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct ci_input input(const char *req_json)
{
	struct ci_input in = {.instance_id = "7c1d0e2f-3a4b-4c5d-8e6f-0a1b2c3d4e5f",
	                      .vm_name = "vm1",
	                      .req = req_json ? json_tokener_parse(req_json) : NULL};
	return in;
}

static void expect(char *got, const char *want)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	if (strcmp(got, want))
		fprintf(stderr, "\n--- want\n%s--- got\n%s---\n", want, got);
	CU_ASSERT_STRING_EQUAL(got, want);
	free(got);
}

static void test_meta_data(void)
{
	struct ci_input in = input("{\"hostname\": \"web1\"}");
	expect(ci_meta_data(&in), "instance-id: \"7c1d0e2f-3a4b-4c5d-8e6f-0a1b2c3d4e5f\"\n"
	                          "local-hostname: \"web1\"\n");
	json_object_put(in.req);
	in = input(NULL); /* an image's default seed: the VM's name */
	expect(ci_meta_data(&in), "instance-id: \"7c1d0e2f-3a4b-4c5d-8e6f-0a1b2c3d4e5f\"\n"
	                          "local-hostname: \"vm1\"\n");
}

static void test_user_data(void)
{
	struct ci_input in = input("{\"hostname\": \"web1\", \"user\": \"acc\", "
	                           "\"ssh_authorized_keys\": [\"ssh-ed25519 AAAA k@h\"],"
	                           " \"packages\": [\"curl\"], \"runcmd\": [\"echo hi >> /x\"],"
	                           " \"user_data\": \"#cloud-config\\nhostname: "
	                           "other\\nwrite_files:\\n  - path: /etc/a\\n    "
	                           "content: b\\npackages:\\n  - vim\\ntimezone: UTC\\n\"}");
	expect(ci_user_data(&in), "#cloud-config\n"
	                          "hostname: \"web1\"\n"
	                          "preserve_hostname: false\n"
	                          "users:\n"
	                          "  - name: \"acc\"\n"
	                          "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n"
	                          "    shell: /bin/bash\n"
	                          "    lock_passwd: true\n"
	                          "    ssh_authorized_keys: [\"ssh-ed25519 AAAA k@h\"]\n"
	                          "packages: [\"curl\"]\n"
	                          "runcmd: [\"echo hi >> /x\"]\n"
	                          "write_files:\n"
	                          "  - path: /etc/a\n"
	                          "    content: b\n"
	                          "timezone: UTC\n");
	json_object_put(in.req);
	/* Keys without a user go to the image's default user. */
	in = input("{\"ssh_authorized_keys\": [\"ssh-rsa B/C+=\"]}");
	expect(ci_user_data(&in), "#cloud-config\nhostname: \"vm1\"\npreserve_hostname: false\n"
	                          "ssh_authorized_keys: [\"ssh-rsa B/C+=\"]\n");
	json_object_put(in.req);
}

static void test_network_config(void)
{
	struct ci_input in = input(NULL);
	in.n_nics = 3;
	strcpy(in.nics[0].mac, "52:54:00:00:00:01");
	strcpy(in.nics[0].addr, "10.0.2.42/24");
	strcpy(in.nics[0].gateway, "10.0.2.2");
	strcpy(in.nics[0].dns, "10.0.2.3");
	strcpy(in.nics[1].mac, "52:54:00:00:00:02"); /* no prefix known: DHCP */
	strcpy(in.nics[1].addr, "192.168.1.9");
	/* nics[2]: no MAC known, left out */
	expect(ci_network_config(&in), "version: 2\n"
	                               "ethernets:\n"
	                               "  nic0:\n"
	                               "    match:\n"
	                               "      macaddress: \"52:54:00:00:00:01\"\n"
	                               "    dhcp4: false\n"
	                               "    addresses: [\"10.0.2.42/24\"]\n"
	                               "    routes:\n"
	                               "      - to: 0.0.0.0/0\n"
	                               "        via: \"10.0.2.2\"\n"
	                               "    nameservers:\n"
	                               "      addresses: [\"10.0.2.3\"]\n"
	                               "  nic1:\n"
	                               "    match:\n"
	                               "      macaddress: \"52:54:00:00:00:02\"\n"
	                               "    dhcp4: true\n");
	json_object_put(in.req);
	in.req = json_tokener_parse("{\"dhcp\": true}");
	in.n_nics = 1;
	expect(ci_network_config(&in),
	       "version: 2\nethernets:\n  nic0:\n    match:\n"
	       "      macaddress: \"52:54:00:00:00:01\"\n    dhcp4: true\n");
	json_object_put(in.req);
	in.req = NULL;
	in.n_nics = 0;
	expect(ci_network_config(&in), "version: 2\nethernets: {}\n");
}

static int validate(const char *json)
{
	char err[256] = "";
	json_object *v = json_tokener_parse(json);
	int r = ci_validate(v, err, sizeof(err));
	json_object_put(v);
	CU_ASSERT(r == 0 || err[0]);
	return r;
}

static void test_validate(void)
{
	CU_ASSERT_EQUAL(validate("{}"), 0);
	CU_ASSERT_EQUAL(validate("false"), 0);
	CU_ASSERT_EQUAL(validate("{\"hostname\": \"web1.example\", \"user\": \"a_c\"}"), 0);
	CU_ASSERT_EQUAL(validate("true"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"hostname\": \"a b\"}"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"hostname\": \"-a\"}"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"user\": \"root\\nx\"}"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"packages\": \"curl\"}"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"runcmd\": [\"a\\nb\"]}"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"user_data\": \"runcmd: []\"}"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"colour\": 1}"), -EINVAL);
	CU_ASSERT_EQUAL(validate("{\"dhcp\": true}"), 0);
	CU_ASSERT_EQUAL(validate("{\"dhcp\": 1}"), -EINVAL);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("cloud_init_seed", NULL, NULL);
	CU_add_test(s, "meta-data", test_meta_data);
	CU_add_test(s, "user-data", test_user_data);
	CU_add_test(s, "network-config", test_network_config);
	CU_add_test(s, "validate", test_validate);
	return unit_run();
}
