/*
 * Reading ELF files with libelf: defined function symbols by name, the program interpreter,
 * the GNU build-id and the mapping between file offsets and virtual addresses. Owns nothing
 * but the open file; knows nothing about processes.
 */
#include "elffile.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sym {
	const char *name; /* points into libelf's string data, valid while the Elf is open */
	uint64_t vaddr;
	uint64_t size;
	bool ifunc;
	bool object;
	bool dynamic;
	bool hidden_version; /* a non-default symbol version (foo@VER, not foo@@VER) */
};

struct seg {
	uint64_t vaddr, memsz, offset, filesz;
};

struct elf_file {
	int fd;
	Elf *elf;
	bool dyn;
	char *interp;
	char build_id[2 * 64 + 1];
	struct sym *syms; /* sorted by name, dynamic before static, default version first */
	size_t nsyms;
	struct seg *segs;
	size_t nsegs;
};

static int sym_cmp(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	if (x->dynamic != y->dynamic)
		return x->dynamic ? -1 : 1;
	return (int)x->hidden_version - (int)y->hidden_version;
}

static void read_symtab(struct elf_file *ef, Elf_Scn *scn, GElf_Shdr *sh, Elf_Data *versym)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t n, cap;
	bool dynamic = sh->sh_type == SHT_DYNSYM;

	if (!data || !sh->sh_entsize)
		return;
	n = sh->sh_size / sh->sh_entsize;
	cap = ef->nsyms;
	grow((void **)&ef->syms, &cap, ef->nsyms + n, sizeof(*ef->syms));
	for (size_t i = 1; i < n; i++) {
		GElf_Sym s;
		GElf_Versym v = 0;
		const char *name;
		int type, bind;

		if (!gelf_getsym(data, (int)i, &s))
			continue;
		type = GELF_ST_TYPE(s.st_info);
		bind = GELF_ST_BIND(s.st_info);
		if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_OBJECT)
			continue;
		if (s.st_shndx == SHN_UNDEF || !s.st_value)
			continue;
		/* The dynamic linker binds only global and weak definitions of default visibility.
		 */
		if (dynamic &&
		    ((bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) ||
		     GELF_ST_VISIBILITY(s.st_other) == STV_HIDDEN ||
		     GELF_ST_VISIBILITY(s.st_other) == STV_INTERNAL))
			continue;
		name = elf_strptr(ef->elf, sh->sh_link, s.st_name);
		if (!name || !*name)
			continue;
		if (versym)
			gelf_getversym(versym, (int)i, &v);
		ef->syms[ef->nsyms++] = (struct sym){
			.name = name,
			.vaddr = s.st_value,
			.size = s.st_size,
			.ifunc = type == STT_GNU_IFUNC,
			.object = type == STT_OBJECT,
			.dynamic = dynamic,
			.hidden_version = (v & 0x8000) != 0,
		};
	}
}

static void read_note_build_id(struct elf_file *ef, Elf_Data *data)
{
	size_t off = 0, name_off, desc_off;
	GElf_Nhdr nh;

	while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
		const unsigned char *desc = (const unsigned char *)data->d_buf + desc_off;

		if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
		    memcmp((const char *)data->d_buf + name_off, "GNU", 4) || nh.n_descsz > 64)
			continue;
		for (size_t i = 0; i < nh.n_descsz; i++)
			sprintf(ef->build_id + 2 * i, "%02x", desc[i]);
		return;
	}
}

static int index_file(struct elf_file *ef)
{
	Elf_Data *versym = NULL;
	Elf_Scn *scn = NULL;
	size_t nph, cap = 0;
	GElf_Ehdr eh;

	if (elf_kind(ef->elf) != ELF_K_ELF || !gelf_getehdr(ef->elf, &eh))
		return -ENOEXEC;
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
		return -ENOEXEC;
	ef->dyn = eh.e_type == ET_DYN;
	if (elf_getphdrnum(ef->elf, &nph))
		return -ENOEXEC;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(ef->elf, (int)i, &ph))
			continue;
		if (ph.p_type == PT_LOAD) {
			grow((void **)&ef->segs, &cap, ef->nsegs + 1, sizeof(*ef->segs));
			ef->segs[ef->nsegs++] =
				(struct seg){ ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz };
		} else if (ph.p_type == PT_INTERP && !ef->interp && ph.p_filesz < 4096) {
			size_t len;
			char *raw = elf_rawfile(ef->elf, &len);

			if (raw && ph.p_offset + ph.p_filesz <= len)
				ef->interp = strndup(raw + ph.p_offset, ph.p_filesz);
		}
	}
	while ((scn = elf_nextscn(ef->elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_GNU_versym)
			versym = elf_getdata(scn, NULL);
	}
	scn = NULL;
	while ((scn = elf_nextscn(ef->elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_DYNSYM)
			read_symtab(ef, scn, &sh, versym);
		else if (sh.sh_type == SHT_SYMTAB)
			read_symtab(ef, scn, &sh, NULL);
		else if (sh.sh_type == SHT_NOTE && !ef->build_id[0]) {
			Elf_Data *d = elf_getdata(scn, NULL);

			if (d)
				read_note_build_id(ef, d);
		}
	}
	if (ef->nsyms)
		qsort(ef->syms, ef->nsyms, sizeof(*ef->syms), sym_cmp);
	return 0;
}

struct elf_file *elf_file__open(const char *path)
{
	struct elf_file *ef;
	int err;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		errno = ENOSYS;
		return NULL;
	}
	ef = xcalloc(1, sizeof(*ef));
	ef->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ef->fd < 0) {
		err = errno;
		free(ef);
		errno = err;
		return NULL;
	}
	ef->elf = elf_begin(ef->fd, ELF_C_READ_MMAP, NULL);
	err = ef->elf ? -index_file(ef) : ENOEXEC;
	if (err) {
		elf_file__free(ef);
		errno = err;
		return NULL;
	}
	return ef;
}

