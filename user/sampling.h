/*
 * The numbers behind byte-based Poisson sampling, computed in userspace (the BPF side has no
 * floating point) and handed to the program as tables: sampling distances drawn from an
 * exponential distribution, and the per-allocation weight 1 / (1 - exp(-size/R)).
 */
#ifndef ALLOCPROF_SAMPLING_H
#define ALLOCPROF_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

/* t[i] = -ln((i + 0.5) / n) in Q16: n equally likely quantiles of Exp(1). */
void sampling_exp_table(uint32_t *t, size_t n);
/* t[i] = f(i / 2^AP_WEIGHT_STEPS_LOG2) in Q16 with f(x) = x / (1 - exp(-x)), f(0) = 1. */
void sampling_weight_table(uint32_t *t, size_t n);
/* The exact weight of one sampled allocation, for tests and reports. */
double sampling_weight(uint64_t size, uint64_t rate);

#endif
