/*
 * The pprof file format on disk: a Profile message, protobuf-encoded and gzipped. Encoding
 * to memory and decoding from a file (gzipped or not, ours or Go's); no file writing policy.
 */
#ifndef ALLOCPROF_PPROF_H
#define ALLOCPROF_PPROF_H

#include <stddef.h>

#include "profile.pb-c.h"

/* Packs and gzips into a malloc'd buffer. 0 or -ENOMEM. */
int pprof_encode(const Perftools__Profiles__Profile *p, void **out, size_t *len);
/*
 * Reads and decodes a profile file. 0, or -errno for the file, or -EBADMSG when it is not a
 * profile (a one-line reason in `why`). Free with perftools__profiles__profile__free_unpacked.
 */
int pprof_read(const char *path, Perftools__Profiles__Profile **out, const char **why);
/* A string of the profile's table, "" when the index is out of range. */
const char *pprof_str(const Perftools__Profiles__Profile *p, int64_t idx);

#endif
