/**
 * Small, fast, seeded PRNG (sfc32) for reproducible fuzzing and scheduling.
 *
 * sfc32 was chosen over Math.random (unseeded) and over 64-bit generators
 * (BigInt is far too slow at ~1M draws/s): it needs only 32-bit integer ops,
 * passes PractRand, and its whole state is four u32s, so a run is reproduced
 * from the seed alone.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = this.b = this.c = this.d = 0;
    this.reseed(seed);
  }

  /** Restart the stream as `new Prng(seed)` would (no closure: this runs once per fuzzer `par` step). */
  reseed(seed: number): void {
    // splitmix32 expands the seed so that nearby seeds (0, 1, 2, ...) give
    // uncorrelated streams; sfc32 itself mixes poorly from an all-zero state.
    let s = seed >>> 0;
    let z: number;
    s = (s + 0x9e3779b9) >>> 0;
    z = Math.imul(s ^ (s >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    this.a = (z ^ (z >>> 15)) >>> 0;
    s = (s + 0x9e3779b9) >>> 0;
    z = Math.imul(s ^ (s >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    this.b = (z ^ (z >>> 15)) >>> 0;
    s = (s + 0x9e3779b9) >>> 0;
    z = Math.imul(s ^ (s >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    this.c = (z ^ (z >>> 15)) >>> 0;
    this.d = 1; // sfc32's counter; starting at 1 is the reference choice
    // The reference implementation discards the first outputs to decorrelate.
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Next uniformly distributed unsigned 32-bit integer. */
  next(): number {
    const a = this.a, b = this.b, c = this.c, d = this.d;
    const t = (((a + b) | 0) + d) | 0;
    this.d = (d + 1) | 0;
    this.a = b ^ (b >>> 9);
    this.b = (c + (c << 3)) | 0;
    const r = (c << 21) | (c >>> 11);
    this.c = (r + t) | 0;
    return t >>> 0;
  }

  /**
   * Uniform integer in [0, n). Uses the multiply-high method; the bias is at
   * most n / 2^32, which is irrelevant for the small n used here (CPU counts,
   * operation choices) and avoids a rejection loop.
   */
  below(n: number): number {
    return Math.floor((this.next() / 4294967296) * n);
  }

  /** True with probability p (p <= 0 never, p >= 1 always). */
  chance(p: number): boolean {
    return this.next() < p * 4294967296;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  float(): number {
    return this.next() / 4294967296;
  }
}
