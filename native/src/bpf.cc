// BPF object lifecycle for the vtier sampler: open, set `const volatile` tunables, pick
// programs, load, attach (tp_btf / tracepoint / perf_event per CPU), ring buffers driven
// by uv_poll delivering one batch per wake-up, hash-map batch drain, counter reads.
// No C++ exceptions: every failure becomes a pending JS error and an early return.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <napi.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "errors.h"
#include "sampler.h"

static_assert(sizeof(struct vt_page_key) == 16, "vt_page_key layout");
static_assert(sizeof(struct vt_page_value) == 8, "vt_page_value layout");
static_assert(sizeof(struct vt_sample_record) == 32, "vt_sample_record layout");
static_assert(sizeof(struct vt_damon_record) == 48, "vt_damon_record layout");
static_assert(offsetof(struct vt_page_value, writes) == 4, "vt_page_value.writes");
static_assert(offsetof(struct vt_sample_record, flags) == 28, "vt_sample_record.flags");
static_assert(offsetof(struct vt_damon_record, kdamond_pid) == 40, "vt_damon_record.kdamond_pid");

#ifndef ENOTSUPP
#define ENOTSUPP 524
#endif

namespace vtier {
namespace {

// libbpf logs through one global callback; the object being worked on decides.
bool g_verbose = false;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (!g_verbose) return 0;
  return vfprintf(stderr, fmt, args);
}

struct VerboseScope {
  bool saved;
  explicit VerboseScope(bool on) : saved(g_verbose) { g_verbose = on; }
  ~VerboseScope() { g_verbose = saved; }
};

// Reads a JS number or bigint as an unsigned 64-bit integer. Sets a TypeError naming
// `field` and returns false on anything else.
bool ToU64(Napi::Env env, Napi::Value v, const char *field, uint64_t *out) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) {
      ThrowTypeError(env, field, "must fit in an unsigned 64-bit integer");
      return false;
    }
    *out = x;
    return true;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d < 0 || std::floor(d) != d || d > 9007199254740991.0) {
      ThrowTypeError(env, field, "must be a non-negative safe integer or a bigint");
      return false;
    }
    *out = static_cast<uint64_t>(d);
    return true;
  }
  ThrowTypeError(env, field, "must be a number or a bigint");
  return false;
}

bool ToString(Napi::Env env, Napi::Value v, const char *field, std::string *out) {
  if (!v.IsString()) {
    ThrowTypeError(env, field, "must be a string");
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  if (out->empty()) {
    ThrowTypeError(env, field, "must not be empty");
    return false;
  }
  return true;
}

bool ToInt(Napi::Env env, Napi::Value v, const char *field, int64_t lo, int64_t hi, int64_t *out) {
  if (!v.IsNumber()) {
    ThrowTypeError(env, field, "must be an integer");
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    ThrowTypeError(env, field, ("must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]").c_str());
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

// Optional boolean attribute: absent/undefined keeps the default.
bool OptBool(Napi::Env env, Napi::Object o, const char *key, const char *field, bool *out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsBoolean()) {
    ThrowTypeError(env, field, "must be a boolean");
    return false;
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

bool OptU64(Napi::Env env, Napi::Object o, const char *key, const char *field, uint64_t *out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  return ToU64(env, v, field, out);
}

class BpfObject;
struct HashDrain;

// One ring buffer map consumed on the Node loop.
struct Ring {
  BpfObject *owner = nullptr;
  napi_env env = nullptr;
  int id = 0;
  struct ring_buffer *rb = nullptr;
  uv_poll_t poll{};
  uv_timer_t timer{};  // polls every pollMs too: the program may skip wake-ups
  uint64_t pollMs = 0;
  int openHandles = 0;
  Napi::FunctionReference callback;
  Napi::ObjectReference ownerRef;  // the object stays alive while its ring runs
  std::vector<uint8_t> staging;
  size_t recordSize = 0;
  size_t maxBatchBytes = 0;
  uint64_t malformed = 0;
  uint64_t batches = 0;
  bool closing = false;
  bool envGone = false;
};

constexpr int kStagingFull = -E2BIG;

// Rings whose uv_close is pending. When an environment (a worker) ends, Node may unload
// the addon before libuv runs close callbacks, so teardown clears the callback of any
// such ring (leaking a few hundred bytes) instead of letting libuv jump into unmapped code.
std::mutex g_closingMutex;
std::set<Ring *> g_closing;

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit BpfObject(const Napi::CallbackInfo &info);
  ~BpfObject() override;

 private:
  Napi::Value SetGlobal(const Napi::CallbackInfo &info);
  Napi::Value SetAutoload(const Napi::CallbackInfo &info);
  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo &info);
  Napi::Value Load(const Napi::CallbackInfo &info);
  Napi::Value Programs(const Napi::CallbackInfo &info);
  Napi::Value Attach(const Napi::CallbackInfo &info);
  Napi::Value AttachTracepoint(const Napi::CallbackInfo &info);
  Napi::Value AttachPerfEvent(const Napi::CallbackInfo &info);
  Napi::Value SetPerfPeriod(const Napi::CallbackInfo &info);
  Napi::Value Detach(const Napi::CallbackInfo &info);
  Napi::Value ProgInfo(const Napi::CallbackInfo &info);
  Napi::Value RingStart(const Napi::CallbackInfo &info);
  Napi::Value RingClose(const Napi::CallbackInfo &info);
  Napi::Value RingStats(const Napi::CallbackInfo &info);
  Napi::Value DrainHash(const Napi::CallbackInfo &info);
  Napi::Value DrainHashAsync(const Napi::CallbackInfo &info);
  std::unique_ptr<HashDrain> PrepareDrain(const Napi::CallbackInfo &info);
  Napi::Value ReadArray(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);

  bool Alive(Napi::Env env);
  struct bpf_program *FindProgram(Napi::Env env, Napi::Value name, const char *field);
  struct bpf_map *FindMap(Napi::Env env, Napi::Value name, const char *field);
  int AddLink(struct bpf_link *link);
  int DestroyLink(int id);
  void CloseRing(Ring *ring);
  void CloseAll();

  static void OnPoll(uv_poll_t *handle, int status, int events);
  static void OnTimer(uv_timer_t *handle);
  static void Drain(Ring *ring, int status);
  static int OnSample(void *ctx, void *data, size_t size);
  static void OnRingClosed(uv_handle_t *handle);
  static void EnvCleanup(void *arg);

  struct bpf_object *obj_ = nullptr;
  napi_env env_ = nullptr;
  bool verbose_ = false;
  bool loaded_ = false;
  bool hookAdded_ = false;
  int nextId_ = 1;
  std::map<int, struct bpf_link *> links_;
  std::map<int, int> groupLeaders_;  // link id -> fd of the perf group leader it belongs to
  std::map<int, int> perfFds_;       // link id -> its sampling perf event's fd (owned by the link)
  std::map<int, Ring *> rings_;
};

Napi::Function BpfObject::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceMethod<&BpfObject::SetGlobal>("setGlobal"),
                         InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
                         InstanceMethod<&BpfObject::SetMapMaxEntries>("setMapMaxEntries"),
                         InstanceMethod<&BpfObject::Load>("load"),
                         InstanceMethod<&BpfObject::Programs>("programs"),
                         InstanceMethod<&BpfObject::Attach>("attach"),
                         InstanceMethod<&BpfObject::AttachTracepoint>("attachTracepoint"),
                         InstanceMethod<&BpfObject::AttachPerfEvent>("attachPerfEvent"),
                         InstanceMethod<&BpfObject::SetPerfPeriod>("setPerfPeriod"),
                         InstanceMethod<&BpfObject::Detach>("detach"),
                         InstanceMethod<&BpfObject::ProgInfo>("progInfo"),
                         InstanceMethod<&BpfObject::RingStart>("ringStart"),
                         InstanceMethod<&BpfObject::RingClose>("ringClose"),
                         InstanceMethod<&BpfObject::RingStats>("ringStats"),
                         InstanceMethod<&BpfObject::DrainHash>("drainHash"),
                         InstanceMethod<&BpfObject::DrainHashAsync>("drainHashAsync"),
                         InstanceMethod<&BpfObject::ReadArray>("readArray"),
                         InstanceMethod<&BpfObject::Close>("close"),
                     });
}

