// PLACEHOLDER: owned by the bpf part; replaced when it lands.
#include <napi.h>

namespace vtier {
void InitBpf(Napi::Env env, Napi::Object exports) {}
}  // namespace vtier
