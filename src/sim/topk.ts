// The true hot set: the K pages with the highest access probability (ties by page order).
export function topKMask(weights: Float64Array, k: number): Uint8Array {
  const n = weights.length;
  const mask = new Uint8Array(n);
  if (k <= 0) return mask;
  if (k >= n) return mask.fill(1);
  const sorted = Float64Array.from(weights).sort();
  const kth = sorted[n - k];
  let taken = 0;
  for (let p = 0; p < n; p++) {
    if (weights[p] > kth) {
      mask[p] = 1;
      taken++;
    }
  }
  for (let p = 0; p < n && taken < k; p++) {
    if (weights[p] === kth) {
      mask[p] = 1;
      taken++;
    }
  }
  return mask;
}