// new BpfObject(path: string, verbose: boolean)
BpfObject::BpfObject(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BpfObject>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  std::string path;
  if (!ToString(env, info[0], "path", &path)) return;
  if (!info[1].IsUndefined()) {
    if (!info[1].IsBoolean()) {
      ThrowTypeError(env, "verbose", "must be a boolean");
      return;
    }
    verbose_ = info[1].As<Napi::Boolean>().Value();
  }
  VerboseScope scope(verbose_);
  struct bpf_object *obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) {
    ThrowErrno(env, errno, "bpf_object__open_file", path);
    return;
  }
  obj_ = obj;
  napi_add_env_cleanup_hook(env, EnvCleanup, this);
  hookAdded_ = true;
}

BpfObject::~BpfObject() {
  CloseAll();
  if (hookAdded_) napi_remove_env_cleanup_hook(env_, EnvCleanup, this);
}

void BpfObject::EnvCleanup(void *arg) {
  // Process exit: detach everything; the loop will not run callbacks any more.
  auto *self = static_cast<BpfObject *>(arg);
  for (auto &entry : self->rings_) entry.second->envGone = true;
  self->CloseAll();
  self->hookAdded_ = false;
  std::lock_guard<std::mutex> lock(g_closingMutex);
  for (auto it = g_closing.begin(); it != g_closing.end();) {
    Ring *ring = *it;
    if (ring->env != self->env_) {
      ++it;
      continue;
    }
    // uv_close already stopped polling synchronously; only the callback is pending.
    ring_buffer__free(ring->rb);
    ring->rb = nullptr;
    ring->callback.SuppressDestruct();
    ring->ownerRef.SuppressDestruct();
    ring->poll.close_cb = nullptr;
    ring->timer.close_cb = nullptr;
    it = g_closing.erase(it);
  }
}

bool BpfObject::Alive(Napi::Env env) {
  if (obj_) return true;
  ThrowErrno(env, EBADF, "bpf_object", "object is closed");
  return false;
}

struct bpf_program *BpfObject::FindProgram(Napi::Env env, Napi::Value name, const char *field) {
  std::string s;
  if (!ToString(env, name, field, &s)) return nullptr;
  if (!Alive(env)) return nullptr;
  struct bpf_program *prog = bpf_object__find_program_by_name(obj_, s.c_str());
  if (!prog) ThrowErrno(env, ENOENT, "bpf_object__find_program_by_name", "no program named " + s);
  return prog;
}

struct bpf_map *BpfObject::FindMap(Napi::Env env, Napi::Value name, const char *field) {
  std::string s;
  if (!ToString(env, name, field, &s)) return nullptr;
  if (!Alive(env)) return nullptr;
  struct bpf_map *map = bpf_object__find_map_by_name(obj_, s.c_str());
  if (!map) ThrowErrno(env, ENOENT, "bpf_object__find_map_by_name", "no map named " + s);
  return map;
}

