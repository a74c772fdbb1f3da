/** Cosine similarity of every pair of vectors (the diagonal is 1 for any non-zero vector). */
export function cosineMatrix(vectors: number[][]): number[][] {
  const norms = vectors.map((v) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0)));
  return vectors.map((a, i) =>
    vectors.map((b, j) => {
      const denominator = norms[i]! * norms[j]!;
      if (denominator === 0) return 0;
      let dot = 0;
      for (let k = 0; k < a.length; k += 1) dot += a[k]! * b[k]!;
      return dot / denominator;
    }),
  );
}
