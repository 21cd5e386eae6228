// ternary_cpu.cpp: CPU kernels for packed ternary linear layers (compiled on first use by
// ternlib/kernels/cpu/__init__.py through torch.utils.cpp_extension).
//
// Weight layout "planes128" (made by ternlib.kernels.cpu.to_planes128 from the 2-bit codes):
//   (N, Kp/4) uint8 with Kp = K rounded up to 128. Row n is Kp/128 blocks of 32 bytes; in block b
//   byte j holds, in bits 2s..2s+1, u = code + 1 (0, 1, 2) of column 128*b + 32*s + j. One 32-byte
//   load and four shift-and-mask steps give 4 x 32 consecutive codes, each as an unsigned byte.
//
// int8 path (activations quantized per token, BitNet style):
//   sum_k c_k x_k = sum_k u_k x_k - sum_k x_k, and u (unsigned) x x (signed int8) is exactly what
//   VPDPBUSD (AVX-512 VNNI) and VPMADDUBSW (AVX2) multiply. Accumulation is exact in int32; the
//   epilogue y = float(acc) * (sx * sw) + b matches ternlib's reference bit for bit (this file
//   is compiled with -ffp-contract=off so no FMA changes the rounding).
// float path: codes widened to float and multiplied with FMA; matches the reference to float
//   rounding.
// Every entry point has a scalar fallback; the SIMD versions are chosen at run time.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t BLOCK = 128;  // codes per 32-byte block
constexpr int64_t MT = 6;       // tokens per register tile

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_vnni() {
  return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}

// ------------------------------------------------------------------ per-token quantization
// q = round_half_even(x * fl(fl(1 / amax) * 127)), scale = amax * fl(1/127), sum = sum(q); zero row -> all zero
// (operation by operation as ternlib.activations.quantize_activations, so the results are identical).
constexpr float RCP127 = 1.0f / 127.0f;
void quantize_row_scalar(const float* x, int64_t K, int64_t Kp, int8_t* q, float* scale, int32_t* sum) {
  float amax = 0.f;
  for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float inv = amax > 0.f ? (1.f / amax) * 127.f : 0.f;
  int32_t s = 0;
  for (int64_t k = 0; k < K; ++k) {
    float r = std::nearbyint(x[k] * inv);
    r = std::min(127.f, std::max(-127.f, r));
    q[k] = static_cast<int8_t>(r);
    s += q[k];
  }
  for (int64_t k = K; k < Kp; ++k) q[k] = 0;
  *scale = amax * RCP127;
  *sum = s;
}

__attribute__((target("avx2,fma")))
void quantize_row_avx2(const float* x, int64_t K, int64_t Kp, int8_t* q, float* scale, int32_t* sum) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 vmax = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(x + k), absmask));
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, vmax);
  float amax = 0.f;
  for (int i = 0; i < 8; ++i) amax = std::max(amax, tmp[i]);
  for (; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float inv = amax > 0.f ? (1.f / amax) * 127.f : 0.f;
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
  __m256i vsum = _mm256_setzero_si256();
  alignas(32) int32_t qi[8];
  for (k = 0; k + 8 <= K; k += 8) {
    __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(hi, _mm256_max_ps(lo, r));
    __m256i ri = _mm256_cvtps_epi32(r);
    vsum = _mm256_add_epi32(vsum, ri);
    const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(ri), _mm256_extracti128_si256(ri, 1));  // |q| <= 127
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + k), _mm_packs_epi16(p16, p16));
  }
  _mm256_store_si256(reinterpret_cast<__m256i*>(qi), vsum);
  int32_t s = 0;
  for (int i = 0; i < 8; ++i) s += qi[i];
  for (; k < K; ++k) {
    float r = std::nearbyint(x[k] * inv);
    r = std::min(127.f, std::max(-127.f, r));
    q[k] = static_cast<int8_t>(r);
    s += q[k];
  }
  for (k = K; k < Kp; ++k) q[k] = 0;
  *scale = amax * RCP127;
  *sum = s;
}

// ------------------------------------------------------------------ int8 x packed-ternary rows
// acc[i] = sum_k u_k * xq[i][k] for MC tokens of one weight row.
template <int MC>
void dot_u8_scalar(const uint8_t* w, const int8_t* x, int64_t Kp, int32_t* acc) {
  for (int i = 0; i < MC; ++i) acc[i] = 0;
  for (int64_t b = 0; b < Kp / BLOCK; ++b)
    for (int j = 0; j < 32; ++j) {
      const int v = w[32 * b + j];
      for (int s = 0; s < 4; ++s) {
        const int u = (v >> (2 * s)) & 3;
        for (int i = 0; i < MC; ++i) acc[i] += u * x[i * Kp + BLOCK * b + 32 * s + j];
      }
    }
}

__attribute__((target("avx2")))
inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2")))
inline __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

template <int MC>
__attribute__((target("avx2")))
void dot_u8_avx2(const uint8_t* w, const int8_t* x, int64_t Kp, int32_t* acc) {
  const __m256i mask = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
  __m256i a[MC];
  for (int i = 0; i < MC; ++i) a[i] = _mm256_setzero_si256();
  for (int64_t b = 0; b < Kp / BLOCK; ++b) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * b));
    __m256i u[4] = {_mm256_and_si256(v, mask), _mm256_and_si256(_mm256_srli_epi16(v, 2), mask),
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), mask), _mm256_and_si256(_mm256_srli_epi16(v, 6), mask)};
    for (int i = 0; i < MC; ++i) {
      const int8_t* xb = x + i * Kp + BLOCK * b;
      __m256i p = _mm256_setzero_si256();
      for (int s = 0; s < 4; ++s)  // u <= 2, |x| <= 127: a pair sums to at most 508, no saturation
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[s], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 32 * s))));
      a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(p, ones));  // |p| <= 4 * 508, fits int16
    }
  }
  for (int i = 0; i < MC; ++i) acc[i] = hsum_epi32(a[i]);
}

