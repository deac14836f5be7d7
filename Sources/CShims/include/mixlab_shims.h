#ifndef MIXLAB_SHIMS_H
#define MIXLAB_SHIMS_H
#include <stdint.h>

/// Starts asynchronous writeback of a file range (Linux sync_file_range with
/// SYNC_FILE_RANGE_WRITE); a no-op elsewhere. Returns 0 or -1 with errno set.
int mixlab_start_writeback(int fd, int64_t offset, int64_t length);

/// Current and peak resident set size of this process in bytes (from /proc/self/status),
/// or 0 where unknown.
int64_t mixlab_peak_rss_bytes(void);
int64_t mixlab_current_rss_bytes(void);



/// Opens an existing file for writing with O_DIRECT (Linux), bypassing the page cache;
/// returns -1 where unsupported (the caller then writes through the page cache).
int mixlab_open_direct(const char *path);
#endif
