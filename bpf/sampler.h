/* Layouts shared by sampler.bpf.c, native/src/bpf.cc and guest-agent/record-layout.ts.
 * Plain fixed-width fields, explicit padding, no pointers. test/bpf-layout.test.ts fails
 * when the TypeScript view drifts from these. */
#ifndef VTIER_SAMPLER_H
#define VTIER_SAMPLER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* targ_mode bits */
#define VT_MODE_AGGREGATE 1u
#define VT_MODE_RING 2u

/* vt_sample_record.flags: low byte = source kind, then flag bits */
#define VT_SRC_PERF 1u        /* perf_event program (pebs, ibs, software page faults) */
#define VT_SRC_FAULT_TP 2u    /* exceptions:page_fault_user */
#define VT_SRC_MASK 0xffu
#define VT_FLAG_WRITE (1u << 8)     /* the access was a write (known for fault tracepoint) */
#define VT_FLAG_PHYS (1u << 9)      /* phys_addr is valid */

/* vt_page_key.kind */
#define VT_KIND_PHYS 0u /* page = physical frame number (guest PFN inside a VM) */
#define VT_KIND_VIRT 1u /* page = virtual page number of tgid; user space translates */

/* counters (BPF_MAP_TYPE_PERCPU_ARRAY "counters", __u64 each) */
#define VT_CTR_SAMPLES 0   /* events that passed the filters (ring modes only; see record()) */
#define VT_CTR_DROPS 1     /* ring buffer reserve failures */
#define VT_CTR_FILTERED 2  /* events rejected by targ_pid / targ_damon_pid / no address */
#define VT_CTR_MAP_FULL 3  /* samples lost because "pages" was full (insert refused) */
#define VT_CTR_REGIONS 4   /* damon regions seen */
#define VT_CTR_INSERTS 5   /* entries created in "pages" (fill = inserts - drained) */
#define VT_NR_COUNTERS 6

/* Pages per aggregation entry: one entry of "pages" counts VT_PAGE_GROUP adjacent pages
 * (32 KiB of 4 KiB pages, one 64-byte value). Samples that land near each other in time and
 * space (a fault stream, a loop over an array) then reuse one hash bucket and one entry
 * instead of touching a random bucket each: the bucket's TLB miss was most of the cost of an
 * event (bench:sampler-bpf). */
#define VT_PAGE_GROUP 8

/* Aggregation map key: hash "pages" (not LRU: a full map refuses and counts, never evicts).
 * page is the group's first page, a multiple of VT_PAGE_GROUP. */
struct vt_page_key {
	__u64 page;
	__u32 tgid;
	__u32 kind;
};

/* One page's counts. */
struct vt_page_value {
	__u32 reads;
	__u32 writes;
};

/* Aggregation map value: pages[i] counts page key.page + i. */
struct vt_page_group {
	struct vt_page_value pages[VT_PAGE_GROUP];
};

/* Raw sample, ring buffer "samples". */
struct vt_sample_record {
	__u64 ts_ns;
	__u64 addr;      /* data virtual address (fault address) */
	__u64 phys_addr; /* 0 when unknown */
	__u32 tgid;
	__u32 flags;     /* VT_SRC_* | VT_FLAG_* */
};

/* One DAMON region at aggregation time, ring buffer "regions". */
struct vt_damon_record {
	__u64 ts_ns;
	__u64 start; /* physical (paddr ops) or virtual address, bytes */
	__u64 end;
	__u32 nr_accesses;
	__u32 age;
	__u32 target_id;
	__u32 nr_regions;
	__u32 kdamond_pid;
	__u32 pad;
};

#endif