template <int MC>
__attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni")))
void dot_u8_vnni(const uint8_t* w, const int8_t* x, int64_t Kp, int32_t* acc) {
  // Plane s is taken in place, v & (3 << 2s) = u * 4^s (no shift), into its own accumulator
  // (so the four VPDPBUSD of a block do not wait on each other); the powers of 4 are divided
  // out exactly at the end. Bounds: 128 * 127 * 4 per step, fine in int32 for any real K.
  __m256i a[MC][4];
  const __m256i m[4] = {_mm256_set1_epi8(0x03), _mm256_set1_epi8(0x0c), _mm256_set1_epi8(0x30),
                        _mm256_set1_epi8(static_cast<char>(0xc0))};
  for (int i = 0; i < MC; ++i)
    for (int s = 0; s < 4; ++s) a[i][s] = _mm256_setzero_si256();
  for (int64_t b = 0; b < Kp / BLOCK; ++b) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * b));
    const __m256i u[4] = {_mm256_and_si256(v, m[0]), _mm256_and_si256(v, m[1]), _mm256_and_si256(v, m[2]),
                          _mm256_and_si256(v, m[3])};
    for (int i = 0; i < MC; ++i) {
      const int8_t* xb = x + i * Kp + BLOCK * b;
      for (int s = 0; s < 4; ++s)
        a[i][s] = _mm256_dpbusd_epi32(a[i][s], u[s], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 32 * s)));
    }
  }
  for (int i = 0; i < MC; ++i)  // every lane of a[i][s] is a multiple of 4^s: the shifts are exact
    acc[i] = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(a[i][0], _mm256_srai_epi32(a[i][1], 2)),
                                         _mm256_add_epi32(_mm256_srai_epi32(a[i][2], 4), _mm256_srai_epi32(a[i][3], 6))));
}

// Two weight rows x MC tokens: each activation load feeds two VPDPBUSD and each decoded plane
// MC of them (the register tile for M > 1; 2*MC accumulators, 8 decoded planes).
template <int MC>
__attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni")))
void dot2_u8_vnni(const uint8_t* w0, const uint8_t* w1, const int8_t* x, int64_t Kp, int32_t* acc0, int32_t* acc1) {
  const __m256i mask = _mm256_set1_epi8(3);
  __m256i a0[MC], a1[MC];
  for (int i = 0; i < MC; ++i) a0[i] = a1[i] = _mm256_setzero_si256();
  for (int64_t b = 0; b < Kp / BLOCK; ++b) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + 32 * b));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + 32 * b));
    const __m256i u0[4] = {_mm256_and_si256(v0, mask), _mm256_and_si256(_mm256_srli_epi16(v0, 2), mask),
                           _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask), _mm256_and_si256(_mm256_srli_epi16(v0, 6), mask)};
    const __m256i u1[4] = {_mm256_and_si256(v1, mask), _mm256_and_si256(_mm256_srli_epi16(v1, 2), mask),
                           _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask), _mm256_and_si256(_mm256_srli_epi16(v1, 6), mask)};
    for (int s = 0; s < 4; ++s)
      for (int i = 0; i < MC; ++i) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i * Kp + BLOCK * b + 32 * s));
        a0[i] = _mm256_dpbusd_epi32(a0[i], u0[s], xv);
        a1[i] = _mm256_dpbusd_epi32(a1[i], u1[s], xv);
      }
  }
  // horizontal sums, four accumulators at a time (lane j of hsum4 is the sum of its j-th input)
  int i = 0;
  for (; i + 2 <= MC; i += 2) {
    const __m128i h = hsum4_epi32(a0[i], a1[i], a0[i + 1], a1[i + 1]);
    acc0[i] = _mm_extract_epi32(h, 0);
    acc1[i] = _mm_extract_epi32(h, 1);
    acc0[i + 1] = _mm_extract_epi32(h, 2);
    acc1[i + 1] = _mm_extract_epi32(h, 3);
  }
  if (i < MC) {
    acc0[i] = hsum_epi32(a0[i]);
    acc1[i] = hsum_epi32(a1[i]);
  }
}

// One token x four weight rows (M = 1, matrix-vector): each activation load feeds four rows;
// planes are masked in place (u * 4^s) into per-(row, plane) accumulators, divided out exactly.
__attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni")))
void dot4rows_u8_vnni(const uint8_t* w, int64_t row_bytes, const int8_t* x, int64_t Kp, int32_t* acc4) {
  const __m256i m[4] = {_mm256_set1_epi8(0x03), _mm256_set1_epi8(0x0c), _mm256_set1_epi8(0x30),
                        _mm256_set1_epi8(static_cast<char>(0xc0))};
  __m256i a[4][4];
  for (int r = 0; r < 4; ++r)
    for (int s = 0; s < 4; ++s) a[r][s] = _mm256_setzero_si256();
  for (int64_t b = 0; b < Kp / BLOCK; ++b) {
    __m256i v[4];
    for (int r = 0; r < 4; ++r) v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * row_bytes + 32 * b));
    for (int s = 0; s < 4; ++s) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + BLOCK * b + 32 * s));
      for (int r = 0; r < 4; ++r) a[r][s] = _mm256_dpbusd_epi32(a[r][s], _mm256_and_si256(v[r], m[s]), xv);
    }
  }
  __m256i t[4];
  for (int r = 0; r < 4; ++r)  // every lane of a[r][s] is a multiple of 4^s: the shifts are exact
    t[r] = _mm256_add_epi32(_mm256_add_epi32(a[r][0], _mm256_srai_epi32(a[r][1], 2)),
                            _mm256_add_epi32(_mm256_srai_epi32(a[r][2], 4), _mm256_srai_epi32(a[r][3], 6)));
  // transpose-reduce: lane i of the result is the sum of t[i]
  _mm_storeu_si128(reinterpret_cast<__m128i*>(acc4), hsum4_epi32(t[0], t[1], t[2], t[3]));
}