// setGlobal(name: string, value: number | bigint): writes a `const volatile` variable of
// .rodata before load, at the offset and size BTF gives for it.
Napi::Value BpfObject::SetGlobal(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ToString(env, info[0], "name", &name)) return env.Undefined();
  bool negative = false;
  uint64_t value = 0;
  if (info[1].IsNumber() && info[1].As<Napi::Number>().DoubleValue() < 0) {
    int64_t sv;
    if (!ToInt(env, info[1], "value", -9007199254740991LL, -1, &sv)) return env.Undefined();
    negative = true;
    value = static_cast<uint64_t>(sv);
  } else if (!ToU64(env, info[1], "value", &value)) {
    return env.Undefined();
  }
  if (!Alive(env)) return env.Undefined();
  if (loaded_) {
    ThrowErrno(env, EBUSY, "setGlobal", "object already loaded; tunables are fixed at load");
    return env.Undefined();
  }
  struct bpf_map *rodata = nullptr;
  struct bpf_map *map;
  bpf_object__for_each_map(map, obj_) {
    const char *mname = bpf_map__name(map);
    size_t len = strlen(mname);
    if (bpf_map__is_internal(map) && len >= 7 && strcmp(mname + len - 7, ".rodata") == 0) rodata = map;
  }
  struct btf *btf = bpf_object__btf(obj_);
  int sec = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -ENOENT;
  if (!rodata || sec < 0) {
    ThrowErrno(env, ENOENT, "setGlobal", "object has no .rodata section (no const volatile globals)");
    return env.Undefined();
  }
  const struct btf_type *t = btf__type_by_id(btf, sec);
  const struct btf_var_secinfo *vsi = btf_var_secinfos(t);
  for (int i = 0; i < btf_vlen(t); i++, vsi++) {
    const struct btf_type *var = btf__type_by_id(btf, vsi->type);
    if (name != btf__name_by_offset(btf, var->name_off)) continue;
    size_t size = 0;
    uint8_t *data = static_cast<uint8_t *>(const_cast<void *>(bpf_map__initial_value(rodata, &size)));
    if (!data || vsi->offset + vsi->size > size) {
      ThrowErrno(env, EFAULT, "bpf_map__initial_value", ".rodata image smaller than its BTF");
      return env.Undefined();
    }
    uint32_t width = vsi->size;
    if (width != 1 && width != 2 && width != 4 && width != 8) {
      ThrowErrno(env, EINVAL, "setGlobal", name + " is not a 1/2/4/8-byte integer");
      return env.Undefined();
    }
    if (width < 8) {
      uint64_t limit = 1ULL << (8 * width);
      int64_t sv = static_cast<int64_t>(value);
      bool fits = negative ? sv >= -static_cast<int64_t>(limit / 2) : value < limit;
      if (!fits) {
        ThrowTypeError(env, "value", (std::string("does not fit in ") + name + " (" + std::to_string(width) + " bytes)").c_str());
        return env.Undefined();
      }
    }
    memcpy(data + vsi->offset, &value, width);  // little-endian hosts (x86, arm64)
    return env.Undefined();
  }
  ThrowErrno(env, ENOENT, "setGlobal", "no const volatile global named " + name);
  return env.Undefined();
}

// setAutoload(prog: string, on: boolean)
Napi::Value BpfObject::SetAutoload(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_program *prog = FindProgram(env, info[0], "prog");
  if (!prog) return env.Undefined();
  if (!info[1].IsBoolean()) {
    ThrowTypeError(env, "on", "must be a boolean");
    return env.Undefined();
  }
  int err = bpf_program__set_autoload(prog, info[1].As<Napi::Boolean>().Value());
  if (err) ThrowErrno(env, err, "bpf_program__set_autoload");
  return env.Undefined();
}

// setMapMaxEntries(map: string, n: number)
Napi::Value BpfObject::SetMapMaxEntries(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = FindMap(env, info[0], "map");
  if (!map) return env.Undefined();
  int64_t n;
  if (!ToInt(env, info[1], "maxEntries", 1, 1LL << 31, &n)) return env.Undefined();
  int err = bpf_map__set_max_entries(map, static_cast<uint32_t>(n));
  if (err) ThrowErrno(env, err, "bpf_map__set_max_entries");
  return env.Undefined();
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!Alive(env)) return env.Undefined();
  VerboseScope scope(verbose_);
  int err = bpf_object__load(obj_);
  if (err) {
    ThrowErrno(env, err, "bpf_object__load", verbose_ ? "" : "rerun with verbose for the verifier log");
    return env.Undefined();
  }
  loaded_ = true;
  return env.Undefined();
}

// programs(): [{name, section, autoload}]
Napi::Value BpfObject::Programs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!Alive(env)) return env.Undefined();
  Napi::Array out = Napi::Array::New(env);
  struct bpf_program *prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj_) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", bpf_program__name(prog));
    p.Set("section", bpf_program__section_name(prog));
    p.Set("autoload", bpf_program__autoload(prog));
    out.Set(i++, p);
  }
  return out;
}

int BpfObject::AddLink(struct bpf_link *link) {
  int id = nextId_++;
  links_[id] = link;
  return id;
}

// attach(prog): the attach point named by the SEC() (tp_btf, raw_tp, tracepoint/...).
Napi::Value BpfObject::Attach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_program *prog = FindProgram(env, info[0], "prog");
  if (!prog) return env.Undefined();
  VerboseScope scope(verbose_);
  struct bpf_link *link = bpf_program__attach(prog);
  if (!link) {
    ThrowErrno(env, errno, "bpf_program__attach", bpf_program__name(prog));
    return env.Undefined();
  }
  return Napi::Number::New(env, AddLink(link));
}

// attachTracepoint(prog, category, name): a tracefs tracepoint (needs tracefs mounted).
Napi::Value BpfObject::AttachTracepoint(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_program *prog = FindProgram(env, info[0], "prog");
  if (!prog) return env.Undefined();
  std::string category, name;
  if (!ToString(env, info[1], "category", &category) || !ToString(env, info[2], "name", &name)) return env.Undefined();
  VerboseScope scope(verbose_);
  struct bpf_link *link = bpf_program__attach_tracepoint(prog, category.c_str(), name.c_str());
  if (!link) {
    ThrowErrno(env, errno, "bpf_program__attach_tracepoint", category + ":" + name);
    return env.Undefined();
  }
  return Napi::Number::New(env, AddLink(link));
}

