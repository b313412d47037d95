// Non-blocking stream sockets for the guest <-> host transports. The address family is a
// parameter: AF_UNIX and AF_VSOCK share one code path (socket/bind/listen/accept4/connect/
// read/write/close), so the AF_VSOCK path is exercised through AF_UNIX where vsock must not
// be touched. A SocketHandle drives one fd with uv_poll on the Node loop and delivers
// batches: one 'data' Buffer per wake-up (up to 256 KiB), one 'accept' per new connection.
// Character devices (virtio-serial ports) use the same handle with read/write.
// No C++ exceptions: every failure becomes a pending JS error and an early return.
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <napi.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "errors.h"

namespace vtier {
namespace {

constexpr size_t kReadChunk = 256 * 1024;

enum class Family { Unix, Vsock };

bool ParseFamily(Napi::Env env, Napi::Value value, Family *out) {
  if (value.IsString()) {
    std::string name = value.As<Napi::String>();
    if (name == "unix") { *out = Family::Unix; return true; }
    if (name == "vsock") { *out = Family::Vsock; return true; }
  }
  ThrowTypeError(env, "family", "expected \"unix\" or \"vsock\"");
  return false;
}

int AddressFamily(Family family) { return family == Family::Unix ? AF_UNIX : AF_VSOCK; }

// A u32 field of an address object; -1 in JS is refused (callers pass 0xffffffff for ANY).
bool GetU32(Napi::Env env, Napi::Object obj, const char *field, uint32_t *out) {
  Napi::Value v = obj.Get(field);
  if (env.IsExceptionPending()) return false;
  if (!v.IsNumber()) { ThrowTypeError(env, field, "expected an integer"); return false; }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < 0 || d > 4294967295.0) {
    ThrowTypeError(env, field, "expected an integer in [0, 4294967295]");
    return false;
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

// Validates the address before any socket exists, so bad arguments never open one.
bool ParseAddress(Napi::Env env, Family family, Napi::Value value, bool forListen, sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  if (!value.IsObject()) { ThrowTypeError(env, "address", "expected an object"); return false; }
  Napi::Object obj = value.As<Napi::Object>();
  if (family == Family::Unix) {
    Napi::Value p = obj.Get("path");
    if (!p.IsString()) { ThrowTypeError(env, "path", "expected a string"); return false; }
    std::string path = p.As<Napi::String>();
    auto *sun = reinterpret_cast<sockaddr_un *>(ss);
    if (path.empty()) { ThrowTypeError(env, "path", "must not be empty"); return false; }
    if (path.size() >= sizeof(sun->sun_path)) { ThrowTypeError(env, "path", "longer than 107 bytes"); return false; }
    if (path.find('\0') != std::string::npos) { ThrowTypeError(env, "path", "contains a NUL byte"); return false; }
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path.data(), path.size());
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return true;
  }
  uint32_t cid = 0, port = 0;
  if (!GetU32(env, obj, "cid", &cid) || !GetU32(env, obj, "port", &port)) return false;
  if (!forListen && cid == VMADDR_CID_ANY) { ThrowTypeError(env, "cid", "VMADDR_CID_ANY is only valid for listen"); return false; }
  if (!forListen && port == VMADDR_PORT_ANY) { ThrowTypeError(env, "port", "VMADDR_PORT_ANY is only valid for listen"); return false; }
  auto *svm = reinterpret_cast<sockaddr_vm *>(ss);
  svm->svm_family = AF_VSOCK;
  svm->svm_cid = cid;
  svm->svm_port = port;
  *len = sizeof(sockaddr_vm);
  return true;
}

Napi::Object PeerCredentials(Napi::Env env, int fd) {
  Napi::Object peer = Napi::Object::New(env);
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer.Set("pid", Napi::Number::New(env, cred.pid));
    peer.Set("uid", Napi::Number::New(env, cred.uid));
    peer.Set("gid", Napi::Number::New(env, cred.gid));
  }
  return peer;
}

// socketConnect(family, address) -> { fd, pending }: starts a non-blocking connect.
Napi::Value SocketConnect(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Family family;
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!ParseFamily(env, info[0], &family) || !ParseAddress(env, family, info[1], false, &ss, &len)) return env.Undefined();
  int fd = socket(AddressFamily(family), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { ThrowErrno(env, errno, "socket"); return env.Undefined(); }
  int rc;
  do rc = connect(fd, reinterpret_cast<sockaddr *>(&ss), len); while (rc < 0 && errno == EINTR);
  bool pending = false;
  if (rc < 0) {
    if (errno == EINPROGRESS) {
      pending = true;
    } else {
      int err = errno;
      close(fd);
      ThrowErrno(env, err, "connect");
      return env.Undefined();
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("pending", Napi::Boolean::New(env, pending));
  return out;
}

// socketListen(family, address, backlog) -> fd
Napi::Value SocketListen(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Family family;
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!ParseFamily(env, info[0], &family) || !ParseAddress(env, family, info[1], true, &ss, &len)) return env.Undefined();
  if (!info[2].IsNumber()) { ThrowTypeError(env, "backlog", "expected an integer"); return env.Undefined(); }
  int backlog = info[2].As<Napi::Number>().Int32Value();
  if (backlog < 1 || backlog > 65535) { ThrowTypeError(env, "backlog", "expected 1..65535"); return env.Undefined(); }
  int fd = socket(AddressFamily(family), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { ThrowErrno(env, errno, "socket"); return env.Undefined(); }
  const char *failed = nullptr;
  if (bind(fd, reinterpret_cast<sockaddr *>(&ss), len) < 0) failed = "bind";
  else if (listen(fd, backlog) < 0) failed = "listen";
  if (failed) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, failed);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// socketOpenDevice(path) -> fd: a character device (virtio-serial port) opened non-blocking.
Napi::Value SocketOpenDevice(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) { ThrowTypeError(env, "path", "expected a string"); return env.Undefined(); }
  std::string path = info[0].As<Napi::String>();
  if (path.empty() || path.find('\0') != std::string::npos) { ThrowTypeError(env, "path", "expected a non-empty path"); return env.Undefined(); }
  int fd;
  do fd = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY); while (fd < 0 && errno == EINTR);
  if (fd < 0) { ThrowErrno(env, errno, "open", path); return env.Undefined(); }
  struct stat st {};
  if (fstat(fd, &st) == 0 && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)) {
    close(fd);
    ThrowErrno(env, ENOTSUP, "open", path + " is not a character device");
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

enum class Kind { Stream, Connecting, Listen, Device };

// The uv handle lives apart from the JS object so it can outlive it until uv_close completes.
struct PollBox {
  uv_poll_t poll{};
  int fd = -1;
};

class SocketHandle : public Napi::ObjectWrap<SocketHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SocketHandle",
                       {InstanceMethod("setEvents", &SocketHandle::SetEvents), InstanceMethod("write", &SocketHandle::Write),
                        InstanceMethod("shutdown", &SocketHandle::Shutdown), InstanceMethod("close", &SocketHandle::Close),
                        InstanceMethod("peerCred", &SocketHandle::PeerCred), InstanceMethod("setRef", &SocketHandle::SetRef)});
  }

  // new SocketHandle(fd, kind: 'stream'|'connecting'|'listen'|'device', family: 'unix'|'vsock', onEvent)
  explicit SocketHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<SocketHandle>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) { ThrowTypeError(env, "fd", "expected an integer"); return; }
    int fd = info[0].As<Napi::Number>().Int32Value();
    if (fd < 0) { ThrowTypeError(env, "fd", "expected a file descriptor"); return; }
    if (!info[1].IsString()) { ThrowTypeError(env, "kind", "expected a string"); return; }
    std::string kind = info[1].As<Napi::String>();
    if (kind == "stream") kind_ = Kind::Stream;
    else if (kind == "connecting") kind_ = Kind::Connecting;
    else if (kind == "listen") kind_ = Kind::Listen;
    else if (kind == "device") kind_ = Kind::Device;
    else { ThrowTypeError(env, "kind", "expected stream, connecting, listen or device"); return; }
    if (!ParseFamily(env, info[2], &family_)) return;
    if (!info[3].IsFunction()) { ThrowTypeError(env, "onEvent", "expected a function"); return; }
    callback_ = Napi::Persistent(info[3].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "vtier:socket");
    box_ = new PollBox();
    box_->fd = fd;
    box_->poll.data = this;
    uv_loop_t *loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int err = uv_poll_init(loop, &box_->poll, fd);
    if (err < 0) {
      delete box_;
      box_ = nullptr;
      ThrowErrno(env, -err, "uv_poll_init");
      return;
    }
    connecting_ = kind_ == Kind::Connecting;
    // Alive while open: the poll handle calls back into this object.
    Ref();
    open_ = true;
    if (connecting_) UpdatePoll();
  }

  ~SocketHandle() override { CloseNow(); }

 private:
  static void OnPoll(uv_poll_t *poll, int status, int events) {
    auto *self = static_cast<SocketHandle *>(poll->data);
    if (!self || !self->open_) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      self->Emit({Napi::String::New(env, "error"), ErrnoError(env, -status, "uv_poll").Value()});
      return;
    }
    if (self->kind_ == Kind::Listen) {
      if (events & UV_READABLE) self->AcceptAll();
      return;
    }
    if (self->connecting_ && (events & (UV_WRITABLE | UV_READABLE))) {
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(self->box_->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
      self->connecting_ = false;
      self->UpdatePoll();
      self->Emit({Napi::String::New(env, "connect"), err ? ErrnoError(env, err, "connect").Value() : env.Null()});
      return;
    }
    if ((events & UV_READABLE) && self->reading_) {
      self->ReadOnce();
      if (!self->open_) return;
    }
    if ((events & UV_WRITABLE) && self->wantWrite_) {
      self->wantWrite_ = false;
      self->UpdatePoll();
      self->Emit({Napi::String::New(env, "writable")});
    }
  }

  void ReadOnce() {
    // One scratch buffer per thread: handles live on the loop of the thread (main or a
    // worker_thread) that made them, and each of those loops reads concurrently. A single
    // static buffer was shared by all of them (data of one socket delivered on another's).
    static thread_local std::unique_ptr<char[]> buffer;
    if (!buffer) buffer.reset(new char[kReadChunk]);
    Napi::Env env = Env();
    ssize_t n;
    do n = read(box_->fd, buffer.get(), kReadChunk); while (n < 0 && errno == EINTR);
    if (n > 0) {
      Emit({Napi::String::New(env, "data"), Napi::Buffer<char>::Copy(env, buffer.get(), static_cast<size_t>(n))});
    } else if (n == 0) {
      reading_ = false;
      UpdatePoll();
      Emit({Napi::String::New(env, "end")});
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      int err = errno;
      reading_ = false;
      UpdatePoll();
      Emit({Napi::String::New(env, "error"), ErrnoError(env, err, "read").Value()});
    }
  }

  void AcceptAll() {
    Napi::Env env = Env();
    while (open_ && reading_) {
      sockaddr_storage ss;
      socklen_t len = sizeof(ss);
      int fd = accept4(box_->fd, reinterpret_cast<sockaddr *>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        Emit({Napi::String::New(env, "error"), ErrnoError(env, errno, "accept4").Value()});
        return;
      }
      // Identity comes from the kernel: SO_PEERCRED for unix, the peer CID for vsock.
      Napi::Object peer = family_ == Family::Unix ? PeerCredentials(env, fd) : Napi::Object::New(env);
      if (family_ == Family::Vsock) {
        auto *svm = reinterpret_cast<sockaddr_vm *>(&ss);
        peer.Set("cid", Napi::Number::New(env, svm->svm_cid));
        peer.Set("port", Napi::Number::New(env, svm->svm_port));
      }
      Emit({Napi::String::New(env, "accept"), Napi::Number::New(env, fd), peer});
    }
  }

  // Nothing is delivered once the owner closed the handle (the callback is released then).
  void Emit(std::initializer_list<napi_value> args) {
    if (callback_.IsEmpty() || !context_) return;
    Napi::Env env = Env();
    emitting_++;
    callback_.MakeCallback(Value(), args, *context_);
    emitting_--;
    // close() from inside the callback: release now that MakeCallback has returned.
    if (emitting_ == 0 && releasePending_) ReleaseCallback();
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  // The callback is a strong reference to a closure over the owner (NativeStream), which
  // holds this handle's JS object: kept after close, it made every closed stream reachable
  // for ever (one stream, its buffers and this object leaked per connection).
  void ReleaseCallback() {
    releasePending_ = false;
    callback_.Reset();
    context_.reset();
  }

  void UpdatePoll() {
    if (!open_) return;
    int events = (reading_ ? UV_READABLE : 0) | ((wantWrite_ || connecting_) ? UV_WRITABLE : 0);
    if (events == 0) uv_poll_stop(&box_->poll);
    else uv_poll_start(&box_->poll, events, OnPoll);
  }

  void CloseNow() {
    if (!box_) return;
    open_ = false;
    uv_poll_stop(&box_->poll);
    box_->poll.data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(&box_->poll), [](uv_handle_t *handle) {
      auto *box = reinterpret_cast<PollBox *>(handle);
      close(box->fd);
      delete box;
    });
    box_ = nullptr;
  }

  // setEvents(readable, writable): which wake-ups the owner wants (flow control).
  Napi::Value SetEvents(const Napi::CallbackInfo &info) {
    if (!open_) return info.Env().Undefined();
    reading_ = info[0].ToBoolean();
    wantWrite_ = info[1].ToBoolean();
    UpdatePoll();
    return info.Env().Undefined();
  }

  // write(buffer) -> bytes written (0 when the kernel buffer is full).
  Napi::Value Write(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!open_) { ThrowErrno(env, EBADF, "write"); return env.Undefined(); }
    if (!info[0].IsTypedArray()) { ThrowTypeError(env, "data", "expected a Uint8Array"); return env.Undefined(); }
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    ssize_t n;
    do {
      n = kind_ == Kind::Device ? write(box_->fd, data.Data(), data.ByteLength())
                                : send(box_->fd, data.Data(), data.ByteLength(), MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, 0);
      ThrowErrno(env, errno, "write");
      return env.Undefined();
    }
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value Shutdown(const Napi::CallbackInfo &info) {
    if (open_ && kind_ != Kind::Device && shutdown(box_->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
      ThrowErrno(info.Env(), errno, "shutdown");
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    if (box_) {
      CloseNow();
      Unref();
    }
    if (emitting_ > 0) releasePending_ = true;
    else ReleaseCallback();
    return info.Env().Undefined();
  }

  // peerCred() -> { pid, uid, gid } of a connected unix socket's peer (SO_PEERCRED).
  Napi::Value PeerCred(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!open_) { ThrowErrno(env, EBADF, "getsockopt"); return env.Undefined(); }
    if (family_ != Family::Unix || kind_ == Kind::Device) return env.Null();
    return PeerCredentials(env, box_->fd);
  }

  // setRef(bool): whether this handle keeps the Node loop alive.
  Napi::Value SetRef(const Napi::CallbackInfo &info) {
    if (open_) {
      if (info[0].ToBoolean()) uv_ref(reinterpret_cast<uv_handle_t *>(&box_->poll));
      else uv_unref(reinterpret_cast<uv_handle_t *>(&box_->poll));
    }
    return info.Env().Undefined();
  }

  PollBox *box_ = nullptr;
  Kind kind_ = Kind::Stream;
  Family family_ = Family::Unix;
  bool open_ = false;
  bool reading_ = false;
  bool wantWrite_ = false;
  bool connecting_ = false;
  int emitting_ = 0;
  bool releasePending_ = false;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socketConnect", Napi::Function::New(env, SocketConnect, "socketConnect"));
  exports.Set("socketListen", Napi::Function::New(env, SocketListen, "socketListen"));
  exports.Set("socketOpenDevice", Napi::Function::New(env, SocketOpenDevice, "socketOpenDevice"));
  exports.Set("SocketHandle", SocketHandle::Define(env));
}

}  // namespace vtier
