// PLACEHOLDER: owned by the socket part; replaced when it lands.
#include <napi.h>

namespace vtier {
void InitSocket(Napi::Env env, Napi::Object exports) {}
}  // namespace vtier
