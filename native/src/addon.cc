// The vtier native addon: one module, concerns in their own files.
#include <napi.h>

namespace vtier {
void InitBpf(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitMigrate(Napi::Env env, Napi::Object exports);
}  // namespace vtier

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vtier::InitBpf(env, exports);
  vtier::InitSocket(env, exports);
  vtier::InitMigrate(env, exports);
  return exports;
}

NODE_API_MODULE(vtier_native, Init)
