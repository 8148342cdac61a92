/* What deep.c and its library agree on: the sizes of each allocation of one round. */
#ifndef UNWIND_DEEP_H
#define UNWIND_DEEP_H

#include <stddef.h>

#define UNW_MALLOC_SIZE	  100
#define UNW_CALLOC_NMEMB  3
#define UNW_CALLOC_SIZE	  40
#define UNW_REALLOC_SIZE  500
#define UNW_DEPTH	  20

long unw_lib_entry(int salt);

#endif
