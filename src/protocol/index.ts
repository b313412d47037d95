// The vtier guest <-> host protocol (pure: bytes in, messages out). See docs/protocol.md.
export * from './messages.js';
export { FRAME_HEADER_BYTES, FrameDecoder, decodeBody, encodeMessage, type DecodeResult, type FrameDecoderOptions } from './frame.js';
export { MAX_PFN_END, packRuns, unpackRuns } from './runs.js';
export { DEFAULT_SCAN_LIMITS, scanMsgpack, type ScanLimits } from './msgpack-scan.js';
