// SPDX-License-Identifier: GPL-2.0
/* vtier page-access sampler: perf samples (pebs / ibs / software page faults), the
 * page_fault_user tracepoint and DAMON region aggregates, counted per page in "pages"
 * and/or streamed raw through ring buffers. User space autoloads one program per source. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sampler.h"
#include "core_fixes.bpf.h"

const volatile __u32 targ_pid = 0;        /* tgid filter, 0 = all */
const volatile __u32 targ_mode = VT_MODE_AGGREGATE;
const volatile __u32 targ_damon_pid = 0;  /* kdamond thread pid, 0 = all */
const volatile __u32 targ_page_shift = 12;
/* Wake the ring consumer only once this many bytes wait (0 = on every record, libbpf's
 * default). User space also polls on a timer, so records never wait longer than that. */
const volatile __u32 targ_wakeup_bytes = 0;

/* Plain hash of page groups (sampler.h: VT_PAGE_GROUP pages an entry), preallocated: a
 * full map refuses the insert (counted in VT_CTR_MAP_FULL) instead of evicting silently. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct vt_page_key);
	__type(value, struct vt_page_group);
} pages SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} regions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VT_NR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

static __always_inline void aggregate(__u64 addr, __u64 phys, __u32 tgid, bool write)
{
	struct vt_page_key key = {};
	struct vt_page_group *val, init = {};
	__u64 page;
	__u32 idx;
	long err;

	if (phys) {
		page = phys >> targ_page_shift;
		key.kind = VT_KIND_PHYS;
	} else {
		page = addr >> targ_page_shift;
		key.kind = VT_KIND_VIRT;
		key.tgid = tgid;
	}
	key.page = page & ~(__u64)(VT_PAGE_GROUP - 1);
	/* the __u32 to count: pages[page % VT_PAGE_GROUP].reads, or .writes just after it */
	idx = ((__u32)page & (VT_PAGE_GROUP - 1)) * 2 + write;
	barrier_var(idx); /* keep the add: clang turns "* 2 + write" into an OR the verifier refuses on a pointer */
	idx &= VT_PAGE_GROUP * 2 - 1;
	val = bpf_map_lookup_elem(&pages, &key);
	if (!val) {
		/* first sample in this group: insert it counted */
		((__u32 *)init.pages)[idx] = 1;
		err = bpf_map_update_elem(&pages, &key, &init, BPF_NOEXIST);
		if (!err) {
			count(VT_CTR_INSERTS);
			return;
		}
		/* another CPU inserted it first */
		val = err == -17 /* EEXIST */ ? bpf_map_lookup_elem(&pages, &key) : NULL;
		if (!val) {
			count(VT_CTR_MAP_FULL);
			return;
		}
	}
	__sync_fetch_and_add((__u32 *)val->pages + idx, 1);
}

static __always_inline void emit(__u64 addr, __u64 phys, __u32 tgid, __u32 flags)
{
	struct vt_sample_record *rec;

	rec = bpf_ringbuf_reserve(&samples, sizeof(*rec), 0);
	if (!rec) {
		count(VT_CTR_DROPS);
		return;
	}
	rec->ts_ns = bpf_ktime_get_ns();
	rec->addr = addr;
	rec->phys_addr = phys;
	rec->tgid = tgid;
	rec->flags = flags;
	/* A wake-up is an irq_work (a VM exit in a guest): wake only when the backlog crosses
	 * targ_wakeup_bytes, not on every record past it; the consumer's timer covers misses. */
	if (targ_wakeup_bytes) {
		__u64 avail = bpf_ringbuf_query(&samples, BPF_RB_AVAIL_DATA); /* includes rec */

		bpf_ringbuf_submit(rec, avail >= targ_wakeup_bytes &&
					avail < targ_wakeup_bytes + sizeof(*rec) + 8 /* header */
					? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	}
	else
		bpf_ringbuf_submit(rec, 0);
}

static __always_inline void record(__u64 addr, __u64 phys, __u32 src, bool write)
{
	__u32 tgid = 0;

	/* the tgid is needed to filter, for a virtual-page key and in raw records */
	if (targ_pid || !phys || (targ_mode & VT_MODE_RING))
		tgid = bpf_get_current_pid_tgid() >> 32;
	/* filter: wrong process, or no data address */
	if ((targ_pid && tgid != targ_pid) || (!addr && !phys)) {
		count(VT_CTR_FILTERED);
		return;
	}
	if (targ_mode & VT_MODE_AGGREGATE)
		aggregate(addr, phys, tgid, write);
	/* aggregate-only: samples = drained counts + map_full, derived in user space */
	if (targ_mode & VT_MODE_RING)
		count(VT_CTR_SAMPLES);
	if (targ_mode & VT_MODE_RING)
		emit(addr, phys, tgid,
		     src | (write ? VT_FLAG_WRITE : 0) | (phys ? VT_FLAG_PHYS : 0));
}

SEC("perf_event")
int on_perf_sample(struct bpf_perf_event_data *ctx)
{
	record(ctx->addr, perf_sample_phys_addr(ctx), VT_SRC_PERF, false);
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(on_page_fault_user, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	/* x86 page fault error code: bit 1 = write access */
	record(address, 0, VT_SRC_FAULT_TP, error_code & 2);
	return 0;
}

static __always_inline void damon_region(__u32 target_id, struct damon_region *r,
					  __u32 nr_regions)
{
	struct vt_damon_record *rec;

	if (targ_damon_pid && (__u32)bpf_get_current_pid_tgid() != targ_damon_pid) {
		count(VT_CTR_FILTERED);
		return;
	}
	count(VT_CTR_REGIONS);
	rec = bpf_ringbuf_reserve(&regions, sizeof(*rec), 0);
	if (!rec) {
		count(VT_CTR_DROPS);
		return;
	}
	rec->ts_ns = bpf_ktime_get_ns();
	rec->start = BPF_CORE_READ(r, ar.start);
	rec->end = BPF_CORE_READ(r, ar.end);
	rec->nr_accesses = BPF_CORE_READ(r, nr_accesses);
	/* damon_region.age came with DAMOS: a kernel without it reports 0 */
	rec->age = bpf_core_field_exists(r->age) ? BPF_CORE_READ(r, age) : 0;
	rec->target_id = target_id;
	rec->nr_regions = nr_regions;
	rec->kdamond_pid = (__u32)bpf_get_current_pid_tgid();
	rec->pad = 0;
	bpf_ringbuf_submit(rec, 0);
}

/* prototype differs by kernel version: see core_fixes.bpf.h; user space autoloads one */
SEC("tp_btf/damon_aggregated")
int BPF_PROG(on_damon_aggregated, unsigned int target_id, struct damon_region *r,
	     unsigned int nr_regions)
{
	damon_region(target_id, r, nr_regions);
	return 0;
}

SEC("tp_btf/damon_aggregated")
int BPF_PROG(on_damon_aggregated_with_target, struct damon_target *t, unsigned int target_id,
	     struct damon_region *r, unsigned int nr_regions)
{
	damon_region(target_id, r, nr_regions);
	return 0;
}

SEC("tp_btf/damon_aggregated")
int BPF_PROG(on_damon_aggregated_target_ptr, struct damon_target *t, struct damon_region *r,
	     unsigned int nr_regions)
{
	struct damon_target___v515 *old = (void *)t;

	/* the low 32 bits of t->id, as 5.15's trace event printed it */
	damon_region(bpf_core_field_exists(old->id) ? (__u32)BPF_CORE_READ(old, id) : 0, r, nr_regions);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