// Parses a PerfEventAttr. `name` prefixes field names in errors ("attr", "leader"). A group
// leader may count without sampling (no period/frequency) and is opened enabled: the kernel
// schedules a group only while its leader is on, and libbpf enables only the member it attaches.
bool ParsePerfAttr(Napi::Env env, Napi::Value v, struct perf_event_attr *attr, const std::string &name = "attr",
                   bool leader = false) {
  auto field = [&name](const char *f) { return name + "." + f; };
  if (!v.IsObject()) {
    ThrowTypeError(env, name.c_str(), "must be an object");
    return false;
  }
  Napi::Object o = v.As<Napi::Object>();
  memset(attr, 0, sizeof(*attr));
  attr->size = sizeof(*attr);
  int64_t type;
  if (!ToInt(env, o.Get("type"), field("type").c_str(), 0, 0xffffffffLL, &type)) return false;
  attr->type = static_cast<uint32_t>(type);
  uint64_t period = 0, freq = 0, sampleType = leader ? 0 : PERF_SAMPLE_ADDR, config = 0, config1 = 0, config2 = 0, readFormat = 0;
  if (!OptU64(env, o, "config", field("config").c_str(), &config) ||
      !OptU64(env, o, "config1", field("config1").c_str(), &config1) ||
      !OptU64(env, o, "config2", field("config2").c_str(), &config2) ||
      !OptU64(env, o, "samplePeriod", field("samplePeriod").c_str(), &period) ||
      !OptU64(env, o, "sampleFreq", field("sampleFreq").c_str(), &freq) ||
      !OptU64(env, o, "sampleType", field("sampleType").c_str(), &sampleType) ||
      !OptU64(env, o, "readFormat", field("readFormat").c_str(), &readFormat))
    return false;
  attr->config = config;
  attr->config1 = config1;
  attr->config2 = config2;
  attr->read_format = readFormat;
  if (period && freq) {
    ThrowTypeError(env, field("samplePeriod").c_str(), "give samplePeriod or sampleFreq, not both");
    return false;
  }
  if (!leader && !period && !freq) {
    ThrowTypeError(env, field("samplePeriod").c_str(), "exactly one of samplePeriod and sampleFreq must be a positive integer");
    return false;
  }
  if (freq) {
    attr->freq = 1;
    attr->sample_freq = freq;
  } else {
    attr->sample_period = period;
  }
  attr->sample_type = sampleType;
  Napi::Value precise = o.Get("preciseIp");
  if (!precise.IsUndefined()) {
    int64_t p;
    if (!ToInt(env, precise, field("preciseIp").c_str(), 0, 3, &p)) return false;
    attr->precise_ip = static_cast<uint64_t>(p);
  }
  Napi::Value wakeup = o.Get("wakeupEvents");
  if (!wakeup.IsUndefined()) {
    int64_t w;
    if (!ToInt(env, wakeup, field("wakeupEvents").c_str(), 0, 0xffffffffLL, &w)) return false;
    attr->wakeup_events = static_cast<uint32_t>(w);
  }
  bool excludeKernel = false, excludeHv = false, excludeUser = false, excludeIdle = false, inherit = false;
  if (!OptBool(env, o, "excludeKernel", field("excludeKernel").c_str(), &excludeKernel) ||
      !OptBool(env, o, "excludeHv", field("excludeHv").c_str(), &excludeHv) ||
      !OptBool(env, o, "excludeUser", field("excludeUser").c_str(), &excludeUser) ||
      !OptBool(env, o, "excludeIdle", field("excludeIdle").c_str(), &excludeIdle) ||
      !OptBool(env, o, "inherit", field("inherit").c_str(), &inherit))
    return false;
  attr->exclude_kernel = excludeKernel;
  attr->exclude_hv = excludeHv;
  attr->exclude_user = excludeUser;
  attr->exclude_idle = excludeIdle;
  attr->inherit = inherit;
  attr->disabled = leader ? 0 : 1;  // libbpf enables the member once the program is attached
  return true;
}

// attachPerfEvent(prog, attr, cpus: number[] | null, pid: number, leader?: attr):
//   {links: [{cpu, link}], failed: [Error with .cpu]}.
// One perf event per listed CPU (pid -1 = every task), or one for pid on any CPU. With a
// leader, each CPU first opens the leader (a counting event) and the sampling event joins its
// group (group_fd), as perf does for Intel's mem-loads-aux; the leader's fd lives as long as
// the link. A CPU that fails is reported and the others keep going; no exception for that.
Napi::Value BpfObject::AttachPerfEvent(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_program *prog = FindProgram(env, info[0], "prog");
  if (!prog) return env.Undefined();
  struct perf_event_attr attr;
  if (!ParsePerfAttr(env, info[1], &attr)) return env.Undefined();
  std::vector<int> cpus;
  if (info[2].IsArray()) {
    Napi::Array arr = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      int64_t cpu;
      if (!ToInt(env, arr.Get(i), "target.cpus", 0, 65535, &cpu)) return env.Undefined();
      cpus.push_back(static_cast<int>(cpu));
    }
    if (cpus.empty()) {
      ThrowTypeError(env, "target.cpus", "must list at least one CPU");
      return env.Undefined();
    }
  } else if (!info[2].IsNull() && !info[2].IsUndefined()) {
    ThrowTypeError(env, "target.cpus", "must be an array of CPU numbers");
    return env.Undefined();
  }
  int64_t pid = -1;
  if (!info[3].IsUndefined() && !ToInt(env, info[3], "target.pid", -1, 0x7fffffff, &pid)) return env.Undefined();
  struct perf_event_attr leader;
  bool grouped = info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull();
  if (grouped && !ParsePerfAttr(env, info[4], &leader, "leader", true)) return env.Undefined();
  if (cpus.empty()) {
    if (pid < 0) {
      ThrowTypeError(env, "target", "needs cpus or pid");
      return env.Undefined();
    }
    cpus.push_back(-1);
  }
  VerboseScope scope(verbose_);
  Napi::Array links = Napi::Array::New(env);
  Napi::Array failed = Napi::Array::New(env);
  for (int cpu : cpus) {
    std::string where = "cpu " + std::to_string(cpu) + ", pid " + std::to_string(pid);
    int leaderFd = -1;
    if (grouped) {
      leaderFd = static_cast<int>(syscall(SYS_perf_event_open, &leader, static_cast<pid_t>(pid), cpu, -1, PERF_FLAG_FD_CLOEXEC));
      if (leaderFd < 0) {
        Napi::Error e = ErrnoError(env, errno, "perf_event_open", "group leader, " + where);
        e.Set("cpu", Napi::Number::New(env, cpu));
        failed.Set(failed.Length(), e.Value());
        continue;
      }
    }
    int fd = static_cast<int>(syscall(SYS_perf_event_open, &attr, static_cast<pid_t>(pid), cpu, leaderFd, PERF_FLAG_FD_CLOEXEC));
    int err = fd < 0 ? errno : 0;
    struct bpf_link *link = nullptr;
    if (fd >= 0) {
      link = bpf_program__attach_perf_event(prog, fd);
      if (!link) {
        err = errno;
        close(fd);
      }
    }
    if (!link) {
      if (leaderFd >= 0) close(leaderFd);
      Napi::Error e = ErrnoError(env, err, fd < 0 ? "perf_event_open" : "bpf_program__attach_perf_event", where);
      e.Set("cpu", Napi::Number::New(env, cpu));
      failed.Set(failed.Length(), e.Value());
      continue;
    }
    int id = AddLink(link);  // the link owns the member's fd and closes it on destroy
    perfFds_[id] = fd;
    if (leaderFd >= 0) groupLeaders_[id] = leaderFd;
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("cpu", cpu);
    entry.Set("link", id);
    links.Set(links.Length(), entry);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("links", links);
  out.Set("failed", failed);
  return out;
}

