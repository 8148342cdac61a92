/*
 * The pprof file format on disk: a Profile message, protobuf-encoded and gzipped. Encoding
 * to memory and decoding from a file (gzipped or not, ours or Go's); no file writing policy.
 */
#include "pprof.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/*
 * Profiles bigger than this, compressed or not, are refused rather than read into memory: it
 * bounds what a gzip bomb costs (the buffer grows with the output, up to this). A 3 s capture
 * of a whole host is 19 KiB uncompressed; this leaves room for years of growth.
 */
#define MAX_PROFILE_BYTES (128ull << 20)
#define MAX_PROFILE_TEXT  "128 MiB"

/*
 * What the decoded message may take in memory: 1 GiB, and 32 times the protobuf size plus
 * 64 MiB. Our captures decode to 6 to 11 times their size (measured), crafted ones (empty
 * samples, one-byte strings, unknown fields) to 70 times and more: the ratio refuses those
 * before anything is allocated, the cap bounds what `top` uses.
 */
static uint64_t max_decoded_bytes(size_t len)
{
	uint64_t max = (uint64_t)len * 32 + (64ull << 20);

	return max < (1ull << 30) ? max : 1ull << 30;
}

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

/*
 * Reads a whole file, a pipe or stdin ("-") until EOF: st_size is only a hint (pipes and /proc
 * files say 0). More than MAX_PROFILE_BYTES is refused (-EFBIG), never read into memory.
 */
static int read_all(const char *path, uint8_t **buf, size_t *len)
{
	size_t n = 0, cap = 64 << 10;
	struct stat st;
	uint8_t *b, *nb;
	ssize_t r;
	int fd, err = 0;

	fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(STDIN_FILENO);
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
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > MAX_PROFILE_BYTES) {
		err = -EFBIG;
		goto out;
	}
	if (S_ISREG(st.st_mode) && (size_t)st.st_size >= cap)
		cap = (size_t)st.st_size + 1; /* one more byte to see EOF without growing */
	b = malloc(cap);
	if (!b) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (n == cap) {
			if (cap > MAX_PROFILE_BYTES) {
				err = -EFBIG;
				break;
			}
			cap = cap * 2 > MAX_PROFILE_BYTES + 1 ? MAX_PROFILE_BYTES + 1 : cap * 2;
			nb = realloc(b, cap);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		n += (size_t)r;
	}
	if (err) {
		free(b);
		goto out;
	}
	*buf = b;
	*len = n;
out:
	close(fd);
	return err;
}

/* A zlib stream's two-byte header (RFC 1950): deflate, window up to 32 KiB, check bits. */
static bool is_zlib(const uint8_t *b, size_t len)
{
	return len >= 2 && (b[0] & 0x0f) == 8 && (b[0] >> 4) <= 7 && ((b[0] << 8) | b[1]) % 31 == 0;
}

/*
 * Inflates gzip or zlib data into a buffer that grows as output comes, up to
 * MAX_PROFILE_BYTES: -EFBIG past it, -ENOMEM, or -EBADMSG for corrupt or truncated data.
 */
static int gunzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	z_stream z = {};
	size_t cap = len * 4 + 4096 < MAX_PROFILE_BYTES ? len * 4 + 4096 : MAX_PROFILE_BYTES;
	uint8_t *buf, *nb;
	int ret, err = 0;

	/* 15 + 32: accept gzip or zlib headers. */
	if (inflateInit2(&z, 15 + 32) != Z_OK)
		return -ENOMEM;
	buf = malloc(cap);
	if (!buf) {
		inflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (uint8_t *)in;
	for (;;) {
		/* avail_in and avail_out are 32 bits wide: feed both in slices. */
		if (z.avail_in == 0)
			z.avail_in =
				(uInt)(len - z.total_in < (1u << 30) ? len - z.total_in : 1u << 30);
		if (z.total_out == cap) {
			if (cap >= MAX_PROFILE_BYTES) {
				err = -EFBIG;
				break;
			}
			cap = cap * 2 > MAX_PROFILE_BYTES ? MAX_PROFILE_BYTES : cap * 2;
			nb = realloc(buf, cap);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			buf = nb;
		}
		z.next_out = buf + z.total_out;
		z.avail_out = (uInt)(cap - z.total_out < (1u << 30) ? cap - z.total_out : 1u << 30);
		ret = inflate(&z, Z_NO_FLUSH);
		if (ret == Z_STREAM_END)
			break;
		if (ret == Z_MEM_ERROR) {
			err = -ENOMEM;
			break;
		}
		if ((ret != Z_OK && ret != Z_BUF_ERROR) ||
		    (z.avail_out && z.avail_in == 0 && z.total_in == len)) {
			err = -EBADMSG; /* corrupt, or truncated */
			break;
		}
	}
	inflateEnd(&z);
	if (err) {
		free(buf);
		return err;
	}
	*out_len = z.total_out;
	*out = buf;
	return 0;
}

