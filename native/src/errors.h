// Errors that cross into JS: an Error whose .code is the errno name (e.g. "EBUSY"),
// .errno the positive errno and .syscall the call that failed.
#pragma once
#include <napi.h>

namespace vtier {

// Builds the error object (does not throw).
Napi::Error ErrnoError(Napi::Env env, int err, const char *syscall, const std::string &detail = "");

// Throws the error as a pending JS exception. Callers return right after.
void ThrowErrno(Napi::Env env, int err, const char *syscall, const std::string &detail = "");

// Throws TypeError("<field>: <what>") for bad arguments.
void ThrowTypeError(Napi::Env env, const char *field, const char *what);

}  // namespace vtier
