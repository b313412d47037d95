#include "errors.h"

#include <cstring>
#include <string>

namespace vtier {

Napi::Error ErrnoError(Napi::Env env, int err, const char *syscall, const std::string &detail) {
  if (err < 0) err = -err;
  const char *name = strerrorname_np(err);
  std::string message = std::string(syscall) + ": " + strerror(err);
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

void ThrowErrno(Napi::Env env, int err, const char *syscall, const std::string &detail) {
  ErrnoError(env, err, syscall, detail).ThrowAsJavaScriptException();
}

void ThrowTypeError(Napi::Env env, const char *field, const char *what) {
  Napi::TypeError::New(env, std::string(field) + ": " + what).ThrowAsJavaScriptException();
}

}  // namespace vtier