using Dot2U8 = void (*)(const uint8_t*, const uint8_t*, const int8_t*, int64_t, int32_t*, int32_t*);

using DotU8 = void (*)(const uint8_t*, const int8_t*, int64_t, int32_t*);

template <int MC>
DotU8 pick_u8(int isa) {
  if (isa == 2) return &dot_u8_vnni<MC>;
  if (isa == 1) return &dot_u8_avx2<MC>;
  return &dot_u8_scalar<MC>;
}

// ------------------------------------------------------------------ float x packed-ternary rows
template <int MC>
void dot_f32_scalar(const uint8_t* w, const float* x, int64_t Kp, float* acc) {
  for (int i = 0; i < MC; ++i) acc[i] = 0.f;
  for (int64_t b = 0; b < Kp / BLOCK; ++b)
    for (int s = 0; s < 4; ++s)
      for (int j = 0; j < 32; ++j) {
        const int c = ((w[32 * b + j] >> (2 * s)) & 3) - 1;
        if (c == 0) continue;
        for (int i = 0; i < MC; ++i) acc[i] += c > 0 ? x[i * Kp + BLOCK * b + 32 * s + j] : -x[i * Kp + BLOCK * b + 32 * s + j];
      }
}

__attribute__((target("avx2,fma")))
inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int MC>
__attribute__((target("avx2,fma")))
void dot_f32_avx2(const uint8_t* w, const float* x, int64_t Kp, float* acc) {
  const __m256i mask = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  __m256 a[MC];
  for (int i = 0; i < MC; ++i) a[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < Kp / BLOCK; ++b) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * b));
    for (int s = 0; s < 4; ++s) {
      const __m256i c = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 2 * s), mask), one);  // 32 codes
      const __m128i lo = _mm256_castsi256_si128(c), hi = _mm256_extracti128_si256(c, 1);
      const __m256 f[4] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
                           _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                           _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
                           _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))};
      for (int i = 0; i < MC; ++i) {
        const float* xb = x + i * Kp + BLOCK * b + 32 * s;
        for (int q = 0; q < 4; ++q) a[i] = _mm256_fmadd_ps(f[q], _mm256_loadu_ps(xb + 8 * q), a[i]);
      }
    }
  }
  for (int i = 0; i < MC; ++i) acc[i] = hsum_ps(a[i]);
}

using DotF32 = void (*)(const uint8_t*, const float*, int64_t, float*);

template <int MC>
DotF32 pick_f32(int isa) {
  return isa >= 1 ? &dot_f32_avx2<MC> : &dot_f32_scalar<MC>;
}

// Smallest chunk of a parallel loop worth a thread: about 256k multiply-adds (or element
// operations). Smaller calls run on the calling thread: waking OpenMP threads costs more than
// the work of, say, one 384x384 layer on one token.
constexpr int64_t MIN_WORK_PER_THREAD = 1 << 18;

int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, MIN_WORK_PER_THREAD / std::max<int64_t>(1, work_per_item));
}

// Tokens per chunk of the large-M loops: about 128 KiB of int8 rows of `row_bytes` each, a multiple of the register
// tile's `tile` tokens. Each chunk is passed over all of a thread's weight rows, so it stays in L2 while the rows
// stream by, where token tiles inner to the rows would re-read every token from L3 (or memory) once per weight row.
int64_t tokens_per_chunk(int64_t row_bytes, int64_t tile) {
  return std::max<int64_t>(tile, (int64_t{1} << 17) / row_bytes / tile * tile);
}

int best_isa() { return has_vnni() ? 2 : (has_avx2() ? 1 : 0); }

int resolve_isa(int64_t requested) {
  const int best = best_isa();
  return requested < 0 ? best : std::min<int>(best, static_cast<int>(requested));
}

void check_weight(const torch::Tensor& planes, int64_t N, int64_t Kp) {
  TORCH_CHECK(planes.dtype() == torch::kUInt8 && planes.is_contiguous() && planes.dim() == 2,
              "ternary_cpu: weight planes must be a contiguous 2-D uint8 tensor");
  TORCH_CHECK(planes.size(0) == N && planes.size(1) * 4 == Kp && Kp % BLOCK == 0,
              "ternary_cpu: weight planes have shape ", planes.sizes(), ", expected (", N, ", ", Kp / 4, ")");
}

void check_scales(const torch::Tensor& sw, int64_t N, const char* fn) {
  TORCH_CHECK(sw.dtype() == torch::kFloat32 && (sw.numel() == 1 || sw.numel() == N), fn,
              ": scales must be 1 or N float32 values");
}

// The bias as a contiguous float32 tensor of N values, or an undefined tensor when there is none.
torch::Tensor checked_bias(const c10::optional<torch::Tensor>& bias, int64_t N, const char* fn) {
  if (!bias.has_value() || !bias->defined()) return torch::Tensor();
  torch::Tensor b = bias->contiguous();
  TORCH_CHECK(b.dtype() == torch::kFloat32 && b.numel() == N, fn, ": bias must be N float32 values");
  return b;
}

}  // namespace

// (M, K) float32 -> (q (M, Kp) int8, scale (M,) float32, sum (M,) int32)
std::vector<torch::Tensor> quantize_per_token(torch::Tensor x, int64_t Kp, int64_t isa) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2 && x.is_contiguous(), "quantize_per_token: x must be contiguous (M, K) float32");
  const int64_t M = x.size(0), K = x.size(1);
  TORCH_CHECK(Kp >= K, "quantize_per_token: Kp < K");
  auto q = torch::empty({M, Kp}, torch::kInt8);
  auto scale = torch::empty({M}, torch::kFloat32);
  auto sum = torch::empty({M}, torch::kInt32);
  const float* xp = x.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = scale.data_ptr<float>();
  int32_t* up = sum.data_ptr<int32_t>();
  const bool simd = resolve_isa(isa) >= 1;
  at::parallel_for(0, M, grain_for(4 * K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      if (simd) quantize_row_avx2(xp + m * K, K, Kp, qp + m * Kp, sp + m, up + m);
      else quantize_row_scalar(xp + m * K, K, Kp, qp + m * Kp, sp + m, up + m);
    }
  });
  return {q, scale, sum};
}

