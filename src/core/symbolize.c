/* Addresses to function names, for backtraces in dumps and reports.
 *
 * dladdr alone names only exported symbols: not loom's internal functions
 * (hidden), nor a program's static functions, nor any function of a
 * program linked without -rdynamic. So dladdr gives the object an address
 * is in and its base, and the object's own symbol table (.symtab, which
 * builds keep unless stripped; .dynsym otherwise) gives the name: the file
 * is mapped read-only, its function symbols sorted once, and each address
 * found by binary search. A batch (a dump) keeps the files it has read in
 * a loom__syms_t until it ends; nothing stays mapped after it. Anything
 * unexpected in a file (not ELF64, a section out of bounds) falls back to
 * dladdr's answer, and failing that to "0xADDR (object+0xOFFSET)", which
 * addr2line turns into a line.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define MAX_FILES 8

typedef struct {
  uintptr_t value, size;
  uint32_t name; /* offset in the string table */
} sym_t;

typedef struct {
  uintptr_t fbase; /* dladdr's base of the object */
  int loaded;      /* tried: syms may still be NULL */
  void *map;       /* the file, read-only */
  size_t len;
  uintptr_t bias; /* run-time address - symbol value */
  sym_t *syms;    /* function symbols by value */
  size_t nsyms;
  const char *strtab; /* inside map */
  size_t strtab_len;
} file_t;

struct loom__syms_s {
  file_t files[MAX_FILES];
  int n;
};

loom__syms_t *loom__syms_open(void) { return calloc(1, sizeof(loom__syms_t)); }

void loom__syms_close(loom__syms_t *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) {
    free(s->files[i].syms);
    if (s->files[i].map) munmap(s->files[i].map, s->files[i].len);
  }
  free(s);
}

/* The lowest PT_LOAD address of the program's main object, as mapped. */
static int main_base_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  uintptr_t lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_LOAD && info->dlpi_phdr[i].p_vaddr < lo)
      lo = info->dlpi_phdr[i].p_vaddr;
  *(uintptr_t *)data = info->dlpi_addr + (lo & ~(uintptr_t)0xfff);
  return 1; /* the first entry is the main program */
}

static int by_value(const void *a, const void *b) {
  uintptr_t x = ((const sym_t *)a)->value, y = ((const sym_t *)b)->value;
  return x < y ? -1 : x > y;
}

#if UINTPTR_MAX == UINT64_MAX
typedef Elf64_Ehdr ehdr_t;
typedef Elf64_Shdr shdr_t;
typedef Elf64_Phdr phdr_t;
typedef Elf64_Sym esym_t;
#define ELF_CLASS ELFCLASS64
#define SYM_TYPE ELF64_ST_TYPE
#else
typedef Elf32_Ehdr ehdr_t;
typedef Elf32_Shdr shdr_t;
typedef Elf32_Phdr phdr_t;
typedef Elf32_Sym esym_t;
#define ELF_CLASS ELFCLASS32
#define SYM_TYPE ELF32_ST_TYPE
#endif

/* Reads the function symbols of one symbol table section into f. */
static int read_syms(file_t *f, const shdr_t *sh, const shdr_t *sects, size_t nsect) {
  const char *base = f->map;
  if (sh->sh_link >= nsect || sh->sh_entsize != sizeof(esym_t)) return -1;
  const shdr_t *str = &sects[sh->sh_link];
  if (sh->sh_offset > f->len || sh->sh_size > f->len - sh->sh_offset) return -1;
  if (str->sh_offset > f->len || str->sh_size > f->len - str->sh_offset) return -1;
  size_t n = sh->sh_size / sizeof(esym_t);
  const esym_t *es = (const esym_t *)(base + sh->sh_offset);
  sym_t *v = malloc((n ? n : 1) * sizeof(*v));
  if (!v) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (SYM_TYPE(es[i].st_info) != STT_FUNC || !es[i].st_value || !es[i].st_shndx)
      continue;
    if (es[i].st_name >= str->sh_size) continue;
    v[k].value = es[i].st_value;
    v[k].size = es[i].st_size;
    v[k].name = es[i].st_name;
    k++;
  }
  if (!k || !str->sh_size || base[str->sh_offset + str->sh_size - 1]) {
    free(v);
    return -1;
  }
  qsort(v, k, sizeof(*v), by_value);
  f->syms = v;
  f->nsyms = k;
  f->strtab = base + str->sh_offset;
  f->strtab_len = str->sh_size;
  return 0;
}

