/* vtier-workload: touches memory with a known access distribution so samplers can be
 * scored against ground truth. Patterns: uniform, hotspot (a contiguous hot block gets
 * hot_prob of the accesses), zipf (rank r gets 1/(r+1)^s, O(1) draws via an alias
 * table), shift (hotspot whose hot block moves every shift_ms).
 *
 * Launched by `vtier workload` / guest-agent/workload.ts with plain numeric arguments
 * (units are parsed on the TypeScript side). stdout carries JSON lines (ready, shift,
 * summary); stderr carries human progress. Exits 0 on duration end, SIGINT or SIGTERM,
 * 2 on bad arguments, 1 on system errors; SIGUSR2 restarts the shift clock. The truth file
 * format is in docs/trace-format.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HUGE_ALIGN (2UL << 20)
#define LINE_BYTES 64
#define BURST 4096
#define PFN_UNKNOWN UINT64_MAX
#define TRUTH_MAGIC "VTIERTRU"
#define TRUTH_VERSION 1

enum pattern { UNIFORM, HOTSPOT, ZIPF, SHIFT };
static const char *pattern_names[] = { "uniform", "hotspot", "zipf", "shift" };

struct config {
	enum pattern pattern;
	uint64_t size_bytes;
	double hot_frac, hot_prob, write_frac, zipf_s;
	uint64_t duration_ms, shift_ms, report_ms, truth_refresh_ms, seed;
	unsigned threads;
	bool thp, wait_start;
	const char *truth_path;
};

struct worker {
	_Atomic uint64_t accesses;
	uint64_t rng;
	uint64_t sink;
	pthread_t thread;
	char pad[64];
};

static struct config cfg = {
	.pattern = HOTSPOT, .hot_frac = 0.1, .hot_prob = 0.9, .write_frac = 0.3, .zipf_s = 0.99,
	.report_ms = 1000, .shift_ms = 10000, .truth_refresh_ms = 5000, .seed = 1, .threads = 1,
};
static volatile sig_atomic_t stop_signal, start_signal, restart_shift_clock;
static atomic_bool stop_flag;
static uint8_t *region;
static uint64_t page_size, pages, hot_pages;
static _Atomic uint64_t hot_first; /* first page index of the hot block (wraps) */
static uint64_t zipf_offset;
static uint32_t *alias_prob; /* zipf: acceptance threshold, scaled to 2^32 */
static uint32_t *alias_idx;
static uint64_t generation = 1;
static uint64_t *pfns;
static double *shares;

static uint64_t xorshift64s(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static inline uint64_t below(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

static uint64_t now_ms(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "vtier-workload: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

static uint64_t parse_u64(const char *flag, const char *text)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text ? text : "", &end, 10);
	if (!text || !*text || *end || errno || text[0] == '-')
		die_usage("%s needs a non-negative integer", flag);
	return v;
}

static double parse_double(const char *flag, const char *text)
{
	char *end;
	double v = strtod(text ? text : "", &end);
	if (!text || !*text || *end || !isfinite(v))
		die_usage("%s needs a number", flag);
	return v;
}

static void parse_args(int argc, char **argv)
{
	if (argc < 2)
		die_usage("usage: vtier-workload <uniform|hotspot|zipf|shift> --size-bytes N [options]%s", "");
	bool found = false;
	for (int p = 0; p < 4; p++)
		if (!strcmp(argv[1], pattern_names[p])) {
			cfg.pattern = p;
			found = true;
		}
	if (!found)
		die_usage("unknown pattern \"%s\" (uniform, hotspot, zipf, shift)", argv[1]);
	for (int i = 2; i < argc; i++) {
		const char *flag = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(flag, "--thp")) { cfg.thp = true; continue; }
		if (!strcmp(flag, "--wait-start")) { cfg.wait_start = true; continue; }
		if (!val)
			die_usage("%s needs a value", flag);
		i++;
		if (!strcmp(flag, "--size-bytes")) cfg.size_bytes = parse_u64(flag, val);
		else if (!strcmp(flag, "--hot-frac")) cfg.hot_frac = parse_double(flag, val);
		else if (!strcmp(flag, "--hot-prob")) cfg.hot_prob = parse_double(flag, val);
		else if (!strcmp(flag, "--write-frac")) cfg.write_frac = parse_double(flag, val);
		else if (!strcmp(flag, "--zipf-s")) cfg.zipf_s = parse_double(flag, val);
		else if (!strcmp(flag, "--duration-ms")) cfg.duration_ms = parse_u64(flag, val);
		else if (!strcmp(flag, "--shift-ms")) cfg.shift_ms = parse_u64(flag, val);
		else if (!strcmp(flag, "--report-ms")) cfg.report_ms = parse_u64(flag, val);
		else if (!strcmp(flag, "--truth-refresh-ms")) cfg.truth_refresh_ms = parse_u64(flag, val);
		else if (!strcmp(flag, "--seed")) cfg.seed = parse_u64(flag, val);
		else if (!strcmp(flag, "--threads")) cfg.threads = (unsigned)parse_u64(flag, val);
		else if (!strcmp(flag, "--truth")) cfg.truth_path = val;
		else die_usage("unknown option %s", flag);
	}
	page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	if (cfg.size_bytes < 2 * page_size)
		die_usage("--size-bytes must be at least two pages%s", "");
	if (!(cfg.hot_frac > 0 && cfg.hot_frac <= 1))
		die_usage("--hot-frac must be in (0, 1]%s", "");
	if (!(cfg.hot_prob >= 0 && cfg.hot_prob <= 1))
		die_usage("--hot-prob must be in [0, 1]%s", "");
	if (!(cfg.write_frac >= 0 && cfg.write_frac <= 1))
		die_usage("--write-frac must be in [0, 1]%s", "");
	if (!(cfg.zipf_s > 0 && cfg.zipf_s <= 5))
		die_usage("--zipf-s must be in (0, 5]%s", "");
	if (cfg.threads < 1 || cfg.threads > 256)
		die_usage("--threads must be 1..256%s", "");
	if (cfg.pattern == SHIFT && cfg.shift_ms == 0)
		die_usage("--shift-ms must be positive%s", "");
	pages = cfg.size_bytes / page_size;
	if (cfg.pattern != UNIFORM) {
		hot_pages = (uint64_t)llround(cfg.hot_frac * (double)pages);
		if (hot_pages < 1) hot_pages = 1;
		if (hot_pages > pages) hot_pages = pages;
	}
}

