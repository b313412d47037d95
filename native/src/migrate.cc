// PLACEHOLDER: owned by the migrate part; replaced when it lands.
#include <napi.h>

namespace vtier {
void InitMigrate(Napi::Env env, Napi::Object exports) {}
}  // namespace vtier
