// Strings a guest (or a QEMU) chose — error codes and messages, hello.source, peer names
// — reach the agent's log and `vtier host status`. They are shown escaped and bounded: a
// control character (C0, DEL, C1, line/paragraph separators, bidi overrides) becomes a
// visible \u{..} escape, so a guest cannot forge log lines, move the cursor or recolour a
// terminal, and a long string is cut with an ellipsis.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** `value` printable on one line, at most `maxChars` characters (plus the ellipsis). */
export function safeText(value: unknown, maxChars = 256): string {
  const text = typeof value === 'string' ? value : String(value);
  const cut = text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
  return cut.replace(UNSAFE, (c) => `\\u{${c.charCodeAt(0).toString(16)}}`);
}