// setPerfPeriod(link, period): ioctl(PERF_EVENT_IOC_PERIOD) on the sampling event of a
// link from attachPerfEvent; the new period takes effect at the event's next overflow.
Napi::Value BpfObject::SetPerfPeriod(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t id;
  if (!ToInt(env, info[0], "link", 1, 0x7fffffff, &id)) return env.Undefined();
  int64_t period;
  if (!ToInt(env, info[1], "period", 1, int64_t{1} << 32, &period)) return env.Undefined();
  if (!Alive(env)) return env.Undefined();
  auto it = perfFds_.find(static_cast<int>(id));
  if (it == perfFds_.end()) {
    ThrowErrno(env, links_.count(static_cast<int>(id)) ? EINVAL : ENOENT, "ioctl(PERF_EVENT_IOC_PERIOD)",
               links_.count(static_cast<int>(id)) ? "link " + std::to_string(id) + " is not a perf event" : "no such link");
    return env.Undefined();
  }
  uint64_t value = static_cast<uint64_t>(period);
  if (ioctl(it->second, PERF_EVENT_IOC_PERIOD, &value) != 0) {
    ThrowErrno(env, errno, "ioctl(PERF_EVENT_IOC_PERIOD)", "link " + std::to_string(id) + ", period " + std::to_string(period));
    return env.Undefined();
  }
  return env.Undefined();
}

// Destroys a link, then closes its group leader (after the member, which it leads).
int BpfObject::DestroyLink(int id) {
  auto it = links_.find(id);
  if (it == links_.end()) return -ENOENT;
  int err = bpf_link__destroy(it->second);
  links_.erase(it);
  perfFds_.erase(id);
  auto leader = groupLeaders_.find(id);
  if (leader != groupLeaders_.end()) {
    close(leader->second);
    groupLeaders_.erase(leader);
  }
  return err;
}

Napi::Value BpfObject::Detach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t id;
  if (!ToInt(env, info[0], "link", 1, 0x7fffffff, &id)) return env.Undefined();
  if (!links_.count(static_cast<int>(id))) {
    ThrowErrno(env, ENOENT, "bpf_link__destroy", "no such link");
    return env.Undefined();
  }
  int err = DestroyLink(static_cast<int>(id));
  if (err) ThrowErrno(env, err, "bpf_link__destroy");
  return env.Undefined();
}

// progInfo(prog): {id, runTimeNs, runCnt, recursionMisses}; run counters need
// kernel.bpf_stats_enabled=1.
Napi::Value BpfObject::ProgInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_program *prog = FindProgram(env, info[0], "prog");
  if (!prog) return env.Undefined();
  int fd = bpf_program__fd(prog);
  if (fd < 0) {
    ThrowErrno(env, EBADF, "bpf_program__fd", "program not loaded");
    return env.Undefined();
  }
  struct bpf_prog_info pinfo;
  memset(&pinfo, 0, sizeof(pinfo));
  uint32_t len = sizeof(pinfo);
  int err = bpf_obj_get_info_by_fd(fd, &pinfo, &len);
  if (err) {
    ThrowErrno(env, err, "bpf_obj_get_info_by_fd");
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", pinfo.id);
  out.Set("runTimeNs", Napi::Number::New(env, static_cast<double>(pinfo.run_time_ns)));
  out.Set("runCnt", Napi::Number::New(env, static_cast<double>(pinfo.run_cnt)));
  out.Set("recursionMisses", Napi::Number::New(env, static_cast<double>(pinfo.recursion_misses)));
  return out;
}

int BpfObject::OnSample(void *ctx, void *data, size_t size) {
  auto *ring = static_cast<Ring *>(ctx);
  if (size != ring->recordSize) {
    ring->malformed++;
    return 0;
  }
  const uint8_t *p = static_cast<const uint8_t *>(data);
  ring->staging.insert(ring->staging.end(), p, p + size);
  // libbpf has already consumed this record; stopping here only bounds the batch.
  return ring->staging.size() >= ring->maxBatchBytes ? kStagingFull : 0;
}

// Raw napi calls throughout: this also runs while a worker's environment is being torn
// down, when JS cannot run and node-addon-api's throw-on-failure would abort the process.
void BpfObject::OnPoll(uv_poll_t *handle, int status, int events) {
  Drain(static_cast<Ring *>(handle->data), status);
}

void BpfObject::OnTimer(uv_timer_t *handle) {
  Drain(static_cast<Ring *>(handle->data), 0);
}

