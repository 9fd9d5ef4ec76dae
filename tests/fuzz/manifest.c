/*
 * Fuzz target: the manifest reader (vm_from_manifest in core/vm.c), which
 * the daemon runs on every <data_dir>/vms/<id>/manifest.json at start.
 * Input: the file's text, parsed as load_vms does. A manifest it accepts is
 * written back (vm_manifest_text) and read again: from then on the text
 * must be a fixed point, since that is what the daemon rewrites on every
 * state change; the API form must be valid JSON.
 */
#include "daemon.h"
#include "fuzz_env.h"
#include "vm.h"

static struct cvmm_config cfg;
static struct cvmm_daemon *d;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(-1);
	fuzz_env_images();
	char *addr = xasprintf("unix:%s/run/cvmm.sock", fuzz_dir);
	if (fuzz_env_config(&cfg, addr) < 0)
		abort();
	free(addr);
	char err[512];
	d = daemon_new(&cfg, err, sizeof(err));
	if (!d)
		abort();
	return 0;
}

static struct cvmm_vm *load(const char *text)
{
	json_object *o = json_tokener_parse(text);
	struct cvmm_vm *vm = NULL;
	char err[256];
	err[0] = 0;
	if (o && vm_from_manifest(d, o, &vm, err, sizeof(err)) < 0) {
		CHECK(err[0] && !vm);
		vm = NULL;
	}
	json_object_put(o);
	return vm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 20)
		return -1;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	struct cvmm_vm *vm = load(text);
	free(text);
	if (!vm)
		return 0;
	CHECK(uuid_valid(vm->id) && vm_name_valid(vm->name));
	CHECK(vm->reason != NULL);
	CHECK(vm->n_nics >= 0 && vm->n_nics <= VM_MAX_NICS);
	CHECK(vm->n_ports >= 0 && vm->n_ports <= VM_MAX_PORTS);

	json_object *api = vm_to_api(vm);
	CHECK(api && json_object_is_type(api, json_type_object));
	json_object_put(api);

	char *t1 = vm_manifest_text(vm, NULL);
	struct cvmm_vm *vm2 = load(t1);
	CHECK(vm2);
	char *t2 = vm_manifest_text(vm2, NULL);
	struct cvmm_vm *vm3 = load(t2);
	CHECK(vm3);
	char *t3 = vm_manifest_text(vm3, NULL);
	if (strcmp(t2, t3)) {
		fprintf(stderr, "manifest not stable:\n%s\n%s\n", t2, t3);
		abort();
	}
	free(t1);
	free(t2);
	free(t3);
	vm_free(vm3);
	vm_free(vm2);
	vm_free(vm);
	return 0;
}
