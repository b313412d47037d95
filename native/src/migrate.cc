// move_pages(2) for the host agent: move a process's pages between NUMA nodes, or ask the
// kernel where they are (nodes == null). Called through syscall(2) so no libnuma is needed.
// The async form runs the call on the libuv thread pool: moving 4 KB pages costs ~1 us
// each, so a batch of thousands must not block the event loop.
#include <napi.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "errors.h"

namespace vtier {
namespace {

constexpr int kMpolMfMove = 1 << 1;
constexpr int kMpolMfMoveAll = 1 << 2;
// A bound on one call, so a hostile or buggy caller cannot make us allocate without limit.
constexpr size_t kMaxPagesPerCall = 1u << 24;

struct MoveRequest {
  pid_t pid = 0;
  int flags = 0;
  bool query = false;
  std::vector<void *> pages;
  std::vector<int> nodes;
  std::vector<int> status;
  long result = 0;
  int err = 0;

  void Run() {
    // Pages the kernel does not reach (a positive return stops early) keep -EAGAIN, so
    // they are never mistaken for "on node 0".
    status.assign(pages.size(), query ? 0 : -EAGAIN);
    long rc = syscall(SYS_move_pages, pid, static_cast<unsigned long>(pages.size()), pages.data(),
                      query ? nullptr : nodes.data(), status.data(), flags);
    if (rc < 0) {
      err = errno;
      result = -1;
    } else {
      result = rc;
    }
  }
};

// Parses (pid, addresses, nodes|null, flags) into `req`; on failure a TypeError is pending.
bool ParseArgs(const Napi::CallbackInfo &info, MoveRequest &req) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) {
    ThrowTypeError(env, "movePages", "expects (pid, addresses, nodes|null, flags)");
    return false;
  }
  if (!info[0].IsNumber()) {
    ThrowTypeError(env, "pid", "must be a number");
    return false;
  }
  // Int64Value() maps NaN and Infinity to 0, which move_pages reads as "this process":
  // check the double itself, so only an exact integer in [0, INT32_MAX] gets through.
  double pidValue = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(pidValue) || std::floor(pidValue) != pidValue || pidValue < 0 || pidValue > INT32_MAX) {
    ThrowTypeError(env, "pid", "must be an integer process id in [0, 2147483647] (0 = this process)");
    return false;
  }
  int64_t pid = static_cast<int64_t>(pidValue);
  req.pid = static_cast<pid_t>(pid);

  if (!info[1].IsTypedArray()) {
    ThrowTypeError(env, "addresses", "must be a BigUint64Array or Float64Array of virtual addresses");
    return false;
  }
  Napi::TypedArray addrs = info[1].As<Napi::TypedArray>();
  size_t count = addrs.ElementLength();
  if (count > kMaxPagesPerCall) {
    ThrowTypeError(env, "addresses", "too many pages for one call (max 16777216)");
    return false;
  }
  req.pages.resize(count);
  if (addrs.TypedArrayType() == napi_biguint64_array) {
    const uint64_t *src = reinterpret_cast<const uint64_t *>(
        static_cast<const uint8_t *>(addrs.ArrayBuffer().Data()) + addrs.ByteOffset());
    for (size_t i = 0; i < count; i++) req.pages[i] = reinterpret_cast<void *>(static_cast<uintptr_t>(src[i]));
  } else if (addrs.TypedArrayType() == napi_float64_array) {
    const double *src = reinterpret_cast<const double *>(
        static_cast<const uint8_t *>(addrs.ArrayBuffer().Data()) + addrs.ByteOffset());
    for (size_t i = 0; i < count; i++) {
      double v = src[i];
      // Addresses above 2^53 cannot be exact in a double; user space ends at 2^47 (2^56 with LA57).
      if (!(v >= 0 && v <= 9007199254740991.0)) {
        ThrowTypeError(env, "addresses", "holds a value that is not a valid address");
        return false;
      }
      req.pages[i] = reinterpret_cast<void *>(static_cast<uintptr_t>(v));
    }
  } else {
    ThrowTypeError(env, "addresses", "must be a BigUint64Array or Float64Array of virtual addresses");
    return false;
  }

  if (info[2].IsNull() || info[2].IsUndefined()) {
    req.query = true;
  } else if (info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array nodes = info[2].As<Napi::Int32Array>();
    if (nodes.ElementLength() != count) {
      ThrowTypeError(env, "nodes", "must have one node per address");
      return false;
    }
    req.nodes.assign(nodes.Data(), nodes.Data() + count);
  } else {
    ThrowTypeError(env, "nodes", "must be an Int32Array of target nodes, or null to query placement");
    return false;
  }

  if (!info[3].IsNumber()) {
    ThrowTypeError(env, "flags", "must be a number (MPOL_MF_MOVE or MPOL_MF_MOVE_ALL)");
    return false;
  }
  int flags = info[3].As<Napi::Number>().Int32Value();
  if (flags & ~(kMpolMfMove | kMpolMfMoveAll)) {
    ThrowTypeError(env, "flags", "only MPOL_MF_MOVE (2) and MPOL_MF_MOVE_ALL (4) are allowed");
    return false;
  }
  req.flags = flags;
  return true;
}

Napi::Object ResultObject(Napi::Env env, MoveRequest &req) {
  Napi::Int32Array status = Napi::Int32Array::New(env, req.status.size());
  if (!req.status.empty()) std::memcpy(status.Data(), req.status.data(), req.status.size() * sizeof(int));
  Napi::Object out = Napi::Object::New(env);
  out.Set("result", Napi::Number::New(env, static_cast<double>(req.result)));
  out.Set("status", status);
  return out;
}

class MovePagesWorker : public Napi::AsyncWorker {
 public:
  MovePagesWorker(Napi::Env env, MoveRequest &&req)
      : Napi::AsyncWorker(env, "vtier.movePages"), req_(std::move(req)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { req_.Run(); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (req_.err != 0) {
      deferred_.Reject(ErrnoError(env, req_.err, "move_pages").Value());
    } else {
      deferred_.Resolve(ResultObject(env, req_));
    }
  }

 private:
  MoveRequest req_;
  Napi::Promise::Deferred deferred_;
};

// movePages(pid, addresses, nodes|null, flags) -> Promise<{ result, status: Int32Array }>
Napi::Value MovePages(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  MoveRequest req;
  if (!ParseArgs(info, req)) return env.Undefined();
  auto *worker = new MovePagesWorker(env, std::move(req));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// movePagesSync(...) -> { result, status }: same call on the JS thread (benchmarks, tools).
Napi::Value MovePagesSync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  MoveRequest req;
  if (!ParseArgs(info, req)) return env.Undefined();
  req.Run();
  if (req.err != 0) {
    ThrowErrno(env, req.err, "move_pages");
    return env.Undefined();
  }
  return ResultObject(env, req);
}

}  // namespace

void InitMigrate(Napi::Env env, Napi::Object exports) {
  exports.Set("movePages", Napi::Function::New(env, MovePages, "movePages"));
  exports.Set("movePagesSync", Napi::Function::New(env, MovePagesSync, "movePagesSync"));
  exports.Set("MPOL_MF_MOVE", Napi::Number::New(env, kMpolMfMove));
  exports.Set("MPOL_MF_MOVE_ALL", Napi::Number::New(env, kMpolMfMoveAll));
}

}  // namespace vtier
