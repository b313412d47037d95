// Counting sort on small integer keys: O(n + keys), stable, no comparisons. Candidate
// lists hold up to millions of page indexes, so Array.prototype.sort is out.

/** Returns the first `n` items ordered by `keys` (ascending, or descending when asked);
 *  equal keys keep their input order, which keeps decisions deterministic. When
 *  `sortedKeys` is given it receives the keys in the same order. With `limit`, only the
 *  first `limit` places of the order are produced. */
export function countingSort(
  items: Int32Array,
  keys: Uint32Array,
  n: number,
  keyLimit: number,
  descending: boolean,
  sortedKeys?: Uint32Array,
  limit = n,
): Int32Array {
  if (limit <= 0) return new Int32Array(0);
  const buckets = new Uint32Array(keyLimit + 1);
  for (let i = 0; i < n; i++) buckets[descending ? keyLimit - 1 - keys[i] : keys[i]]++;
  let offset = 0;
  for (let k = 0; k <= keyLimit; k++) {
    const size = buckets[k];
    buckets[k] = offset;
    offset += size;
  }
  const out = new Int32Array(Math.min(n, limit));
  for (let i = 0; i < n; i++) {
    const at = buckets[descending ? keyLimit - 1 - keys[i] : keys[i]]++;
    if (at >= limit) continue;
    out[at] = items[i];
    if (sortedKeys) sortedKeys[at] = keys[i];
  }
  return out;
}
