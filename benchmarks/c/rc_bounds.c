/* Lower bounds for the RC kernel on this CPU: what two logs per pixel cost in hand-written
 * AVX2 C, next to a memory-traffic floor with the same loads and stores.
 *
 *   gcc -O3 -march=native -fno-tree-vectorize -fopenmp -o /tmp/rc_bounds benchmarks/c/rc_bounds.c -lm
 *   /tmp/rc_bounds 6822900 1 && /tmp/rc_bounds 6822900 2        # full field, 1 and 2 threads
 *   llvm-mca -mcpu=znver3 on `gcc -S` output models the same loops (Debian package llvm)
 *
 * Methods (uint16 LE/HE in, float32 RC out, 8 bytes/pixel of traffic in all of them):
 *   floor        the loads and stores alone, one FMA (as benchmarks/bench_recombine.py)
 *   table        RC = T_he[he] - T_lew[le], float32 tables: cemrecon's kernel, in C
 *   gather       the same with AVX2 vgatherdps (8 lanes)
 *   poly-bound   vectorised log WITHOUT the accuracy work: mantissa range reduction through
 *                an 8-entry vpermps table, degree-3 polynomial, even/odd 16-bit split (no
 *                lane-crossing unpacks), ~24 vector ops per 8 pixels.  Its coefficients are
 *                placeholders: it is a speed bound, not a kernel.  A version meeting issue 4's
 *                2e-6 (exact k ln 2 split, offset and floor in float, 3 roundings) needs
 *                ~31 ops per 8 pixels.
 * Output: milliseconds (minimum of 40 runs) and TSC cycles per pixel per thread.
 * Not part of the test suite; no dependency of the package. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long N;
static uint16_t *he, *le;
static float *out;
static float t_he[65536], t_lew[65536];
static const float W = 0.245f;

static void floor_k(long a, long b) {
    for (long i = a; i < b; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(he + i)));
        __m256i l = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(le + i)));
        _mm256_storeu_ps(out + i, _mm256_fnmadd_ps(_mm256_set1_ps(W), _mm256_cvtepi32_ps(l),
                                                   _mm256_cvtepi32_ps(h)));
    }
}

static void table_k(long a, long b) {
    for (long i = a; i < b; i++) out[i] = t_he[he[i]] - t_lew[le[i]];
}

static void gather_k(long a, long b) {
    for (long i = a; i < b; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(he + i)));
        __m256i l = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(le + i)));
        _mm256_storeu_ps(out + i, _mm256_sub_ps(_mm256_i32gather_ps(t_he, h, 4),
                                                _mm256_i32gather_ps(t_lew, l, 4)));
    }
}

static inline __m256 ln8(__m256i u, __m256 rct, __m256 c3, __m256 c2, __m256 c1, __m256 sc, __m256 c0) {
    __m256i x = _mm256_castps_si256(_mm256_cvtepi32_ps(u));
    __m256i j = _mm256_srli_epi32(x, 20);
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0x7FFFFF)),
                                                   _mm256_set1_epi32(0x3F800000)));
    __m256 r = _mm256_fmsub_ps(m, _mm256_permutevar8x32_ps(rct, j), _mm256_set1_ps(1.0f));
    __m256 e = _mm256_fmadd_ps(_mm256_cvtepi32_ps(j), sc, c0);
    __m256 t = _mm256_fmadd_ps(_mm256_fmadd_ps(c3, r, c2), r, c1);
    return _mm256_fmadd_ps(t, r, e);
}

static void poly_bound_k(long a, long b) {
    const __m256 rct = _mm256_set_ps(0.5237f, 0.5474f, 0.5722f, 0.5981f, 0.6252f, 0.6535f, 0.6830f, 0.7140f);
    const __m256 sc = _mm256_set1_ps(0.0866434f), c0 = _mm256_set1_ps(-87.98f);
    const __m256 c3 = _mm256_set1_ps(0.3333f), c2 = _mm256_set1_ps(-0.5f), c1 = _mm256_set1_ps(1.0f);
    const __m256 w = _mm256_set1_ps(W);
    const __m256i lo = _mm256_set1_epi32(0xFFFF);
    for (long i = a; i < b; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(he + i));
        __m256i l = _mm256_loadu_si256((const __m256i *)(le + i));
        __m256 ev = _mm256_fnmadd_ps(w, ln8(_mm256_and_si256(l, lo), rct, c3, c2, c1, sc, c0),
                                     ln8(_mm256_and_si256(h, lo), rct, c3, c2, c1, sc, c0));
        __m256 od = _mm256_fnmadd_ps(w, ln8(_mm256_srli_epi32(l, 16), rct, c3, c2, c1, sc, c0),
                                     ln8(_mm256_srli_epi32(h, 16), rct, c3, c2, c1, sc, c0));
        __m256 p = _mm256_unpacklo_ps(ev, od), q = _mm256_unpackhi_ps(ev, od);
        _mm256_storeu_ps(out + i, _mm256_permute2f128_ps(p, q, 0x20));
        _mm256_storeu_ps(out + i + 8, _mm256_permute2f128_ps(p, q, 0x31));
    }
}

static double best_ms(void (*f)(long, long), int nt) {
    double best = 1e30;
    for (int rep = 0; rep < 40; rep++) {
        double t = omp_get_wtime();
#pragma omp parallel num_threads(nt)
        {
            int k = omp_get_thread_num();
            long chunk = (N / nt) / 16 * 16;
            long a = k * chunk, b = (k == nt - 1) ? N : a + chunk;
            f(a, b);
        }
        t = omp_get_wtime() - t;
        if (t < best) best = t;
    }
    return best * 1e3;
}

int main(int argc, char **argv) {
    N = argc > 1 ? atol(argv[1]) : 6822900;
    int nt = argc > 2 ? atoi(argv[2]) : 2;
    N = N / 16 * 16;
    he = aligned_alloc(64, (size_t)N * 2);
    le = aligned_alloc(64, (size_t)N * 2);
    out = aligned_alloc(64, (size_t)N * 4);
    for (int v = 0; v < 65536; v++) {
        double x = v > 50 ? v - 50.0 : 0.5;
        t_he[v] = (float)log(x);
        t_lew[v] = (float)(W * log(x));
    }
    srand(1);
    for (long i = 0; i < N; i++) {  /* smooth breast-like ranges plus quantum noise, as bench_recombine.py */
        double col = (double)(i % 2394) / 2394.0, row = (double)(i / 2394) / 2850.0;
        double tex = 0.5 + 0.25 * sin(6.0 * col + 1.0) * cos(5.0 * row) + 0.25 * col * row;
        double g = ((rand() % 2001) - 1000) / 577.0;  /* uniform, unit variance */
        double le_mean = 400.0 + 13600.0 * tex, he_mean = 2000.0 + 7000.0 * tex;
        le[i] = (uint16_t)(50.0 + le_mean + g * 2.0 * sqrt(le_mean));
        he[i] = (uint16_t)(50.0 + he_mean + g * 2.0 * sqrt(he_mean));
    }
    memset(out, 0, (size_t)N * 4);
    const char *names[] = {"floor", "table", "gather", "poly-bound"};
    void (*fns[])(long, long) = {floor_k, table_k, gather_k, poly_bound_k};
    double ms[4];
    for (int k = 0; k < 4; k++) ms[k] = best_ms(fns[k], nt);
    printf("%ld px, %d thread(s)\n%-11s %8s %14s %8s\n", N, nt, "method", "min ms", "TSC cyc/px/thr", "x floor");
    for (int k = 0; k < 4; k++)
        printf("%-11s %8.3f %14.2f %8.2f\n", names[k], ms[k], ms[k] * 1e-3 * 2.45e9 * nt / N, ms[k] / ms[0]);
    return 0;
}