void elf_file__free(struct elf_file *ef)
{
	if (!ef)
		return;
	free(ef->syms);
	free(ef->segs);
	free(ef->interp);
	if (ef->elf)
		elf_end(ef->elf);
	if (ef->fd >= 0)
		close(ef->fd);
	free(ef);
}

int elf_file__lookup(const struct elf_file *ef, const char *name, struct elf_sym *out)
{
	size_t lo = 0, hi = ef->nsyms;

	/* First entry with this name: the sort puts .dynsym and default versions first. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (strcmp(ef->syms[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == ef->nsyms || strcmp(ef->syms[lo].name, name))
		return -ENOENT;
	*out = (struct elf_sym){
		.vaddr = ef->syms[lo].vaddr,
		.size = ef->syms[lo].size,
		.ifunc = ef->syms[lo].ifunc,
		.object = ef->syms[lo].object,
		.dynamic = ef->syms[lo].dynamic,
	};
	return 0;
}

bool elf_file__each_function(const struct elf_file *ef,
			     bool (*fn)(void *ctx, const char *name, const struct elf_sym *sym),
			     void *ctx)
{
	for (size_t i = 0; i < ef->nsyms; i++) {
		const struct sym *y = &ef->syms[i];
		struct elf_sym out = {
			.vaddr = y->vaddr,
			.size = y->size,
			.ifunc = y->ifunc,
			.dynamic = y->dynamic,
		};

		if (!y->object && fn(ctx, y->name, &out))
			return true;
	}
	return false;
}

const char *elf_file__interp(const struct elf_file *ef)
{
	return ef->interp;
}

bool elf_file__is_dyn(const struct elf_file *ef)
{
	return ef->dyn;
}

const char *elf_file__build_id(const struct elf_file *ef)
{
	return ef->build_id;
}

int elf_file__vaddr_to_offset(const struct elf_file *ef, uint64_t vaddr, uint64_t *off)
{
	for (size_t i = 0; i < ef->nsegs; i++) {
		const struct seg *s = &ef->segs[i];

		if (vaddr >= s->vaddr && vaddr < s->vaddr + s->filesz) {
			*off = vaddr - s->vaddr + s->offset;
			return 0;
		}
	}
	return -ENOENT;
}

int elf_file__offset_to_vaddr(const struct elf_file *ef, uint64_t off, uint64_t *vaddr)
{
	for (size_t i = 0; i < ef->nsegs; i++) {
		const struct seg *s = &ef->segs[i];

		if (off >= s->offset && off < s->offset + s->filesz) {
			*vaddr = off - s->offset + s->vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

int elf_file__read(const struct elf_file *ef, uint64_t vaddr, void *buf, size_t len)
{
	uint8_t *out = buf;

	/* Segment by segment: a range may run from one into the next. */
	while (len) {
		const struct seg *s = NULL;
		size_t n;
		ssize_t got;

		for (size_t i = 0; i < ef->nsegs && !s; i++)
			if (vaddr >= ef->segs[i].vaddr &&
			    vaddr < ef->segs[i].vaddr + ef->segs[i].filesz)
				s = &ef->segs[i];
		if (!s)
			return -ENOENT;
		n = len;
		if (n > s->vaddr + s->filesz - vaddr)
			n = (size_t)(s->vaddr + s->filesz - vaddr);
		got = pread(ef->fd, out, n, (off_t)(vaddr - s->vaddr + s->offset));
		if (got < 0)
			return -errno;
		if ((size_t)got != n)
			return -EIO; /* the file is shorter than its program headers say */
		out += n;
		vaddr += n;
		len -= n;
	}
	return 0;
}