void BpfObject::Drain(Ring *ring, int status) {
  if (ring->closing) return;
  napi_env env = ring->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value error = nullptr;
  int err = status < 0 ? status : ring_buffer__consume(ring->rb);
  if (err < 0 && err != kStagingFull) {
    error = ErrnoError(Napi::Env(env), err, status < 0 ? "uv_poll" : "ring_buffer__consume").Value();
  } else if (!ring->staging.empty()) {
    size_t n = ring->staging.size();
    void *data = nullptr;
    napi_value buf, bytes, global, fn, result;
    if (napi_create_arraybuffer(env, n, &data, &buf) == napi_ok &&
        napi_create_typedarray(env, napi_uint8_array, n, buf, 0, &bytes) == napi_ok &&
        napi_get_global(env, &global) == napi_ok) {
      memcpy(data, ring->staging.data(), n);
      ring->batches++;
      fn = ring->callback.Value();
      napi_status st = napi_make_callback(env, nullptr, global, fn, 1, &bytes, &result);
      if (st == napi_pending_exception) napi_get_and_clear_last_exception(env, &error);
    }
    ring->staging.clear();
  }
  // An exception in onBatch (or a consume failure) goes to 'uncaughtException'.
  if (error) napi_fatal_exception(env, error);
  napi_close_handle_scope(env, scope);
}

// ringStart(map, recordSize, onBatch, maxBatchBytes?, pollMs?): ring id. Also drains every
// pollMs (0 = only on wake-ups). onBatch(Uint8Array) gets
// every record drained in one wake-up, concatenated.
Napi::Value BpfObject::RingStart(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = FindMap(env, info[0], "map");
  if (!map) return env.Undefined();
  int64_t recordSize, maxBatch = 4 << 20;
  if (!ToInt(env, info[1], "recordSize", 1, 1 << 20, &recordSize)) return env.Undefined();
  if (!info[2].IsFunction()) {
    ThrowTypeError(env, "onBatch", "must be a function");
    return env.Undefined();
  }
  if (!info[3].IsUndefined() && !ToInt(env, info[3], "maxBatchBytes", recordSize, 1LL << 30, &maxBatch)) return env.Undefined();
  int64_t pollMs = 0;
  if (!info[4].IsUndefined() && !ToInt(env, info[4], "pollMs", 0, 3600000, &pollMs)) return env.Undefined();
  if (bpf_map__type(map) != BPF_MAP_TYPE_RINGBUF) {
    ThrowTypeError(env, "map", "is not a ring buffer map");
    return env.Undefined();
  }
  int mapFd = bpf_map__fd(map);
  if (mapFd < 0) {
    ThrowErrno(env, EBADF, "bpf_map__fd", "object not loaded");
    return env.Undefined();
  }
  auto *ring = new Ring();
  ring->owner = this;
  ring->env = env;
  ring->recordSize = static_cast<size_t>(recordSize);
  ring->maxBatchBytes = static_cast<size_t>(maxBatch);
  ring->staging.reserve(ring->maxBatchBytes + ring->recordSize);
  ring->rb = ring_buffer__new(mapFd, OnSample, ring, nullptr);
  if (!ring->rb) {
    int err = errno;
    delete ring;
    ThrowErrno(env, err, "ring_buffer__new");
    return env.Undefined();
  }
  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  int err = uv_poll_init(loop, &ring->poll, ring_buffer__epoll_fd(ring->rb));
  if (err) {
    ring_buffer__free(ring->rb);
    delete ring;
    ThrowErrno(env, -err, "uv_poll_init");
    return env.Undefined();
  }
  ring->poll.data = ring;
  ring->openHandles = 1;
  uv_timer_init(loop, &ring->timer);  // cannot fail
  ring->timer.data = ring;
  ring->openHandles = 2;
  ring->pollMs = static_cast<uint64_t>(pollMs);
  err = uv_poll_start(&ring->poll, UV_READABLE, OnPoll);
  if (!err && pollMs) err = uv_timer_start(&ring->timer, OnTimer, pollMs, pollMs);
  if (err) {
    ring->envGone = true;  // nothing JS-side to release yet
    CloseRing(ring);
    ThrowErrno(env, -err, "uv_poll_start");
    return env.Undefined();
  }
  ring->callback = Napi::Persistent(info[2].As<Napi::Function>());
  ring->ownerRef = Napi::Persistent(Value());
  ring->id = nextId_++;
  rings_[ring->id] = ring;
  return Napi::Number::New(env, ring->id);
}

void BpfObject::OnRingClosed(uv_handle_t *handle) {
  auto *ring = static_cast<Ring *>(handle->data);
  if (--ring->openHandles > 0) return;
  {
    std::lock_guard<std::mutex> lock(g_closingMutex);
    g_closing.erase(ring);
  }
  ring_buffer__free(ring->rb);
  if (ring->envGone) {
    ring->callback.SuppressDestruct();
    ring->ownerRef.SuppressDestruct();
  }
  delete ring;
}

void BpfObject::CloseRing(Ring *ring) {
  if (ring->closing) return;
  ring->closing = true;
  uv_poll_stop(&ring->poll);
  uv_timer_stop(&ring->timer);
  if (!ring->envGone) {
    // Release the JS references now (we are on the JS thread); the memory goes when
    // libuv has closed the handle.
    ring->callback.Reset();
    ring->ownerRef.Reset();
  }
  ring->envGone = true;
  {
    std::lock_guard<std::mutex> lock(g_closingMutex);
    g_closing.insert(ring);
  }
  uv_close(reinterpret_cast<uv_handle_t *>(&ring->poll), OnRingClosed);
  uv_close(reinterpret_cast<uv_handle_t *>(&ring->timer), OnRingClosed);
}

Napi::Value BpfObject::RingClose(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t id;
  if (!ToInt(env, info[0], "ring", 1, 0x7fffffff, &id)) return env.Undefined();
  auto it = rings_.find(static_cast<int>(id));
  if (it == rings_.end()) return env.Undefined();  // closing twice is harmless
  Ring *ring = it->second;
  rings_.erase(it);
  CloseRing(ring);
  return env.Undefined();
}