// y (M, N) float32 = (sum_k c[n,k] q[m,k]) * (sx[m] * sw[n]) + b[n]; q, sx, qsum from quantize_per_token.
// The int8 GEMM on raw pointers: y (M, N) = (sum_k c[n,k] q[m,k]) * (sx[m] * sw[n]) + b[n].
void gemm_int8_raw(const int8_t* qp, const float* sxp, const int32_t* qs, int64_t M, int64_t Kp, const uint8_t* wp,
                   int64_t N, const float* swp, bool per_row, const float* bp, float* yp, int level) {
  const DotU8 tiles[MT + 1] = {nullptr, pick_u8<1>(level), pick_u8<2>(level), pick_u8<3>(level), pick_u8<4>(level),
                               pick_u8<5>(level), pick_u8<6>(level)};
  const Dot2U8 tiles2[MT + 1] = {nullptr, &dot2_u8_vnni<1>, &dot2_u8_vnni<2>, &dot2_u8_vnni<3>, &dot2_u8_vnni<4>,
                                 &dot2_u8_vnni<5>, &dot2_u8_vnni<6>};
  const bool pairs = level == 2 && M > 1;  // M = 1: the one-row kernel (no decode to share) is faster
  auto store = [&](int64_t n, int64_t m0, int mc, const int32_t* acc) {
    const float swn = swp[per_row ? n : 0];
    for (int i = 0; i < mc; ++i) {
      const int64_t m = m0 + i;
      const float s = sxp[m] * swn;
      float v = static_cast<float>(acc[i] - qs[m]) * s;
      if (bp) v = v + bp[n];
      yp[m * N + n] = v;
    }
  };
  const int64_t mchunk = tokens_per_chunk(Kp, MT);
  at::parallel_for(0, (N + 3) / 4, grain_for(4 * Kp * M), [&](int64_t p0, int64_t p1) {  // quads of rows
    int32_t acc0[MT], acc1[MT];
    for (int64_t mb = 0; mb < M; mb += mchunk) {
      const int64_t me = std::min<int64_t>(M, mb + mchunk);
      for (int64_t n = 4 * p0; n < std::min<int64_t>(N, 4 * p1); n += 2) {
        const bool two = pairs && n + 1 < N;
        if (level == 2 && M == 1 && n % 4 == 0 && n + 3 < N) {  // matrix-vector: four rows at a time
          int32_t acc4[4];
          dot4rows_u8_vnni(wp + n * (Kp / 4), Kp / 4, qp, Kp, acc4);
          for (int r = 0; r < 4; ++r) store(n + r, 0, 1, acc4 + r);
          n += 2;  // with the loop's own += 2: next multiple of 4
          continue;
        }
        for (int64_t m0 = mb; m0 < me; m0 += MT) {
          const int mc = static_cast<int>(std::min<int64_t>(MT, me - m0));
          if (two) {
            tiles2[mc](wp + n * (Kp / 4), wp + (n + 1) * (Kp / 4), qp + m0 * Kp, Kp, acc0, acc1);
            store(n, m0, mc, acc0);
            store(n + 1, m0, mc, acc1);
          } else {
            for (int64_t r = n; r < std::min<int64_t>(N, n + 2); ++r) {
              tiles[mc](wp + r * (Kp / 4), qp + m0 * Kp, Kp, acc0);
              store(r, m0, mc, acc0);
            }
          }
        }
      }
    }
  });
}

torch::Tensor gemm_int8(torch::Tensor q, torch::Tensor sx, torch::Tensor qsum, torch::Tensor planes,
                        torch::Tensor sw, c10::optional<torch::Tensor> bias, int64_t N, int64_t isa) {
  const int64_t M = q.size(0), Kp = q.size(1);
  check_weight(planes, N, Kp);
  TORCH_CHECK(q.dtype() == torch::kInt8 && q.is_contiguous(), "gemm_int8: q must be contiguous int8");
  check_scales(sw, N, "gemm_int8");
  const torch::Tensor b = checked_bias(bias, N, "gemm_int8");
  const bool has_bias = b.defined();
  auto y = torch::empty({M, N}, torch::kFloat32);
  torch::Tensor swc = sw.contiguous();
  gemm_int8_raw(q.data_ptr<int8_t>(), sx.data_ptr<float>(), qsum.data_ptr<int32_t>(), M, Kp, planes.data_ptr<uint8_t>(), N,
                swc.data_ptr<float>(), swc.numel() == N && N > 1, has_bias ? b.data_ptr<float>() : nullptr,
                y.data_ptr<float>(), resolve_isa(isa));
  return y;
}