static void on_start(int sig)
{
	start_signal = sig;
}

/* SIGUSR2: the shift clock starts again now. A caller that prepares the starting layout after
 * the first touch (moves the region to another node: seconds under TCG) sends it once the layout
 * is in place, so the first hot set lives a whole --shift-ms of the measured run as every later
 * one does, instead of having shifted before the system under test started. */
static void on_restart_shift_clock(int sig)
{
	(void)sig;
	restart_shift_clock = 1;
}

static void on_signal(int sig)
{
	stop_signal = sig;
	atomic_store(&stop_flag, true);
}

/* Vose's alias method over the zipf pmf: one uniform index + one coin per draw. */
static int build_zipf(void)
{
	double *p = malloc(pages * sizeof(double));
	uint64_t *small = malloc(pages * sizeof(uint64_t)), *large = malloc(pages * sizeof(uint64_t));
	alias_prob = malloc(pages * sizeof(uint32_t));
	alias_idx = malloc(pages * sizeof(uint32_t));
	if (!p || !small || !large || !alias_prob || !alias_idx)
		return -ENOMEM;
	double sum = 0;
	for (uint64_t r = 0; r < pages; r++)
		sum += p[r] = pow((double)(r + 1), -cfg.zipf_s);
	uint64_t ns = 0, nl = 0;
	for (uint64_t r = 0; r < pages; r++) {
		p[r] = p[r] / sum * (double)pages;
		if (p[r] < 1) small[ns++] = r; else large[nl++] = r;
	}
	while (ns && nl) {
		uint64_t s = small[--ns], l = large[nl - 1];
		alias_prob[s] = (uint32_t)fmin(p[s] * 4294967296.0, 4294967295.0);
		alias_idx[s] = (uint32_t)l;
		p[l] = (p[l] + p[s]) - 1;
		if (p[l] < 1) { nl--; small[ns++] = l; }
	}
	while (nl) { uint64_t l = large[--nl]; alias_prob[l] = UINT32_MAX; alias_idx[l] = (uint32_t)l; }
	while (ns) { uint64_t s = small[--ns]; alias_prob[s] = UINT32_MAX; alias_idx[s] = (uint32_t)s; }
	free(p); free(small); free(large);
	return 0;
}