// ringStats(ring): {batches, malformed}
Napi::Value BpfObject::RingStats(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t id;
  if (!ToInt(env, info[0], "ring", 1, 0x7fffffff, &id)) return env.Undefined();
  auto it = rings_.find(static_cast<int>(id));
  if (it == rings_.end()) {
    ThrowErrno(env, ENOENT, "ringStats", "no such ring");
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("batches", static_cast<double>(it->second->batches));
  out.Set("malformed", static_cast<double>(it->second->malformed));
  return out;
}

// Moves up to `limit` entries out of a hash map into plain buffers. Touches no JS: runs
// on the calling thread (drainHash) or a libuv pool thread (drainHashAsync).
struct HashDrain {
  int fd = -1;  // owned (a dup of the map fd, so close() meanwhile cannot pull it away)
  bool useBatch = true;
  size_t keySize = 0, valueSize = 0, limit = 0;
  std::unique_ptr<uint8_t[]> keys, values;  // uninitialised on purpose: only `count` used
  size_t count = 0;
  bool usedBatch = false;
  int err = 0;  // negative errno
  const char *syscall = "";

  ~HashDrain() {
    if (fd >= 0) close(fd);
  }

  void Run() {
    keys.reset(new uint8_t[keySize * limit]);
    values.reset(new uint8_t[valueSize * limit]);
    if (useBatch) {
      std::vector<uint8_t> inBatch(std::max<size_t>(keySize, 8)), outBatch(std::max<size_t>(keySize, 8));
      bool first = true;
      LIBBPF_OPTS(bpf_map_batch_opts, opts);
      while (count < limit) {
        uint32_t n = static_cast<uint32_t>(limit - count);
        int e = bpf_map_lookup_and_delete_batch(fd, first ? nullptr : inBatch.data(), outBatch.data(),
                                                keys.get() + count * keySize, values.get() + count * valueSize, &n, &opts);
        e = e < 0 ? -errno : 0;
        if (e && first && (e == -EINVAL || e == -ENOTSUPP || e == -EOPNOTSUPP)) break;  // fall back
        usedBatch = true;
        count += n;
        if (e == -ENOENT || e == -ENOSPC) break;  // end of map / a bucket larger than what is left
        if (e) {
          err = e;
          syscall = "bpf_map_lookup_and_delete_batch";
          return;
        }
        first = false;
        inBatch = outBatch;
      }
    }
    if (usedBatch) return;
    // Fallback for kernels without batch ops: increments landing between lookup and
    // delete are lost.
    std::vector<uint8_t> prev(keySize);
    bool havePrev = false;
    size_t listed = 0;
    while (listed < limit) {
      uint8_t *next = keys.get() + listed * keySize;
      if (bpf_map_get_next_key(fd, havePrev ? prev.data() : nullptr, next) < 0) {
        if (errno == ENOENT) break;
        err = -errno;
        syscall = "bpf_map_get_next_key";
        return;
      }
      memcpy(prev.data(), next, keySize);
      havePrev = true;
      listed++;
    }
    for (size_t i = 0; i < listed; i++) {
      uint8_t *key = keys.get() + i * keySize;
      if (bpf_map_lookup_elem(fd, key, values.get() + count * valueSize) < 0) continue;  // evicted meanwhile
      bpf_map_delete_elem(fd, key);
      if (count != i) memmove(keys.get() + count * keySize, key, keySize);
      count++;
    }
  }

  Napi::Value Result(Napi::Env env) {
    if (err) return ErrnoError(env, err, syscall).Value();
    Napi::ArrayBuffer k = Napi::ArrayBuffer::New(env, count * keySize);
    Napi::ArrayBuffer v = Napi::ArrayBuffer::New(env, count * valueSize);
    if (count) {
      memcpy(k.Data(), keys.get(), count * keySize);
      memcpy(v.Data(), values.get(), count * valueSize);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("keys", k);
    out.Set("values", v);
    out.Set("count", static_cast<double>(count));
    out.Set("keySize", static_cast<double>(keySize));
    out.Set("valueSize", static_cast<double>(valueSize));
    out.Set("usedBatch", usedBatch);
    return out;
  }
};

class DrainWorker : public Napi::AsyncWorker {
 public:
  DrainWorker(Napi::Env env, std::unique_ptr<HashDrain> drain)
      : Napi::AsyncWorker(env, "vtier.drainHash"), drain_(std::move(drain)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { drain_->Run(); }
  void OnOK() override {
    Napi::Value result = drain_->Result(Env());
    if (drain_->err) deferred_.Reject(result);
    else deferred_.Resolve(result);
  }

 private:
  std::unique_ptr<HashDrain> drain_;
  Napi::Promise::Deferred deferred_;
};

// Validates drainHash(map, useBatch, limit?) arguments into a HashDrain, or throws.
std::unique_ptr<HashDrain> BpfObject::PrepareDrain(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = FindMap(env, info[0], "map");
  if (!map) return nullptr;
  if (!info[1].IsBoolean()) {
    ThrowTypeError(env, "useBatch", "must be a boolean");
    return nullptr;
  }
  enum bpf_map_type type = bpf_map__type(map);
  if (type != BPF_MAP_TYPE_HASH && type != BPF_MAP_TYPE_LRU_HASH) {
    ThrowTypeError(env, "map", "is not a (non per-CPU) hash map");
    return nullptr;
  }
  int64_t limit = bpf_map__max_entries(map);
  if (!info[2].IsUndefined() && !ToInt(env, info[2], "limit", 1, limit, &limit)) return nullptr;
  int fd = bpf_map__fd(map);
  if (fd < 0) {
    ThrowErrno(env, EBADF, "bpf_map__fd", "object not loaded");
    return nullptr;
  }
  auto drain = std::make_unique<HashDrain>();
  drain->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (drain->fd < 0) {
    ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
    return nullptr;
  }
  drain->useBatch = info[1].As<Napi::Boolean>().Value();
  drain->keySize = bpf_map__key_size(map);
  drain->valueSize = bpf_map__value_size(map);
  drain->limit = static_cast<size_t>(limit);
  return drain;
}

// drainHash(map, useBatch: boolean, limit?: number):
//   {keys: ArrayBuffer, values: ArrayBuffer, count, keySize, valueSize, usedBatch}
// Every returned entry is deleted from the map.
Napi::Value BpfObject::DrainHash(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::unique_ptr<HashDrain> drain = PrepareDrain(info);
  if (!drain) return env.Undefined();
  drain->Run();
  Napi::Value result = drain->Result(env);
  if (drain->err) {
    Napi::Error(env, result).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return result;
}

// drainHashAsync(...): the same on the libuv thread pool; a Promise of the same object.
Napi::Value BpfObject::DrainHashAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::unique_ptr<HashDrain> drain = PrepareDrain(info);
  if (!drain) return env.Undefined();
  auto *worker = new DrainWorker(env, std::move(drain));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// readArray(map): ArrayBuffer of u64 per index, per-CPU arrays summed over CPUs.
Napi::Value BpfObject::ReadArray(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = FindMap(env, info[0], "map");
  if (!map) return env.Undefined();
  enum bpf_map_type type = bpf_map__type(map);
  bool percpu = type == BPF_MAP_TYPE_PERCPU_ARRAY;
  if ((type != BPF_MAP_TYPE_ARRAY && !percpu) || bpf_map__value_size(map) != 8) {
    ThrowTypeError(env, "map", "is not an array of 8-byte values");
    return env.Undefined();
  }
  int fd = bpf_map__fd(map);
  if (fd < 0) {
    ThrowErrno(env, EBADF, "bpf_map__fd", "object not loaded");
    return env.Undefined();
  }
  int ncpus = percpu ? libbpf_num_possible_cpus() : 1;
  if (ncpus < 0) {
    ThrowErrno(env, ncpus, "libbpf_num_possible_cpus");
    return env.Undefined();
  }
  uint32_t n = bpf_map__max_entries(map);
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, n * 8);
  auto *sums = static_cast<uint64_t *>(out.Data());
  std::vector<uint64_t> vals(ncpus);
  for (uint32_t i = 0; i < n; i++) {
    if (bpf_map_lookup_elem(fd, &i, vals.data()) < 0) {
      ThrowErrno(env, errno, "bpf_map_lookup_elem");
      return env.Undefined();
    }
    uint64_t sum = 0;
    for (int c = 0; c < ncpus; c++) sum += vals[c];
    sums[i] = sum;
  }
  return out;
}

void BpfObject::CloseAll() {
  for (auto &entry : rings_) CloseRing(entry.second);
  rings_.clear();
  for (auto &entry : links_) bpf_link__destroy(entry.second);
  links_.clear();
  for (auto &entry : groupLeaders_) close(entry.second);
  groupLeaders_.clear();
  perfFds_.clear();
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo &info) {
  CloseAll();
  if (hookAdded_) {
    napi_remove_env_cleanup_hook(env_, EnvCleanup, this);
    hookAdded_ = false;
  }
  return info.Env().Undefined();
}

// btfFuncProtoArgs(typedefName): parameter count of a function-pointer typedef in the
// running kernel's BTF (e.g. btf_trace_damon_aggregated), or -1 when absent.
Napi::Value BtfFuncProtoArgs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ToString(env, info[0], "name", &name)) return env.Undefined();
  struct btf *btf = btf__load_vmlinux_btf();
  if (!btf) {
    ThrowErrno(env, errno, "btf__load_vmlinux_btf");
    return env.Undefined();
  }
  int result = -1;
  int id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_TYPEDEF);
  if (id > 0) {
    const struct btf_type *t = btf__type_by_id(btf, id);
    while (t && (btf_is_typedef(t) || btf_is_ptr(t))) t = btf__type_by_id(btf, t->type);
    if (t && btf_is_func_proto(t)) result = btf_vlen(t);
  }
  btf__free(btf);
  return Napi::Number::New(env, result);
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo &info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) {
    ThrowErrno(info.Env(), n, "libbpf_num_possible_cpus");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), n);
}