// y (M, N) float32 = sw[n] * sum_k c[n,k] x[m,k] + b[n]; x (M, K) float32 (padded here to Kp).
torch::Tensor gemm_f32(torch::Tensor x, torch::Tensor planes, torch::Tensor sw, c10::optional<torch::Tensor> bias,
                       int64_t N, int64_t isa) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2, "gemm_f32: x must be (M, K) float32");
  const int64_t M = x.size(0), K = x.size(1), Kp = planes.size(1) * 4;
  check_weight(planes, N, Kp);
  TORCH_CHECK(K <= Kp, "gemm_f32: x has more columns than the weight");
  torch::Tensor xp = K == Kp ? x.contiguous() : torch::constant_pad_nd(x, {0, Kp - K}, 0).contiguous();
  check_scales(sw, N, "gemm_f32");
  const torch::Tensor b = checked_bias(bias, N, "gemm_f32");
  const bool has_bias = b.defined();
  auto y = torch::empty({M, N}, torch::kFloat32);
  const uint8_t* wp = planes.data_ptr<uint8_t>();
  const float* xd = xp.data_ptr<float>();
  const float* swp = sw.contiguous().data_ptr<float>();
  const float* bp = has_bias ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const bool per_row = sw.numel() == N && N > 1;
  const int level = resolve_isa(isa);
  const DotF32 tiles[MT + 1] = {nullptr, pick_f32<1>(level), pick_f32<2>(level), pick_f32<3>(level), pick_f32<4>(level),
                                pick_f32<5>(level), pick_f32<6>(level)};
  at::parallel_for(0, N, grain_for(Kp * M), [&](int64_t n0, int64_t n1) {
    float acc[MT];
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* w = wp + n * (Kp / 4);
      const float swn = swp[per_row ? n : 0];
      for (int64_t m0 = 0; m0 < M; m0 += MT) {
        const int mc = static_cast<int>(std::min<int64_t>(MT, M - m0));
        tiles[mc](w, xd + m0 * Kp, Kp, acc);
        for (int i = 0; i < mc; ++i) {
          float v = acc[i] * swn;
          if (bp) v = v + bp[n];
          yp[(m0 + i) * N + n] = v;
        }
      }
    }
  });
  return y;
}

namespace {
void epilogue_row_scalar(const int32_t* a, float* y, int64_t N, float sxm, const float* sw, bool per_row, const float* b) {
  for (int64_t n = 0; n < N; ++n) {
    const float s = sxm * sw[per_row ? n : 0];
    float v = static_cast<float>(a[n]) * s;
    if (b) v = v + b[n];
    y[n] = v;
  }
}

__attribute__((target("avx2")))
void epilogue_row_avx2(const int32_t* a, float* y, int64_t N, float sxm, const float* sw, bool per_row, const float* b) {
  const __m256 vsx = _mm256_set1_ps(sxm), vs0 = _mm256_set1_ps(sxm * sw[0]);
  int64_t n = 0;
  for (; n + 8 <= N; n += 8) {
    const __m256 s = per_row ? _mm256_mul_ps(vsx, _mm256_loadu_ps(sw + n)) : vs0;
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + n))), s);
    if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + n));
    _mm256_storeu_ps(y + n, v);
  }
  epilogue_row_scalar(a + n, y + n, N - n, sxm, per_row ? sw + n : sw, per_row, b ? b + n : nullptr);
}
}  // namespace

// In place: the int32 accumulators (M, N) of an int8 GEMM become float32 outputs
// y = float(acc) * (sx[m] * sw[n]) + b[n], written over the same memory (no new allocation).
torch::Tensor dequant_epilogue_(torch::Tensor acc, torch::Tensor sx, torch::Tensor sw, c10::optional<torch::Tensor> bias,
                                int64_t isa) {
  TORCH_CHECK(acc.dtype() == torch::kInt32 && acc.dim() == 2 && acc.is_contiguous(), "dequant_epilogue_: acc must be contiguous (M, N) int32");
  const int64_t M = acc.size(0), N = acc.size(1);
  check_scales(sw, N, "dequant_epilogue_");
  const torch::Tensor b = checked_bias(bias, N, "dequant_epilogue_");
  const bool has_bias = b.defined();
  torch::Tensor sxc = sx.contiguous(), swc = sw.contiguous();
  const int32_t* ap = acc.data_ptr<int32_t>();
  float* yp = reinterpret_cast<float*>(acc.data_ptr<int32_t>());
  const float* sxp = sxc.data_ptr<float>();
  const float* swp = swc.data_ptr<float>();
  const float* bp = has_bias ? b.data_ptr<float>() : nullptr;
  const bool per_row = swc.numel() == N && N > 1;
  const bool simd = resolve_isa(isa) >= 1;
  at::parallel_for(0, M, grain_for(4 * N), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      if (simd) epilogue_row_avx2(ap + m * N, yp + m * N, N, sxp[m], swp, per_row, bp);
      else epilogue_row_scalar(ap + m * N, yp + m * N, N, sxp[m], swp, per_row, bp);
    }
  });
  return acc.view(torch::kFloat32);
}

namespace {
// Tokens quantized per token into plain buffers (no tensor allocations; threads only for large M):
// q (M, Kp) int8 padded with zeros, scale sx (M,) and sum qs (M,), as quantize_per_token makes them.
struct Tokens {
  std::vector<int8_t> q;
  std::vector<float> sx;
  std::vector<int32_t> qs;
};

Tokens quantize_tokens(const torch::Tensor& xc, int64_t Kp, int level) {
  const int64_t M = xc.size(0), K = xc.size(1);
  Tokens t{std::vector<int8_t>(static_cast<size_t>(M * Kp)), std::vector<float>(static_cast<size_t>(M)),
           std::vector<int32_t>(static_cast<size_t>(M))};
  const float* xp = xc.data_ptr<float>();
  at::parallel_for(0, M, grain_for(K), [&](int64_t m0, int64_t m1) {  // one thread below ~256k elements
    for (int64_t m = m0; m < m1; ++m) {
      if (level >= 1) quantize_row_avx2(xp + m * K, K, Kp, t.q.data() + m * Kp, t.sx.data() + m, t.qs.data() + m);
      else quantize_row_scalar(xp + m * K, K, Kp, t.q.data() + m * Kp, t.sx.data() + m, t.qs.data() + m);
    }
  });
  return t;
}
}  // namespace