static inline uint64_t pick_page(uint64_t *rng, uint64_t first)
{
	uint64_t r = xorshift64s(rng);
	switch (cfg.pattern) {
	case UNIFORM:
		return below(r, pages);
	case ZIPF: {
		uint64_t i = below(r, pages);
		uint32_t coin = (uint32_t)(xorshift64s(rng) >> 32);
		uint64_t rank = coin < alias_prob[i] ? i : alias_idx[i];
		return (rank + zipf_offset) % pages;
	}
	default: {
		uint64_t cold = pages - hot_pages;
		uint64_t coin = xorshift64s(rng) >> 11;
		if (cold == 0 || (double)coin * 0x1.0p-53 < cfg.hot_prob)
			return (first + below(r, hot_pages)) % pages;
		return (first + hot_pages + below(r, cold)) % pages;
	}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = w->rng, sink = 0;
	const uint64_t write_threshold = (uint64_t)(cfg.write_frac * 4294967296.0);
	const uint64_t lines = page_size / LINE_BYTES;
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		uint64_t first = atomic_load_explicit(&hot_first, memory_order_relaxed);
		for (int i = 0; i < BURST; i++) {
			uint64_t page = pick_page(&rng, first);
			uint64_t r = xorshift64s(&rng);
			volatile uint64_t *word = (volatile uint64_t *)(region + page * page_size + below(r, lines) * LINE_BYTES);
			if ((r & 0xffffffffu) < write_threshold)
				*word += 1;
			else
				sink += *word;
		}
		atomic_fetch_add_explicit(&w->accesses, BURST, memory_order_relaxed);
	}
	w->sink = sink;
	return NULL;
}

/* Reads each region page's frame from /proc/self/pagemap (needs CAP_SYS_ADMIN to see
 * frames; without it the kernel reports 0 and the truth says pfnKnown=false). */
static int read_pfns(bool *known)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	const uint64_t chunk = 65536;
	uint64_t *buf = malloc(chunk * sizeof(uint64_t));
	if (!buf) { close(fd); return -ENOMEM; }
	*known = true;
	for (uint64_t at = 0; at < pages; at += chunk) {
		uint64_t n = pages - at < chunk ? pages - at : chunk;
		off_t off = (off_t)(((uintptr_t)region / page_size + at) * sizeof(uint64_t));
		ssize_t got = pread(fd, buf, n * sizeof(uint64_t), off);
		if (got != (ssize_t)(n * sizeof(uint64_t))) {
			int err = got < 0 ? -errno : -EIO;
			free(buf); close(fd);
			return err;
		}
		for (uint64_t i = 0; i < n; i++) {
			uint64_t e = buf[i];
			bool present = e >> 63, swapped = (e >> 62) & 1;
			uint64_t pfn = e & ((1ULL << 55) - 1);
			pfns[at + i] = present && !swapped && pfn ? pfn : PFN_UNKNOWN;
			if (present && !swapped && !pfn) *known = false;
		}
	}
	free(buf);
	close(fd);
	return 0;
}

static void compute_shares(uint64_t first)
{
	if (cfg.pattern == UNIFORM) {
		for (uint64_t i = 0; i < pages; i++) shares[i] = 1.0 / (double)pages;
	} else if (cfg.pattern == ZIPF) {
		double sum = 0;
		for (uint64_t r = 0; r < pages; r++) sum += pow((double)(r + 1), -cfg.zipf_s);
		for (uint64_t r = 0; r < pages; r++) shares[(r + zipf_offset) % pages] = pow((double)(r + 1), -cfg.zipf_s) / sum;
	} else {
		uint64_t cold = pages - hot_pages;
		double hot_share = cold ? cfg.hot_prob / (double)hot_pages : 1.0 / (double)pages;
		double cold_share = cold ? (1 - cfg.hot_prob) / (double)cold : 0;
		for (uint64_t i = 0; i < pages; i++) shares[i] = cold_share;
		for (uint64_t i = 0; i < hot_pages; i++) shares[(first + i) % pages] = hot_share;
	}
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR) continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes the truth file atomically: tmp file in the same directory, then rename. */
static int write_truth(uint64_t first, bool pfn_known)
{
	char tmp[4096], json[1024];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", cfg.truth_path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int len = snprintf(json, sizeof(json),
		"{\"format\":\"vtier-truth\",\"version\":%d,\"generation\":%" PRIu64 ",\"timestampMs\":%" PRIu64
		",\"pattern\":\"%s\",\"pageSize\":%" PRIu64 ",\"pages\":%" PRIu64 ",\"hotFirstPage\":%" PRIu64
		",\"hotPages\":%" PRIu64 ",\"hotFrac\":%.17g,\"hotProb\":%.17g,\"zipfS\":%.17g,\"writeFrac\":%.17g"
		",\"seed\":%" PRIu64 ",\"pid\":%d,\"thp\":%s,\"pfnKnown\":%s,\"regionAddr\":%" PRIu64 "}",
		TRUTH_VERSION, generation, now_ms(CLOCK_REALTIME), pattern_names[cfg.pattern], page_size, pages,
		cfg.pattern == UNIFORM ? 0 : first, hot_pages, cfg.hot_frac, cfg.hot_prob, cfg.zipf_s, cfg.write_frac,
		cfg.seed, (int)getpid(), cfg.thp ? "true" : "false", pfn_known ? "true" : "false", (uint64_t)(uintptr_t)region);
	uint32_t json_bytes = (uint32_t)len, version = TRUTH_VERSION;
	uint8_t pad[8] = { 0 };
	size_t pad_bytes = (8 - (16 + json_bytes) % 8) % 8;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int err = write_all(fd, TRUTH_MAGIC, 8);
	if (!err) err = write_all(fd, &version, 4);
	if (!err) err = write_all(fd, &json_bytes, 4);
	if (!err) err = write_all(fd, json, json_bytes);
	if (!err) err = write_all(fd, pad, pad_bytes);
	if (!err) err = write_all(fd, pfns, pages * sizeof(uint64_t));
	if (!err) err = write_all(fd, shares, pages * sizeof(double));
	if (close(fd) && !err) err = -errno;
	if (!err && rename(tmp, cfg.truth_path)) err = -errno;
	if (err) unlink(tmp);
	return err;
}

