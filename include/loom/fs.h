/* loom files: the file system as suspending calls (aiofiles and os for
 * asyncio users), on libuv's uv_fs_* and its thread pool. See docs/fs.md.
 *
 * Every call here that touches the file system suspends the calling task
 * while a libuv thread does the work, and returns 0 (or a count) or a
 * negative error code: libuv's pass through unchanged (UV_ENOENT,
 * UV_EACCES, UV_EISDIR, UV_ENOSPC, UV_EFBIG...). Outside a task they return
 * LOOM_ENOTASK; NULL where a pointer is needed gives UV_EINVAL.
 *
 * Cancellation and timeouts. A task cancelled (or whose timeout scope
 * expires) while it waits for a file operation gets UV_ECANCELED (or
 * UV_ETIMEDOUT):
 *   - at the loop's next turn when the work had not started yet (it was
 *     still queued for a thread: libuv takes it back, uv_cancel, and it
 *     never happens);
 *   - otherwise as soon as the work ends: a system call already running in
 *     a thread cannot be stopped, and loom waits for it rather than leave
 *     it writing into the caller's buffer after the call has returned.
 * So once any call here has returned, nothing writes into the buffers it
 * was given and nothing reads from them. An interrupted call reports the
 * interruption even when the work did complete: a write or a rename may
 * then have taken effect (as after an interrupted socket write), a read
 * may have moved the file position. What the caller would otherwise never
 * see is undone: an interrupted open closes the file it opened, an
 * interrupted mkdtemp removes the directory it made.
 *
 * Files are checked handles like streams: a call on a closed file returns
 * UV_EBADF and never touches freed memory. A file left open when the
 * runtime shuts down is closed and reported.
 */
#ifndef LOOM_FS_H
#define LOOM_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core.h"
#include "export.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_file_s loom_file_t; /* opaque, heap */

/* ---- open files --------------------------------------------------------------- */

/* Opens path with open(2)'s flags (O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC,
 * ..., or libuv's UV_FS_O_*) and mode for a file it creates (0644). The
 * descriptor is close-on-exec. Errors: UV_ENOENT, UV_EACCES, UV_EISDIR (a
 * directory opened for writing), UV_EEXIST (O_EXCL), UV_EMFILE, ... */
LOOM_EXTERN int loom_file_open(loom_file_t **f, const char *path, int flags, int mode);

/* Closes the file. Does not suspend and is not interrupted by cancellation
 * (clean-up code in a cancelled task can close what it opened). If another
 * task is still in a call on the file, the descriptor is closed when that
 * call ends and this returns 0; later calls with the handle return
 * UV_EBADF. Returns close(2)'s error otherwise (UV_EIO, rarely). Errors:
 * UV_EINVAL (NULL), UV_EBADF (closed already). */
LOOM_EXTERN int loom_file_close(loom_file_t *f);

/* The file's descriptor (>= 0), for calls loom does not wrap; loom closes
 * it. Errors: UV_EINVAL, UV_EBADF. Does not suspend. */
LOOM_EXTERN int loom_file_fileno(loom_file_t *f);

/* Reads up to n bytes at the file position (offset < 0) or at offset
 * (pread: the position does not move). Returns the count read, 0 at the
 * end of the file. Errors: UV_EINVAL (NULL buf with n > 0, n > SSIZE_MAX),
 * UV_EBADF (closed, or not open for reading), UV_EISDIR, UV_ECANCELED,
 * UV_ETIMEDOUT, ... */
LOOM_EXTERN ssize_t loom_file_pread(loom_file_t *f, void *buf, size_t n, int64_t offset);
/* loom_file_pread at the file position. */
LOOM_EXTERN ssize_t loom_file_read(loom_file_t *f, void *buf, size_t n);

/* Writes all n bytes at the file position (offset < 0; O_APPEND: at the
 * end) or from offset on, in as many write(2) calls as it takes. Returns n,
 * or an error: then some bytes may have been written. Errors: UV_EINVAL,
 * UV_EBADF (closed, or not open for writing), UV_ENOSPC, UV_EFBIG (past
 * the process's file size limit), UV_ECANCELED, UV_ETIMEDOUT, ... */
LOOM_EXTERN ssize_t loom_file_pwrite(loom_file_t *f, const void *buf, size_t n,
                                     int64_t offset);
/* loom_file_pwrite at the file position. */
LOOM_EXTERN ssize_t loom_file_write(loom_file_t *f, const void *buf, size_t n);

/* Scatter/gather forms: one readv(2) (a short read is returned as it is),
 * and a writev that writes everything. offset < 0: the file position. At
 * most 1024 buffers (UV_EINVAL past that). */
LOOM_EXTERN ssize_t loom_file_readv(loom_file_t *f, const uv_buf_t *bufs, unsigned nbufs,
                                    int64_t offset);
LOOM_EXTERN ssize_t loom_file_writev(loom_file_t *f, const uv_buf_t *bufs, unsigned nbufs,
                                     int64_t offset);

/* fsync(2) and fdatasync(2). */
LOOM_EXTERN int loom_file_sync(loom_file_t *f);
LOOM_EXTERN int loom_file_datasync(loom_file_t *f);
/* ftruncate(2): UV_EINVAL for a negative length. */
LOOM_EXTERN int loom_file_truncate(loom_file_t *f, int64_t length);
/* fstat(2) into *st. */
LOOM_EXTERN int loom_file_stat(loom_file_t *f, uv_stat_t *st);
/* fchmod(2). */
LOOM_EXTERN int loom_file_chmod(loom_file_t *f, int mode);

/* ---- paths ---------------------------------------------------------------------- */