// Small-M linear in one call: quantize (int8 mode) and multiply. x (M, K) float32 -> y (M, N) float32.
torch::Tensor linear_small(torch::Tensor x, torch::Tensor planes, torch::Tensor sw, c10::optional<torch::Tensor> bias,
                           bool int8, int64_t isa) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2, "linear_small: x must be (M, K) float32");
  const int64_t N = planes.size(0), Kp = planes.size(1) * 4;
  if (!int8) return gemm_f32(x, planes, sw, bias, N, isa);
  const int64_t M = x.size(0), K = x.size(1);
  check_weight(planes, N, Kp);
  TORCH_CHECK(K <= Kp, "linear_small: x has more columns than the weight");
  check_scales(sw, N, "linear_small");
  const torch::Tensor b = checked_bias(bias, N, "linear_small");
  const bool has_bias = b.defined();
  torch::Tensor swc = sw.contiguous();
  const int level = resolve_isa(isa);
  const Tokens t = quantize_tokens(x.contiguous(), Kp, level);
  auto y = torch::empty({M, N}, torch::kFloat32);
  gemm_int8_raw(t.q.data(), t.sx.data(), t.qs.data(), M, Kp, planes.data_ptr<uint8_t>(), N, swc.data_ptr<float>(),
                swc.numel() == N && N > 1, has_bias ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), level);
  return y;
}

// ------------------------------------------------------------------ "rows16" layout: int8 on AVX-512 VNNI
// (ceil(N/16), Kq/16, 16, 4) uint8, Kq = K rounded up to 16 (made by ternlib.kernels.cpu.to_rows16). In
// chunk c of row group g, 32-bit lane j is row 16g+j, and its byte b holds in bits 2s, 2s+1 the value
// u = code + 1 of column 16c + 4s + b; padding rows and columns hold u = 1 (code 0).
// Plane s of a 64-byte chunk ((v >> 2s) & 3) is then, per lane, the four codes of columns 16c+4s..+3
// of one row: VPDPBUSD against those four activations broadcast to every lane adds them into that
// row's accumulator. The accumulators hold 16 output rows each, so no horizontal sums are needed and
// the epilogue stores 16 contiguous outputs: a register tile of R16 row groups x T16 tokens (24 of
// the 32 zmm registers), each decoded plane serving T16 tokens. In stacks of distinct layers it takes
// 0.45-0.86x planes128's time from 1 to 32 tokens on MiniLM, BERT-base and BERT-large shapes (one case
// of 35 slower: 1.06x at 1 token, 1024 x 4096; experiments/int8_layouts.py, 2-core AMD EPYC Zen 4).
namespace {
constexpr int R16 = 2;  // row groups (of 16 rows) per register tile
constexpr int T16 = 12;  // tokens per register tile

template <int T>
__attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni")))
void tile_rows16(const uint8_t* w, int64_t gbytes, int groups, const int8_t* x, int64_t Kq, int32_t* out) {
  // out[(r * T + t) * 16 + j] = sum_k u[row 16r+j][k] * x[t][k] for the `groups` (<= R16) row groups at w
  const __m512i mask = _mm512_set1_epi8(3);
  __m512i a[R16][T];
  for (int r = 0; r < R16; ++r)
    for (int t = 0; t < T; ++t) a[r][t] = _mm512_setzero_si512();
  const int64_t C = Kq / 16;
  for (int64_t c = 0; c < C; ++c) {
    for (int s = 0; s < 4; ++s) {
      __m512i u[R16];
      for (int r = 0; r < R16; ++r) {
        const __m512i v = _mm512_loadu_si512((w + (r < groups ? r : 0) * gbytes + 64 * c));
        u[r] = _mm512_and_si512(_mm512_srli_epi16(v, 2 * s), mask);
      }
      for (int t = 0; t < T; ++t) {
        int32_t xv;
        std::memcpy(&xv, x + t * Kq + 16 * c + 4 * s, 4);
        const __m512i xb = _mm512_set1_epi32(xv);
        for (int r = 0; r < R16; ++r) a[r][t] = _mm512_dpbusd_epi32(a[r][t], u[r], xb);
      }
    }
  }
  for (int r = 0; r < groups; ++r)
    for (int t = 0; t < T; ++t) _mm512_storeu_si512((out + (r * T + t) * 16), a[r][t]);
}

using Rows16Tile = void (*)(const uint8_t*, int64_t, int, const int8_t*, int64_t, int32_t*);

// Row groups g0 .. g0+R16-1 of y (M, N) = (sum_k c[n,k] q[m,k]) * (sx[m] * sw[n]) + b[n] on the rows16 layout
__attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni")))
void rows16_block(int64_t g0, const int8_t* qp, const float* sxp, const int32_t* qs, int64_t M, int64_t Kq,
                 const uint8_t* wp, int64_t N, const float* swp, bool per_row, const float* bp, float* yp) {
  static const Rows16Tile tiles[T16 + 1] = {nullptr,           &tile_rows16<1>,  &tile_rows16<2>,  &tile_rows16<3>,
                                            &tile_rows16<4>,   &tile_rows16<5>,  &tile_rows16<6>,  &tile_rows16<7>,
                                            &tile_rows16<8>,   &tile_rows16<9>,  &tile_rows16<10>, &tile_rows16<11>,
                                            &tile_rows16<12>};
  const int64_t G = (N + 15) / 16, gbytes = Kq / 16 * 64;
  alignas(64) int32_t acc[R16 * T16 * 16];
  const int groups = static_cast<int>(std::min<int64_t>(R16, G - g0));
  for (int64_t m0 = 0; m0 < M; m0 += T16) {
    const int T = static_cast<int>(std::min<int64_t>(T16, M - m0));
    tiles[T](wp + g0 * gbytes, gbytes, groups, qp + m0 * Kq, Kq, acc);
    for (int r = 0; r < groups; ++r) {
      const int64_t n0 = 16 * (g0 + r);
      const int rows = static_cast<int>(std::min<int64_t>(16, N - n0));
      const __mmask16 keep = static_cast<__mmask16>((1u << rows) - 1);
      const __m512 sw = per_row ? _mm512_maskz_loadu_ps(keep, swp + n0) : _mm512_set1_ps(swp[0]);
      const __m512 b = bp ? _mm512_maskz_loadu_ps(keep, bp + n0) : _mm512_setzero_ps();
      for (int t = 0; t < T; ++t) {
        const int64_t m = m0 + t;
        const __m512i a = _mm512_load_si512((acc + (r * T + t) * 16));
        const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(sxp[m]), sw);  // sx[m] * sw[n], as the reference
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a, _mm512_set1_epi32(qs[m]))), sc);
        if (bp) v = _mm512_add_ps(v, b);
        _mm512_mask_storeu_ps(yp + m * N + n0, keep, v);
      }
    }
  }
}

