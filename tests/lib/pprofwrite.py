"""Writes pprof profiles by hand (protobuf's wire format, no protobuf package needed), for tests
that need profiles no capture would produce: crafted, hostile, or with odd names; and reads
the wire format back, field by field."""


def varint(n):
    n &= (1 << 64) - 1  # negative int64s are ten bytes, as protobuf encodes them
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, value):
    return varint(num << 3) + varint(value)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def packed(num, values):
    return field_bytes(num, b"".join(varint(v) for v in values))


# Reading the wire format back, for tests that check what a file holds field by field.

def read_varint(buf, i):
    """The varint at buf[i]: (value, index after it)."""
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def read_fields(buf):
    """(field number, value) of each field of a message: an int for varints, bytes for
    length-delimited fields; fixed-width fields are skipped."""
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        wire = key & 7
        if wire == 0:
            v, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            continue
        else:
            raise ValueError("bad wire type %d" % wire)
        yield key >> 3, v


def read_packed(buf):
    """The varints of a packed repeated field."""
    i = 0
    while i < len(buf):
        v, i = read_varint(buf, i)
        yield v


class Profile:
    """A profile built up from functions and stacks; encode() gives the raw protobuf."""

    def __init__(self, types=(("alloc_objects", "count"), ("alloc_space", "bytes"))):
        self.strings = [""]
        self.types = [(self.s(t), self.s(u)) for t, u in types]
        self.functions = []  # (id, name, file)
        self.locations = []  # (id, address, [function ids])
        self.samples = []  # ([location ids], [values], {label: string})
        self.comments = []  # string indexes
        self.period_type = None  # (type, unit) string indexes
        self.period = None

    def s(self, text):
        if text not in self.strings:
            self.strings.append(text)
        return self.strings.index(text)

    def function(self, name, filename=""):
        fid = len(self.functions) + 1
        self.functions.append((fid, self.s(name), self.s(filename)))
        lid = len(self.locations) + 1
        self.locations.append((lid, 0x1000 * lid, [fid]))
        return lid

    def sample(self, locations, values, labels=None):
        self.samples.append((list(locations), list(values), dict(labels or {})))

    def comment(self, text):
        self.comments.append(self.s(text))

    def set_period(self, period, type_="space", unit="bytes"):
        self.period_type = (self.s(type_), self.s(unit))
        self.period = period

    # allocprof's own comments (user/profile.h), as `record` writes them.
    def ops(self, name, count, rest=""):
        self.comment("ops: %s %d%s" % (name, count, rest))

    def exact(self):
        self.comment("sampling: none (--exact)")
        self.set_period(1)

    def sampled(self, mean):
        self.comment("sampling: one per %d bytes on average" % mean)
        self.set_period(mean)

    def encode(self):
        out = bytearray()
        for t, u in self.types:
            out += field_bytes(1, field_varint(1, t) + field_varint(2, u))
        for locs, vals, labels in self.samples:
            lbl = b"".join(field_bytes(3, field_varint(1, self.s(k)) + field_varint(2, self.s(v)))
                           for k, v in sorted(labels.items()))
            out += field_bytes(2, packed(1, locs) + packed(2, vals) + lbl)
        for lid, addr, fids in self.locations:
            lines = b"".join(field_bytes(4, field_varint(1, f) + field_varint(2, 7))
                             for f in fids)
            out += field_bytes(4, field_varint(1, lid) + field_varint(3, addr) + lines)
        for fid, name, filename in self.functions:
            out += field_bytes(5, field_varint(1, fid) + field_varint(2, name) +
                               field_varint(4, filename))
        for text in self.strings:
            out += field_bytes(6, text)
        if self.period_type is not None:
            out += field_bytes(11, field_varint(1, self.period_type[0]) +
                               field_varint(2, self.period_type[1]))
        if self.period is not None:
            out += field_varint(12, self.period)
        if self.comments:
            out += packed(13, self.comments)
        return bytes(out)
