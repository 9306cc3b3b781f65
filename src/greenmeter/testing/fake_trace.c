/*
 * The power trace the fake GPU libraries compute every reading from.
 *
 * Prepended to fake_nvml.c and fake_amdsmi.c when greenmeter.testing builds them, so both
 * evaluate traces exactly like greenmeter.testing.PowerTrace: piecewise-constant power
 * (W) in steps of given durations (s) from a CLOCK_MONOTONIC instant t0 (the clock
 * behind Python's time.monotonic()), zero before t0, then repeating or holding the last
 * power.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    double t0;
    int repeat;
    int n_steps;
    int capacity;
    double *durations;
    double *powers;
    double *starts;
    double *cum_j;
    double period_s;
    double period_j;
} trace_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void trace_free(trace_t *tr) {
    free(tr->durations);
    free(tr->powers);
    free(tr->starts);
    free(tr->cum_j);
    tr->durations = tr->powers = tr->starts = tr->cum_j = NULL;
    tr->n_steps = tr->capacity = 0;
}

/* Make room for n steps (dropping any previous ones). */
static void trace_alloc(trace_t *tr, int n) {
    trace_free(tr);
    if (n < 1) n = 1;
    tr->durations = calloc((size_t)n, sizeof(double));
    tr->powers = calloc((size_t)n, sizeof(double));
    tr->starts = calloc((size_t)n, sizeof(double));
    tr->cum_j = calloc((size_t)n, sizeof(double));
    tr->capacity = n;
}

static void trace_finish(trace_t *tr) {
    double t = 0.0, e = 0.0;
    for (int i = 0; i < tr->n_steps; i++) {
        tr->starts[i] = t;
        tr->cum_j[i] = e;
        t += tr->durations[i];
        e += tr->durations[i] * tr->powers[i];
    }
    tr->period_s = t;
    tr->period_j = e;
}

/* Append one "duration_s power_w" step; the trace is finished when the last one arrives. */
static void trace_add_step(trace_t *tr, const char *text) {
    if (tr->durations == NULL || tr->n_steps >= tr->capacity) return;
    char *end = NULL;
    tr->durations[tr->n_steps] = strtod(text, &end);
    tr->powers[tr->n_steps] = strtod(end, NULL);
    tr->n_steps++;
    if (tr->n_steps == tr->capacity) trace_finish(tr);
}

/* A device configured without a trace draws nothing. */
static void trace_default(trace_t *tr) {
    if (tr->n_steps > 0) return;
    trace_alloc(tr, 1);
    tr->durations[0] = 3600.0;
    tr->n_steps = 1;
    trace_finish(tr);
}

static double trace_power_w(const trace_t *tr, double t) {
    double x = t - tr->t0;
    if (x < 0 || tr->n_steps == 0) return 0.0;
    if (x >= tr->period_s) {
        if (!tr->repeat) return tr->powers[tr->n_steps - 1];
        x = fmod(x, tr->period_s);
    }
    int i = tr->n_steps - 1;
    while (i > 0 && tr->starts[i] > x) i--;
    return tr->powers[i];
}

/* Exact energy (J) from t0 up to t. */
static double trace_cumulative_j(const trace_t *tr, double t) {
    double x = t - tr->t0;
    if (x <= 0 || tr->n_steps == 0) return 0.0;
    double base = 0.0;
    if (x >= tr->period_s) {
        if (!tr->repeat) return tr->period_j + (x - tr->period_s) * tr->powers[tr->n_steps - 1];
        double n = floor(x / tr->period_s);
        base = n * tr->period_j;
        x -= n * tr->period_s;
    }
    int i = tr->n_steps - 1;
    while (i > 0 && tr->starts[i] > x) i--;
    return base + tr->cum_j[i] + (x - tr->starts[i]) * tr->powers[i];
}

/* The last instant not after t on a grid of `step` seconds from t0 (t itself if step <= 0). */
static double trace_quantise(const trace_t *tr, double t, double step) {
    if (step <= 0 || t <= tr->t0) return t;
    return tr->t0 + floor((t - tr->t0) / step) * step;
}

/* The average power (W) over the `window_s` before t, as refreshed every `refresh_s`. */
static double trace_average_w(const trace_t *tr, double t, double window_s, double refresh_s) {
    double at = trace_quantise(tr, t, refresh_s);
    if (window_s <= 0) window_s = 1.0;
    return (trace_cumulative_j(tr, at) - trace_cumulative_j(tr, at - window_s)) / window_s;
}

/* Copy a config value, without its line end, truncated to `cap` bytes with the NUL. */
static void copy_value(char *dst, const char *src, size_t cap) {
    strncpy(dst, src, cap - 1);
    dst[cap - 1] = '\0';
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '\r')) dst[--n] = '\0';
}
