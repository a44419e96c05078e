/* Directories read a few entries at a time (loom_fs_opendir, _readdir,
 * _closedir) on libuv's uv_fs_opendir / uv_fs_readdir.
 *
 * A loom_dir_t is an object with a checked handle, as an open file is: a
 * readdir holds a reference while libuv reads into the directory's entry
 * array, so a closedir from another task meanwhile only marks it, and the
 * last call to end closes it. The names libuv read stay in the request
 * until the next readdir or the close (uv_fs_req_cleanup frees them), which
 * is how long the caller may use them.
 */
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define MAX_ENTRIES 1024

struct loom_dir_s {
  loom__obj_t obj; /* list, handle, refs (obj.h); no libuv handle */
  uv_dir_t *dir;   /* libuv's, from opendir until closed */
  uv_fs_t names;   /* the last readdir's request: owns the names */
  int has_names;   /* names must be cleaned up */
  int reading;     /* a readdir is in progress */
  int closing;     /* closedir ran during a readdir: its end closes */
  uv_dirent_t ents[MAX_ENTRIES];
};

static void drop_names(loom_dir_t *d) {
  if (!d->has_names) return;
  uv_fs_req_cleanup(&d->names);
  d->has_names = 0;
}

static int dir_free(loom_dir_t *d) {
  drop_names(d);
  uv_fs_t req;
  int rc = uv_fs_closedir(d->obj.rt->loop, &req, d->dir, NULL); /* closedir(3): quick */
  uv_fs_req_cleanup(&req);
  loom__obj_free(&d->obj);
  return rc;
}

static int io_close(loom__io_t *io, int force) {
  (void)force;
  loom_dir_t *d = loom__obj_of(io);
  if (d->closing) return 0;
  dir_free(d);
  return 1;
}

int loom_fs_opendir(loom_dir_t **out, const char *path) {
  if (out) *out = NULL;
  loom__fsop_t op;
  int rc = loom__fsop_begin_path(out, path, &op);
  if (rc) return rc;
  loom_t *rt = loom__self()->rt;
  loom_dir_t *d = calloc(1, sizeof(*d));
  if (!d) return UV_ENOMEM;
  rc = loom__fsop_wait(&op, uv_fs_opendir(rt->loop, &op.u.fs, path, loom__fsop_cb));
  uv_dir_t *dir = op.done && op.u.fs.result == 0 ? op.u.fs.ptr : NULL;
  if (op.done) {
    if (rc == 0) rc = (int)op.u.fs.result;
    uv_fs_req_cleanup(&op.u.fs);
  }
  if (rc) {
    if (dir) { /* opened, but the caller was interrupted */
      uv_fs_t req;
      uv_fs_closedir(rt->loop, &req, dir, NULL);
      uv_fs_req_cleanup(&req);
    }
    free(d);
    return rc;
  }
  d->dir = dir;
  dir->dirents = d->ents;
  rc = loom__obj_setup(&d->obj, d, rt, "directory", io_close, NULL, UV_UNKNOWN_HANDLE,
                       -1);
  if (rc == 0) rc = loom__obj_publish(&d->obj, LOOM__H_DIR);
  if (rc) {
    dir_free(d);
    return rc;
  }
  *out = d->obj.token;
  return 0;
}

int loom_fs_readdir(loom_dir_t *h, loom_dirent_t *ents, size_t n) {
  if (!h || !ents || n == 0) return UV_EINVAL;
  loom_dir_t *d = loom__handle_get(NULL, h, LOOM__H_DIR);
  if (!d) return UV_EBADF;
  if (d->reading) return UV_EBUSY;
  loom__fsop_t op;
  int rc = loom__fsop_begin(&op);
  if (rc) return rc;
  loom__obj_ref(&d->obj);
  d->reading = 1;
  drop_names(d); /* the previous call's names go now */
  d->dir->nentries = n < MAX_ENTRIES ? n : MAX_ENTRIES;
  rc = loom__fsop_wait(&op,
                       uv_fs_readdir(d->obj.rt->loop, &op.u.fs, d->dir, loom__fsop_cb));
  if (op.done) {
    if (rc == 0) rc = (int)op.u.fs.result;
    d->names = op.u.fs; /* owns the names until the next call */
    d->has_names = 1;
  }
  if (rc > 0)
    for (int i = 0; i < rc; i++)
      ents[i] = (loom_dirent_t){.name = (char *)d->ents[i].name,
                                .type = (int)d->ents[i].type};
  d->reading = 0;
  if (--d->obj.refs == 0 && d->closing) {
    dir_free(d);
    if (rc > 0) rc = UV_EBADF; /* closed under us: the names are gone */
  }
  return rc;
}

int loom_fs_closedir(loom_dir_t *h) {
  if (!h) return UV_EINVAL;
  loom_dir_t *d = loom__handle_get(NULL, h, LOOM__H_DIR);
  if (!d) return UV_EBADF;
  loom__obj_unpublish(&d->obj);
  if (d->obj.refs > 0) {
    d->closing = 1;
    return 0;
  }
  return dir_free(d);
}
