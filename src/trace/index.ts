// The trace file format: pure encode/decode (no I/O). See docs/trace-format.md.
export * from './format.js';
export { encodeTraceHeader, encodeTraceBatch, encodeTraceEnd, encodeTraceTruncated } from './encode.js';
export { decodeTrace } from './decode.js';
export { summarizeTrace, describeTrace, groupDigits, bytesText, type TraceSummary } from './summary.js';
export { traceHeatmap, traceWss, traceSpanS, VIEW_LIMITS, type TraceHeatmap, type HeatCell, type WssPoint } from './views.js';
