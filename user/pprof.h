/*
 * The pprof file format on disk: a Profile message, protobuf-encoded and gzipped. Encoding
 * to memory and decoding from a file (gzipped or not, ours or Go's); no file writing policy.
 */
#ifndef ALLOCPROF_PPROF_H
#define ALLOCPROF_PPROF_H

#include <stddef.h>
#include <stdint.h>

#include "profile.pb-c.h"

/* Packs and gzips into a malloc'd buffer. 0 or -ENOMEM. */
int pprof_encode(const Perftools__Profiles__Profile *p, void **out, size_t *len);
/*
 * Decodes a profile from memory: gzip, zlib or plain protobuf. 0, -ENOMEM, or -EBADMSG when it
 * is not a profile or too large (a one-line reason in `why`).
 */
int pprof_decode(const uint8_t *buf, size_t len, Perftools__Profiles__Profile **out,
		 const char **why);
/*
 * Reads and decodes a profile file, or stdin for "-". Reads until EOF, so pipes and /proc files
 * work. 0, -errno for the file, -ENOMEM, or -EBADMSG when it is not a profile or too large (a
 * one-line reason in `why`). Free with perftools__profiles__profile__free_unpacked.
 */
int pprof_read(const char *path, Perftools__Profiles__Profile **out, const char **why);
/* A string of the profile's table, "" when the index is out of range. */
const char *pprof_str(const Perftools__Profiles__Profile *p, int64_t idx);

#endif
