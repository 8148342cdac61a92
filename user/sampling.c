/*
 * The numbers behind byte-based Poisson sampling, computed in userspace (the BPF side has no
 * floating point) and handed to the program as tables: sampling distances drawn from an
 * exponential distribution, and the per-allocation weight 1 / (1 - exp(-size/R)).
 */
#include "sampling.h"
#include "allocprof.h"

#include <math.h>

void sampling_exp_table(uint32_t *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		t[i] = (uint32_t)lround(-log(((double)i + 0.5) / (double)n) * (1 << AP_Q));
}

static double f(double x)
{
	return x == 0 ? 1.0 : x / -expm1(-x);
}

void sampling_weight_table(uint32_t *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		t[i] = (uint32_t)lround(f((double)i / (1 << AP_WEIGHT_STEPS_LOG2)) * (1 << AP_Q));
}

double sampling_weight(uint64_t size, uint64_t rate)
{
	return 1.0 / -expm1(-(double)size / (double)rate);
}