// bpf(BPF_MAP_CREATE) of a 1-entry array, closed at once: whether this process may use
// bpf() at all (capabilities alone do not tell: an LSM or a sysctl can still refuse).
Napi::Value ProbeMapCreate(const Napi::CallbackInfo &info) {
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "vtier_probe", 4, 4, 1, nullptr);
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "bpf");
    return info.Env().Undefined();
  }
  close(fd);
  return info.Env().Undefined();
}

// enableRunTimeStats(): fd of BPF_ENABLE_STATS(BPF_STATS_RUN_TIME). Run time and count of
// every program are collected while any such fd is open (refcounted in the kernel, unlike
// the kernel.bpf_stats_enabled sysctl); closing the fd ends this holder's share.
Napi::Value EnableRunTimeStats(const Napi::CallbackInfo &info) {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "bpf(BPF_ENABLE_STATS)");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), fd);
}

// Shared layouts, for the layout test and the TypeScript decoders' self-check.
Napi::Value Layouts(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("vt_page_key", sizeof(struct vt_page_key));
  out.Set("vt_page_value", sizeof(struct vt_page_value));
  out.Set("vt_sample_record", sizeof(struct vt_sample_record));
  out.Set("vt_damon_record", sizeof(struct vt_damon_record));
  return out;
}

}  // namespace

void InitBpf(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(LibbpfPrint);
  Napi::Object bpf = Napi::Object::New(env);
  bpf.Set("BpfObject", BpfObject::Define(env));
  bpf.Set("btfFuncProtoArgs", Napi::Function::New(env, BtfFuncProtoArgs, "btfFuncProtoArgs"));
  bpf.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus, "numPossibleCpus"));
  bpf.Set("layouts", Napi::Function::New(env, Layouts, "layouts"));
  bpf.Set("probeMapCreate", Napi::Function::New(env, ProbeMapCreate, "probeMapCreate"));
  bpf.Set("enableRunTimeStats", Napi::Function::New(env, EnableRunTimeStats, "enableRunTimeStats"));
  exports.Set("bpf", bpf);
}

}  // namespace vtier
