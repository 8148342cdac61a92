/*
 * The pprof file format on disk: a Profile message, protobuf-encoded and gzipped. Encoding
 * to memory and decoding from a file (gzipped or not, ours or Go's); no file writing policy.
 */
#include "pprof.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Profiles bigger than this are refused rather than read into memory. */
#define MAX_PROFILE_BYTES (1ull << 30)

int pprof_encode(const Perftools__Profiles__Profile *p, void **out, size_t *len)
{
	size_t raw_len = perftools__profiles__profile__get_packed_size(p);
	uint8_t *raw = xcalloc(1, raw_len);
	z_stream z = {};
	uLong bound;
	uint8_t *gz;
	int ret;

	perftools__profiles__profile__pack(p, raw);
	/* windowBits 15 + 16: a gzip header, which is what pprof and Go expect. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		free(raw);
		return -ENOMEM;
	}
	bound = deflateBound(&z, raw_len) + 32;
	gz = xcalloc(1, bound);
	z.next_in = raw;
	z.avail_in = (uInt)raw_len;
	z.next_out = gz;
	z.avail_out = (uInt)bound;
	ret = deflate(&z, Z_FINISH);
	*len = z.total_out;
	deflateEnd(&z);
	free(raw);
	if (ret != Z_STREAM_END) {
		free(gz);
		return -ENOMEM;
	}
	*out = gz;
	return 0;
}

static int read_all(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		err = -EISDIR;
		goto out;
	}
	if ((uint64_t)st.st_size > MAX_PROFILE_BYTES) {
		err = -EFBIG;
		goto out;
	}
	*buf = xcalloc(1, (size_t)st.st_size + 1);
	while ((r = read(fd, *buf + n, (size_t)st.st_size - n)) > 0)
		n += (size_t)r;
	if (r < 0) {
		err = -errno;
		free(*buf);
	}
	*len = n;
out:
	close(fd);
	return err;
}

static int gunzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	z_stream z = {};
	size_t cap = len * 4 + 4096;
	uint8_t *buf;
	int ret;

	/* 15 + 32: accept gzip or zlib headers. */
	if (inflateInit2(&z, 15 + 32) != Z_OK)
		return -ENOMEM;
	buf = xcalloc(1, cap);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	for (;;) {
		z.next_out = buf + z.total_out;
		z.avail_out = (uInt)(cap - z.total_out);
		ret = inflate(&z, Z_NO_FLUSH);
		if (ret == Z_STREAM_END)
			break;
		if (ret != Z_OK && ret != Z_BUF_ERROR) {
			inflateEnd(&z);
			free(buf);
			return -EBADMSG;
		}
		if (z.avail_out == 0) {
			if (cap >= MAX_PROFILE_BYTES) {
				inflateEnd(&z);
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			buf = xrealloc(buf, cap, 1);
		} else if (z.avail_in == 0) {
			inflateEnd(&z);
			free(buf);
			return -EBADMSG; /* truncated */
		}
	}
	*out_len = z.total_out;
	*out = buf;
	inflateEnd(&z);
	return 0;
}

int pprof_read(const char *path, Perftools__Profiles__Profile **out, const char **why)
{
	uint8_t *buf = NULL, *raw = NULL;
	size_t len = 0, raw_len = 0;
	Perftools__Profiles__Profile *p;
	int err;

	*why = NULL;
	err = read_all(path, &buf, &len);
	if (err)
		return err;
	if (len == 0) {
		*why = "empty file";
		free(buf);
		return -EBADMSG;
	}
	if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
		err = gunzip(buf, len, &raw, &raw_len);
		free(buf);
		if (err) {
			*why = err == -EFBIG ? "too large" : "corrupt or truncated gzip data";
			return -EBADMSG;
		}
	} else {
		raw = buf;
		raw_len = len;
	}
	p = perftools__profiles__profile__unpack(NULL, raw_len, raw);
	free(raw);
	if (!p) {
		*why = "not a pprof profile (protobuf decoding failed)";
		return -EBADMSG;
	}
	if (!p->n_string_table || p->string_table[0][0] || !p->n_sample_type) {
		*why = !p->n_sample_type ? "not a pprof profile (no sample types)"
					 : "not a pprof profile (bad string table)";
		perftools__profiles__profile__free_unpacked(p, NULL);
		return -EBADMSG;
	}
	*out = p;
	return 0;
}

const char *pprof_str(const Perftools__Profiles__Profile *p, int64_t idx)
{
	if (idx < 0 || (size_t)idx >= p->n_string_table)
		return "";
	return p->string_table[idx];
}
