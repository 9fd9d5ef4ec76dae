/*
 * abi10_probe.h: the layout facts of plugin ABI 1.0 that later headers must
 * keep. test-abi10 evaluates the lists below against the frozen 1.0 header
 * and hands the numbers to the host as the data pointer of its one hook;
 * tests/unit/test_abi.c evaluates the same lists against the current header
 * and compares. The lists name 1.0 members only: like the frozen header they
 * never grow, and a member added in 1.x does not belong here.
 *
 * It deliberately does not include <cvmm/plugin.h>: the includer picks which
 * header (frozen or current) the lists are evaluated against.
 */
#ifndef CVMM_TEST_ABI10_PROBE_H
#define CVMM_TEST_ABI10_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* Every struct that crosses the boundary: a later size may only be larger. */
#define ABI10_STRUCTS(X)                                                                           \
	X(cvmm_port_map)                                                                           \
	X(cvmm_spec_nic)                                                                           \
	X(cvmm_spec_disk)                                                                          \
	X(cvmm_spec_arg)                                                                           \
	X(cvmm_launch_spec)                                                                        \
	X(cvmm_backend_ops)                                                                        \
	X(cvmm_netmode_ops)                                                                        \
	X(cvmm_host_api)                                                                           \
	X(cvmm_plugin_desc)

/* Every member of those structs in 1.0: the offset must never move. */
#define ABI10_MEMBERS(X)                                                                           \
	X(cvmm_port_map, struct_size)                                                              \
	X(cvmm_port_map, protocol)                                                                 \
	X(cvmm_port_map, host_address)                                                             \
	X(cvmm_port_map, host_port)                                                                \
	X(cvmm_port_map, vm_port)                                                                  \
	X(cvmm_spec_nic, struct_size)                                                              \
	X(cvmm_spec_nic, kind)                                                                     \
	X(cvmm_spec_nic, id)                                                                       \
	X(cvmm_spec_nic, mac)                                                                      \
	X(cvmm_spec_nic, model)                                                                    \
	X(cvmm_spec_nic, ifname)                                                                   \
	X(cvmm_spec_nic, socket)                                                                   \
	X(cvmm_spec_nic, user_net)                                                                 \
	X(cvmm_spec_nic, user_dhcp_start)                                                          \
	X(cvmm_spec_nic, user_restrict)                                                            \
	X(cvmm_spec_nic, n_ports)                                                                  \
	X(cvmm_spec_nic, ports)                                                                    \
	X(cvmm_spec_disk, struct_size)                                                             \
	X(cvmm_spec_disk, format)                                                                  \
	X(cvmm_spec_disk, id)                                                                      \
	X(cvmm_spec_disk, path)                                                                    \
	X(cvmm_spec_disk, readonly)                                                                \
	X(cvmm_spec_disk, reserved)                                                                \
	X(cvmm_spec_arg, struct_size)                                                              \
	X(cvmm_spec_arg, reserved)                                                                 \
	X(cvmm_spec_arg, backend)                                                                  \
	X(cvmm_spec_arg, value)                                                                    \
	X(cvmm_launch_spec, struct_size)                                                           \
	X(cvmm_launch_spec, vcpus)                                                                 \
	X(cvmm_launch_spec, memory_mb)                                                             \
	X(cvmm_launch_spec, name)                                                                  \
	X(cvmm_launch_spec, uuid)                                                                  \
	X(cvmm_launch_spec, machine)                                                               \
	X(cvmm_launch_spec, kernel)                                                                \
	X(cvmm_launch_spec, initrd)                                                                \
	X(cvmm_launch_spec, cmdline)                                                               \
	X(cvmm_launch_spec, bios)                                                                  \
	X(cvmm_launch_spec, cid)                                                                   \
	X(cvmm_launch_spec, n_disks)                                                               \
	X(cvmm_launch_spec, disks)                                                                 \
	X(cvmm_launch_spec, n_nics)                                                                \
	X(cvmm_launch_spec, nics)                                                                  \
	X(cvmm_launch_spec, n_args)                                                                \
	X(cvmm_launch_spec, args)                                                                  \
	X(cvmm_launch_spec, serial_log)                                                            \
	X(cvmm_launch_spec, run_dir)                                                               \
	X(cvmm_launch_spec, serial_log_max)                                                        \
	X(cvmm_backend_ops, struct_size)                                                           \
	X(cvmm_backend_ops, reserved)                                                              \
	X(cvmm_backend_ops, start)                                                                 \
	X(cvmm_backend_ops, stop)                                                                  \
	X(cvmm_backend_ops, kill)                                                                  \
	X(cvmm_backend_ops, adopt)                                                                 \
	X(cvmm_backend_ops, cleanup)                                                               \
	X(cvmm_backend_ops, describe)                                                              \
	X(cvmm_backend_ops, render)                                                                \
	X(cvmm_netmode_ops, struct_size)                                                           \
	X(cvmm_netmode_ops, can_map_ports)                                                         \
	X(cvmm_netmode_ops, define)                                                                \
	X(cvmm_netmode_ops, undefine)                                                              \
	X(cvmm_netmode_ops, setup)                                                                 \
	X(cvmm_netmode_ops, teardown)                                                              \
	X(cvmm_netmode_ops, adopt)                                                                 \
	X(cvmm_host_api, struct_size)                                                              \
	X(cvmm_host_api, abi_major)                                                                \
	X(cvmm_host_api, abi_minor)                                                                \
	X(cvmm_host_api, reserved)                                                                 \
	X(cvmm_host_api, log)                                                                      \
	X(cvmm_host_api, error)                                                                    \
	X(cvmm_host_api, register_backend)                                                         \
	X(cvmm_host_api, register_netmode)                                                         \
	X(cvmm_host_api, register_hook)                                                            \
	X(cvmm_host_api, cfg_string)                                                               \
	X(cvmm_host_api, cfg_int)                                                                  \
	X(cvmm_host_api, cfg_bool)                                                                 \
	X(cvmm_host_api, cfg_count)                                                                \
	X(cvmm_host_api, cfg_string_at)                                                            \
	X(cvmm_host_api, vm_id)                                                                    \
	X(cvmm_host_api, vm_name)                                                                  \
	X(cvmm_host_api, vm_vcpus)                                                                 \
	X(cvmm_host_api, vm_memory_mb)                                                             \
	X(cvmm_host_api, vm_cid)                                                                   \
	X(cvmm_host_api, vm_run_dir)                                                               \
	X(cvmm_host_api, vm_data_dir)                                                              \
	X(cvmm_host_api, vm_nic_count)                                                             \
	X(cvmm_host_api, vm_nic_param)                                                             \
	X(cvmm_host_api, vm_nic_param_at)                                                          \
	X(cvmm_host_api, state_set)                                                                \
	X(cvmm_host_api, state_get)                                                                \
	X(cvmm_host_api, spec_add_nic)                                                             \
	X(cvmm_host_api, spec_add_disk)                                                            \
	X(cvmm_host_api, spec_add_arg)                                                             \
	X(cvmm_host_api, spec_append_cmdline)                                                      \
	X(cvmm_host_api, vm_watch_pid)                                                             \
	X(cvmm_host_api, vm_exited)                                                                \
	X(cvmm_host_api, alloc)                                                                    \
	X(cvmm_host_api, free)                                                                     \
	X(cvmm_host_api, run_dir)                                                                  \
	X(cvmm_host_api, data_dir)                                                                 \
	X(cvmm_plugin_desc, struct_size)                                                           \
	X(cvmm_plugin_desc, abi_major)                                                             \
	X(cvmm_plugin_desc, abi_minor)                                                             \
	X(cvmm_plugin_desc, reserved)                                                              \
	X(cvmm_plugin_desc, name)                                                                  \
	X(cvmm_plugin_desc, version)                                                               \
	X(cvmm_plugin_desc, description)

