// SPDX-License-Identifier: GPL-2.0
/* Empty programs on the sampler's attach points: bench/sampler-bpf.ts measures their
 * per-event cost on the same load, the floor the sampler's own cost sits on. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/page_fault_user")
int BPF_PROG(calibrate_fault_tp, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	return 0;
}

SEC("perf_event")
int calibrate_perf(struct bpf_perf_event_data *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