void gemm_rows16_raw(const int8_t* qp, const float* sxp, const int32_t* qs, int64_t M, int64_t Kq, const uint8_t* wp,
                    int64_t N, const float* swp, bool per_row, const float* bp, float* yp) {
  const int64_t G = (N + 15) / 16;
  at::parallel_for(0, (G + R16 - 1) / R16, grain_for(16 * R16 * Kq * M), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) rows16_block(p * R16, qp, sxp, qs, M, Kq, wp, N, swp, per_row, bp, yp);
  });
}
}  // namespace

namespace {
using RowsGemm = void (*)(const int8_t*, const float*, const int32_t*, int64_t, int64_t, const uint8_t*, int64_t,
                          const float*, bool, const float*, float*);

// Int8 linear on a row-group layout (`lanes` rows a group: rows16, rows8): checks, per-token quantization, `gemm`.
torch::Tensor linear_rows(const char* fn, int64_t lanes, RowsGemm gemm, int isa, const torch::Tensor& x,
                          const torch::Tensor& rows, const torch::Tensor& sw, const c10::optional<torch::Tensor>& bias,
                          int64_t N) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2, fn, ": x must be (M, K) float32");
  const int64_t M = x.size(0), K = x.size(1), Kq = (K + 15) / 16 * 16, G = (N + lanes - 1) / lanes;
  TORCH_CHECK(rows.dtype() == torch::kUInt8 && rows.is_contiguous() && rows.dim() == 4 && rows.size(0) == G &&
              rows.size(1) * 16 == Kq && rows.size(2) == lanes && rows.size(3) == 4,
              fn, ": weight has shape ", rows.sizes(), ", expected (", G, ", ", Kq / 16, ", ", lanes, ", 4)");
  check_scales(sw, N, fn);
  const torch::Tensor b = checked_bias(bias, N, fn);
  torch::Tensor swc = sw.contiguous();
  const Tokens t = quantize_tokens(x.contiguous(), Kq, isa);
  auto y = torch::empty({M, N}, torch::kFloat32);
  gemm(t.q.data(), t.sx.data(), t.qs.data(), M, Kq, rows.data_ptr<uint8_t>(), N, swc.data_ptr<float>(),
       swc.numel() == N && N > 1, b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>());
  return y;
}
}  // namespace

// Small-M int8 linear on the rows16 layout (AVX-512 VNNI only): x (M, K) float32 -> y (M, N) float32.
torch::Tensor linear_rows16(torch::Tensor x, torch::Tensor rows16, torch::Tensor sw, c10::optional<torch::Tensor> bias,
                           int64_t N) {
  TORCH_CHECK(has_vnni(), "linear_rows16: needs AVX-512 VNNI");
  return linear_rows("linear_rows16", 16, &gemm_rows16_raw, best_isa(), x, rows16, sw, bias, N);
}

// ------------------------------------------------------------------ "rows8" layout: int8 on AVX2
// The rows16 layout with 8 lanes (ceil(N/8), Kq/16, 8, 4) uint8 (ternlib.kernels.cpu.to_rows8): one 32-byte load
// and a shift-and-mask give, in 32-bit lane j, the four codes u of columns 16c+4s..+3 of row 8g+j. VPMADDUBSW against
// those four activations broadcast to every lane makes two int16 pair sums per lane, added into int16 accumulators:
// per 32 multiply-adds one VPMADDUBSW and one VPADDW, no horizontal sums (planes128 needs one per row and token) and
// an epilogue storing 8 contiguous outputs. A pair sum is at most 2 * 2 * 127 = 508, so 64 steps (256 columns) fit
// int16 (64 * 508 = 32512); then VPMADDWD widens them into int32 partial sums kept in a small buffer.
namespace {
constexpr int64_t SEG8 = 16;  // chunks (of 16 columns) per int16 segment: 64 steps of at most 508

template <int R, int T>
__attribute__((target("avx2")))
void tile_rows8(const uint8_t* w, int64_t gbytes, int groups, const int8_t* x, int64_t Kq, int32_t* out) {
  // out[(r * T + t) * 8 + j] = sum_k u[row 8r+j][k] * x[t][k] for the `groups` (<= R) row groups at w
  const __m256i mask = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
  for (int i = 0; i < R * T; ++i) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * i), _mm256_setzero_si256());
  const uint8_t* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = w + (r < groups ? r : 0) * gbytes;
  const int64_t C = Kq / 16;
  for (int64_t c0 = 0; c0 < C; c0 += SEG8) {
    const int64_t c1 = std::min<int64_t>(C, c0 + SEG8);
    __m256i a[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) a[r][t] = _mm256_setzero_si256();
    for (int64_t c = c0; c < c1; ++c) {
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        __m256i u[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
          u[r] = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[r] + 32 * c)), 2 * s), mask);
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          int32_t xv;
          std::memcpy(&xv, x + t * Kq + 16 * c + 4 * s, 4);
          const __m256i xb = _mm256_set1_epi32(xv);
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) {
            a[r][t] = _mm256_add_epi16(a[r][t], _mm256_maddubs_epi16(u[r], xb));
            asm("" : "+x"(a[r][t]));  // each sum stays in its register: without this GCC regroups the adds of
          }                           // a chunk's four planes and spills all their products to the stack
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        __m256i* o = reinterpret_cast<__m256i*>(out + (r * T + t) * 8);
        _mm256_storeu_si256(o, _mm256_add_epi32(_mm256_loadu_si256(o), _mm256_madd_epi16(a[r][t], ones)));
      }
  }
}

