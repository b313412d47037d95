// POSIX shell quoting for the run script the guest executes: every argument single-quoted,
// so what the user typed on the host reaches the guest's exec unchanged.
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error('lab run: an argument contains a NUL byte');
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