/* stat(2) and lstat(2) into *st. */
LOOM_EXTERN int loom_fs_stat(const char *path, uv_stat_t *st);
LOOM_EXTERN int loom_fs_lstat(const char *path, uv_stat_t *st);
/* rename(2), unlink(2), mkdir(2), rmdir(2), chmod(2). */
LOOM_EXTERN int loom_fs_rename(const char *from, const char *to);
LOOM_EXTERN int loom_fs_unlink(const char *path);
LOOM_EXTERN int loom_fs_mkdir(const char *path, int mode);
LOOM_EXTERN int loom_fs_rmdir(const char *path);
LOOM_EXTERN int loom_fs_chmod(const char *path, int mode);
/* access(2) with F_OK, R_OK, W_OK, X_OK: 0 or the reason (UV_ENOENT,
 * UV_EACCES). */
LOOM_EXTERN int loom_fs_access(const char *path, int mode);
/* Copies a file (flags: UV_FS_COPYFILE_EXCL, _FICLONE, _FICLONE_FORCE). */
LOOM_EXTERN int loom_fs_copyfile(const char *from, const char *to, int flags);

/* Makes a new directory from tmpl, whose name ends in "XXXXXX", and writes
 * its path into out (cap bytes, with the NUL). Returns the path's length.
 * UV_ENOBUFS if out is too small (the directory is removed again). */
LOOM_EXTERN int loom_fs_mkdtemp(const char *tmpl, char *out, size_t cap);
/* The canonical absolute path of path, into out (cap bytes). Returns its
 * length; UV_ENOBUFS if out is too small. */
LOOM_EXTERN int loom_fs_realpath(const char *path, char *out, size_t cap);

/* A directory entry: its name and type (UV_DIRENT_FILE, UV_DIRENT_DIR,
 * UV_DIRENT_LINK, ..., UV_DIRENT_UNKNOWN when the file system does not
 * say). */
typedef struct {
  char *name;
  int type;
} loom_dirent_t;

/* Reads a whole directory (without "." and ".."), sorted by name, into a
 * new array *ents of *n entries, freed with loom_fs_dirents_free. Errors:
 * UV_ENOENT, UV_ENOTDIR, UV_EACCES, UV_ENOMEM, ... */
LOOM_EXTERN int loom_fs_scandir(const char *path, loom_dirent_t **ents, size_t *n);
LOOM_EXTERN void loom_fs_dirents_free(loom_dirent_t *ents, size_t n);

/* A directory read a few entries at a time (os.scandir as an iterator),
 * for directories too large to read at once. */
typedef struct loom_dir_s loom_dir_t; /* opaque, heap */
/* Opens a directory. Errors: UV_ENOENT, UV_ENOTDIR, UV_EACCES, ... */
LOOM_EXTERN int loom_fs_opendir(loom_dir_t **d, const char *path);
/* Reads up to n (at most 1024) entries into ents, in no particular order
 * and without "." and "..": returns the count, 0 at the end. The names
 * belong to the directory and stay valid until the next readdir or
 * closedir on it. Errors: UV_EINVAL, UV_EBADF, UV_EBUSY (another task is
 * in a readdir on it), UV_ECANCELED, UV_ETIMEDOUT, ... */
LOOM_EXTERN int loom_fs_readdir(loom_dir_t *d, loom_dirent_t *ents, size_t n);
/* Closes it. Does not suspend (as loom_file_close). Errors: UV_EINVAL,
 * UV_EBADF. */
LOOM_EXTERN int loom_fs_closedir(loom_dir_t *d);

/* ---- whole files ---------------------------------------------------------------- */

/* Reads the whole file at path into a new buffer (*data, NUL-terminated,
 * freed with free()) of *len bytes. max caps the size: a larger file gives
 * UV_EFBIG and no data (SIZE_MAX: no cap but memory). Open, read and close
 * happen in one trip to libuv's thread pool. */
LOOM_EXTERN int loom_fs_read_file(const char *path, char **data, size_t *len, size_t max);

/* Replaces (or creates) the file at path with len bytes of data,
 * atomically: they go to a new file in the same directory, which is
 * synced and then renamed over path, so a reader sees the old contents or
 * the new ones, never a part, and a crash leaves one or the other. mode
 * is the new file's (0644). On an error path is untouched and the
 * temporary file removed. */
LOOM_EXTERN int loom_fs_write_file(const char *path, const void *data, size_t len,
                                   int mode);

/* ---- files as streams ------------------------------------------------------------ */

/* Opens path for reading as a loom stream: loom_read, loom_read_line,
 * loom_read_until, loom_read_exactly and loom_read_all work on it as on a
 * socket (`for line in file`), reading ahead up to the stream's limit
 * (loom_stream_set_limit). Writing to it returns UV_ENOTSUP. loom_close
 * closes the file. loom_stream_open_fd on a regular file gives the same
 * kind of stream. */
LOOM_EXTERN int loom_file_stream_open(loom_stream_t **s, const char *path);

/* Sends len bytes of the file from offset on (offset < 0: the file
 * position, which then moves) to the stream, as a static file server does;
 * len SIZE_MAX: up to the end of the file. Returns the count sent (short
 * only at the end of the file). The bytes go through the stream's write
 * queue, with its backpressure, in chunks of up to 64 KiB read on libuv's
 * thread pool. Errors: the file's (UV_EBADF...) and the stream's
 * (UV_EPIPE, UV_ECONNRESET...); bytes before the error were sent. */
LOOM_EXTERN ssize_t loom_file_sendfile(loom_stream_t *out, loom_file_t *f, int64_t offset,
                                       size_t len);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_FS_H */