/*
 * What protobuf-c's unpack would allocate for this message, counted on the wire format before
 * anything is allocated. It allocates per element (a Sample struct for a 2-byte empty sample,
 * a 32-byte block for a 1-byte string), so a small input can decode to many times its size.
 * The count follows protobuf-c 1.4: the message struct, each repeated field's array, each
 * string and unknown field's copy, and the scan's slabs (32-byte entries, doubling, after the
 * first 16 on the stack); each block with malloc's overhead. Stops at `limit` (-EFBIG);
 * -EBADMSG when the wire format is broken (unpack would fail too).
 */
#define BLOCK(n) ((((uint64_t)(n) + 15) & ~15ull) + 16)

static int read_varint(const uint8_t **at, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *at < end; shift += 7) {
		uint8_t b = *(*at)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -EBADMSG;
}

static int message_size(const ProtobufCMessageDescriptor *desc, const uint8_t *at, size_t len,
			uint64_t limit, uint64_t *total, uint64_t *scratch, int depth)
{
	uint64_t count[64] = {}, fields = 0, unknown = 0, child_scratch = 0;
	const uint8_t *end = at + len;
	int err;

	if (depth > 8 || desc->n_fields > ARRAY_SIZE(count))
		return -EBADMSG; /* pprof's messages nest 3 deep and have fewer fields */
	*total += BLOCK(desc->sizeof_message);
	while (at < end) {
		const ProtobufCFieldDescriptor *f;
		const uint8_t *data;
		uint64_t key, n = 0, flen;

		if (read_varint(&at, end, &key) || key >> 32 || (key >> 3) == 0)
			return -EBADMSG;
		switch (key & 7) {
		case 0:
			data = at;
			if (read_varint(&at, end, &n))
				return -EBADMSG;
			flen = (uint64_t)(at - data);
			break;
		case 1:
		case 5:
			flen = (key & 7) == 1 ? 8 : 4;
			if ((uint64_t)(end - at) < flen)
				return -EBADMSG;
			data = at;
			at += flen;
			break;
		case 2:
			if (read_varint(&at, end, &flen) || flen > (uint64_t)(end - at))
				return -EBADMSG;
			data = at;
			at += flen;
			break;
		default:
			return -EBADMSG;
		}
		fields++;
		f = protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3));
		if (!f) {
			unknown++;
			*total += BLOCK(flen);
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			if ((key & 7) != 2)
				return -EBADMSG;
			uint64_t s = 0;

			err = message_size(f->descriptor, data, flen, limit, total, &s, depth + 1);
			if (err)
				return err;
			if (s > child_scratch)
				child_scratch = s;
			n = 1;
		} else if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES) {
			*total += BLOCK(flen + 1);
			n = 1;
		} else if ((key & 7) == 2) {
			/* A packed run: varints end in a byte below 0x80, fixed ones by size. */
			n = 0;
			if (f->type == PROTOBUF_C_TYPE_DOUBLE ||
			    f->type == PROTOBUF_C_TYPE_FIXED64 ||
			    f->type == PROTOBUF_C_TYPE_SFIXED64)
				n = flen / 8;
			else if (f->type == PROTOBUF_C_TYPE_FLOAT ||
				 f->type == PROTOBUF_C_TYPE_FIXED32 ||
				 f->type == PROTOBUF_C_TYPE_SFIXED32)
				n = flen / 4;
			else
				for (uint64_t i = 0; i < flen; i++)
					n += !(data[i] & 0x80);
		} else {
			n = 1;
		}
		if (f && f->label == PROTOBUF_C_LABEL_REPEATED)
			count[f - desc->fields] += n;
		if (*total > limit)
			return -EFBIG;
	}
	for (size_t i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		uint64_t elt;

		if (!count[i])
			continue;
		if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
			elt = sizeof(void *);
		else if (f->type == PROTOBUF_C_TYPE_BYTES)
			elt = sizeof(ProtobufCBinaryData);
		else /* pprof has no narrower arrays than int64's; an upper bound anyway */
			elt = 8;
		*total += BLOCK(count[i] * elt);
	}
	if (unknown)
		*total += BLOCK(unknown * sizeof(ProtobufCMessageUnknownField));
	/*
	 * Scratch space protobuf-c takes for a message of many fields and frees when that
	 * message is done: only one chain of messages holds it at once, the largest counts.
	 */
	*scratch = (fields > 16 ? BLOCK(2 * fields * 32) : 0) + child_scratch;
	return *total + *scratch > limit ? -EFBIG : 0;
}