static int refresh_truth(uint64_t first, bool shares_changed)
{
	bool known = true;
	static uint64_t *previous;
	int err = 0;
	if (!previous && !(previous = malloc(pages * sizeof(uint64_t))))
		return -ENOMEM;
	memcpy(previous, pfns, pages * sizeof(uint64_t));
	if ((err = read_pfns(&known)))
		return err;
	/* Frames move under compaction or khugepaged: rewrite when they do. */
	if (shares_changed || memcmp(previous, pfns, pages * sizeof(uint64_t)))
		return write_truth(first, known);
	return 0;
}

static uint64_t total_accesses(struct worker *workers)
{
	uint64_t sum = 0;
	for (unsigned t = 0; t < cfg.threads; t++)
		sum += atomic_load_explicit(&workers[t].accesses, memory_order_relaxed);
	return sum;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A recorder killed with SIGKILL must not leave a workload spinning forever. */
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		return 0;

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct sigaction sr = { .sa_handler = on_restart_shift_clock };
	sigemptyset(&sr.sa_mask);
	sigaction(SIGUSR2, &sr, NULL);

	uint64_t seed_state = cfg.seed;
	size_t map_bytes = pages * page_size + HUGE_ALIGN;
	uint8_t *raw = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		fprintf(stderr, "vtier-workload: mmap of %" PRIu64 " bytes failed: %s\n", cfg.size_bytes, strerror(errno));
		return 1;
	}
	region = (uint8_t *)(((uintptr_t)raw + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1));
	/* Explicit either way so the system THP mode does not decide the page size. */
	if (madvise(region, pages * page_size, cfg.thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) && cfg.thp)
		fprintf(stderr, "vtier-workload: madvise(MADV_HUGEPAGE) failed: %s (continuing with base pages)\n", strerror(errno));

	/* --wait-start: a recorder attaches to our pid before the first touch (the faults
	 * source sees first-touch faults only), then sends SIGUSR1. */
	if (cfg.wait_start) {
		sigset_t block, old;
		struct sigaction su = { .sa_handler = on_start };
		sigemptyset(&su.sa_mask);
		sigaction(SIGUSR1, &su, NULL);
		sigemptyset(&block);
		sigaddset(&block, SIGUSR1);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigprocmask(SIG_BLOCK, &block, &old);
		printf("{\"event\":\"waiting\",\"pid\":%d}\n", (int)getpid());
		while (!start_signal && !stop_flag)
			sigsuspend(&old);
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (stop_flag)
			return 0; /* the recorder gave up: no touch, no truth file */
	}

	uint64_t t0 = now_ms(CLOCK_MONOTONIC);
	for (uint64_t i = 0; i < pages && !stop_flag; i++)
		region[i * page_size] = (uint8_t)i;
	uint64_t touch_ms = now_ms(CLOCK_MONOTONIC) - t0;

	uint64_t first = cfg.pattern == UNIFORM ? 0 : below(splitmix64(&seed_state), pages);
	zipf_offset = first;
	atomic_store(&hot_first, first);
	if (cfg.pattern == ZIPF && build_zipf()) {
		fprintf(stderr, "vtier-workload: out of memory building the zipf table\n");
		return 1;
	}
	if (cfg.truth_path) {
		pfns = malloc(pages * sizeof(uint64_t));
		shares = malloc(pages * sizeof(double));
		if (!pfns || !shares) {
			fprintf(stderr, "vtier-workload: out of memory for the truth table\n");
			return 1;
		}
		compute_shares(first);
		int err = refresh_truth(first, true);
		if (err) {
			fprintf(stderr, "vtier-workload: cannot write truth file %s: %s\n", cfg.truth_path, strerror(-err));
			return 1;
		}
	}

	struct worker *workers = aligned_alloc(64, sizeof(struct worker) * cfg.threads);
	if (!workers)
		return 1;
	memset(workers, 0, sizeof(struct worker) * cfg.threads);
	for (unsigned t = 0; t < cfg.threads; t++) {
		workers[t].rng = splitmix64(&seed_state) | 1;
		if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t])) {
			fprintf(stderr, "vtier-workload: cannot start thread %u\n", t);
			atomic_store(&stop_flag, true);
			cfg.threads = t;
			break;
		}
	}
	printf("{\"event\":\"ready\",\"pid\":%d,\"pattern\":\"%s\",\"pages\":%" PRIu64 ",\"pageSize\":%" PRIu64
	       ",\"hotPages\":%" PRIu64 ",\"touchMs\":%" PRIu64 ",\"generation\":%" PRIu64 "}\n",
	       (int)getpid(), pattern_names[cfg.pattern], pages, page_size, hot_pages, touch_ms, generation);

	uint64_t start = now_ms(CLOCK_MONOTONIC), last_report = start, last_shift = start, last_refresh = start;
	uint64_t last_accesses = 0;
	int status = 0;
	while (!stop_flag) {
		struct timespec tick = { 0, 50 * 1000000L };
		nanosleep(&tick, NULL);
		uint64_t now = now_ms(CLOCK_MONOTONIC);
		if (cfg.duration_ms && now - start >= cfg.duration_ms)
			break;
		if (restart_shift_clock) {
			restart_shift_clock = 0;
			last_shift = now;
		}
		if (cfg.pattern == SHIFT && now - last_shift >= cfg.shift_ms) {
			/* Move the hot block by its own width: the new hot set shares no page with the old. */
			first = (first + hot_pages) % pages;
			atomic_store(&hot_first, first);
			generation++;
			last_shift = now;
			if (cfg.truth_path) {
				compute_shares(first);
				int err = refresh_truth(first, true);
				if (err) {
					fprintf(stderr, "vtier-workload: cannot rewrite truth file: %s\n", strerror(-err));
					status = 1;
					break;
				}
				last_refresh = now;
			}
			printf("{\"event\":\"shift\",\"generation\":%" PRIu64 ",\"hotFirstPage\":%" PRIu64 "}\n", generation, first);
		}
		if (cfg.truth_path && cfg.truth_refresh_ms && now - last_refresh >= cfg.truth_refresh_ms) {
			int err = refresh_truth(first, false);
			if (err) {
				fprintf(stderr, "vtier-workload: cannot rewrite truth file: %s\n", strerror(-err));
				status = 1;
				break;
			}
			last_refresh = now;
		}
		if (cfg.report_ms && now - last_report >= cfg.report_ms) {
			uint64_t acc = total_accesses(workers);
			double rate = (double)(acc - last_accesses) * 1000.0 / (double)(now - last_report);
			fprintf(stderr, "vtier-workload: %s %.2f M accesses/s, generation %" PRIu64 ", %.0fs\n",
				pattern_names[cfg.pattern], rate / 1e6, generation, (double)(now - start) / 1000.0);
			last_accesses = acc;
			last_report = now;
		}
	}
	atomic_store(&stop_flag, true);
	uint64_t sink = 0;
	for (unsigned t = 0; t < cfg.threads; t++) {
		pthread_join(workers[t].thread, NULL);
		sink += workers[t].sink;
	}
	uint64_t elapsed = now_ms(CLOCK_MONOTONIC) - start;
	uint64_t acc = total_accesses(workers);
	printf("{\"event\":\"summary\",\"accesses\":%" PRIu64 ",\"seconds\":%.3f,\"accessesPerSec\":%.0f,\"touchMs\":%" PRIu64
	       ",\"generation\":%" PRIu64 ",\"pages\":%" PRIu64 ",\"threads\":%u,\"signal\":%d,\"checksum\":%" PRIu64 "}\n",
	       acc, (double)elapsed / 1000.0, elapsed ? (double)acc * 1000.0 / (double)elapsed : 0.0, touch_ms, generation, pages,
	       cfg.threads, (int)stop_signal, sink & 0xffff);
	munmap(raw, map_bytes);
	return status;
}
