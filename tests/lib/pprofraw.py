"""Reads a profile through the standalone pprof (`pprof -raw`), the independent reader every
profile must satisfy, into plain Python objects the tests can assert on."""

import re
import subprocess
from dataclasses import dataclass, field

PPROF = "pprof"


@dataclass
class Sample:
    values: list
    locations: list  # location ids, leaf first
    labels: dict = field(default_factory=dict)  # key -> list of values (str)


@dataclass
class Location:
    id: int
    address: int
    mapping: int
    functions: list  # innermost first (inlined frames, then the real function)


@dataclass
class Profile:
    types: list  # ["alloc_objects/count", ...]
    default_type: str
    samples: list
    locations: dict
    mappings: list  # raw lines
    comments: list
    period_type: str = ""
    period: int = 0
    raw: str = ""

    def type_index(self, name):
        for i, t in enumerate(self.types):
            if t.split("/")[0] == name:
                return i
        raise KeyError(name)

    def stack(self, sample):
        """Function names, leaf first, inlined frames expanded."""
        out = []
        for lid in sample.locations:
            out.extend(self.locations[lid].functions or ["0x%x" % self.locations[lid].address])
        return out

    def flat(self, type_name):
        """Sum of values per leaf function (innermost frame of the first location)."""
        i = self.type_index(type_name)
        sums = {}
        for s in self.samples:
            leaf = self.stack(s)[0] if s.locations else "<no stack>"
            sums[leaf] = sums.get(leaf, 0) + s.values[i]
        return sums

    def total(self, type_name):
        i = self.type_index(type_name)
        return sum(s.values[i] for s in self.samples)


LOC_RE = re.compile(r"^\s*(\d+): (0x[0-9a-f]+) (?:M=(\d+) )?(.*)$")
CONT_RE = re.compile(r"^ {13}(\S.*)$")
FUNC_RE = re.compile(r"^(.*) (\S*):(-?\d+) s=-?\d+(?:\(.*\))?$")


def _func(text):
    m = FUNC_RE.match(text)
    return m.group(1) if m else text.strip()


def parse(text):
    lines = text.splitlines()
    types, samples, locations, mappings, comments = [], [], {}, [], []
    default_type, period_type, period = "", "", 0
    section = None
    last_loc = None
    for line in lines:
        if line.startswith("Comment: "):
            comments.append(line[len("Comment: "):])
            continue
        if line.startswith("PeriodType: "):
            period_type = line[len("PeriodType: "):].strip()
            continue
        if line.startswith("Period: "):
            period = int(line[len("Period: "):])
            continue
        if line == "Samples:":
            section = "types"
            continue
        if line == "Locations":
            section = "locations"
            continue
        if line == "Mappings":
            section = "mappings"
            continue
        if section == "types":
            for t in line.split():
                if t.endswith("[dflt]"):
                    t = t[: -len("[dflt]")]
                    default_type = t.split("/")[0]
                types.append(t)
            section = "samples"
            continue
        if section == "samples":
            if ":" in line and not line.startswith(" " * 16):
                vals, _, locs = line.partition(":")
                samples.append(Sample([int(v) for v in vals.split()],
                                      [int(x) for x in locs.split()]))
            elif line.strip():
                # label lines: "key:[v1 v2] key2:[v]"
                for key, val in re.findall(r"(\S+?):\[([^\]]*)\]", line):
                    samples[-1].labels.setdefault(key, []).append(val)
            continue
        if section == "locations":
            m = LOC_RE.match(line)
            if m:
                funcs = [_func(m.group(4))] if m.group(4).strip() else []
                last_loc = Location(int(m.group(1)), int(m.group(2), 16),
                                    int(m.group(3) or 0), funcs)
                locations[last_loc.id] = last_loc
                continue
            m = CONT_RE.match(line)
            if m and last_loc:
                last_loc.functions.append(_func(m.group(1)))
            continue
        if section == "mappings" and line.strip():
            mappings.append(line)
    return Profile(types, default_type, samples, locations, mappings, comments, period_type,
                   period, text)


def read(path, *args):
    """pprof -raw [args] path, parsed. Raises CalledProcessError when pprof refuses it."""
    out = subprocess.run([PPROF, "-raw", *args, path], check=True, capture_output=True,
                         text=True)
    return parse(out.stdout)