/* Every constant of 1.0 (the major and minor themselves excepted: the
 * minor may grow): the value must never change. */
#define ABI10_CONSTANTS(X)                                                                         \
	X(CVMM_LOG_ERROR)                                                                          \
	X(CVMM_LOG_WARN)                                                                           \
	X(CVMM_LOG_INFO)                                                                           \
	X(CVMM_LOG_DEBUG)                                                                          \
	X(CVMM_EV_DEFINE)                                                                          \
	X(CVMM_EV_UNDEFINE)                                                                        \
	X(CVMM_EV_PREPARE)                                                                         \
	X(CVMM_EV_CLEANUP)                                                                         \
	X(CVMM_EV_PRE_START)                                                                       \
	X(CVMM_EV_POST_STOP)                                                                       \
	X(CVMM_EV_STARTED)                                                                         \
	X(CVMM_EV_STOPPING)                                                                        \
	X(CVMM_EV_EXITED)                                                                          \
	X(CVMM_EV_GUEST_EVENT)                                                                     \
	X(CVMM_EV_DAEMON_START)                                                                    \
	X(CVMM_EV_DAEMON_STOP)                                                                     \
	X(CVMM_NIC_USER)                                                                           \
	X(CVMM_NIC_STREAM)                                                                         \
	X(CVMM_NIC_TAP)                                                                            \
	X(CVMM_NIC_MACVTAP)                                                                        \
	X(CVMM_PROTO_TCP)                                                                          \
	X(CVMM_PROTO_UDP)                                                                          \
	X(CVMM_DISK_QCOW2)                                                                         \
	X(CVMM_DISK_RAW)

#define ABI10_KIND_SIZE 1     /* value is sizeof(struct name) */
#define ABI10_KIND_OFFSET 2   /* value is offsetof(struct s, member) */
#define ABI10_KIND_CONSTANT 3 /* value is the macro's value */

struct abi10_fact {
	uint32_t kind; /* ABI10_KIND_* */
	uint32_t reserved;
	const char *name; /* "cvmm_host_api", "cvmm_host_api.log", "CVMM_EV_DEFINE" */
	uint64_t value;
};

/* Initialisers for a table of struct abi10_fact, in list order. */
#define ABI10_SIZE_FACT(s) {ABI10_KIND_SIZE, 0, #s, sizeof(struct s)},
#define ABI10_MEMBER_FACT(s, m) {ABI10_KIND_OFFSET, 0, #s "." #m, offsetof(struct s, m)},
#define ABI10_CONSTANT_FACT(c) {ABI10_KIND_CONSTANT, 0, #c, (uint64_t)(c)},
#define ABI10_FACTS                                                                                \
	ABI10_STRUCTS(ABI10_SIZE_FACT)                                                             \
	ABI10_MEMBERS(ABI10_MEMBER_FACT) ABI10_CONSTANTS(ABI10_CONSTANT_FACT)

/* What test-abi10 registers as its hook's data. */
struct abi10_probe {
	uint32_t struct_size;
	uint32_t host_abi_major; /* as passed to the entry point */
	uint32_t host_abi_minor;
	uint32_t host_struct_size; /* host->struct_size seen at init */
	uint32_t calls;            /* times the hook ran */
	uint32_t n_facts;
	const struct abi10_fact *facts; /* evaluated against the frozen header */
};

#endif
