/* Kernel-version differences, each resolved with CO-RE at load time. */
#ifndef VTIER_CORE_FIXES_BPF_H
#define VTIER_CORE_FIXES_BPF_H

#include <bpf/bpf_core_read.h>

#define VT_PERF_SAMPLE_PHYS_ADDR (1ULL << 19)

/* 6.2+: the real context as a BTF pointer, read with plain loads instead of
 * bpf_probe_read_kernel() calls (about 3x cheaper per sample). Weak: absent before 6.2. */
extern void *bpf_cast_to_kern_ctx(void *) __ksym __weak;

/* perf_sample_data.sample_flags (6.1+) says which fields perf_prepare_sample filled; a
 * field whose bit is clear holds stale stack data. Before 6.1 every requested field was
 * filled, so the event's attr.sample_type is the authority. phys_addr itself exists
 * since 4.14; without it there is no physical address at all. */
static __always_inline __u64 perf_sample_phys_addr(struct bpf_perf_event_data *ctx)
{
	struct bpf_perf_event_data_kern *kctx;
	struct perf_sample_data *data;
	__u64 flags;

	if (!bpf_core_field_exists(struct perf_sample_data, phys_addr))
		return 0;
#ifndef VT_TEST_PROBE_READ_PATH /* tests build the pre-6.2 path with this defined */
	if (bpf_cast_to_kern_ctx && bpf_core_field_exists(struct perf_sample_data, sample_flags)) {
		kctx = bpf_cast_to_kern_ctx(ctx);
		data = kctx->data;
		if (!(data->sample_flags & VT_PERF_SAMPLE_PHYS_ADDR))
			return 0;
		return data->phys_addr;
	}
#endif
	kctx = (void *)ctx;
	data = BPF_CORE_READ(kctx, data);
	if (bpf_core_field_exists(struct perf_sample_data, sample_flags))
		flags = BPF_CORE_READ(data, sample_flags);
	else
		flags = BPF_CORE_READ(kctx, event, attr.sample_type);
	if (!(flags & VT_PERF_SAMPLE_PHYS_ADDR))
		return 0;
	return BPF_CORE_READ(data, phys_addr);
}

/* damon:damon_aggregated has had three prototypes:
 *   (struct damon_target *t, struct damon_region *r, unsigned int nr_regions)        5.15
 *   (struct damon_target *t, unsigned int target_id, struct damon_region *r, ...)    then
 *   (unsigned int target_id, struct damon_region *r, unsigned int nr_regions)        now
 * The first and the last have the same number of arguments. tp_btf arguments are
 * positional and clang < 15 has no bpf_core_type_matches, so sampler.bpf.c carries one
 * program per prototype and the loader (guest-agent/btf-proto.ts) autoloads the one whose
 * parameter types match the running kernel's btf_trace_damon_aggregated. */

/* 5.15's damon_target: id (unsigned long) is what later kernels pass as target_id. */
struct damon_target___v515 {
	unsigned long id;
} __attribute__((preserve_access_index));

#endif