static void load(file_t *f, const char *fname) {
  f->loaded = 1;
  uintptr_t main_base = 0;
  dl_iterate_phdr(main_base_cb, &main_base);
  /* The main program's name as dladdr gives it is argv[0], which may be
   * relative to a directory the program has left. */
  const char *path = f->fbase == main_base ? "/proc/self/exe" : fname;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) || st.st_size < (off_t)sizeof(ehdr_t)) {
    close(fd);
    return;
  }
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return;
  f->map = map;
  f->len = (size_t)st.st_size;
  const ehdr_t *eh = map;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELF_CLASS) return;
  if (eh->e_shentsize != sizeof(shdr_t) || eh->e_phentsize != sizeof(phdr_t)) return;
  if (eh->e_shoff > f->len || (size_t)eh->e_shnum * sizeof(shdr_t) > f->len - eh->e_shoff)
    return;
  if (eh->e_phoff > f->len || (size_t)eh->e_phnum * sizeof(phdr_t) > f->len - eh->e_phoff)
    return;
  const phdr_t *ph = (const phdr_t *)((const char *)map + eh->e_phoff);
  uintptr_t lo = UINTPTR_MAX;
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < lo) lo = ph[i].p_vaddr;
  if (lo == UINTPTR_MAX) return;
  f->bias = f->fbase - (lo & ~(uintptr_t)0xfff);
  const shdr_t *sects = (const shdr_t *)((const char *)map + eh->e_shoff);
  for (int pass = 0; pass < 2 && !f->syms; pass++)
    for (size_t i = 0; i < eh->e_shnum && !f->syms; i++)
      if (sects[i].sh_type == (pass ? SHT_DYNSYM : SHT_SYMTAB))
        read_syms(f, &sects[i], sects, eh->e_shnum);
}

static file_t *file_of(loom__syms_t *s, uintptr_t fbase, const char *fname) {
  for (int i = 0; i < s->n; i++)
    if (s->files[i].fbase == fbase) return &s->files[i];
  if (s->n == MAX_FILES) return NULL;
  file_t *f = &s->files[s->n++];
  memset(f, 0, sizeof(*f));
  f->fbase = fbase;
  load(f, fname);
  return f;
}

/* The function containing a (a run-time address) in f, or NULL. */
static const sym_t *find(const file_t *f, uintptr_t a) {
  if (!f || !f->syms || a < f->bias) return NULL;
  uintptr_t v = a - f->bias;
  size_t lo = 0, hi = f->nsyms;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (f->syms[mid].value <= v)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (!lo) return NULL;
  const sym_t *sym = &f->syms[lo - 1];
  /* Past the end of a sized symbol: padding, or code without a symbol. A
   * zero-sized one (assembly) counts up to the next symbol. */
  if (sym->size && v >= sym->value + sym->size) return NULL;
  return sym;
}

char *loom__syms_name(loom__syms_t *s, void *pc, int is_return, char *buf, size_t n) {
  Dl_info info;
  /* A return address points past its call, which may be the function's
   * last instruction: look up the byte before it. */
  uintptr_t at = (uintptr_t)pc - (is_return ? 1 : 0);
  if (!dladdr((void *)at, &info) || !info.dli_fname) {
    snprintf(buf, n, "%p", pc);
    return buf;
  }
  const char *file = strrchr(info.dli_fname, '/');
  file = file ? file + 1 : info.dli_fname;
  if (!*file) file = "program";
  loom__syms_t *own = NULL;
  if (!s) s = own = loom__syms_open();
  const sym_t *sym = s ? find(file_of(s, (uintptr_t)info.dli_fbase, info.dli_fname), at)
                       : NULL;
  if (sym) {
    const file_t *f = file_of(s, (uintptr_t)info.dli_fbase, info.dli_fname);
    snprintf(buf, n, "%s+0x%lx (%s)", f->strtab + sym->name,
             (unsigned long)((uintptr_t)pc - f->bias - sym->value), file);
  } else if (info.dli_sname && info.dli_saddr) {
    snprintf(buf, n, "%s+0x%lx (%s)", info.dli_sname,
             (unsigned long)((char *)pc - (char *)info.dli_saddr), file);
  } else {
    snprintf(buf, n, "%p (%s+0x%lx)", pc, file,
             (unsigned long)((char *)pc - (char *)info.dli_fbase));
  }
  loom__syms_close(own);
  return buf;
}

char *loom__symbolize(void *pc, char *buf, size_t n) {
  return loom__syms_name(NULL, pc, 1, buf, n);
}

char *loom__symbolize_fn(void *fn, char *buf, size_t n) {
  return loom__syms_name(NULL, fn, 0, buf, n);
}