using Rows8Tile = void (*)(const uint8_t*, int64_t, int, const int8_t*, int64_t, int32_t*);

template <int R, int T>
Rows8Tile rows8_tile(int t) {  // tile_rows8<R, t> for 1 <= t <= T
  if constexpr (T == 0) return nullptr;
  else return t == T ? &tile_rows8<R, T> : rows8_tile<R, T - 1>(t);
}

// y for row groups g0 .. g0+R-1 and tokens mb .. me-1, in register tiles of R row groups x (up to) T tokens
template <int R, int T>
__attribute__((target("avx2")))
void rows8_block(int64_t g0, int64_t mb, int64_t me, const int8_t* qp, const float* sxp, const int32_t* qs, int64_t Kq,
                 const uint8_t* wp, int64_t N, const float* swp, bool per_row, const float* bp, float* yp) {
  const int64_t G = (N + 7) / 8, gbytes = Kq / 16 * 32;
  alignas(32) int32_t acc[R * T * 8];
  const int groups = static_cast<int>(std::min<int64_t>(R, G - g0));
  for (int64_t m0 = mb; m0 < me; m0 += T) {
    const int tt = static_cast<int>(std::min<int64_t>(T, me - m0));
    rows8_tile<R, T>(tt)(wp + g0 * gbytes, gbytes, groups, qp + m0 * Kq, Kq, acc);
    for (int r = 0; r < groups; ++r) {
      const int64_t n0 = 8 * (g0 + r);
      const int rows = static_cast<int>(std::min<int64_t>(8, N - n0));
      for (int t = 0; t < tt; ++t) {
        const int64_t m = m0 + t;
        const int32_t* a = acc + (r * tt + t) * 8;
        float* y = yp + m * N + n0;
        if (rows == 8) {
          const __m256 sw = per_row ? _mm256_loadu_ps(swp + n0) : _mm256_set1_ps(swp[0]);
          const __m256 sc = _mm256_mul_ps(_mm256_set1_ps(sxp[m]), sw);  // sx[m] * sw[n], as the reference
          const __m256i ai = _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(a)), _mm256_set1_epi32(qs[m]));
          __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(ai), sc);
          if (bp) v = _mm256_add_ps(v, _mm256_loadu_ps(bp + n0));
          _mm256_storeu_ps(y, v);
        } else {
          for (int j = 0; j < rows; ++j) {
            const float s = sxp[m] * swp[per_row ? n0 + j : 0];
            float v = static_cast<float>(a[j] - qs[m]) * s;
            if (bp) v = v + bp[n0 + j];
            y[j] = v;
          }
        }
      }
    }
  }
}

template <int R, int T>
void gemm_rows8_t(const int8_t* qp, const float* sxp, const int32_t* qs, int64_t M, int64_t Kq, const uint8_t* wp,
                  int64_t N, const float* swp, bool per_row, const float* bp, float* yp) {
  const int64_t G = (N + 7) / 8;
  const int64_t mchunk = tokens_per_chunk(Kq, T);
  at::parallel_for(0, (G + R - 1) / R, grain_for(8 * R * Kq * M), [&](int64_t p0, int64_t p1) {
    for (int64_t mb = 0; mb < M; mb += mchunk)
      for (int64_t p = p0; p < p1; ++p)
        rows8_block<R, T>(p * R, mb, std::min<int64_t>(M, mb + mchunk), qp, sxp, qs, Kq, wp, N, swp, per_row, bp, yp);
  });
}

// Register tiles: 2 row groups x 4 tokens (8 accumulators, 2 decoded planes, 1 broadcast: no spills with 16
// registers); one token: 4 row groups. In a one-off comparison on a 2-core AMD EPYC Zen 3, 2 x 5 and 2 x 6 tiles
// were within a few percent of 2 x 4 from 16 to 1024 tokens, 1 x 8, 1 x 12, 3 x 3 and 3 x 4 slower (by up to a
// fifth), and 2 x 4 ahead of 2 x 6 at 1-8 tokens.
void gemm_rows8_raw(const int8_t* qp, const float* sxp, const int32_t* qs, int64_t M, int64_t Kq, const uint8_t* wp,
                    int64_t N, const float* swp, bool per_row, const float* bp, float* yp) {
  (M == 1 ? &gemm_rows8_t<4, 1> : &gemm_rows8_t<2, 4>)(qp, sxp, qs, M, Kq, wp, N, swp, per_row, bp, yp);
}
}  // namespace

// Int8 linear on the rows8 layout (AVX2): x (M, K) float32 -> y (M, N) float32.
torch::Tensor linear_rows8(torch::Tensor x, torch::Tensor rows8, torch::Tensor sw, c10::optional<torch::Tensor> bias,
                           int64_t N) {
  TORCH_CHECK(has_avx2(), "linear_rows8: needs AVX2");
  return linear_rows("linear_rows8", 8, &gemm_rows8_raw, 1, x, rows8, sw, bias, N);
}

int64_t isa_level() { return best_isa(); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("quantize_per_token", &quantize_per_token, "per-token absmax int8 quantization (padded to Kp)");
  m.def("gemm_int8", &gemm_int8, "int8 activations x planes128 ternary weight, fused epilogue");
  m.def("gemm_f32", &gemm_f32, "float32 activations x planes128 ternary weight");
  m.def("dequant_epilogue_", &dequant_epilogue_, "int32 accumulators -> float32 outputs, in place");
  m.def("linear_small", &linear_small, "small-M ternary linear in one call");
  m.def("linear_rows16", &linear_rows16, "small-M int8 ternary linear on the rows16 layout (AVX-512 VNNI)");
  m.def("linear_rows8", &linear_rows8, "int8 ternary linear on the rows8 layout (AVX2)");
  m.def("isa_level", &isa_level, "0 scalar, 1 AVX2, 2 AVX-512 VNNI");
}