/* An upper bound of what protobuf-c allocates to unpack the message (0, -EFBIG, -EBADMSG). */
static int decoded_size(const ProtobufCMessageDescriptor *desc, const uint8_t *at, size_t len,
			uint64_t limit, uint64_t *total, int depth)
{
	uint64_t scratch = 0;
	int err = message_size(desc, at, len, limit, total, &scratch, depth);

	*total += scratch;
	return err;
}

/* protobuf-c's allocator, noting whether it ran out of memory (unpack then just fails). */
static void *pb_alloc(void *data, size_t size)
{
	void *p = malloc(size);

	if (!p)
		*(bool *)data = true;
	return p;
}

static void pb_free(void *data, void *p)
{
	(void)data;
	free(p);
}

int pprof_decode(const uint8_t *buf, size_t len, Perftools__Profiles__Profile **out,
		 const char **why)
{
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	Perftools__Profiles__Profile *p;
	bool oom = false;
	ProtobufCAllocator alloc = { pb_alloc, pb_free, &oom };
	uint64_t size = 0;
	bool gzip;
	int err;

	*why = NULL;
	if (len == 0) {
		*why = "empty file";
		return -EBADMSG;
	}
	gzip = len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
	if (gzip || is_zlib(buf, len)) {
		err = gunzip(buf, len, &raw, &raw_len);
		if (err == -EFBIG) {
			*why = "too large (more than " MAX_PROFILE_TEXT " uncompressed)";
			return -EBADMSG;
		}
		if (err == -ENOMEM)
			return err;
		/* A plain profile may start with bytes that look like a zlib header. */
		if (err && (gzip || decoded_size(&perftools__profiles__profile__descriptor, buf,
						 len, max_decoded_bytes(len), &size, 0))) {
			*why = gzip ? "corrupt or truncated gzip data"
				    : "corrupt or truncated zlib data";
			return -EBADMSG;
		}
		if (!err) {
			buf = raw;
			len = raw_len;
		}
		size = 0;
	}
	err = decoded_size(&perftools__profiles__profile__descriptor, buf, len,
			   max_decoded_bytes(len), &size, 0);
	if (err) {
		free(raw);
		*why = err == -EFBIG ? "too large to decode (over 1 GiB or 32 times its size)"
				     : "not a pprof profile (protobuf decoding failed)";
		return -EBADMSG;
	}
	p = perftools__profiles__profile__unpack(&alloc, len, buf);
	free(raw);
	if (!p) {
		if (oom)
			return -ENOMEM;
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

int pprof_read(const char *path, Perftools__Profiles__Profile **out, const char **why)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int err;

	*why = NULL;
	err = read_all(path, &buf, &len);
	if (err == -EFBIG) {
		*why = "too large (more than " MAX_PROFILE_TEXT ")";
		return -EBADMSG;
	}
	if (err)
		return err;
	err = pprof_decode(buf, len, out, why);
	free(buf);
	return err;
}

const char *pprof_str(const Perftools__Profiles__Profile *p, int64_t idx)
{
	if (idx < 0 || (size_t)idx >= p->n_string_table)
		return "";
	return p->string_table[idx];
}
